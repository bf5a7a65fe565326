"""backtest(): the timing convention, costs, delay, missing prices, trades, alignment."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import foldwise
from foldwise import BacktestResult, Costs, MarketData, backtest
from foldwise.errors import BacktestError, MisalignedWeightsError, MissingPriceError
from foldwise.examples import mean_reversion, sma_crossover

from .conftest import make_panel


def one_asset(prices, name="X"):
    index = pd.date_range("2024-01-01", periods=len(prices))
    return MarketData.from_frame(pd.DataFrame({name: prices}, index=index, dtype=float))


def independent_backtest(weights: pd.DataFrame, close: pd.DataFrame, rate: float) -> pd.Series:
    """The textbook formula in pandas: r_p[t] = sum w[t-1] * r[t] - rate * sum |w[t] - w[t-1]|."""
    asset_returns = close.pct_change().fillna(0.0)
    gross = (weights.shift(1).fillna(0.0) * asset_returns).sum(axis=1)
    turnover = weights.diff().fillna(weights).abs().sum(axis=1)
    return gross - rate * turnover


def test_weight_dated_t_earns_the_return_from_t_to_t_plus_1():
    data = one_asset([100.0, 110.0, 99.0, 99.0])
    costs = Costs(commission_bps=10, slippage_bps=5)
    result = backtest(pd.Series([1.0, 1.0, 0.0, 0.0], index=data.index), data, costs=costs)
    # bought at the close of day 0 (cost 15 bps), held over days 1 and 2, sold at close 2
    np.testing.assert_allclose(result.returns.to_numpy(), [-0.0015, 0.1, -0.1 - 0.0015, 0.0])
    np.testing.assert_allclose(result.gross_returns.to_numpy(), [0.0, 0.1, -0.1, 0.0])
    np.testing.assert_allclose(result.turnover.to_numpy(), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(result.costs.to_numpy(), [0.0015, 0.0, 0.0015, 0.0])
    assert result.returns.index.equals(data.index)


def test_panel_matches_the_pandas_formula(panel):
    rng = np.random.default_rng(3)
    weights = pd.DataFrame(rng.normal(0, 0.3, panel.shape), index=panel.index, columns=panel.assets)
    weights[rng.random(panel.shape) < 0.5] = 0.0
    result = backtest(weights, panel, costs={"commission_bps": 2.0, "slippage_bps": 3.0})
    expected = independent_backtest(weights, panel.frame(), 5e-4)
    np.testing.assert_allclose(result.returns.to_numpy(), expected.to_numpy(), atol=1e-15)
    pd.testing.assert_frame_equal(result.positions, weights)


def test_costs_forms_and_validation():
    assert Costs.coerce(None) == Costs()
    assert Costs.coerce(7).total_bps == 7.0
    assert Costs.coerce({"slippage_bps": 2}).slippage_bps == 2.0
    assert Costs(1, 2).rate == pytest.approx(3e-4)
    with pytest.raises(BacktestError, match=">= 0"):
        Costs(commission_bps=-1)
    with pytest.raises(BacktestError, match="unknown cost setting.*commision_bps"):
        Costs.coerce({"commision_bps": 1})
    with pytest.raises(BacktestError, match="number of basis points"):
        Costs(commission_bps="1")  # type: ignore[arg-type]


def test_delay_trades_later(panel):
    rng = np.random.default_rng(4)
    weights = pd.DataFrame(rng.normal(0, 0.3, panel.shape), index=panel.index, columns=panel.assets)
    delayed = backtest(weights, panel, delay=2, costs=3)
    shifted = backtest(weights.shift(2).fillna(0.0), panel, costs=3)
    np.testing.assert_array_equal(delayed.returns.to_numpy(), shifted.returns.to_numpy())
    assert delayed.settings.delay == 2
    with pytest.raises(BacktestError, match="delay must be an integer >= 0"):
        backtest(weights, panel, delay=-1)


def test_missing_prices_zero_policy_logs_once_and_holds_last_close(caplog):
    data = one_asset([100.0, 110.0, np.nan, 121.0, 133.1])
    weights = pd.Series([1.0, 1.0, 1.0, 1.0, 0.0], index=data.index)
    with caplog.at_level(logging.WARNING, logger="foldwise.backtest"):
        result = backtest(weights, data)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 non-zero weight(s) on assets with no price" in warnings[0].getMessage()
    assert "2024-01-03 for 'X'" in warnings[0].getMessage()
    # the weight on the missing day is zeroed: out at the last known close (110), back in at 121
    np.testing.assert_allclose(result.positions["X"].to_numpy(), [1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(result.gross_returns.to_numpy(), [0.0, 0.1, 0.0, 0.0, 0.1])


def test_missing_prices_raise_policy():
    data = one_asset([100.0, np.nan, 121.0])
    with pytest.raises(MissingPriceError, match="2024-01-02 for 'X'.*missing='zero'"):
        backtest(np.ones(3), data, missing="raise")
    # NaN or zero weights on missing prices are fine under either policy
    result = backtest(np.array([1.0, np.nan, 0.0]), data, missing="raise")
    assert result.positions["X"].tolist() == [1.0, 0.0, 0.0]


def test_leading_missing_prices_before_listing_are_not_traded(caplog):
    close = pd.DataFrame({"OLD": [10.0, 11.0, 12.0, 13.0], "NEW": [np.nan, np.nan, 5.0, 5.5]},
                         index=pd.date_range("2024-01-01", periods=4))
    data = MarketData.from_frame(close)
    weights = pd.DataFrame(0.5, index=data.index, columns=data.assets)
    result = backtest(weights, data)
    assert result.positions["NEW"].tolist() == [0.0, 0.0, 0.5, 0.5]
    np.testing.assert_allclose(result.gross_returns.to_numpy(),
                               [0.0, 0.05, 0.5 * (12 / 11 - 1), 0.5 * (13 / 12 - 1) + 0.5 * 0.1])


def test_trades_table_lists_every_weight_change():
    data = make_panel(6, 2)
    weights = pd.DataFrame([[0.5, 0.0], [0.5, -0.5], [0.0, -0.5], [0.0, -0.5], [1.0, 0.0],
                            [1.0, 0.0]], index=data.index, columns=data.assets)
    result = backtest(weights, data, costs=10)
    trades = result.trades
    assert list(trades.columns) == ["date", "asset", "weight_before", "weight_after", "traded",
                                    "cost"]
    expected = [(0, "A0", 0.0, 0.5), (1, "A1", 0.0, -0.5), (2, "A0", 0.5, 0.0),
                (4, "A0", 0.0, 1.0), (4, "A1", -0.5, 0.0)]
    got = [(int(data.index.get_loc(d)), a, b, w) for d, a, b, w in
           trades[["date", "asset", "weight_before", "weight_after"]].itertuples(index=False)]
    assert got == expected
    np.testing.assert_allclose(trades["traded"], trades["weight_after"] - trades["weight_before"])
    np.testing.assert_allclose(trades["cost"].sum(), result.costs.sum())
    assert result.n_trades == 5
    assert result.metrics()["n_trades"] == 5.0


def test_one_asset_from_a_series_list_or_array():
    data = one_asset([100.0, 101.0, 102.0])
    series = backtest(pd.Series([0.0, 1.0, 1.0], index=data.index), data)
    array = backtest(np.array([0.0, 1.0, 1.0]), data)
    listed = backtest([[0.0], [1.0], [1.0]], data)
    for other in (array, listed):
        np.testing.assert_array_equal(series.returns.to_numpy(), other.returns.to_numpy())


def test_weights_on_a_subset_of_dates_and_assets(panel):
    monthly = pd.DataFrame({"A1": [1.0, -1.0]}, index=[panel.index[20], panel.index[40]])
    result = backtest(monthly, panel)
    held = result.positions
    assert (held.iloc[:20] == 0).all().all()
    assert (held["A1"].iloc[20:40] == 1.0).all() and (held["A1"].iloc[40:] == -1.0).all()
    assert (held[["A0", "A2", "A3"]] == 0).all().all()


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (lambda d: pd.DataFrame(1.0, index=d.index, columns=["A0", "ZZ"]), "not in the data.*ZZ"),
        (lambda d: pd.DataFrame(1.0, index=d.index + pd.Timedelta("1h"), columns=d.assets),
         "not bars of the data"),
        (lambda d: pd.Series(1.0, index=d.index), "Pass a DataFrame"),
        (lambda d: np.ones((3, 4)), r"shape \(3, 4\).*300 dates x 4 assets"),
        (lambda d: pd.DataFrame(1.0, index=range(300), columns=d.assets), "indexed by date"),
        (lambda d: pd.DataFrame(1.0, index=d.index[::-1], columns=d.assets), "sorted and unique"),
    ],
)
def test_misaligned_weights_are_refused(panel, weights, message):
    with pytest.raises(MisalignedWeightsError, match=message):
        backtest(weights(panel), panel)


def test_infinite_weights_are_refused(panel):
    weights = np.zeros(panel.shape)
    weights[7, 2] = np.inf
    with pytest.raises(BacktestError, match="inf.*for 'A2'.*finite"):
        backtest(weights, panel)


def test_islice_gives_the_same_numbers_as_the_window_of_the_full_run(panel):
    result = sma_crossover.run(panel, {"fast": 5, "slow": 20}, costs=5)
    part = result.islice(100, 200)
    np.testing.assert_array_equal(part.returns.to_numpy(), result.returns.to_numpy()[100:200])
    assert part.metrics()["sharpe"] == pytest.approx(
        pd.Series(result.returns.to_numpy()[100:200]).pipe(
            lambda s: s.mean() / s.std() * np.sqrt(252)))
    by_date = result.slice(panel.index[100], panel.index[199])
    np.testing.assert_array_equal(by_date.returns.to_numpy(), part.returns.to_numpy())


def test_islice_cuts_its_dates_only_when_they_are_asked_for(panel, monkeypatch):
    """The optimizer's windows need metrics, not dates: slicing a DatetimeIndex cost more
    than the metrics of a window."""
    result = sma_crossover.run(panel, {"fast": 5, "slow": 20}, costs=5)
    dates = result.returns.index
    cut = []
    getitem = pd.DatetimeIndex.__getitem__

    def counting(self, key):
        cut.append(key)
        return getitem(self, key)

    monkeypatch.setattr(pd.DatetimeIndex, "__getitem__", counting)
    part = result.islice(100, 200)
    inner = part.islice(10, 30)
    assert len(part) == 100 and len(inner) == 20
    assert part.metrics(("sharpe",)) and inner.metric("total_return") is not None
    assert cut == []
    monkeypatch.undo()
    assert inner.returns.index.equals(dates[110:130]) and part.returns.index.equals(dates[100:200])
    assert part.islice(5, 10).returns.index.equals(dates[105:110])  # after its own cut
    np.testing.assert_array_equal(inner.returns.to_numpy(), result.returns.to_numpy()[110:130])


def test_from_returns_and_equity():
    index = pd.date_range("2024-01-01", periods=3)
    result = BacktestResult.from_returns(pd.Series([0.1, -0.1, 0.0], index=index))
    np.testing.assert_allclose(result.equity.to_numpy(), [1.1, 0.99, 0.99])
    assert result.n_trades == 0
    assert result.trades.empty
    assert result.metrics()["total_return"] == pytest.approx(-0.01)


def test_metrics_are_floats_and_repr_reads_well(panel):
    result = mean_reversion.run(panel, {"lookback": 20, "n_long": 1, "n_short": 1})
    assert all(isinstance(v, float) for v in result.metrics().values())
    assert repr(result).startswith("BacktestResult(300 dates 2020-01-01..2021-02-23, 4 assets")


# --- no lookahead (property tests) ---------------------------------------------------------


def perturb_after(data: MarketData, cut: int, seed: int) -> MarketData:
    rng = np.random.default_rng(seed)
    close = data.array("close").copy()
    close[cut + 1:] *= rng.uniform(0.5, 1.5, size=close[cut + 1:].shape)
    return MarketData({"close": close}, data.index, data.assets)


@given(seed=st.integers(0, 10_000), cut=st.integers(0, 118), bps=st.floats(0, 50),
       delay=st.integers(0, 3))
def test_backtest_has_no_lookahead(seed, cut, bps, delay):
    data = make_panel(120, 3, seed)
    weights = np.random.default_rng(seed + 1).normal(0, 0.5, data.shape)
    before = backtest(weights, data, costs=bps, delay=delay)
    after = backtest(weights, perturb_after(data, cut, seed), costs=bps, delay=delay)
    np.testing.assert_array_equal(before.returns.to_numpy()[: cut + 1],
                                  after.returns.to_numpy()[: cut + 1])


@given(seed=st.integers(0, 10_000), cut=st.integers(0, 148), fast=st.integers(1, 10),
       extra=st.integers(1, 30), short=st.booleans())
def test_sma_crossover_has_no_lookahead(seed, cut, fast, extra, short):
    data = make_panel(150, 2, seed)
    params = {"fast": fast, "slow": fast + extra, "short": short}
    before = sma_crossover.run(data, params, costs=5)
    after = sma_crossover.run(perturb_after(data, cut, seed), params, costs=5)
    np.testing.assert_array_equal(before.positions.to_numpy()[: cut + 1],
                                  after.positions.to_numpy()[: cut + 1])
    np.testing.assert_array_equal(before.returns.to_numpy()[: cut + 1],
                                  after.returns.to_numpy()[: cut + 1])


@given(seed=st.integers(0, 10_000), cut=st.integers(0, 148), lookback=st.integers(2, 40),
       n_long=st.integers(0, 3), n_short=st.integers(1, 3), rebalance=st.integers(1, 7))
def test_mean_reversion_has_no_lookahead(seed, cut, lookback, n_long, n_short, rebalance):
    data = make_panel(150, 8, seed)
    params = {"lookback": lookback, "n_long": n_long, "n_short": n_short,
              "rebalance": rebalance}
    before = mean_reversion.run(data, params, costs=5)
    after = mean_reversion.run(perturb_after(data, cut, seed), params, costs=5)
    np.testing.assert_array_equal(before.positions.to_numpy()[: cut + 1],
                                  after.positions.to_numpy()[: cut + 1])
    np.testing.assert_array_equal(before.returns.to_numpy()[: cut + 1],
                                  after.returns.to_numpy()[: cut + 1])


def test_take_concatenates_the_chosen_bars(panel):
    result = sma_crossover.run(panel, {"fast": 5, "slow": 20}, costs=5)
    rows = np.r_[10:50, 120:200]
    part = result.take(rows)
    np.testing.assert_array_equal(part.returns.to_numpy(), result.returns.to_numpy()[rows])
    assert part.metrics()["total_return"] == pytest.approx(
        np.prod(1 + result.returns.to_numpy()[rows]) - 1)
    assert result.take(np.arange(5, 9)).returns.index.equals(panel.index[5:9])
    with pytest.raises(BacktestError, match="sorted, unique"):
        result.take([3, 2])
    with pytest.raises(BacktestError, match="outside"):
        result.take([299, 300])


@pytest.mark.parametrize("leverage", [50.0, 1e6])
def test_ruin_is_a_state(leverage):
    """Regression: 50x leverage reported a max drawdown of -4942 %, 1e6x a drawdown of 0 %
    and a total return of -inf. Equity that reaches zero stays there."""
    prices = foldwise.datasets.load_sp500().frame("close")[["JPM"]].loc["2007":"2009"]
    data = MarketData.from_frame(prices)
    result = backtest(pd.Series(leverage, index=data.index), data)
    asset = prices["JPM"].pct_change().fillna(0.0)
    # independently: equity is gone on the first day whose leveraged loss is 100 % or more
    first = asset.index[(leverage * asset).le(-1.0).to_numpy().argmax()]
    assert result.ruined == first
    after = result.returns.loc[first:]
    assert after.iloc[0] == -1.0 and (after.iloc[1:] == 0.0).all()
    assert (result.positions.loc[first:] == 0.0).all().all()
    metrics = result.metrics()
    assert metrics["total_return"] == -1.0
    assert metrics["max_drawdown"] == -1.0
    assert "ruined on" in repr(result)
    before = result.returns.loc[:first].iloc[:-1]
    np.testing.assert_allclose(before.iloc[1:], leverage * asset.loc[before.index[1:]])


def test_an_unlevered_strategy_is_never_ruined():
    data = MarketData.from_frame(foldwise.datasets.load_sp500().frame("close")[["JPM"]])
    assert backtest(pd.Series(1.0, index=data.index), data).ruined is None


# --- the fast paths against the general ones ----------------------------------------------


def gappy_panel(seed: int, n_dates: int, n_assets: int, nan_share: float) -> MarketData:
    """Random-walk prices with NaN holes (before listing, after delisting, in the middle)."""
    rng = np.random.default_rng(seed)
    close = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, (n_dates, n_assets)), axis=0))
    close[rng.random(close.shape) < nan_share] = np.nan
    close[: int(rng.integers(0, n_dates // 3 + 1)), 0] = np.nan
    return MarketData({"close": close}, pd.bdate_range("2021-01-01", periods=n_dates),
                      [f"S{i}" for i in range(n_assets)])


@given(seed=st.integers(0, 10_000), n_dates=st.integers(3, 80), nan_share=st.sampled_from(
    [0.0, 0.1, 0.4]), weight_nan=st.sampled_from([0.0, 0.2]), leverage=st.sampled_from(
    [1.0, 40.0]), delay=st.integers(0, 2), bps=st.floats(0, 30))
def test_one_asset_fast_path_equals_the_panel_path(seed, n_dates, nan_share, weight_nan,
                                                   leverage, delay, bps):
    """One asset alone (products, no einsum) gives bit for bit what the same asset gives
    inside a panel where a second asset is never held (the einsum row sums), ruin included."""
    panel = gappy_panel(seed, n_dates, 2, nan_share)
    rng = np.random.default_rng(seed + 1)
    held = rng.normal(0.0, leverage, n_dates)
    held[rng.random(n_dates) < weight_nan] = np.nan
    alone = backtest(held, panel.select(["S0"]), costs=bps, delay=delay)
    inside = backtest(np.column_stack([held, np.zeros(n_dates)]), panel, costs=bps, delay=delay)
    arrays, wide = alone.arrays, inside.arrays
    for name in ("net", "gross", "costs", "turnover"):
        np.testing.assert_array_equal(getattr(arrays, name), getattr(wide, name), err_msg=name)
        np.testing.assert_array_equal(np.signbit(getattr(arrays, name)),
                                      np.signbit(getattr(wide, name)), err_msg=name)
    np.testing.assert_array_equal(alone.positions.to_numpy()[:, 0], inside.positions.to_numpy()[:, 0])
    assert alone.ruined == inside.ruined
    assert alone.metrics() == pytest.approx(inside.metrics(), nan_ok=True, rel=0, abs=0)


@given(seed=st.integers(0, 10_000), n_dates=st.integers(3, 60), n_assets=st.integers(1, 4),
       nan_share=st.sampled_from([0.0, 0.2]))
def test_weights_as_array_frame_or_series_give_the_same_result(seed, n_dates, n_assets,
                                                                nan_share):
    data = gappy_panel(seed, n_dates, n_assets, nan_share)
    rng = np.random.default_rng(seed)
    held = rng.normal(0.0, 0.5, data.shape)
    held[rng.random(data.shape) < 0.1] = np.nan
    frame = pd.DataFrame(held, index=data.index, columns=data.assets)
    # A frame's values come out column-major, and numpy sums a row of a column-major array
    # in another order: the same numbers as the frame come from the array in that layout,
    # and a row-major array differs by float rounding only.
    results = [backtest(frame, data, costs=2), backtest(np.asfortranarray(held), data, costs=2)]
    if n_assets == 1:
        results.append(backtest(frame.iloc[:, 0], data, costs=2))
        results.append(backtest(held[:, 0], data, costs=2))
        results.append(backtest(held, data, costs=2))
    first = results[0]
    for other in results[1:]:
        np.testing.assert_array_equal(other.arrays.net, first.arrays.net)
        np.testing.assert_array_equal(other.arrays.positions, first.arrays.positions)
        assert other.metrics() == pytest.approx(first.metrics(), nan_ok=True, rel=0, abs=0)
    row_major = backtest(held, data, costs=2)
    np.testing.assert_allclose(row_major.arrays.net, first.arrays.net, rtol=1e-14, atol=1e-17)


@given(seed=st.integers(0, 10_000), n_dates=st.integers(1, 60), nan_share=st.sampled_from(
    [0.0, 0.3]), leverage=st.sampled_from([0.5, 60.0]), order=st.permutations(
    list(foldwise.metrics.METRICS)))
def test_one_named_metric_equals_the_same_entry_of_all_metrics(seed, n_dates, nan_share,
                                                               leverage, order):
    """metric(name) and metrics(names=...) compute only what they need, in any order, and
    equal metrics()[name] exactly (checked on a fresh result, so nothing is shared)."""
    data = gappy_panel(seed, n_dates, 2, nan_share)
    held = np.random.default_rng(seed).normal(0.0, leverage, data.shape)

    def run() -> BacktestResult:
        return backtest(held, data, costs=3)

    everything = run().metrics()
    assert list(everything) == list(foldwise.metrics.METRICS)
    one_by_one = run()
    for name in order:
        fresh = run().metric(name)
        assert fresh == pytest.approx(everything[name], nan_ok=True, rel=0, abs=0), name
        assert isinstance(fresh, float)
        assert one_by_one.metric(name) == pytest.approx(everything[name], nan_ok=True, rel=0,
                                                        abs=0), name
    assert one_by_one.metrics() == pytest.approx(everything, nan_ok=True, rel=0, abs=0)
    subset = run().metrics(names=order[:3])
    assert list(subset) == order[:3]
    assert subset == pytest.approx({k: everything[k] for k in order[:3]}, nan_ok=True, rel=0,
                                   abs=0)


def test_unknown_metric_names_are_refused_with_a_suggestion(panel):
    result = backtest(np.full(panel.shape, 0.25), panel)
    with pytest.raises(foldwise.errors.UnknownMetricError,
                       match="unknown metric 'sharp'. Did you mean 'sharpe'.*max_drawdown"):
        result.metric("sharp")
    with pytest.raises(KeyError):  # the built-in a lookup by name raises
        result.metrics(names=["sharpe", "calmarr"])
    assert result.metrics(names="calmar") == {"calmar": result.metrics()["calmar"]}
    assert result.metrics(names=[]) == {}


def test_settings_memo_gives_the_same_object_and_keeps_refusing_bad_values():
    from foldwise import BacktestSettings

    first = BacktestSettings.coerce(None, costs=3, delay=1)
    assert BacktestSettings.coerce(None, costs=3, delay=1) is first
    assert BacktestSettings.coerce(None, costs=3.0, delay=1) == first  # equal, typed apart
    assert BacktestSettings.coerce(first) is first
    # True == 1 and hashes like it, but a bool is not a number of bps: never served from memo
    BacktestSettings.coerce(None, costs=1)
    with pytest.raises(BacktestError, match="number of bps"):
        BacktestSettings.coerce(None, costs=True)
    with pytest.raises(BacktestError, match="delay must be an integer"):
        BacktestSettings.coerce(None, delay=True)
    # unhashable arguments are coerced every time
    assert BacktestSettings.coerce(None, costs={"commission_bps": 2}).costs == Costs(2)
