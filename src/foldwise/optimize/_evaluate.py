"""Metrics of a parameter set on a fold's windows, every evaluation through the cache.

Two regimes, chosen by :attr:`foldwise.Strategy.causal`:

* **Causal** strategies (weights dated t use data through t only) are backtested once per
  parameter set over the full history; every window's metrics are slices of that one
  return series. F folds x N trials cost at most N backtests, and a repeated parameter
  set costs a lookup: the cache keeps one entry per full run and one metrics-only entry
  per (run, window).
* **Per-fold** strategies (``causal=False``, e.g. a model fit on the training window) are
  run per window: the training evaluation on the bars from ``warmup`` before the training
  window through its end, the test evaluation on the same history through the end of the
  test window. A strategy that accepts a ``train_end`` argument receives the date of the
  last training bar, so it can fit on data through that date only. Metrics cover the
  evaluated window's bars only; the warm-up bars are history, not results.

Windows made of several ranges (purged k-fold and CPCV training sets) are evaluated on the
concatenated bars of the full run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.data import MarketData
from foldwise.strategy import Strategy

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache
    from foldwise.splits import Fold

    from ._settings import RunSettings

__all__ = ["TRAIN_END", "Evaluator"]

#: Name of the optional strategy argument that receives the last training date.
TRAIN_END = "train_end"


def _ranges(positions: np.ndarray) -> list[tuple[int, int]]:
    if positions.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.r_[positions[0], positions[breaks]]
    stops = np.r_[positions[breaks - 1] + 1, positions[-1] + 1]
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


class Evaluator:
    """Computes train and test metrics of parameter sets on folds, through a cache.

    Parameters
    ----------
    strategy, data
        What is optimized, on what.
    cache
        The :class:`~foldwise.cache.BacktestCache` every backtest goes through.
    settings
        Backtest settings.
    warmup
        Per-fold strategies only: bars of history before the training window given to the
        strategy (None: all of it).
    """

    def __init__(self, strategy: Strategy, data: MarketData, cache: BacktestCache,
                 settings: RunSettings, warmup: int | None = None) -> None:
        self.strategy = strategy
        self.data = data
        self.cache = cache
        self.settings = settings.as_kwargs()
        self.warmup = warmup
        self.wants_train_end = TRAIN_END in strategy.parameters
        self._windows: dict[tuple[int, int], MarketData] = {}

    @property
    def causal(self) -> bool:
        return self.strategy.causal

    # --- public ------------------------------------------------------------------------

    def fold_metrics(self, params: Mapping[str, Any], fold: Fold, *,
                     test: bool = True) -> tuple[dict[str, float], dict[str, float] | None]:
        """``(train metrics, test metrics or None)`` of ``params`` on ``fold``."""
        train = self.window_metrics(params, fold.train, fold=fold)
        tested = self.window_metrics(params, fold.test, fold=fold) if test else None
        return train, tested

    def window_metrics(self, params: Mapping[str, Any], positions: np.ndarray, *,
                       fold: Fold) -> dict[str, float]:
        """Metrics of ``params`` over the bars at ``positions`` (of ``fold``)."""
        if self.causal:
            return self._causal(params, positions)
        return self._per_fold(params, positions, fold)

    def full_run(self, params: Mapping[str, Any]) -> Any:
        """The full-history result of a causal strategy (cached)."""
        return self.cache.get_or_run(self.strategy, params, self.data, **self.settings)

    # --- regimes -------------------------------------------------------------------------

    def _causal(self, params: Mapping[str, Any], positions: np.ndarray) -> dict[str, float]:
        ranges = _ranges(positions)
        if len(ranges) == 1:
            return dict(self.cache.metrics(self.strategy, params, self.data, window=ranges[0],
                                           **self.settings))
        return self.full_run(params).take(positions).metrics()

    def _per_fold(self, params: Mapping[str, Any], positions: np.ndarray,
                  fold: Fold) -> dict[str, float]:
        first_train = int(fold.train[0])
        lo = 0 if self.warmup is None else max(0, first_train - self.warmup)
        hi = int(positions[-1]) + 1
        window = self._window(lo, hi)
        run_params = dict(params)
        if self.wants_train_end:
            run_params[TRAIN_END] = self.data.index[int(fold.train[-1])]
        local = positions - lo
        ranges = _ranges(local)
        if len(ranges) == 1:
            return dict(self.cache.metrics(self.strategy, run_params, window, window=ranges[0],
                                           **self.settings))
        result = self.cache.get_or_run(self.strategy, run_params, window, **self.settings)
        return result.take(local).metrics()

    def _window(self, lo: int, hi: int) -> MarketData:
        """The data bars ``lo:hi`` (one object per range, so its hash is computed once)."""
        key = (lo, hi)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self.data.islice(lo, hi)
        return window
