"""A cache index on a PostgreSQL server, shared by every worker of a cluster.

The SQLite index is one file: every process of one host shares it, but workers on other
hosts cannot (SQLite over a network file system is not safe). :class:`PostgresIndex` keeps
the same rows in a table of a PostgreSQL database that every worker reaches, while the
artifact files stay in the cache directory, which the workers then share as a network
path::

    cache = BacktestCache("/shared/foldwise",
                          backend=PostgresIndex("postgresql+psycopg://fw@db-host/foldwise"))

* **Where the rows are.** Two tables, ``foldwise_cache_runs`` (one row per stored run, the
  columns of :class:`~foldwise.cache.IndexRow`) and ``foldwise_cache_meta`` (the schema
  version), created on first use in the first schema of the connection's ``search_path``.
  One cache is one artifact directory plus one such table: to keep several caches in one
  database give each a schema of its own through libpq's ``options`` in the URL
  (``...?options=-csearch_path%3Dteam_a``).
* **A miss runs once across hosts.** :meth:`PostgresIndex.run_lock` takes a session-level
  advisory lock keyed on the run's digest and the table (``pg_advisory_lock``), which the cache holds
  from the moment it sees a miss until the run's rows are committed: of two workers that
  miss the same parameter set at the same moment — on any hosts — one runs it, the other
  waits and then reads the stored run. The server drops the lock of a worker that dies
  (its connection closes; TCP keepalives cover a host that vanished).
* **Atomic and first-writer-wins.** Each write is one transaction;
  ``INSERT ... ON CONFLICT (key) DO NOTHING`` keeps the first row of a key, and the rows
  of a batch (a run and its windows) commit together.
* **Connections.** One per thread, opened on first use, in autocommit mode (the hot path,
  :meth:`~PostgresIndex.get`, is one indexed ``SELECT``). A process forked from one that
  used the index opens its own and never touches the parent's; an instance pickles as its
  URL, so a worker process (a joblib or Dask worker) reconnects to the same database. A
  connection the server dropped (a restart, a failover) is replaced and the statement
  tried once more.
* **Faults.** A server that cannot be reached, a refused login, a query that fails, all
  raise :class:`~foldwise.errors.CacheError` naming the database (password hidden), the
  cause and the fix; the optimizer counts it as a fault of the machine, not a failure of
  the strategy. Nothing read from the database is ever executed or unpickled: rows are
  text and numbers.
* **Reading only.** ``read_only=True`` creates nothing (a database without the table
  reads as an empty index) and refuses writes with
  :class:`~foldwise.errors.CacheReadOnlyError`.

Requires psycopg 3 (``pip install "foldwise[cluster]"``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from foldwise.cache._index import COLUMNS, IndexBackend, IndexRow
from foldwise.errors import CacheError, CacheReadOnlyError

if TYPE_CHECKING:
    import psycopg

__all__ = ["META_TABLE", "RUNS_TABLE", "PostgresIndex"]

logger = logging.getLogger(__name__)

#: The table of runs (one row per stored run) and the table of the schema version.
RUNS_TABLE = "foldwise_cache_runs"
META_TABLE = "foldwise_cache_meta"

_SCHEMA_VERSION = 1
# Column order of the table is the field order of IndexRow ("window" is spelled "span":
# WINDOW is an SQL keyword).
_SQL_COLUMNS = tuple("span" if c == "window" else c for c in COLUMNS)
_SELECT = f"SELECT {', '.join(_SQL_COLUMNS)} FROM {RUNS_TABLE}"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
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
        n_bytes BIGINT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        last_used DOUBLE PRECISION NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {RUNS_TABLE}_strategy ON {RUNS_TABLE} (strategy, kind)",
    f"CREATE INDEX IF NOT EXISTS {RUNS_TABLE}_last_used ON {RUNS_TABLE} (last_used)",
    f"INSERT INTO {META_TABLE} VALUES ('schema_version', '{_SCHEMA_VERSION}') "
    "ON CONFLICT (name) DO NOTHING",
)
# The advisory lock that processes creating the tables at the same moment take turns on:
# "foldwise" in ASCII.
_SCHEMA_LOCK = 0x666F6C6477697365
# Rows per INSERT / DELETE statement (PostgreSQL takes at most 65535 parameters).
_CHUNK = 1000
# libpq options set unless the URL sets them (seconds): fail fast on a host that does not
# answer, and notice a host that vanished while a lock or a query waits on it.
_DEFAULT_OPTIONS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30",
                    "keepalives_interval": "10", "keepalives_count": "3"}
_FIX = ("Check that the PostgreSQL server is running and reachable from this host, the URL "
        "(user, password, host, port, database) and that the user may create tables there "
        "(or create them once with a user that may).")

# Connections opened by a parent process, found in a forked child: never used or closed
# there (closing would end the parent's session), only kept from being collected.
_inherited: list[Any] = []

_T = TypeVar("_T")


def _libpq_url(url: str) -> str:
    """``url`` as libpq reads it: ``postgresql+psycopg://`` (SQLAlchemy's spelling, as in
    Optuna's storage URLs) becomes ``postgresql://``."""
    scheme, separator, rest = url.partition("://")
    base = scheme.split("+", 1)[0]
    if not separator or base not in ("postgresql", "postgres"):
        raise CacheError(
            f"{_hide_password(url)!r} is not a PostgreSQL URL; PostgresIndex takes "
            "postgresql+psycopg://user:password@host:5432/database (or postgresql://...).")
    return f"postgresql://{rest}"


def _hide_password(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    path = "&".join("password=***" if part.startswith("password=") else part
                    for part in path.split("&"))
    return f"{scheme}://{credentials}{at}{host}{slash}{path}"


def _lock_key(table: str, digest: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of run ``digest`` in ``table`` (the
    schema-qualified name: caches in two schemas do not wait for each other). Two keys that
    collide only make their runs wait for each other: rare (2**-64) and harmless."""
    hashed = hashlib.blake2b(f"{table}\n{digest}".encode(), digest_size=8).digest()
    return int.from_bytes(hashed, "big", signed=True)


def _reopen_postgres(cls: type[PostgresIndex], url: str, read_only: bool) -> PostgresIndex:
    return cls(url, read_only=read_only)


class _AdvisoryLock:
    """A held session-level advisory lock; :meth:`release` gives it back (once)."""

    __slots__ = ("_connection", "_key", "_lock")

    def __init__(self, connection: psycopg.Connection[Any], key: int) -> None:
        self._connection: psycopg.Connection[Any] | None = connection
        self._key = key
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is None or connection.closed:
            return  # already released, or the session that held it is gone (and the lock)
        try:
            connection.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except Exception:  # the session ended meanwhile: the server dropped the lock
            logger.debug("advisory lock %s not released explicitly", self._key, exc_info=True)


class PostgresIndex(IndexBackend):
    """The cache index as a table of a PostgreSQL database (see the module docstring).

    Parameters
    ----------
    url
        ``postgresql+psycopg://user:password@host:5432/database`` (SQLAlchemy's spelling,
        as for Optuna storages) or ``postgresql://...``; libpq parameters go in the query
        string (``?sslmode=require``, ``?options=-csearch_path%3Dteam_a``). The tables are
        created on first use unless ``read_only``.
    read_only
        Only read: create nothing (a database without the table is an empty index) and
        refuse writes with :class:`~foldwise.errors.CacheReadOnlyError`.

    Raises
    ------
    CacheError
        The URL is not a PostgreSQL URL, psycopg is not installed, the server cannot be
        reached or refuses the login, or the table has another schema version.

    Examples
    --------
    With a server at ``db-host`` (``tests/test_cluster_*.py`` run this against a real one)::

        from foldwise import BacktestCache
        from foldwise.cache import PostgresIndex

        index = PostgresIndex("postgresql+psycopg://fw@db-host/foldwise")
        cache = BacktestCache("/shared/foldwise", backend=index)
    """

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = str(url)
        self._conninfo = _libpq_url(self.url)
        try:
            import psycopg  # noqa: F401  (the driver; only this backend needs it)
        except ImportError as exc:
            raise CacheError(
                "the PostgreSQL cache index needs psycopg 3: pip install \"foldwise[cluster]\" "
                "(or psycopg[binary]).") from exc
        self._read_only = bool(read_only)
        self._local = threading.local()
        self._lock, self._lock_pid = threading.Lock(), os.getpid()
        self._connections: list[tuple[int, Any]] = []
        self._ready_pid: int | None = None
        self._exists = True  # a read-only index may find no table: empty
        self._table = RUNS_TABLE  # schema-qualified once connected: run lock keys use it
        self._connection()  # fail early: an unreachable server, a login refused

    # --- what the cache asks ---------------------------------------------------------

    @property
    def shareable(self) -> bool:
        """True: every process of every host that reaches the server opens the same rows."""
        return True

    def __reduce__(self) -> Any:  # a worker process reconnects to the same database
        return (_reopen_postgres, (type(self), self.url, self._read_only))

    def describe(self) -> str:
        return _hide_password(self.url)

    def __repr__(self) -> str:
        return f"PostgresIndex({self.describe()!r}{', read_only=True' if self._read_only else ''})"

    @property
    def read_only_reason(self) -> str | None:
        """``"it was opened read-only"`` for an index opened with ``read_only=True``."""
        return f"the index {self.describe()} was opened read-only" if self._read_only else None

    # --- connections -----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(self._conninfo)
        extra = {k: v for k, v in _DEFAULT_OPTIONS.items() if k not in given}
        try:
            return psycopg.connect(make_conninfo(self._conninfo, **extra), autocommit=True)
        except psycopg.Error as exc:
            raise CacheError(
                f"cannot connect to the cache index {self.describe()}: "
                f"{str(exc).strip()}. {_FIX}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        """This thread's connection (a new one after a fork or when the old one broke)."""
        local = self._local
        pid = os.getpid()
        old = getattr(local, "connection", None)
        ours = getattr(local, "pid", None) == pid
        if old is not None and ours and not old.closed:
            return old
        if self._lock_pid != pid:  # forked: a parent thread may have held the lock
            self._lock, self._lock_pid = threading.Lock(), pid
        if old is not None and not ours:
            _inherited.append(old)
        with self._lock:
            if self._ready_pid != pid:  # first connection of this process (or after fork)
                _inherited.extend(c for p, c in self._connections if p != pid)
                self._connections = [(p, c) for p, c in self._connections if p == pid]
            self._connections = [(p, c) for p, c in self._connections if c is not old]
            connection = self._connect()
            try:
                if self._ready_pid != pid:
                    self._setup(connection)
            except BaseException:
                connection.close()
                raise
            self._connections.append((pid, connection))
            self._ready_pid = pid
        local.connection, local.pid = connection, pid
        return connection

    def _setup(self, connection: psycopg.Connection[Any]) -> None:
        """Create the tables (once, under a lock: creations racing on one database would
        collide) and check the schema version."""
        import psycopg

        try:
            found = connection.execute(
                "SELECT to_regclass(%s)::text, current_schema()", (RUNS_TABLE,)).fetchone()
            assert found is not None
            table, schema = found
            if table is None and not self._read_only:
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in _SCHEMA:
                        connection.execute(statement)
                table = RUNS_TABLE
            self._exists = table is not None
            if self._exists:
                row = connection.execute(
                    f"SELECT value FROM {META_TABLE} WHERE name = 'schema_version'").fetchone()
                version = None if row is None else int(row[0])
                if version != _SCHEMA_VERSION:
                    raise CacheError(
                        f"the cache index {self.describe()} has schema version {version}, "
                        f"this foldwise reads version {_SCHEMA_VERSION}. Upgrade foldwise, or "
                        "use another database or schema (options=-csearch_path in the URL).")
            self._table = f"{schema}.{RUNS_TABLE}"
        except psycopg.Error as exc:
            raise CacheError(
                f"cannot set up the cache index {self.describe()}: {str(exc).strip()}. "
                f"{_FIX}") from exc

    def _run(self, action: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``action(connection)``; on a connection the server dropped, once more on a new
        one. Database errors become a :class:`CacheError` naming the index."""
        import psycopg

        for attempt in (1, 2):
            connection = self._connection()
            try:
                return action(connection)
            except psycopg.OperationalError as exc:
                if attempt == 1 and (connection.closed or connection.broken):
                    logger.info("the connection to the cache index %s was lost (%s); "
                                "reconnecting", self.describe(), str(exc).strip())
                    continue
                raise CacheError(
                    f"the cache index {self.describe()} failed: {str(exc).strip()}. "
                    f"{_FIX}") from exc
            except psycopg.Error as exc:
                raise CacheError(
                    f"the cache index {self.describe()} failed: {type(exc).__name__}: "
                    f"{str(exc).strip()}. {_FIX}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _writable(self) -> None:
        why = self.read_only_reason
        if why is not None:
            raise CacheReadOnlyError(
                f"cannot write the cache index {self.describe()}: {why}. Open it without "
                "read_only=True to store runs.")

    # --- the interface ---------------------------------------------------------------

    def get(self, key: str) -> IndexRow | None:
        if not self._exists:
            return None
        row = self._run(lambda c: c.execute(f"{_SELECT} WHERE key = %s", (key,)).fetchone())
        return None if row is None else IndexRow(*row)

    def get_many(self, keys: Collection[str]) -> dict[str, IndexRow]:
        """The rows of ``keys`` in one query."""
        keys = list(dict.fromkeys(keys))
        if not self._exists or not keys:
            return {}
        rows = self._run(lambda c: c.execute(
            f"{_SELECT} WHERE key = ANY(%s)", (keys,)).fetchall())
        return {values[0]: IndexRow(*values) for values in rows}

    def insert(self, row: IndexRow) -> IndexRow:
        return self.insert_many([row])[0]

    def insert_many(self, rows: Sequence[IndexRow]) -> list[IndexRow]:
        """Insert the rows in one transaction (all or none); return what is stored."""
        if not rows:
            return []
        self._writable()

        def action(connection: psycopg.Connection[Any]) -> list[IndexRow]:
            new: set[str] = set()
            with connection.transaction():
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start:start + _CHUNK]
                    values = ", ".join(["(" + ", ".join(["%s"] * len(COLUMNS)) + ")"]
                                       * len(chunk))
                    cursor = connection.execute(
                        f"INSERT INTO {RUNS_TABLE} ({', '.join(_SQL_COLUMNS)}) VALUES {values} "
                        "ON CONFLICT (key) DO NOTHING RETURNING key",
                        [getattr(row, name) for row in chunk for name in COLUMNS])
                    new.update(key for (key,) in cursor.fetchall())
                stored: dict[str, IndexRow] = {}
                for row in rows:  # a key twice in one batch: its first row is stored
                    if row.key in new and row.key not in stored:
                        stored[row.key] = row
                others = [row.key for row in rows if row.key not in stored]
                if others:
                    found = connection.execute(f"{_SELECT} WHERE key = ANY(%s)", (others,))
                    stored.update((r[0], IndexRow(*r)) for r in found)
            return [stored[row.key] for row in rows]

        return self._run(action)

    def touch(self, last_used: Mapping[str, float]) -> None:
        if not last_used or self._read_only or not self._exists:
            return  # last-used times only steer eviction, which a read-only cache never does
        pairs = [(float(when), key, float(when)) for key, when in last_used.items()]

        def action(connection: psycopg.Connection[Any]) -> None:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(f"UPDATE {RUNS_TABLE} SET last_used = %s "
                                   "WHERE key = %s AND last_used < %s", pairs)

        self._run(action)

    def delete(self, keys: Collection[str]) -> list[IndexRow]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        self._writable()
        if not self._exists:
            return []

        def action(connection: psycopg.Connection[Any]) -> list[IndexRow]:
            deleted: list[IndexRow] = []
            with connection.transaction():
                for start in range(0, len(unique), _CHUNK):
                    cursor = connection.execute(
                        f"DELETE FROM {RUNS_TABLE} WHERE key = ANY(%s) "
                        f"RETURNING {', '.join(_SQL_COLUMNS)}", (unique[start:start + _CHUNK],))
                    deleted += [IndexRow(*r) for r in cursor.fetchall()]
            return deleted

        return self._run(action)

    def rows(self, *, strategy: str | None = None, kind: str | None = None) -> list[IndexRow]:
        if not self._exists:
            return []
        clauses, args = [], []
        if strategy is not None:
            clauses.append("strategy = %s")
            args.append(strategy)
        if kind is not None:
            clauses.append("kind = %s")
            args.append(kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # byte order of keys, as SQLite's: the same order on every server's collation
        query = f'{_SELECT}{where} ORDER BY created, key COLLATE "C"'
        return self._run(lambda c: [IndexRow(*r) for r in c.execute(query, args).fetchall()])

    def run_lock(self, digest: str) -> _AdvisoryLock:
        """Wait for and take the advisory lock of run ``digest`` on this thread's session.

        Every process of every host that uses this database excludes the others on the
        same digest (and so does every thread: each has its own session). The server
        releases it when the session ends, so a killed worker never leaves it held.
        """
        key = _lock_key(self._table, digest)

        def action(connection: psycopg.Connection[Any]) -> _AdvisoryLock:
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
            return _AdvisoryLock(connection, key)

        return self._run(action)

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
