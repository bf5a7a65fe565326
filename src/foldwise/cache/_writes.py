"""The write path: a missed run is executed once, stored crash-safe, and cut into windows.

Storing entries (:meth:`WritePath.store`) follows one order:

1. The artifact of each full run is written completely to a unique temporary name and
   renamed into place (:meth:`~foldwise.cache._artifacts.ArtifactStore.write`).
2. Every index row — a new run and the window slices cut from it — is inserted in **one
   transaction**; the first writer of a key wins. So the index never names a missing or
   half-written file, and a process killed at any instant leaves at worst an orphan file.
3. Where another process stored a key first, this process's artifact is deleted (the
   stored row names the winner's file, whose content is the same).
4. The new full results are kept in the results memory and the records remembered.

Running a miss (:meth:`WritePath.full_result`):

1. A record this process already knows is loaded. If its artifact is damaged and no other
   process has replaced the entry, the damage is logged, the entry dropped and counted as
   a miss, and the run goes on below. If another process evicted or cleared it since it
   was looked up (its index row is gone too), that is no damage: it is logged at info
   level and counted as a miss. A read-only cache refuses a miss here, before running
   anything (:class:`~foldwise.errors.CacheReadOnlyError`).
2. The key's **run lock** is taken (:mod:`foldwise.cache._locks`), so a parameter set that
   two processes miss at the same moment is run once: the second waits, then finds the
   entry the first stored.
3. The strategy runs with the one :class:`~foldwise.BacktestSettings` object the key was
   built from, and the run and the requested windows are stored (above); the lock is
   released once their rows are committed. What the strategy raises is tagged
   (:func:`~foldwise.errors.mark_raised_by_strategy`) and passes unchanged, so the
   optimizer can tell a strategy's failure from a fault of the disk or the index.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from foldwise.backtest import BacktestResult, BacktestSettings
from foldwise.cache._artifacts import ArtifactStore
from foldwise.cache._costs import ArrayPolicy, Kept
from foldwise.cache._index import IndexBackend, IndexRow
from foldwise.cache._keys import CacheKey, resolve_strategy
from foldwise.cache._locks import acquire_run_lock, release_run_lock
from foldwise.cache._memo import RecordMemo
from foldwise.cache._readonly import cannot_write
from foldwise.cache._records import CacheRecord, metrics_json
from foldwise.cache._results import ResultsMemory, returns_nbytes, stored_nbytes
from foldwise.cache._returns import RunReturns
from foldwise.data import MarketData
from foldwise.errors import (
    ArraysNotKeptError,
    CacheArgumentError,
    CacheCorruptedError,
    CacheMissError,
    CacheReadOnlyError,
    mark_raised_by_strategy,
)
from foldwise.metrics import METRICS

__all__ = ["Entry", "WritePath"]

logger = logging.getLogger(__name__)

#: A record not looked up yet.
_UNREAD = object()

#: What is stored for one key: a full run's result, or a slice's result or metrics.
Entry = tuple[CacheKey, BacktestResult | None, Mapping[str, float] | None]

#: The metrics new rows hold: None for all of them (:data:`foldwise.metrics.METRICS`), or
#: the names the caller needs — the optimizer's hot path computes its objective only.
Names = tuple[str, ...] | None


class WritePath:
    """Stores entries and runs misses for one cache object (see the module docstring).

    ``drop`` deletes entries (rows, then files) and forgets them in memory; it is the
    cache's maintenance, used here for a damaged entry that must be run again.
    """

    def __init__(self, directory: Path, index: IndexBackend, store: ArtifactStore,
                 memo: RecordMemo, results: ResultsMemory,
                 drop: Callable[[list[str]], object], policy: ArrayPolicy | None = None
                 ) -> None:
        self.directory = directory
        self.index = index
        self.policy = policy or ArrayPolicy("always")
        self._store = store
        self._memo = memo
        self._results = results
        self._drop = drop

    # --- storing -------------------------------------------------------------------------

    def put(self, key: CacheKey, result: BacktestResult | None,
            metrics: Mapping[str, float] | None, lock_fd: int | None = None) -> CacheRecord:
        """Store one entry unless stored (see :meth:`foldwise.BacktestCache.put`)."""
        if not isinstance(key, CacheKey):
            raise CacheArgumentError(
                f"put() needs the CacheKey returned by cache.key(...), which carries what the "
                f"index stores; got {type(key).__name__}.")
        if result is not None and not isinstance(result, BacktestResult):
            raise CacheArgumentError(
                f"result must be a BacktestResult, got {type(result).__name__}.")
        existing = self._memo.lookup(key.digest)
        if existing is not None:
            release_run_lock(lock_fd)
            if result is not None and not key.is_slice:
                self._results.keep(key.digest, result)
            return existing
        return self.store([(key, result, metrics)], lock_fd)[0]

    def store(self, entries: list[Entry], lock_fd: int | None = None, *,
              arrays: Kept = "full", names: Names = None) -> list[CacheRecord]:
        """Store entries known to be missing: the artifacts of full runs first (``arrays``:
        whole, in returns form, or ``"none"``: metrics only), then every index row in one
        transaction.
        A full run's row holds the metrics ``names`` (None: all of them).
        ``lock_fd`` (a run lock) is released once the rows are committed, or on failure.
        Return the records now stored, in order."""
        try:
            if entries:
                self._check_writable()
            planned = [_new_row(*entry, names=names) for entry in entries]
            rows = []
            for row, full in planned:
                if full is not None and arrays != "none":
                    positions = arrays == "full"
                    started = time.perf_counter()
                    artifact, digest, n_bytes = self._store.write(row.key, full, positions)
                    self.policy.wrote(time.perf_counter() - started,
                                      stored_nbytes(full, positions))
                    row = dataclasses.replace(row, artifact=artifact, checksum=digest,
                                              n_bytes=n_bytes)
                rows.append(row)
            started = time.perf_counter()
            stored = self.index.insert_many(rows)
            self.policy.inserted(time.perf_counter() - started, len(rows))
        finally:
            release_run_lock(lock_fd)
        for row, kept in zip(rows, stored, strict=True):
            if row.artifact is not None and kept.artifact != row.artifact:
                self._store.remove(row.artifact)  # another process stored this key first
        self._memo.count_stored(len(rows))
        for row, full in planned:
            if full is not None:
                self._results.keep(row.key, full)
        return [self._memo.remember(row) for row in stored]

    def _check_writable(self) -> None:
        """Refuse to store in a read-only cache before anything is written."""
        why = self.index.read_only_reason
        if why is not None:
            raise CacheReadOnlyError(cannot_write(self.directory, why))

    # --- running a miss ------------------------------------------------------------------

    def windows(self, keys: list[CacheKey], strategy: Any, params: Mapping[str, Any] | None,
                data: MarketData, settings: BacktestSettings, names: Names = None,
                ahead: Ahead | None = None) -> list[Mapping[str, float]]:
        """The metrics ``names`` (None: all) of the slice keys ``keys`` (windows of one
        run), in order: looked up, and the missing ones cut from the full run (reused, or
        run once) and stored with it in one transaction. A stored window whose row lacks
        one of ``names`` (stored for another objective) has them computed from the run,
        not stored again. ``ahead``: the slice keys of the windows the caller will ask for
        later (a study's other folds), stored too with a run that is new or produced again
        when :meth:`ArrayPolicy.store_ahead` says so."""
        lookup = self._memo.lookup
        full_key = keys[0].full()
        digests = [key.digest for key in keys]
        if self._memo.remembers(digests):  # the optimizer's hot path: memo lookups
            records = [lookup(digest, True) for digest in digests]
            full_record: CacheRecord | object | None = _UNREAD
        else:  # a new set: its windows and its full run read in one query
            *records, full_record = self._memo.lookup_many([*digests, full_key.digest], True)
        wanted = tuple(METRICS) if names is None else names
        if None not in records and all(  # every window stored
                name in record.metrics for record in records if record for name in wanted):
            return [record.metrics for record in records if record is not None]
        missing = list({key.digest: key for key, record in zip(keys, records, strict=True)
                        if record is None}.values())
        if full_record is _UNREAD:
            full_record = lookup(full_key.digest, True)
        assert full_record is None or isinstance(full_record, CacheRecord)
        full, stored = self.full_result(full_key, strategy, params, data, settings,
                                        full_record, slices=missing, names=names, ahead=ahead,
                                        whole=False)
        found = {record.key: record.metrics for record in stored}
        out: list[Mapping[str, float]] = []
        for key, record in zip(keys, records, strict=True):
            metrics = found[key.digest] if record is None else record.metrics
            if any(name not in metrics for name in wanted):
                window = key.window
                assert window is not None
                metrics = MappingProxyType({**metrics, **full.islice(
                    window.start, window.stop).metrics(wanted)})
            out.append(metrics)
        return out

    def full_result(self, key: CacheKey, strategy: Any, params: Mapping[str, Any] | None,
                    data: MarketData, settings: BacktestSettings, record: CacheRecord | None,
                    slices: list[CacheKey] | None = None, names: Names = None,
                    ahead: Ahead | None = None, whole: bool = True,
                    ) -> tuple[BacktestResult | RunReturns, list[CacheRecord]]:
        """The result of ``record`` (looked up under ``key``), or run it on a miss; and
        the records of the slice entries ``slices`` (missing windows of it), stored with
        the run when it was run (one index transaction). New rows hold the metrics
        ``names`` (None: all). ``ahead``: see :meth:`windows`. ``whole``: the caller needs
        the whole :class:`BacktestResult`; else a stored run may come as its returns form
        (the caller wants metrics), and a run executed here keeps its arrays as a run
        executed for its metrics does (:meth:`ArrayPolicy.keep`)."""
        slices = slices or []
        if record is not None:
            if ahead is not None and slices:  # a stored run produced again for windows
                self.policy.produced_again(key.strategy)
                if self.policy.store_ahead(key.strategy, ahead.n_windows, again=True):
                    slices = _with_ahead(slices, ahead)
            try:
                # a result in memory serves as it is; else the returns form where it will do
                result = (self._results.load(record)
                          if whole or self._results.kept(record.key) is not None
                          else self._results.load_returns(record))
            except ArraysNotKeptError:  # cheaper to run again than to store: run it
                result = self._run(strategy, params, data, settings)[0]
                self._memo.count_recomputed()
                self._results.keep(key.digest, result)
                return result, self.store(slice_entries(result, slices, names))
            except CacheMissError:
                # another process evicted, cleared or replaced it since it was looked up
                current = self.index.get(key.digest)
                if current is not None:
                    return self.full_result(key, strategy, params, data, settings,
                                            self._memo.remember(current), slices, names,
                                            whole=whole)
                logger.info("cache entry %s of %r was evicted by another process after it "
                            "was looked up; it is run again", key.digest, key.strategy)
                self._memo.count_damaged_hit()
            except CacheCorruptedError as exc:
                current = self.index.get(key.digest)
                if current is not None and current.artifact != record._row.artifact:
                    # another process already replaced the entry this process remembered
                    return self.full_result(key, strategy, params, data, settings,
                                            self._memo.remember(current), slices, names,
                                            whole=whole)
                logger.warning("cache entry %s of %r is damaged and is run again: %s",
                               key.digest, key.strategy, exc)
                self._drop([key.digest])
                self._memo.count_damaged_hit()
            else:
                return result, self.store(slice_entries(result, slices, names))
        self._check_writable()
        resolve_strategy(strategy)  # a bad strategy is refused before the lock is taken
        lock_fd = acquire_run_lock(self.directory, key.digest)
        try:
            # Another process may have run it while this one waited for the lock.
            current = self.index.get(key.digest)
            if current is not None:
                try:
                    result = self._results.load(self._memo.remember(current))
                except (CacheCorruptedError, CacheMissError):
                    pass  # damaged, or evicted meanwhile: run it again below
                else:
                    release_run_lock(lock_fd)
                    lock_fd = None
                    return result, self.store(slice_entries(result, slices, names))
            self._memo.count_executed()
            result, seconds = self._run(strategy, params, data, settings)
            held = result.arrays.positions
            keep = self.policy.keep(key.strategy, seconds, returns_nbytes(len(result)),
                                    0 if held is None else held.nbytes, whole_asked=whole)
            if ahead is not None and self.policy.store_ahead(key.strategy, ahead.n_windows):
                slices = _with_ahead(slices, ahead)
            fd, lock_fd = lock_fd, None
            # stores the run and its slices, then releases the lock
            stored = self.store([(key, result, None), *slice_entries(result, slices, names)],
                                fd, arrays=keep, names=names)
        finally:
            release_run_lock(lock_fd)
        return result, stored[1:]

    @staticmethod
    def _run(strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
             settings: BacktestSettings) -> tuple[BacktestResult, float]:
        """Run the strategy (the uncached one of a ``@cached_backtest``); return the result
        and the seconds it took. What the strategy raises is tagged as its own."""
        runner = resolve_strategy(strategy)
        runner = getattr(runner, "uncached", runner)
        started = time.perf_counter()
        try:
            result = runner.run(data, params, settings)
        except Exception as exc:  # the strategy's own failure, not the cache's
            mark_raised_by_strategy(exc)
            raise
        return result, time.perf_counter() - started


class Ahead(NamedTuple):
    """The windows a caller will ask for later: how many, and their keys (computed only
    when they are stored)."""

    n_windows: int
    make_keys: Callable[[], list[CacheKey]]


def _with_ahead(slices: list[CacheKey], ahead: Ahead) -> list[CacheKey]:
    """``slices`` and the keys of ``ahead`` not among them."""
    seen = {key.digest for key in slices}
    out = list(slices)
    for key in ahead.make_keys():
        if key.digest not in seen:
            seen.add(key.digest)
            out.append(key)
    return out


def slice_entries(full: BacktestResult | RunReturns, keys: list[CacheKey],
                  names: Names = None) -> list[Entry]:
    """Slice entries (the metrics ``names``, None: all) of the windows ``keys`` cut from
    the run ``full``."""
    entries: list[Entry] = []
    for key in keys:
        window = key.window
        assert window is not None
        entries.append((key, None, full.islice(window.start, window.stop).metrics(names)))
    return entries


def _new_row(key: CacheKey, result: BacktestResult | None,
             metrics: Mapping[str, float] | None, names: Names = None
             ) -> tuple[IndexRow, BacktestResult | None]:
    """The index row of an entry (without its artifact) and the full result to write; a
    full run's row holds its metrics ``names`` (None: all)."""
    now = time.time()
    common: dict[str, Any] = {
        "key": key.digest, "strategy": key.strategy, "fingerprint": key.fingerprint,
        "params": key.params, "data_hash": key.data_hash, "settings": key.settings,
        "created": now, "last_used": now}
    if key.window is None:
        if result is None or metrics is not None:
            raise CacheArgumentError(
                "a full run (a key without window) is stored with its BacktestResult: "
                "put(key, result); metrics= is for slice entries.")
        row = IndexRow(kind="full", window=None, parent=None,
                       metrics=metrics_json(result.metrics(names)), artifact=None,
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
    assert metrics is not None
    row = IndexRow(kind="slice", window=json.dumps(key.window.as_list()),
                   parent=key.full().digest, metrics=metrics_json(metrics),
                   artifact=None, checksum=None, n_bytes=0, **common)
    return row, None
