"""The cache index: one row per stored run, behind a small storage interface.

:class:`IndexBackend` is the extension point. :class:`~foldwise.cache.SQLiteIndex` (the
default, one file next to the artifacts, in :mod:`foldwise.cache._sqlite`),
:class:`MemoryIndex` (process-local, for tests and throw-away caches) and
:class:`~foldwise.cache.PostgresIndex` (a database server that every host of a cluster
reaches, in :mod:`foldwise.cache._postgres`) implement it and pass the same contract suite
(:mod:`foldwise.testing.cache_backends`) without any change to
:class:`~foldwise.BacktestCache` or its callers.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from foldwise.errors import CacheError

__all__ = ["COLUMNS", "KINDS", "IndexBackend", "IndexRow", "MemoryIndex", "RunLock"]


class RunLock(Protocol):
    """A lock taken by :meth:`IndexBackend.run_lock`; ``release()`` gives it back."""

    def release(self) -> None: ...


#: Kinds of row: a full run (metrics and artifacts) or a metrics-only slice of one.
KINDS = ("full", "slice")


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One stored run. Every field is a plain value so any database can hold it.

    Attributes
    ----------
    key : str
        The digest of the entry's :class:`~foldwise.cache.CacheKey`; unique.
    kind : str
        ``"full"`` (a whole run with artifacts) or ``"slice"`` (metrics of a window of a
        full run, no artifacts).
    strategy, fingerprint : str
        The strategy's name and code fingerprint.
    params, settings : str
        Canonical JSON of the parameters and of the backtest settings.
    data_hash : str
        Content hash of the market data.
    window : str or None
        JSON ``[start, stop, first_date, last_date]`` of a slice; None for a full run.
    parent : str or None
        Key of the full run a slice is cut from; None for a full run.
    metrics : str
        JSON object of metric name to number (``NaN`` and ``Infinity`` as Python's json
        module writes them).
    artifact : str or None
        Path of the artifact file relative to the cache directory; None for a slice.
    checksum : str or None
        xxh3-128 of the artifact file's bytes.
    n_bytes : int
        Size of the artifact file (0 for a slice).
    created, last_used : float
        Unix times (seconds).
    """

    key: str
    kind: str
    strategy: str
    fingerprint: str
    params: str
    data_hash: str
    settings: str
    window: str | None
    parent: str | None
    metrics: str
    artifact: str | None
    checksum: str | None
    n_bytes: int
    created: float
    last_used: float


#: The fields of a row, in order (every backend stores these columns).
COLUMNS = tuple(f.name for f in fields(IndexRow))


class IndexBackend(abc.ABC):
    """Where the cache keeps its rows. Subclass it to store the index elsewhere.

    Contract (checked by :class:`foldwise.testing.cache_backends.IndexBackendContract`):

    * **Rows are immutable** except ``last_used``. :meth:`insert` never overwrites: the
      first row stored under a key wins, and every later insert of that key returns the
      stored row unchanged. A key always means the same content, so two writers racing on
      one key lose nothing.
    * **Atomic.** A reader sees a whole row or no row, never part of one; a process killed
      at any instant leaves every committed row readable.
    * **Thread-safe.** One instance is used from many threads at once without outside
      locking.
    * **Shareable** when :attr:`shareable` is true: several processes (also forked
      children of a process that used the instance) may open the same location and see
      each other's committed rows, and the instance pickles as its location (never its
      connections), so a worker process that unpickles it opens the same store. A
      process-local backend keeps the default (false); a cache on it cannot be sent to
      worker processes.
    * **Ownership.** The backend owns rows only. Artifact files belong to the cache, which
      writes a file completely before inserting the row that names it, and deletes the row
      before the file; a backend never touches files it did not create itself.
    * **Returned rows are values**: :class:`IndexRow` is frozen; the backend keeps no
      reference it could later mutate.

    Only :meth:`close`, :attr:`shareable`, :attr:`read_only_reason` and :meth:`run_lock`
    are optional (a no-op, False, None and None by default); :meth:`insert_many` and
    :meth:`get_many` have defaults built on :meth:`insert` and :meth:`get`.
    """

    @property
    def shareable(self) -> bool:
        """True if other processes can open the store this backend is a handle on (and the
        instance pickles as its location). Default: False, a process-local store."""
        return False

    @abc.abstractmethod
    def get(self, key: str) -> IndexRow | None:
        """The row stored under ``key``, or None. One indexed lookup: this is the hot path."""

    def get_many(self, keys: Collection[str]) -> dict[str, IndexRow]:
        """The rows stored under ``keys``, by key (absent keys left out).

        The cache looks up a missed parameter set's full run and its windows in one call.
        Override it to read them in one query (the default calls :meth:`get` per key).
        """
        return {key: row for key in dict.fromkeys(keys) if (row := self.get(key)) is not None}

    @abc.abstractmethod
    def insert(self, row: IndexRow) -> IndexRow:
        """Store ``row`` unless its key is present; return the row now stored under the key."""

    def insert_many(self, rows: Sequence[IndexRow]) -> list[IndexRow]:
        """:meth:`insert` each row; return the rows now stored under their keys, in order.

        The cache stores a new run with the slice entries cut from it in one call.
        Override it to store them in one transaction (the default inserts one by one,
        which keeps every row atomic but not the batch).
        """
        return [self.insert(row) for row in rows]

    @abc.abstractmethod
    def touch(self, last_used: Mapping[str, float]) -> None:
        """Raise ``last_used`` of each key to the given time (never lower it).

        Keys that are not stored are ignored. Called in batches, rarely, off the hot path.
        """

    @abc.abstractmethod
    def delete(self, keys: Collection[str]) -> list[IndexRow]:
        """Delete the rows of ``keys``; return the rows this call deleted (absent keys skipped)."""

    @abc.abstractmethod
    def rows(self, *, strategy: str | None = None, kind: str | None = None) -> list[IndexRow]:
        """Every row, optionally only those of one strategy name and/or kind, oldest first."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the rows are, for messages (a path, a URL without password)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections held by this process. Optional; the instance may be reused."""

    @property
    def read_only_reason(self) -> str | None:
        """Why this index cannot be written (e.g. its file is on a read-only file system),
        or None when it can. The cache refuses to store runs in a read-only index before
        writing anything, with this reason. Optional; default None."""
        return None

    def run_lock(self, digest: str) -> RunLock | None:
        """Wait for and take the lock under which the cache runs a missed key; or None.

        Optional hook. The cache takes it from the moment it sees that ``digest`` is
        missing until the run's rows are committed, so a parameter set that several workers
        miss at the same moment is run once. A backend whose store is shared by hosts that
        do not share a lock-capable file system returns a lock the store itself keeps (e.g.
        a database's advisory lock): it must exclude every other holder of the same digest
        — other processes, other hosts, other threads of this process — and be dropped when
        its holder dies. The cache calls ``release()`` once, from the same thread. Default:
        None, and the cache's lock files in its directory serve (``flock``: every process
        of a host, or of hosts sharing a file system whose locks span them).
        """
        return None

    def integrity_problems(self) -> list[str]:
        """Damage the store itself can detect (e.g. SQLite's ``PRAGMA quick_check``), one
        sentence each; empty when it finds none or cannot check. Optional hook."""
        return []

    def reset(self) -> str:
        """Start empty because the store is damaged (``verify(repair=True)`` calls it when
        :meth:`integrity_problems` finds damage); return what became of the old rows, for
        the report. Optional hook: the default refuses."""
        raise CacheError(
            f"the cache index {self.describe()} is damaged and this kind of index cannot be "
            "reset by foldwise; restore or recreate it with its own tools.")


class MemoryIndex(IndexBackend):
    """Rows in a dict, for one process: tests and throw-away caches.

    Examples
    --------
    >>> index = MemoryIndex()
    >>> index.get("0" * 32) is None
    True
    """

    def __init__(self) -> None:
        self._rows: dict[str, IndexRow] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> IndexRow | None:
        return self._rows.get(key)

    def get_many(self, keys: Collection[str]) -> dict[str, IndexRow]:
        rows = self._rows
        return {key: row for key in keys if (row := rows.get(key)) is not None}

    def insert(self, row: IndexRow) -> IndexRow:
        with self._lock:
            return self._rows.setdefault(row.key, row)

    def touch(self, last_used: Mapping[str, float]) -> None:
        with self._lock:
            for key, when in last_used.items():
                row = self._rows.get(key)
                if row is not None and when > row.last_used:
                    self._rows[key] = _replace_last_used(row, when)

    def delete(self, keys: Collection[str]) -> list[IndexRow]:
        with self._lock:
            return [row for key in keys if (row := self._rows.pop(key, None)) is not None]

    def rows(self, *, strategy: str | None = None, kind: str | None = None) -> list[IndexRow]:
        with self._lock:
            selected = [r for r in self._rows.values()
                        if (strategy is None or r.strategy == strategy)
                        and (kind is None or r.kind == kind)]
        return sorted(selected, key=lambda r: (r.created, r.key))

    def describe(self) -> str:
        return "memory"

    def __reduce__(self) -> Any:
        raise CacheError(
            "a MemoryIndex lives in one process and cannot be sent to another; use the "
            "default SQLite index (BacktestCache(path)) to share a cache between processes.")


def _replace_last_used(row: IndexRow, when: float) -> IndexRow:
    values = {name: getattr(row, name) for name in COLUMNS}
    values["last_used"] = when
    return IndexRow(**values)
