"""The study is the record; the cache can be rebuilt from it.

A study's runs are pinned against eviction; when they are gone anyway (cleared with
``include_pinned``, damaged, a cache that is read-only or elsewhere), ``load_result``
re-creates them from the study — the strategy re-imported from its stored import path, the
data from the study's content-addressed copy — and the tables are the same numbers.
"""

from __future__ import annotations

import logging

import optuna
import pandas as pd
import pytest

import foldwise
from foldwise import BacktestCache, MarketData
from foldwise.errors import CacheArgumentError, OptimizationError
from foldwise.examples import sma_crossover
from foldwise.optimizer import delete_study, load_result, optimize
from foldwise.space import Int
from foldwise.splits import WalkForward

from ._optimize_support import COUNT_ENV, counted_sma, executions

SPACE = {"fast": Int(5, 30), "slow": Int(35, 80, step=5)}
DATA = foldwise.datasets.load_goog().slice(None, "2009-12-31")


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def study(store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(COUNT_ENV, str(tmp_path / "executions.txt"))
    # Every run keeps its arrays, so a run the cache gives is never run again and any
    # execution counted below is a re-creation (runs kept without arrays, re-computed on
    # demand by design, are tested in test_cache_costs.py).
    return optimize(counted_sma, DATA, SPACE, WalkForward(train=400, test=200), n_trials=8,
                    study="rebuilt", seed=3, show_progress=False, top_k=2,
                    cache=BacktestCache(keep_arrays="always", artifacts="files"))


def _tables(result):
    return {"folds": result.folds, "oos": result.oos_returns, "summary": result.summary(),
            "comparison": result.comparison, "pbo": result.overfitting()["pbo"]}


def _assert_same(again, live):
    pd.testing.assert_frame_equal(again.folds, live["folds"])
    pd.testing.assert_series_equal(again.oos_returns, live["oos"])
    pd.testing.assert_frame_equal(again.summary(), live["summary"])
    pd.testing.assert_frame_equal(again.comparison, live["comparison"])
    assert again.overfitting()["pbo"] == live["pbo"]


def test_clear_and_evict_keep_the_runs_a_study_references(study, tmp_path, caplog):
    cache = BacktestCache()
    pinned = set().union(*cache.pins().values())
    distinct = {tuple(sorted(p.items())) for p in study.trials["params"]}
    assert len(pinned) == len(distinct) + 1  # every distinct set's run, and the benchmark
    with caplog.at_level(logging.WARNING):
        cache.evict(older_than=0)  # the lookahead check's run is no trial's: it may go
        assert cache.clear() == 0
    kept = {row.key for row in cache.index.rows(kind="full")}
    assert pinned <= kept
    assert "stored studies reference" in caplog.text and "include_pinned" in caplog.text
    live = _tables(study)
    before = len(executions(tmp_path / "executions.txt"))
    again = load_result("rebuilt")
    _assert_same(again, live)
    assert again.runs_rebuilt == 0
    assert len(executions(tmp_path / "executions.txt")) == before


def test_a_cleared_cache_is_rebuilt_from_the_study(study, tmp_path):
    live = _tables(study)
    cache = BacktestCache()
    assert cache.clear(include_pinned=True) > 0
    before = len(executions(tmp_path / "executions.txt"))
    again = load_result("rebuilt")
    _assert_same(again, live)
    rebuilt = len(executions(tmp_path / "executions.txt")) - before
    assert again.runs_rebuilt > 0
    assert rebuilt == again.runs_rebuilt - 1  # the benchmark is not a counted strategy
    third = load_result("rebuilt")  # re-created runs were stored back
    _assert_same(third, live)
    assert third.runs_rebuilt == 0


def test_a_rebuilt_study_resumes_to_its_exact_budget(study):
    BacktestCache().clear(include_pinned=True)
    resumed = optimize(counted_sma, DATA, SPACE, WalkForward(train=400, test=200), n_trials=10,
                       study="rebuilt", seed=3, show_progress=False, top_k=2)
    assert resumed.complete
    assert (resumed.folds["trials_complete"] == 10).all()
    resumed.oos_returns  # noqa: B018


def test_a_damaged_run_is_re_created_not_reported(study):
    live = _tables(study)
    cache = BacktestCache()
    for row in cache.index.rows(kind="full"):
        (cache.directory / row.artifact).write_bytes(b"damaged")
    again = load_result("rebuilt")
    _assert_same(again, live)
    assert again.runs_rebuilt > 0


def test_the_data_copy_is_content_addressed(study, store_dir):
    copies = list((store_dir / "data").glob("*.parquet"))
    assert [p.stem for p in copies] == [DATA.content_hash]
    assert MarketData.read_parquet(copies[0], layout="long").content_hash == DATA.content_hash


def test_without_the_data_copy_the_caller_passes_the_data(study, store_dir):
    live = _tables(study)
    BacktestCache().clear(include_pinned=True)
    for path in (store_dir / "data").glob("*.parquet"):
        path.unlink()
    with pytest.raises(OptimizationError, match=r"copy of its data is not there.*data=\.\.\."):
        load_result("rebuilt").oos_returns  # noqa: B018
    other = foldwise.datasets.load_goog()
    with pytest.raises(OptimizationError, match="not the data it ran on"):
        load_result("rebuilt", data=other).oos_returns  # noqa: B018
    _assert_same(load_result("rebuilt", data=DATA), live)


def test_a_strategy_that_cannot_be_imported_is_passed_by_the_caller(store_dir):
    def local_sma(data, fast=10, slow=50):  # defined here: no import path
        return sma_crossover(data, fast=fast, slow=slow)

    result = optimize(local_sma, DATA, SPACE, WalkForward(train=400, test=200), n_trials=4,
                      study="local", seed=1, show_progress=False)
    live = _tables(result)
    BacktestCache().clear(include_pinned=True)
    with pytest.raises(OptimizationError, match="cannot be imported again.*strategy="):
        load_result("local").oos_returns  # noqa: B018

    def changed(data, fast=10, slow=50):
        return -sma_crossover(data, fast=fast, slow=slow)

    with pytest.raises(OptimizationError, match="not the code study 'local' ran"):
        load_result("local", strategy=changed)
    _assert_same(load_result("local", strategy=local_sma), live)


def test_a_changed_strategy_is_not_used_to_re_create_runs(study, monkeypatch):
    BacktestCache().clear(include_pinned=True)
    from tests import _optimize_support

    def other(data, fast=10, slow=50):
        return sma_crossover(data, fast=slow, slow=slow + 1)

    monkeypatch.setattr(_optimize_support, "counted_sma", other)
    with pytest.raises(OptimizationError, match="changed since the study ran"):
        load_result("rebuilt").oos_returns  # noqa: B018


def test_a_read_only_cache_serves_runs_from_memory(study, store_dir, monkeypatch):
    live = _tables(study)
    BacktestCache().clear(include_pinned=True)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(store_dir / "cache" / "artifacts"))

    monkeypatch.setattr(BacktestCache, "get_or_run", refuse)
    again = load_result("rebuilt")
    _assert_same(again, live)
    assert again.runs_rebuilt > 0


def test_deleting_a_study_releases_its_pins(study):
    cache = BacktestCache()
    assert len(cache.pins()) == 1
    delete_study("rebuilt")
    assert cache.pins() == {}
    assert cache.clear() > 0


def test_evict_arguments_are_checked_before_pins(study):
    with pytest.raises(CacheArgumentError, match="older_than"):
        BacktestCache().evict()
