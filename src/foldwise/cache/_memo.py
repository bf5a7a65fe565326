"""The record memo: the optimizer's hot path, a dict lookup instead of a query.

How a lookup works (:meth:`RecordMemo.lookup`):

1. The digest is looked up in a process-local dict of records. Records are immutable and
   keys content-addressed, so a remembered record can never be stale; only deletions by
   this object forget one (:meth:`RecordMemo.forget`).
2. Only the first lookup of a key in a process runs one indexed query on the index; the
   record built from the row is remembered (at most ``size`` of them and at most
   :data:`MEMO_BYTES` of their estimated size, the oldest read dropped first). An
   optimization of 20,000 trials stores some 40,000 rows: remembered without a bound on
   their bytes, they grew the process by hundreds of bytes per trial. A record dropped
   here costs one indexed query when it is asked for again.
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

__all__ = ["MEMO_BYTES", "RecordMemo", "record_nbytes"]

logger = logging.getLogger(__name__)

#: Estimated bytes of the records one memo holds at most (:func:`record_nbytes`).
MEMO_BYTES = 8 * 2**20

#: Bytes of a record beyond the text of its row: the record, its row, their slots and
#: the decoded metrics (measured with ``tracemalloc``: about 600 for two metrics).
_RECORD_OVERHEAD = 600


def record_nbytes(row: IndexRow) -> int:
    """An estimate of the memory a remembered record of ``row`` takes (text counted in
    full even where it is shared with a key)."""
    return _RECORD_OVERHEAD + sum(
        len(text) for text in (row.key, row.strategy, row.fingerprint, row.params,
                               row.data_hash, row.settings, row.window, row.parent,
                               row.metrics, row.artifact, row.checksum) if text)


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
        Records remembered at most (and at most :data:`MEMO_BYTES` of them).
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
        self._records: dict[str, tuple[CacheRecord, int]] = {}
        self.nbytes = 0  # estimated bytes of the remembered records
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
            found = self._records.get(digest)
            record = None if found is None else found[0]
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

    def remembers(self, digests: list[str]) -> bool:
        """True when every digest's record is remembered (a lookup costs no query)."""
        records = self._records
        return all(digest in records for digest in digests)

    def lookup_many(self, digests: list[str], count: bool = False) -> list[CacheRecord | None]:
        """:meth:`lookup` of each digest, in order, with one index query (``get_many``)
        for those not remembered: a missed set's windows and full run together."""
        with self._lock:
            found = [self._records.get(digest) for digest in digests]
        if all(entry is not None for entry in found):
            return [self.lookup(digest, count) for digest in digests]
        absent = [d for d, entry in zip(digests, found, strict=True) if entry is None]
        rows = self.index.get_many(absent)
        for row in rows.values():
            self.remember(row)
        out: list[CacheRecord | None] = []
        for digest, entry in zip(digests, found, strict=True):
            if entry is None and digest not in rows:
                with self._lock:
                    self.misses += count
                out.append(None)
            else:
                out.append(self.lookup(digest, count))  # remembered now: counts the hit
        return out

    def remember(self, row: IndexRow) -> CacheRecord:
        """The record of ``row``, remembered (the oldest remembered one may be dropped)."""
        record = self._make_record(row)
        size = record_nbytes(row)
        with self._lock:
            records = self._records
            old = records.pop(row.key, None)
            if old is not None:
                self.nbytes -= old[1]
            records[row.key] = (record, size)
            self.nbytes += size
            while records and (len(records) > self.size
                               or (self.nbytes > MEMO_BYTES and len(records) > 1)):
                self.nbytes -= records.pop(next(iter(records)))[1]  # the oldest read first
        return record

    def forget(self, digests: Iterable[str]) -> None:
        """Forget the records (and pending last-used times) of deleted entries."""
        with self._lock:
            for digest in digests:
                found = self._records.pop(digest, None)
                if found is not None:
                    self.nbytes -= found[1]
                self._touched.pop(digest, None)

    def clear(self) -> None:
        """Forget every record (pending last-used times are kept)."""
        with self._lock:
            self._records.clear()
            self.nbytes = 0

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
