"""Small data, strategies and an independent backtest for the cache tests.

The strategies live in this file (not in a test function) so their fingerprint is the same
in every process that imports it, as for a user's strategy module.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from foldwise import BacktestCache, BacktestResult, MarketData

N_DATES = 260
ASSETS = ("AAA", "BBB", "CCC")


def make_data(seed: int = 0, tz: str | None = None, n_dates: int = N_DATES) -> MarketData:
    """A random-walk panel of three assets (positive prices, no gaps)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0003, 0.015, size=(n_dates, len(ASSETS)))
    close = 100.0 * np.exp(np.cumsum(steps, axis=0))
    index = pd.date_range("2020-01-01", periods=n_dates, freq="B", tz=tz)
    return MarketData({"close": close}, index, ASSETS)


def trend(data: MarketData, lookback: int = 5, gross: float = 1.0) -> np.ndarray:
    """Long assets above their close ``lookback`` bars ago, short those below."""
    close = data.array("close")
    past = np.full_like(close, np.nan)
    past[lookback:] = close[:-lookback]
    return np.nan_to_num(np.sign(close - past)) * gross / close.shape[1]


def flat_returns(data: MarketData, level: float = 0.001) -> BacktestResult:
    """A strategy that computes its own result: a constant return, no positions."""
    return BacktestResult.from_returns(pd.Series(level, index=data.index))


def expected_backtest(weights: np.ndarray, close: np.ndarray,
                      cost_bps: float = 0.0) -> dict[str, np.ndarray]:
    """The backtest written out date by date, independently of foldwise's vectorized code.

    The weight held from close t-1 to close t earns the asset returns of t; trades at close
    t cost ``cost_bps`` per unit of turnover.
    """
    n, k = close.shape
    net, gross, costs, turnover = (np.zeros(n) for _ in range(4))
    previous = np.zeros(k)
    for t in range(n):
        if t > 0:
            gross[t] = sum(previous[j] * (close[t, j] / close[t - 1, j] - 1.0) for j in range(k))
        turnover[t] = sum(abs(weights[t, j] - previous[j]) for j in range(k))
        costs[t] = turnover[t] * cost_bps / 10_000.0
        net[t] = gross[t] - costs[t]
        previous = weights[t]
    return {"returns": net, "gross_returns": gross, "costs": costs, "turnover": turnover,
            "positions": weights}


def object_in_worker(cache: BacktestCache, lookback: int) -> tuple[int, int, int]:
    """In a worker process: run ``trend`` through the cache it was sent; return the pid,
    the identity of the cache object and the backtests that object has run so far."""
    cache.get_or_run(trend, {"lookback": lookback}, make_data())
    return os.getpid(), id(cache), cache.executed


def run_in_worker(cache: BacktestCache, lookback: int) -> int:
    """In a worker process: run ``trend`` through the cache it was sent; return the pid."""
    cache.get_or_run(trend, {"lookback": lookback}, make_data())
    cache.close()
    return os.getpid()
