"""Opening Optuna storages: foldwise's default journal file, any Optuna URL, or an object.

========================================  =================================================
``storage=``                              what is opened
========================================  =================================================
``None``                                  ``<FOLDWISE_DIR or ./.foldwise>/studies.journal``
``"journal:<path>"``, ``"<path>.journal"``  a journal file (:mod:`foldwise.storage._journal_file`)
``"postgresql+psycopg://..."``,           Optuna's RDB storage (:mod:`._rdb`), with
``"sqlite:///..."``, any SQLAlchemy URL   heartbeats on, so trials of killed workers are
                                          failed and re-run; a server database is what
                                          the workers of a cluster share
``"memory"``                              Optuna's in-memory storage (one process, lost at
                                          exit: for tests and experiments)
a ``BaseStorage`` object                  used as is
========================================  =================================================

Why a journal file by default: measured here, Optuna's SQLite storage costs ~17-40 ms per
trial, a journal file ~1-2 ms with fsync and well under 1 ms without, the in-memory storage
~0.1 ms; SQLite also serializes parallel workers badly (Optuna's FAQ advises against it for
parallel runs), while the journal is append-only under a kernel lock.

Worker processes re-open the storage from its :class:`StorageSpec` rather than receiving a
pickled storage object, so nothing about a storage is ever pickled to disk.

Reading (``open_storage(spec, read_only=True)``, what ``load_result``, ``list_studies`` and
the CLI's ``show`` and ``studies`` use) creates nothing: a journal or SQLite file that does
not exist is a :class:`~foldwise.errors.StorageNotFoundError`, a journal is opened without
write access (so one on a read-only file system or owned by another user can be read), and
an RDB storage is opened without heartbeats.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage

from foldwise._paths import resolve_root
from foldwise.errors import StorageError, StorageNotFoundError
from foldwise.storage._batched import SUPPORTED as _BATCHING
from foldwise.storage._batched import BatchedJournalStorage
from foldwise.storage._journal_file import FileJournalBackend
from foldwise.storage._liveness import WORKER_ATTR, current_worker
from foldwise.storage._rdb import HEARTBEAT_INTERVAL, open_rdb, public_url

__all__ = ["HEARTBEAT_INTERVAL", "StorageSpec", "open_storage", "parse_storage"]

_JOURNAL_SUFFIXES = (".journal", ".jsonl", ".log")


@dataclass(frozen=True)
class StorageSpec:
    """How to open a storage again in another process."""

    kind: str  # "journal" | "rdb" | "memory" | "object"
    location: str = ""
    storage: BaseStorage | None = None  # the storage itself ("memory" and "object")

    @property
    def shareable(self) -> bool:
        """True if several processes can open it (everything but the in-memory storage)."""
        return self.kind in ("journal", "rdb") or (
            self.kind == "object" and not isinstance(self.storage, InMemoryStorage))

    def open(self, *, read_only: bool = False) -> BaseStorage:
        """The storage; with ``read_only``, for reading, creating no file (a journal or
        SQLite file that does not exist raises ``FileNotFoundError``)."""
        if self.kind == "journal":
            backend = FileJournalBackend(self.location, read_only=read_only)
            if not _BATCHING:  # pragma: no cover - an Optuna without the journal internals
                return JournalStorage(backend)
            return BatchedJournalStorage(backend, creation_user_attrs=_worker_attrs)
        if self.kind == "rdb":
            if read_only:
                database = sqlite_file(self.location)
                if database is not None and not database.is_file():
                    raise FileNotFoundError(errno.ENOENT, "the database file does not exist",
                                            str(database))
            return open_rdb(self.location, read_only=read_only)
        assert self.storage is not None
        return self.storage

    def __str__(self) -> str:
        """Where the storage is, for messages and reports (an RDB URL without password)."""
        if self.kind == "rdb":
            return public_url(self.location)
        if self.kind == "journal":
            return self.location
        return self.kind if self.kind == "memory" else type(self.storage).__name__


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (``sqlite:///studies.db``), or None for another
    database, an in-memory one, or a URI filename SQLite resolves itself."""
    from sqlalchemy.engine import make_url  # Optuna's RDB storage depends on SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:") or (
            database.startswith("file:")):
        return None
    return Path(database).absolute()


def _worker_attrs() -> dict[str, object]:
    return {WORKER_ATTR: current_worker()}


def parse_storage(storage: str | os.PathLike[str] | BaseStorage | None,
                  root: str | os.PathLike[str] | None = None) -> StorageSpec:
    """Turn what a user passed as ``storage=`` into a :class:`StorageSpec`."""
    if storage is None:
        return StorageSpec("journal", str(resolve_root(root) / "studies.journal"))
    if isinstance(storage, BaseStorage):
        return StorageSpec("object", storage=storage)
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    if not isinstance(storage, str):
        raise StorageError(
            f"storage must be None, an Optuna storage URL, a journal path or an Optuna storage "
            f"object, got {type(storage).__name__}.")
    if storage in ("memory", ":memory:"):
        # One storage per parse: every open of this spec must see the same studies.
        return StorageSpec("memory", storage=InMemoryStorage())
    if storage.startswith("journal:"):
        return StorageSpec("journal", str(Path(storage[len("journal:"):]).expanduser().absolute()))
    if "://" in storage:
        return StorageSpec("rdb", storage)
    if storage.endswith(_JOURNAL_SUFFIXES):
        return StorageSpec("journal", str(Path(storage).expanduser().absolute()))
    raise StorageError(
        f"cannot tell what kind of storage {storage!r} is. Use an Optuna URL "
        "(sqlite:///studies.db, postgresql://user@host/db), a journal file "
        "(journal:path/to/file or a path ending in .journal), or 'memory'.")


def open_storage(spec: StorageSpec, *, read_only: bool = False) -> BaseStorage:
    """Open ``spec``, turning failures into a :class:`~foldwise.errors.StorageError`.

    Parameters
    ----------
    spec
        From :func:`parse_storage`.
    read_only
        Open it for reading: nothing is created, and a journal or SQLite file that does
        not exist raises :class:`~foldwise.errors.StorageNotFoundError`. Writing through
        a journal opened so raises :class:`~foldwise.errors.StorageError`.
    """
    try:
        return spec.open(read_only=read_only)
    except StorageError:
        raise  # already says what is wrong (e.g. a damaged journal line)
    except FileNotFoundError as exc:
        if not read_only:
            raise StorageError(
                f"cannot open the study storage {spec}: {exc}. Check the path, or omit "
                "storage= to use the default journal file under ./.foldwise/.") from exc
        raise StorageNotFoundError(
            f"no study storage at {exc.filename or spec}: the file does not exist. Check the "
            "location (storage= in Python; --dir or --storage on the command line; "
            "$FOLDWISE_DIR for the default); foldwise.optimize creates it.") from exc
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            cause = ("is on a read-only file system" if exc.errno == errno.EROFS
                     else "cannot be opened by this user (permission denied)")
            raise StorageError(
                f"the study storage {exc.filename or spec} {cause}. Make it "
                f"{'writable' if not read_only else 'readable'}, or pass another storage "
                "(storage=, --dir/--storage, or $FOLDWISE_DIR).") from exc
        raise StorageError(
            f"cannot open the study storage {spec}: {exc}. Check the URL or path, or omit "
            "storage= to use the default journal file under ./.foldwise/.") from exc
    except (ImportError, ValueError, optuna.exceptions.OptunaError) as exc:
        raise StorageError(
            f"cannot open the study storage {spec}: {exc}. Check the URL or path (and that a "
            "database server is running and reachable), or omit storage= to use the default "
            "journal file under ./.foldwise/.") from exc
    except Exception as exc:  # SQLAlchemy errors and driver errors have no common base here
        if type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg2", "psycopg", "pymysql"):
            raise StorageError(
                f"cannot open the study storage {spec}: {exc}. Check the URL, the credentials "
                "and that the database server is running.") from exc
        raise
