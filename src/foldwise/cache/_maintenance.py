"""Keeping a cache directory in shape: statistics, eviction, clearing and verification.

Two halves:

* **Decisions**, pure functions over index rows and directory listings: which entries to
  evict (:func:`eviction_victims`), which artifacts are missing or damaged and which files
  are orphans, unfinished writes or foreign (:func:`inspect`), which leftovers are old
  enough to sweep (:meth:`~foldwise.cache._artifacts.ArtifactStore.sweep`).
* **Their application** to one cache (:class:`Maintenance`). Deletion goes the other way
  from writing: index rows first, then their files, so a crash in between leaves an orphan
  file (reported and swept later), never a row naming a missing file. Deleted entries are
  forgotten by the record memo and the results memory of the cache object.

Nothing here opens a file other than to read an artifact's bytes, and foreign files are
never deleted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from foldwise.cache._artifacts import ArtifactStore, DirectoryScan, file_of, holds_positions
from foldwise.cache._index import IndexBackend, IndexRow
from foldwise.cache._locks import LOCK_FILES
from foldwise.cache._memo import RecordMemo
from foldwise.cache._pins import Pins
from foldwise.cache._records import CacheStats, VerifyReport
from foldwise.cache._results import ResultsMemory
from foldwise.cache._sqlite import DAMAGED_MARK, INDEX_FILES, INDEX_NAME
from foldwise.errors import CacheArgumentError, CacheCorruptedError

__all__ = ["Maintenance", "directory_bytes", "eviction_victims", "inspect", "parse_seconds"]

logger = logging.getLogger(__name__)

#: Files of a cache directory that are neither artifacts nor foreign.
KNOWN_FILES = INDEX_FILES | LOCK_FILES

#: Seconds a leftover (an unfinished write, a pack no row names) is kept: younger ones may
#: belong to a process writing right now.
PACK_GRACE = 600.0

_UNITS = {
    **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 604800.0),
}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")


def parse_seconds(value: float | _dt.timedelta | str) -> float:
    """Seconds in ``value``: a number of seconds, a ``timedelta``, or text such as
    ``"12h"``, ``"30d"``, ``"90min"``, ``"2 weeks"``.

    >>> parse_seconds("1.5h"), parse_seconds(_dt.timedelta(days=1)), parse_seconds(60)
    (5400.0, 86400.0, 60.0)
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif match is not None and match.group(2).lower() in _UNITS:
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise CacheArgumentError(
            f"{value!r} is not a duration; use seconds, a timedelta or text such as '12h', "
            "'30d' or '90min'.")
    if not seconds >= 0:
        raise CacheArgumentError(f"a duration must be >= 0, got {value!r}.")
    return seconds


def eviction_victims(rows: Iterable[IndexRow], older_than: float | _dt.timedelta | str | None,
                     max_bytes: int | None, now: float) -> list[str]:
    """Keys to evict: unused for ``older_than``, then full runs least recently used first
    until the artifacts left take at most ``max_bytes``."""
    if older_than is None and max_bytes is None:
        raise CacheArgumentError(
            "evict() needs older_than=... (seconds, timedelta or '30d') and/or "
            "max_bytes=...; to remove everything use clear().")
    if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
        raise CacheArgumentError(f"max_bytes must be an integer >= 0, got {max_bytes!r}.")
    ordered = sorted(rows, key=lambda r: (r.last_used, r.key))
    victims: dict[str, None] = {}
    if older_than is not None:
        cutoff = now - parse_seconds(older_than)
        victims.update((r.key, None) for r in ordered if r.last_used < cutoff)
    if max_bytes is not None:
        kept = [r for r in ordered if r.key not in victims and r.n_bytes]
        total = sum(r.n_bytes for r in kept)
        for row in kept:
            if total <= max_bytes:
                break
            victims[row.key] = None
            total -= row.n_bytes
    return list(victims)


def inspect(store: ArtifactStore, rows: list[IndexRow], scan: DirectoryScan) -> VerifyReport:
    """Check each row's artifact (bytes against the recorded checksum, Parquet footer) and
    sort the files of ``scan`` into orphans, unfinished writes and foreign files."""
    report = VerifyReport(checked=len(rows), temporary=list(scan.temporary),
                          foreign=list(scan.foreign))
    referenced = set()
    for row in rows:
        damage = _row_damage(row)
        if damage is not None:
            report.corrupted.append((row.key, damage))
            continue
        if row.artifact is None:
            continue
        referenced.add(file_of(row.artifact))
        try:
            exists = store.exists(row.artifact)
        except CacheCorruptedError as exc:  # a name foldwise never writes
            report.corrupted.append((row.key, str(exc)))
            continue
        if not exists:
            report.missing.append(row.key)
            continue
        problem = store.check(row.artifact, row.checksum or "", row.n_bytes)
        if problem is not None:
            report.corrupted.append((row.key, problem))
    report.orphans = [a for a in scan.artifacts if a not in referenced]
    return report


def _row_damage(row: IndexRow) -> str | None:
    """Why an index row cannot be read back (its JSON columns), or None."""
    for name in ("params", "settings", "metrics", "window"):
        text = getattr(row, name)
        if text is None and name == "window":
            continue
        try:
            json.loads(text)
        except (TypeError, ValueError) as exc:
            return f"the index row's {name} are not readable JSON ({exc})"
    return None


def directory_bytes(directory: Path) -> int:
    """Total size of the files under ``directory``."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


class Maintenance:
    """Statistics, eviction, clearing and verification of one cache object's directory.

    The public methods of :class:`~foldwise.BacktestCache` of the same names delegate here
    (their docstrings say what each one does for users).
    """

    def __init__(self, directory: Path, index: IndexBackend, store: ArtifactStore,
                 memo: RecordMemo, results: ResultsMemory, pins: Pins) -> None:
        self.directory = directory
        self.index = index
        self._store = store
        self._memo = memo
        self._results = results
        self.pins = pins

    def _unpinned(self, rows: list[IndexRow], include_pinned: bool, action: str
                  ) -> list[IndexRow]:
        """``rows`` without those studies pin (a pinned run and its window slices); says
        how many were kept and by whom."""
        if include_pinned:
            return rows
        pinned = self.pins.pinned()
        if not pinned:
            return rows
        kept = [r for r in rows if r.key in pinned or (r.parent or "") in pinned]
        if kept:
            owners = sorted({owner for r in kept
                             for owner in pinned.get(r.key) or pinned.get(r.parent or "", [])})
            logger.warning("%s kept %d entries that stored studies reference (%s); pass "
                           "include_pinned=True (--include-pinned) to remove them too",
                           action, len(kept), "; ".join(owners[:3])
                           + (f" and {len(owners) - 3} more" if len(owners) > 3 else ""))
        dropped = {r.key for r in kept}
        return [r for r in rows if r.key not in dropped]

    def drop(self, keys: list[str]) -> list[IndexRow]:
        """Delete rows, then their files (and the pack files no row names any more);
        forget them in memory. Return the deleted rows."""
        deleted = self.index.delete(keys)
        packed = False
        for row in deleted:
            if row.artifact is not None:
                packed = packed or file_of(row.artifact) != row.artifact
                try:
                    self._store.remove(row.artifact)
                except CacheCorruptedError:
                    logger.warning("not deleting %r: not a file name foldwise writes", row.artifact)
        if packed:
            self._remove_packs()
        self._memo.forget(keys)
        self._results.discard(keys)
        return deleted

    def _remove_packs(self) -> None:
        """Delete the pack files no row names (left alone: those written in the last
        :data:`PACK_GRACE` seconds, which another process may be appending to)."""
        named = {row.artifact for row in self.index.rows(kind="full") if row.artifact}
        self._store.remove_packs(named, PACK_GRACE)

    def stats(self) -> CacheStats:
        self._memo.flush()
        rows = self.index.rows()
        strategies: dict[str, int] = {}
        for row in rows:
            strategies[row.strategy] = strategies.get(row.strategy, 0) + 1
        full = sum(1 for row in rows if row.kind == "full")
        hits, misses, puts = self._memo.counts()
        return CacheStats(directory=str(self.directory), runs=len(rows), full_runs=full,
                          slice_runs=len(rows) - full, strategies=strategies,
                          artifact_bytes=sum(row.n_bytes for row in rows),
                          bytes_on_disk=self._bytes_stored(), hits=hits,
                          misses=misses, puts=puts,
                          with_arrays=sum(1 for row in rows if row.artifact is not None),
                          with_positions=sum(1 for row in rows if row.artifact is not None
                                             and holds_positions(row.artifact)),
                          recomputed=self._memo.recomputed,
                          artifact_location=self._store.location.description
                          if self._store.location.spec is not None else None)

    def _bytes_stored(self) -> int:
        """Bytes of the cache directory, plus those of the artifact location when it is
        elsewhere (a shared mount, an object store)."""
        total = directory_bytes(self.directory)
        if self._store.location.local_path != self.directory.absolute():
            total += sum(size for _, size in self._store.scan(set()).found.values())
        return total

    def evict(self, older_than: float | _dt.timedelta | str | None,
              max_bytes: int | None, include_pinned: bool = False) -> int:
        self._memo.flush()
        rows = self.index.rows()
        eviction_victims(rows[:0], older_than, max_bytes, 0.0)  # check the arguments first
        candidates = self._unpinned(rows, include_pinned, "evict")
        victims = eviction_victims(candidates, older_than, max_bytes, time.time())
        return len(self.drop(victims))

    def clear(self, include_pinned: bool = False) -> int:
        rows = self.index.rows()
        removed = self.drop([row.key for row in self._unpinned(rows, include_pinned, "clear")])
        named = {file_of(row.artifact) for row in self.index.rows() if row.artifact is not None}
        scan = self._scan()
        current = self._store.writing()
        self._store.sweep(scan.temporary + [a for a in scan.artifacts
                                            if a not in named and a != current], PACK_GRACE)
        self._memo.clear()
        self._results.clear()
        return len(removed)

    def _scan(self) -> DirectoryScan:
        """The directory's files; an index set aside as damaged is the cache's own."""
        scan = self._store.scan(set(KNOWN_FILES))
        scan.foreign = [f for f in scan.foreign
                        if not (f.startswith(INDEX_NAME + DAMAGED_MARK) and "/" not in f)]
        return scan

    def verify(self, repair: bool, grace: float) -> VerifyReport:
        self._memo.flush()
        scan = self._scan()
        problems = self.index.integrity_problems()
        try:
            rows = self.index.rows()
        except CacheCorruptedError as exc:  # rows past the damage cannot be listed
            rows, problems = [], [*problems, str(exc)]
        if repair and problems:  # the index itself is damaged: start an empty one
            reset = self.index.reset()
            self._memo.clear()
            self._results.clear()
            rows, scan = [], self._scan()
        report = inspect(self._store, rows, scan)
        report.index_problems = problems
        if repair and problems:
            report.index_reset = reset
        for problem in report.index_problems:
            logger.warning("cache index %s: %s", self.index.describe(), problem)
        for path in report.foreign:
            logger.warning("foreign file in the cache directory (not opened): %s",
                           self.directory / path)
        if repair:
            self.drop(report.missing + [key for key, _ in report.corrupted])
            self._store.sweep(report.temporary + report.orphans, grace)
            report.repaired = True
        return report
