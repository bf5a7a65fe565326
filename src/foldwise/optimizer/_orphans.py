"""Worker processes stop when the process that started the optimization dies.

With ``n_jobs > 1`` joblib's default backend (loky) runs the folds in worker processes that
are children of the process that called :func:`foldwise.optimize` (measured on Linux: the
workers, and loky's resource tracker beside them, have that process as their parent; no
fork server stands between them). When that process is killed (``kill -9``, an
out-of-memory kill, a closed terminal) nothing tells its workers: each one goes on running
the trials of its fold for as long as the fold takes, and a resumed run would find them
still writing to its studies.

So a worker, at the start of each task, checks that it is a child of the process that
asked for the work, and from then on a daemon thread watches its parent process id (a
cheap system call, every :data:`POLL_SECONDS`). When the parent is gone (the worker was
given to another parent process, ``init`` or a subreaper) the worker exits at once, as
abruptly as a killed process: the trial it was running stays RUNNING under a worker that
no longer exists, and the next run fails it as a dead worker's and runs its budget again
(:mod:`foldwise.optimizer._trials`), exactly as after ``kill -9`` of the worker. What a
worker writes (the journal, the cache) is kept consistent by writes that survive a kill at
any instant, so nothing is lost. The parent's process id is watched rather than asking
the kernel for a signal at the parent's death (``PR_SET_PDEATHSIG``), which fires when the
*thread* that started the worker ends — with loky, possibly a thread of a live process.

Workers that are not children of the caller (a Dask cluster, another host) are not
watched; a worker whose caller is already gone when a task reaches it runs none of it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from foldwise.errors import OptimizationError
from foldwise.storage import current_worker, is_dead, is_this_process

__all__ = ["POLL_SECONDS", "stop_with_caller"]

logger = logging.getLogger(__name__)

#: How often a worker checks that its parent process is still the caller.
POLL_SECONDS = 0.1

#: The exit status of a worker whose parent died.
EXIT_STATUS = 70

_lock = threading.Lock()
_watched: tuple[int, int] | None = None  # (this process, the parent it watches)


def stop_with_caller(caller: dict[str, Any]) -> None:
    """In a worker process, exit when ``caller`` (the process that called optimize) dies.

    Parameters
    ----------
    caller
        :func:`foldwise.storage.current_worker` of the process that asked for the work.

    Raises
    ------
    OptimizationError
        If ``caller`` is a process of this host that no longer runs: the work was asked
        for by a process that is gone, and nothing of it is run.
    """
    if is_this_process(caller):
        return  # run in the caller itself (n_jobs=1, a threading backend)
    parent = caller.get("pid")
    if caller.get("host") == current_worker()["host"] and parent == os.getppid():
        _watch(parent)
    elif is_dead(caller):
        raise OptimizationError(
            f"the process that started this optimization (pid {parent}) is gone; this "
            f"worker (pid {os.getpid()}) runs nothing of it. Run the same optimize call "
            "again to resume the study.")


def _watch(parent: int) -> None:
    """Start (once per process) the thread that exits this process when ``parent`` dies."""
    global _watched
    with _lock:
        if _watched == (os.getpid(), parent):
            return
        _watched = (os.getpid(), parent)
    threading.Thread(target=_exit_with, args=(parent,), name="foldwise-parent-watch",
                     daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    try:
        logger.warning("worker %d: the process that started it (pid %d) is gone; exiting "
                       "(its running trial, if any, is run again by the next run)",
                       os.getpid(), parent)
    finally:
        os._exit(EXIT_STATUS)
