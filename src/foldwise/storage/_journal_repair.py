"""Repair a damaged journal file: keep every intact line, re-run what was lost.

:func:`repair_journal` (the command line: ``foldwise repair STUDY``) mends what
:class:`~foldwise.errors.JournalCorruptedError` tells. In four steps, each its own module:

1. **read** every line, intact or damaged (:mod:`~foldwise.storage._journal_lines`);
2. **decide** what each damaged line held, so that no later id shifts
   (:mod:`~foldwise.storage._journal_ids`);
3. **replay** the intact lines and write the journal they describe, the lost trials as FAIL
   trials that do not use the budget, studies whose creation was lost left out
   (:mod:`~foldwise.storage._journal_rebuild`);
4. **replace** the file (here): the damaged journal is kept as
   ``<journal>.damaged-<time>`` (a hard link to the very file, or a copy where links are not
   possible), the new one is written to a temporary name next to it, fsynced and renamed
   over it, so a reader sees the old journal or the whole new one.

The journal is one log for every study in it, and a lost creation shifts the ids of all
of them, so a repair always covers the whole file; the report names the lost trials of
every study.

**Other processes.** The new journal is a new file: a process that still had the old one
open would go on appending to the backup. So the repair holds the journal's lock (the one
every append takes) for the whole of its work and refuses to start while another process
holds it or — on Linux, where ``/proc`` tells — has the file open at all (a running
optimization, the worker processes a notebook keeps, optuna-dashboard). A process that
opens the journal while the repair runs reads the damaged line and stops with
:class:`~foldwise.errors.JournalCorruptedError` before it writes anything. Elsewhere, and
for processes of other users, ``/proc`` cannot tell: stop every process that uses the
journal first. In the calling process itself, a storage or study object opened on the
journal before the repair still holds the old file: open it again (``foldwise.optimize`` and
``load_result`` open the storage anew on every call). ``dry_run=True`` only reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage

from foldwise._atomic import atomic_path, fsync_dir
from foldwise.errors import StorageError
from foldwise.storage._journal_file import FileJournalBackend
from foldwise.storage._journal_ids import read_damage
from foldwise.storage._journal_lines import scan
from foldwise.storage._journal_rebuild import rebuild
from foldwise.storage._journal_report import JournalRepairReport
from foldwise.storage._spec import StorageSpec, parse_storage

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["repair_journal"]

logger = logging.getLogger(__name__)


def _journal_path(storage: Any) -> Path:
    """The journal file of ``storage``, or a clear error for a storage that is not one."""
    spec = storage if isinstance(storage, StorageSpec) else parse_storage(storage)
    if spec.kind == "journal":
        return Path(spec.location)
    if spec.kind == "rdb":
        raise StorageError(
            f"foldwise repairs journal files only; {spec.location} is an SQL database. Check "
            "and repair it with the database's own tools (SQLite: `sqlite3 FILE "
            "'PRAGMA integrity_check'` and `.recover`; PostgreSQL: its backups, pg_dump / "
            "pg_restore).")
    if spec.kind == "memory":
        raise StorageError("the in-memory storage has no file to repair; repair_journal "
                           "takes a journal file (storage='journal:<path>').")
    backend = getattr(spec.storage, "_backend", None)
    if isinstance(backend, FileJournalBackend):
        return backend.path
    kind = type(spec.storage).__name__ if isinstance(spec.storage, BaseStorage) else spec.kind
    raise StorageError(
        f"foldwise repairs journal files only, not a {kind}; pass the journal file itself "
        "(storage='journal:<path>' or a path ending in .journal). For an SQL database use "
        "the database's own tools.")


def _holders(path: Path) -> list[str]:
    """Other processes that have ``path`` open, as ``"pid (command)"`` (Linux; else [])."""
    try:
        target = os.stat(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return []
    found = []
    for pid in pids:
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        with fds:
            for fd in fds:
                try:
                    info = os.stat(fd.path)
                except OSError:
                    continue
                if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
                    found.append(f"{pid} ({_command(pid)})")
                    break
    return found


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold the journal's lock; refuse while another process writes or has it open."""
    if fcntl is None:  # pragma: no cover
        raise StorageError("repairing a journal needs fcntl (POSIX).")
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(
                f"another process is writing the journal {path} (it holds its lock); stop it, "
                "or let it finish, and run the repair again.") from None
        others = _holders(path)
        if others:
            raise StorageError(
                f"the journal {path} is open in other processes: {', '.join(others)}. A "
                "repaired journal is a new file they would not see; stop them (a Python "
                "session that ran optimize with n_jobs > 1 keeps its worker processes: "
                "restart it) and run the repair again.")
        yield
    finally:
        os.close(fd)  # releases the lock


def _backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    return candidate


def _keep(path: Path, backup: Path) -> None:
    """Keep the journal as it is under ``backup`` (a hard link, else a durable copy)."""
    try:
        os.link(path, backup)
    except OSError:
        shutil.copyfile(path, backup)
        with open(backup, "rb+") as handle:
            os.fsync(handle.fileno())
    fsync_dir(path.parent)


def repair_journal(storage: str | os.PathLike[str] | BaseStorage | StorageSpec | None = None,
                   *, dry_run: bool = False) -> JournalRepairReport:
    """Repair a damaged study journal: keep every intact line, mark what was lost to re-run.

    Reads the journal line by line, drops the damaged lines (not JSON, a checksum that
    does not match, not an operation Optuna can replay), works out what each of them held
    so that no later study or trial id shifts, and rewrites the journal from the intact
    lines. A trial that a damaged line touched (its creation, a parameter, an attribute,
    its final state) is kept under its number as a FAIL trial that does not use the
    budget: the same ``optimize`` call runs it again. A study whose creation line was
    damaged is dropped with its trials; the same call creates it again. The damaged file
    is kept as ``<journal>.damaged-<time>``. See :mod:`foldwise.storage._journal_repair`
    for how other processes are kept out, and ``_journal_ids`` / ``_journal_rebuild`` for
    the rules.

    Parameters
    ----------
    storage
        The study storage, as given to :func:`foldwise.optimize`: None for the default
        journal (``./.foldwise/studies.journal`` or under ``$FOLDWISE_DIR``),
        ``"journal:<path>"`` or a path ending in ``.journal``. Other storages are refused
        with a :class:`~foldwise.errors.StorageError` naming their own tools.
    dry_run
        Only read and report what a repair would do; change nothing.

    Returns
    -------
    JournalRepairReport
        The dropped lines, the lost trials and studies, and the backup's path. A journal
        with no damaged line is left untouched (``report.ok``).

    Raises
    ------
    StorageError
        Not a journal, no such file, the file cannot be read or written, or another
        process is using it.

    Examples
    --------
    >>> report = foldwise.repair_journal("journal:.foldwise/studies.journal")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    path = _journal_path(storage)
    if not path.is_file():
        raise StorageError(f"there is no journal file {path}; check storage= (or --dir / "
                           "--storage on the command line).")
    path = Path(os.path.realpath(path))  # a link to a journal: repair the file it names
    try:
        if dry_run:
            return _report(path, path.read_bytes(), dry_run=True)
        with _exclusive(path):
            data = path.read_bytes()
            lines, torn = scan(data)
            if all(line.intact for line in lines):
                return JournalRepairReport(path, len(lines), torn_tail=torn)
            readings = read_damage(lines)
            rebuilt = rebuild(lines, readings)
            backup = _backup_path(path)
            with atomic_path(path) as temporary:
                temporary.write_bytes(rebuilt.content)
                os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
                _keep(path, backup)
    except OSError as exc:
        raise StorageError(f"cannot repair the journal {path}: {exc}. Check that the file and "
                           "its directory can be read and written.") from exc
    report = JournalRepairReport(path, len(lines), rebuilt.damaged, rebuilt.lost_trials,
                                 rebuilt.lost_studies, rebuilt.notes, torn, backup=backup)
    logger.warning("journal %s repaired: %d damaged line(s) dropped, %d trial(s) to run again; "
                   "the damaged file is kept as %s", path, len(report.damaged),
                   report.to_rerun, backup)
    return report


def _report(path: Path, data: bytes, *, dry_run: bool) -> JournalRepairReport:
    lines, torn = scan(data)
    if all(line.intact for line in lines):
        return JournalRepairReport(path, len(lines), torn_tail=torn, dry_run=dry_run)
    rebuilt = rebuild(lines, read_damage(lines))
    return JournalRepairReport(path, len(lines), rebuilt.damaged, rebuilt.lost_trials,
                               rebuilt.lost_studies, rebuilt.notes, torn, dry_run=dry_run)
