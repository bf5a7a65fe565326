"""The example strategies against independent, straightforward computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from foldwise import MarketData, backtest, datasets
from foldwise.errors import StrategyParameterError
from foldwise.examples import mean_reversion, rolling_mean, sma_crossover

from .conftest import make_panel


def test_rolling_mean_matches_pandas_with_gaps():
    values = make_panel(200, 3).array("close").copy()
    values[50, 1] = np.nan
    values[:7, 2] = np.nan
    for window in (1, 5, 60, 200, 201):
        expected = pd.DataFrame(values).rolling(window).mean().to_numpy()
        np.testing.assert_allclose(rolling_mean(values, window), expected, rtol=1e-12,
                                   equal_nan=True)


@pytest.mark.parametrize("short", [False, True])
def test_sma_crossover_on_goog_matches_pandas(short):
    data = datasets.load_goog()
    close = data.frame("close")["GOOG"]
    fast, slow = close.rolling(10).mean(), close.rolling(50).mean()
    expected = np.where(slow.isna(), 0.0, np.where(fast > slow, 1.0, -1.0 if short else 0.0))
    weights = sma_crossover(data, fast=10, slow=50, short=short)
    np.testing.assert_array_equal(weights["GOOG"].to_numpy(), expected)


def test_mean_reversion_matches_a_per_day_loop():
    data = make_panel(150, 9, seed=5)
    close = data.frame("close")
    score = close / close.rolling(20).mean() - 1
    expected = np.zeros(data.shape)
    for t in range(len(close)):
        row = score.iloc[t].dropna()
        if len(row) < 5:
            continue
        ordered = row.sort_values(kind="stable")
        for asset in ordered.index[:3]:
            expected[t, data.assets.get_loc(asset)] = 0.5 / 3
        for asset in ordered.index[-2:]:
            expected[t, data.assets.get_loc(asset)] = -0.5 / 2
    got = mean_reversion(data, lookback=20, n_long=3, n_short=2)
    np.testing.assert_allclose(got.to_numpy(), expected)
    assert got.abs().sum(axis=1).max() == pytest.approx(1.0)


def test_mean_reversion_rebalance_holds_targets_and_legs_never_overlap():
    data = make_panel(60, 6, seed=2)
    daily = mean_reversion(data, lookback=5, n_long=3, n_short=3)
    weekly = mean_reversion(data, lookback=5, n_long=3, n_short=3, rebalance=5)
    for t in range(60):
        np.testing.assert_array_equal(weekly.iloc[t], daily.iloc[(t // 5) * 5])
    flat = MarketData({"close": np.ones((30, 6))}, pd.bdate_range("2024-01-01", periods=30),
                      list("ABCDEF"))
    tied = mean_reversion(flat, lookback=5, n_long=3, n_short=3)
    assert ((tied.iloc[10] > 0).sum(), (tied.iloc[10] < 0).sum()) == (3, 3)


def test_example_parameter_errors():
    data = make_panel(50, 3)
    with pytest.raises(StrategyParameterError, match="fast .20. must be shorter than slow .10."):
        sma_crossover(data, fast=20, slow=10)
    with pytest.raises(StrategyParameterError, match="exceeds the 3 assets"):
        mean_reversion(data, n_long=2, n_short=2)
    with pytest.raises(StrategyParameterError, match="lookback must be an integer >= 1"):
        mean_reversion(data, lookback=0, n_long=1, n_short=1)


def pandas_sma_weights(close: pd.DataFrame, fast: int, slow: int, short: bool) -> np.ndarray:
    """sma_crossover written in pandas: flat until both averages exist (and over gaps)."""
    fast_ma, slow_ma = close.rolling(fast).mean(), close.rolling(slow).mean()
    ready = fast_ma.notna() & slow_ma.notna()
    signal = np.where(fast_ma > slow_ma, 1.0, -1.0 if short else 0.0)
    return np.where(ready, signal, 0.0) / close.shape[1]


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (3, 17), (10, 50), (20, 120), (5, 121)])
@pytest.mark.parametrize("short", [False, True])
def test_sma_crossover_on_a_panel_matches_pandas(gaps, fast, slow, short):
    """Both ways through sma_crossover (a panel without a missing close, and one with gaps)
    against the pandas formula, on several assets."""
    data = make_panel(120, 4, seed=11)
    if gaps:
        close = data.array("close").copy()
        close[40:43, 1] = np.nan
        close[:25, 3] = np.nan
        data = MarketData({"close": close}, data.index, data.assets)
    weights = sma_crossover(data, fast=fast, slow=slow, short=short)
    expected = pandas_sma_weights(data.frame("close"), fast, slow, short)
    np.testing.assert_array_equal(weights.to_numpy(), expected)
    assert weights.index.equals(data.index) and weights.columns.equals(data.assets)


def test_sma_running_sums_are_memoized_per_data_and_read_only():
    from foldwise.examples import _field_running_sums

    data = make_panel(80, 2, seed=4)
    sums, gaps = _field_running_sums(data, "close")
    assert gaps is None and not sums.flags.writeable
    assert _field_running_sums(data, "close")[0] is sums
    np.testing.assert_allclose(sums, np.cumsum(data.array("close"), axis=0), rtol=1e-13)
    part = data.islice(30, 80)  # another object, its own sums
    assert _field_running_sums(part, "close")[0][0, 0] == data.array("close")[30, 0]
    np.testing.assert_array_equal(sma_crossover(part, fast=3, slow=9).to_numpy(),
                                  pandas_sma_weights(part.frame("close"), 3, 9, False))


@pytest.mark.parametrize("gaps", [False, True])
def test_sma_crossover_run_backtests_the_same_weights_as_its_frame(gaps):
    """run() backtests the weights as an array, a direct call returns them as a frame: the
    two give the same result, and the fingerprint covers the array code."""
    data = make_panel(150, 3, seed=2)
    if gaps:
        close = data.array("close").copy()
        close[60:64, 0] = np.nan
        data = MarketData({"close": close}, data.index, data.assets)
    params = {"fast": 4, "slow": 21, "short": True}
    frame = sma_crossover(data, **params)
    assert isinstance(frame, pd.DataFrame)
    ran = sma_crossover.run(data, params, costs=2)
    from_frame = backtest(frame, data, costs=2)
    np.testing.assert_array_equal(ran.positions.to_numpy(), from_frame.positions.to_numpy())
    np.testing.assert_array_equal(ran.returns.to_numpy(), from_frame.returns.to_numpy())
    assert ran.metrics() == pytest.approx(from_frame.metrics(), nan_ok=True, rel=0, abs=0)
    assert "code:foldwise.examples._sma_crossover_weights" in sma_crossover.fingerprint_sources()
    with pytest.raises(StrategyParameterError, match="fast .30. must be shorter"):
        sma_crossover.run(data, {"fast": 30, "slow": 20})
