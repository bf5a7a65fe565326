"""Every built-in factor against a straightforward pandas computation on the bundled data.

A pipeline value dated ``D`` uses bars through ``D - 1``, so each pandas reference is
shifted by one row. Tolerance 1e-12, relative to the value — or, for standard deviations
and regression outputs, to the natural scale of the quantity (prices for a price std, 1
for a correlation), where a relative test would only measure how close to 0 a value is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from foldwise import MarketData
from foldwise.datasets import load_goog, load_sp500
from foldwise.pipeline import EquityPricing, Pipeline, run_pipeline
from foldwise.pipeline.factors import (
    EWMA,
    EWMSTD,
    RSI,
    VWAP,
    AnnualizedVolatility,
    AverageDollarVolume,
    BollingerBands,
    DailyReturns,
    LinearWeightedMovingAverage,
    MaxDrawdown,
    PercentChange,
    Returns,
    RollingLinearRegressionOfReturns,
    RollingPearsonOfReturns,
    SimpleMovingAverage,
)

close = EquityPricing.close
TOL = 1e-12


@pytest.fixture(scope="module")
def sp500() -> MarketData:
    return load_sp500()


@pytest.fixture(scope="module")
def gappy() -> MarketData:
    """The S&P 500 closes with holes (a late listing, scattered NaN) and a synthetic volume."""
    data = load_sp500()
    rng = np.random.default_rng(0)
    prices = data.array("close").copy()
    prices[rng.random(prices.shape) < 0.01] = np.nan
    prices[:400, 1] = np.nan
    volume = rng.lognormal(14, 1, size=prices.shape)
    volume[rng.random(prices.shape) < 0.01] = np.nan
    return MarketData({"close": prices, "volume": volume}, data.index, data.assets)


def wide(term, data: MarketData, start=None, end=None) -> pd.DataFrame:
    frame = run_pipeline(Pipeline({"x": term}), data, start, end)
    return frame["x"].unstack("asset").reindex(columns=data.assets)


def assert_matches(ours: pd.DataFrame, reference: pd.DataFrame, *, scale=None,
                   tol: float = TOL) -> None:
    reference = reference.reindex(index=ours.index, columns=ours.columns)
    if isinstance(scale, pd.DataFrame):
        scale = scale.reindex(index=ours.index, columns=ours.columns).to_numpy()
    a, b = ours.to_numpy(), reference.to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg="NaN patterns differ")
    ok = ~np.isnan(b)
    bound = np.abs(b) if scale is None else np.maximum(
        np.abs(b), np.broadcast_to(np.asarray(scale), b.shape))
    excess = np.abs(a - b)[ok] - tol * bound[ok]
    assert excess.max(initial=-1) <= 0, f"worst error {np.abs(a - b)[ok].max():.3e}"


def frame(data: MarketData, field: str = "close") -> pd.DataFrame:
    return data.frame(field)


def direct_std(values: pd.DataFrame, window: int) -> pd.DataFrame:
    """NaN-skipping population std over trailing windows, summing squared deviations from
    the window mean directly (pandas' online rolling ``std`` drifts by ~1e-8 on prices with
    gaps, far more than the tolerance here)."""
    mean = values.rolling(window, min_periods=1).mean()
    squares = sum(((values.shift(k) - mean) ** 2).fillna(0.0) for k in range(window))
    count = values.notna().astype(float).rolling(window, min_periods=1).sum()
    return np.sqrt(squares / count).where(count > 0)


# --- returns ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [2, 20, 60])
def test_returns(sp500, gappy, window):
    for data in (sp500, gappy):
        prices = frame(data)
        reference = ((prices - prices.shift(window - 1)) / prices.shift(window - 1)).shift(1)
        assert_matches(wide(Returns(window_length=window), data), reference)
    prices = frame(sp500)
    assert_matches(wide(DailyReturns(), sp500), (prices.diff() / prices.shift(1)).shift(1))


def test_percent_change_divides_by_the_absolute_old_value(gappy):
    values = frame(gappy) - 60.0  # negative and positive values
    data = MarketData({"close": frame(gappy).to_numpy(), "level": values.to_numpy()},
                      gappy.index, gappy.assets)
    from foldwise.pipeline import Column, DataSet

    class Levels(DataSet):
        level = Column(float)

    ours = wide(PercentChange(inputs=[Levels.level], window_length=10), data)
    reference = ((values - values.shift(9)) / values.shift(9).abs()).shift(1)
    assert_matches(ours, reference)


# --- moving averages ------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 10, 50, 200])
def test_simple_moving_average_skips_nan(sp500, gappy, window):
    for data in (sp500, gappy):
        reference = frame(data).rolling(window, min_periods=1).mean().shift(1)
        assert_matches(wide(SimpleMovingAverage(inputs=[close], window_length=window), data),
                       reference)


def _ewm_weights(window: int, decay: float) -> np.ndarray:
    return decay ** np.arange(window)  # k = 0 is the newest bar


@pytest.mark.parametrize(("window", "decay"), [(30, 1 - 2 / 16), (60, 0.97), (10, 1.0), (2, 0.5)])
def test_ewma_against_pandas_exponential_window(sp500, gappy, window, decay):
    for data in (sp500, gappy):
        prices = frame(data)
        if decay < 1:
            tau = -1 / math.log(decay)
            reference = prices.rolling(window, win_type="exponential").mean(
                tau=tau, center=window - 1, sym=False)
        else:
            reference = prices.rolling(window).mean()
        ours = wide(EWMA(inputs=[close], window_length=window, decay_rate=decay), data)
        assert_matches(ours, reference.shift(1))


def test_ewm_constructors_match_pandas_conventions():
    assert EWMA.from_span(inputs=[close], window_length=30, span=15) is EWMA(
        inputs=[close], window_length=30, decay_rate=1 - 2 / 16)
    assert EWMA.from_halflife(inputs=[close], window_length=30, halflife=15) is EWMA(
        inputs=[close], window_length=30, decay_rate=math.exp(math.log(0.5) / 15))
    assert EWMSTD.from_center_of_mass(inputs=[close], window_length=30, center_of_mass=15) is \
        EWMSTD(inputs=[close], window_length=30, decay_rate=1 - 1 / 16)


@pytest.mark.parametrize(("window", "decay"), [(30, 0.875), (100, 0.9), (20, 1.0)])
def test_ewmstd_against_a_direct_weighted_computation(gappy, window, decay):
    prices = frame(gappy)
    weights = _ewm_weights(window, decay)
    shifted = [prices.shift(k) for k in range(window)]
    mean = sum(w * s for w, s in zip(weights, shifted, strict=True)) / weights.sum()
    var = sum(w * (s - mean) ** 2 for w, s in zip(weights, shifted, strict=True)) / weights.sum()
    bias = weights.sum() ** 2 / (weights.sum() ** 2 - (weights ** 2).sum())
    reference = np.sqrt(var * bias).shift(1)
    ours = wide(EWMSTD(inputs=[close], window_length=window, decay_rate=decay), gappy)
    assert_matches(ours, reference, scale=prices.shift(1))


@pytest.mark.parametrize("window", [1, 5, 30])
def test_linear_weighted_moving_average_counts_nan_as_zero(gappy, window):
    prices = frame(gappy)
    total = sum((window - k) * prices.shift(k).fillna(0.0) for k in range(window))
    reference = (total / (window * (window + 1) / 2)).shift(1)
    reference.iloc[: window] = np.nan  # the first windows reach before the data
    ours = wide(LinearWeightedMovingAverage(inputs=[close], window_length=window), gappy)
    assert_matches(ours, reference.iloc[window:])


# --- volatility, RSI, bands ------------------------------------------------------------------


@pytest.mark.parametrize("window", [20, 252])
def test_annualized_volatility(sp500, gappy, window):
    for data in (sp500, gappy):
        returns = frame(data).pct_change()
        reference = returns.rolling(window, min_periods=1).std(ddof=0) * math.sqrt(252)
        ours = wide(AnnualizedVolatility(window_length=window), data)
        assert_matches(ours, reference.shift(1), scale=1e-3)
    ours = wide(AnnualizedVolatility(window_length=20, annualization_factor=12.0), sp500)
    reference = frame(sp500).pct_change().rolling(20).std(ddof=0) * math.sqrt(12)
    assert_matches(ours, reference.shift(1), scale=1e-3)


@pytest.mark.parametrize("window", [15, 2, 40])
def test_rsi(sp500, gappy, window):
    for data in (sp500, gappy):
        change = frame(data).diff()
        ups = change.clip(lower=0).rolling(window - 1, min_periods=1).mean()
        downs = change.clip(upper=0).rolling(window - 1, min_periods=1).mean().abs()
        reference = (100 - 100 / (1 + ups / downs)).shift(1)
        assert_matches(wide(RSI(window_length=window), data), reference)
    assert RSI() is RSI(window_length=15)


def test_bollinger_bands(gappy):
    prices = frame(gappy)
    mean = prices.rolling(20, min_periods=1).mean()
    std = direct_std(prices, 20)
    bands = BollingerBands(window_length=20, k=2.5)
    for name, reference in (("lower", mean - 2.5 * std), ("middle", mean),
                            ("upper", mean + 2.5 * std)):
        assert_matches(wide(getattr(bands, name), gappy), reference.shift(1))


# --- volume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 10, 60])
def test_vwap_and_average_dollar_volume(gappy, window):
    goog = load_goog()
    for data in (goog, gappy):
        prices, volume = frame(data), frame(data, "volume")
        # Zipline's nansum: a missing price with a known volume adds 0 dollars (not NaN).
        dollars = (prices * volume).fillna(0.0).rolling(window).sum()
        vwap = dollars / volume.rolling(window, min_periods=1).sum()
        assert_matches(wide(VWAP(window_length=window), data), vwap.shift(1).iloc[window:])
        adv = (prices * volume).fillna(0.0).rolling(window).sum() / window
        assert_matches(wide(AverageDollarVolume(window_length=window), data),
                       adv.shift(1).iloc[window:], scale=1.0)


# --- drawdown --------------------------------------------------------------------------------


def _zipline_drawdown(window: np.ndarray) -> float:
    drawdowns = np.fmax.accumulate(window) - window
    drawdowns[np.isnan(drawdowns)] = -np.inf
    end = int(np.argmax(drawdowns))
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(window[: end + 1]) if not np.isnan(window[: end + 1]).all() else np.nan
    return (peak - window[end]) / window[end]


@pytest.mark.parametrize("window", [2, 30])
def test_max_drawdown(gappy, window):
    prices = frame(gappy).iloc[:700]
    reference = prices.rolling(window, min_periods=1).apply(_zipline_drawdown, raw=True).shift(1)
    ours = wide(MaxDrawdown(inputs=[close], window_length=window), gappy,
                end=gappy.index[699])
    assert_matches(ours, reference.iloc[window:])


# --- against a target asset ------------------------------------------------------------------


def test_rolling_pearson_of_returns(gappy):
    returns = frame(gappy).pct_change()
    reference = returns.rolling(30).corr(returns["AAPL"]).shift(1)
    ours = wide(RollingPearsonOfReturns(target="AAPL", returns_length=2, correlation_length=30),
                gappy)
    assert_matches(ours, reference, scale=1.0)


def test_rolling_pearson_of_multi_day_returns(sp500):
    returns = frame(sp500).pct_change(4)
    reference = returns.rolling(20).corr(returns["XOM"]).shift(1)
    ours = wide(RollingPearsonOfReturns(target="XOM", returns_length=5, correlation_length=20),
                sp500)
    assert_matches(ours, reference, scale=1.0)


def test_rolling_linear_regression_of_returns(gappy):
    n = 40
    returns = frame(gappy).pct_change()
    target = returns["JPM"]
    beta = returns.rolling(n).cov(target).div(target.rolling(n).var(), axis=0)
    alpha = returns.rolling(n).mean().sub(beta.mul(target.rolling(n).mean(), axis=0))
    r_value = returns.rolling(n).corr(target)
    regression = RollingLinearRegressionOfReturns(target="JPM", returns_length=2,
                                                  regression_length=n)
    ours = {name: wide(getattr(regression, name), gappy)
            for name in ("alpha", "beta", "r_value", "p_value", "stderr")}
    assert_matches(ours["beta"], beta.shift(1), scale=1.0)
    assert_matches(ours["alpha"], alpha.shift(1), scale=1e-2)
    assert_matches(ours["r_value"], r_value.shift(1), scale=1.0)
    # p-values and standard errors: scipy.stats.linregress window by window (a sample).
    for position in range(2000, 8300, 450):
        date = gappy.index[position]
        window = returns.iloc[position - n:position]
        for asset in gappy.assets:
            x, y = window["JPM"].to_numpy(), window[asset].to_numpy()
            if np.isnan(x).any() or np.isnan(y).any():
                assert np.isnan(ours["p_value"].loc[date, asset])
                continue
            if asset == "JPM":
                continue  # y == x: r = 1, p = 0 within rounding
            fit = stats.linregress(x, y)
            assert ours["p_value"].loc[date, asset] == pytest.approx(fit.pvalue, rel=1e-9, abs=1e-15)
            assert ours["stderr"].loc[date, asset] == pytest.approx(fit.stderr, rel=1e-10)
            assert ours["alpha"].loc[date, asset] == pytest.approx(fit.intercept, abs=1e-14)


def test_regression_on_a_constant_target_is_nan():
    index = pd.bdate_range("2024-01-01", periods=30)
    prices = np.column_stack([np.full(30, 10.0), 10 + np.arange(30.0) ** 1.5])
    data = MarketData({"close": prices}, index, ["FLAT", "UP"])
    regression = RollingLinearRegressionOfReturns("FLAT", 2, 5)
    out = run_pipeline(Pipeline({"beta": regression.beta, "r": regression.r_value}), data)
    assert out["beta"].isna().all()
    assert out["r"].isna().all()
    pearson = run_pipeline(Pipeline({"r": RollingPearsonOfReturns("FLAT", 2, 5)}), data)
    assert pearson["r"].isna().all()


# --- latest and the kernels against Zipline's own per-date compute ---------------------------


def test_latest_is_the_previous_bar(gappy):
    assert_matches(wide(close.latest, gappy), frame(gappy).shift(1))


def _per_date(cls):
    """The same factor with its per-date ``compute`` (Zipline's definition) forced."""
    def compute(self, *args, **kwargs):
        return cls.compute(self, *args, **kwargs)

    return type(f"{cls.__name__}ByDate", (cls,), {"compute": compute})


@pytest.mark.parametrize(("cls", "kwargs"), [
    (Returns, {"window_length": 7}),
    (PercentChange, {"inputs": [close], "window_length": 7}),
    (SimpleMovingAverage, {"inputs": [close], "window_length": 33}),
    (EWMA, {"inputs": [close], "window_length": 33, "decay_rate": 0.9}),
    (EWMSTD, {"inputs": [close], "window_length": 33, "decay_rate": 0.9}),
    (LinearWeightedMovingAverage, {"inputs": [close], "window_length": 33}),
    (AnnualizedVolatility, {"window_length": 33}),
    (RSI, {"window_length": 14}),
    (MaxDrawdown, {"inputs": [close], "window_length": 33}),
    (VWAP, {"window_length": 33}),
    (AverageDollarVolume, {"window_length": 33}),
    (RollingPearsonOfReturns, {"target": "AAPL", "returns_length": 2, "correlation_length": 33}),
])
def test_kernels_match_the_per_date_compute(gappy, cls, kwargs):
    start, end = gappy.index[300], gappy.index[900]
    kernel = wide(cls(**kwargs), gappy, start, end)
    by_date = wide(_per_date(cls)(**kwargs), gappy, start, end)
    scale = 1.0 if cls in (RollingPearsonOfReturns, AnnualizedVolatility) else None
    if cls is EWMSTD:
        scale = frame(gappy).shift(1).reindex(kernel.index)
    assert_matches(kernel, by_date, scale=scale, tol=1e-11)


def test_multi_output_kernels_match_the_per_date_compute(gappy):
    start, end = gappy.index[1000], gappy.index[1100]
    for cls, kwargs in ((BollingerBands, {"window_length": 20, "k": 2.0}),
                        (RollingLinearRegressionOfReturns,
                         {"target": "MSFT", "returns_length": 2, "regression_length": 25})):
        kernel, by_date = cls(**kwargs), _per_date(cls)(**kwargs)
        # One pipeline per definition, every output a column: the per-date compute (a scipy
        # regression per asset and day) runs once, not once per output.
        ours, reference = (
            run_pipeline(Pipeline({name: getattr(term, name) for name in kernel.outputs}),
                         gappy, start, end)
            for term in (kernel, by_date))
        for name in kernel.outputs:
            assert_matches(ours[name].unstack("asset").reindex(columns=gappy.assets),
                           reference[name].unstack("asset").reindex(columns=gappy.assets),
                           scale=1.0, tol=1e-11)


# --- the compiled kernels -------------------------------------------------------------------


def _kernel_cases(seed: int = 0, n: int = 300):
    """Random panels with holes, empty columns, constant stretches, signed zeros and all
    block alignments: (values, window, origin)."""
    rng = np.random.default_rng(seed)
    for case in range(n):
        rows, cols = int(rng.integers(1, 70)), int(rng.integers(1, 5))
        window, origin = int(rng.integers(1, rows + 1)), int(rng.integers(0, 200))
        values = 50 + rng.normal(size=(rows, cols)).cumsum(axis=0)
        if case % 3 == 0:
            values[rng.random(values.shape) < 0.3] = np.nan
        if case % 5 == 0:
            values[:, 0] = np.nan
        if case % 7 == 0:
            values[: rows // 2] = 3.0
        if case % 11 == 0:
            values[rng.random(values.shape) < 0.3] = -0.0
        yield values, window, origin


def test_compiled_kernels_equal_the_numpy_kernels_bit_for_bit():
    """The compiled mean and moments make the numpy kernels' additions in the same order:
    the same values, NaN in the same cells, even the sign of zeros."""
    from foldwise.pipeline import _compiled, _kernels

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
                and np.array_equal(np.signbit(a), np.signbit(b)))

    for values, window, origin in _kernel_cases():
        lead = origin % window
        with np.errstate(all="ignore"):
            assert same(_compiled.window_nanmean(values, window, lead),
                        _kernels._nanmean_numpy(values, window, origin))
            count, mean, var = _compiled.window_nanmoments(values, window, lead, True)
            layout, n_valid, m1, variance, ends = _kernels._moments_numpy(values, window, origin)
            assert same(var, variance)
            assert same(mean, layout.per_row(ends) + m1)
            assert same(count, np.broadcast_to(n_valid, count.shape).astype(np.int64))
            assert _compiled.window_nanmoments(values, window, lead, False)[1].size == 0


def test_compiled_std_of_complete_windows_equals_the_general_kernel_bit_for_bit():
    """Without NaN, the standard deviation takes one pass that skips the counts of values
    present and folds in the root and the scale: the same bits as the general kernel's
    variance, rooted and scaled, and NaN inputs still take the general kernel."""
    from foldwise.pipeline import _compiled, _kernels

    cases = [(values, window, origin) for values, window, origin in _kernel_cases(seed=3)
             if not np.isnan(values).any()]
    spiked = cases[0][0].copy()
    spiked[0, 0] = np.inf
    cases.append((spiked, cases[0][1], 4))
    assert len(cases) > 100
    for values, window, origin in cases:
        with np.errstate(all="ignore"):
            variance = _compiled.window_nanmoments(values, window, origin % window, False)[2]
            expected = np.sqrt(variance) * 15.87
            got = _compiled.window_std_complete(values, window, origin % window, 15.87)
        assert np.array_equal(got, expected, equal_nan=True)
    assert _compiled.has_nan(np.array([[1.0, 2.0], [3.0, np.nan]]))
    assert not _compiled.has_nan(np.array([[1.0, np.inf], [3.0, 4.0]]))
    big = np.random.default_rng(0).normal(size=(600, 500))
    big[5, 7] = np.nan
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(
            _kernels.window_std(big, 20, 3, 2.0),
            np.sqrt(_compiled.window_nanmoments(big, 20, 3, False)[2]) * 2.0)


def test_compiled_window_means_at_cells_equal_the_whole_kernel_bit_for_bit():
    """The mean of the windows starting at chosen cells (a screened run's outputs; four
    cells of a row at a time) makes the whole kernel's additions in the same order."""
    from foldwise.pipeline import _compiled

    rng = np.random.default_rng(9)
    wide = [(np.hstack([values] * 3), window, origin)  # rows of up to 12 cells
            for values, window, origin in _kernel_cases(seed=2, n=100)]
    for values, window, origin in [*_kernel_cases(seed=1, n=300), *wide]:
        lead = origin % window
        with np.errstate(all="ignore"):
            whole = _compiled.window_nanmean(values, window, lead)
        keep = rng.random(whole.size) < rng.choice([0.2, 0.7, 1.0])
        rows, cols = np.divmod(np.flatnonzero(keep), whole.shape[1])
        with np.errstate(all="ignore"):
            got = _compiled.window_nanmean_cells(values, window, lead, rows, cols)
        expected = whole[rows, cols]
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_large_panels_take_the_compiled_kernels_and_match_pandas(monkeypatch):
    """A panel of 250 000 cells or more goes to the compiled kernels (numba); their SMA,
    volatility and Bollinger bands match pandas as the numpy kernels do."""
    from foldwise.pipeline import _compiled, _kernels

    calls = []
    for name in ("window_nanmean", "window_nanmoments"):
        original = getattr(_compiled, name)
        monkeypatch.setattr(_compiled, name, lambda *a, _f=original, _n=name: (
            calls.append(_n), _f(*a))[1])
    rng = np.random.default_rng(5)
    n_dates, n_assets = 520, 500
    assert n_dates * n_assets >= _kernels.COMPILED_MIN_CELLS
    prices = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_dates, n_assets)), axis=0))
    prices[rng.random(prices.shape) < 0.02] = np.nan
    prices[:300, 7] = np.nan
    data = MarketData({"close": prices}, pd.bdate_range("2015-01-01", periods=n_dates),
                      [f"A{i:03d}" for i in range(n_assets)])
    table = frame(data)
    assert_matches(wide(SimpleMovingAverage(inputs=[close], window_length=30), data),
                   table.rolling(30, min_periods=1).mean().shift(1))
    returns = table.pct_change()
    assert_matches(wide(AnnualizedVolatility(window_length=60), data),
                   (direct_std(returns, 60) * math.sqrt(252)).shift(1), scale=1e-3)
    bands = BollingerBands(window_length=20, k=2.0)
    mean, std = table.rolling(20, min_periods=1).mean(), direct_std(table, 20)
    assert_matches(wide(bands.upper, data), (mean + 2.0 * std).shift(1),
                   scale=mean.shift(1).fillna(1.0))
    assert set(calls) == {"window_nanmean", "window_nanmoments"}
