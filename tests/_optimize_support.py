"""Strategies for the optimizer tests: they count their executions in a file (shared by
processes) and can stop to be killed at a chosen execution."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from foldwise import strategy
from foldwise.examples import sma_crossover

COUNT_ENV = "FOLDWISE_TEST_COUNT_FILE"
BLOCK_ENV = "FOLDWISE_TEST_BLOCK_AT"   # "<n>:<marker path>": hang at the n-th execution
SLEEP_ENV = "FOLDWISE_TEST_SLEEP"      # seconds each execution takes


def executions(path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """The (fast, slow) pairs executed so far, one per completed execution."""
    file = Path(path)
    if not file.exists():
        return []
    return [tuple(map(int, line.split(","))) for line in file.read_text().splitlines() if line]


def _record(fast: int, slow: int) -> None:
    path = os.environ.get(COUNT_ENV)
    if not path:
        return
    block = os.environ.get(BLOCK_ENV)
    if block:
        at, marker = block.split(":", 1)
        if len(executions(path)) + 1 == int(at):
            Path(marker).write_text("blocked")
            time.sleep(600)  # the test kills the process here, mid-trial
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{fast},{slow}\n".encode())
    finally:
        os.close(fd)


@strategy(name="counted_sma")
def counted_sma(data, fast=10, slow=50):
    """SMA crossover that records each execution (after computing, so a kill loses it)."""
    weights = sma_crossover(data, fast=fast, slow=slow)
    seconds = float(os.environ.get(SLEEP_ENV, "0"))
    if seconds:
        time.sleep(seconds)
    _record(fast, slow)
    return weights


@strategy(name="fragile_sma")
def fragile_sma(data, fast=10, slow=50):
    """Raises for fast == 7, returns no position (NaN Sharpe) for fast == 8."""
    if fast == 7:
        raise ValueError("fast=7 is not supported by this broker")
    if fast == 8:
        return pd.DataFrame(0.0, index=data.index, columns=data.assets)
    return sma_crossover(data, fast=fast, slow=slow)


@strategy(name="always_broken")
def always_broken(data, fast=10, slow=50):
    raise RuntimeError(f"model file missing for fast={fast}")


@strategy(name="fitted_threshold", causal=False)
def fitted_threshold(data, quantile=0.5, train_end=None):
    """Per-fold strategy: a momentum threshold fit on the returns through ``train_end``."""
    close = data.frame("close")
    momentum = close.pct_change(20)
    history = momentum.loc[:train_end].stack().dropna()
    threshold = float(history.quantile(quantile)) if len(history) else math.inf
    _record(int(quantile * 100), len(history))
    return (momentum > threshold).astype(float) / data.n_assets


def noisy_panel(n_dates: int = 900, n_assets: int = 3, seed: int = 0, drift: float = 0.0003):
    from foldwise import MarketData

    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2015-01-01", periods=n_dates)
    close = 100 * np.exp(np.cumsum(rng.normal(drift, 0.012, (n_dates, n_assets)), axis=0))
    return MarketData({"close": close}, index, [f"S{i}" for i in range(n_assets)])


@strategy(name="lagged_sign")
def lagged_sign(data, lookback=1, sign=1):
    """Long (sign=1) or short (sign=-1) the direction of the last ``lookback`` bars' move."""
    close = data.frame("close")
    move = np.sign(close - close.shift(lookback)).fillna(0.0)
    return sign * move / data.n_assets


def regime_panel(n_dates: int = 1600, seed: int = 0, phi: tuple[float, float] = (0.35, -0.35)):
    """One asset whose returns are autocorrelated with ``phi[0]`` in the first half and
    ``phi[1]`` in the second: momentum pays first, reversal later."""
    from foldwise import MarketData

    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, n_dates)
    returns = np.zeros(n_dates)
    for t in range(1, n_dates):
        coefficient = phi[0] if t < n_dates // 2 else phi[1]
        returns[t] = coefficient * returns[t - 1] + shocks[t]
    close = 100 * np.exp(np.cumsum(returns))
    return MarketData({"close": close[:, None]}, pd.bdate_range("2010-01-01", periods=n_dates),
                      ["X"])
