"""Run locks: one open lock file per process (byte ranges of one file on Linux, else 256
stripe files), still exclusive between threads and processes, and never held for a killed
process by a child it forked. Each test runs with both kinds of lock."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from foldwise.cache import _locks

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock locks")

DIGEST = "ab" + "0" * 30


@pytest.fixture(params=["byte ranges", "stripe files"], autouse=True)
def kind(request, monkeypatch):
    """Byte-range locks where the kernel takes them (Linux), and the stripe files of other
    systems everywhere."""
    if request.param == "byte ranges" and not _locks._byte_ranges:
        pytest.skip("no open file description locks here")
    monkeypatch.setattr(_locks, "_byte_ranges", request.param == "byte ranges")
    return request.param


def _lock_path(directory, digest: str) -> str:
    name, _ = _locks._address(digest)
    return f"{directory}/locks/{name}"


def test_a_lock_file_is_opened_once_per_process(tmp_path, monkeypatch, kind):
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(_locks.os, "open", counting_open)
    for digest in (DIGEST, DIGEST, "cd" + "1" * 30, DIGEST):
        _locks.release_run_lock(_locks.acquire_run_lock(tmp_path, digest))
    expected = [_lock_path(tmp_path, DIGEST)]
    if kind == "stripe files":
        expected.append(_lock_path(tmp_path, "cd" + "1" * 30))
    assert opened == expected


def test_threads_of_one_process_take_turns_on_a_lock(tmp_path):
    order = []
    first = _locks.acquire_run_lock(tmp_path, DIGEST)
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        fd = _locks.acquire_run_lock(tmp_path, DIGEST[:4] + "1" * 28)  # the same stripe
        order.append("other")
        _locks.release_run_lock(fd)

    thread = threading.Thread(target=other)
    thread.start()
    waiting.wait()
    thread.join(timeout=0.2)
    order.append("first")  # the other thread cannot have run while this one holds it
    _locks.release_run_lock(first)
    thread.join()
    assert order == ["first", "other"]


def test_threads_holding_other_stripes_do_not_wait(tmp_path, kind):
    """A thread holding one key's lock does not keep another thread from another stripe's
    (nor itself from a second lock of another stripe: with byte ranges, keys whose first
    two hex digits agree are on other stripes)."""
    first = _locks.acquire_run_lock(tmp_path, DIGEST)
    other_stripe = "ab01" + "0" * 28 if kind == "byte ranges" else "ef" + "0" * 30
    second = _locks.acquire_run_lock(tmp_path, other_stripe)  # the same thread
    done = threading.Event()

    def other() -> None:
        _locks.release_run_lock(_locks.acquire_run_lock(tmp_path, "cd" + "0" * 30))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    assert done.wait(timeout=30)
    thread.join()
    for number in (first, second):
        _locks.release_run_lock(number)
    assert all(not f.turns for f in _locks._open.values())  # turns are forgotten when free


def test_open_lock_files_are_bounded_and_a_held_one_closes_at_its_release(tmp_path,
                                                                          monkeypatch):
    """At most OPEN_LOCK_FILES lock files stay open (over stripes, or over cache
    directories where one file holds every stripe); one held when dropped stays open
    until its release."""
    monkeypatch.setattr(_locks, "OPEN_LOCK_FILES", 2)
    places = [(tmp_path / f"cache{i}", stripe + "0" * 30)
              for i, stripe in enumerate(("00", "01", "02", "03"))]
    held = _locks.acquire_run_lock(*places[0])
    held_fd = _locks._taken[held].lock_file.fd
    for place in places[1:]:
        _locks.release_run_lock(_locks.acquire_run_lock(*place))
    mine = [path for path in _locks._open if path.startswith(str(tmp_path))]
    assert len(mine) <= 2 and _lock_path(*places[0]) not in mine
    os.fstat(held_fd)  # dropped from the open files while held: still open
    _locks.release_run_lock(held)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(held_fd)  # closed by its release
    again = _locks.acquire_run_lock(*places[0])  # reopened
    _locks.release_run_lock(again)


_HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from foldwise.cache import _locks
    directory, digest = Path(sys.argv[1]), sys.argv[2]
    _locks._byte_ranges = sys.argv[3] == "byte ranges"
    _locks.release_run_lock(_locks.acquire_run_lock(directory, digest))  # opened, kept
    child = os.fork()
    if child == 0:  # a forked worker that outlives its parent
        time.sleep(60)
        os._exit(0)
    _locks.acquire_run_lock(directory, digest)
    print(child, flush=True)
    time.sleep(60)
""")

_TAKER = textwrap.dedent("""
    import fcntl, os, struct, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    byte = int(sys.argv[2]) if len(sys.argv) > 2 else None
    deadline = time.monotonic() + 30
    while True:
        try:
            if byte is None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # the kernel's own call, with struct flock as 64-bit Linux lays it out
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK,
                            struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0))
            print("taken")
            break
        except (BlockingIOError, PermissionError):
            if time.monotonic() > deadline:
                print("still held")
                break
            time.sleep(0.05)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_killed_process_leaves_no_lock_held_by_a_child_it_forked(tmp_path, kind):
    """The lock file the parent kept open is closed in its forked child: otherwise the
    child would hold the parent's lock after the parent is killed, and every process
    missing a key of that stripe would wait for the child."""
    child = None
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), DIGEST, kind],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(holder.stdout.readline())
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        name, byte = _locks._address(DIGEST)
        taken = subprocess.run([sys.executable, "-c", _TAKER, str(tmp_path / "locks" / name),
                                *([] if byte is None else [str(byte)])],
                               capture_output=True, text=True, timeout=60).stdout.strip()
    finally:
        holder.kill()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    assert taken == "taken"
