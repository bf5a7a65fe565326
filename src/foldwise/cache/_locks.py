"""The locks of a cache: run locks between processes, and in-process locks after a fork.

Two kinds of lock keep a cache correct when it is shared:

1. **Run locks** (:func:`acquire_run_lock`). When two processes miss the same key at the
   same moment, only one may run the backtest; the other waits and then finds the stored
   run. A lock is held from the moment a miss is seen until the run's index rows are
   committed, and the kernel releases it when its process dies, so a killed worker never
   leaves a key locked. Keys are spread over stripes by the first hex digits of their
   digest:

   * on Linux, 65,536 byte-range locks of one file, ``locks/runs.lock`` (open file
     description locks, ``F_OFD_SETLKW``: owned by the open file, like ``flock``, not by
     the process, so closing another descriptor of the file releases nothing);
   * elsewhere (or where the kernel refuses them), 256 files ``locks/00.lock`` ..
     ``locks/ff.lock`` held with ``flock``.

   Measured: creating a file costs about 250 us on this project's ext4 machines, so the
   256 stripe files cost a new cache 60 ms (3 % of the first 1,000-trial study); the
   byte ranges cost one file and collide 256 times less often. A process opens each
   lock file once and keeps it open (at most :data:`OPEN_LOCK_FILES` of them, the least
   recently used closed first; new descriptors in a forked child). Threads of one
   process take turns on a stripe with a ``threading.Lock`` beside the kernel's lock,
   which does not exclude holders of the same open file. An index whose store several
   hosts share may keep these locks itself (:meth:`IndexBackend.run_lock
   <foldwise.cache.IndexBackend.run_lock>`, e.g. PostgreSQL's advisory locks): the cache
   names its index for its directory (:func:`serve_run_locks`) and the locks of that
   directory are then taken from the index. An earlier foldwise took the stripe files on
   Linux too: it and this one sharing a cache at the same moment do not exclude each
   other, and a key both miss may run twice (its index rows are written once).
2. **In-process locks** (:func:`renew_after_fork`). The parts of a cache object guard their
   dicts with a ``threading.Lock``. A lock held by another thread when the process forks
   would never be released in the child, so each registered object gets fresh locks in a
   forked child (its ``_after_fork`` method is called there).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import struct
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

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
_handles = itertools.count(1)  # the run locks of lock files, under positive numbers


def serve_run_locks(directory: Path, index: IndexBackend) -> None:
    """Take the run locks of the cache in ``directory`` from ``index`` when it keeps them
    (its ``run_lock`` returns a lock), from the lock files otherwise."""
    _served[str(directory)] = index

#: The run-lock file of a cache directory where the kernel takes byte-range locks.
RANGE_LOCK_FILE = "runs.lock"

#: The run-lock files of a cache directory, relative to it: the byte-range one and the
#: 256 stripe files.
LOCK_FILES = frozenset({f"locks/{RANGE_LOCK_FILE}",
                        *(f"locks/{i:02x}.lock" for i in range(256))})

# Open file description locks: 64-bit Linux (``struct flock`` packed below as its layout
# there); False once the kernel refused one (then every lock of the process is a file's).
_byte_ranges = (sys.platform == "linux" and hasattr(fcntl, "F_OFD_SETLKW")
                and struct.calcsize("l") == 8)
_FLOCK = struct.Struct("hhqqi4x")  # l_type, l_whence, l_start, l_len, l_pid, padding


def _address(digest: str) -> tuple[str, int | None]:
    """The lock file of ``digest`` and its byte in it (None: the whole file, ``flock``)."""
    if _byte_ranges:
        return RANGE_LOCK_FILE, int(digest[:4], 16)
    return f"{digest[:2]}.lock", None


def _lock(fd: int, byte: int | None) -> None:
    """Wait for and take the lock of ``byte`` of the file (the whole file for None)."""
    if byte is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0))


def _unlock(fd: int, byte: int | None) -> None:
    if byte is None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, byte, 1, 0))


class _Held(NamedTuple):
    """A run lock this process holds: its file, its byte (None: the whole file) and the
    turn its thread took."""

    lock_file: _LockFile
    byte: int | None
    turn: _Turn


class _Turn:
    """The ``threading.Lock`` threads of this process take on one stripe, and how many of
    them hold or wait for it (it is forgotten when none does)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


def _join_turn(lock_file: _LockFile, byte: int | None) -> _Turn:
    with _open_guard:
        turn = lock_file.turns.get(byte)
        if turn is None:
            turn = lock_file.turns[byte] = _Turn()
        turn.users += 1
        return turn


def _leave_turn(lock_file: _LockFile, byte: int | None) -> None:
    with _open_guard:
        turn = lock_file.turns[byte]
        turn.users -= 1
        if turn.users == 0:
            del lock_file.turns[byte]


def acquire_run_lock(directory: Path, digest: str) -> int | None:
    """Take the run lock of ``digest`` under ``directory``; wait while another process holds
    it. Return a positive number standing for the lock (None where ``fcntl`` is missing),
    or a negative one for a lock the cache's index keeps (:func:`serve_run_locks`); pass
    it to :func:`release_run_lock`."""
    global _byte_ranges
    index = _served.get(str(directory))
    lock = index.run_lock(digest) if index is not None else None
    if lock is not None:
        number = next(_numbers)
        _held[number] = lock
        return number
    if sys.platform == "win32":  # pragma: no cover - no flock: runs are not serialized
        return None
    name, byte = _address(digest)
    lock_file = _lock_file(directory, name)
    turn = _join_turn(lock_file, byte)
    try:
        turn.lock.acquire()  # threads of this process first, then other processes
        try:
            _lock(lock_file.fd, byte)
        except BaseException:
            turn.lock.release()
            raise
    except OSError as exc:
        _leave_turn(lock_file, byte)
        _put_back(lock_file)
        if byte is None or exc.errno != errno.EINVAL:
            raise
        _byte_ranges = False  # pragma: no cover - a kernel without open file description locks
        return acquire_run_lock(directory, digest)  # pragma: no cover
    except BaseException:
        _leave_turn(lock_file, byte)
        _put_back(lock_file)
        raise
    number = next(_handles)
    with _open_guard:
        _taken[number] = _Held(lock_file, byte, turn)
    return number


def release_run_lock(number: int | None) -> None:
    """Release a lock taken by :func:`acquire_run_lock` (None: nothing to release)."""
    if number is not None and number < 0:
        _held.pop(number).release()
    elif number is not None:
        with _open_guard:
            held = _taken.pop(number, None)
        if held is None:  # taken before this process forked: the parent's to release
            return
        try:
            _unlock(held.lock_file.fd, held.byte)
        finally:
            held.turn.lock.release()
            _leave_turn(held.lock_file, held.byte)
            _put_back(held.lock_file)


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
    """An open run-lock file of this process, the turns its threads take on its stripes
    (by byte; None for a stripe file), and how many callers hold or wait for it (it is
    closed only when none does)."""

    __slots__ = ("dropped", "fd", "turns", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.turns: dict[int | None, _Turn] = {}
        self.users = 1
        self.dropped = False  # no longer among the open files: closed by its last user


# Path -> open lock file, least recently used first; number -> run lock now held.
_open: dict[str, _LockFile] = {}
_taken: dict[int, _Held] = {}
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
    lock of a killed parent held, and its own locks would not exclude the parent."""
    global _open_guard, _open_pid
    _open_guard = threading.Lock()
    for lock_file in _open.values():
        with contextlib.suppress(OSError):
            os.close(lock_file.fd)
    for fd in {held.lock_file.fd for held in _taken.values() if held.lock_file.dropped}:
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
