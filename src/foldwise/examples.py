"""Example strategies on the bundled data, used by the demo, the tests and the benchmarks.

Both are causal: the weight dated ``t`` uses closes through ``t`` only, and earns the
return of ``t + 1`` (see :func:`foldwise.backtest`).

* :func:`sma_crossover` — trend following on each asset: long while the fast moving average
  is above the slow one (short otherwise if ``short=True``).
* :func:`equal_weight` — hold every asset that has a price, in equal weights: the
  benchmark every walk-forward result is compared with
  (:func:`foldwise.optimizer.equal_weight_universe`).
* :func:`mean_reversion` — cross-sectional 60-day mean reversion: long the ``n_long`` most
  oversold assets (furthest below their moving average), short the ``n_short`` most
  overbought, rebalanced every ``rebalance`` bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from foldwise.data import MarketData
from foldwise.errors import StrategyParameterError
from foldwise.optimizer import equal_weight_universe as equal_weight
from foldwise.strategy import Strategy, strategy

__all__ = ["equal_weight", "mean_reversion", "rolling_mean", "sma_crossover"]


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` rows (axis 0), from running sums.

    Row ``t`` averages rows ``t - window + 1 .. t``; it is NaN until ``window`` rows are
    available and wherever a value in the window is NaN (like pandas'
    ``rolling(window).mean()`` with ``min_periods=window``).
    """
    if window < 1:
        raise StrategyParameterError(f"a moving-average window must be >= 1 bar, got {window}.")
    return _rolling_mean(*_running_sums(np.asarray(values, dtype=np.float64)), window)


def _running_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Cumulative sums down axis 0 of ``values`` (NaN counted as 0) and of its NaN flags
    (None when there is no NaN)."""
    missing = np.isnan(values)
    if not missing.any():
        return np.cumsum(values, axis=0), None
    return np.cumsum(np.where(missing, 0.0, values), axis=0), np.cumsum(missing, axis=0)


def _field_running_sums(data: MarketData, field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_running_sums` of a field, memoized on the (immutable) data: every parameter
    set of a study reads the same sums, whatever its windows."""

    def compute() -> tuple[np.ndarray, np.ndarray | None]:
        sums, gaps = _running_sums(data.array(field))
        sums.flags.writeable = False
        if gaps is not None:
            gaps.flags.writeable = False
        return sums, gaps

    return data.memo(("examples.running_sums", field), compute)


def _window_means(sums: np.ndarray, window: int) -> np.ndarray:
    """Rows ``window - 1 ..`` of the trailing mean over ``window`` rows, from running sums
    (``sums[t]`` is the sum of rows ``0 .. t``); needs ``window <= len(sums)``."""
    means = sums[window - 1:].copy()
    means[1:] -= sums[:-window]
    means /= window
    return means


def _rolling_mean(sums: np.ndarray, gaps: np.ndarray | None, window: int) -> np.ndarray:
    """:func:`rolling_mean` from :func:`_running_sums`."""
    out = np.full(sums.shape, np.nan)
    if window > len(sums):
        return out
    means = _window_means(sums, window)
    if gaps is None:
        out[window - 1:] = means
    else:
        window_gaps = gaps[window - 1:].copy()
        window_gaps[1:] -= gaps[:-window]
        out[window - 1:] = np.where(window_gaps == 0, means, np.nan)
    return out


def _check_window(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise StrategyParameterError(f"{name} must be an integer >= 1 (bars), got {value!r}.")
    return int(value)


class _ArrayStrategy(Strategy):
    """A strategy whose weights are computed as a numpy array by ``kernel``.

    :meth:`run` backtests that array itself; calling the strategy (``func``) returns the
    same weights as a DataFrame over the data's dates and assets, which costs a frame per
    call that a trial does not need. ``func`` must be ``kernel`` wrapped in
    :func:`_as_frame`, so that its fingerprint covers the kernel.
    """

    def __init__(self, func: Callable[..., pd.DataFrame],
                 kernel: Callable[..., np.ndarray]) -> None:
        super().__init__(func, name=func.__name__)
        self._kernel = kernel

    def _weights(self, data: MarketData, params: dict[str, Any]) -> np.ndarray:
        return self._kernel(data, **params)


def _as_frame(data: MarketData, weights: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(weights, index=data.index, columns=data.assets, copy=False)


def _sma_crossover_weights(data: MarketData, fast: int = 10, slow: int = 50,
                           short: bool = False) -> np.ndarray:
    """:func:`sma_crossover`'s weights as an array ``(n_dates, n_assets)``."""
    fast, slow = _check_window("fast", fast), _check_window("slow", slow)
    if fast >= slow:
        raise StrategyParameterError(
            f"fast ({fast}) must be shorter than slow ({slow}); swap them or add the "
            "constraint fast < slow to the search space.")
    sums, gaps = _field_running_sums(data, "close")
    long, other = 1.0 / data.n_assets, (-1.0 if short else 0.0) / data.n_assets
    if gaps is None:
        # No missing close: both averages exist from bar slow - 1 on (fast < slow).
        weights = np.zeros(sums.shape)
        if slow <= len(sums):
            above = _window_means(sums, fast)[slow - fast:] > _window_means(sums, slow)
            # np.where(above, long, other) in one or two passes instead of its ~8 us:
            # True * long is long; short: 2 * long - long is long exactly, 0 - long is other.
            ready = weights[slow - 1:]
            if short:
                np.multiply(above, 2.0 * long, out=ready)
                ready += other
            else:
                np.multiply(above, long, out=ready)
        return weights
    fast_ma, slow_ma = _rolling_mean(sums, gaps, fast), _rolling_mean(sums, gaps, slow)
    ready = ~(np.isnan(fast_ma) | np.isnan(slow_ma))
    return np.where(ready, np.where(fast_ma > slow_ma, long, other), 0.0)


def sma_crossover(data: MarketData, fast: int = 10, slow: int = 50,
                  short: bool = False) -> pd.DataFrame:
    """Moving-average crossover on every asset of ``data``, equally weighted.

    Parameters
    ----------
    fast, slow
        Windows (bars) of the two simple moving averages of the close; ``fast < slow``.
    short
        Go short (instead of flat) while the fast average is below the slow one.

    Returns
    -------
    DataFrame
        Weight ``1 / n_assets`` per asset while ``SMA(fast) > SMA(slow)`` at the close,
        ``-1 / n_assets`` (short) or 0 otherwise; 0 until both averages exist.

    Notes
    -----
    Written on the read-only close array (``data.array("close")``'s running sums,
    memoized on the data), as a strategy whose every microsecond counts is. ``.run()``
    backtests the array itself; only a direct call builds the DataFrame.
    """
    return _as_frame(data, _sma_crossover_weights(data, fast, slow, short))


sma_crossover = _ArrayStrategy(sma_crossover, _sma_crossover_weights)  # type: ignore[assignment]


@strategy(name="mean_reversion")
def mean_reversion(data: MarketData, lookback: int = 60, n_long: int = 5, n_short: int = 5,
                   gross: float = 1.0, rebalance: int = 1) -> pd.DataFrame:
    """Cross-sectional mean reversion: buy the most oversold, sell the most overbought.

    The score of an asset is ``close / SMA(close, lookback) - 1``: most negative is most
    oversold. Each rebalance bar the ``n_long`` lowest scores get ``+gross / 2 / n_long``
    and the ``n_short`` highest get ``-gross / 2 / n_short`` (a leg with no names gives its
    half to the other). Between rebalances the targets are held. A bar with fewer scored
    assets than ``n_long + n_short`` is flat. Among tied scores the long leg takes the
    asset listed first and the short leg the one listed last.

    Parameters
    ----------
    lookback
        Moving-average window in bars (60: the classic 60-day reversion).
    n_long, n_short
        Number of assets held long and short.
    gross
        Gross exposure (sum of absolute weights).
    rebalance
        Rebalance every this many bars, counted from the first bar of ``data``.
    """
    lookback = _check_window("lookback", lookback)
    rebalance = _check_window("rebalance", rebalance)
    if n_long < 0 or n_short < 0 or n_long + n_short == 0:
        raise StrategyParameterError(
            f"n_long ({n_long}) and n_short ({n_short}) must be >= 0 and not both 0.")
    if n_long + n_short > data.n_assets:
        raise StrategyParameterError(
            f"n_long + n_short = {n_long + n_short} exceeds the {data.n_assets} assets in the data.")
    close = data.array("close")
    score = close / rolling_mean(close, lookback) - 1.0
    valid = ~np.isnan(score)
    ascending = np.argsort(np.where(valid, score, np.inf), axis=1, kind="stable")
    counts = valid.sum(axis=1)
    long_share = gross if n_short == 0 else gross / 2.0
    short_share = gross if n_long == 0 else gross / 2.0
    weights = np.zeros(close.shape)
    rows = np.arange(close.shape[0])[:, None]
    if n_long:
        weights[rows, ascending[:, :n_long]] = long_share / n_long
    if n_short:
        # The highest scores are the last valid entries of the ascending order, so the two
        # legs never share an asset, even when scores tie.
        last = np.clip(counts[:, None] - 1 - np.arange(n_short), 0, None)
        weights[rows, np.take_along_axis(ascending, last, axis=1)] = -short_share / n_short
    weights[counts < n_long + n_short] = 0.0
    if rebalance > 1:
        weights = weights[(np.arange(close.shape[0]) // rebalance) * rebalance]
    return pd.DataFrame(weights, index=data.index, columns=data.assets, copy=False)
