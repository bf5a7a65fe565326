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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.data import MarketData
from foldwise.splits._purge import runs
from foldwise.strategy import Strategy

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache
    from foldwise.splits import Fold

    from ._settings import RunSettings

__all__ = ["TRAIN_END", "Evaluation", "Evaluator"]

#: Name of the optional strategy argument that receives the last training date.
TRAIN_END = "train_end"


@dataclass
class Evaluation:
    """What one evaluation of a parameter set on a fold gave.

    Attributes
    ----------
    train, test
        Metrics on the training and test windows (``test`` None when not evaluated).
    runs
        Cache keys (digests) of the runs the metrics were cut from: ``{"full": key}`` for
        a causal strategy, ``{"train": key, "test": key}`` for a per-fold one. They let the
        result be rebuilt from the cache without running anything.
    offset
        Bar position of the first bar of a per-fold run (0 for full-history runs).
    backtests
        How many backtests this evaluation executed (0: everything came from the cache).
    """

    train: dict[str, float] | None
    test: dict[str, float] | None
    runs: dict[str, str] = field(default_factory=dict)
    offset: int = 0
    backtests: int = 0

    def as_attr(self) -> dict[str, Any]:
        """The JSON stored on the trial."""
        return {"train": self.train, "test": self.test, "runs": self.runs,
                "offset": self.offset, "backtests": self.backtests}


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
        self._ranges: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def causal(self) -> bool:
        return self.strategy.causal

    # --- public ------------------------------------------------------------------------

    def evaluate(self, params: Mapping[str, Any], fold: Fold, *, train: bool = True,
                 test: bool = True) -> Evaluation:
        """Metrics of ``params`` on ``fold``'s training and/or test window."""
        before = self.cache.executed
        if self.causal:
            key = self.cache.key(self.strategy, params, self.data, **self.settings)
            wanted = [w for w, on in ((fold.train, train), (fold.test, test)) if on]
            metrics = iter(self._causal(params, wanted))
            evaluation = Evaluation(train=next(metrics) if train else None,
                                    test=next(metrics) if test else None,
                                    runs={"full": key.digest})
        else:
            evaluation = Evaluation(train=None, test=None, offset=self._first_bar(fold))
            if train:
                evaluation.train, evaluation.runs["train"] = self._per_fold(params, fold.train, fold)
            if test:
                evaluation.test, evaluation.runs["test"] = self._per_fold(params, fold.test, fold)
        evaluation.backtests = self.cache.executed - before
        return evaluation

    # --- regimes -------------------------------------------------------------------------

    def _runs(self, positions: np.ndarray) -> np.ndarray:
        """``runs(positions)`` of a fold window, computed once per window, not per trial."""
        found = self._ranges.get(id(positions))
        if found is None or found[0] is not positions:
            found = self._ranges[id(positions)] = (positions, runs(positions))
        return found[1]

    def _causal(self, params: Mapping[str, Any], windows: list[np.ndarray]
                ) -> list[dict[str, float]]:
        """Metrics of each window (bar positions) cut from the full run of ``params``.

        Contiguous windows are cache entries, looked up (or stored) together; a window of
        several ranges (a purged training set) is cut from the full run each time.
        """
        ranges = [self._runs(positions) for positions in windows]
        simple = [i for i, r in enumerate(ranges) if len(r) == 1]
        found = self.cache.window_metrics(
            self.strategy, params, self.data,
            [(int(ranges[i][0, 0]), int(ranges[i][0, 1])) for i in simple],
            **self.settings) if simple else []
        metrics: list[dict[str, float]] = [{}] * len(windows)
        for i, values in zip(simple, found, strict=True):
            metrics[i] = dict(values)
        for i, positions in enumerate(windows):
            if len(ranges[i]) != 1:
                full = self.cache.get_or_run(self.strategy, params, self.data, **self.settings)
                metrics[i] = full.take(positions).metrics()
        return metrics

    def _first_bar(self, fold: Fold) -> int:
        first_train = int(fold.train[0])
        return 0 if self.warmup is None else max(0, first_train - self.warmup)

    def _per_fold(self, params: Mapping[str, Any], positions: np.ndarray,
                  fold: Fold) -> tuple[dict[str, float], str]:
        lo = self._first_bar(fold)
        window = self._window(lo, int(positions[-1]) + 1)
        run_params = dict(params)
        if self.wants_train_end:
            run_params[TRAIN_END] = self.data.index[int(fold.train[-1])]
        local = positions - lo
        ranges = runs(local)
        key = self.cache.key(self.strategy, run_params, window, **self.settings)
        if len(ranges) == 1:
            metrics = self.cache.metrics(self.strategy, run_params, window,
                                         window=(int(ranges[0, 0]), int(ranges[0, 1])),
                                         **self.settings)
            return dict(metrics), key.digest
        result = self.cache.get_or_run(self.strategy, run_params, window, **self.settings)
        return result.take(local).metrics(), key.digest

    def _window(self, lo: int, hi: int) -> MarketData:
        """The data bars ``lo:hi`` (one object per range, so its hash is computed once)."""
        key = (lo, hi)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self.data.islice(lo, hi)
        return window
