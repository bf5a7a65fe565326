"""BacktestCache: storing, loading, browsing, evicting, verifying."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import pickle
import sqlite3
import threading
import time

import numpy as np
import pytest

import foldwise
from foldwise import BacktestCache, BacktestSettings, Costs, Strategy, cached_backtest
from foldwise.cache import MemoryIndex, SQLiteIndex
from foldwise.errors import (
    CacheArgumentError,
    CacheCorruptedError,
    CacheError,
    CacheMissError,
)
from tests._cache_support import (
    expected_backtest,
    flat_returns,
    make_data,
    object_in_worker,
    run_in_worker,
    trend,
)

DATA = make_data()


@pytest.fixture
def cache(tmp_path):
    # These tests are about stored arrays (artifacts, eviction by bytes, verify), one file
    # per run so that a test can delete or damage one; which runs keep them under the
    # default keep_arrays="auto" is tested in test_cache_costs.py, packs in test_packs.py.
    return BacktestCache(tmp_path / "fw", keep_arrays="always", artifacts="files")


def reopen(cache):
    """A second object on the same directory: an empty process-local memo, like a new process."""
    return BacktestCache(cache.root, keep_arrays=cache.policy.mode,
                         artifacts=cache._store.layout)


# --- storing and loading ------------------------------------------------------------------


@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_a_stored_run_loads_back_equal_to_an_independent_backtest(cache, tz):
    data = make_data(tz=tz)
    params = {"lookback": 7, "gross": 1.5}
    cache.get_or_run(trend, params, data, costs=Costs(commission_bps=2, slippage_bps=3))
    record = reopen(cache).get(cache.key(trend, params, data, costs={"commission_bps": 2, "slippage_bps": 3}))
    assert record is not None
    assert record.kind == "full"
    loaded = record.result
    weights = trend(data, **params)
    expected = expected_backtest(weights, data.array("close"), cost_bps=5)
    for name in ("returns", "gross_returns", "costs", "turnover"):
        np.testing.assert_allclose(getattr(loaded, name).to_numpy(), expected[name],
                                   rtol=0, atol=1e-15)
    np.testing.assert_array_equal(loaded.positions.to_numpy(), weights)
    assert loaded.index.equals(data.index)
    assert str(loaded.index.tz) == str(tz)
    assert list(loaded.positions.columns) == list(data.assets)
    changed = np.argwhere(np.diff(weights, axis=0, prepend=0.0) != 0)
    assert len(loaded.trades) == len(changed) == loaded.n_trades
    np.testing.assert_allclose(loaded.trades["cost"].sum(), expected["costs"].sum(), atol=1e-15)
    assert dict(record.metrics) == pytest.approx(loaded.metrics(), nan_ok=True)
    assert dict(record.params) == params
    assert record.settings["costs"] == {"commission_bps": 2.0, "slippage_bps": 3.0}


def test_a_strategy_returning_its_own_result_round_trips(cache):
    first = cache.get_or_run(flat_returns, {"level": 0.002}, DATA)
    loaded = reopen(cache).get(cache.key(flat_returns, {"level": 0.002}, DATA)).result
    np.testing.assert_array_equal(loaded.returns.to_numpy(), np.full(len(DATA), 0.002))
    assert loaded.positions.shape == (len(DATA), 0)
    assert loaded.n_trades == 0
    assert loaded.metrics() == pytest.approx(first.metrics(), nan_ok=True)


def test_metrics_need_no_artifact_file(cache):
    cache.get_or_run(trend, {}, DATA)
    record = cache.get(cache.key(trend, {}, DATA))
    os.unlink(cache.directory / record._row.artifact)
    fresh = reopen(cache).get(record.key)
    assert dict(fresh.metrics) == pytest.approx(dict(record.metrics), nan_ok=True)
    with pytest.raises(CacheCorruptedError, match="is gone"):
        _ = fresh.result


def test_records_and_loaded_arrays_are_read_only(cache):
    cache.get_or_run(trend, {}, DATA)
    record = reopen(cache).get(cache.key(trend, {}, DATA))
    with pytest.raises(TypeError):
        record.metrics["sharpe"] = 1.0
    with pytest.raises(AttributeError):
        record.kind = "slice"
    with pytest.raises(ValueError, match="read-only"):
        record.result.returns.to_numpy()[0] = 1.0


def test_get_or_run_runs_once(cache):
    calls = []

    def counted(data, lookback=5):
        calls.append(lookback)
        return trend(data, lookback)

    strategy = Strategy(counted)
    first = cache.get_or_run(strategy, {"lookback": 3}, DATA)
    again = cache.get_or_run(strategy, {"lookback": 3}, DATA)
    from_disk = reopen(cache).get_or_run(strategy, {"lookback": 3}, DATA)
    assert calls == [3]
    assert again is first  # the in-process LRU of loaded results
    np.testing.assert_array_equal(from_disk.returns, first.returns)
    cache.get_or_run(strategy, {"lookback": 3}, DATA, delay=1)
    assert calls == [3, 3]
    assert (cache.stats().hits, cache.stats().misses) == (1, 2)


def test_a_damaged_artifact_is_a_logged_miss_in_get_or_run(cache, caplog):
    cache.get_or_run(trend, {}, DATA)
    record = cache.get(cache.key(trend, {}, DATA))
    path = cache.directory / record._row.artifact
    path.write_bytes(path.read_bytes()[:-100])
    other = reopen(cache)
    with caplog.at_level(logging.WARNING, logger="foldwise.cache"):
        result = other.get_or_run(trend, {}, DATA)
    assert "damaged" in caplog.text
    assert record.key in caplog.text
    np.testing.assert_array_equal(result.returns, trend_result().returns)
    assert reopen(cache).get(record.key).result.returns.equals(result.returns)
    assert other.verify().ok


def trend_result(**params):
    return Strategy(trend).run(DATA, params)


def test_put_twice_keeps_the_first_and_one_file(cache):
    key = cache.key(trend, {}, DATA)
    result = trend_result()
    first = cache.put(key, result)
    second = reopen(cache).put(key, result)
    assert second.created == first.created
    assert len(list((cache.directory / "artifacts").rglob("*.parquet"))) == 1
    assert cache.stats().runs == 1


def test_put_checks_its_arguments(cache):
    full = cache.key(trend, {}, DATA)
    window = cache.key(trend, {}, DATA, window=(0, 10))
    result = trend_result()
    with pytest.raises(CacheArgumentError, match="CacheKey"):
        cache.put(full.digest, result)
    with pytest.raises(CacheArgumentError, match="full run"):
        cache.put(full, metrics={"sharpe": 1.0})
    with pytest.raises(CacheArgumentError, match="exactly one"):
        cache.put(window, result.islice(0, 10), metrics={"sharpe": 1.0})
    with pytest.raises(CacheArgumentError, match=r"pass full\.islice"):
        cache.put(window, result)
    with pytest.raises(CacheArgumentError, match="numbers"):
        cache.put(window, metrics={"sharpe": "high"})
    with pytest.raises(CacheArgumentError, match="BacktestResult"):
        cache.put(full, result.returns)


# --- slices -------------------------------------------------------------------------------


FOLDS = [(0, 100), (100, 160), (160, 260)]


def test_fold_metrics_come_from_one_full_run(cache):
    calls = []

    def counted(data, lookback=5):
        calls.append(lookback)
        return trend(data, lookback)

    strategy = Strategy(counted)
    for fold in FOLDS:
        metrics = cache.metrics(strategy, {"lookback": 4}, DATA, window=fold)
        expected = trend_result(lookback=4).islice(*fold).metrics()
        assert dict(metrics) == pytest.approx(expected, nan_ok=True)
    assert calls == [4]
    stats = cache.stats()
    assert (stats.full_runs, stats.slice_runs) == (1, 3)
    other = reopen(cache)
    for fold in FOLDS:
        record = other.get(other.key(strategy, {"lookback": 4}, DATA, window=fold))
        assert record.kind == "slice"
        assert record.parent == other.key(strategy, {"lookback": 4}, DATA).digest
        assert record.result.returns.equals(trend_result(lookback=4).islice(*fold).returns)
    assert calls == [4]


def test_window_metrics_store_a_new_run_and_its_windows_in_one_transaction(cache, monkeypatch):
    batches = []
    insert_many = cache.index.insert_many
    monkeypatch.setattr(cache.index, "insert_many",
                        lambda rows: batches.append([r.kind for r in rows]) or insert_many(rows))
    windows = [FOLDS[0], FOLDS[1], FOLDS[0]]
    metrics = cache.window_metrics(trend, {"lookback": 6}, DATA, windows)
    for window, values in zip(windows, metrics, strict=True):
        assert dict(values) == pytest.approx(trend_result(lookback=6).islice(*window).metrics(),
                                             nan_ok=True)
    assert batches == [["full", "slice", "slice"]] and cache.executed == 1
    # A known run and one new window: one more row, no backtest; all known: no write.
    cache.window_metrics(trend, {"lookback": 6}, DATA, [FOLDS[1], FOLDS[2]])
    cache.window_metrics(trend, {"lookback": 6}, DATA, FOLDS)
    assert batches == [["full", "slice", "slice"], ["slice"]] and cache.executed == 1
    other = reopen(cache)  # a new process reads every window from the index
    assert other.window_metrics(trend, {"lookback": 6}, DATA, FOLDS) == cache.window_metrics(
        trend, {"lookback": 6}, DATA, FOLDS)
    assert other.executed == 0 and other.stats().runs == 4
    with pytest.raises(CacheArgumentError, match="without window"):
        cache.window_metrics(trend, {"lookback": 6}, DATA, [None])


def test_a_failed_artifact_write_stores_no_row_of_the_batch(cache, monkeypatch):
    def broken(key, result, positions=True):
        raise OSError("disk full")

    monkeypatch.setattr(cache._store, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        cache.window_metrics(trend, {"lookback": 3}, DATA, FOLDS)
    assert reopen(cache).stats().runs == 0


def test_slice_metrics_survive_the_eviction_of_their_full_run(cache):
    cache.metrics(trend, {}, DATA, window=(0, 100))
    cache.evict(max_bytes=0)
    record = reopen(cache).get(cache.key(trend, {}, DATA, window=(0, 100)))
    assert record.metrics["sharpe"] == pytest.approx(trend_result().islice(0, 100).metrics()["sharpe"])
    with pytest.raises(CacheMissError, match="no longer in the cache"):
        _ = record.result


def test_full_metrics_through_metrics(cache):
    metrics = cache.metrics(trend, {"lookback": 9}, DATA)
    assert dict(metrics) == pytest.approx(trend_result(lookback=9).metrics(), nan_ok=True)
    assert cache.metrics(trend, {"lookback": 9}, DATA) == metrics


# --- the hot path -------------------------------------------------------------------------


def test_results_in_memory_are_bounded_by_count_and_bytes(tmp_path, monkeypatch):
    cache = BacktestCache(tmp_path / "fw", results_in_memory=3)
    for lookback in range(2, 7):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
    assert len(cache._results) == 3  # the three most recent
    one = cache._results.nbytes / 3
    monkeypatch.setattr("foldwise.cache._results.RESULTS_BYTES", 1.5 * one)
    cache.get_or_run(trend, {"lookback": 7}, DATA)
    assert len(cache._results) == 1 and cache._results.nbytes == pytest.approx(one)
    cache._results.clear()
    assert cache._results.nbytes == 0
    assert cache.get_or_run(trend, {"lookback": 7}, DATA).returns.equals(
        trend_result(lookback=7).returns)  # read back from its artifact


def test_the_record_memo_is_bounded_by_bytes(tmp_path, monkeypatch):
    """The memo of records holds at most MEMO_BYTES of them (estimated), the oldest read
    dropped first, whatever memo_size allows: a 20,000-trial optimization stores some
    40,000 rows, and remembering every one grew the process with each trial."""
    from foldwise.cache import _memo

    cache = BacktestCache(tmp_path / "fw")
    for lookback in range(2, 8):
        cache.metrics(trend, {"lookback": lookback}, DATA, window=(0, 100))
    memo = cache._memo
    assert len(memo._records) == 12  # every full run and window is remembered
    one = memo.nbytes / 12
    monkeypatch.setattr(_memo, "MEMO_BYTES", 4.5 * one)
    cache.metrics(trend, {"lookback": 8}, DATA, window=(0, 100))
    assert len(memo._records) == 4 and memo.nbytes <= 4.5 * one
    newest = cache.key(trend, {"lookback": 8}, DATA, window=(0, 100)).digest
    assert newest in memo._records
    queries = []
    original = cache.index.get
    monkeypatch.setattr(cache.index, "get", lambda key: queries.append(key) or original(key))
    oldest = cache.key(trend, {"lookback": 2}, DATA, window=(0, 100))
    assert cache.get(oldest) is not None and queries == [oldest.digest]  # read again
    memo.forget([oldest.digest])
    memo.clear()
    assert memo.nbytes == 0


def test_a_repeated_hit_does_not_query_the_index(cache, monkeypatch):
    cache.metrics(trend, {}, DATA, window=(0, 100))
    other = reopen(cache)
    queries = []
    original = other.index.get
    monkeypatch.setattr(other.index, "get", lambda key: queries.append(key) or original(key))
    key = other.key(trend, {}, DATA, window=(0, 100))
    for _ in range(50):
        assert other.get(key) is not None
    assert len(queries) == 1


def test_last_used_times_are_written_in_batches(cache, monkeypatch):
    cache.get_or_run(trend, {}, DATA)
    key = cache.key(trend, {}, DATA)
    before = cache.index.get(key.digest).last_used
    writes = []
    original = cache.index.touch
    monkeypatch.setattr(cache.index, "touch", lambda times: writes.append(dict(times)) or original(times))
    for _ in range(100):
        cache.get(key)
    assert writes == []  # within touch_interval: nothing written
    cache.flush()
    assert len(writes) == 1
    assert cache.index.get(key.digest).last_used > before
    eager = BacktestCache(cache.root, touch_interval=0.0)
    monkeypatch.setattr(eager.index, "touch", lambda times: writes.append(dict(times)))
    eager.get(key)
    assert len(writes) == 2


# --- browsing -----------------------------------------------------------------------------


@pytest.fixture
def filled(cache):
    for lookback in (3, 5, 8):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
    cache.get_or_run(trend, {"lookback": 5, "gross": 2}, DATA)  # an int, not 2.0
    cache.get_or_run(flat_returns, {}, DATA)
    cache.metrics(trend, {"lookback": 3}, DATA, window=(0, 100))
    return cache


def test_runs_table(filled):
    runs = filled.runs()
    assert len(runs) == 5
    assert runs.index.name == "key"
    assert {"strategy", "kind", "params_lookback", "params_gross", "params_level", "sharpe",
            "max_drawdown", "data_hash", "fingerprint", "created", "last_used",
            "arrays", "bytes"} <= set(runs.columns)
    assert "window_start" not in runs.columns
    assert set(runs["arrays"]) == {"full"}  # the fixture's cache keeps every array
    assert sorted(runs["params_lookback"].dropna()) == [3, 5, 5, 8]
    assert runs["created"].dt.tz is not None
    assert (filled.runs(kind="all")["kind"] == "slice").sum() == 1
    slices = filled.runs(kind="slice")
    assert slices[["window_start", "window_stop"]].values.tolist() == [[0, 100]]


def test_runs_filters(filled):
    assert len(filled.runs("trend")) == 4
    assert len(filled.runs(trend)) == 4  # by the current code's fingerprint
    assert len(filled.runs("trend", lookback=5)) == 2
    assert len(filled.runs(gross=2)) == 1
    assert len(filled.runs(gross=2.0)) == 0  # type-exact, like keys
    assert len(filled.runs(data=DATA)) == 5
    assert len(filled.runs(data=make_data(seed=1))) == 0
    assert len(filled.runs(data=DATA.content_hash)) == 5
    with pytest.raises(CacheArgumentError, match="no stored run has a parameter 'lookbak'"):
        filled.runs(lookbak=5)
    with pytest.raises(CacheArgumentError, match="kind"):
        filled.runs(kind="everything")


def test_compare_and_best(filled):
    keys = [filled.key(trend, {"lookback": n}, DATA) for n in (8, 3)]
    table = filled.compare(keys)
    assert list(table.index) == [k.digest for k in keys]
    assert list(table["params_lookback"]) == [8, 3]
    with pytest.raises(CacheMissError, match="1 of the keys"):
        filled.compare([keys[0], "0" * 32])
    best = filled.best("trend", "sharpe", top_n=2)
    all_sharpes = filled.runs("trend")["sharpe"].sort_values(ascending=False)
    assert list(best["sharpe"]) == list(all_sharpes.head(2))
    worst = filled.best(trend, "max_drawdown", top_n=1, maximize=False)
    assert worst["max_drawdown"].iloc[0] == filled.runs("trend")["max_drawdown"].min()
    with pytest.raises(CacheArgumentError, match="unknown metric 'sharp'"):
        filled.best("trend", "sharp")
    with pytest.raises(CacheArgumentError, match="unknown metric"):
        filled.best("trend", "params_lookback")


def test_best_puts_nan_last(cache):
    for level in (0.0, 0.001, 0.002):  # a zero return series has no Sharpe ratio
        cache.get_or_run(flat_returns, {"level": level}, DATA)
    best = cache.best("flat_returns", "sortino", top_n=3)
    assert np.isnan(best["sortino"]).all() or np.isnan(best["sortino"].iloc[-1])


def test_stats(filled):
    other = reopen(filled)
    other.get(filled.key(trend, {"lookback": 3}, DATA))
    other.get(filled.key(trend, {"lookback": 4}, DATA))
    stats = other.stats()
    assert (stats.runs, stats.full_runs, stats.slice_runs) == (6, 5, 1)
    assert stats.strategies == {"trend": 5, "flat_returns": 1}
    assert (stats.hits, stats.misses, stats.puts) == (1, 1, 0)
    files = [p for p in filled.directory.rglob("*") if p.is_file()]
    assert stats.bytes_on_disk == sum(p.stat().st_size for p in files)
    assert 0 < stats.artifact_bytes < stats.bytes_on_disk
    assert "6 (5 full, of which 5 keep their arrays, 5 with positions; 1 slices)" in str(stats)


# --- removing -----------------------------------------------------------------------------


def test_evict_least_recently_used_first(cache):
    keys = []
    for lookback in (3, 4, 5):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
        keys.append(cache.key(trend, {"lookback": lookback}, DATA))
        time.sleep(0.01)
    sizes = {k.digest: cache.index.get(k.digest).n_bytes for k in keys}
    time.sleep(0.01)
    cache.get(keys[0])  # now the most recently used
    assert cache.evict(max_bytes=sizes[keys[0].digest] + sizes[keys[2].digest]) == 1
    other = reopen(cache)
    assert [other.get(k) is not None for k in keys] == [True, False, True]
    assert other.verify().orphans == []


def test_evict_older_than(cache):
    cache.get_or_run(trend, {}, DATA)
    assert cache.evict(older_than="1h") == 0
    assert cache.evict(older_than=dt.timedelta(0)) == 1
    assert cache.stats().runs == 0
    assert cache.get(cache.key(trend, {}, DATA)) is None
    with pytest.raises(CacheArgumentError, match="clear"):
        cache.evict()
    with pytest.raises(CacheArgumentError, match="duration"):
        cache.evict(older_than="soon")
    with pytest.raises(CacheArgumentError, match=">= 0"):
        cache.evict(older_than=-5)
    with pytest.raises(CacheArgumentError, match="max_bytes"):
        cache.evict(max_bytes=-1)


def test_clear_keeps_foreign_files(filled):
    foreign = filled.directory / "notes.txt"
    foreign.write_text("mine")
    assert filled.clear() == 6
    assert filled.stats().runs == 0
    assert list((filled.directory / "artifacts").rglob("*.parquet")) == []
    assert foreign.read_text() == "mine"
    assert filled.get_or_run(trend, {}, DATA).returns.equals(trend_result().returns)


# --- verify -------------------------------------------------------------------------------


def test_verify_reports_and_repairs(filled):
    assert filled.verify().ok
    assert str(filled.verify()).startswith("checked 6 entries: all intact")
    rows = [filled.index.get(k.digest) for k in
            (filled.key(trend, {"lookback": n}, DATA) for n in (3, 5, 8))]
    (filled.directory / rows[0].artifact).unlink()
    truncated = filled.directory / rows[1].artifact
    truncated.write_bytes(truncated.read_bytes()[:50])
    orphan = filled.directory / "artifacts" / "ab" / ("ab" + "0" * 30 + "-00000000.parquet")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"PAR1")
    temporary = filled.directory / "artifacts" / ".x.parquet.123.tmp"
    temporary.write_bytes(b"half")
    foreign = filled.directory / "artifacts" / "model.pkl"
    foreign.write_bytes(b"not opened")
    report = filled.verify()
    assert not report.ok
    assert report.missing == [rows[0].key]
    assert [key for key, _ in report.corrupted] == [rows[1].key]
    assert report.orphans == [orphan.relative_to(filled.directory).as_posix()]
    assert report.temporary == ["artifacts/.x.parquet.123.tmp"]
    assert report.foreign == ["artifacts/model.pkl"]
    kept = filled.verify(repair=True)  # leftovers younger than the grace period stay
    assert kept.repaired
    assert orphan.exists()
    assert temporary.exists()
    filled.verify(repair=True, grace=0)
    after = filled.verify()
    assert after.missing == after.corrupted == after.orphans == after.temporary == []
    assert after.foreign == ["artifacts/model.pkl"]
    assert foreign.exists()
    assert filled.stats().runs == 4


def test_a_row_naming_a_file_outside_the_artifacts_is_corrupted(cache, tmp_path):
    cache.get_or_run(trend, {}, DATA)
    row = cache.index.get(cache.key(trend, {}, DATA).digest)
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    bad = BacktestCache(cache.root, backend=MemoryIndex())
    bad.index.insert(dataclasses.replace(row, artifact="../../secret.txt"))
    with pytest.raises(CacheCorruptedError, match="not a file name foldwise writes"):
        _ = bad.get(row.key).result
    assert [k for k, _ in bad.verify().corrupted] == [row.key]


# --- sharing --------------------------------------------------------------------------------


def test_threads_share_one_cache(cache):
    expected = {n: trend_result(lookback=n).islice(*FOLDS[n % 3]).metrics() for n in range(2, 8)}
    errors = []
    barrier = threading.Barrier(8)

    def work(seed):
        try:
            barrier.wait()
            rng = np.random.default_rng(seed)
            for n in rng.integers(2, 8, size=30):
                n = int(n)
                got = cache.metrics(trend, {"lookback": n}, DATA, window=FOLDS[n % 3])
                assert dict(got) == pytest.approx(expected[n], nan_ok=True)
                result = cache.get_or_run(trend, {"lookback": n}, DATA)
                assert len(result) == len(DATA)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = cache.stats()
    assert (stats.full_runs, stats.slice_runs) == (6, 6)
    assert stats.hits + stats.misses >= 8 * 30 * 2
    assert cache.verify().ok
    assert cache.verify().orphans == []


def test_a_cache_copies_as_its_location(cache):
    cache.get_or_run(trend, {}, DATA)
    clone = copy.deepcopy(cache)
    assert clone.root == cache.root
    assert clone.get(cache.key(trend, {}, DATA)) is not None
    with pytest.raises(CacheError, match="one process"):
        copy.deepcopy(BacktestCache(cache.root, backend=MemoryIndex()))


def test_shareable_says_whether_other_processes_can_open_the_cache(tmp_path):
    assert BacktestCache(tmp_path).shareable
    assert BacktestCache(tmp_path, backend=SQLiteIndex(tmp_path / "other.sqlite")).shareable
    assert not BacktestCache(tmp_path, backend=MemoryIndex()).shareable


def test_a_pickled_cache_carries_its_location_and_index_kind_not_its_state(tmp_path):
    index = SQLiteIndex(tmp_path / "elsewhere" / "custom.sqlite")
    cache = BacktestCache(tmp_path / "fw", backend=index, memo_size=7, results_in_memory=2,
                          touch_interval=5.0)
    cache.get_or_run(trend, {}, DATA)  # fills the memo and the results memory
    clone = pickle.loads(pickle.dumps(cache))
    assert (clone.root, clone.index.path, clone.touch_interval) == (cache.root, index.path, 5.0)
    assert (clone._memo.size, clone._results.size) == (7, 2)
    assert len(clone._results) == 0 and clone.stats().hits == 0  # nothing in memory came along
    assert clone.get(cache.key(trend, {}, DATA)) is not None
    assert not (tmp_path / "fw" / "cache" / "index.sqlite").exists()


def test_unpickling_a_process_local_cache_names_the_fix(tmp_path):
    payload = pickle.dumps(BacktestCache(tmp_path, backend=MemoryIndex()))  # sending works
    with pytest.raises(CacheError, match=r"one process.*BacktestCache\(path\)"):
        pickle.loads(payload)  # a worker's copy would write elsewhere: refused


def _as_if_sent_from_another_process(cache: BacktestCache) -> tuple:
    func, args = cache.__reduce__()
    _, name = args[3].split(":", 1)
    return func, (*args[:3], f"{os.getpid() + 1}:{name}")


def test_copies_of_one_cache_are_one_object_in_another_process(tmp_path):
    """Every copy of one cache that reaches another process (each task of an optimization
    sent to a worker) is the same object there, so its records, kept results and array
    evidence serve every task. Copies of two caches are kept side by side; a third
    releases the least recently sent (its memory at once). In the sending process a copy
    is a new object."""
    from foldwise.cache import _cache

    cache = BacktestCache(tmp_path)
    payload = pickle.dumps(cache)
    assert pickle.loads(payload) is not pickle.loads(payload)
    func, args = _as_if_sent_from_another_process(cache)
    try:
        first = func(*args)
        assert func(*args) is first
        first.get_or_run(trend, {}, DATA)
        assert len(first._results) == 1 and first.executed == 1
        func, other = _as_if_sent_from_another_process(BacktestCache(tmp_path))
        second = func(*other)
        assert second is not first and second.executed == 0
        second.get_or_run(trend, {}, DATA)
        assert func(*args) is first and len(first._results) == 1  # two are kept
        func, third = _as_if_sent_from_another_process(BacktestCache(tmp_path))
        func(*third)  # releases the least recently sent: the second
        assert len(second._results) == 0 and len(second._memo._records) == 0
        assert func(*args) is first and len(first._results) == 1
        func(*_as_if_sent_from_another_process(BacktestCache(tmp_path))[1])
        func(*_as_if_sent_from_another_process(BacktestCache(tmp_path))[1])
        assert len(first._results) == 0 and len(first._memo._records) == 0  # released
        assert first.get(cache.key(trend, {}, DATA)) is not None  # and still usable
        assert func(*args) is not first
    finally:
        _cache._reopened.clear()


@pytest.mark.slow
def test_tasks_sent_to_one_worker_share_one_cache_object(tmp_path):
    joblib = pytest.importorskip("joblib")
    cache = BacktestCache(tmp_path)
    seen = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(object_in_worker)(cache, lookback) for lookback in range(3, 11))
    by_pid: dict[int, list[tuple[int, int]]] = {}
    for pid, identity, executed in seen:
        by_pid.setdefault(pid, []).append((identity, executed))
    assert os.getpid() not in by_pid
    for tasks in by_pid.values():
        assert len({identity for identity, _ in tasks}) == 1
        assert sorted(executed for _, executed in tasks) == list(range(1, len(tasks) + 1))


@pytest.mark.slow
def test_joblib_workers_write_into_the_callers_cache(tmp_path):
    """The cache object itself goes to loky workers (fresh interpreters) and they write
    into the caller's index, wherever it is, not into a default one of their own."""
    joblib = pytest.importorskip("joblib")
    index = SQLiteIndex(tmp_path / "elsewhere" / "custom.sqlite")
    cache = BacktestCache(tmp_path / "fw", backend=index)
    pids = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(run_in_worker)(cache, lookback) for lookback in (3, 4, 5, 6))
    assert os.getpid() not in pids
    for lookback in (3, 4, 5, 6):
        record = cache.get(cache.key(trend, {"lookback": lookback}, DATA))
        assert record is not None and record.kind == "full"
    assert cache.executed == 0
    assert not (tmp_path / "fw" / "cache" / "index.sqlite").exists()


def test_a_memory_index_cache_works(tmp_path):
    cache = BacktestCache(tmp_path, backend=MemoryIndex())
    cache.metrics(trend, {}, DATA, window=(0, 50))
    assert cache.stats().runs == 2
    assert cache.verify().ok
    assert not (tmp_path / "cache" / "index.sqlite").exists()


# --- location -------------------------------------------------------------------------------


def test_default_location_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("FOLDWISE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert BacktestCache().directory == tmp_path / ".foldwise" / "cache"
    monkeypatch.setenv("FOLDWISE_DIR", str(tmp_path / "shared"))
    assert BacktestCache().directory == tmp_path / "shared" / "cache"
    assert BacktestCache(tmp_path / "explicit").directory == tmp_path / "explicit" / "cache"


def test_an_index_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "index.sqlite").write_bytes(b"\x80\x04not sqlite at all" * 100)
    with pytest.raises(CacheCorruptedError, match="not a usable cache index"):
        BacktestCache(tmp_path)


def test_an_index_from_a_newer_version_is_refused(cache):
    connection = cache.index._connection()
    connection.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(CacheError, match="schema version 99"):
        BacktestCache(cache.root)


def test_an_index_written_with_secondary_indexes_drops_them_and_keeps_its_rows(cache):
    # Files written before kept two secondary indexes that every insert paid for.
    stored = [cache.put(cache.key(trend, {"lookback": n}, DATA),
                        Strategy(trend).run(DATA, {"lookback": n})).key for n in (3, 4)]
    other = BacktestCache(cache.root / "other")
    other.put(other.key(flat_returns, {}, DATA), Strategy(flat_returns).run(DATA, {}))
    connection = cache.index._connection()
    connection.execute("CREATE INDEX runs_strategy ON runs (strategy, kind)")
    connection.execute("CREATE INDEX runs_last_used ON runs (last_used)")
    cache.close()

    def indexes(path):
        with sqlite3.connect(path) as db:
            return {name for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}

    assert indexes(cache.index.path) == {"runs_strategy", "runs_last_used"}
    reopened = reopen(cache)
    assert indexes(cache.index.path) == set()
    assert [row.key for row in reopened.index.rows(kind="full")] == stored
    strategy = reopened.get(stored[0]).strategy
    assert [row.key for row in reopened.index.rows(strategy=strategy)] == stored
    assert reopened.verify().ok
    assert indexes(other.index.path) == set()  # a new file never had them


# --- the decorator --------------------------------------------------------------------------


def test_cached_backtest_decorator(cache):
    calls = []

    @cached_backtest(cache=cache, costs=2)
    def momentum(data, lookback=5):
        calls.append(lookback)
        return trend(data, lookback)

    first = momentum(DATA, lookback=6)
    again = momentum(DATA, lookback=6)
    assert calls == [6]
    assert again is first
    assert first.settings.costs.commission_bps == 2.0
    plain = Strategy(momentum.func).run(DATA, {"lookback": 6}, costs=2)
    np.testing.assert_array_equal(first.returns, plain.returns)
    calls.clear()
    # the same entry as the undecorated strategy with the same settings
    assert cache.get(cache.key(momentum.uncached, {"lookback": 6}, DATA, costs=2)) is not None
    assert momentum.name == "momentum"
    assert momentum.parameters == {"lookback": 5}
    # used as a strategy by another cache, it runs its undecorated self on a miss
    other = BacktestCache(cache.root.parent / "other")
    other.get_or_run(momentum, {"lookback": 6}, DATA)
    assert calls == [6]
    assert cache.stats().runs == 1
    with pytest.raises(CacheArgumentError, match="unknown setting"):
        cached_backtest(cost=2)


def test_cached_backtest_takes_one_settings_object(cache):
    @cached_backtest(cache=cache, settings=BacktestSettings(costs=2), delay=1)
    def momentum(data, lookback=5):
        return trend(data, lookback)

    assert momentum.settings == BacktestSettings(costs=2, delay=1)
    result = momentum(DATA)
    assert result.settings == momentum.settings
    assert cache.get(cache.key(momentum.uncached, {}, DATA, settings=momentum.settings))
    assert momentum.run(DATA, {}, momentum.settings) is result
    assert momentum.run(DATA, {}, costs=2, delay=1) is result
    with pytest.raises(CacheArgumentError, match="delay"):
        cached_backtest(delay=-1)  # refused when decorating, not at the first call


def test_cached_backtest_uses_the_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLDWISE_DIR", str(tmp_path))

    @foldwise.cached_backtest
    def always_long(data):
        return np.ones(data.shape) / data.n_assets

    always_long(DATA)
    assert always_long.cache.directory == tmp_path / "cache"
    assert always_long.cache.stats().runs == 1


def test_index_rows_hold_json_only(filled):
    for row in filled.index.rows(kind=None):
        json.loads(row.params), json.loads(row.settings), json.loads(row.metrics)


def test_an_entry_replaced_by_another_process_is_reloaded_not_dropped(cache, caplog):
    cache.get_or_run(trend, {}, DATA)
    key = cache.key(trend, {}, DATA)
    old = cache.get(key)._row.artifact  # remembered by this process
    other = reopen(cache)
    other.evict(older_than=0)
    other.get_or_run(trend, {}, DATA)  # stored again, under a new file name
    new = other.index.get(key.digest).artifact
    assert new != old
    cache._results.clear()  # as if the loaded result had left the in-memory LRU
    with caplog.at_level(logging.WARNING, logger="foldwise.cache"):
        result = cache.get_or_run(trend, {}, DATA)
    assert caplog.text == ""
    assert result.returns.equals(trend_result().returns)
    assert cache.index.get(key.digest).artifact == new


def test_flushing_last_used_times_inside_a_write_does_not_wait_for_itself(tmp_path):
    """Regression: a cache collected by the garbage collector while the same thread was
    inserting into the index flushed its last-used times and waited forever for the
    writing turn that thread held."""
    import threading

    from foldwise.cache._sqlite import WRITE_LOCK_SUFFIX, SQLiteIndex, _writer_turn

    first = SQLiteIndex(tmp_path / "index.sqlite")
    second = SQLiteIndex(tmp_path / "index.sqlite")
    finished = threading.Event()

    def nested() -> None:
        with _writer_turn(f"{first.path}{WRITE_LOCK_SUFFIX}"):  # inside a write of `first`
            second.touch({"some-key": 1.0})                   # a finalizer of another cache
        finished.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert finished.is_set()


def test_verify_decodes_every_index_row(filled):
    """Regression: a flipped byte in a row's metrics JSON passed verify and surfaced later as
    a bare JSONDecodeError inside a trial."""
    key = filled.key(trend, {"lookback": 8}, DATA).digest
    with sqlite3.connect(filled.directory / "index.sqlite") as connection:
        connection.execute("UPDATE runs SET metrics = substr(metrics, 2) WHERE key = ?", (key,))
    fresh = BacktestCache(filled.root)
    report = fresh.verify()
    assert not report.ok
    assert [k for k, _ in report.corrupted] == [key]
    assert "metrics are not readable JSON" in report.corrupted[0][1]
    fresh.verify(repair=True)
    assert fresh.verify().ok
    assert fresh.get_or_run(trend, {"lookback": 8}, DATA).returns.equals(
        trend_result(lookback=8).returns)


def test_verify_reports_a_damaged_index_file(cache):
    for lookback in range(2, 60):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
    cache.index.close()
    path = cache.directory / "index.sqlite"
    raw = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(raw) - page, 3 * page):  # scramble b-tree pages
        raw[start + 8: start + 200] = bytes(range(192))
    path.write_bytes(bytes(raw))
    assert BacktestCache(cache.root).verify().index_problems


class _CountingIndex(MemoryIndex):
    """A memory index that lists the reads it serves."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key):
        self.reads.append("get")
        return super().get(key)

    def get_many(self, keys):
        self.reads.append("get_many")
        return super().get_many(keys)


def test_a_new_set_reads_the_index_once_before_its_run_lock_and_once_under_it(tmp_path):
    """A missed set's windows and full run are looked up in one query (they were three),
    and the full run once more under the run lock (another process may have stored it)."""
    index = _CountingIndex()
    cache = BacktestCache(tmp_path, backend=index)
    windows = [(0, 50), (50, 100)]
    first = cache.window_metrics(trend, {"lookback": 7}, DATA, windows, names=["sharpe"])
    assert index.reads == ["get_many", "get"]
    assert cache.stats().misses == 3 and cache.executed == 1
    index.reads.clear()
    again = cache.window_metrics(trend, {"lookback": 7}, DATA, windows, names=["sharpe"])
    assert again == first and index.reads == []  # remembered: no query
    assert cache.stats().hits == 2
    other = BacktestCache(tmp_path, backend=index)  # a new object: one query for all three
    index.reads.clear()
    assert other.window_metrics(trend, {"lookback": 7}, DATA, windows, names=["sharpe"]) == first
    assert index.reads == ["get_many"] and other.stats().hits == 3 and other.executed == 0
