"""The backtest cache: every backtest stored under a content key, never run twice.

A key covers the strategy's code (and the user code it calls), the canonical parameters,
every byte of the data and the settings that change a result, so a hit is never stale.
Entries are full runs (metrics plus artifact arrays in Parquet) or metrics-only slices of
a full run (a fold's train or test window). The index is SQLite by default and sits behind
:class:`IndexBackend`, so another database can hold it: :class:`PostgresIndex` keeps it on
a PostgreSQL server that every host of a cluster reaches (the artifacts then live in a
directory they share).

Nothing is pickled: artifacts are Parquet, the index is SQLite, parameters and metrics are
JSON. Writes are atomic and ordered (file, then index row), so a process killed at any
instant leaves a readable cache.

>>> import tempfile
>>> from foldwise import BacktestCache, datasets, examples
>>> cache = BacktestCache(tempfile.mkdtemp())
>>> data = datasets.load_goog()
>>> _ = cache.get_or_run(examples.sma_crossover, {"fast": 20, "slow": 100}, data)
>>> list(cache.runs()[["params_fast", "params_slow"]].itertuples(index=False, name=None))
[(20, 100)]
"""

from __future__ import annotations

from foldwise.cache._cache import (
    CACHE_DIR,
    BacktestCache,
    CacheRecord,
    CacheStats,
    VerifyReport,
    set_aside_index,
)
from foldwise.cache._decorator import CachedStrategy, cached_backtest
from foldwise.cache._index import IndexBackend, IndexRow, MemoryIndex, RunLock
from foldwise.cache._keys import CacheKey, Window
from foldwise.cache._maintenance import parse_seconds
from foldwise.cache._postgres import PostgresIndex
from foldwise.cache._returns import RunReturns
from foldwise.cache._sqlite import SQLiteIndex

__all__ = [
    "CACHE_DIR",
    "BacktestCache",
    "CacheKey",
    "CacheRecord",
    "CacheStats",
    "CachedStrategy",
    "IndexBackend",
    "IndexRow",
    "MemoryIndex",
    "PostgresIndex",
    "RunLock",
    "RunReturns",
    "SQLiteIndex",
    "VerifyReport",
    "Window",
    "cached_backtest",
    "parse_seconds",
    "set_aside_index",
]
