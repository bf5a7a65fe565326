"""The default cache index: one SQLite file per cache directory, shared by the processes
of a host.

* **Concurrency.** Write-ahead logging lets readers proceed while one process writes; every
  write is one short ``BEGIN IMMEDIATE`` transaction. Writers of one file take turns on a
  ``flock`` lock file next to it (:class:`_WriterTurn`) instead of SQLite's sleep-and-retry.
* **Processes.** Each thread gets its own connection; a process forked from one that used
  the index opens new connections (detected by the process id) and never touches the
  parent's. An instance pickles as its path, so a worker process reopens the same file.
* **Damage.** A file that is not a usable index (or has another schema version) raises a
  :class:`~foldwise.errors.CacheError` naming the file and the fix; nothing in it is ever
  executed.
* **Reading only.** ``read_only=True`` creates nothing (an index that does not exist reads
  as empty) and never writes. An index whose file or directory this process cannot write
  (a read-only mount, another user's files) is opened the same way without being asked,
  and its writes raise :class:`~foldwise.errors.CacheReadOnlyError` naming the path, never
  a message blaming damage. How it is opened for reading (:meth:`SQLiteIndex._open_for_reading`):
  where the directory can be written, as usual (SQLite's WAL locking keeps reads
  consistent with a concurrent writer; its ``-wal``/``-shm`` files exist only while
  connected); where it cannot, ``mode=ro`` if a ``-wal`` file holds writes not yet folded
  into the database (SQLite reads it with the ``-shm`` beside it), else ``immutable=1``
  (the file holds everything, and SQLite would otherwise need to create a ``-shm`` file).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from foldwise.cache._index import COLUMNS, IndexBackend, IndexRow
from foldwise.cache._readonly import FIX, cannot_write, read_only_error, unwritable
from foldwise.errors import CacheCorruptedError, CacheError, CacheReadOnlyError

if sys.platform != "win32":
    import fcntl

__all__ = ["DAMAGED_MARK", "INDEX_FILES", "INDEX_NAME", "WRITE_LOCK_SUFFIX", "SQLiteIndex",
           "set_aside"]

logger = logging.getLogger(__name__)

#: Suffix of the lock file writers of one index take turns on (next to the index file).
WRITE_LOCK_SUFFIX = ".writelock"
#: File name of the SQLite index inside a cache directory.
INDEX_NAME = "index.sqlite"
#: The files of the SQLite index in a cache directory: the database, SQLite's own companion
#: files and the writers' lock file.
INDEX_FILES = frozenset(INDEX_NAME + suffix for suffix in ("", "-wal", "-shm", "-journal",
                                                          WRITE_LOCK_SUFFIX))


#: What marks an index file set aside as damaged: ``index.sqlite.damaged-<UTC time>``.
DAMAGED_MARK = ".damaged-"


def set_aside(path: str | os.PathLike[str]) -> Path | None:
    """Move a damaged SQLite index (and its -wal/-shm companions) aside, never delete it.

    The files are renamed to ``<name>.damaged-<UTC time>`` next to it, so the next open
    starts an empty index; the cache is a cache, and every run a study needs is re-created
    from its key. Returns the new path of the database file, or None if there was none.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = None
    for suffix in ("", "-wal", "-shm", "-journal"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            target = Path(f"{path}{DAMAGED_MARK}{stamp}{suffix}")
            try:
                os.replace(source, target)
            except OSError as exc:
                refused = read_only_error(exc, path.parent)
                if refused is None:
                    raise
                raise refused from exc
            moved = moved or target
    if moved is not None:
        logger.warning("the damaged cache index %s was moved to %s; an empty index starts in "
                       "its place and runs are re-created when asked for", path, moved)
    return moved


class _WriterTurn:
    """Writers of one index take turns with ``flock`` on a lock file next to it.

    SQLite lets one writer in at a time and makes the others sleep and retry with growing
    pauses (1, 2, 5, 10 ms ...): with several workers inserting a row per trial that wastes
    more time than the writes take. A kernel lock wakes the next writer the moment the
    previous one is done, and is dropped if a writer dies. One object per lock file and
    process, re-entrant within a thread (every index object on the file shares it).
    """

    def __init__(self, path: str) -> None:
        self._lock = threading.RLock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if sys.platform != "win32" else -1
        self._depth = 0
        self._owner: int | None = None

    def held_here(self) -> bool:
        return self._depth > 0 and self._owner == threading.get_ident()

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._depth == 0 and sys.platform != "win32":
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1
        self._owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            if sys.platform != "win32":
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()


_turns: dict[str, _WriterTurn] = {}
_turns_pid = os.getpid()
_turns_lock = threading.RLock()  # re-entrant: a finalizer may run while it is held


def _writer_turn(path: str) -> _WriterTurn:
    """This process's turn object for the lock file ``path`` (new ones after a fork)."""
    global _turns_pid
    with _turns_lock:
        if _turns_pid != os.getpid():  # forked: the parent's locks and descriptors are not ours
            _turns.clear()
            _turns_pid = os.getpid()
        turn = _turns.get(path)
        if turn is None:
            turn = _turns[path] = _WriterTurn(path)
        return turn

_SCHEMA_VERSION = 1
# Column order of the table is the field order of IndexRow ("window" is spelled "span"
# because WINDOW is an SQL keyword).
_SQL_COLUMNS = tuple("span" if c == "window" else c for c in COLUMNS)
_SELECT = f"SELECT {', '.join(_SQL_COLUMNS)} FROM runs"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    strategy TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    params TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    settings TEXT NOT NULL,
    span TEXT,
    parent TEXT,
    metrics TEXT NOT NULL,
    artifact TEXT,
    checksum TEXT,
    n_bytes INTEGER NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
) WITHOUT ROWID;
"""
#: Secondary indexes that files written before kept, dropped when such a file is opened for
#: writing. Every row insert paid for them (the hot path: a new run and its windows in one
#: transaction took 0.49 s of a 1,000-trial study with them, 0.31 s without); their only
#: readers are ``rows()``, which orders by creation anyway, and eviction, which sorts in
#: Python. A full scan of 40,000 rows takes milliseconds.
_DROPPED_INDEXES = ("runs_strategy", "runs_last_used")

# Connections opened by a parent process, found in a forked child: never used or closed
# there (SQLite forbids carrying a connection across fork), only kept from being collected.
_inherited: list[sqlite3.Connection] = []


def _reopen_sqlite(cls: type[SQLiteIndex], path: str, timeout: float,
                   read_only: bool = False) -> SQLiteIndex:
    return cls(path, timeout=timeout, read_only=read_only)


class SQLiteIndex(IndexBackend):
    """The index as one SQLite file, shared by every process on the host.

    Parameters
    ----------
    path
        The database file; created with its directory if missing (unless ``read_only``).
    timeout
        Seconds a statement waits for another process's write before failing
        (SQLite's busy timeout).
    read_only
        Only read: create nothing (a file that does not exist is an empty index) and never
        write; writes raise :class:`~foldwise.errors.CacheReadOnlyError`. An index whose
        file or directory cannot be written is opened this way even without it.

    Notes
    -----
    Write-ahead logging (``journal_mode=WAL``) lets readers proceed while one process
    writes; every write is one short transaction. ``synchronous=NORMAL``: a killed process
    loses nothing committed; a power cut may lose the last commits but never leaves a
    half-written row. Each thread gets its own connection, and a process forked from one
    that used the index opens new connections (detected by the process id).
    """

    @property
    def shareable(self) -> bool:
        """True: every process on the host can open the same file."""
        return True

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self._asked_read_only = bool(read_only)
        self._why_read_only = "it was opened read-only" if read_only else None
        self._local = threading.local()
        self._lock, self._lock_pid = threading.Lock(), os.getpid()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._ready_pid: int | None = None
        self._connection()  # fail early on an unusable file

    def __reduce__(self) -> Any:  # a copy (a worker process) reopens the same file
        return (_reopen_sqlite, (type(self), str(self.path), self.timeout,
                                 self._asked_read_only))

    def describe(self) -> str:
        return str(self.path)

    @property
    def read_only_reason(self) -> str | None:
        """Why this index is not written (opened read-only, or its file or directory
        cannot be written), or None."""
        return self._why_read_only

    def integrity_problems(self) -> list[str]:
        connection = self._connection()
        if connection is None:
            return []
        try:
            found = [str(r[0]) for r in connection.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            return [f"the index file cannot be checked: {exc}"]
        return [] if found == ["ok"] else found

    # --- connections -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection | None:
        """This thread's connection; None for a read-only index that does not exist."""
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) == pid:
            return local.connection
        if self._lock_pid != pid:  # forked: a parent thread may have held the lock
            self._lock, self._lock_pid = threading.Lock(), pid
        inherited = getattr(local, "connection", None)
        if inherited is not None:
            _inherited.append(inherited)
        with self._lock:
            if self._ready_pid != pid:  # first connection of this process (or after fork)
                _inherited.extend(c for p, c in self._connections if p != pid)
                self._connections = [(p, c) for p, c in self._connections if p == pid]
            connection = self._open()
            if connection is not None:
                self._connections.append((pid, connection))
            self._ready_pid = pid
        local.connection, local.pid = connection, pid
        return connection

    def _open(self) -> sqlite3.Connection | None:
        if self._why_read_only is not None:
            return self._open_for_reading()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            refused = read_only_error(exc, self.path.parent)
            if refused is None:
                raise
            raise refused from exc
        why = unwritable(self.path.parent, self.path)
        if why is not None:
            if not self.path.exists():
                raise CacheReadOnlyError(
                    f"cannot create the cache index {self.path}: {why}. {FIX}")
            # readable, not writable: serve reads, refuse writes with this reason
            self._why_read_only = why
            return self._open_for_reading()
        try:
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise CacheError(
                f"cannot open the cache index {self.path}: {exc}. Check that the directory "
                "exists and is writable, or choose another with BacktestCache(path) / "
                "$FOLDWISE_DIR / foldwise cache --dir.") from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._retry(lambda: self._setup(connection))
        except sqlite3.DatabaseError as exc:
            connection.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise self._stayed_locked() from exc
            if _refused_write(exc):
                why = unwritable(self.path.parent, self.path) or f"SQLite says: {exc}"
                raise CacheReadOnlyError(cannot_write(self.path.parent, why)) from exc
            if "disk is full" in str(exc):  # a fault of the disk, not damage to the index
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path)) from exc
            raise CacheCorruptedError(
                f"{self.path} is not a usable cache index ({exc}). It may be damaged or not "
                "a foldwise file: run `foldwise cache verify --repair` (it moves the file "
                "aside and starts an empty index; studies keep their results and the runs "
                "they need are re-created), or pass another directory.") from exc
        return connection

    def _stayed_locked(self) -> CacheError:
        return CacheError(f"the cache index {self.path} stayed locked for {self.timeout:g} s; "
                          "another process holds a long write. Retry, or raise timeout=.")

    def _open_for_reading(self) -> sqlite3.Connection | None:
        """A connection that only reads (see the module docstring); None when there is no
        index file or it holds no index yet (an empty index: nothing is created)."""
        if not self.path.exists():
            if self._asked_read_only:
                self._why_read_only = f"it was opened read-only and {self.path} does not exist"
            return None
        location = f"file:{quote(str(self.path.absolute()))}"
        wal = Path(f"{self.path}-wal")
        if unwritable(self.path.parent, self.path) is None:
            mode = "mode=rw"  # reads only (writes are refused before SQLite sees them)
        elif wal.exists() and wal.stat().st_size > 0:
            if not Path(f"{self.path}-shm").exists():
                raise CacheError(
                    f"the cache index {self.path} has writes in {wal} not yet folded into "
                    "it, and SQLite cannot read them without the -shm file it would have "
                    "to create in a directory this process cannot write. Open the cache "
                    "once where it can be written (any foldwise cache command run with "
                    "write access folds them in), or copy the cache directory elsewhere.")
            mode = "mode=ro"
        else:
            mode = "immutable=1"
        try:
            connection = sqlite3.connect(f"{location}?{mode}", uri=True, timeout=self.timeout,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CacheError(
                f"cannot open the cache index {self.path} for reading: {exc}. Check that "
                "this user can read it, or pass another cache directory.") from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            version = self._retry(lambda: self._schema_version(connection))
        except sqlite3.DatabaseError as exc:
            connection.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise self._stayed_locked() from exc
            if _refused_write(exc) or "unable to open" in str(exc):
                raise CacheError(
                    f"cannot read the cache index {self.path} ({exc}): this process may "
                    "not read it or the files beside it. Check the permissions, or pass "
                    "another cache directory.") from exc
            raise CacheCorruptedError(
                f"{self.path} is not a usable cache index ({exc}). It may be damaged or not "
                "a foldwise file: run `foldwise cache verify --repair` where the cache can "
                "be written (it moves the file aside and starts an empty index; studies "
                "keep their results and the runs they need are re-created), or pass "
                "another directory.") from exc
        if version is None:  # no index in the file yet: empty
            connection.close()
            return None
        if version != _SCHEMA_VERSION:
            connection.close()
            raise CacheError(
                f"the cache index {self.path} has schema version {version}, this foldwise "
                f"reads version {_SCHEMA_VERSION}. Upgrade foldwise, or use another cache "
                "directory.")
        return connection

    def _setup(self, connection: sqlite3.Connection) -> None:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        version = self._schema_version(connection)
        if version is None:
            with self._transaction(connection):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                   (str(_SCHEMA_VERSION),))
            version = self._schema_version(connection)
        elif version == _SCHEMA_VERSION:
            self._drop_old_indexes(connection)
        if version != _SCHEMA_VERSION:
            raise CacheError(
                f"the cache index {self.path} has schema version {version}, this foldwise "
                f"reads version {_SCHEMA_VERSION}. Upgrade foldwise, or use another cache "
                "directory.")

    def _drop_old_indexes(self, connection: sqlite3.Connection) -> None:
        """Drop the secondary indexes of a file written before (:data:`_DROPPED_INDEXES`)."""
        marks = ", ".join("?" * len(_DROPPED_INDEXES))
        present = [name for (name,) in connection.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
            _DROPPED_INDEXES)]
        if present:
            with self._transaction(connection):
                for name in present:
                    connection.execute(f"DROP INDEX IF EXISTS {name}")

    @staticmethod
    def _schema_version(connection: sqlite3.Connection) -> int | None:
        try:
            row = connection.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else int(row[0])

    def _retry(self, action: Any) -> Any:
        # Switching to WAL and creating the schema can report "locked" at once when many
        # processes open a new index together, without waiting for the busy timeout.
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    @staticmethod
    @contextlib.contextmanager
    def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _write(self, action: Any, *, unless_busy: bool = False) -> Any:
        """Run ``action`` in one write transaction, in this process's writing turn.

        ``unless_busy``: give up (return None) instead of waiting when this thread already
        holds the turn — a finalizer flushing last-used times in the middle of another
        write would otherwise wait for itself.
        """
        if self._why_read_only is not None:
            raise CacheReadOnlyError(cannot_write(self.path.parent, self._why_read_only))
        connection = self._connection()
        assert connection is not None  # only a read-only index has none

        def run() -> Any:
            with self._transaction(connection):
                return action(connection)

        try:
            turn = _writer_turn(f"{self.path}{WRITE_LOCK_SUFFIX}")
            if unless_busy and turn.held_here():
                return None
            with turn:
                return self._retry(run)
        except OSError as exc:  # the lock file cannot be created
            refused = read_only_error(exc, self.path.parent)
            if refused is None:
                raise
            raise refused from exc
        except sqlite3.OperationalError as exc:  # e.g. remounted read-only since it opened
            if not _refused_write(exc):
                raise
            why = unwritable(self.path.parent, self.path) or f"SQLite says: {exc}"
            raise CacheReadOnlyError(cannot_write(self.path.parent, why)) from exc

    # --- the interface ---------------------------------------------------------------

    def get(self, key: str) -> IndexRow | None:
        connection = self._connection()
        if connection is None:
            return None
        row = connection.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
        return None if row is None else IndexRow(*row)

    def get_many(self, keys: Collection[str]) -> dict[str, IndexRow]:
        """The rows of ``keys`` in one query (per 500 keys)."""
        keys = list(dict.fromkeys(keys))
        connection = self._connection()
        if connection is None or not keys:
            return {}
        found: dict[str, IndexRow] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for values in connection.execute(
                    f"{_SELECT} WHERE key IN ({', '.join('?' * len(chunk))})", chunk):
                found[values[0]] = IndexRow(*values)
        return found

    def insert(self, row: IndexRow) -> IndexRow:
        return self.insert_many([row])[0]

    def insert_many(self, rows: Sequence[IndexRow]) -> list[IndexRow]:
        """Insert the rows in one transaction (all or none) and read them back."""
        if not rows:
            return []
        values = [tuple(getattr(row, name) for name in COLUMNS) for row in rows]
        insert = (f"INSERT OR IGNORE INTO runs ({', '.join(_SQL_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(COLUMNS))})")

        def action(connection: sqlite3.Connection) -> list[IndexRow]:
            before = connection.total_changes
            connection.executemany(insert, values)
            if connection.total_changes - before == len(rows):
                return list(rows)  # all new: stored as given (every column round-trips)
            return [IndexRow(*connection.execute(f"{_SELECT} WHERE key = ?", (row.key,)).fetchone())
                    for row in rows]

        return self._write(action)

    def touch(self, last_used: Mapping[str, float]) -> None:
        if not last_used or self._why_read_only is not None:
            return  # last-used times only steer eviction, which a read-only cache never does
        pairs = [(float(when), key, float(when)) for key, when in last_used.items()]
        self._write(lambda c: c.executemany(
            "UPDATE runs SET last_used = ? WHERE key = ? AND last_used < ?", pairs),
            unless_busy=True)

    def delete(self, keys: Collection[str]) -> list[IndexRow]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []

        def action(connection: sqlite3.Connection) -> list[IndexRow]:
            deleted = []
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += [IndexRow(*r) for r in connection.execute(
                    f"{_SELECT} WHERE key IN ({marks})", chunk)]
                connection.execute(f"DELETE FROM runs WHERE key IN ({marks})", chunk)
            return deleted

        return self._write(action)

    def rows(self, *, strategy: str | None = None, kind: str | None = None) -> list[IndexRow]:
        clauses, args = [], []
        if strategy is not None:
            clauses.append("strategy = ?")
            args.append(strategy)
        if kind is not None:
            clauses.append("kind = ?")
            args.append(kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        connection = self._connection()
        if connection is None:
            return []
        try:
            cursor = connection.execute(f"{_SELECT}{where} ORDER BY created, key", args)
            return [IndexRow(*r) for r in cursor]
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise CacheCorruptedError(
                f"the cache index {self.path} is damaged ({exc}); its rows cannot all be "
                "read. Run `foldwise cache verify --repair` (it moves the file aside and "
                "starts an empty index; the runs are re-created when asked for).") from exc

    def reset(self) -> str:
        """Set the damaged file aside (:func:`set_aside`) and start an empty index."""
        if self._why_read_only is not None:
            raise CacheReadOnlyError(cannot_write(self.path.parent, self._why_read_only))
        self.close()
        moved = set_aside(self.path)
        self._connection()
        return f"moved to {moved}" if moved is not None else "started empty"

    def close(self) -> None:
        """Close this process's connections (call it when no other thread is querying)."""
        pid = os.getpid()
        with self._lock:
            mine = [c for p, c in self._connections if p == pid]
            self._connections = [(p, c) for p, c in self._connections if p != pid]
            self._ready_pid = None
        for connection in mine:
            connection.close()
        self._local = threading.local()


def _refused_write(exc: sqlite3.Error) -> bool:
    """True for SQLite's answer to a write it may not do (a read-only file or directory)."""
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text
