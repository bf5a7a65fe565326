"""A progress bar over the trials of an optimization (tqdm), fed from the storage."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Progress"]


class Progress:
    """A tqdm bar of finished trials; a no-op when ``enabled`` is False.

    In a sequential run the trial loop advances it directly; with worker processes a
    thread of the main process polls ``count()`` (trials finished, read from the storage).
    """

    def __init__(self, total: int, done: int, description: str, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=min(done, total), desc=description,
                             unit="trial", dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def follow(self, count: Callable[[], int], every: float = 0.5) -> None:
        """Poll ``count()`` in a thread and move the bar to it."""
        if self._bar is None:
            return

        def poll() -> None:
            while not self._stop.wait(every):
                self.set(count())

        self._thread = threading.Thread(target=poll, name="foldwise-progress", daemon=True)
        self._thread.start()

    def set(self, done: int) -> None:
        if self._bar is not None and done > self._bar.n:
            self._bar.update(min(done, self._bar.total) - self._bar.n)

    def close(self, done: int | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._bar is not None:
            if done is not None:
                self.set(done)
            self._bar.close()
