"""Keeping a cache directory in shape: what to evict, what is damaged, what to sweep.

Pure decisions over index rows and directory listings; :class:`BacktestCache` applies them
(rows are deleted before files, so a crash in between leaves an orphan file, never a row
naming a missing one). Nothing here opens a file other than to read an artifact's bytes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from foldwise.cache._artifacts import ArtifactStore, DirectoryScan
from foldwise.cache._index import IndexRow
from foldwise.cache._records import VerifyReport
from foldwise.errors import CacheArgumentError, CacheCorruptedError

__all__ = ["directory_bytes", "eviction_victims", "inspect", "parse_seconds", "sweep"]

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
        if row.artifact is None:
            continue
        referenced.add(row.artifact)
        try:
            exists = os.path.lexists(store.path(row.artifact))
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


def sweep(directory: Path, relpaths: Iterable[str], grace: float) -> None:
    """Delete the given leftovers that are older than ``grace`` seconds (younger ones may
    belong to a process writing right now)."""
    cutoff = time.time() - grace
    for relpath in relpaths:
        path = directory / relpath
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime <= cutoff:
                path.unlink()


def directory_bytes(directory: Path) -> int:
    """Total size of the files under ``directory``."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total
