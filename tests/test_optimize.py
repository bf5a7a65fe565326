"""foldwise.optimize: walk-forward and cross-validated studies through the cache."""

from __future__ import annotations

import logging
from collections import Counter
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest

import foldwise
from foldwise.errors import (
    AllTrialsFailedError,
    OptimizationError,
    StrategyParameterError,
    StudyMismatchError,
)
from foldwise.examples import sma_crossover
from foldwise.optimizer import load_result, optimize
from foldwise.records import read_trial
from foldwise.space import Categorical, Fixed, Float, Int
from foldwise.splits import PurgedKFold, WalkForward
from foldwise.storage import open_storage, parse_storage

from ._optimize_support import (
    COUNT_ENV,
    always_broken,
    counted_sma,
    executions,
    fitted_threshold,
    fragile_sma,
    noisy_panel,
)

SPACE = {"fast": Int(5, 30), "slow": Int(20, 80, step=5)}
SPLITTER = WalkForward(train=500, test=250)


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def home(store_dir, tmp_path, monkeypatch):
    count = tmp_path / "executions.txt"
    monkeypatch.setenv(COUNT_ENV, str(count))
    return SimpleNamespace(root=store_dir, count=count)


def run(**overrides):
    arguments = {"strategy": counted_sma, "data": foldwise.datasets.load_goog(),
                 "space": SPACE, "splitter": SPLITTER, "constraints": "fast < slow",
                 "n_trials": 12, "study": "t", "seed": 0, "costs": 2.0,
                 "show_progress": False,
                 # these tests count the strategy's executions; the lookahead check's few
                 # backtests are tested in test_optimize_call
                 "check_lookahead": False}
    if "cache" not in overrides:
        # every run keeps its arrays, so "never run again" is exact; runs kept without
        # arrays (re-computed on demand, keep_arrays="auto") are tested in test_cache_costs
        arguments["cache"] = foldwise.BacktestCache(keep_arrays="always")
    arguments.update(overrides)
    return optimize(**arguments)


def independent_metrics(params, data, start, end):
    """Sharpe and total return of the SMA crossover between two dates, in plain pandas."""
    weights = sma_crossover(data, **params)["GOOG"]
    close = data.frame("close")["GOOG"]
    gross = weights.shift(1).fillna(0.0) * close.pct_change().fillna(0.0)
    net = gross - 2e-4 * weights.diff().fillna(weights).abs()
    window = net.loc[start:end]
    return window.mean() / window.std() * np.sqrt(252), (1 + window).prod() - 1


def test_walk_forward_folds_and_out_of_sample_numbers(home):
    data = foldwise.datasets.load_goog()
    result = run()
    folds = result.folds
    assert len(folds) == len(SPLITTER.folds(data)) == 6
    assert (folds["trials_complete"] == 12).all()
    for row, record in zip(folds.itertuples(index=False), result.fold_records, strict=True):
        complete = [t.value for t in record.trials if t.state.name == "COMPLETE"]
        assert row.is_sharpe == pytest.approx(max(complete))
        sharpe, _ = independent_metrics(row.params, data, row.test_start, row.test_end)
        assert row.oos_sharpe == pytest.approx(sharpe, rel=1e-9)
        train_sharpe, _ = independent_metrics(row.params, data, row.train_start, row.train_end)
        assert row.is_sharpe == pytest.approx(train_sharpe, rel=1e-9)
        assert row.test_start > row.train_end  # judged only on what followed
    assert len(result.best_params) == 6
    assert len(result.fold_records[0].selected) == 5  # top_k distinct sets


def test_each_distinct_parameter_set_is_executed_once(home):
    result = run()
    ran = Counter(executions(home.count))
    distinct = {tuple(p.values()) for p in result.trials.loc[
        result.trials["state"] == "COMPLETE", "params"]}
    assert set(ran) == distinct
    assert max(ran.values()) == 1  # 6 folds x 12 trials, one backtest per distinct set
    assert len(result.trials[result.trials["state"] == "COMPLETE"]) > len(distinct)


def test_results_are_reproducible_with_a_seed(home):
    first = run(study="a")
    second = run(study="b")
    columns = ["fold", "trial", "state", "value"]
    pd.testing.assert_frame_equal(first.trials[columns], second.trials[columns])
    assert first.trials["params"].tolist() == second.trials["params"].tolist()


def test_resume_extends_the_budget_and_reruns_nothing(home):
    short = run(n_trials=5)
    executed = len(executions(home.count))
    longer = run(n_trials=9)
    assert (longer.folds["trials_complete"] == 9).all()
    before = short.trials[["fold", "trial", "value"]]
    after = longer.trials[["fold", "trial", "value"]].merge(before, on=["fold", "trial"])
    np.testing.assert_array_equal(after["value_x"], after["value_y"])
    assert Counter(executions(home.count)).most_common(1)[0][1] == 1
    assert len(executions(home.count)) >= executed
    again = run(n_trials=9)  # nothing left to do
    assert again.trials.equals(longer.trials)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": foldwise.datasets.load_goog().islice(0, 2100)}, "the data changed: stored 2148 dates"),
        ({"metric": "sortino"}, "metric changed: stored 'sharpe', now 'sortino'"),
        ({"space": {"fast": Int(5, 40), "slow": Int(20, 80, step=5)}}, "the space changed"),
        ({"strategy": sma_crossover}, "the strategy changed: stored 'counted_sma'"),
        ({"costs": 5.0}, "the settings changed"),
        ({"splitter": WalkForward(train=500, test=200)}, "the splitter changed"),
    ],
)
def test_resuming_with_something_else_is_refused(home, change, message):
    run(n_trials=3)
    with pytest.raises(StudyMismatchError, match=message) as info:
        run(n_trials=3, **change)
    assert "study='t-v2'" in str(info.value)
    assert "foldwise.delete_study('t'" in str(info.value)


def test_delete_study_starts_over(home):
    run(n_trials=3)
    assert foldwise.delete_study("t") == 7  # the manifest and six folds
    run(n_trials=3, metric="sortino")


def test_constraints_keep_infeasible_sets_out_of_the_backtests_and_the_budget(home):
    result = run(space={"fast": (5, 60), "slow": (20, 70)}, n_trials=10)
    assert all(fast < slow for fast, slow in executions(home.count))
    trials = result.trials
    infeasible = trials[trials["infeasible"].notna()]
    assert len(infeasible) > 0
    assert (infeasible["state"] == "PRUNED").all()
    assert all(p["fast"] >= p["slow"] for p in infeasible["params"])
    assert (result.folds["trials_complete"] == 10).all()
    assert (result.folds["trials_infeasible"] > 0).any()


def test_failing_trials_are_recorded_and_the_study_goes_on(home, caplog):
    space = {"fast": Categorical([6, 7, 8, 9]), "slow": Fixed(40)}
    with caplog.at_level(logging.WARNING, logger="foldwise.optimizer"):
        result = run(strategy=fragile_sma, space=space, n_trials=8, constraints=None,
                     splitter=WalkForward(train=1000, test=500))
    trials = result.trials
    failed = trials[trials["state"] == "FAIL"]
    assert set(p["fast"] for p in failed["params"]) <= {7, 8}
    raised = failed[[p["fast"] == 7 for p in failed["params"]]]
    assert raised["error"].str.startswith("ValueError: fast=7 is not supported").all()
    nan = failed[[p["fast"] == 8 for p in failed["params"]]]
    assert nan["error"].str.startswith("NonFiniteMetric: sharpe is nan").all()
    assert (result.folds["trials_complete"] + result.folds["trials_failed"] == 8).all()
    lines = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(lines) == len(failed)  # one line per failed trial
    assert all("\n" not in line for line in lines)
    storage = open_storage(parse_storage(result.location))
    study = optuna.load_study(study_name="t/fold-00", storage=storage)
    traced = [read_trial(t).record.failure for t in study.trials if t.params.get("fast") == 7]
    assert traced and all(f.kind == "strategy" and "Traceback" in f.traceback for f in traced)


def test_a_fold_where_every_trial_fails_names_the_first_reason(home):
    with pytest.raises(AllTrialsFailedError, match="fold 0: all 4 evaluated trials failed.*"
                                                   "RuntimeError: model file missing for fast="):
        run(strategy=always_broken, n_trials=4)


def test_unknown_parameters_are_refused_before_anything_runs(home):
    with pytest.raises(StrategyParameterError, match="no parameter 'fsat'. Did you mean 'fast'"):
        run(space={"fsat": Int(5, 30), "slow": Int(20, 80)}, constraints=None)
    assert not executions(home.count)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": "sharp"}, "unknown metric 'sharp'. Did you mean 'sharpe'"),
        ({"mode": "grid"}, "mode must be one of"),
        ({"n_trials": 0}, "n_trials must be an integer >= 1"),
        ({"storage": "memory", "n_jobs": 2}, "needs a storage that several processes can open"),
        ({"data": pd.DataFrame()}, "data must be MarketData"),
        ({"cv_aggregate": "max"}, "cv_aggregate must be one of"),
    ],
)
def test_bad_arguments_are_refused(home, overrides, message):
    with pytest.raises(OptimizationError, match=message):
        run(**overrides)


def test_storage_and_cache_live_under_the_foldwise_directory(home):
    run(n_trials=2)
    assert (home.root / "studies.journal").is_file()
    assert (home.root / "cache" / "index.sqlite").is_file()
    assert (home.root / "folds" / "t.json").is_file()


def test_cross_validated_mode_aggregates_and_prunes(home):
    data = noisy_panel()
    result = run(data=data, mode="cv", splitter=PurgedKFold(4), n_trials=16,
                 space={"fast": Int(3, 20), "slow": Int(25, 60)},
                 pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
                 cv_aggregate="mean")
    trials = result.trials
    complete = trials[trials["state"] == "COMPLETE"]
    for row in complete.itertuples(index=False):
        folds = row.cv_folds
        assert len(folds) == 4
        assert row.value == pytest.approx(np.mean([m["sharpe"] for m in folds.values()]))
    pruned = trials[(trials["state"] == "PRUNED") & trials["infeasible"].isna()]
    assert all(len(row) < 4 for row in pruned["cv_folds"])
    best = complete.loc[complete["value"].idxmax(), "params"]
    assert result.best_params == [best]
    assert len(result.folds) == 4


def test_cv_worst_aggregate(home):
    result = run(data=noisy_panel(), mode="cv", splitter=PurgedKFold(3), n_trials=5,
                 space={"fast": Int(3, 20), "slow": Int(25, 60)}, cv_aggregate="worst")
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    for row in complete.itertuples(index=False):
        assert row.value == pytest.approx(min(m["sharpe"] for m in row.cv_folds.values()))


def test_per_fold_strategies_fit_on_the_training_window_only(home):
    data = noisy_panel(700, 2)
    splitter = WalkForward(train=300, test=100)
    result = run(strategy=fitted_threshold, data=data, splitter=splitter, n_trials=4,
                 space={"quantile": Float(0.1, 0.9, step=0.1)}, constraints=None, top_k=2)
    folds = splitter.folds(data)
    # the model saw the momentum values through the last training bar, never the test window
    allowed = {(int(f.train[-1]) + 1 - 20) * 2 for f in folds}
    assert {length for _, length in executions(home.count)} <= allowed
    for record in result.fold_records:
        assert len(record.selected) == 2
        assert all(s.test is not None and "sharpe" in s.test for s in record.selected)


def test_load_result_rebuilds_the_same_tables_without_running_anything(home):
    live = run()
    executed = len(executions(home.count))
    again = load_result("t")
    pd.testing.assert_frame_equal(live.folds, again.folds)
    pd.testing.assert_frame_equal(live.trials.drop(columns=["params", "train", "test"]),
                                  again.trials.drop(columns=["params", "train", "test"]))
    assert len(executions(home.count)) == executed
    assert "fold 0: train 2004-08-19..2006-08-11" in repr(again)
    with pytest.raises(OptimizationError, match="no study named 'nope'"):
        load_result("nope")


def test_progress_bar_counts_the_trials(home, capsys):
    run(n_trials=3, show_progress=True, splitter=WalkForward(train=1000, test=500))
    err = capsys.readouterr().err
    assert "t:" in err and "6/6" in err  # two folds x three trials
