"""Write-behind for the optimizer: new entries are written by one background thread.

Storing a full run costs a Parquet file, two fsyncs and an index row — a few
milliseconds, often more than a cheap backtest. Inside
:meth:`~foldwise.BacktestCache.deferred_writes` those writes run on a background thread
while the trial loop goes on (Parquet, fsync and SQLite release the GIL), in the order they
were submitted, so a slice entry never lands before its full run.

What stays true:

* This process sees an entry at once: its record is in the memo and its result is held
  until written.
* Another process never sees a half-written entry (the same file-then-row order as a
  synchronous write), and never runs the same key at the same time: the run lock of a key
  is held until its entry is in the index.
* At most ``depth`` entries are in flight; a process killed before they land loses them
  (they are run again on resume), never the consistency of the cache. Leaving the context
  waits for every pending write.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Writer"]

logger = logging.getLogger(__name__)


class Writer:
    """One background thread that runs write jobs in order (see the module docstring)."""

    def __init__(self, depth: int = 4) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], int | None] | None] = queue.Queue(
            maxsize=max(1, depth))
        self.pending: dict[str, Any] = {}  # digest -> result of a full run not yet written
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="foldwise-cache-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], *, lock_fd: int | None = None) -> None:
        """Queue ``job``; ``lock_fd`` (a held run lock) is closed once the job is done."""
        self._jobs.put((job, lock_fd))

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                self._jobs.task_done()
                return
            job, lock_fd = item
            try:
                job()
            except Exception:  # the entry is lost, not the run: it stays in this process
                logger.exception("a background cache write failed; the entry is kept in "
                                 "memory only and will be run again by other processes")
            finally:
                if lock_fd is not None:
                    os.close(lock_fd)  # releases the run lock
                self._jobs.task_done()

    def close(self) -> None:
        """Wait for every queued write, then stop the thread."""
        if os.getpid() != self._pid or not self._thread.is_alive():
            return
        self._jobs.put(None)
        self._thread.join()
