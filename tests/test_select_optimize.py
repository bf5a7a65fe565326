"""select= through the real optimize: a lucky spike against a real ridge, the top-k mean
evaluated on the folds (once, through the cache, re-created from the study), failed
averages, per-fold strategies, the rule stored with the study and changed on resume."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest

import foldwise
from foldwise import BacktestCache, MarketData, strategy
from foldwise.errors import OptimizationError
from foldwise.examples import sma_crossover
from foldwise.optimizer import load_result, optimize
from foldwise.space import Float, Int
from foldwise.splits import WalkForward

from ._optimize_support import COUNT_ENV, counted_sma, executions, fitted_threshold, fragile_sma


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def count(store_dir, tmp_path, monkeypatch):
    path = tmp_path / "executions.txt"
    monkeypatch.setenv(COUNT_ENV, str(path))
    return path


# --- a spike of lucky noise next to a real ridge ----------------------------------------------

N_BARS = 1500
NOISE = 40  # x < 40: a coin per x, no edge; x >= 40: the real signal


def spike_and_ridge_panel(seed: int = 0, beta: float = 0.0018) -> MarketData:
    """One asset whose next return is ``beta * hint`` plus noise: trading ``sign(hint)``
    has a real edge (annual Sharpe about 2.3) in every window."""
    rng = np.random.default_rng(seed)
    hint = rng.normal(size=N_BARS)
    returns = np.zeros(N_BARS)
    returns[1:] = beta * hint[:-1] + 0.01 * rng.normal(size=N_BARS - 1)
    close = 100 * np.cumprod(1 + returns)
    return MarketData({"close": close[:, None], "hint": hint[:, None]},
                      pd.bdate_range("2010-01-01", periods=N_BARS), ["X"])


@strategy(name="spike_or_ridge")
def spike_or_ridge(data, x=0):
    """x >= 40: long or short by the sign of the hint (the broad ridge). x < 40: a fixed
    coin-flip sequence of its own per x, unrelated to the market — whichever of them is
    luckiest on a training window is a narrow in-sample spike."""
    if x >= NOISE:
        return np.sign(data.array("hint"))
    coin = np.random.default_rng(1000 + x).choice([-1.0, 1.0], size=(10_000, 1))
    return coin[: data.n_dates]


def _sharpe(values: np.ndarray) -> float:
    return float(values.mean() / values.std(ddof=1) * math.sqrt(252))


@pytest.mark.slow  # eleven folds of sixty trials, then read under three rules
def test_the_sharpest_peak_fails_out_of_sample_and_the_plateau_holds(store_dir):
    data = spike_and_ridge_panel()
    arguments = dict(strategy=spike_or_ridge, data=data, space={"x": Int(0, 79)},
                     splitter=WalkForward(train=125, test=125), n_trials=60, seed=0,
                     study="spike", top_k=3, show_progress=False, check_lookahead=False)
    best = optimize(**arguments)
    trials = best.trials.copy()
    plateau = optimize(**arguments, select="plateau")  # the same study: no trial runs again
    pd.testing.assert_frame_equal(plateau.trials, trials)
    assert load_result("spike").manifest.select == {"rule": "plateau", "radius": 0.1,
                                                    "prior": 1.0}

    # the structure is known: the ridge trades the real edge, the coins have none
    hint = np.sign(data.array("hint")[:-1, 0])
    realized = np.diff(data.array("close")[:, 0]) / data.array("close")[:-1, 0]
    assert _sharpe(hint * realized) > 1.8

    chosen_best = [p["x"] for p in best.folds["params"]]
    chosen_plateau = [p["x"] for p in plateau.folds["params"]]
    spikes = [k for k, x in enumerate(chosen_best) if x < NOISE]
    assert len(spikes) >= len(chosen_best) // 2  # "best" falls for a lucky coin mostly
    assert sum(x >= NOISE for x in chosen_plateau) >= 0.75 * len(chosen_plateau)
    for k in spikes:  # the spike is the sharper in-sample peak ...
        assert best.folds["is_sharpe"][k] >= plateau.folds["is_sharpe"][k]
        # ... with few good neighbours: its smoothed value is far below its peak
        row = plateau.fold_records[k]
        spike = next(t for t in row.trials if t.params == {"x": chosen_best[k]})
        assert spike.value > row.best.smoothed
    # ... and it fails out of sample where the plateau holds
    assert best.folds["oos_sharpe"][spikes].mean() < 0.5
    assert plateau.folds["oos_sharpe"][spikes].mean() > 1.0
    assert plateau.oos_metrics["sharpe"] > best.oos_metrics["sharpe"] + 1.0
    assert plateau.folds.attrs["select"] == "plateau(radius=0.1, prior=1)"
    assert "is_sharpe_smoothed" in plateau.folds and "neighbours" in plateau.folds
    assert "select=plateau(radius=0.1, prior=1)" in plateau.text_report(overfitting=False)

    averaged = optimize(**arguments, select="top_k_mean")
    assert averaged.oos_metrics["sharpe"] > best.oos_metrics["sharpe"]


# --- top_k_mean: an average no trial evaluated ----------------------------------------------

GOOG = foldwise.datasets.load_goog()
TWO_FAST = {"fast": [10, 30]}


def two_sets(trial):
    """fast 10 or 30, slow 60: two distinct sets whose average (fast 20) no trial tries."""
    return {"fast": trial.suggest_categorical("fast", TWO_FAST["fast"]), "slow": 60}


def _net(params, start, end, rate=2e-4):
    """Net returns of the SMA crossover between two dates, in plain pandas."""
    weights = sma_crossover(GOOG, **params)["GOOG"]
    close = GOOG.frame("close")["GOOG"]
    gross = weights.shift(1).fillna(0.0) * close.pct_change().fillna(0.0)
    return (gross - rate * weights.diff().fillna(weights).abs()).loc[start:end]


def _expected_average(record):
    """The top-2 mean of a fold, written out: the distinct fast values of its two best
    complete trials, averaged (the only other parameter is slow = 60)."""
    complete = sorted((t for t in record.trials if t.state.name == "COMPLETE"),
                      key=lambda t: (-t.value, t.number))
    fasts = list(dict.fromkeys(t.params["fast"] for t in complete))[:2]
    return {"fast": math.floor(sum(fasts) / len(fasts) + 0.5), "slow": 60}


def run_two(**overrides):
    arguments = dict(strategy=counted_sma, data=GOOG, space=two_sets,
                     splitter=WalkForward(train=500, test=250), n_trials=6, seed=1,
                     study="avg", top_k=2, select="top_k_mean", costs=2.0,
                     show_progress=False, check_lookahead=False,
                     cache=BacktestCache(keep_arrays="always"))
    arguments.update(overrides)
    return optimize(**arguments)


def test_the_average_is_evaluated_once_and_traded_out_of_sample(count, store_dir):
    result = run_two()
    ran = executions(count)
    assert ran.count((20, 60)) == 1  # one full-history run serves every fold's average
    assert set(ran) <= {(10, 60), (30, 60), (20, 60)}
    averaged = 0
    for row, record in zip(result.folds.itertuples(index=False), result.fold_records,
                           strict=True):
        expected = _expected_average(record)
        assert row.params == expected == record.best.params
        if expected["fast"] == 20:
            averaged += 1
            assert record.best.trial is None  # no trial evaluated it
            assert len(row.averaged) == 2 and row.select_note is None
        train = _net(expected, record.train_start, record.train_end)
        test = _net(expected, record.test_start, record.test_end)
        assert row.is_sharpe == pytest.approx(_sharpe(train.to_numpy()), rel=1e-9)
        assert row.oos_sharpe == pytest.approx(_sharpe(test.to_numpy()), rel=1e-9)
        # the stitched curve trades the average on the test window (its first bar also
        # pays for switching from the previous fold's set)
        stitched = result.oos_returns.loc[record.test_start:record.test_end]
        np.testing.assert_allclose(stitched.to_numpy()[1:], test.to_numpy()[1:], atol=1e-15)
        assert [s.rank for s in record.selected] == list(range(len(record.selected)))
    assert averaged >= 3
    assert result.folds.attrs["select"] == "top_k_mean(k=2)"
    assert "select=top_k_mean(k=2)" in result.text_report(overfitting=False)
    ranking = result.ranking  # the average is judged out of sample with the others
    assert ((ranking["fast"] == 20) & (ranking["n_folds"] == averaged)).any()

    before = len(executions(count))
    again = run_two()  # nothing to run: not even the averages
    assert len(executions(count)) == before
    pd.testing.assert_frame_equal(again.folds, result.folds)


def test_a_cleared_cache_re_creates_the_average_from_the_study(count, store_dir):
    live = run_two()
    folds, oos = live.folds, live.oos_returns
    cache = BacktestCache(keep_arrays="always")
    key = cache.key(counted_sma, {"fast": 20, "slow": 60}, GOOG, settings=live.manifest.settings)
    cache.clear()  # pinned: the study references the average's run
    assert cache.get(key.digest) is not None
    cache.clear(include_pinned=True)
    again = load_result("avg")
    pd.testing.assert_frame_equal(again.folds, folds)
    pd.testing.assert_series_equal(again.oos_returns, oos)
    assert again.runs_rebuilt >= 2 and executions(count).count((20, 60)) == 2


@pytest.mark.parametrize(("strategy_", "choices", "constraints", "reason"), [
    (counted_sma, [10, 30], "fast != 20", "violates 'fast != 20'"),
    (fragile_sma, [5, 9], None,
     "the strategy raised ValueError: fast=7 is not supported by this broker"),
])
def test_an_average_that_cannot_be_traded_leaves_the_best_set_and_says_why(
        count, store_dir, strategy_, choices, constraints, reason):
    def space(trial):
        return {"fast": trial.suggest_categorical("fast", choices), "slow": 60}

    result = run_two(strategy=strategy_, space=space, constraints=constraints,
                     study=f"bad-{strategy_.name}")
    notes = 0
    for row, record in zip(result.folds.itertuples(index=False), result.fold_records,
                           strict=True):
        complete = [t for t in record.trials if t.state.name == "COMPLETE"]
        best = min(complete, key=lambda t: (-t.value, t.number))
        assert row.params == best.params and record.best.trial == best.number
        if len({t.params["fast"] for t in complete}) == 2:
            notes += 1
            assert reason in row.select_note and "the best in-sample set stands in" in \
                row.select_note
            assert reason in result.text_report(overfitting=False)
        else:
            assert row.select_note is None
    assert notes >= 3


def test_per_fold_strategies_evaluate_what_each_rule_judges(count, store_dir):
    data = foldwise.datasets.load_goog().slice("2008-01-01", None)
    arguments = dict(strategy=fitted_threshold, data=data, space={
        "quantile": Float(0.1, 0.9, step=0.1)}, splitter=WalkForward(train=300, test=150),
        n_trials=6, seed=0, top_k=2, show_progress=False, study="perfold")
    for select in ("plateau", "top_k_mean"):
        result = optimize(**arguments, select=select)
        for record in result.fold_records:
            assert record.selected and all(s.test is not None and "sharpe" in s.test
                                           for s in record.selected)
            if select == "top_k_mean" and record.best.trial is None:
                assert set(record.best.evaluation.runs) == {"train", "test"}
        assert np.isfinite(result.oos_metrics["sharpe"])
        assert load_result("perfold").folds.attrs["select"].startswith(select)


def test_the_rule_is_stored_and_a_resume_may_change_it(count, store_dir):
    arguments = dict(strategy=counted_sma, data=GOOG, space={"fast": Int(5, 30),
                                                            "slow": Int(35, 80, step=5)},
                     splitter=WalkForward(train=500, test=250), n_trials=8, seed=0,
                     study="rules", show_progress=False, check_lookahead=False)
    best = optimize(**arguments)
    assert best.manifest.select == {"rule": "best"} and best.folds.attrs["select"] == "best"
    ran = len(executions(count))
    plateau = optimize(**arguments, select=foldwise.Plateau(radius=0.2, prior=0.5))
    assert len(executions(count)) == ran  # selection reads the trials: nothing runs
    stored = load_result("rules")
    assert stored.manifest.select == {"rule": "plateau", "radius": 0.2, "prior": 0.5}
    pd.testing.assert_frame_equal(stored.folds, plateau.folds)
    assert stored.folds.attrs["select"] == "plateau(radius=0.2, prior=0.5)"
    assert optimize(**arguments, select="best").folds["params"].tolist() == \
        best.folds["params"].tolist()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"select": "robust"}, "unknown select rule 'robust'. The rules are: 'best', 'plateau', "
                           "'top_k_mean'"),
    ({"select": "plateau", "mode": "cv"}, "select='plateau' chooses a parameter set per fold"),
    ({"select": foldwise.TopKMean(k=2), "mode": "cv"}, "use select='best' with mode='cv'"),
])
def test_bad_rules_are_refused_before_anything_runs(count, store_dir, overrides, message):
    with pytest.raises(OptimizationError) as info:
        run_two(**overrides)
    assert message in str(info.value)
    assert executions(count) == []
