"""Aggregation: stitched out-of-sample curve, fold table, ranking, stability, verdict,
overfitting and CPCV paths — against independent computations."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats as sps

import foldwise
from foldwise import Criteria, backtest
from foldwise.errors import OptimizationError
from foldwise.examples import equal_weight, sma_crossover
from foldwise.optimizer import load_result, optimize, walk_forward_matrix
from foldwise.space import Categorical, Int
from foldwise.splits import CombinatorialPurgedKFold, WalkForward

from ._optimize_support import (
    COUNT_ENV,
    counted_sma,
    executions,
    lagged_sign,
    noisy_panel,
    regime_panel,
)

COSTS = 3.0
RATE = COSTS / 1e4
SPACE = {"fast": Int(5, 30), "slow": Int(20, 80, step=5)}


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def goog_result(store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(COUNT_ENV, str(tmp_path / "executions.txt"))
    # every run keeps its arrays, so "runs nothing" is exact (re-computing runs kept
    # without arrays is tested in test_cache_costs.py)
    return optimize(counted_sma, foldwise.datasets.load_goog(), SPACE,
                    WalkForward(train=500, test=250), constraints="fast < slow", n_trials=10,
                    study="agg", seed=0, costs=COSTS, show_progress=False, top_k=3,
                    cache=foldwise.BacktestCache(keep_arrays="always"))


def test_stitched_curve_equals_one_backtest_of_the_switched_positions(goog_result):
    data = foldwise.datasets.load_goog()
    positions = pd.Series(0.0, index=data.index)
    records = goog_result.fold_records
    for k, record in enumerate(records):
        weights = sma_crossover(data, **record.best.params)["GOOG"]
        decided = data.index[data.index.get_loc(record.train_end):data.index.get_loc(record.test_end)]
        positions[decided] = weights[decided]
        if k == len(records) - 1:  # the last fold keeps its position on its last bar
            positions[record.test_end] = weights[record.test_end]
    plain = backtest(positions, data, costs=COSTS).returns
    first, last = records[0].test_start, records[-1].test_end
    expected = plain.loc[first:last].copy()
    # the curve starts flat: entering the first position is charged on its first bar
    expected.iloc[0] -= RATE * abs(positions[records[0].train_end])
    stitched = goog_result.oos_returns
    np.testing.assert_allclose(stitched.to_numpy(), expected.to_numpy(), atol=1e-15)
    assert stitched.index.equals(expected.index)
    np.testing.assert_allclose(goog_result.oos_equity.to_numpy(),
                               np.cumprod(1 + expected.to_numpy()))
    assert goog_result.oos_metrics["sharpe"] == pytest.approx(
        expected.mean() / expected.std() * math.sqrt(252))
    # switching sets at a boundary is a trade of the stitched result
    trades = goog_result.oos_result.trades
    assert trades["cost"].sum() == pytest.approx(goog_result.oos_result.costs.sum())


def test_fold_table_numbers(goog_result):
    folds = goog_result.folds
    for row, record in zip(folds.itertuples(index=False), goog_result.fold_records, strict=True):
        assert row.params == record.best.params
        assert row.wfe == pytest.approx(row.oos_sharpe / row.is_sharpe if row.is_sharpe > 0
                                        else math.nan, nan_ok=True)
        assert 0.0 <= row.dsr <= 1.0
        assert row.trials_complete == 10
        assert row.cache_hits == sum(1 for t in record.trials
                                     if t.state.name == "COMPLETE" and t.record.backtests == 0)
    assert {"is_annual_return", "oos_max_drawdown", "oos_n_trades"} <= set(folds.columns)


def test_cache_hits_of_a_second_study_on_the_same_sets(goog_result):
    again = optimize(counted_sma, foldwise.datasets.load_goog(), SPACE,
                     WalkForward(train=500, test=250), constraints="fast < slow", n_trials=10,
                     study="agg-again", seed=0, costs=COSTS, show_progress=False)
    assert (again.folds["cache_hits"] == 10).all()


def test_ranking_by_hand(goog_result):
    ranking = goog_result.ranking
    by_set: dict = {}
    for record in goog_result.fold_records:
        values = [s.test["sharpe"] for s in record.selected]
        ranks = sps.rankdata([-v for v in values])
        for selected, rank in zip(record.selected, ranks, strict=True):
            key = (selected.params["fast"], selected.params["slow"])
            by_set.setdefault(key, []).append((selected.test["sharpe"], rank))
    assert len(ranking) == len(by_set)
    for row in ranking.itertuples(index=False):
        entries = by_set[(row.fast, row.slow)]
        assert row.n_folds == len(entries)
        assert row.mean_oos_sharpe == pytest.approx(np.mean([v for v, _ in entries]))
        assert row.worst_oos_sharpe == pytest.approx(min(v for v, _ in entries))
        assert row.mean_rank == pytest.approx(np.mean([r for _, r in entries]))
    # sets judged in two folds or more first, each group by mean rank
    enough = ranking["n_folds"] >= 2
    assert list(enough) == sorted(enough, reverse=True)  # no multi-fold set after a 1-fold one
    assert ranking.loc[enough, "mean_rank"].is_monotonic_increasing
    assert ranking.loc[~enough, "mean_rank"].is_monotonic_increasing
    assert goog_result.ranked(min_folds=1)["mean_rank"].is_monotonic_increasing


def test_stability_tables(goog_result):
    stability = goog_result.parameter_stability
    chosen = goog_result.best_params
    assert stability.loc["fast", "values"] == [p["fast"] for p in chosen]
    assert stability.loc["slow", "std"] == pytest.approx(np.std([p["slow"] for p in chosen], ddof=1))
    correlation = goog_result.rank_correlation
    trials = goog_result.trials
    complete = trials[(trials["fold"] == 0) & (trials["state"] == "COMPLETE")]
    first = complete.loc[~complete["params"].map(lambda p: (p["fast"], p["slow"])).duplicated()]
    expected = sps.spearmanr([t["sharpe"] for t in first["train"]],
                             [t["sharpe"] for t in first["test"]]).statistic
    assert correlation.loc[0, "spearman"] == pytest.approx(expected)


def test_comparison_has_the_equal_weight_universe_over_the_same_dates(goog_result):
    table = goog_result.comparison
    data = foldwise.datasets.load_goog()
    oos = goog_result.oos_returns
    hold = backtest(equal_weight(data), data, costs=COSTS).slice(oos.index[0], oos.index[-1])
    assert table.loc["equal-weight universe (same dates)", "sharpe"] == pytest.approx(
        hold.metrics()["sharpe"])
    assert table.loc["walk-forward (out of sample)", "sharpe"] == pytest.approx(
        goog_result.oos_metrics["sharpe"])
    span = f"{oos.index[0].date()}..{oos.index[-1].date()}"
    assert table.loc["walk-forward (out of sample)", "dates"] == span
    assert table.loc["equal-weight universe (same dates)", "total_return"] == pytest.approx(
        hold.metrics()["total_return"])


def test_the_comparison_compares_like_with_like(goog_result):
    """Figures that grow with the period (drawdown, Calmar, total return) are not set
    against a mean of short training windows; the annualized ones are, by hand."""
    table = goog_result.comparison
    in_sample = table.loc["chosen sets in sample (mean of folds)"]
    assert in_sample[["max_drawdown", "calmar", "total_return"]].isna().all()
    chosen = [r.best.train for r in goog_result.fold_records]
    for name in ("sharpe", "annual_return", "annual_volatility"):
        assert in_sample[name] == pytest.approx(np.mean([t[name] for t in chosen]))
    assert in_sample["dates"] == f"{len(chosen)} training windows"


def test_summary_criteria_and_thresholds(goog_result):
    summary = goog_result.summary()
    assert list(summary["criterion"]) == ["walk_forward_efficiency", "profitable_folds",
                                          "largest_fold_share", "max_drawdown", "complete"]
    drawdown = goog_result.oos_metrics["max_drawdown"]
    assert summary.set_index("criterion").loc["max_drawdown", "value"] == drawdown
    lenient = goog_result.summary(Criteria(max_drawdown=0.99, min_wfe=-10, min_profitable=0,
                                           max_fold_share=1.01))
    strict = goog_result.summary(Criteria(max_drawdown=0.0001))
    assert not strict.set_index("criterion").loc["max_drawdown", "passed"]
    assert lenient.set_index("criterion").loc["max_drawdown", "passed"]
    profits = []
    for record in goog_result.fold_records:
        window = goog_result.oos_returns.loc[record.test_start:record.test_end]
        profits.append(np.log1p(window).sum())
    expected = sum(p > 0 for p in profits) / len(profits)
    assert summary.set_index("criterion").loc["profitable_folds", "value"] == pytest.approx(expected)


def test_load_result_gives_the_same_tables_and_runs_nothing(goog_result, tmp_path):
    live = {"folds": goog_result.folds, "ranking": goog_result.ranking,
            "oos": goog_result.oos_returns, "summary": goog_result.summary(),
            "comparison": goog_result.comparison}
    executed = len(executions(tmp_path / "executions.txt"))
    again = load_result("agg")
    pd.testing.assert_frame_equal(again.folds, live["folds"])
    pd.testing.assert_frame_equal(again.ranking, live["ranking"])
    pd.testing.assert_series_equal(again.oos_returns, live["oos"])
    pd.testing.assert_frame_equal(again.summary(), live["summary"])
    pd.testing.assert_frame_equal(again.comparison, live["comparison"])
    again.overfitting()
    assert len(executions(tmp_path / "executions.txt")) == executed


def test_the_stability_table_shows_a_regime_change(store_dir):
    data = regime_panel()
    result = optimize(lagged_sign, data, {"lookback": Int(1, 3), "sign": Categorical([1, -1])},
                      WalkForward(train=300, test=100), n_trials=12, study="regimes", seed=0,
                      show_progress=False)
    signs = result.parameter_stability.loc["sign", "values"]
    halfway = data.index[len(data) // 2]
    early = [s for s, r in zip(signs, result.fold_records, strict=True) if r.train_end < halfway]
    late = [s for s, r in zip(signs, result.fold_records, strict=True) if r.train_start > halfway]
    assert early and late
    assert set(early) == {1}   # momentum pays while returns are positively autocorrelated
    assert set(late) == {-1}   # then reversal
    assert result.parameter_stability.loc["sign", "n_unique"] == 2


def test_on_pure_noise_the_summary_fails_and_pbo_is_a_coin_flip(store_dir):
    data = noisy_panel(1500, 1, seed=3, drift=0.0)  # a driftless random walk: nothing to find
    result = optimize(sma_crossover, data, {"fast": Int(2, 20), "slow": Int(21, 100),
                                            "short": Categorical([True])},
                      WalkForward(train=400, test=200), n_trials=25, study="noise", seed=1,
                      costs=COSTS, show_progress=False)
    assert not result.passed()
    overfitting = result.overfitting(n_splits=10)
    assert 0.15 < overfitting["pbo"] < 0.85
    assert overfitting["n_configurations"] >= 25
    assert 0.0 <= overfitting["oos_dsr"] <= overfitting["oos_psr"] <= 1.0
    matrix = result.returns_matrix()
    assert matrix.shape[1] == overfitting["n_configurations"]


def test_cpcv_paths_cover_every_bar_once(store_dir):
    data = noisy_panel(600, 2, seed=4)
    splitter = CombinatorialPurgedKFold(n_groups=6, n_test_groups=2)
    result = optimize(sma_crossover, data, {"fast": Int(2, 10), "slow": Int(11, 40)}, splitter,
                      n_trials=4, study="cpcv", seed=0, show_progress=False)
    table, returns = result.cpcv_paths()
    assert len(table) == splitter.n_paths == 5
    assert returns.shape == (600, 5)
    bounds = splitter.group_bounds(data)
    path_map = splitter.path_map
    for path in range(5):
        pieces = []
        for group, (start, stop) in enumerate(bounds):
            params = result.fold_records[path_map[path, group]].best.params
            run = backtest(sma_crossover(data, **params), data)
            pieces.append(run.returns.iloc[start:stop])
        expected = pd.concat(pieces)
        np.testing.assert_allclose(returns[path].to_numpy(), expected.to_numpy(), atol=1e-15)
        assert table.loc[path, "sharpe"] == pytest.approx(
            expected.mean() / expected.std() * math.sqrt(252))
    cv = optimize(sma_crossover, data, {"fast": Int(2, 10), "slow": Int(11, 40)}, splitter,
                  n_trials=2, study="cpcv-cv", mode="cv", show_progress=False)
    with pytest.raises(OptimizationError, match="stitched out-of-sample curve belongs"):
        _ = cv.oos_returns


def test_walk_forward_matrix_shares_backtests(store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(COUNT_ENV, str(tmp_path / "executions.txt"))
    data = foldwise.datasets.load_goog()
    table = walk_forward_matrix(counted_sma, data, SPACE, trains=[500, 750], tests=[250, 500],
                                constraints="fast < slow", n_trials=6, seed=0, costs=COSTS,
                                show_progress=False, check_lookahead=False,
                                cache=foldwise.BacktestCache(keep_arrays="always"))
    assert list(table[["train", "test"]].itertuples(index=False, name=None)) == [
        (500, 250), (500, 500), (750, 250), (750, 500)]
    assert {"n_folds", "oos_sharpe", "wfe", "passed"} <= set(table.columns)
    ran = executions(tmp_path / "executions.txt")
    assert len(ran) == len(set(ran))  # every set run once for the whole grid
    cell = load_result("wfm-500-250")
    assert cell.oos_metrics["sharpe"] == pytest.approx(table.loc[0, "oos_sharpe"])


def test_print_shows_the_readable_summary(goog_result, capsys):
    print(goog_result)
    shown = capsys.readouterr().out
    assert shown.rstrip("\n") == goog_result.text_report(overfitting=False).rstrip("\n")
    assert "verdict:" in shown and "folds" in shown
    assert repr(goog_result).startswith("WalkForwardResult('agg'")


def test_optunas_per_study_lines_are_quiet_in_foldwise_runs(store_dir, capfd):
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default
    optimize(sma_crossover, foldwise.datasets.load_goog(), SPACE,
             WalkForward(train=500, test=250), constraints="fast < slow", n_trials=3,
             study="quiet", seed=0, show_progress=False)
    err = capfd.readouterr().err
    assert "A new study created" not in err and "finished with value" not in err
    assert optuna.logging.get_verbosity() == optuna.logging.INFO  # restored
