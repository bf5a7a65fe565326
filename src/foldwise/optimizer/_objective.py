"""The objective of a trial: metrics of a parameter set on fold windows, through the cache.

:func:`evaluate_walk_forward` and :func:`evaluate_cv` turn a trial into a
:class:`~foldwise.optimizer._trials.Outcome` holding its
:class:`~foldwise.records.TrialRecord`; the :class:`Evaluator` computes each
:class:`~foldwise.records.Evaluation`.

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

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from foldwise.backtest import BacktestSettings
from foldwise.data import MarketData
from foldwise.records import Evaluation, Failure, FailureKind, TrialRecord
from foldwise.splits import positions_to_ranges
from foldwise.strategy import Strategy

from ._trials import Outcome

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache
    from foldwise.space import SearchSpace
    from foldwise.splits import Fold

__all__ = ["CV_AGGREGATES", "TRAIN_END", "Evaluator", "evaluate_cv", "evaluate_walk_forward",
           "trial_metrics"]

#: Name of the optional strategy argument that receives the last training date.
TRAIN_END = "train_end"

#: How cross-validated mode combines the fold metrics of a set.
CV_AGGREGATES: dict[str, Callable[[list[float], str], float]] = {
    "mean": lambda values, direction: statistics.fmean(values),
    "median": lambda values, direction: statistics.median(values),
    "worst": lambda values, direction: min(values) if direction == "maximize" else max(values),
}


def trial_metrics(metric: str) -> tuple[str, ...]:
    """The metrics a trial computes: its objective, and the Sharpe ratio, which the fold's
    deflated Sharpe ratio reads from every trial. Everything else is computed on demand
    for the sets a table shows (:mod:`foldwise.aggregate`), so that a trial of a fast
    strategy costs its backtest and one or two metrics, not twenty."""
    return tuple(dict.fromkeys((metric, "sharpe")))


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
    names
        The metrics each evaluation computes (None: all of them). The trial loop asks for
        :func:`trial_metrics` only; a fold's chosen sets get the rest when a table shows
        them.
    folds
        The study's folds (causal strategies): their windows are the ``ahead`` windows of
        :meth:`BacktestCache.window_metrics <foldwise.BacktestCache.window_metrics>`.
    """

    def __init__(self, strategy: Strategy, data: MarketData, cache: BacktestCache,
                 settings: BacktestSettings, warmup: int | None = None,
                 names: tuple[str, ...] | None = None, folds: Sequence[Fold] = ()) -> None:
        self.names = names
        # every fold's contiguous windows: stored with a set's full run when that pays
        # (BacktestCache.window_metrics(ahead=...)), so a later fold's trial of the set
        # is a lookup
        self.ahead = [(int(r[0, 0]), int(r[0, 1])) for fold in folds
                      for r in (positions_to_ranges(fold.train), positions_to_ranges(fold.test))
                      if len(r) == 1]
        self.strategy = strategy
        self.data = data
        self.cache = cache
        self.settings = settings
        self.warmup = warmup
        self.wants_train_end = TRAIN_END in strategy.parameters
        self._windows: dict[tuple[int, int], MarketData] = {}
        self._ranges: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def causal(self) -> bool:
        return self.strategy.causal

    def _backtests(self) -> int:
        """Backtests the cache ran so far: misses, and runs without arrays run again."""
        return self.cache.executed + self.cache.recomputed

    # --- public ------------------------------------------------------------------------

    def evaluate(self, params: Mapping[str, Any], fold: Fold, *, train: bool = True,
                 test: bool = True) -> Evaluation:
        """Metrics of ``params`` on ``fold``'s training and/or test window."""
        before = self._backtests()
        if self.causal:
            key = self.cache.key(self.strategy, params, self.data, settings=self.settings)
            wanted = [w for w, on in ((fold.train, train), (fold.test, test)) if on]
            metrics = iter(self._causal(params, wanted))
            return Evaluation(train=next(metrics) if train else None,
                              test=next(metrics) if test else None,
                              runs={"full": key.digest},
                              backtests=self._backtests() - before)
        windows: dict[str, dict[str, float]] = {}
        runs: dict[str, str] = {}
        for name, positions, on in (("train", fold.train, train), ("test", fold.test, test)):
            if on:
                windows[name], runs[name] = self._per_fold(params, positions, fold)
        return Evaluation(train=windows.get("train"), test=windows.get("test"), runs=runs,
                          offset=self._first_bar(fold), backtests=self._backtests() - before)

    # --- regimes -------------------------------------------------------------------------

    def _runs(self, positions: np.ndarray) -> np.ndarray:
        """``positions_to_ranges(positions)`` of a fold window, computed once per window, not per trial."""
        found = self._ranges.get(id(positions))
        if found is None or found[0] is not positions:
            found = self._ranges[id(positions)] = (positions, positions_to_ranges(positions))
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
            settings=self.settings, names=self.names, ahead=self.ahead) if simple else []
        metrics: list[dict[str, float]] = [{}] * len(windows)
        for i, values in zip(simple, found, strict=True):
            metrics[i] = dict(values)
        for i, positions in enumerate(windows):
            if len(ranges[i]) != 1:
                full = self.cache.run_returns(self.strategy, params, self.data,
                                              settings=self.settings)
                metrics[i] = full.take(positions).metrics(self.names)
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
        ranges = positions_to_ranges(local)
        key = self.cache.key(self.strategy, run_params, window, settings=self.settings)
        if len(ranges) == 1:
            metrics = self.cache.metrics(self.strategy, run_params, window,
                                         window=(int(ranges[0, 0]), int(ranges[0, 1])),
                                         settings=self.settings, names=self.names)
            return dict(metrics), key.digest
        result = self.cache.run_returns(self.strategy, run_params, window,
                                        settings=self.settings)
        return result.take(local).metrics(self.names), key.digest

    def _window(self, lo: int, hi: int) -> MarketData:
        """The data bars ``lo:hi`` (one object per range, so its hash is computed once)."""
        key = (lo, hi)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self.data.islice(lo, hi)
        return window


# --- the objective of a trial --------------------------------------------------------------


def _suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """The trial's parameters. The batching journal writes them with the trial's end, or
    earlier if the trial runs long (:mod:`foldwise.optimizer._flush`)."""
    return space.suggest(trial)


def _non_finite(value: float, metric: str, where: str) -> Failure | None:
    if isinstance(value, float) and math.isfinite(value):
        return None
    return Failure(FailureKind.NON_FINITE, "NonFiniteMetric",
                   f"{metric} is {value} on {where} (for example a strategy that never trades "
                   "has no Sharpe ratio); the trial counts as failed")


def evaluate_walk_forward(trial: optuna.Trial, space: SearchSpace, evaluator: Evaluator,
                          fold: Fold, metric: str) -> Outcome:
    """Optimize on ``fold``'s training window; a causal strategy's test window comes along
    (a slice of the same run), a per-fold strategy's is evaluated for the chosen sets only."""
    params = _suggest(trial, space)
    reason = space.infeasible(params)
    if reason is not None:
        return Outcome(TrialRecord(params=params, infeasible=reason))
    evaluation = evaluator.evaluate(params, fold, test=evaluator.causal)
    value = (evaluation.train or {})[metric]
    failure = _non_finite(value, metric, f"the training window of fold {fold.number}")
    record = TrialRecord(params=params, evaluations={fold.number: evaluation}, failure=failure)
    return Outcome(record, value=value)


def evaluate_cv(trial: optuna.Trial, space: SearchSpace, evaluator: Evaluator,
                folds: list[Fold], metric: str, direction: str, aggregate: str) -> Outcome:
    """The aggregate of ``metric`` over every fold's test window, reported after each fold
    so that a pruner can stop a hopeless set early."""
    params = _suggest(trial, space)
    reason = space.infeasible(params)
    if reason is not None:
        return Outcome(TrialRecord(params=params, infeasible=reason))
    combine = CV_AGGREGATES[aggregate]
    values: list[float] = []
    evaluations: dict[int, Evaluation] = {}
    for fold in folds:
        evaluation = evaluations[fold.number] = evaluator.evaluate(params, fold, train=False)
        value = (evaluation.test or {})[metric]
        failure = _non_finite(value, metric, f"the test window of fold {fold.number}")
        if failure is not None:
            return Outcome(TrialRecord(params=params, evaluations=evaluations,
                                       failure=failure), value=math.nan)
        values.append(value)
        trial.report(combine(values, direction), step=fold.number)
        if trial.should_prune():
            return Outcome(TrialRecord(params=params, evaluations=evaluations), pruned=True)
    return Outcome(TrialRecord(params=params, evaluations=evaluations),
                   value=combine(values, direction))
