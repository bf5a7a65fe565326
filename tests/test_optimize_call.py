"""One call of ``optimize``: arguments checked before anything runs, each resource opened
once, the caller's cache used as given. Regression tests, named after the defects."""

from __future__ import annotations

import optuna
import pytest
from sklearn.model_selection import TimeSeriesSplit

import foldwise
from foldwise import BacktestCache, BacktestSettings, Costs
from foldwise.cache import MemoryIndex
from foldwise.errors import (
    LookaheadError,
    OptimizationError,
    SearchSpaceError,
    StudyMismatchError,
)
from foldwise.examples import sma_crossover
from foldwise.optimizer import _run
from foldwise.optimizer._lookahead import CUTOFFS
from foldwise.space import Int
from foldwise.splits import WalkForward

from ._optimize_support import COUNT_ENV, counted_sma, executions

SPACE = {"fast": Int(5, 30), "slow": Int(40, 120)}


@pytest.fixture(scope="module")
def data():
    return foldwise.datasets.load_goog().islice(0, 700)


def run(data, **overrides):
    arguments = {"strategy": sma_crossover, "data": data, "space": SPACE,
                 "splitter": WalkForward(train=300, test=100), "constraints": "fast < slow",
                 "n_trials": 3, "study": "call", "seed": 0, "costs": 2.0,
                 "show_progress": False}
    arguments.update(overrides)
    return foldwise.optimize(**arguments)


def test_optimize_uses_the_cache_object_it_is_given(data, store_dir):
    index = MemoryIndex()
    cache = BacktestCache(store_dir / "given", backend=index)
    result = run(data, cache=cache, storage="memory")
    assert len(index.rows()) > 0  # the runs went to the given index ...
    assert not (store_dir / "given" / "cache" / "index.sqlite").exists()  # ... not to SQLite
    assert result.oos_metrics["sharpe"] == result.oos_metrics["sharpe"]  # read through it


def test_a_process_local_cache_is_refused_for_worker_processes(data, store_dir):
    cache = BacktestCache(store_dir, backend=MemoryIndex())
    with pytest.raises(OptimizationError, match="cache that several processes can open"):
        run(data, cache=cache, n_jobs=2)


class CountingWalkForward(WalkForward):
    builds = 0

    def _build(self, *args, **kwargs):
        CountingWalkForward.builds += 1
        return super()._build(*args, **kwargs)


def test_the_folds_are_computed_once_per_call(data, store_dir):
    splitter = CountingWalkForward(train=300, test=100)
    run(data, splitter=splitter)
    assert CountingWalkForward.builds == 1
    run(data, splitter=splitter)  # resumed: the stored folds are checked, not rebuilt twice
    assert CountingWalkForward.builds == 2


def test_the_storage_and_the_cache_are_opened_once_per_call(data, store_dir, monkeypatch):
    opened = []
    real_open = _run.open_storage
    monkeypatch.setattr(_run, "open_storage", lambda spec: opened.append(spec) or real_open(spec))
    caches = []
    real_init = BacktestCache.__init__

    def counting_init(self, *args, **kwargs):
        caches.append(args)
        real_init(self, *args, **kwargs)

    cache = BacktestCache(store_dir)
    monkeypatch.setattr(BacktestCache, "__init__", counting_init)
    run(data, cache=cache)
    assert len(opened) == 1
    assert caches == []  # the given cache, never a new one


def test_a_refused_resume_runs_no_benchmark(data, store_dir, tmp_path):
    run(data)
    fresh = BacktestCache(tmp_path / "fresh")
    with pytest.raises(StudyMismatchError, match="metric changed"):
        run(data, metric="sortino", cache=fresh)
    assert fresh.stats().runs == 0


@pytest.mark.parametrize("splitter", [None, TimeSeriesSplit(n_splits=3)])
def test_a_splitter_that_is_not_foldwise_s_names_the_fix(data, store_dir, splitter):
    with pytest.raises(OptimizationError, match=r"foldwise.WalkForward\(train="):
        run(data, splitter=splitter)


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, True])
def test_a_bad_seed_names_the_fix(data, store_dir, seed):
    with pytest.raises(OptimizationError, match="seed must be None or an integer"):
        run(data, seed=seed)


@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), "10"])
def test_a_bad_timeout_names_the_fix(data, store_dir, timeout):
    with pytest.raises(OptimizationError, match="timeout must be None or a number"):
        run(data, timeout=timeout)


def test_a_constraint_that_raises_is_not_the_strategy_s_failure(data, store_dir):
    def broken_constraint(params):
        raise KeyError("slowest")

    with pytest.raises(SearchSpaceError, match="broken_constraint") as raised:
        run(data, constraints=broken_constraint)
    assert "Fix the strategy" not in str(raised.value)


def test_settings_object_and_keywords_reach_the_backtest(data, store_dir):
    settings = BacktestSettings(costs=Costs(commission_bps=1, slippage_bps=3), delay=1)
    result = run(data, settings=settings, costs=None, delay=None)
    assert result.manifest.settings == settings
    replaced = run(data, settings=settings, costs=None, delay=0, study="other")
    assert replaced.manifest.settings == settings.replace(delay=0)
    assert replaced.oos_result.settings == settings.replace(delay=0)


def test_list_studies_names_the_optimizations_only(data, store_dir):
    run(data, study="one")
    run(data, study="two", mode="cv", splitter=foldwise.PurgedKFold(n_splits=3))
    assert foldwise.list_studies() == ["one", "two"]
    names = optuna.get_all_study_names(storage=_run.open_storage(
        foldwise.storage.parse_storage(None)))
    assert "one/fold-00" in names


# --- lookahead -----------------------------------------------------------------------------


def peeking_sma(data, fast=10, slow=50):
    """An SMA crossover that trades on tomorrow's close: the lookahead check must refuse it."""
    close = data.frame("close")
    return (close.shift(-1) > close.rolling(fast).mean()).astype(float)


def test_a_strategy_that_looks_ahead_is_refused_before_anything_is_stored(data, store_dir):
    with pytest.raises(LookaheadError, match=r"looks ahead: its weight dated \d{4}-\d\d-\d\d "
                                             r"for 'GOOG'"):
        run(data, strategy=peeking_sma, study="peek")
    assert foldwise.list_studies() == []
    unchecked = run(data, strategy=peeking_sma, study="peek", check_lookahead=False)
    assert unchecked.manifest.lookahead_checked is False


def test_the_lookahead_check_of_a_parallel_study_runs_in_its_workers(data, store_dir,
                                                                    monkeypatch):
    from foldwise.optimizer import _lookahead

    asked = []
    real = _lookahead.check_causal

    def spy(*args, **kwargs):
        asked.append(kwargs["n_jobs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(_lookahead, "check_causal", spy)
    messages = []
    for n_jobs in (1, 2):
        with pytest.raises(LookaheadError) as caught:
            run(data, strategy=peeking_sma, study="peek", n_jobs=n_jobs)
        messages.append(str(caught.value))
    assert asked == [1, 2]
    assert messages[0] == messages[1]  # the same verdict, the same first date and asset
    assert foldwise.list_studies() == []


def test_the_lookahead_check_costs_a_few_backtests_once_per_study(data, store_dir, tmp_path,
                                                                 monkeypatch):
    count = tmp_path / "executions.txt"
    monkeypatch.setenv(COUNT_ENV, str(count))
    result = run(data, strategy=counted_sma)
    assert result.manifest.lookahead_checked is True
    ran = executions(count)
    distinct = {(p["fast"], p["slow"]) for p in result.trials["params"]
                if p["fast"] < p["slow"]}
    # the trials' sets, plus at most the probe set and two runs per cut-off
    assert len(ran) <= len(distinct) + 1 + 2 * CUTOFFS
    run(data, strategy=counted_sma)  # resumed, nothing left: no check, no backtest
    assert len(executions(count)) == len(ran)


def test_a_study_stopped_early_says_it_is_incomplete(data, store_dir):
    """Regression: a timeout that left folds short gave a verdict from what ran, with no
    word that the study was incomplete."""
    finished = run(data, n_trials=3)
    assert finished.complete and finished.unfinished == []
    assert finished.summary().set_index("criterion").loc["complete", "passed"]
    stopped = run(data, n_trials=6, timeout=1e-9)  # asks for more, stops at once
    assert not stopped.complete
    assert stopped.unfinished == [r.number for r in stopped.fold_records]
    summary = stopped.summary().set_index("criterion")
    assert not summary.loc["complete", "passed"] and summary.loc["complete", "value"] == 0.0
    assert not stopped.passed()
    assert "INCOMPLETE: fold(s) 0, 1, 2, 3 hold fewer than 6 finished trials" in \
        stopped.text_report(overfitting=False)
    assert "INCOMPLETE" not in finished.text_report(overfitting=False)
