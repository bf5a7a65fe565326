"""The loader interface through which the aggregator reads stored runs — it never runs one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from foldwise.backtest import BacktestResult
from foldwise.cache import RunReturns
from foldwise.errors import OptimizationError

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache, CacheRecord

__all__ = ["CacheRunLoader", "RunLoader", "net_returns", "run_returns"]


class RunLoader(Protocol):
    """Reads a stored backtest by its cache key (digest).

    The aggregator reads runs only for the stitched out-of-sample curve (:meth:`load`: the
    positions at the folds' seams), and for the deflated Sharpe ratio of a fold's choice,
    metrics the records lack, PBO, data snooping and CPCV paths (:meth:`returns` and
    :meth:`net_returns`: no positions); everything else comes from the study records. An implementation may memoize, and may re-create a run
    it cannot find (counting them in an optional ``rebuilt`` attribute, which
    ``WalkForwardResult.runs_rebuilt`` reports); it must raise a
    :class:`~foldwise.errors.FoldwiseError` naming the fix when a run cannot be had.
    """

    def load(self, key: str) -> BacktestResult:
        """The run stored under ``key``."""
        ...

    def returns(self, key: str) -> RunReturns:
        """The returns form of the run stored under ``key``: for the readers that need its
        returns, costs, turnover or the metrics of its windows, not its positions (a
        cache may store a run without them). The default is that of :meth:`load`."""
        return RunReturns.of(self.load(key))

    def net_returns(self, keys: Sequence[str]) -> Iterator[np.ndarray]:
        """The per-period net returns of the runs ``keys``, one 1-D float64 array each, in
        the order of ``keys`` (do not write to them).

        For the statistics that need one column of many runs (PBO reads every distinct
        parameter set's full run): an implementation reads only what that needs and keeps
        none of what it read, so memory does not grow with the number of runs (it may
        read ahead, or in parallel). The default loads each run with :meth:`load`.
        """
        for key in keys:
            yield self.load(key).arrays.net


def run_returns(loader: RunLoader, key: str) -> RunReturns:
    """``loader.returns(key)``, or :meth:`RunLoader.returns`'s default for a loader written
    before that method."""
    method = getattr(loader, "returns", None)
    found: RunReturns = RunLoader.returns(loader, key) if method is None else method(key)
    return found


def net_returns(loader: RunLoader, keys: Sequence[str]) -> Iterator[np.ndarray]:
    """``loader.net_returns(keys)``, or :meth:`RunLoader.net_returns`'s default for a loader
    written before that method (one that implements :meth:`~RunLoader.load` only)."""
    method = getattr(loader, "net_returns", None)
    if method is None:
        return RunLoader.net_returns(loader, keys)
    result: Iterator[np.ndarray] = method(keys)
    return result


class CacheRunLoader(RunLoader):
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

    def _stored(self, key: str) -> CacheRecord:
        record = self.cache.get(key)
        if record is None:
            raise OptimizationError(
                f"a backtest of study {self.study!r} (cache key {key[:12]}...) is not in the "
                f"cache at {self.cache.root}: it was evicted or cleared, or the result was "
                "loaded with another cache. Pass the optimization's cache to "
                "load_result(..., cache=...), or call foldwise.optimize again with the same "
                "study, which runs only what is missing.")
        return record

    def load(self, key: str) -> BacktestResult:
        result = self._loaded.get(key)
        if result is None:
            result = self._loaded[key] = self._stored(key).result
        return result

    def net_returns(self, keys: Sequence[str]) -> Iterator[np.ndarray]:
        """:meth:`RunLoader.net_returns` without keeping the runs (the cache's own memory of
        recent results is bounded)."""
        for key in keys:
            yield self.returns(key).net

    def returns(self, key: str) -> RunReturns:
        kept = self._loaded.get(key)
        return RunReturns.of(kept) if kept is not None else self._stored(key).run_returns()
