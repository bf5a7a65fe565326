"""The loader interface through which the aggregator reads stored runs — it never runs one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from foldwise.backtest import BacktestResult
from foldwise.errors import OptimizationError

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache

__all__ = ["CacheRunLoader", "RunLoader"]


class RunLoader(Protocol):
    """Reads a stored backtest by its cache key (digest).

    The aggregator needs return series and positions only for the stitched out-of-sample
    curve, the deflated Sharpe ratio of a fold's choice, PBO and CPCV paths; everything else
    comes from the study records. An implementation may memoize, and may re-create a run
    it cannot find (counting them in an optional ``rebuilt`` attribute, which
    ``WalkForwardResult.runs_rebuilt`` reports); it must raise a
    :class:`~foldwise.errors.FoldwiseError` naming the fix when a run cannot be had.
    """

    def load(self, key: str) -> BacktestResult:
        """The run stored under ``key``."""
        ...


class CacheRunLoader:
    """A :class:`RunLoader` over a :class:`~foldwise.BacktestCache`, memoized per key.

    Parameters
    ----------
    cache
        The cache the optimization wrote to.
    study
        The optimization's name (for messages).
    """

    def __init__(self, cache: BacktestCache, study: str) -> None:
        self.cache = cache
        self.study = study
        self._loaded: dict[str, BacktestResult] = {}

    def load(self, key: str) -> BacktestResult:
        result = self._loaded.get(key)
        if result is not None:
            return result
        record = self.cache.get(key)
        if record is None:
            raise OptimizationError(
                f"a backtest of study {self.study!r} (cache key {key[:12]}...) is not in the "
                f"cache at {self.cache.root}: it was evicted or cleared, or the result was "
                "loaded with another cache. Pass the optimization's cache to "
                "load_result(..., cache=...), or call foldwise.optimize again with the same "
                "study, which runs only what is missing.")
        result = self._loaded[key] = record.result
        return result
