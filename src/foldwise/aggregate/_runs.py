"""Loading the backtests behind a result from the cache — never running one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foldwise.backtest import BacktestResult
from foldwise.errors import OptimizationError

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache

__all__ = ["RunLoader"]


class RunLoader:
    """Reads stored runs by cache key (digest), memoized; a missing run is a clear error."""

    def __init__(self, cache: BacktestCache, study: str) -> None:
        self.cache = cache
        self.study = study
        self._loaded: dict[str, BacktestResult] = {}

    def load(self, digest: str) -> BacktestResult:
        """The stored run ``digest`` (its arrays are read from the artifact file once)."""
        result = self._loaded.get(digest)
        if result is not None:
            return result
        record = self.cache.get(digest)
        if record is None:
            raise OptimizationError(
                f"a backtest of study {self.study!r} (cache key {digest[:12]}...) is not in "
                f"the cache at {self.cache.root}: it was evicted or cleared, or the result "
                "was loaded with another cache. Pass the optimization's cache to "
                "load_result(..., cache=...), or call foldwise.optimize again with the same "
                "study, which runs only what is missing.")
        result = self._loaded[digest] = record.result
        return result

    def run_of(self, evaluation: dict[str, Any], window: str) -> tuple[BacktestResult, int]:
        """The run a trial's ``window`` ("train" or "test") metrics were cut from, and the
        global bar position of its first bar."""
        runs = evaluation.get("runs") or {}
        digest = runs.get("full") or runs.get(window)
        if digest is None:
            raise OptimizationError(
                f"study {self.study!r} stored no run key for this trial; it was made by an "
                "older foldwise. Run it again under a new study name.")
        return self.load(digest), int(evaluation.get("offset", 0) or 0)
