"""The record memo: the optimizer's hot path, a dict lookup instead of a query.

How a lookup works (:meth:`RecordMemo.lookup`):

1. The digest is looked up in a process-local dict of records. Records are immutable and
   keys content-addressed, so a remembered record can never be stale; only deletions by
   this object forget one (:meth:`RecordMemo.forget`).
2. Only the first lookup of a key in a process runs one indexed query on the index; the
   record built from the row is remembered (at most ``size`` of them, the oldest read
   dropped first).
3. The last-used time of a hit is noted in memory and written in one batch at most every
   ``touch_interval`` seconds (and on :meth:`RecordMemo.flush`, which eviction, close and
   browsing call, and at exit), so hits never wait for a write. Last-used times only steer
   eviction: failing to write them is logged, never raised.

The memo also counts this process's hits, misses, stored entries and executed backtests
for :meth:`~foldwise.BacktestCache.stats`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from foldwise.cache._index import IndexBackend, IndexRow
from foldwise.cache._locks import renew_after_fork
from foldwise.cache._records import CacheRecord

__all__ = ["RecordMemo"]

logger = logging.getLogger(__name__)


def _write_last_used(index: IndexBackend, batch: dict[str, float]) -> None:
    if not batch:
        return
    try:
        index.touch(batch)
    except Exception as exc:  # last-used times only steer eviction; never fail for them
        logger.warning("could not record last-used times in the cache index: %s", exc)


class RecordMemo:
    """Records of one cache object, looked up in memory first, with batched last-used times.

    Parameters
    ----------
    index
        Where rows are read from (and last-used times written to).
    make_record
        Builds the record of a row (it carries the loader of its arrays).
    size
        Records remembered at most.
    touch_interval
        Seconds between batched writes of last-used times.

    Thread-safe; one per cache object.
    """

    def __init__(self, index: IndexBackend, make_record: Callable[[IndexRow], CacheRecord],
                 size: int, touch_interval: float) -> None:
        self.index = index
        self._make_record = make_record
        self.size = int(size)
        self.touch_interval = float(touch_interval)
        self._lock = threading.Lock()
        self._records: dict[str, CacheRecord] = {}
        self._touched: dict[str, float] = {}
        self._last_flush = time.time()
        self.hits = self.misses = self.puts = self.executed = self.recomputed = 0
        # At exit or collection, write what hits are still pending (no other user is left).
        weakref.finalize(self, lambda index, pending: _write_last_used(index, dict(pending)),
                         index, self._touched)
        renew_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def lookup(self, digest: str, count: bool = False) -> CacheRecord | None:
        """The record of ``digest`` (memo first, then one index query), or None.

        ``count``: add the outcome to the hit and miss counts (a lookup the user asked for,
        not an internal one).
        """
        now = time.time()
        with self._lock:
            record = self._records.get(digest)
            if record is not None:
                self._touched[digest] = now
                self.hits += count
                if now - self._last_flush < self.touch_interval:
                    return record
        if record is None:
            row = self.index.get(digest)
            if row is None:
                with self._lock:
                    self.misses += count
                return None
            record = self.remember(row)
            with self._lock:
                self._touched[digest] = now
                self.hits += count
                if now - self._last_flush < self.touch_interval:
                    return record
        self.flush()
        return record

    def remember(self, row: IndexRow) -> CacheRecord:
        """The record of ``row``, remembered (the oldest remembered one may be dropped)."""
        record = self._make_record(row)
        with self._lock:
            self._records[row.key] = record
            if len(self._records) > self.size:  # the oldest read goes first
                del self._records[next(iter(self._records))]
        return record

    def forget(self, digests: Iterable[str]) -> None:
        """Forget the records (and pending last-used times) of deleted entries."""
        with self._lock:
            for digest in digests:
                self._records.pop(digest, None)
                self._touched.pop(digest, None)

    def clear(self) -> None:
        """Forget every record (pending last-used times are kept)."""
        with self._lock:
            self._records.clear()

    def flush(self) -> None:
        """Write the last-used times of recent hits to the index now."""
        with self._lock:
            self._last_flush = time.time()
            batch = dict(self._touched)
            self._touched.clear()  # in place: the finalizer holds this dict
        _write_last_used(self.index, batch)

    # --- counts of this process ------------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """``(hits, misses, puts)`` of this object so far."""
        with self._lock:
            return self.hits, self.misses, self.puts

    def count_stored(self, n: int) -> None:
        with self._lock:
            self.puts += n

    def count_executed(self) -> None:
        with self._lock:
            self.executed += 1

    def count_recomputed(self) -> None:
        """A stored run without arrays, run again because they were asked for."""
        with self._lock:
            self.recomputed += 1

    def count_damaged_hit(self) -> None:
        """A hit whose artifact turned out damaged: it is run again, so it was a miss."""
        with self._lock:
            self.hits -= 1
            self.misses += 1
