"""A worker process exits when the process that called optimize dies (``_orphans``).

The end-to-end case (kill -9 of an ``optimize(n_jobs=2)`` run, its loky workers gone,
the study resumed) is in ``tests/test_optimize_processes.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from foldwise.errors import OptimizationError
from foldwise.optimizer._orphans import stop_with_caller
from foldwise.storage import current_worker

ROOT = Path(__file__).resolve().parents[1]


def test_the_caller_itself_is_not_watched():
    before = {t.name for t in threading.enumerate()}
    stop_with_caller(current_worker())
    assert "foldwise-parent-watch" not in {t.name for t in threading.enumerate()} - before


def test_work_from_a_caller_that_is_gone_is_refused():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = {**current_worker(), "pid": int(done.stdout), "start": None, "token": "x"}
    with pytest.raises(OptimizationError, match="is gone"):
        stop_with_caller(gone)


def test_a_process_from_another_host_is_not_watched():
    stop_with_caller({**current_worker(), "host": "elsewhere", "pid": 1})


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_child_exits_when_its_parent_is_killed(tmp_path):
    """A parent forks a child that watches it, then dies: the child exits within seconds
    instead of sleeping its minute."""
    pid_file = tmp_path / "child"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from foldwise.optimizer._orphans import stop_with_caller
        from foldwise.storage import current_worker
        caller = current_worker()
        child = os.fork()
        if child == 0:
            stop_with_caller(caller)
            time.sleep(60)
            os._exit(0)
        open({str(pid_file)!r}, "w").write(str(child))
        time.sleep(0.5)
        os._exit(0)  # the parent dies without a word to its child
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the child kept running after its parent died"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"
