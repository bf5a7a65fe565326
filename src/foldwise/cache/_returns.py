"""The returns form of a run: what its metrics and its out-of-sample statistics need.

A run's artifact in full holds its positions, one weight per date and asset: for a
40-asset panel of ten years, 0.8 MB of the 0.9 MB. Yet only a few readers need them — the
stitched curve of the runs a study chose, a caller asking for the whole
:class:`~foldwise.BacktestResult` — while the metrics of any window (a walk-forward
study's later folds) and the statistics of every distinct set (PBO, data snooping) need
the per-date returns, turnover and the number of weight changes on each date.
:class:`RunReturns` is that part: an artifact in returns form is a tenth of the size, and
the cache keeps one where the positions are unlikely to be read
(:mod:`foldwise.cache._costs`).

The metrics of a window of a :class:`RunReturns` equal those of the same window of the full
result exactly: the same arrays go through the same
:func:`foldwise.metrics.summarize`, and the number of trades in a window is the sum of the
per-date counts of non-zero weight changes (``count_nonzero`` of the full result's
changes, date by date).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from foldwise import metrics as _metrics
from foldwise.backtest import BacktestResult, BacktestSettings

__all__ = ["RunReturns"]


@dataclass(frozen=True)
class RunReturns:
    """The per-date numbers of a run without its positions (read-only arrays).

    What :meth:`CacheRecord.run_returns <foldwise.cache.CacheRecord.run_returns>` gives: the
    returns form of a stored run, enough for the metrics of any window (:meth:`islice`,
    :meth:`take`, :meth:`metrics`, equal to those of the full result) and for the
    statistics across runs.

    Attributes
    ----------
    index : pandas.DatetimeIndex
        The dates.
    net, gross, costs, turnover : numpy.ndarray
        Per date: net and gross portfolio return, cost and turnover, as in
        :attr:`BacktestResult.arrays <foldwise.BacktestResult.arrays>`.
    trades : numpy.ndarray
        Per date: the number of assets whose weight changed (integers).
    settings : BacktestSettings
        The settings of the run (the metrics' annualization).
    """

    index: pd.DatetimeIndex
    net: np.ndarray
    gross: np.ndarray
    costs: np.ndarray
    turnover: np.ndarray
    trades: np.ndarray
    settings: BacktestSettings

    @classmethod
    def of(cls, result: BacktestResult) -> RunReturns:
        """The returns form of a full result (views of its arrays; the trade counts are
        computed)."""
        arrays = result.arrays
        trades = (np.zeros(len(result), dtype=np.int64) if arrays.changes is None
                  else np.count_nonzero(arrays.changes, axis=1).astype(np.int64))
        trades.flags.writeable = False
        return cls(result.index, arrays.net, arrays.gross, arrays.costs, arrays.turnover,
                   trades, result.settings)

    def __len__(self) -> int:
        return len(self.net)

    def _part(self, rows: Any) -> RunReturns:
        return RunReturns(self.index[rows], self.net[rows], self.gross[rows],
                          self.costs[rows], self.turnover[rows], self.trades[rows],
                          self.settings)

    def islice(self, start: int, stop: int) -> RunReturns:
        """Bars ``start <= i < stop`` (views), as :meth:`BacktestResult.islice
        <foldwise.BacktestResult.islice>`."""
        return self._part(slice(start, stop))

    def take(self, positions: Any) -> RunReturns:
        """The bars at ``positions`` (sorted ints), as :meth:`BacktestResult.take
        <foldwise.BacktestResult.take>`."""
        return self._part(np.asarray(positions, dtype=np.int64))

    def metrics(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """The metrics ``names`` (None: all of :data:`foldwise.metrics.METRICS`), equal to
        those of the full result's same bars."""
        chosen = None if names is None else (names,) if isinstance(names, str) else tuple(names)
        trades = None if chosen is not None and "n_trades" not in chosen else \
            int(self.trades.sum())
        return _metrics.summarize(self.net, turnover=self.turnover, trades=trades,
                                  periods_per_year=self.settings.periods_per_year,
                                  names=chosen)
