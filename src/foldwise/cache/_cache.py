"""``BacktestCache``: every backtest stored under a content key, and browsable.

How a lookup works (the optimizer's hot path):

1. :meth:`BacktestCache.key` hashes the strategy fingerprint, canonical parameters, data
   hash, settings and (for a slice) the window — memoized per process, see
   :mod:`foldwise.cache._keys`.
2. :meth:`BacktestCache.get` looks the digest up in a process-local memo of records; only
   the first lookup of a key in a process runs one indexed query on the index. Records are
   immutable and keys content-addressed, so the memo can never be stale.
3. A record's metrics are in the index row; its :attr:`CacheRecord.result` reads the
   artifact file only when asked, and a small in-process LRU keeps the last few loaded
   results so folds cut from one full run do not read it again.
4. The last-used time of a hit is kept in memory and written in one batch at most every
   ``touch_interval`` seconds (and on :meth:`~BacktestCache.flush`, eviction, close and
   exit), so hits never wait for a write.

Writes follow one order: artifact file complete and renamed into place, then the index
row inserted (first writer wins), so the index never names a missing or half-written
file. A new run and the windows the optimizer cut from it (:meth:`BacktestCache.window_metrics`)
go into the index in one transaction. Deletions go the other way: row first, then file.

Damage policy: a metrics lookup never opens a file, so a damaged artifact cannot affect
it. Loading the artifact of a damaged entry raises :class:`CacheCorruptedError` naming the
file and the fix; :meth:`BacktestCache.get_or_run` instead logs a warning, drops the entry
and runs the backtest again (a miss). Foreign files are never opened; :meth:`verify`
reports them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from foldwise._paths import resolve_root
from foldwise.backtest import BacktestResult, Costs
from foldwise.cache._artifacts import ArtifactStore
from foldwise.cache._browse import runs_frame, select_rows
from foldwise.cache._index import WRITE_LOCK_SUFFIX, IndexBackend, IndexRow, SQLiteIndex
from foldwise.cache._keys import CacheKey, Window, make_key, resolve_strategy
from foldwise.cache._maintenance import (
    directory_bytes,
    eviction_victims,
    inspect,
    sweep,
)
from foldwise.cache._records import (
    CacheRecord,
    CacheStats,
    VerifyReport,
    metrics_json,
)
from foldwise.data import MarketData
from foldwise.errors import (
    CacheArgumentError,
    CacheCorruptedError,
    CacheMissError,
)
from foldwise.metrics import DEFAULT_PERIODS_PER_YEAR, METRICS

__all__ = ["BacktestCache", "CacheRecord", "CacheStats", "VerifyReport"]

logger = logging.getLogger(__name__)

#: Name of the subdirectory of the foldwise directory that holds the cache.
CACHE_DIR = "cache"
#: File name of the SQLite index inside the cache directory.
INDEX_NAME = "index.sqlite"
_INDEX_FILES = frozenset(INDEX_NAME + suffix for suffix in ("", "-wal", "-shm", "-journal",
                                                           WRITE_LOCK_SUFFIX))
#: Backtests of one key by several processes are serialized through one of these lock
#: files (``flock``: the kernel releases it when a process dies), so a parameter set that
#: two workers miss at the same moment is still run once. Keys share 256 stripes.
_LOCK_FILES = frozenset(f"locks/{i:02x}.lock" for i in range(256))
_KNOWN_FILES = _INDEX_FILES | _LOCK_FILES
#: Bytes of arrays the in-memory results of one cache object may hold (the most recent
#: result is kept whatever its size).
RESULTS_BYTES = 256 * 2**20

#: What is stored for one key: a full run's result, or a slice's result or metrics.
_Entry = tuple[CacheKey, BacktestResult | None, Mapping[str, float] | None]


def _acquire_run_lock(directory: Path, digest: str) -> int | None:
    """Take the lock stripe of ``digest``; return the descriptor that holds it (None where
    ``fcntl`` is missing). Closing the descriptor releases the lock."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    path = directory / "locks" / f"{digest[:2]}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the first lock of this cache directory
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _write_last_used(index: IndexBackend, batch: dict[str, float]) -> None:
    if not batch:
        return
    try:
        index.touch(batch)
    except Exception as exc:  # last-used times only steer eviction; never fail for them
        logger.warning("could not record last-used times in the cache index: %s", exc)


def _reopen(root: str, backend: IndexBackend | None, options: dict[str, Any]) -> BacktestCache:
    return BacktestCache(root, backend=backend, **options)


# --- the cache ---------------------------------------------------------------------------


class BacktestCache:
    """Content-addressed store of backtests: never stale, crash-safe, shared by processes.

    Parameters
    ----------
    path
        The foldwise directory; the cache lives in its ``cache/`` subdirectory. Default:
        ``$FOLDWISE_DIR`` if set, else ``./.foldwise`` (see :mod:`foldwise._paths`).
    backend
        Where the index rows live; default a :class:`~foldwise.cache.SQLiteIndex` at
        ``<path>/cache/index.sqlite``. Any :class:`~foldwise.cache.IndexBackend` works.
    memo_size
        Records kept in the process-local memo (hits on them never query the index).
    results_in_memory
        Loaded full results kept in memory (least recently used dropped first), within
        :data:`RESULTS_BYTES` of arrays. Folds of one optimization cut their windows from
        the same recent runs, which then need no reading.
    touch_interval
        Seconds between batched writes of last-used times.

    Notes
    -----
    One object is safe to use from several threads. Several processes (and forked
    children) can share one directory on one host; each opens its own connections. The
    object pickles as its location, so it can be handed to joblib workers.

    A damaged entry (artifact file missing, truncated or replaced) never affects its
    metrics, which live in the index. Loading its arrays raises
    :class:`~foldwise.errors.CacheCorruptedError`; :meth:`get_or_run` and :meth:`metrics`
    log a warning and run the backtest again instead. :meth:`verify` lists damage and
    foreign files, and never opens anything it did not write.

    Examples
    --------
    >>> import tempfile
    >>> from foldwise import BacktestCache, datasets, examples
    >>> cache = BacktestCache(tempfile.mkdtemp())
    >>> data = datasets.load_goog()
    >>> result = cache.get_or_run(examples.sma_crossover, {"fast": 10, "slow": 50}, data)
    >>> record = cache.get(cache.key(examples.sma_crossover, {"slow": 50, "fast": 10}, data))
    >>> record.metrics["sharpe"] == result.metrics()["sharpe"]
    True
    >>> cache.stats().runs
    1
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 backend: IndexBackend | None = None, memo_size: int = 100_000,
                 results_in_memory: int = 256, touch_interval: float = 30.0) -> None:
        self.root = resolve_root(path)
        self.directory = self.root / CACHE_DIR
        self._custom_backend = backend is not None
        self.index = backend if backend is not None else SQLiteIndex(self.directory / INDEX_NAME)
        self._store = ArtifactStore(self.directory)
        self._memo_size = int(memo_size)
        self._results_size = int(results_in_memory)
        self.touch_interval = float(touch_interval)
        self._lock = threading.Lock()
        self._records: dict[str, CacheRecord] = {}
        # Loaded or new full results, least recently used first, with their sizes.
        self._results: OrderedDict[str, tuple[BacktestResult, int]] = OrderedDict()
        self._results_bytes = 0
        self._touched: dict[str, float] = {}
        self._last_flush = time.time()
        self._hits = self._misses = self._puts = 0
        self._executed = 0
        # At exit or collection, write what hits are still pending (no other user is left).
        self._finalizer = weakref.finalize(
            self, lambda index, pending: _write_last_used(index, dict(pending)), self.index,
            self._touched)
        _live.add(self)

    def __reduce__(self) -> Any:
        options = {"memo_size": self._memo_size, "results_in_memory": self._results_size,
                   "touch_interval": self.touch_interval}
        return (_reopen, (str(self.root), self.index if self._custom_backend else None, options))

    def __repr__(self) -> str:
        return f"BacktestCache({str(self.root)!r}, index={self.index.describe()})"

    def __enter__(self) -> BacktestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    # --- keys and lookups --------------------------------------------------------------

    def key(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData, *,
            window: Window | slice | tuple[int, int] | None = None,
            costs: Costs | Mapping[str, float] | float | None = None, delay: int = 0,
            price_field: str = "close", missing: str = "zero",
            periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> CacheKey:
        """The key of a run (``window=None``) or of a slice of one.

        Parameters
        ----------
        strategy
            A :class:`~foldwise.Strategy` or a plain function ``f(data, **params)``.
        params
            Parameters; the strategy's defaults are filled in, order does not matter, types
            do (``5``, ``5.0`` and ``"5"`` are three keys).
        data
            The market data (its content hash is computed once per object).
        window
            ``(start, stop)`` bar positions of a slice entry (e.g. a fold's train range).
        costs, delay, price_field, missing, periods_per_year
            The backtest settings (see :func:`foldwise.backtest`).

        Raises
        ------
        ParameterError
            A parameter with no canonical form, named in the message.
        """
        return make_key(strategy, params, data, window=window, costs=costs, delay=delay,
                        price_field=price_field, missing=missing,
                        periods_per_year=periods_per_year)

    def get(self, key: CacheKey | str) -> CacheRecord | None:
        """The record stored under ``key`` (a :class:`CacheKey` or its digest), or None.

        After the first lookup of a key in this process this is a dict lookup; its metrics
        never touch an artifact file.
        """
        return self._lookup(key if key.__class__ is str else _digest(key), count=True)

    def _lookup(self, digest: str, count: bool = False) -> CacheRecord | None:
        now = time.time()
        with self._lock:
            record = self._records.get(digest)
            if record is not None:
                self._touched[digest] = now
                self._hits += count
                if now - self._last_flush < self.touch_interval:
                    return record
        if record is None:
            row = self.index.get(digest)
            if row is None:
                with self._lock:
                    self._misses += count
                return None
            record = self._remember(row)
            with self._lock:
                self._touched[digest] = now
                self._hits += count
                if now - self._last_flush < self.touch_interval:
                    return record
        self.flush()
        return record

    def _remember(self, row: IndexRow) -> CacheRecord:
        record = CacheRecord(row, self)
        with self._lock:
            self._records[row.key] = record
            if len(self._records) > self._memo_size:  # the oldest read goes first
                del self._records[next(iter(self._records))]
        return record

    def flush(self) -> None:
        """Write the last-used times of recent hits to the index now."""
        with self._lock:
            self._last_flush = time.time()
            batch = dict(self._touched)
            self._touched.clear()  # in place: the finalizer holds this dict
        _write_last_used(self.index, batch)

    def close(self) -> None:
        """Flush last-used times and release this process's index connections.

        The object stays usable (it reconnects on the next call).
        """
        self.flush()
        self.index.close()

    # --- storing -----------------------------------------------------------------------

    def put(self, key: CacheKey, result: BacktestResult | None = None, *,
            metrics: Mapping[str, float] | None = None,
            _lock_fd: int | None = None) -> CacheRecord:
        """Store a run under ``key``; return its record. Storing a key twice is a no-op.

        Parameters
        ----------
        key
            From :meth:`key`. Without a window, a full run: ``result`` is required and its
            arrays are written to an artifact file. With a window, a metrics-only slice
            entry: pass ``metrics`` or the sliced ``result`` (only its metrics are kept;
            the arrays are rebuilt from the full run when asked).
        result
            The backtest of exactly what ``key`` describes. Its arrays are made read-only.
        metrics
            For a slice entry: ``{name: number}``.

        Examples
        --------
        >>> import tempfile
        >>> from foldwise import BacktestCache, datasets, examples
        >>> cache, data = BacktestCache(tempfile.mkdtemp()), datasets.load_goog()
        >>> full = examples.sma_crossover.run(data, {"fast": 5})
        >>> _ = cache.put(cache.key(examples.sma_crossover, {"fast": 5}, data), full)
        >>> train = cache.key(examples.sma_crossover, {"fast": 5}, data, window=(0, 500))
        >>> record = cache.put(train, full.islice(0, 500))
        >>> record.kind, record.window.first
        ('slice', '2004-08-19T00:00:00')
        """
        if not isinstance(key, CacheKey):
            raise CacheArgumentError(
                f"put() needs the CacheKey returned by cache.key(...), which carries what the "
                f"index stores; got {type(key).__name__}.")
        if result is not None and not isinstance(result, BacktestResult):
            raise CacheArgumentError(
                f"result must be a BacktestResult, got {type(result).__name__}.")
        existing = self._lookup(key.digest)
        if existing is not None:
            _release(_lock_fd)
            if result is not None and not key.is_slice:
                self._keep_result(key.digest, result)
            return existing
        return self._store_entries([(key, result, metrics)], _lock_fd)[0]

    def _store_entries(self, entries: list[_Entry], lock_fd: int | None = None
                       ) -> list[CacheRecord]:
        """Store entries known to be missing: the artifacts of full runs first, then every
        index row in one transaction. ``lock_fd`` (a run lock) is released once the rows
        are committed, or on failure."""
        try:
            planned = [self._new_row(*entry) for entry in entries]
            rows = []
            for row, full in planned:
                if full is not None:
                    artifact, digest, n_bytes = self._store.write(row.key, full)
                    row = dataclasses.replace(row, artifact=artifact, checksum=digest,
                                              n_bytes=n_bytes)
                rows.append(row)
            stored = self.index.insert_many(rows)
        finally:
            _release(lock_fd)
        for row, kept in zip(rows, stored, strict=True):
            if row.artifact is not None and kept.artifact != row.artifact:
                self._store.remove(row.artifact)  # another process stored this key first
        with self._lock:
            self._puts += len(rows)
        for row, full in planned:
            if full is not None:
                self._keep_result(row.key, full)
        return [self._remember(row) for row in stored]

    def _new_row(self, key: CacheKey, result: BacktestResult | None,
                 metrics: Mapping[str, float] | None
                 ) -> tuple[IndexRow, BacktestResult | None]:
        """The index row of an entry (without its artifact) and the full result to write."""
        now = time.time()
        common = {"key": key.digest, "strategy": key.strategy, "fingerprint": key.fingerprint,
                  "params": key.params, "data_hash": key.data_hash, "settings": key.settings,
                  "created": now, "last_used": now}
        if key.window is None:
            if result is None or metrics is not None:
                raise CacheArgumentError(
                    "a full run (a key without window) is stored with its BacktestResult: "
                    "put(key, result); metrics= is for slice entries.")
            row = IndexRow(kind="full", window=None, parent=None,
                           metrics=metrics_json(result.metrics()), artifact=None,
                           checksum=None, n_bytes=0, **common)
            return row, result
        if (result is None) == (metrics is None):
            raise CacheArgumentError(
                "a slice entry is stored with either metrics={...} or the sliced "
                "BacktestResult, exactly one of them.")
        if result is not None:
            expected = key.window.stop - key.window.start
            if len(result) != expected:
                raise CacheArgumentError(
                    f"the result has {len(result)} bars but the window "
                    f"{key.window.first} .. {key.window.last} has {expected}; pass "
                    f"full.islice({key.window.start}, {key.window.stop}).")
            metrics = result.metrics()
        row = IndexRow(kind="slice", window=json.dumps(key.window.as_list()),
                       parent=key.full().digest, metrics=metrics_json(metrics),
                       artifact=None, checksum=None, n_bytes=0, **common)
        return row, None

    @property
    def executed(self) -> int:
        """Backtests this object ran (misses that executed the strategy), this process."""
        return self._executed

    # --- running on a miss -------------------------------------------------------------

    def get_or_run(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData, *,
                   costs: Costs | Mapping[str, float] | float | None = None, delay: int = 0,
                   price_field: str = "close", missing: str = "zero",
                   periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> BacktestResult:
        """The full run of ``strategy`` with ``params`` on ``data``: stored, or run and stored.

        Same arguments as :meth:`key` (without ``window``). A damaged stored entry is
        logged, dropped and run again.
        """
        settings = _settings(costs, delay, price_field, missing, periods_per_year)
        key = self.key(strategy, params, data, **settings)
        return self._full_result(key, strategy, params, data, settings, self.get(key))[0]

    def metrics(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData, *,
                window: Window | slice | tuple[int, int] | None = None,
                costs: Costs | Mapping[str, float] | float | None = None, delay: int = 0,
                price_field: str = "close", missing: str = "zero",
                periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> Mapping[str, float]:
        """Metrics of a run or of a window of it, running the full history only on a miss.

        A hit is a memo lookup; a miss of a window reuses (or runs once) the full-history
        run, slices it and stores the slice. :meth:`window_metrics` does several windows
        of one run at once.

        Examples
        --------
        >>> import tempfile
        >>> from foldwise import BacktestCache, datasets, examples
        >>> cache, data = BacktestCache(tempfile.mkdtemp()), datasets.load_goog()
        >>> for fold in [(0, 500), (500, 1000), (1000, 1500)]:
        ...     m = cache.metrics(examples.sma_crossover, {"fast": 5}, data, window=fold)
        >>> cache.stats().full_runs, cache.stats().slice_runs     # one backtest, three slices
        (1, 3)
        """
        settings = _settings(costs, delay, price_field, missing, periods_per_year)
        if window is not None:
            return self.window_metrics(strategy, params, data, [window], **settings)[0]
        key = make_key(strategy, params, data, **settings)
        record = self._lookup(key.digest, count=True)
        if record is not None:
            return record.metrics
        full = self._full_result(key, strategy, params, data, settings, None)[0]
        return MappingProxyType(full.metrics())

    def window_metrics(self, strategy: Any, params: Mapping[str, Any] | None,
                       data: MarketData, windows: Iterable[Window | slice | tuple[int, int]], *,
                       costs: Costs | Mapping[str, float] | float | None = None,
                       delay: int = 0, price_field: str = "close", missing: str = "zero",
                       periods_per_year: float = DEFAULT_PERIODS_PER_YEAR
                       ) -> list[Mapping[str, float]]:
        """Metrics of several windows of one run (a fold's train and test windows).

        What the optimizer does per trial: every window is a memo lookup on a hit. On a
        miss the full-history run is reused (or run once), the missing windows are cut
        from it, and the new entries — the run and its slices — are stored in one index
        transaction.

        Parameters
        ----------
        windows
            ``(start, stop)`` bar positions (or slices, or :class:`Window` objects).
        strategy, params, data, costs, delay, price_field, missing, periods_per_year
            As for :meth:`key`.

        Returns
        -------
        list of mapping
            The metrics of each window, in order.
        """
        settings = _settings(costs, delay, price_field, missing, periods_per_year)
        keys = []
        for window in windows:
            if window is None:
                raise CacheArgumentError(
                    "window_metrics() takes windows of bars; for the whole run use "
                    "metrics(...) without window.")
            keys.append(make_key(strategy, params, data, window=window, **settings))
        records = [self._lookup(key.digest, count=True) for key in keys]
        missing_keys = list({key.digest: key for key, record in zip(keys, records, strict=True)
                             if record is None}.values())
        if missing_keys:
            full_key = missing_keys[0].full()
            _, stored = self._full_result(full_key, strategy, params, data, settings,
                                          self.get(full_key), slices=missing_keys)
            found = {record.key: record for record in stored}
            records = [record or found[key.digest]
                       for key, record in zip(keys, records, strict=True)]
        return [record.metrics for record in records]

    def _full_result(self, key: CacheKey, strategy: Any, params: Mapping[str, Any] | None,
                     data: MarketData, settings: dict[str, Any], record: CacheRecord | None,
                     slices: list[CacheKey] | None = None
                     ) -> tuple[BacktestResult, list[CacheRecord]]:
        """The result of ``record`` (looked up under ``key``), or run it on a miss; and
        the records of the slice entries ``slices`` (missing windows of it), stored with
        the run when it was run (one index transaction)."""
        slices = slices or []
        if record is not None:
            try:
                result = self._result_of(record)
            except CacheCorruptedError as exc:
                current = self.index.get(key.digest)
                if current is not None and current.artifact != record._row.artifact:
                    # another process already replaced the entry this process remembered
                    return self._full_result(key, strategy, params, data, settings,
                                             self._remember(current), slices)
                logger.warning("cache entry %s of %r is damaged and is run again: %s",
                               key.digest, key.strategy, exc)
                self._drop([key.digest])
                with self._lock:
                    self._hits -= 1
                    self._misses += 1
            else:
                return result, self._store_entries(_slice_entries(result, slices))
        runner = resolve_strategy(strategy)
        runner = getattr(runner, "uncached", runner)  # a @cached_backtest strategy
        lock_fd = _acquire_run_lock(self.directory, key.digest)
        try:
            # Another process may have run it while this one waited for the lock.
            current = self.index.get(key.digest)
            if current is not None:
                try:
                    result = self._result_of(self._remember(current))
                except CacheCorruptedError:
                    pass  # damaged: run it again below
                else:
                    _release(lock_fd)
                    lock_fd = None
                    return result, self._store_entries(_slice_entries(result, slices))
            with self._lock:
                self._executed += 1
            result = runner.run(data, params, **settings)
            fd, lock_fd = lock_fd, None
            # stores the run and its slices, then releases the lock
            stored = self._store_entries([(key, result, None), *_slice_entries(result, slices)], fd)
        finally:
            _release(lock_fd)
        return result, stored[1:]

    # --- results ---------------------------------------------------------------------------

    def _keep_result(self, digest: str, result: BacktestResult) -> None:
        size = 0
        arrays = result.arrays
        for array in (arrays.net, arrays.gross, arrays.costs, arrays.turnover,
                      arrays.positions, arrays.changes):
            if array is not None:
                array.flags.writeable = False
                size += array.nbytes
        with self._lock:
            if digest in self._results:
                self._results_bytes -= self._results.pop(digest)[1]
            self._results[digest] = (result, size)
            self._results_bytes += size
            while len(self._results) > 1 and (len(self._results) > self._results_size
                                              or self._results_bytes > RESULTS_BYTES):
                self._results_bytes -= self._results.popitem(last=False)[1][1]

    def _forget_results(self) -> None:
        """Drop the results kept in memory (they are read from their artifacts again)."""
        with self._lock:
            self._results.clear()
            self._results_bytes = 0

    def _result_of(self, record: CacheRecord) -> BacktestResult:
        window = record.window
        if window is not None:
            parent = self._lookup(record.parent or "")
            if parent is None:
                raise CacheMissError(
                    f"the slice entry {record.key} of {record.strategy!r} stores metrics only "
                    f"and its full run {record.parent} is no longer in the cache (evicted?). "
                    "Run it again with cache.get_or_run(strategy, params, data, ...) to "
                    "rebuild the arrays.")
            return self._result_of(parent).islice(window.start, window.stop)
        with self._lock:
            kept = self._results.get(record.key)
            if kept is not None:
                self._results.move_to_end(record.key)
                return kept[0]

        row = record._row
        result = self._store.load(row.artifact or "", row.checksum or "", row.n_bytes)
        self._keep_result(record.key, result)
        return result

    # --- browsing ----------------------------------------------------------------------

    def runs(self, strategy: Any = None, *, kind: str | None = "full",
             data: MarketData | str | None = None, **params: Any) -> pd.DataFrame:
        """Stored runs as a DataFrame, one row per run, indexed by key.

        Parameters
        ----------
        strategy
            A name (every version of the code stored under that name), or a strategy object
            or function (only runs of its current code). None: all.
        kind
            ``"full"`` (default), ``"slice"`` or ``"all"``.
        data
            Only runs on this data (a MarketData or its content hash).
        **params
            Only runs whose parameter has exactly this value (type-exact, like keys).

        Returns
        -------
        DataFrame
            Columns ``strategy, kind``, then ``window_start, window_stop, window_first,
            window_last`` when slices are included, ``params_<name>`` per parameter, every
            metric, and ``data_hash, fingerprint, created, last_used, bytes``.
        """
        self.flush()
        rows = select_rows(self.index, strategy, kind, data, params)
        return runs_frame([self._remember(row) for row in rows], kind != "full")

    def compare(self, keys: Iterable[CacheKey | CacheRecord | str]) -> pd.DataFrame:
        """The given runs side by side, one row per key in the order given.

        Use ``.T`` for one column per run.

        Raises
        ------
        CacheMissError
            Naming the keys that are not stored.
        """
        digests = [_digest(key) for key in keys]
        records = [self._lookup(d) for d in digests]
        absent = [d for d, r in zip(digests, records, strict=True) if r is None]
        if absent:
            raise CacheMissError(
                f"{len(absent)} of the keys are not in the cache: {', '.join(absent[:5])}"
                f"{'...' if len(absent) > 5 else ''}. List what is stored with cache.runs().")
        present = [r for r in records if r is not None]
        return runs_frame(present, any(r.is_slice for r in present))

    def best(self, strategy: Any, metric: str, top_n: int = 5, maximize: bool = True, *,
             kind: str | None = "full", data: MarketData | str | None = None,
             **params: Any) -> pd.DataFrame:
        """The ``top_n`` stored runs of ``strategy`` ranked by ``metric`` (NaN last).

        Same selection arguments as :meth:`runs`.
        """
        frame = self.runs(strategy, kind=kind, data=data, **params)
        if metric not in frame.columns or metric.startswith("params_") or metric in (
                "strategy", "kind", "data_hash", "fingerprint", "created", "last_used"):
            available = [c for c in frame.columns if c in METRICS] or list(METRICS)
            raise CacheArgumentError(
                f"unknown metric {metric!r}; stored metrics: {', '.join(available)}.")
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise CacheArgumentError(f"top_n must be an integer >= 1, got {top_n!r}.")
        return frame.sort_values(metric, ascending=not maximize, na_position="last",
                                 kind="stable").head(top_n)

    def stats(self) -> CacheStats:
        """Runs stored (in all, per kind and per strategy), bytes on disk, and this
        process's hits, misses and stores."""
        self.flush()
        rows = self.index.rows()
        strategies: dict[str, int] = {}
        for row in rows:
            strategies[row.strategy] = strategies.get(row.strategy, 0) + 1
        full = sum(1 for row in rows if row.kind == "full")
        with self._lock:
            hits, misses, puts = self._hits, self._misses, self._puts
        return CacheStats(directory=str(self.directory), runs=len(rows), full_runs=full,
                          slice_runs=len(rows) - full, strategies=strategies,
                          artifact_bytes=sum(row.n_bytes for row in rows),
                          bytes_on_disk=directory_bytes(self.directory), hits=hits,
                          misses=misses, puts=puts)

    # --- removing --------------------------------------------------------------------

    def evict(self, older_than: float | _dt.timedelta | str | None = None,
              max_bytes: int | None = None) -> int:
        """Remove entries, least recently used first; return how many were removed.

        Parameters
        ----------
        older_than
            Remove entries not used for this long: seconds, a ``timedelta`` or text such
            as ``"30d"`` or ``"12h"``.
        max_bytes
            Then remove full runs, least recently used first, until their artifact files
            take at most this many bytes. Slice entries hold no file and stay.

        Slice entries whose full run is evicted keep their metrics.
        """
        self.flush()
        victims = eviction_victims(self.index.rows(), older_than, max_bytes, time.time())
        return len(self._drop(victims))

    def clear(self) -> int:
        """Remove every entry and its files; return how many entries were removed.

        Unfinished writes and orphan files older than ten minutes go too (younger ones may
        belong to a process writing right now); foreign files are left alone.
        """
        removed = self._drop([row.key for row in self.index.rows()])
        scan = self._store.scan(set(_KNOWN_FILES))
        sweep(self.directory, scan.temporary + scan.artifacts, grace=600.0)
        with self._lock:
            self._records.clear()
        self._forget_results()
        return len(removed)

    def _drop(self, keys: list[str]) -> list[IndexRow]:
        """Delete rows, then their files (a crash in between leaves an orphan file)."""
        deleted = self.index.delete(keys)
        for row in deleted:
            if row.artifact is not None:
                try:
                    self._store.remove(row.artifact)
                except CacheCorruptedError:
                    logger.warning("not deleting %r: not a file name foldwise writes", row.artifact)
        with self._lock:
            for key in keys:
                self._records.pop(key, None)
                kept = self._results.pop(key, None)
                self._results_bytes -= kept[1] if kept is not None else 0
                self._touched.pop(key, None)
        return deleted

    def verify(self, repair: bool = False, grace: float = 600.0) -> VerifyReport:
        """Check every entry's artifact and list anything in the directory that is not ours.

        Reads each artifact's bytes and compares them with the checksum in the index (and
        reads the Parquet footer); never unpickles, imports or executes anything.

        Parameters
        ----------
        repair
            Drop entries whose artifact is missing or damaged, and delete orphan artifacts
            and unfinished writes older than ``grace`` seconds (younger ones may belong to
            a process writing now). Foreign files are never deleted.
        grace
            Age in seconds below which leftovers are reported but kept.
        """
        self.flush()
        scan = self._store.scan(set(_KNOWN_FILES))
        report = inspect(self._store, self.index.rows(), scan)
        for path in report.foreign:
            logger.warning("foreign file in the cache directory (not opened): %s",
                           self.directory / path)
        if repair:
            self._drop(report.missing + [key for key, _ in report.corrupted])
            sweep(self.directory, report.temporary + report.orphans, grace)
            report.repaired = True
        return report


def _settings(costs: Any, delay: int, price_field: str, missing: str,
              periods_per_year: float) -> dict[str, Any]:
    """The backtest settings as the keyword arguments of keys and runs."""
    return {"costs": costs, "delay": delay, "price_field": price_field, "missing": missing,
            "periods_per_year": periods_per_year}


def _slice_entries(full: BacktestResult, keys: list[CacheKey]) -> list[_Entry]:
    """Slice entries (metrics only) of the windows ``keys`` cut from the run ``full``."""
    entries = []
    for key in keys:
        window = key.window
        assert window is not None
        entries.append((key, None, full.islice(window.start, window.stop).metrics()))
    return entries


def _digest(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, CacheKey):
        return key.digest
    if isinstance(key, CacheRecord):
        return key.key
    raise CacheArgumentError(
        f"expected a CacheKey, a CacheRecord or a key digest (str), got {type(key).__name__}.")


# Locks held by another thread at fork time would never be released in the child.
_live: weakref.WeakSet[BacktestCache] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for cache in list(_live):
        cache._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)
