"""The locks of a cache: run locks between processes, and in-process locks after a fork.

Two kinds of lock keep a cache correct when it is shared:

1. **Run locks** (:func:`acquire_run_lock`). When two processes miss the same key at the
   same moment, only one may run the backtest; the other waits and then finds the stored
   run. Keys are spread over 256 lock files (``locks/00.lock`` .. ``locks/ff.lock``, by the
   first two hex digits of the digest) held with ``flock``, which the kernel releases when
   a process dies, so a killed worker never leaves a key locked. A lock is held from the
   moment a miss is seen until the run's index rows are committed. An index whose store
   several hosts share may keep these locks itself (:meth:`IndexBackend.run_lock
   <foldwise.cache.IndexBackend.run_lock>`, e.g. PostgreSQL's advisory locks): the cache
   names its index for its directory (:func:`serve_run_locks`) and the locks of that
   directory are then taken from the index.
2. **In-process locks** (:func:`renew_after_fork`). The parts of a cache object guard their
   dicts with a ``threading.Lock``. A lock held by another thread when the process forks
   would never be released in the child, so each registered object gets fresh locks in a
   forked child (its ``_after_fork`` method is called there).
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from foldwise.cache._readonly import read_only_error

if TYPE_CHECKING:
    from foldwise.cache._index import IndexBackend, RunLock

if sys.platform != "win32":
    import fcntl

__all__ = ["LOCK_FILES", "acquire_run_lock", "release_run_lock", "renew_after_fork",
           "serve_run_locks"]

# Cache directory -> the index that keeps its run locks (weakly: a cache that is gone
# serves nothing); the locks it handed out, under negative numbers (never a descriptor).
_served: weakref.WeakValueDictionary[str, IndexBackend] = weakref.WeakValueDictionary()
_held: dict[int, RunLock] = {}
_numbers = itertools.count(-1, -1)


def serve_run_locks(directory: Path, index: IndexBackend) -> None:
    """Take the run locks of the cache in ``directory`` from ``index`` when it keeps them
    (its ``run_lock`` returns a lock), from the lock files otherwise."""
    _served[str(directory)] = index

#: The run-lock files of a cache directory, relative to it (256 stripes of keys).
LOCK_FILES = frozenset(f"locks/{i:02x}.lock" for i in range(256))


def acquire_run_lock(directory: Path, digest: str) -> int | None:
    """Take the run lock of ``digest`` under ``directory``; wait while another process holds
    it. Return the descriptor that holds it (None where ``fcntl`` is missing), or a
    negative number standing for a lock the cache's index keeps (:func:`serve_run_locks`);
    pass it to :func:`release_run_lock`."""
    index = _served.get(str(directory))
    lock = index.run_lock(digest) if index is not None else None
    if lock is not None:
        number = next(_numbers)
        _held[number] = lock
        return number
    if sys.platform == "win32":  # pragma: no cover - no flock: runs are not serialized
        return None
    path = directory / "locks" / f"{digest[:2]}.lock"
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the first lock of this cache directory
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only file system, permission denied
        refused = read_only_error(exc, directory)
        if refused is None:
            raise
        raise refused from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_run_lock(fd: int | None) -> None:
    """Release a lock taken by :func:`acquire_run_lock` (None: nothing to release)."""
    if fd is not None and fd < 0:
        _held.pop(fd).release()
    elif fd is not None:
        os.close(fd)


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def renew_after_fork(owner: _ForkAware) -> None:
    """Call ``owner._after_fork()`` in every child forked while ``owner`` is alive (it
    replaces its ``threading`` locks there)."""
    _live.add(owner)


def _renew_locks() -> None:
    for owner in list(_live):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)
