"""``BacktestCache``: the one object users and the optimizer hold, a facade over small rooms.

Each job of the cache lives in its own module; this one wires them together and holds
the public methods and their documentation:

* keys — :mod:`foldwise.cache._keys` (content keys, memoized per process);
* lookups — :mod:`foldwise.cache._memo` (records in memory first, batched last-used times);
* results — :mod:`foldwise.cache._results` (arrays loaded lazily, kept bounded, read-only);
* writes — :mod:`foldwise.cache._writes` (run a miss once, store it and its windows in
  one transaction, artifact before row);
* upkeep — :mod:`foldwise.cache._maintenance` (stats, evict, clear, verify);
* browsing — :mod:`foldwise.cache._browse` (``runs``, ``compare``, ``best``).

Every method that takes backtest settings takes one :class:`~foldwise.BacktestSettings`
(``settings=``) and the individual keywords (``costs=``, ``delay=`` ...) that replace its
fields; they are coerced once, and the same object is hashed into the key and handed to
``Strategy.run``.

A cache object crosses to worker processes as its location, never its contents: see
:attr:`BacktestCache.shareable` and :meth:`BacktestCache.__reduce__`. Nothing is pickled
to disk.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from foldwise._paths import resolve_root
from foldwise.backtest import BacktestResult, BacktestSettings, Costs, MissingPolicy
from foldwise.cache._artifacts import ArtifactLocation, ArtifactStore
from foldwise.cache._browse import StoredRuns, digest_of
from foldwise.cache._costs import ArrayPolicy, KeepArrays
from foldwise.cache._index import IndexBackend
from foldwise.cache._keys import CacheKey, Window, coerce_settings, key_of
from foldwise.cache._locks import serve_run_locks
from foldwise.cache._maintenance import Maintenance
from foldwise.cache._memo import RecordMemo
from foldwise.cache._pins import Pins
from foldwise.cache._records import CacheRecord, CacheStats, VerifyReport
from foldwise.cache._results import RESULTS_BYTES, ResultsMemory
from foldwise.cache._returns import RunReturns
from foldwise.cache._sqlite import INDEX_NAME, SQLiteIndex, set_aside
from foldwise.cache._writes import Ahead, WritePath
from foldwise.data import MarketData
from foldwise.errors import CacheArgumentError, CacheError
from foldwise.metrics import METRICS

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["CACHE_DIR", "INDEX_NAME", "RESULTS_BYTES", "BacktestCache", "CacheRecord",
           "CacheStats", "VerifyReport", "set_aside_index"]

#: Name of the subdirectory of the foldwise directory that holds the cache.
CACHE_DIR = "cache"

_WindowArg = Window | slice | tuple[int, int]
_CostsArg = Costs | Mapping[str, float] | float | None


def metric_names(names: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """``names`` as a tuple without repeats (None stays None: every metric). Unknown names
    are refused where the metrics are computed (:class:`~foldwise.errors.UnknownMetricError`)."""
    if names is None:
        return None
    return tuple(dict.fromkeys([names] if isinstance(names, str) else names))


def set_aside_index(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Move the SQLite index of the cache in foldwise directory ``path`` aside (renamed to
    ``index.sqlite.damaged-<time>``, never deleted), so the cache opens again with an empty
    index: for an index too damaged to open. Returns where it went, or None if there was
    no index. ``foldwise cache verify --repair`` does this when the index cannot be opened;
    :meth:`BacktestCache.verify` with ``repair=True`` does it when it can be opened but is
    damaged. Studies are unaffected: the runs they need are re-created from their keys."""
    return set_aside(resolve_root(path) / CACHE_DIR / INDEX_NAME)


#: The cache objects this process opened for cache objects sent to it from another process
#: (keyed by this process and the sender's identity, see :meth:`BacktestCache.__reduce__`).
#: Every task of one optimization that reaches the same worker then shares one object —
#: its records, the results it keeps in memory, the array policy's evidence, its index
#: connection — instead of starting cold for each task. Measured on an ``n_jobs=2`` study
#: of 6 folds with a cold object per task: 2.5x the window rows and 15x the arrays of the
#: same study in one process, and each worker grew by 230 MB (the objects of finished
#: tasks waiting for the cyclic garbage collector), so that loky restarted it mid-study.
#: At most :data:`_REOPENED_KEPT` are kept (two calls interleaving in one worker, e.g.
#: threads of a Dask worker); the least recently sent is released (connections closed,
#: memory dropped at once) when another arrives.
_REOPENED_KEPT = 2
_reopened: OrderedDict[tuple[int, str], BacktestCache] = OrderedDict()
_reopened_lock = threading.Lock()


def _reopen(root: str, backend: IndexBackend, options: dict[str, Any],
            sender: str | None = None) -> BacktestCache:
    """Unpickle a cache: the object already opened here for the same sender, else a new
    one. In the sending process itself (a deepcopy) always a new object."""
    if sender is None or sender.split(":", 1)[0] == str(os.getpid()):
        return BacktestCache(root, backend=backend, **options)
    key = (os.getpid(), sender)
    with _reopened_lock:
        cache = _reopened.get(key)
        if cache is not None:
            _reopened.move_to_end(key)
            cache.touch_interval = options["touch_interval"]  # the one option that can change
            return cache
        for forked in [k for k in _reopened if k[0] != key[0]]:
            del _reopened[forked]  # a forked parent's objects: not this process's to close
        while len(_reopened) >= _REOPENED_KEPT:
            _reopened.popitem(last=False)[1]._release()
        cache = _reopened[key] = BacktestCache(root, backend=backend, **options)
        return cache


def _refuse(root: str, kind: str, where: str) -> BacktestCache:
    raise CacheError(
        f"the BacktestCache at {root} keeps its index in one process ({kind}: {where}), so "
        "another process (a joblib worker) cannot open it. Use a shareable index: "
        "BacktestCache(path) with the default SQLite index, or a backend whose `shareable` "
        "is true; or run in this process (n_jobs=1).")


class BacktestCache(StoredRuns):
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
    read_only
        Only read: create nothing (a cache that does not exist reads as empty), write
        nothing (not even last-used times); storing a run raises
        :class:`~foldwise.errors.CacheReadOnlyError` before anything is written. A cache
        whose index file or directory cannot be written (a read-only mount, another
        user's files) is opened so without being asked (see :attr:`read_only`).
    artifacts
        How arrays are written: ``"packs"``, appended to a pack file of this process (one
        write to an open file per run; the default on a local or mounted file system);
        ``"files"``, one Parquet file per run (the default on an object store, which
        cannot append; also for a shared file system where processes of several hosts
        should not append to files others read). Both are always read. See
        :mod:`foldwise.cache._artifacts`.
    artifact_location
        Where the arrays live: default the cache directory; another directory (a shared
        mount every worker sees); a URL pyarrow's file systems open (``s3://bucket/prefix``
        with options such as ``?endpoint_override=host:9000&region=...``, ``gs://``,
        ``hdfs://``, ``file:///``); or a :class:`pyarrow.fs.FileSystem` (its root; wrap it
        in :class:`pyarrow.fs.SubTreeFileSystem` for a prefix). Every worker of a cluster
        must reach the same location, and the index (``backend``) must be shared too.
    keep_arrays
        Which runs the cache executes keep their arrays on disk (every run keeps its
        metrics): ``"auto"`` those that cost more to run again than to write and read back,
        as measured in this process, and their positions only where they are likely to be
        read (a run executed for its metrics keeps its returns form: what the metrics of
        any window and the statistics across runs need); ``"always"``; ``"returns"``
        (every run's returns form, no positions); ``"never"``. A run without arrays, or
        without positions, is run again when they are asked for (see
        :mod:`foldwise.cache._costs`).

    Notes
    -----
    One object is safe to use from several threads. Several processes (and forked
    children) can share one directory on one host; each opens its own connections. A
    :attr:`shareable` cache pickles as its location and the kind of its index, so it can
    be handed to joblib workers, which reopen the same cache.

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
                 results_in_memory: int = 256, touch_interval: float = 30.0,
                 read_only: bool = False, keep_arrays: KeepArrays = "auto",
                 artifacts: str | None = None,
                 artifact_location: str | os.PathLike[str] | pyarrow.fs.FileSystem | None = None
                 ) -> None:
        self.root = resolve_root(path)
        self.directory = self.root / CACHE_DIR
        if backend is not None and read_only:
            raise CacheArgumentError(
                "read_only=True opens the default SQLite index for reading; a backend= "
                "given is used as it is (open it read-only itself).")
        self.index = backend if backend is not None else SQLiteIndex(
            self.directory / INDEX_NAME, read_only=read_only)
        serve_run_locks(self.directory, self.index)  # an index may keep them (PostgreSQL)
        self._store = store = ArtifactStore(
            ArtifactLocation.resolve(artifact_location, self.directory), artifacts)
        self.policy = ArrayPolicy(keep_arrays)
        self._results = ResultsMemory(store, results_in_memory, self._lookup_parent,
                                      self._stale, self.policy)
        self._memo = RecordMemo(self.index, self._record, memo_size, touch_interval)
        self._lookup = self._memo.lookup
        self._upkeep = Maintenance(self.directory, self.index, store, self._memo, self._results,
                                   Pins(self.root))
        self._writes = WritePath(self.directory, self.index, store, self._memo, self._results,
                                 self._upkeep.drop, self.policy)
        self._sender = f"{os.getpid()}:{uuid.uuid4().hex}"  # names it in pickles

    def _record(self, row: Any) -> CacheRecord:
        return CacheRecord(row, self._results)

    def _lookup_parent(self, digest: str) -> CacheRecord | None:
        return self._memo.lookup(digest)

    def _stale(self, record: CacheRecord) -> bool:
        """True (and the record forgotten) when the index no longer holds ``record`` as it
        was looked up: another process evicted, cleared or replaced it since."""
        current = self.index.get(record.key)
        if current is not None and current.artifact == record._row.artifact:
            return False
        self._memo.forget([record.key])
        return True

    @property
    def read_only(self) -> bool:
        """True when this cache only reads: opened with ``read_only=True``, or its index
        file or directory cannot be written (a read-only mount, another user's files).
        Storing a run then raises :class:`~foldwise.errors.CacheReadOnlyError`."""
        return self.index.read_only_reason is not None

    @property
    def exists(self) -> bool:
        """True when the cache directory exists (a read-only cache never creates it)."""
        return self.directory.is_dir()

    @property
    def shareable(self) -> bool:
        """True when other processes can open this same cache (its index is shareable, as
        the default SQLite file is); False for a process-local index such as
        :class:`~foldwise.cache.MemoryIndex`. Only a shareable cache can be handed to
        worker processes."""
        return self.index.shareable

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the location, the index backend (which pickles as its own location)
        and the options — never connections, locks, records or results. Unpickling a cache
        that is not :attr:`shareable` raises :class:`~foldwise.errors.CacheError` naming
        the fix. Only for sending to worker processes: foldwise never pickles to disk.

        The pickle also names this object (its process and a random id): a worker process
        unpickles every copy of one object to one cache object, so the tasks it runs share
        what that object learned (see ``_reopened``)."""
        if not self.shareable:
            return (_refuse, (str(self.root), type(self.index).__name__, self.index.describe()))
        options = {"memo_size": self._memo.size, "results_in_memory": self._results.size,
                   "touch_interval": self._memo.touch_interval,
                   "keep_arrays": self.policy.mode, "artifacts": self._store.layout,
                   "artifact_location": self._store.location.spec}
        return (_reopen, (str(self.root), self.index, options, self._sender))

    def __repr__(self) -> str:
        return f"BacktestCache({str(self.root)!r}, index={self.index.describe()})"

    def __enter__(self) -> BacktestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def touch_interval(self) -> float:
        """Seconds between batched writes of last-used times."""
        return self._memo.touch_interval

    @touch_interval.setter
    def touch_interval(self, seconds: float) -> None:
        self._memo.touch_interval = float(seconds)

    @property
    def executed(self) -> int:
        """Backtests this object ran (misses that executed the strategy), this process."""
        return self._memo.executed

    @property
    def recomputed(self) -> int:
        """Stored runs without arrays, or without positions (``keep_arrays``), this object
        ran again because they were asked for, this process."""
        return self._memo.recomputed

    # --- keys and lookups --------------------------------------------------------------

    def key(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
            window: _WindowArg | None = None, settings: BacktestSettings | None = None, *,
            costs: _CostsArg = None, delay: int | None = None, price_field: str | None = None,
            missing: MissingPolicy | None = None,
            periods_per_year: float | None = None) -> CacheKey:
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
        settings
            The backtest settings (default: ``BacktestSettings()``).
        costs, delay, price_field, missing, periods_per_year
            Replace the field of ``settings`` of the same name (None: keep it).

        Raises
        ------
        ParameterError
            A parameter with no canonical form, named in the message.
        """
        return key_of(strategy, params, data, window, coerce_settings(
            settings, costs=costs, delay=delay, price_field=price_field, missing=missing,
            periods_per_year=periods_per_year))

    def get(self, key: CacheKey | str) -> CacheRecord | None:
        """The record stored under ``key`` (a :class:`CacheKey` or its digest), or None.

        After the first lookup of a key in this process this is a dict lookup; its metrics
        never touch an artifact file.
        """
        return self._lookup(key if key.__class__ is str else digest_of(key), True)

    def flush(self) -> None:
        """Write the last-used times of recent hits to the index now."""
        self._memo.flush()

    def close(self) -> None:
        """Flush last-used times and release this process's index connections.

        The object stays usable (it reconnects on the next call).
        """
        self.flush()
        self.index.close()

    def _release(self) -> None:
        """:meth:`close`, and forget the records and results kept in memory now rather than
        when the cyclic garbage collector frees the object."""
        self.close()
        self._results.clear()
        self._memo.clear()

    # --- storing -----------------------------------------------------------------------

    def put(self, key: CacheKey, result: BacktestResult | None = None, *,
            metrics: Mapping[str, float] | None = None) -> CacheRecord:
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
        return self._writes.put(key, result, metrics)

    # --- running on a miss -------------------------------------------------------------

    def get_or_run(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
                   settings: BacktestSettings | None = None, *, costs: _CostsArg = None,
                   delay: int | None = None, price_field: str | None = None,
                   missing: MissingPolicy | None = None,
                   periods_per_year: float | None = None) -> BacktestResult:
        """The full run of ``strategy`` with ``params`` on ``data``: stored, or run and stored.

        Same arguments as :meth:`key` (without ``window``). A damaged stored entry is
        logged, dropped and run again.
        """
        coerced = coerce_settings(settings, costs=costs, delay=delay, price_field=price_field,
                                  missing=missing, periods_per_year=periods_per_year)
        key = key_of(strategy, params, data, None, coerced)
        result = self._writes.full_result(key, strategy, params, data, coerced,
                                          self.get(key))[0]
        assert isinstance(result, BacktestResult)  # the whole result was asked for
        return result

    def run_returns(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
                    settings: BacktestSettings | None = None, *, costs: _CostsArg = None,
                    delay: int | None = None, price_field: str | None = None,
                    missing: MissingPolicy | None = None,
                    periods_per_year: float | None = None) -> RunReturns:
        """The returns form of the full run (:class:`~foldwise.cache.RunReturns`: returns,
        costs, turnover and trades per date, the metrics of any of its windows): stored,
        read without its positions, or run and stored as a run executed for its metrics
        (``keep_arrays``). For metrics of windows that are not one range of bars (a purged
        training set: ``.take(positions).metrics()``). Same arguments as :meth:`get_or_run`.
        """
        coerced = coerce_settings(settings, costs=costs, delay=delay, price_field=price_field,
                                  missing=missing, periods_per_year=periods_per_year)
        key = key_of(strategy, params, data, None, coerced)
        found = self._writes.full_result(key, strategy, params, data, coerced,
                                         self._lookup(key.digest, True), whole=False)[0]
        return found if isinstance(found, RunReturns) else RunReturns.of(found)

    def metrics(self, strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
                window: _WindowArg | None = None, settings: BacktestSettings | None = None, *,
                costs: _CostsArg = None, delay: int | None = None,
                price_field: str | None = None, missing: MissingPolicy | None = None,
                periods_per_year: float | None = None,
                names: Iterable[str] | None = None) -> Mapping[str, float]:
        """Metrics of a run or of a window of it, running the full history only on a miss.

        Same arguments as :meth:`key`, and ``names``: the metrics wanted (None: every
        metric of :data:`foldwise.metrics.METRICS`). A hit is a memo lookup; a miss of a
        window reuses (or runs once) the full-history run, slices it and stores the slice
        with the metrics ``names``. An entry stored with fewer metrics (the optimizer
        stores its objective's) has the others computed from its run when asked.
        :meth:`window_metrics` does several windows of one run at once.

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
        coerced = coerce_settings(settings, costs=costs, delay=delay, price_field=price_field,
                                  missing=missing, periods_per_year=periods_per_year)
        wanted = metric_names(names)
        if window is not None:
            slice_key = key_of(strategy, params, data, window, coerced)
            return self._writes.windows([slice_key], strategy, params, data, coerced,
                                        wanted)[0]
        key = key_of(strategy, params, data, None, coerced)
        record = self._lookup(key.digest, True)
        if record is not None and all(n in record.metrics for n in wanted or METRICS):
            return record.metrics
        full = self._writes.full_result(key, strategy, params, data, coerced, record,
                                        names=wanted, whole=False)[0]
        return MappingProxyType(full.metrics(wanted))

    def window_metrics(self, strategy: Any, params: Mapping[str, Any] | None,
                       data: MarketData, windows: Iterable[_WindowArg],
                       settings: BacktestSettings | None = None, *, costs: _CostsArg = None,
                       delay: int | None = None, price_field: str | None = None,
                       missing: MissingPolicy | None = None,
                       periods_per_year: float | None = None,
                       names: Iterable[str] | None = None,
                       ahead: Sequence[_WindowArg] = ()) -> list[Mapping[str, float]]:
        """Metrics of several windows of one run (a fold's train and test windows).

        What the optimizer does per trial: every window is a memo lookup on a hit. On a
        miss the full-history run is reused (or run once), the missing windows are cut
        from it, and the new entries — the run and its slices — are stored in one index
        transaction.

        Parameters
        ----------
        windows
            ``(start, stop)`` bar positions (or slices, or :class:`Window` objects).
        names
            The metrics wanted (None: every metric). New entries store these only: the
            optimizer asks for its objective (and the Sharpe ratio), so that a trial
            computes nothing it does not use; the rest are computed on demand.
        ahead
            Windows of the same run the caller will ask for later (the optimizer: every
            fold's windows). They are stored with the run when it has to be produced again
            (run again because its arrays were not kept, or read back) and, once this
            process has seen the strategy's runs come back often enough for that to pay,
            with every new run (:meth:`ArrayPolicy.store_ahead
            <foldwise.cache._costs.ArrayPolicy.store_ahead>`): a later fold's trial of the
            set is then a lookup, not a run.
        strategy, params, data, settings, costs, delay, price_field, missing, periods_per_year
            As for :meth:`key`.

        Returns
        -------
        list of mapping
            The metrics of each window, in order (at least ``names``).
        """
        coerced = coerce_settings(settings, costs=costs, delay=delay, price_field=price_field,
                                  missing=missing, periods_per_year=periods_per_year)
        keys = []
        for window in windows:
            if window is None:
                raise CacheArgumentError(
                    "window_metrics() takes windows of bars; for the whole run use "
                    "metrics(...) without window.")
            keys.append(key_of(strategy, params, data, window, coerced))
        later = None if not ahead else Ahead(
            len(ahead), lambda: [key_of(strategy, params, data, w, coerced) for w in ahead])
        return self._writes.windows(keys, strategy, params, data, coerced, metric_names(names),
                                    later)

    # --- upkeep ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Runs stored (in all, per kind and per strategy), bytes on disk, and this
        process's hits, misses and stores."""
        return self._upkeep.stats()

    def evict(self, older_than: float | _dt.timedelta | str | None = None,
              max_bytes: int | None = None, *, include_pinned: bool = False) -> int:
        """Remove entries, least recently used first; return how many were removed.

        Runs that stored studies reference (:meth:`pin`) are kept, and a warning says how
        many, unless ``include_pinned`` is true.

        Parameters
        ----------
        older_than
            Remove entries not used for this long: seconds, a ``timedelta`` or text such
            as ``"30d"`` or ``"12h"``.
        max_bytes
            Then remove full runs, least recently used first, until their artifacts take
            at most this many bytes. Slice entries hold no file and stay. An artifact in a
            pack file frees its space when no entry names any artifact of that pack (and
            it has not been written for ten minutes); runs stored by one optimization
            share packs and age together.

        Slice entries whose full run is evicted keep their metrics.
        """
        return self._upkeep.evict(older_than, max_bytes, include_pinned)

    def clear(self, *, include_pinned: bool = False) -> int:
        """Remove every entry and its files; return how many entries were removed.

        Runs that stored studies reference (:meth:`pin`) are kept, and a warning says how
        many, unless ``include_pinned`` is true (their pins stay; the studies re-create the
        runs when they need them).

        Unfinished writes and orphan files older than ten minutes go too (younger ones may
        belong to a process writing right now); foreign files are left alone.
        """
        return self._upkeep.clear(include_pinned)

    def pin(self, owner: str, digests: Iterable[str]) -> None:
        """Make ``digests`` the runs ``owner`` (a stored study) references: :meth:`evict`
        and :meth:`clear` keep them. Replaces what ``owner`` pinned before. The optimizer
        pins every run of a study's results at the end of each ``optimize`` call."""
        self._upkeep.pins.set(owner, digests)

    def unpin(self, owner: str) -> bool:
        """Release the runs ``owner`` pinned (a deleted study); True if it had pins."""
        return self._upkeep.pins.drop(owner)

    def pins(self) -> dict[str, frozenset[str]]:
        """Every owner (a stored study) and the run digests it pins."""
        return self._upkeep.pins.owners()

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
        return self._upkeep.verify(repair, grace)

