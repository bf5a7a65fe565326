"""The results memory: where a record's :class:`~foldwise.BacktestResult` comes from.

A record's metrics live in its index row; its arrays are asked for far more rarely (a
report, a window that is not one contiguous range). :meth:`ResultsMemory.load` serves them:

1. A **slice** entry stores no arrays: its full run is looked up and loaded, and the
   window is cut from it (``islice``, no copy).
2. A **full run** is looked for among the results this process keeps in memory; folds of
   one optimization cut their windows from the same recent runs, which then need no
   reading.
3. Otherwise its artifact is read (checked against the recorded size and checksum first,
   see :mod:`foldwise.cache._artifacts`) and kept in memory. A run stored without its
   arrays, or in returns form (without positions), raises
   :class:`~foldwise.errors.ArraysNotKeptError`: the caller runs it again.

:meth:`ResultsMemory.load_returns` serves the readers that need a run's returns form only
(:class:`~foldwise.cache._returns.RunReturns`: the metrics of windows, the statistics across
runs): from a result in memory, else from its artifact in either form; not kept (a tenth of
a full result, read once by such readers).

The memory is bounded twice: by the number of results (``size``, least recently used
dropped first) and by the bytes of their arrays (:data:`RESULTS_BYTES`); the most recent
result is kept whatever its size. Every array of a kept result is made read-only, because
the same object is handed to every caller that asks for the run. Results are immutable
and keys content-addressed, so nothing kept can go stale; eviction and clearing drop what
they delete (:meth:`ResultsMemory.discard`).

Another process may evict or clear an entry between its lookup here and the reading of its
artifact. The artifact is then gone, but so is its index row: that is an eviction, not
damage. Before an unreadable artifact is called damaged, the index is asked again
(``stale``); an entry no longer stored as it was looked up is a
:class:`~foldwise.errors.CacheMissError` (logged at debug level), which the write path
treats as a miss and runs again. Only a row that still names a missing or bad file is a
:class:`~foldwise.errors.CacheCorruptedError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from foldwise.cache._artifacts import ArtifactStore, holds_positions
from foldwise.cache._locks import renew_after_fork
from foldwise.cache._returns import RunReturns
from foldwise.errors import ArraysNotKeptError, CacheCorruptedError, CacheMissError

if TYPE_CHECKING:
    from foldwise.backtest import BacktestResult
    from foldwise.cache._costs import ArrayPolicy
    from foldwise.cache._records import CacheRecord

__all__ = ["RESULTS_BYTES", "ResultsMemory", "returns_nbytes", "stored_nbytes"]

logger = logging.getLogger(__name__)

_Read = TypeVar("_Read")

#: Bytes of arrays the results memory of one cache object may hold (the most recent result
#: is kept whatever its size). 64 MB, not more: loky restarts a worker process whose memory
#: grew by 300 MB over a task, and with 256 MB here the workers of an ``n_jobs=2`` study of
#: a 40-asset panel were restarted after most folds (re-importing everything, measured:
#: n_jobs=2 slower than n_jobs=1). Runs that are dear to compute keep their arrays on disk,
#: where reading one back costs a millisecond.
RESULTS_BYTES = 64 * 2**20


def stored_nbytes(result: BacktestResult, positions: bool = True) -> int:
    """Bytes of the arrays an artifact of ``result`` holds, uncompressed: its returns form,
    and its positions unless ``positions`` is false."""
    held = result.arrays.positions
    return returns_nbytes(len(result)) + (held.nbytes if positions and held is not None else 0)


def returns_nbytes(n_dates: int) -> int:
    """Bytes of a run's returns form (:class:`~foldwise.cache._returns.RunReturns`) over
    ``n_dates`` dates: dates, four float columns and the trade counts."""
    return 6 * 8 * n_dates


class ResultsMemory:
    """Full results kept in memory, bounded by count and bytes, and loaded on demand.

    Parameters
    ----------
    store
        Reads the artifact of a full run that is not in memory.
    size
        Results kept at most (0: none beyond the most recent one).
    lookup
        The record of a digest (the full run of a slice entry), or None.
    stale
        Asks the index whether a record whose artifact cannot be read is still stored as
        it was looked up; True (and the record forgotten) when another process evicted,
        cleared or replaced it since. Default: never (every unreadable artifact is damage).
    policy
        Told how long each artifact read took (:class:`~foldwise.cache._costs.ArrayPolicy`).

    Thread-safe; one per cache object.
    """

    def __init__(self, store: ArtifactStore, size: int,
                 lookup: Callable[[str], CacheRecord | None],
                 stale: Callable[[CacheRecord], bool] | None = None,
                 policy: ArrayPolicy | None = None) -> None:
        self._store = store
        self._policy = policy
        self.size = int(size)
        self._lookup = lookup
        self._stale = stale
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[BacktestResult, int]] = OrderedDict()
        self.nbytes = 0
        renew_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def load(self, record: CacheRecord) -> BacktestResult:
        """The result of ``record``: from memory, else read from its artifact and kept.

        Raises
        ------
        CacheCorruptedError
            The index still names an artifact file that is missing, truncated or not the
            one recorded.
        CacheMissError
            The entry (or the full run of a slice entry) is no longer in the cache:
            evicted or cleared, possibly by another process since it was looked up.
        ArraysNotKeptError
            The run (or the full run of a slice entry) is stored without its arrays, or
            without its positions, which cost less to re-compute than to store; not in
            memory now.
        """
        window = record.window
        if window is not None:
            return self.load(self._parent(record)).islice(window.start, window.stop)
        kept = self.kept(record.key)
        if kept is not None:
            return kept
        artifact = record._row.artifact
        if artifact is None or not holds_positions(artifact):
            raise _not_kept(record, "its arrays" if artifact is None
                            else "its positions (only its returns)")
        started = time.perf_counter()
        result = self._read(record, self._store.load)
        if self._policy is not None:
            self._policy.read(time.perf_counter() - started, stored_nbytes(result))
        self.keep(record.key, result)
        return result

    def load_returns(self, record: CacheRecord) -> RunReturns:
        """The returns form of ``record``'s run: from a result in memory, else read from its
        artifact (with or without positions); not kept.

        Raises
        ------
        CacheCorruptedError, CacheMissError
            As :meth:`load`.
        ArraysNotKeptError
            The run is stored without arrays and is not in memory now.
        """
        window = record.window
        if window is not None:
            return self.load_returns(self._parent(record)).islice(window.start, window.stop)
        kept = self.kept(record.key)
        if kept is not None:
            return RunReturns.of(kept)
        if record._row.artifact is None:
            raise _not_kept(record, "its arrays")
        started = time.perf_counter()
        returns = self._read(record, self._store.load_returns)
        if self._policy is not None:
            self._policy.read(time.perf_counter() - started, returns_nbytes(len(returns)))
        return returns

    def _parent(self, record: CacheRecord) -> CacheRecord:
        """The full run a slice entry is cut from."""
        parent = self._lookup(record.parent or "")
        if parent is None:
            raise CacheMissError(
                f"the slice entry {record.key} of {record.strategy!r} stores metrics only "
                f"and its full run {record.parent} is no longer in the cache (evicted?). "
                "Run it again with cache.get_or_run(strategy, params, data, ...) to "
                "rebuild the arrays.")
        return parent

    def _read(self, record: CacheRecord, read: Callable[[str, str, int], _Read]) -> _Read:
        """``read(artifact, checksum, n_bytes)`` of ``record``'s artifact; an artifact gone
        because another process evicted the entry since it was looked up is a miss."""
        row = record._row
        assert row.artifact is not None
        try:
            return read(row.artifact, row.checksum or "", row.n_bytes)
        except CacheCorruptedError:
            if self._stale is None or not self._stale(record):
                raise  # the index still names this file: damage
            logger.debug("run %s of %r was evicted from the cache while it was being read",
                         record.key, record.strategy)
            raise CacheMissError(
                f"the run {record.key} of {record.strategy!r} is no longer in the cache: it "
                "was evicted or cleared (by another process) after it was looked up. Run "
                "it again with cache.get_or_run(strategy, params, data, ...).") from None

    def kept(self, digest: str) -> BacktestResult | None:
        """The result of the full run ``digest`` if it is in memory now."""
        with self._lock:
            found = self._kept.get(digest)
            if found is None:
                return None
            self._kept.move_to_end(digest)
            return found[0]

    def keep(self, digest: str, result: BacktestResult) -> None:
        """Keep ``result`` (the full run of ``digest``) as the most recent; make its arrays
        read-only; drop the least recently used beyond the bounds."""
        size = 0
        arrays = result.arrays
        for array in (arrays.net, arrays.gross, arrays.costs, arrays.turnover,
                      arrays.positions, arrays.changes):
            if array is not None:
                array.flags.writeable = False
                size += array.nbytes
        with self._lock:
            if digest in self._kept:
                self.nbytes -= self._kept.pop(digest)[1]
            self._kept[digest] = (result, size)
            self.nbytes += size
            while len(self._kept) > 1 and (len(self._kept) > self.size
                                           or self.nbytes > RESULTS_BYTES):
                self.nbytes -= self._kept.popitem(last=False)[1][1]

    def discard(self, digests: Iterable[str]) -> None:
        """Forget the results of ``digests`` (deleted entries)."""
        with self._lock:
            for digest in digests:
                kept = self._kept.pop(digest, None)
                if kept is not None:
                    self.nbytes -= kept[1]

    def clear(self) -> None:
        """Forget every result (they are read from their artifacts again when asked)."""
        with self._lock:
            self._kept.clear()
            self.nbytes = 0


def _not_kept(record: CacheRecord, what: str) -> ArraysNotKeptError:
    """The error for a run stored without ``what`` and not in memory."""
    return ArraysNotKeptError(
        f"the run {record.key} of {record.strategy!r} is stored without {what}: running it "
        "again costs less than storing them. cache.get_or_run(strategy, params, data, ...) "
        "runs it again (its metrics are in record.metrics).")
