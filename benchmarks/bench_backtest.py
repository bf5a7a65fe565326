"""backtest() next to a bare numpy computation of the same numbers, in the same run.

Run: python benchmarks/bench_backtest.py

(a) One full-history backtest of daily-rebalanced long/short weights on a 2520 x 500
    panel, against the one-pass bound: shift, multiply, row sum, turnover. Target <= 3x.
(b) One SMA-crossover backtest on GOOG through the public API (weights -> BacktestResult
    -> metrics dict) against bare numpy computing the same metrics. Target <= 3x.
(c) The pandas idiom next to the numpy path: reading a field as a DataFrame
    (``data["close"]``, a new frame over the read-only array) against the array itself
    (``data.array("close")``); and one SMA-crossover parameter set end to end (strategy,
    backtest, metrics) written in pandas (``close.rolling(n).mean()``) against
    ``foldwise.examples.sma_crossover``, written on the array. No target: what the idiom costs.
Both sides are checked to give the same numbers before they are timed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import foldwise
from _timing import median_time, row
from foldwise import Costs, MarketData, backtest
from foldwise.examples import sma_crossover

RATE = 3e-4  # 3 bps per unit traded


def bare_panel(weights: np.ndarray, asset_returns: np.ndarray) -> np.ndarray:
    gross = np.zeros(len(weights))
    gross[1:] = (weights[:-1] * asset_returns[1:]).sum(axis=1)
    turnover = np.abs(np.diff(weights, axis=0, prepend=0.0)).sum(axis=1)
    return gross - RATE * turnover


def bare_metrics(weights: np.ndarray, close: np.ndarray) -> dict[str, float]:
    """The numbers of BacktestResult.metrics() for one asset, written directly in numpy."""
    r = np.zeros(len(close))
    r[1:] = close[1:] / close[:-1] - 1.0
    changes = np.diff(weights, prepend=0.0)
    turnover = np.abs(changes)
    net = np.zeros(len(close))
    net[1:] = weights[:-1] * r[1:]
    net -= RATE * turnover
    n = len(net)
    mean, std = net.mean(), net.std(ddof=1)
    wealth = np.cumprod(1.0 + net)
    growth = wealth[-1]
    cagr = growth ** (252 / n) - 1.0
    drawdown = min(0.0, (wealth / np.maximum.accumulate(np.maximum(wealth, 1.0)) - 1.0).min())
    downside = math.sqrt(np.mean(np.minimum(net, 0.0) ** 2))
    low, high = np.percentile(net, [5.0, 95.0])
    gains, losses = net[net > 0].sum(), -net[net < 0].sum()
    centred = net - mean
    m2 = np.mean(centred**2)
    sr = mean / std
    skew, kurt = np.mean(centred**3) / m2**1.5, np.mean(centred**4) / m2**2
    psr = 0.5 * math.erfc(-(sr * math.sqrt(n - 1) / math.sqrt(
        1 - skew * sr + (kurt - 1) / 4 * sr**2)) / math.sqrt(2))
    return {
        "sharpe": mean / std * math.sqrt(252), "sortino": mean * math.sqrt(252) / downside,
        "annual_return": cagr, "annual_volatility": std * math.sqrt(252),
        "max_drawdown": drawdown, "calmar": cagr / -drawdown, "total_return": growth - 1.0,
        "win_rate": np.count_nonzero(net > 0) / np.count_nonzero(net),
        "profit_factor": gains / losses, "tail_ratio": abs(high) / abs(low),
        "average_turnover": turnover.mean(), "n_trades": float(np.count_nonzero(changes)),
        "probabilistic_sharpe_ratio": psr,
    }


def panel_case() -> None:
    rng = np.random.default_rng(0)
    n_dates, n_assets = 2520, 500
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, (n_dates, n_assets)), axis=0))
    index = pd.bdate_range("2010-01-04", periods=n_dates)
    data = MarketData({"close": close}, index, [f"S{i:03d}" for i in range(n_assets)])
    raw = rng.normal(size=(n_dates, n_assets))
    weights_array = raw / np.abs(raw).sum(axis=1, keepdims=True)  # daily long/short, gross 1
    weights = pd.DataFrame(weights_array, index=index, columns=data.assets)
    asset_returns = np.zeros_like(close)
    asset_returns[1:] = close[1:] / close[:-1] - 1.0
    costs = Costs(commission_bps=1, slippage_bps=2)

    ours = backtest(weights, data, costs=costs)
    np.testing.assert_allclose(ours.returns.to_numpy(), bare_panel(weights_array, asset_returns),
                               atol=1e-13)
    t_ours = median_time(lambda: backtest(weights, data, costs=costs), repeat=9)
    t_array = median_time(lambda: backtest(weights_array, data, costs=costs), repeat=9)
    t_bare = median_time(lambda: bare_panel(weights_array, asset_returns), repeat=9)
    print(row("(a) 2520x500 long/short, weights as DataFrame", t_ours, t_bare, "ms", "<= 3x"))
    print(row("    same, weights as a numpy array", t_array, t_bare, "ms", "<= 3x"))


def goog_case() -> None:
    data = foldwise.datasets.load_goog()
    weights = sma_crossover(data, fast=10, slow=50)
    close = data.array("close")[:, 0]
    costs = Costs(commission_bps=1, slippage_bps=2)

    def ours() -> dict[str, float]:
        return backtest(weights, data, costs=costs).metrics()

    expected = bare_metrics(weights.to_numpy()[:, 0], close)
    got = ours()
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), name
    t_ours = median_time(ours, repeat=15, number=50)
    t_bare = median_time(lambda: bare_metrics(weights.to_numpy()[:, 0], close), repeat=15,
                         number=50)
    print(row("(b) SMA crossover on GOOG: weights -> metrics dict", t_ours, t_bare, "us", "<= 3x"))


@foldwise.strategy
def pandas_sma(data: MarketData, fast: int = 10, slow: int = 50) -> pd.DataFrame:
    """sma_crossover as a pandas user writes it."""
    close = data["close"]
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    return (fast_ma > slow_ma).astype(float) / data.n_assets


def pandas_idiom_case() -> None:
    data = foldwise.datasets.load_goog()
    params = {"fast": 10, "slow": 50}
    costs = Costs(commission_bps=1, slippage_bps=2)
    assert np.shares_memory(data["close"].to_numpy(), data.array("close"))
    t_frame = median_time(lambda: data["close"], repeat=15, number=2000)
    t_array = median_time(lambda: data.array("close"), repeat=15, number=2000)
    print(row('(c) data["close"] (DataFrame) vs data.array("close")', t_frame, t_array, "us"))

    def written_in_pandas() -> dict[str, float]:
        return pandas_sma.run(data, params, costs=costs).metrics()

    def written_on_the_array() -> dict[str, float]:
        return sma_crossover.run(data, params, costs=costs).metrics()

    expected = written_on_the_array()
    for name, value in written_in_pandas().items():
        assert math.isclose(value, expected[name], rel_tol=1e-12, abs_tol=1e-15), name
    t_pandas = median_time(written_in_pandas, repeat=15, number=50)
    t_numpy = median_time(written_on_the_array, repeat=15, number=50)
    print(row("    one SMA set end to end: pandas vs numpy strategy", t_pandas, t_numpy, "us"))


if __name__ == "__main__":
    panel_case()
    goog_case()
    pandas_idiom_case()
