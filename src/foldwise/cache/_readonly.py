"""Read-only caches: telling a cache that cannot be written from a damaged one.

A cache directory on a read-only file system, or one this user may not write, is still a
good cache for reading. Every write the cache attempts there (an artifact, a lock file,
an index row) is refused by the operating system or by SQLite; those refusals are turned
into one :class:`~foldwise.errors.CacheReadOnlyError` that names the path, the cause and
the fix, with the original exception chained, instead of a bare ``OSError`` or a message
blaming damage.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from foldwise.errors import CacheReadOnlyError

__all__ = ["FIX", "cannot_write", "read_only_error", "unwritable"]

#: The fix every read-only message ends with.
FIX = ("Make it writable, or pass a writable cache directory (BacktestCache(path) or cache= "
       "in Python, --dir on the command line, or $FOLDWISE_DIR).")

_DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)


def _on_read_only_file_system(path: Path) -> bool:
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:  # pragma: no cover - Windows
        return False
    try:
        return bool(statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _cause(path: Path, code: int | None) -> str:
    if code == errno.EROFS or _on_read_only_file_system(path):
        return f"{path} is on a read-only file system"
    return f"this user may not write {path} (permission denied)"


def unwritable(*paths: Path) -> str | None:
    """Why this process cannot write one of ``paths`` (those that exist), or None.

    Asks the kernel (``os.access``), which also answers for a read-only mount; as root on a
    writable file system every path is writable, whatever its mode bits.
    """
    for path in paths:
        if path.exists() and not os.access(path, os.W_OK):
            return _cause(path, None)
    return None


def cannot_write(directory: Path, why: str) -> str:
    """The message of a write refused by the cache at ``directory`` for reason ``why``."""
    return (f"cannot write to the backtest cache at {directory}: {why}. The cache can be "
            f"read but not written. {FIX}")


def read_only_error(exc: OSError, directory: Path) -> CacheReadOnlyError | None:
    """The :class:`~foldwise.errors.CacheReadOnlyError` an ``OSError`` of a write under
    ``directory`` stands for (read-only file system, permission denied), or None."""
    if exc.errno not in _DENIED:
        return None
    where = Path(os.fsdecode(exc.filename)) if exc.filename is not None else directory
    return CacheReadOnlyError(cannot_write(directory, _cause(where, exc.errno)))
