"""A BacktestCache whose index is on a real PostgreSQL server: its runs are locked by the
server's advisory locks (not the directory's lock files), a reader creates nothing and
refuses to write, and faults name the database without its password."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from foldwise import BacktestCache, strategy
from foldwise.cache import PostgresIndex
from foldwise.errors import CacheError, CacheReadOnlyError
from tests._cache_support import make_data, trend

from ._postgres import PostgresServer

pytestmark = pytest.mark.cluster

DATA = make_data()
_seen_locks: list[int] = []
_runs: Counter[int] = Counter()
_server: list[PostgresServer] = []


def _advisory_locks() -> int:
    return _server[0].sql("cached", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND granted")[0][0]


@strategy(name="locked_trend", version="1")  # it reads the test server: no fingerprint
def locked_trend(data, lookback=5):
    """trend, noting how many advisory locks the server grants while it runs."""
    _seen_locks.append(_advisory_locks())
    _runs[lookback] += 1
    return trend(data, lookback=lookback)


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    if not _server:
        _server.append(postgres_server)
        postgres_server.create_database("cached")
    return postgres_server.url("cached")


def test_a_miss_runs_under_the_servers_advisory_lock_not_a_lock_file(url, tmp_path):
    cache = BacktestCache(tmp_path, backend=PostgresIndex(url))
    _seen_locks.clear()
    cache.get_or_run(locked_trend, {"lookback": 3}, DATA)
    assert _seen_locks == [1]  # held while the strategy ran
    assert _advisory_locks() == 0  # released once the rows were committed
    assert not (tmp_path / "cache" / "locks").exists()  # no lock file was needed
    cache.close()


def test_simultaneous_misses_of_one_set_run_it_once(url, tmp_path):
    caches = [BacktestCache(tmp_path, backend=PostgresIndex(url)) for _ in range(4)]
    _runs.clear()
    barrier = threading.Barrier(len(caches))
    errors: list[BaseException] = []

    def miss(cache: BacktestCache) -> None:
        try:
            barrier.wait()
            cache.metrics(locked_trend, {"lookback": 7}, DATA, window=(0, 100))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=miss, args=(c,)) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and _runs == {7: 1}
    assert {r.kind for r in caches[0].index.rows(strategy="locked_trend")} == {"full", "slice"}
    for cache in caches:
        cache.close()


def test_a_reader_creates_nothing_and_refuses_to_write(postgres_server: PostgresServer,
                                                       tmp_path):
    url = postgres_server.create_database("reader")
    reader = BacktestCache(tmp_path, backend=PostgresIndex(url, read_only=True))
    assert reader.read_only and reader.stats().runs == 0
    with pytest.raises(CacheReadOnlyError, match="read-only"):
        reader.get_or_run(trend, {"lookback": 3}, DATA)
    assert postgres_server.sql("reader", "SELECT tablename FROM pg_tables "
                                         "WHERE schemaname = 'public'") == []
    writer = BacktestCache(tmp_path, backend=PostgresIndex(url), keep_arrays="always")
    writer.get_or_run(trend, {"lookback": 3}, DATA)
    writer.close()
    again = BacktestCache(tmp_path, backend=PostgresIndex(url, read_only=True))
    assert again.stats().full_runs == 1
    assert again.get_or_run(trend, {"lookback": 3}, DATA) is not None  # a hit: readable


def test_an_unreachable_server_is_a_cache_error_without_the_password(postgres_server):
    url = postgres_server.url("cached").replace("foldwise@", "foldwise:pw-xyz@").replace(
        f":{postgres_server.port}/", ":1/")  # nothing listens on port 1
    with pytest.raises(CacheError, match="cannot connect to the cache index") as caught:
        PostgresIndex(url)
    assert "pw-xyz" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(CacheError, match="not a PostgreSQL URL"):
        PostgresIndex("sqlite:///index.db")
