"""Run locks: one open lock file per stripe and process, still exclusive between threads and
processes, and never held for a killed process by a child it forked."""

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


def test_a_lock_file_is_opened_once_per_process(tmp_path, monkeypatch):
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(_locks.os, "open", counting_open)
    for _ in range(5):
        _locks.release_run_lock(_locks.acquire_run_lock(tmp_path, DIGEST))
    assert opened == [f"{tmp_path}/locks/ab.lock"]


def test_threads_of_one_process_take_turns_on_a_lock(tmp_path):
    order = []
    first = _locks.acquire_run_lock(tmp_path, DIGEST)
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        fd = _locks.acquire_run_lock(tmp_path, "ab" + "1" * 30)  # the same stripe
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


def test_open_lock_files_are_bounded_and_a_held_one_closes_at_its_release(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(_locks, "OPEN_LOCK_FILES", 2)
    held = _locks.acquire_run_lock(tmp_path, "00" + "0" * 30)
    for stripe in ("01", "02", "03"):
        _locks.release_run_lock(_locks.acquire_run_lock(tmp_path, stripe + "0" * 30))
    mine = [path for path in _locks._open if path.startswith(str(tmp_path))]
    assert len(mine) <= 2 and f"{tmp_path}/locks/00.lock" not in mine
    os.fstat(held)  # dropped from the open files while held: still open
    _locks.release_run_lock(held)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(held)  # closed by its release
    again = _locks.acquire_run_lock(tmp_path, "00" + "0" * 30)  # reopened
    _locks.release_run_lock(again)


_HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from foldwise.cache import _locks
    directory, digest = Path(sys.argv[1]), sys.argv[2]
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
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    deadline = time.monotonic() + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("taken")
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                print("still held")
                break
            time.sleep(0.05)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_killed_process_leaves_no_lock_held_by_a_child_it_forked(tmp_path):
    """The lock file the parent kept open is closed in its forked child: otherwise the
    child would hold the parent's lock after the parent is killed, and every process
    missing a key of that stripe would wait for the child."""
    child = None
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path), DIGEST],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(holder.stdout.readline())
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        taken = subprocess.run([sys.executable, "-c", _TAKER, str(tmp_path / "locks/ab.lock")],
                               capture_output=True, text=True, timeout=60).stdout.strip()
    finally:
        holder.kill()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    assert taken == "taken"
