"""The locks of a cache: run locks between processes, and in-process locks after a fork.

Two kinds of lock keep a cache correct when it is shared:

1. **Run locks** (:func:`acquire_run_lock`). When two processes miss the same key at the
   same moment, only one may run the backtest; the other waits and then finds the stored
   run. Keys are spread over 256 lock files (``locks/00.lock`` .. ``locks/ff.lock``, by the
   first two hex digits of the digest) held with ``flock``, which the kernel releases when
   a process dies, so a killed worker never leaves a key locked. A lock is held from the
   moment a miss is seen until the run's index rows are committed. A process opens each
   lock file once and keeps it open (at most :data:`OPEN_LOCK_FILES` of them, the least
   recently used closed first; new descriptors in a forked child): opening it for every
   miss cost more than the rest of taking the lock (a descriptor per stripe in use: the
   256 of one cache, fewer where the process may open few files). Threads of one process take turns on
   a lock file with a ``threading.Lock`` beside its ``flock``, which does not exclude
   holders of the same open file. An index whose store
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

import contextlib
import itertools
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from foldwise.cache._readonly import read_only_error

if TYPE_CHECKING:
    from foldwise.cache._index import IndexBackend, RunLock

if sys.platform != "win32":
    import fcntl

__all__ = ["LOCK_FILES", "OPEN_LOCK_FILES", "acquire_run_lock", "release_run_lock", "renew_after_fork",
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
    lock_file = _lock_file(directory, f"{digest[:2]}.lock")
    try:
        lock_file.turn.acquire()  # threads of this process first, then other processes
        try:
            fcntl.flock(lock_file.fd, fcntl.LOCK_EX)
        except BaseException:
            lock_file.turn.release()
            raise
    except BaseException:
        _put_back(lock_file)
        raise
    with _open_guard:
        _taken[lock_file.fd] = lock_file
    return lock_file.fd


def release_run_lock(fd: int | None) -> None:
    """Release a lock taken by :func:`acquire_run_lock` (None: nothing to release)."""
    if fd is not None and fd < 0:
        _held.pop(fd).release()
    elif fd is not None:
        with _open_guard:
            lock_file = _taken.pop(fd, None)
        if lock_file is None:  # taken before this process forked: the parent's to release
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock_file.turn.release()
            _put_back(lock_file)


def _open_limit() -> int:
    """Every stripe of one cache directory (256), within a quarter of the descriptors the
    process may open."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # pragma: no cover - no such limit here
        return 64
    if soft == resource.RLIM_INFINITY:
        return len(LOCK_FILES)
    return max(16, min(len(LOCK_FILES), soft // 4))


#: Lock files a process keeps open at most (over every cache directory it used): the 256
#: stripes of one cache where the descriptor limit allows (1,024 is a common default).
OPEN_LOCK_FILES = _open_limit()


class _LockFile:
    """An open run-lock file of this process, the turn its threads take on it, and how
    many callers hold or wait for it (it is closed only when none does)."""

    __slots__ = ("dropped", "fd", "turn", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.turn = threading.Lock()
        self.users = 1
        self.dropped = False  # no longer among the open files: closed by its last user


# Path -> open lock file, least recently used first; descriptor -> lock file now held.
_open: dict[str, _LockFile] = {}
_taken: dict[int, _LockFile] = {}
_open_guard = threading.Lock()
_open_pid = os.getpid()


def _lock_file(directory: Path, name: str) -> _LockFile:
    """This process's open lock file ``name`` of ``directory`` (opened, and its directory
    created, on first use), counted as used until :func:`_put_back`."""
    path = f"{directory}/locks/{name}"
    if _open_pid != os.getpid():  # forked where register_at_fork is missing
        _forget_open_files()
    with _open_guard:
        found = _open.pop(path, None)
        if found is not None:
            _open[path] = found  # most recently used last
            found.users += 1
            return found
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the first lock of this cache directory
            (directory / "locks").mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:  # a read-only file system, permission denied
        refused = read_only_error(exc, directory)
        if refused is None:
            raise
        raise refused from exc
    with _open_guard:
        found = _open.get(path)
        if found is not None:  # another thread opened it meanwhile
            os.close(fd)
            found.users += 1
            return found
        lock_file = _open[path] = _LockFile(fd)
        while len(_open) > OPEN_LOCK_FILES:
            oldest = _open.pop(next(iter(_open)))
            oldest.dropped = True
            if oldest.users == 0:
                os.close(oldest.fd)
        return lock_file


def _forget_open_files() -> None:
    """In a forked child: close the lock files inherited from the parent. They share the
    parent's open files, and with them its locks: a child keeping them open would keep a
    lock of a killed parent held, and its own ``flock`` would not exclude the parent."""
    global _open_guard, _open_pid
    _open_guard = threading.Lock()
    for lock_file in _open.values():
        with contextlib.suppress(OSError):
            os.close(lock_file.fd)
    for fd, lock_file in _taken.items():
        if lock_file.dropped:
            with contextlib.suppress(OSError):
                os.close(fd)
    _open.clear()
    _taken.clear()
    _open_pid = os.getpid()


def _put_back(lock_file: _LockFile) -> None:
    """One user less of ``lock_file``; close it if it was dropped and this was the last."""
    with _open_guard:
        lock_file.users -= 1
        if lock_file.dropped and lock_file.users == 0:
            os.close(lock_file.fd)


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def renew_after_fork(owner: _ForkAware) -> None:
    """Call ``owner._after_fork()`` in every child forked while ``owner`` is alive (it
    replaces its ``threading`` locks there)."""
    _live.add(owner)


def _renew_locks() -> None:
    _forget_open_files()
    for owner in list(_live):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_locks)
