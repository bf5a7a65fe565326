"""Which process runs a trial, and whether it is still alive.

Optuna's RDB storages fail the trials of dead workers through heartbeats. A journal file
has no heartbeat, so foldwise records on every trial the worker that runs it — host name,
boot id, process id, the process's start time and a random token drawn once per process —
and, before a study goes on, fails the RUNNING trials whose worker is known to be gone: a
process on this host that no longer exists. A pid alone is not an identity: in a container
the entrypoint is PID 1 on every start, so a restarted process can hold the very pid of the
dead worker whose trial it finds. The token tells them apart (and the start time and boot
id do the same for a pid reused by another process). Trials of workers on other hosts are left alone (a journal
file is a single-host storage; for several hosts use an RDB storage, whose heartbeats cover
this case).
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from typing import Any

__all__ = ["WORKER_ATTR", "WorkerId", "current_worker", "is_dead", "is_this_process"]

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


@functools.cache
def _boot_id() -> str | None:
    """This boot's id (Linux), so a pid and start time from before a reboot never match."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


_this_worker: tuple[int, WorkerId] | None = None


def current_worker() -> WorkerId:
    """Identify this process: ``{"host", "boot", "pid", "start", "token"}`` (once per process;
    a forked child gets its own)."""
    global _this_worker
    pid = os.getpid()
    if _this_worker is None or _this_worker[0] != pid:
        _this_worker = (pid, {"host": _host(), "boot": _boot_id(), "pid": pid,
                              "start": _start_time(pid), "token": secrets.token_hex(8)})
    return dict(_this_worker[1])


def is_dead(worker: Any) -> bool:
    """True only if ``worker`` ran on this host and that process no longer runs.

    The recorded worker is gone when this host booted since, when its pid is this very
    process but the token differs (a restart that got the same pid, as PID 1 in a
    container), when no process has its pid, or when the process with its pid started at
    another time. Workers of other hosts, and records too old to say, are left alone.
    """
    if not isinstance(worker, dict) or worker.get("host") != _host():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    boot = worker.get("boot")
    if boot is not None and _boot_id() is not None and boot != _boot_id():
        return True
    if pid == os.getpid():
        token = worker.get("token")
        return token is not None and token != current_worker()["token"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    recorded, current = worker.get("start"), _start_time(pid)
    return recorded is not None and current is not None and recorded != current


def is_this_process(worker: Any) -> bool:
    """True when ``worker`` is this very process (same host, pid and token).

    A trial of this process that it no longer evaluates (left RUNNING when the storage
    failed while the trial was being released) is an orphan the caller may fail.
    """
    if not isinstance(worker, dict):
        return False
    me = current_worker()
    return all(worker.get(field) == me[field] for field in ("host", "pid", "token"))
