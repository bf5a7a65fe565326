"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every file foldwise stores goes through :func:`atomic_path`: the content is written to a
unique temporary name in the same directory, flushed and fsynced, then renamed over the
target with ``os.replace`` (atomic on POSIX and Windows), and the directory entry is
fsynced so the rename survives a power cut. A process killed mid-write leaves at most a
stray ``.*.tmp`` file, which readers ignore.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["TEMP_SUFFIX", "atomic_path", "atomic_write_bytes", "atomic_write_json", "fsync_dir"]

#: Suffix of temporary files; anything ending with it is an unfinished write.
TEMP_SUFFIX = ".tmp"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry to disk (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success, move it into place atomically.

    The caller writes the whole file to the yielded path (any writer: pyarrow, pandas,
    ``open``). On exit the file is fsynced and renamed over ``target``; on an exception it
    is removed and ``target`` is untouched (an ``OSError`` that names no file, such as a
    full disk, is raised again naming ``target``).

    ``durable=False`` skips both fsyncs (of the file and of its directory entry): the
    rename is still atomic for every reader and survives the death of the writing process
    (the data is in the OS page cache), but a power cut may lose or damage the file. For
    files whose damage is detected and repaired elsewhere (the cache's checksummed
    artifacts); the fsyncs cost more than the write of a small file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(target)
    if not target.parent.is_dir():  # one stat; a failing mkdir costs more on the hot path
        target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        yield temporary
        if durable:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename is None:
            # a failed write to an open file (a full disk) names no file: name the target
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    if durable:
        fsync_dir(target.parent)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        handle.write(data)


def atomic_write_json(target: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as indented, key-sorted JSON to ``target`` atomically."""
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=True) + "\n"
    atomic_write_bytes(target, text.encode("utf-8"))
