"""Faults of the machine told apart from failures of the strategy.

A trial fails only for the strategy's own exceptions: the cache tags what escapes the
strategy (:func:`~foldwise.errors.raised_by_strategy`). Anything else that stops an
evaluation — a full disk, a read-only directory, a permission denied, a damaged cache
index, a storage that cannot be written — is a fault outside the strategy. The trial loop
leaves such a trial to be run again (it never counts toward ``n_trials``) and lets the
exception stop the run; :func:`machine_fault` turns it into one
:class:`~foldwise.errors.MachineFaultError` whose message names the path, the cause and
the fix, and :func:`stopping_on_machine_faults` applies it around a whole optimization.

An exception that is neither the strategy's nor a recognised fault (a defect of foldwise
itself) also stops the run without counting the trial, and passes unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator

import optuna

from foldwise.errors import (
    CacheArgumentError,
    CacheCorruptedError,
    CacheError,
    CacheMissError,
    JournalCorruptedError,
    MachineFaultError,
    StorageError,
    raised_by_strategy,
)

__all__ = ["machine_fault", "stopping_on_machine_faults"]

_RESUME = ("No trial was counted: once the fault is fixed, the same optimize call resumes "
           "and runs the interrupted trial again.")

_FREE_SPACE = ("free space on that disk, or move the cache and storage elsewhere (cache=, "
               "storage=, or $FOLDWISE_DIR)")
_WRITABLE = ("make it writable, or pass a writable location (cache=, storage=, or "
             "$FOLDWISE_DIR)")

# errno -> (the cause in words, the fix)
_OS_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FREE_SPACE),
    errno.EDQUOT: ("the disk quota is exceeded", _FREE_SPACE),
    errno.EROFS: ("the file system is read-only", _WRITABLE),
    errno.EACCES: ("permission denied", _WRITABLE),
    errno.EPERM: ("operation not permitted", _WRITABLE),
    errno.EIO: ("an input/output error of the disk", "check the disk"),
    errno.ENOENT: ("a file or directory is missing (removed while the study ran?)",
                   "check that the location still exists"),
}

# words in SQLite's message -> (the cause in words, the fix)
_SQLITE_CAUSES: tuple[tuple[str, tuple[str, str]], ...] = (
    ("disk is full", ("the disk is full", _FREE_SPACE)),
    ("readonly", ("the database is read-only", _WRITABLE)),
    ("read-only", ("the database is read-only", _WRITABLE)),
    ("unable to open", ("the database file cannot be opened", _WRITABLE)),
    ("malformed", ("the database file is damaged",
                   "for the cache index run `foldwise cache verify --repair`")),
    ("not a database", ("the database file is damaged",
                        "for the cache index run `foldwise cache verify --repair`")),
    # a flipped byte inside a text column: the page is intact, its text is not
    ("could not decode", ("the database file is damaged",
                          "for the cache index run `foldwise cache verify --repair`")),
    ("disk i/o", ("an input/output error of the disk", "check the disk")),
)


def _describe(exc: BaseException) -> tuple[str, str, str] | None:
    """(where, cause, fix) of a recognised fault, or None."""
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else "the disk"
        cause, fix = _OS_CAUSES.get(exc.errno or -1, (exc.strerror or str(exc), ""))
        return str(where), cause, fix
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        for words, (cause, fix) in _SQLITE_CAUSES:
            if words in text:
                return "an SQLite database (the cache index or the study storage)", cause, fix
        return "an SQLite database (the cache index or the study storage)", str(exc), ""
    if isinstance(exc, (CacheArgumentError, CacheMissError)):
        return None  # a wrong call, not a fault
    if isinstance(exc, CacheCorruptedError):
        return "the backtest cache", str(exc), "run `foldwise cache verify --repair`"
    if isinstance(exc, CacheError):
        return "the backtest cache", str(exc), ""
    if isinstance(exc, JournalCorruptedError):
        return "the study journal", str(exc), "run `foldwise repair STUDY`"
    if isinstance(exc, StorageError):
        return "the study storage", str(exc), ""
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        return "the study storage", str(exc), "check that the database server is reachable"
    if isinstance(exc, MemoryError):
        return "the machine", "it ran out of memory", "free memory or lower n_jobs"
    module = type(exc).__module__ or ""
    if module.startswith("sqlalchemy"):  # the RDB storage's driver (no import needed)
        return "the study storage", f"{type(exc).__name__}: {exc}", \
            "check that the database server is reachable and writable"
    return None


def machine_fault(exc: BaseException, during: str = "") -> MachineFaultError | None:
    """The :class:`~foldwise.errors.MachineFaultError` ``exc`` stands for, or None.

    None for the strategy's own exceptions (tagged by the cache), for foldwise's errors
    about arguments, and for anything not recognised as a fault of the machine.

    Parameters
    ----------
    exc
        What stopped the run.
    during
        What was running, for the message (e.g. ``"fold 3, trial 17"``).
    """
    if isinstance(exc, MachineFaultError) or raised_by_strategy(exc):
        return None
    described = _describe(exc)
    if described is None:
        return None
    where, cause, fix = described
    context = f" during {during}" if during else ""
    told = cause == str(exc) or isinstance(exc, OSError)  # an OSError's cause is its errno
    detail = "" if told else f"; {type(exc).__name__}: {exc}"
    remedy = f" Fix: {fix}." if fix else ""
    return MachineFaultError(
        f"the optimization stopped on a fault of the machine, not of the strategy{context}: "
        f"{cause} ({where}{detail}).{remedy} {_RESUME}")


@contextlib.contextmanager
def stopping_on_machine_faults(during: str = "") -> Iterator[None]:
    """Re-raise a recognised fault escaping the block as a
    :class:`~foldwise.errors.MachineFaultError` (the original chained); anything else
    passes unchanged."""
    try:
        yield
    except Exception as exc:
        fault = machine_fault(exc, during)
        if fault is None:
            raise
        raise fault from exc
