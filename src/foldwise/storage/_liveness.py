"""Which process runs a trial, and whether it is still alive.

Optuna's RDB storages fail the trials of dead workers through heartbeats. A journal file
has no heartbeat, so foldwise records on every trial the worker that runs it (host name,
process id and the process's start time, which tells a reused pid apart) and, before a
study goes on, fails the RUNNING trials whose worker is known to be gone: a process on
this host that no longer exists. Trials of workers on other hosts are left alone (a journal
file is a single-host storage; for several hosts use an RDB storage, whose heartbeats cover
this case).
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

__all__ = ["WORKER_ATTR", "WorkerId", "current_worker", "is_dead"]

WorkerId = dict[str, Any]

#: The trial user attribute naming the worker that runs the trial.
WORKER_ATTR = "foldwise_worker"


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


@functools.cache
def _host() -> str:
    return socket.gethostname()


_this_worker: tuple[int, WorkerId] | None = None


def current_worker() -> WorkerId:
    """Identify this process: ``{"host", "pid", "start"}`` (read once per process)."""
    global _this_worker
    pid = os.getpid()
    if _this_worker is None or _this_worker[0] != pid:
        _this_worker = (pid, {"host": _host(), "pid": pid, "start": _start_time(pid)})
    return dict(_this_worker[1])


def is_dead(worker: Any) -> bool:
    """True only if ``worker`` ran on this host and that process no longer exists."""
    if not isinstance(worker, dict) or worker.get("host") != _host():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    recorded, current = worker.get("start"), _start_time(pid)
    return recorded is not None and current is not None and recorded != current
