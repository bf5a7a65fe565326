"""Writing a running trial's parameters early — but only for trials that run long enough.

The batching journal (:class:`foldwise.storage.BatchedJournalStorage`) writes a trial at its
creation and at its end; its parameters can be written in between (:func:`flush_trial`),
so that a trial whose worker dies shows which set it was running, and samplers that read
other workers' running trials (TPE's ``constant_liar``) see them. Written at once, that is
a third append and re-read of the journal for every trial: for a strategy whose backtest
takes a millisecond, as much as the backtest itself.

:class:`DelayedFlush` writes them once the trial has run for :data:`FLUSH_AFTER` seconds:
a trial that ends sooner writes its parameters with its end, in the same append. A worker
killed within that time leaves its trial RUNNING without parameters; it is failed and run
again like any other trial of a dead worker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import optuna

from foldwise.storage import flush_trial

__all__ = ["FLUSH_AFTER", "DelayedFlush"]

logger = logging.getLogger(__name__)

#: Seconds a trial runs before its parameters are written ahead of its end.
FLUSH_AFTER = 0.25


class DelayedFlush:
    """One thread per trial loop that flushes the running trial after :data:`FLUSH_AFTER`.

    Use as a context manager around the loop; :meth:`watch` each trial before it is
    evaluated and ``watch(None)`` after.
    """

    def __init__(self, after: float = FLUSH_AFTER) -> None:
        self.after = after
        self._trial: optuna.Trial | None = None
        self._changed = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DelayedFlush:
        self._thread = threading.Thread(target=self._run, name="foldwise-flush", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def watch(self, trial: optuna.Trial | None) -> None:
        """The trial now running (None: none)."""
        with self._changed:
            self._trial = trial
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:  # never held while writing: the loop's thread waits on it
                if self._stop:
                    return
                trial = self._trial
                if trial is None:
                    self._changed.wait()
                    continue
                if self._changed.wait(self.after) or self._trial is not trial:
                    continue  # another trial (or none) since: start over
                self._trial = None  # flushed once
            try:
                flush_trial(trial)
            except Exception:  # the trial's end writes them anyway
                logger.debug("early write of trial %d failed", trial.number, exc_info=True)
