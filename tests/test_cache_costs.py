"""Runs keep their arrays only where running them again costs more (keep_arrays).

Whatever the policy, a run's metrics and curves are the same whether its arrays were kept
and read back or re-computed; a run without arrays is a hit for its metrics and is run
again only when its arrays are asked for.
"""

from __future__ import annotations

import json
import logging
import pickle
import time

import numpy as np
import optuna
import pandas as pd
import pytest

import foldwise
from foldwise import BacktestCache
from foldwise.cache._costs import (
    AHEAD_AFTER,
    AHEAD_PRIOR_RUNS,
    AHEAD_RATE,
    POSITION_READS,
    ArrayPolicy,
)
from foldwise.errors import ArraysNotKeptError, CacheArgumentError, CacheCorruptedError
from foldwise.examples import sma_crossover
from foldwise.optimizer import load_result, optimize
from foldwise.space import Int
from foldwise.splits import WalkForward
from tests._cache_support import flat_returns, make_data, trend

DATA = make_data()


def _same_run(a: foldwise.BacktestResult, b: foldwise.BacktestResult) -> None:
    assert a.metrics() == b.metrics()
    for name in ("net", "gross", "costs", "turnover", "positions"):
        np.testing.assert_array_equal(getattr(a.arrays, name), getattr(b.arrays, name))
    # the dates; an index frequency is not stored with a run's arrays
    pd.testing.assert_index_equal(a.index, b.index, check_freq=False)


# --- the rule ------------------------------------------------------------------------------


def _measured_policy() -> ArrayPolicy:
    """A policy that measured 1 ns a byte to write and to read."""
    policy = ArrayPolicy("auto")
    assert policy.keep("s", 1e-6, 10**6, 0) == "full"  # no store measured yet
    policy.wrote(seconds=5.0, n_bytes=10**6)  # the first write (imports ...) is not counted
    for _ in range(2):
        assert policy.keep("s", 1e-6, 10**6, 0) == "full"  # three writes first
        policy.wrote(seconds=1e-3, n_bytes=10**6)
    policy.read(seconds=1e-3, n_bytes=10**6)
    return policy


def test_the_policy_keeps_what_costs_more_to_run_than_to_store():
    policy = _measured_policy()

    def keep(name, run_seconds, returns_bytes=10**6, positions_bytes=0, whole=True):
        return policy.keep(name, run_seconds, returns_bytes, positions_bytes, whole)

    # storing and reading 1 MB back costs 2 ms: a 0.1 ms run is cheaper to repeat ...
    assert keep("fast", 1e-4) == "none"
    # ... a 50 ms run is not
    assert keep("slow", 0.05) == "full"
    # a run that costs about what its store costs is not kept: only clearly dearer ones
    assert keep("even", 2.2e-3) == "none"
    assert keep("dearer", 2.6e-3) == "full"
    # the median of a strategy's runs decides, not one outlier
    for _ in range(5):
        keep("fast", 1e-4)
    assert keep("fast", 0.5) == "none"


def test_positions_are_kept_as_often_as_they_are_expected_to_be_read():
    """0.1 MB of returns form and 1 MB of positions, at 1 ns a byte each way: the returns
    form costs 0.25 ms with the margin, the positions 2.5 ms read once and 1.275 ms read
    POSITION_READS (1/50) times."""
    policy = _measured_policy()
    assert POSITION_READS == 0.02

    def keep(name, run_seconds, whole):
        return policy.keep(name, run_seconds, 10**5, 10**6, whole)

    assert keep("fast", 2e-4, whole=True) == keep("fast", 2e-4, whole=False) == "none"
    # a 5 ms run: its returns form pays; its positions only when its whole result is
    # what was asked for (read once), not for a run executed for its metrics
    assert keep("mid", 5e-3, whole=True) == "full"
    assert keep("mid", 5e-3, whole=False) == "returns"
    # a run whose fiftieth part costs more than writing its positions keeps them anyway
    assert keep("slow", 0.07, whole=False) == "full"
    assert keep("slowish", 0.06, whole=False) == "returns"
    # a run without positions (a result from returns) keeps what it has
    assert policy.keep("no positions", 5e-3, 10**5, 0, False) == "full"


@pytest.mark.parametrize(("mode", "kept"),
                         [("always", "full"), ("returns", "returns"), ("never", "none")])
def test_fixed_policies_ignore_the_measurements(mode, kept):
    policy = ArrayPolicy(mode)
    policy.wrote(1.0, 1)
    for whole in (True, False):
        assert policy.keep("s", 100.0, 1, 1, whole) == kept
        assert policy.keep("s", 0.0, 10**9, 10**9, whole) == kept


def test_an_unknown_policy_names_the_valid_ones(tmp_path):
    with pytest.raises(CacheArgumentError, match="'auto', 'always', 'returns', 'never'"):
        BacktestCache(tmp_path, keep_arrays="sometimes")  # type: ignore[arg-type]


# --- the cache -----------------------------------------------------------------------------


def test_a_run_without_arrays_is_a_hit_for_its_metrics_and_re_computed_for_its_arrays(tmp_path):
    lean = BacktestCache(tmp_path / "lean", keep_arrays="never")
    kept = BacktestCache(tmp_path / "kept", keep_arrays="always")
    params = {"lookback": 4}
    for cache in (lean, kept):
        cache.get_or_run(trend, params, DATA, costs=2.0)
        cache.metrics(trend, params, DATA, window=(50, 200), costs=2.0)
        cache.close()
    assert (lean.stats().with_arrays, kept.stats().with_arrays) == (0, 1)
    assert lean.stats().artifact_bytes == 0 < kept.stats().artifact_bytes

    # new objects on the same directories: nothing in memory, like a new process
    lean, kept = (BacktestCache(c.root) for c in (lean, kept))
    record = lean.get(lean.key(trend, params, DATA, costs=2.0))
    assert record is not None and record.metrics["sharpe"] == pytest.approx(
        trend_run(params).metrics()["sharpe"], abs=0)
    with pytest.raises(ArraysNotKeptError, match="get_or_run"):
        _ = record.result
    window = lean.get(lean.key(trend, params, DATA, window=(50, 200), costs=2.0))
    assert window is not None
    assert window.metrics == kept.get(kept.key(trend, params, DATA, window=(50, 200),
                                               costs=2.0)).metrics
    with pytest.raises(ArraysNotKeptError):
        _ = window.result

    again = lean.get_or_run(trend, params, DATA, costs=2.0)
    assert (lean.executed, lean.recomputed) == (0, 1)  # run again, not a miss
    stored = kept.get_or_run(trend, params, DATA, costs=2.0)  # read from its artifact
    assert kept.executed == kept.recomputed == 0
    _same_run(again, stored)
    _same_run(again, trend_run(params))
    assert lean.get_or_run(trend, params, DATA, costs=2.0) is again  # now in memory
    assert lean.recomputed == 1
    # a new window of it is cut from the re-computed run, not run again
    assert lean.metrics(trend, params, DATA, window=(200, 250), costs=2.0) == \
        kept.metrics(trend, params, DATA, window=(200, 250), costs=2.0)
    assert (lean.executed, lean.recomputed) == (0, 1)
    assert "1 re-computed" in str(lean.stats())


def trend_run(params):
    return foldwise.strategy(trend).run(DATA, params, foldwise.BacktestSettings(costs=2.0))


def test_auto_keeps_the_arrays_of_slow_strategies_only(tmp_path):
    @foldwise.strategy(name="slow_trend")
    def slow_trend(data, lookback=5):
        time.sleep(0.03)
        return trend(data, lookback)

    cache = BacktestCache(tmp_path)  # keep_arrays="auto" by default
    for lookback in range(2, 8):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
        cache.get_or_run(slow_trend, {"lookback": lookback}, DATA)
    rows = cache.index.rows(kind="full")
    kept = {(row.strategy, row.artifact is not None) for row in rows}
    # the first runs are kept to measure the store; a sub-millisecond run is cheaper to
    # repeat than to write and read back, a 30 ms one is not
    assert sum(1 for row in rows if row.strategy == "trend" and row.artifact) <= 3
    assert ("slow_trend", False) not in kept


def test_the_policy_crosses_to_worker_processes(tmp_path):
    cache = BacktestCache(tmp_path, keep_arrays="never")
    assert pickle.loads(pickle.dumps(cache)).policy.mode == "never"


# --- a study -------------------------------------------------------------------------------


def _small_study(root, mode, **options):
    """A small walk-forward study of the SMA crossover on GOOG, its cache keeping
    ``mode``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = foldwise.datasets.load_goog().slice(None, "2009-12-31")
    return optimize(sma_crossover, data, {"fast": Int(5, 30), "slow": Int(35, 80)},
                    WalkForward(train=400, test=200), n_trials=8, seed=3, top_k=2,
                    storage=f"journal:{root}/s.journal",
                    cache=BacktestCache(root, keep_arrays=mode), show_progress=False,
                    **options)


def test_a_study_reads_the_same_whether_its_runs_kept_their_arrays(tmp_path, caplog):
    tables = {}
    for mode in ("always", "never"):
        root = tmp_path / mode
        result = _small_study(root, mode)
        with caplog.at_level(logging.WARNING, logger="foldwise"):
            again = load_result(result.name, storage=f"journal:{root}/s.journal",
                                cache=BacktestCache(root, keep_arrays=mode))
            tables[mode] = (again.folds, again.oos_returns, again.summary(),
                            again.overfitting(), again.trials.drop(columns=["backtests", "datetime_start", "datetime_complete"]))
        assert again.runs_rebuilt == 0  # nothing missing: re-computing is not rebuilding
        assert "missing" not in caplog.text
        assert BacktestCache(root).stats().with_arrays == (0 if mode == "never" else
                                                            BacktestCache(root).stats().full_runs)
    kept, lean = tables["always"], tables["never"]
    pd.testing.assert_frame_equal(kept[0], lean[0])
    pd.testing.assert_series_equal(kept[1], lean[1])
    pd.testing.assert_frame_equal(kept[2], lean[2])
    assert kept[3] == lean[3]
    pd.testing.assert_frame_equal(kept[4], lean[4])


# --- the metrics a caller needs --------------------------------------------------------------


def test_entries_stored_with_some_metrics_give_the_others_from_their_run(tmp_path):
    lean = BacktestCache(tmp_path / "lean", keep_arrays="never")
    full = BacktestCache(tmp_path / "full")
    params, windows = {"lookback": 3}, [(0, 120), (120, 260)]
    some = lean.window_metrics(trend, params, DATA, windows, names=("sortino", "sharpe"))
    assert [set(m) for m in some] == [{"sortino", "sharpe"}] * 2  # only what was asked
    rows = lean.index.rows(kind="slice")
    assert {tuple(sorted(json.loads(row.metrics))) for row in rows} == {("sharpe", "sortino")}
    every = full.window_metrics(trend, params, DATA, windows)
    assert [m["sortino"] for m in some] == [m["sortino"] for m in every]
    # a new object (nothing in memory): the stored entries lack most metrics, which are
    # computed from the run (re-computed here), equal to those of a cache that stored all
    again = BacktestCache(lean.root)
    assert [dict(m) for m in again.window_metrics(trend, params, DATA, windows)] == \
        [dict(m) for m in every]
    assert again.recomputed == 1 and again.executed == 0
    assert dict(again.metrics(trend, params, DATA)) == dict(full.metrics(trend, params, DATA))
    with pytest.raises(KeyError, match="Did you mean 'sharpe'"):
        again.window_metrics(trend, params, DATA, windows, names=["sharp"])


# --- windows stored ahead ----------------------------------------------------------------------


def test_store_ahead_on_the_prior_until_there_is_evidence():
    """A new run stores ahead on the prior (AHEAD_RATE returns per run) while the process
    has no evidence, for at most AHEAD_PRIOR_RUNS runs; then the strategy's own rate of
    returns decides."""
    policy = ArrayPolicy("auto")
    policy.keep("s", run_seconds=0.01, returns_bytes=10, positions_bytes=0)
    assert not policy.store_ahead("s", n_rows=8)  # no row timed yet: nothing to weigh
    policy.inserted(seconds=50e-6 * 10, n_rows=10)  # 50 us a row
    assert AHEAD_RATE * 0.01 > 8 * 50e-6 > AHEAD_RATE * 100e-6
    assert policy.store_ahead("s", n_rows=8)  # 10 ms runs: the prior pays
    assert not policy.store_ahead("s", n_rows=1000)  # ... not for 1,000 rows
    policy.keep("cheap", run_seconds=100e-6, returns_bytes=10, positions_bytes=0)
    assert not policy.store_ahead("cheap", n_rows=8)  # 0.1 ms runs: the rows cost more
    for _ in range(AHEAD_PRIOR_RUNS):
        policy.keep("s", run_seconds=0.01, returns_bytes=10, positions_bytes=0)
        policy.store_ahead("s", n_rows=8)
    policy.keep("s", run_seconds=0.01, returns_bytes=10, positions_bytes=0)
    assert not policy.store_ahead("s", n_rows=8)  # the prior's runs are spent: evidence


def test_store_ahead_with_evidence_follows_the_strategys_returns():
    policy = ArrayPolicy("auto")
    policy.inserted(seconds=50e-6 * 10, n_rows=10)  # 50 us a row
    for _ in range(AHEAD_AFTER - 1):
        policy.keep("s", run_seconds=0.01, returns_bytes=10, positions_bytes=0)
        policy.produced_again("s")
        policy.store_ahead("s", n_rows=10_000)  # too many rows for the prior: evidence
    policy.keep("s", run_seconds=0.01, returns_bytes=10, positions_bytes=0)
    assert policy.store_ahead("s", n_rows=8)  # returns once per run, 10 ms a run
    assert policy.store_ahead("s", n_rows=10_000)  # decided: kept for the process
    # a strategy whose runs rarely come back, or cost less than the rows, does not
    for name, again in (("rare", 2), ("cheap", AHEAD_AFTER)):
        for _ in range(AHEAD_AFTER):
            policy.keep(name, run_seconds=0.01 if name == "rare" else 100e-6, returns_bytes=10, positions_bytes=0)
            policy.store_ahead(name, n_rows=10_000)
        for _ in range(again):
            policy.produced_again(name)
        assert not policy.store_ahead(name, n_rows=8)
    assert AHEAD_RATE * 0.01 > 8 * 50e-6  # ("rare" is refused for its rate alone)
    # a run produced again stores them when one more return costs more than the rows
    assert policy.store_ahead("rare", n_rows=8, again=True)  # 10 ms > 8 x 50 us
    assert not policy.store_ahead("cheap", n_rows=8, again=True)  # 0.1 ms < 0.4 ms
    assert not ArrayPolicy("auto").store_ahead("new", n_rows=1, again=True)  # no row timed


def test_windows_stored_ahead_equal_the_windows_cut_later(tmp_path, monkeypatch):
    """A run produced again for a window stores the windows asked for ahead (when the
    policy says it pays: here, always); a later request for one of them is a lookup with
    the metrics of the window cut from the run."""

    def cache(name):  # a new object each time: nothing of the run kept in memory
        return BacktestCache(tmp_path / name, keep_arrays="never")

    params = {"lookback": 4}
    later = [(140, 200), (200, 260)]
    for name in ("lean", "plain"):
        cache(name).window_metrics(trend, params, DATA, [(20, 80)], costs=2.0,
                                   names=["sharpe"])
    # the run comes back for another window: run again, and (lean) the later windows
    # stored with it
    lean, plain = cache("lean"), cache("plain")
    monkeypatch.setattr(lean.policy, "store_ahead", lambda strategy, n_rows, again=False: True)
    lean.window_metrics(trend, params, DATA, [(80, 140)], costs=2.0, names=["sharpe"],
                        ahead=later)
    plain.window_metrics(trend, params, DATA, [(80, 140)], costs=2.0, names=["sharpe"])
    assert lean.recomputed == plain.recomputed == 1
    lean, plain = cache("lean"), cache("plain")
    got = lean.window_metrics(trend, params, DATA, later, costs=2.0, names=["sharpe"])
    assert lean.recomputed == lean.executed == 0  # lookups only
    cut = plain.window_metrics(trend, params, DATA, later, costs=2.0, names=["sharpe"])
    assert plain.recomputed == 1
    assert got == cut
    full = trend_run(params)
    for (lo, hi), metrics in zip(later, got, strict=True):
        assert metrics["sharpe"] == full.islice(lo, hi).metrics()["sharpe"]


def test_a_study_stores_its_later_windows_ahead_with_the_same_results(tmp_path, monkeypatch):
    """Optimizing with windows stored ahead runs fewer backtests and gives the very same
    study as without (the metrics of a window are those of the same run)."""
    from foldwise.cache import _costs
    from foldwise.optimizer import _objective, _run

    monkeypatch.setattr(_costs, "AHEAD_AFTER", 5)

    class NoAhead(_objective.Evaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ahead = []

    @foldwise.strategy(name="slowish_trend")
    def slowish_trend(data, lookback=5):
        time.sleep(0.002)
        return trend(data, lookback)

    def run(directory, ahead):
        with monkeypatch.context() as patched:
            if not ahead:
                patched.setattr(_run, "Evaluator", NoAhead)
            cache = BacktestCache(directory, keep_arrays="never", results_in_memory=0)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            result = optimize(slowish_trend, DATA, {"lookback": Int(2, 12)},
                              WalkForward(train=100, test=40), n_trials=25, seed=2,
                              study="ahead", storage="memory", cache=cache,
                              show_progress=False)
        return result, cache.executed + cache.recomputed

    with_ahead, runs_ahead = run(tmp_path / "a", True)
    without, runs_without = run(tmp_path / "b", False)
    assert runs_ahead < runs_without
    columns = ["fold", "trial", "state", "value", "params", "train", "test"]
    pd.testing.assert_frame_equal(with_ahead.trials[columns], without.trials[columns])
    served = [c for c in with_ahead.folds if c in ("cache_hits", "backtests")]
    assert served  # what differs: trials served by the cache
    assert (with_ahead.folds["cache_hits"] >= without.folds["cache_hits"]).all()
    pd.testing.assert_frame_equal(with_ahead.folds.drop(columns=served),
                                  without.folds.drop(columns=served))


# --- the returns form ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["packs", "files"])
def test_a_run_in_returns_form_serves_windows_and_returns_without_running(tmp_path, layout):
    """A run stored in returns form gives the metrics of any window (trades included) and
    its net returns equal to those of the full run, without running it; its whole result
    is run again."""
    params, windows = {"lookback": 4}, [(30, 90), (90, 200), (200, 260)]
    lean = BacktestCache(tmp_path / "lean", keep_arrays="returns", artifacts=layout)
    lean.metrics(trend, params, DATA, costs=3.0)
    full = trend_run_with(params, costs=3.0)
    stats = lean.stats()
    assert (stats.with_arrays, stats.with_positions) == (1, 0)
    record = lean.get(lean.key(trend, params, DATA, costs=3.0))
    assert record is not None and record.arrays == "returns"
    # an artifact a tenth of the whole one (3 assets here: about half)
    whole = BacktestCache(tmp_path / "whole", keep_arrays="always", artifacts=layout)
    whole.metrics(trend, params, DATA, costs=3.0)
    assert whole.get(whole.key(trend, params, DATA, costs=3.0)).arrays == "full"
    assert record.n_bytes < whole.stats().artifact_bytes

    again = BacktestCache(lean.root)  # nothing in memory, as in a new process
    got = again.window_metrics(trend, params, DATA, windows, costs=3.0)
    assert again.executed == again.recomputed == 0  # read, not run
    for (lo, hi), metrics in zip(windows, got, strict=True):
        expected = full.islice(lo, hi).metrics()
        assert dict(metrics) == expected
        assert metrics["n_trades"] == np.count_nonzero(full.arrays.changes[lo:hi]) > 0
    stored = again.get(again.key(trend, params, DATA, costs=3.0))
    form = stored.run_returns()
    for name in ("net", "gross", "costs", "turnover"):
        np.testing.assert_array_equal(getattr(form, name), getattr(full.arrays, name))
    np.testing.assert_array_equal(form.trades, np.count_nonzero(full.arrays.changes, axis=1))
    pd.testing.assert_index_equal(form.index, full.index, check_freq=False)
    assert not form.net.flags.writeable
    window = again.get(again.key(trend, params, DATA, window=windows[1], costs=3.0))
    np.testing.assert_array_equal(window.run_returns().net, full.arrays.net[90:200])
    pd.testing.assert_index_equal(window.run_returns().index, full.index[90:200],
                                  check_freq=False)
    with pytest.raises(ArraysNotKeptError, match="without its positions"):
        _ = stored.result
    rerun = again.get_or_run(trend, params, DATA, costs=3.0)
    assert (again.executed, again.recomputed) == (0, 1)
    _same_run(rerun, full)
    assert again.verify().ok


def trend_run_with(params, **settings):
    return foldwise.strategy(trend).run(DATA, params, foldwise.BacktestSettings(**settings))


def test_the_returns_form_of_a_result_without_positions_counts_no_trades(tmp_path):
    cache = BacktestCache(tmp_path, keep_arrays="returns")
    cache.metrics(flat_returns, {"level": 0.002}, DATA)
    again = BacktestCache(tmp_path)
    got = again.metrics(flat_returns, {"level": 0.002}, DATA, window=(10, 50))
    pd.testing.assert_series_equal(pd.Series(dict(got)),  # NaN where the spread is zero
                                   pd.Series(flat_returns(DATA, 0.002).islice(10, 50).metrics()))
    assert got["n_trades"] == 0
    assert again.executed == again.recomputed == 0


def test_runs_executed_for_their_metrics_are_told_apart_from_whole_results(tmp_path,
                                                                           monkeypatch):
    cache = BacktestCache(tmp_path)
    asked = []
    real = cache.policy.keep

    def keep(strategy, run_seconds, returns_bytes, positions_bytes, whole_asked=True):
        asked.append(whole_asked)
        assert returns_bytes == 6 * 8 * DATA.n_dates
        assert positions_bytes == 8 * DATA.n_dates * DATA.n_assets
        return real(strategy, run_seconds, returns_bytes, positions_bytes, whole_asked)

    monkeypatch.setattr(cache.policy, "keep", keep)
    cache.window_metrics(trend, {"lookback": 2}, DATA, [(0, 100)])
    cache.metrics(trend, {"lookback": 3}, DATA)
    cache.get_or_run(trend, {"lookback": 4}, DATA)
    cache.run_returns(trend, {"lookback": 5}, DATA)
    assert asked == [False, False, True, False]


def test_the_returns_form_cut_at_scattered_bars_equals_the_full_runs(tmp_path):
    """run_returns(...).take(rows) (a purged training set) gives the metrics of the full
    result's same bars, whether the run was just executed, read back in returns form or
    read back whole."""
    rows = np.r_[10:60, 75:140, 150:151, 200:260]
    params = {"lookback": 6}
    expected = trend_run_with(params, costs=2.0).take(rows).metrics()
    for mode in ("returns", "always"):
        first = BacktestCache(tmp_path / mode, keep_arrays=mode)
        assert first.run_returns(trend, params, DATA, costs=2.0).take(rows).metrics() == \
            expected
        again = BacktestCache(first.root)  # nothing in memory
        form = again.run_returns(trend, params, DATA, costs=2.0)
        assert form.take(rows).metrics() == expected
        assert form.take(rows).metrics(["n_trades", "sharpe"]) == {
            "n_trades": expected["n_trades"], "sharpe": expected["sharpe"]}
        assert again.executed == again.recomputed == 0


def test_a_study_of_returns_form_runs_reads_the_same_as_one_that_kept_everything(tmp_path):
    """The report of a study whose runs kept their returns form only (the stitched curve
    runs the chosen sets again for their positions) equals that of a study that kept
    every array, with nothing rebuilt and the statistics read, not run."""
    tables = {}
    for mode in ("always", "returns"):
        root = tmp_path / mode
        result = _small_study(root, mode, keep_statistics=False)
        cache = BacktestCache(root, keep_arrays=mode)
        again = load_result(result.name, storage=f"journal:{root}/s.journal", cache=cache)
        tables[mode] = (again.folds, again.oos_returns, again.overfitting())
        assert again.runs_rebuilt == 0
        n_chosen = len(set(again.folds["params"].astype(str)))
        # PBO read every set's returns form; only the chosen sets ran again, for positions
        assert (0 < cache.recomputed <= n_chosen) if mode == "returns" else \
            cache.recomputed == 0
        stats = BacktestCache(root).stats()
        assert stats.with_arrays == stats.full_runs
        assert stats.with_positions == (stats.full_runs if mode == "always" else 0)
    kept, lean = tables["always"], tables["returns"]
    pd.testing.assert_frame_equal(kept[0], lean[0])
    pd.testing.assert_series_equal(kept[1], lean[1])
    assert kept[2] == lean[2]


@pytest.mark.parametrize("layout", ["packs", "files"])
def test_an_artifacts_name_tells_its_form_and_must_agree_with_its_bytes(tmp_path, layout):
    from foldwise.cache._artifacts import ArtifactLocation, ArtifactStore, holds_positions

    store = ArtifactStore(ArtifactLocation.resolve(None, tmp_path), layout)
    result = trend_run_with({"lookback": 3})
    whole = store.write("ab" * 16, result)
    lean = store.write("ab" * 16, result, positions=False)
    assert holds_positions(whole[0]) and not holds_positions(lean[0])
    assert lean[0].endswith("+returns" if layout == "packs" else ".returns.parquet")
    assert lean[2] < whole[2]
    _same_run(store.load(*whole), result)
    np.testing.assert_array_equal(store.load_returns(*lean).net, result.arrays.net)
    np.testing.assert_array_equal(store.load_returns(*whole).trades,
                                  store.load_returns(*lean).trades)
    with pytest.raises(CacheArgumentError, match="returns form"):
        store.load(*lean)
    # the bytes of one form under the name of the other: refused, though the checksum fits
    if layout == "packs":
        swapped = (lean[0].removesuffix("+returns"), *lean[1:])
    else:
        moved = lean[0].replace(".returns.parquet", ".parquet")
        (tmp_path / moved).write_bytes((tmp_path / lean[0]).read_bytes())
        swapped = (moved, *lean[1:])
    with pytest.raises(CacheCorruptedError, match="disagree"):
        store.load_returns(*swapped)
    # both forms are the cache's own files
    scan = store.scan(set())
    assert not scan.foreign and len(scan.artifacts) == (1 if layout == "packs" else 3)


def test_a_cache_run_loader_reads_the_returns_form_and_names_what_is_missing(tmp_path):
    from foldwise.aggregate import CacheRunLoader
    from foldwise.errors import OptimizationError

    params = {"lookback": 4}
    BacktestCache(tmp_path, keep_arrays="returns").metrics(trend, params, DATA)
    cache = BacktestCache(tmp_path)
    key = cache.key(trend, params, DATA).digest
    loader = CacheRunLoader(cache, "study")
    full = trend_run_with(params)
    np.testing.assert_array_equal(loader.returns(key).net, full.arrays.net)
    assert loader.returns(key).take(np.r_[5:40, 90:120]).metrics() == \
        full.take(np.r_[5:40, 90:120]).metrics()
    [net] = loader.net_returns([key])
    np.testing.assert_array_equal(net, full.arrays.net)
    assert cache.executed == cache.recomputed == 0
    with pytest.raises(ArraysNotKeptError, match="positions"):
        loader.load(key)  # this loader never runs a backtest
    with pytest.raises(OptimizationError, match="not in the cache"):
        loader.returns("0" * 32)
