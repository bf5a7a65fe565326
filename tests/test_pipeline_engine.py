"""The pipeline engine: output format, the lookahead convention, computing each term once,
loading only the history needed, freeing intermediates, errors, and the term cache."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foldwise import MarketData
from foldwise.datasets import load_sp500
from foldwise.errors import (
    PipelineError,
    PipelineOutputError,
    UnknownAssetError,
    UnknownColumnError,
    WindowLengthError,
)
from foldwise.pipeline import (
    BoundColumn,
    Column,
    CustomClassifier,
    CustomFactor,
    CustomFilter,
    DataSet,
    EquityPricing,
    Pipeline,
    TermCache,
    run_pipeline,
)
from foldwise.pipeline import _engine as engine
from foldwise.pipeline.factors import (
    EWMA,
    EWMSTD,
    RSI,
    AnnualizedVolatility,
    BollingerBands,
    LinearWeightedMovingAverage,
    MaxDrawdown,
    PercentChange,
    Returns,
    RollingLinearRegressionOfReturns,
    SimpleMovingAverage,
)

close = EquityPricing.close


def make_panel(n_dates: int = 120, n_assets: int = 6, seed: int = 0) -> MarketData:
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_dates, n_assets)), axis=0))
    spread = np.abs(rng.normal(0, 0.01, closes.shape))
    fields = {"open": closes * (1 + rng.normal(0, 0.005, closes.shape)),
              "high": closes * (1 + spread), "low": closes * (1 - spread), "close": closes,
              "volume": rng.lognormal(12, 1, closes.shape)}
    index = pd.bdate_range("2021-01-04", periods=n_dates)
    return MarketData(fields, index, [f"A{i}" for i in range(n_assets)])


# --- the Zipline example, unchanged except imports ---------------------------------------

# Zipline's CustomFactor example, verbatim (only the imports at the top of the file differ).
class Reversion(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 60
    def compute(self, today, assets, out, prices):
        out[:] = -prices[-1] / np.mean(prices, axis=0)


def test_zipline_reversion_example_runs_unchanged():
    data = load_sp500()
    out = run_pipeline(Pipeline({"reversion": Reversion()}), data, "2010-01-04", "2022-12-28")
    prices = data.frame("close")
    expected = (-prices / prices.rolling(60).mean()).shift(1).stack()
    expected.index.names = ["date", "asset"]
    pd.testing.assert_series_equal(out["reversion"], expected.reindex(out.index),
                                   check_names=False, rtol=1e-12)


# --- output format ---------------------------------------------------------------------------


def test_output_is_indexed_by_date_and_asset_with_typed_columns():
    data = make_panel()
    momentum = Returns(window_length=5)
    pipe = Pipeline({"momentum": momentum, "up": momentum > 0, "bucket": momentum.quintiles(),
                     "rank": momentum.rank()})
    out = run_pipeline(pipe, data, data.index[10], data.index[-1])
    assert list(out.columns) == ["momentum", "up", "bucket", "rank"]
    assert out.index.names == ["date", "asset"]
    assert list(out.index.get_level_values("asset")[: data.n_assets]) == list(data.assets)
    assert len(out) == (data.n_dates - 10) * data.n_assets
    assert out.dtypes.to_dict() == {"momentum": np.float64, "up": np.bool_,
                                    "bucket": np.int64, "rank": np.float64}


def test_output_columns_are_the_frames_own():
    """Without a screen the frame may take a computed array instead of copying it: a
    column written to changes no other column, no data, and no later run."""
    data = make_panel()
    before = data.array("close").copy()
    reversion = Reversion(window_length=10)
    pipe = Pipeline({"a": reversion, "b": reversion, "close": close.latest,
                     "sum": reversion + 0.0})
    out = run_pipeline(pipe, data, data.index[20], data.index[-1])
    expected = out.copy()
    for name in out.columns:  # overwrite the columns one by one, in place
        out.loc[:, name] = -1.0
        assert (out[name] == -1.0).all()
        later = list(out.columns)[list(out.columns).index(name) + 1:]
        pd.testing.assert_frame_equal(out[later], expected[later])
    np.testing.assert_array_equal(data.array("close"), before)
    again = run_pipeline(pipe, data, data.index[20], data.index[-1])
    pd.testing.assert_frame_equal(again, expected)


def test_screen_drops_rows_without_changing_values():
    data = make_panel()
    momentum = Returns(window_length=5)
    full = run_pipeline(Pipeline({"m": momentum, "z": momentum.zscore()}), data)
    screened = run_pipeline(Pipeline({"m": momentum, "z": momentum.zscore()},
                                     screen=momentum.top(2)), data)
    assert screened.groupby(level="date").size().eq(2).all()
    pd.testing.assert_frame_equal(screened, full.loc[screened.index])


def test_a_filter_of_one_asset_screens_whole_dates_when_combined_with_the_assets():
    """``momentum["A0"] > 0`` has one value per date: alone it is refused as a screen (a
    message, not a shape error at run time); combined with a filter of the assets it keeps
    every asset on the dates where it holds, in a whole and in a screened-cells run."""
    data = make_panel()
    momentum = Returns(window_length=5)
    up = momentum["A0"] > 0
    with pytest.raises(PipelineError, match="one value per date, not one per asset"):
        Pipeline({"m": momentum}, screen=up)
    with pytest.raises(PipelineError, match="one value per date, not one per asset"):
        Pipeline({"up": ~up | momentum["A1"].isnull()})
    full = run_pipeline(Pipeline({"m": momentum, "z": momentum.zscore()}), data)
    m = full["m"].unstack()
    days = m.index[m["A0"] > 0]
    assert 0 < len(days) < len(m)
    whole = run_pipeline(Pipeline({"m": momentum, "z": momentum.zscore()},
                                  screen=momentum.notnull() & up), data)
    expected = full.loc[full["m"].notna() & full.index.get_level_values("date").isin(days)]
    pd.testing.assert_frame_equal(whole, expected)
    top = run_pipeline(Pipeline({"m": momentum, "z": momentum.zscore()},
                                screen=up & momentum.top(2)), data)
    ranks = m.rank(axis=1, ascending=False, method="first").stack()
    kept = ranks.index[(ranks <= 2).to_numpy()
                       & ranks.index.get_level_values(0).isin(days)]
    pd.testing.assert_frame_equal(top, full.loc[full.index.intersection(kept)])


def test_start_and_end_select_dates_inclusively():
    data = make_panel()
    out = run_pipeline(Pipeline({"m": Returns(window_length=5)}), data,
                       pd.Timestamp(data.index[20]) - pd.Timedelta(hours=12), data.index[30])
    dates = out.index.get_level_values("date").unique()
    assert dates[0] == data.index[20]
    assert dates[-1] == data.index[30]
    default = run_pipeline(Pipeline({"m": Returns(window_length=5)}), data)
    assert default.index.get_level_values("date")[0] == data.index[5]


# --- lookahead -------------------------------------------------------------------------------


def test_row_dated_d_uses_bars_through_the_bar_before_d():
    data = make_panel()
    seen = {}

    class Spy(CustomFactor):
        inputs = [close]
        window_length = 3

        def compute(self, today, assets, out, closes):
            seen[today] = closes.copy()
            out[:] = closes[-1]

    out = run_pipeline(Pipeline({"latest": close.latest, "spy": Spy(),
                                 "daily": Returns(window_length=2)}), data)
    prices = data.frame("close")
    latest = out["latest"].unstack()
    pd.testing.assert_frame_equal(latest, prices.shift(1).loc[latest.index], check_names=False,
                                  check_freq=False)
    position = data.index.get_loc(data.index[50])
    np.testing.assert_array_equal(seen[data.index[50]], data.array("close")[position - 3:position])
    daily = out["daily"].xs(data.index[50], level="date")
    expected = (data.array("close")[49] - data.array("close")[48]) / data.array("close")[48]
    np.testing.assert_array_equal(daily.to_numpy(), expected)


def _everything_pipeline() -> Pipeline:
    momentum = Returns(window_length=6)
    bands = BollingerBands(window_length=8, k=2.0)
    regression = RollingLinearRegressionOfReturns("A0", 2, 10)
    reversion = Reversion(window_length=12)
    return Pipeline({
        "reversion": reversion, "momentum": momentum,
        "ewma": EWMA(inputs=[close], window_length=9, decay_rate=0.8),
        "ewmstd": EWMSTD(inputs=[close], window_length=9, decay_rate=0.8),
        "lwma": LinearWeightedMovingAverage(inputs=[EquityPricing.high], window_length=7),
        "upper": bands.upper, "rsi": RSI(window_length=5),
        "drawdown": MaxDrawdown(inputs=[EquityPricing.low], window_length=10),
        "vol": AnnualizedVolatility(window_length=10), "beta": regression.beta,
        "z": reversion.zscore(groupby=momentum.quartiles()),
        "w": momentum.winsorize(0.1, 0.9, mask=reversion.notnan()),
        "rank": momentum.rank(method="average", ascending=False),
        "smooth": SimpleMovingAverage(inputs=[momentum.zscore()], window_length=4),
        "top": reversion.top(2),
    }, screen=momentum.notnan())


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(15, 79), factor=st.floats(0.2, 5.0), seed=st.integers(0, 3))
def test_changing_data_on_or_after_d_changes_nothing_dated_d_or_earlier(cut, factor, seed):
    data = make_panel(n_dates=80, n_assets=5, seed=seed)
    changed = {name: data.array(name).copy() for name in data.fields}
    rng = np.random.default_rng(seed)
    for values in changed.values():
        values[cut:] *= factor * rng.uniform(0.9, 1.1, size=values[cut:].shape)
    other = MarketData(changed, data.index, data.assets)
    pipe = _everything_pipeline()
    before = run_pipeline(pipe, data, data.index[14])
    after = run_pipeline(pipe, other, data.index[14])
    through = before.index.get_level_values("date") <= data.index[cut]
    pd.testing.assert_frame_equal(before[through], after[after.index.isin(before[through].index)],
                                  check_exact=True)
    if cut < 79:  # the change does show from the next date on
        later = after.index.get_level_values("date") > data.index[cut]
        assert not before[~through].equals(after[later])


def test_values_do_not_depend_on_the_range_asked_for():
    data = make_panel(n_dates=200)
    pipe = _everything_pipeline()
    long = run_pipeline(pipe, data, data.index[14])
    short = run_pipeline(pipe, data, data.index[97], data.index[150])
    pd.testing.assert_frame_equal(short, long.loc[short.index], check_exact=True)


# --- computed once, history, memory ----------------------------------------------------------


class Counted(CustomFactor):
    inputs = [close]
    window_length = 4
    calls: list = []

    def compute(self, today, assets, out, closes):
        Counted.calls.append(today)
        out[:] = closes.mean(axis=0)


def test_a_subterm_shared_by_two_columns_is_computed_once():
    data = make_panel()
    Counted.calls.clear()
    shared = Counted()
    pipe = Pipeline({"z": shared.zscore(), "r": Counted().rank(), "raw": shared,
                     "sum": shared + Counted()})
    out = run_pipeline(pipe, data, data.index[4])
    dates = out.index.get_level_values("date").unique()
    assert sorted(Counted.calls) == list(dates)  # once per date, not once per column


def test_only_the_history_the_longest_window_needs_is_loaded(monkeypatch):
    data = make_panel(n_dates=300)
    loaded = []
    original = BoundColumn.load

    def spy(self, market, first, last):
        loaded.append((self.name, first, last))
        return original(self, market, first, last)

    monkeypatch.setattr(BoundColumn, "load", spy)
    pipe = Pipeline({"sma": SimpleMovingAverage(inputs=[close], window_length=50),
                     "vol": AnnualizedVolatility(window_length=20),
                     "high": EquityPricing.high.latest})
    run_pipeline(pipe, data, data.index[200], data.index[250])
    assert sorted(loaded) == [("close", 150, 249), ("high", 199, 249)]


def test_intermediates_are_freed_once_consumed():
    data = make_panel()
    alive = {}

    class First(CustomFactor):
        inputs = [close]
        window_length = 2

        def compute(self, today, assets, out, closes):
            alive.setdefault("first", weakref.ref(out.base))
            out[:] = closes[-1]

    class Later(CustomFactor):
        inputs = [Returns(window_length=2)]
        window_length = 2

        def compute(self, today, assets, out, returns):
            if "at_later" not in alive:  # the first day of Later is the moment that counts;
                gc.collect()  # collecting on every day cost seconds for nothing
                alive["at_later"] = alive["first"]() is not None
            out[:] = returns[-1]

    intermediate = First() * 2  # First is needed only to compute this product
    pipe = Pipeline({"product": intermediate, "later": Later().rank()})
    run_pipeline(pipe, data)
    assert alive["at_later"] is False


# --- a screened run: what only the outputs need, computed at the kept cells -------------------


def _sparse_panel(n_dates: int = 160, n_assets: int = 40, seed: int = 3) -> MarketData:
    """Many assets (a top(2) screen keeps one cell in twenty) and holes in the closes."""
    data = make_panel(n_dates, n_assets, seed)
    fields = {name: data.array(name).copy() for name in data.fields}
    rng = np.random.default_rng(seed)
    fields["close"][rng.random(fields["close"].shape) < 0.03] = np.nan
    fields["close"][:40, 5] = np.nan
    return MarketData(fields, data.index, data.assets)


def _late_pipeline() -> tuple[Pipeline, set, set]:
    """A screened pipeline, the terms it should compute at the kept cells, and some that
    it cannot (needed by the screen, or not computable cell by cell)."""
    momentum = Returns(window_length=5)
    sma = SimpleMovingAverage(inputs=[close], window_length=7)
    score = momentum.zscore() - sma.zscore()
    liquid = EquityPricing.volume.latest > 150_000.0
    long = Returns(window_length=30)
    fast, slow = (SimpleMovingAverage(inputs=[close], window_length=n) for n in (10, 12))
    trend = fast / slow - 1
    masked = SimpleMovingAverage(inputs=[close], window_length=9, mask=liquid)
    late = {fast, slow, fast / slow, trend, masked, -long, abs(long), long.sqrt(), long * 2.0,
            momentum.rank(), long.rank(ascending=False, mask=liquid), long - momentum["A1"],
            PercentChange(inputs=[close], window_length=4)}
    # long: also an input a rank needs whole; ** and log: not exact cell by cell.
    whole = {momentum, sma, score, score.top(2), momentum.rank(method="average"), long,
             long ** 2, Reversion(window_length=10), liquid, long.log()}
    columns = {f"c{i}": term for i, term in enumerate(sorted(late | whole, key=repr))}
    columns["again"] = long  # one term in two columns
    columns["screen"] = score.top(2)
    return Pipeline(columns, screen=score.top(2)), late, whole


def test_a_screened_run_knows_what_only_the_outputs_need():
    pipe, late, whole = _late_pipeline()
    plan = engine.Plan.build(pipe.columns, pipe.screen)
    assert plan.late_terms() == late
    assert not plan.late_terms() & whole
    assert plan.screen_terms().isdisjoint(late)
    assert engine.Plan.build(pipe.columns, None).late_terms() == set()


@pytest.mark.parametrize("compiled", [False, True])
def test_a_screened_run_equals_the_full_run_at_the_kept_cells(compiled, monkeypatch):
    """Terms computed at the kept cells alone give the bits the whole computation gives
    there: with the compiled cell kernels (forced on a small panel) and without them (the
    terms then decline and are computed whole)."""
    from foldwise.pipeline import _compiled, _crosssection, _kernels

    calls = []
    if compiled:
        monkeypatch.setattr(_kernels, "COMPILED_MIN_CELLS", 0)
        monkeypatch.setattr(_crosssection, "COMPILED_MIN_CELLS", 0)
        for name in ("window_nanmean_cells", "ordinal_rank_cells"):
            original = getattr(_compiled, name)
            monkeypatch.setattr(_compiled, name, lambda *a, _f=original, _n=name: (
                calls.append(_n), _f(*a))[1])
    data = _sparse_panel()
    pipe, _, _ = _late_pipeline()
    screened = run_pipeline(pipe, data, data.index[40])
    full = run_pipeline(Pipeline(pipe.columns), data, data.index[40])
    assert len(screened) == 2 * (data.n_dates - 40)
    pd.testing.assert_frame_equal(screened, full.loc[screened.index], check_exact=True)
    assert screened["screen"].all()
    assert set(calls) == ({"window_nanmean_cells", "ordinal_rank_cells"} if compiled else set())


def test_a_subclass_with_its_own_kernel_or_compute_is_not_computed_at_cells(monkeypatch):
    """A built-in's cell kernel stands only for its own whole kernel: a subclass that
    overrides ``_compute_all`` or ``compute`` is computed its own way (whole), and a screen
    keeping no cell gives an empty frame."""
    from foldwise.pipeline import _crosssection, _kernels

    monkeypatch.setattr(_kernels, "COMPILED_MIN_CELLS", 0)
    monkeypatch.setattr(_crosssection, "COMPILED_MIN_CELLS", 0)

    class Doubled(SimpleMovingAverage):
        def _compute_all(self, inputs, ctx):
            return 2.0 * super()._compute_all(inputs, ctx)

    class Direct(SimpleMovingAverage):
        def compute(self, today, assets, out, data):
            out[:] = np.nanmean(data, axis=0) + 1.0

    data = _sparse_panel()
    plain = SimpleMovingAverage(inputs=[close], window_length=9)
    doubled = Doubled(inputs=[close], window_length=9)
    direct = Direct(inputs=[close], window_length=9)
    momentum = Returns(window_length=5)
    pipe = Pipeline({"plain": plain, "doubled": doubled, "direct": direct},
                    screen=momentum.top(2))
    assert engine.Plan.build(pipe.columns, pipe.screen).late_terms() == {plain}
    out = run_pipeline(pipe, data, data.index[40])
    np.testing.assert_array_equal(out["doubled"], 2.0 * out["plain"])
    np.testing.assert_allclose(out["direct"], out["plain"] + 1.0, rtol=1e-13)
    empty = run_pipeline(Pipeline(pipe.columns, screen=momentum > 1e9), data, data.index[40])
    assert empty.empty and list(empty.columns) == ["plain", "doubled", "direct"]


def test_a_screened_run_frees_whole_outputs_once_cut_to_the_cells():
    """An output the screen needs is cut to the kept cells once nothing needs it whole:
    its whole array is not held to the end of the run."""
    data = make_panel()
    alive = {}

    class Level(CustomFactor):
        inputs = [close]
        window_length = 2

        def compute(self, today, assets, out, closes):
            alive.setdefault("level", weakref.ref(out.base))
            out[:] = closes[-1]

    class Later(CustomFactor):
        inputs = [close]
        window_length = 3

        def compute(self, today, assets, out, closes):
            if "at_later" not in alive:
                gc.collect()
                alive["at_later"] = alive["level"]() is not None
            out[:] = closes[0]

    level = Level()
    run_pipeline(Pipeline({"level": level, "later": Later()}, screen=level.top(2)), data)
    assert alive["at_later"] is False


def test_a_screened_frame_owns_its_columns():
    data = _sparse_panel()
    long = Returns(window_length=30)
    pipe = Pipeline({"a": long, "b": long, "c": -long, "m": Returns(window_length=5)},
                    screen=Returns(window_length=5).top(2))
    out = run_pipeline(pipe, data, data.index[40])
    expected = out.copy()
    for name in out.columns:
        out.loc[:, name] = -1.0
        later = list(out.columns)[list(out.columns).index(name) + 1:]
        pd.testing.assert_frame_equal(out[later], expected[later])
    pd.testing.assert_frame_equal(run_pipeline(pipe, data, data.index[40]), expected)


def test_elementwise_terms_overwrite_only_what_nothing_else_needs(monkeypatch):
    """An arithmetic term may write into an intermediate array it alone still needs (one
    allocation fewer); never into a root, data, a cached result, an array used twice or
    one a view (a slice by asset) still holds: every column stays what numpy gives."""
    from foldwise.pipeline import _factor

    reused = []
    original = _factor._reusable

    def spy(inputs, ctx, shape):
        out = original(inputs, ctx, shape)
        reused.append(out is not None)
        return out

    monkeypatch.setattr(_factor, "_reusable", spy)
    data = make_panel(n_assets=8)
    momentum, level = Returns(window_length=5), close.latest
    doubled = momentum * 2.0  # needed by `chain` alone: may be overwritten
    twice = momentum * 3.0  # used twice by one term
    sliced = momentum * 4.0  # a view of it (a one-asset slice) is read later
    pipe = Pipeline({"chain": -(doubled + 1.0), "twice": twice * twice,
                     "sliced": (sliced - 1.0) + sliced["A2"], "root": momentum + 0.0,
                     "momentum": momentum, "level": level * 1.0, "data": level + 0.0})
    out = run_pipeline(pipe, data, data.index[10])
    m = run_pipeline(Pipeline({"m": momentum}), data, data.index[10])["m"].unstack()
    prices = data.frame("close").shift(1).loc[m.index]
    expect = {"chain": -(m * 2.0 + 1.0), "twice": (m * 3.0) * (m * 3.0),
              "sliced": (m * 4.0 - 1.0).add(m["A2"] * 4.0, axis=0), "root": m + 0.0,
              "momentum": m, "level": prices * 1.0, "data": prices + 0.0}
    for name, table in expect.items():
        np.testing.assert_array_equal(out[name].unstack().to_numpy(), table.to_numpy())
    assert any(reused)
    np.testing.assert_array_equal(data.frame("close").to_numpy(), make_panel(n_assets=8)
                                  .frame("close").to_numpy())
    cache = TermCache()
    reused.clear()
    first = engine.compute_wide(pipe, data, cache=cache)
    assert reused and not any(reused)  # results a cache keeps are never overwritten
    kept = {name: values.copy() for name, values in first.columns.items()}
    again = engine.compute_wide(pipe, data, cache=cache)
    for name, values in again.columns.items():
        np.testing.assert_array_equal(values, kept[name])


# --- masks, custom filters and classifiers, datasets -----------------------------------------


def test_compute_sees_only_the_assets_passing_its_mask():
    data = make_panel()
    sizes = []

    class Masked(CustomFactor):
        inputs = [close]
        window_length = 3

        def compute(self, today, assets, out, closes):
            sizes.append((len(assets), out.shape, closes.shape))
            out[:] = closes[-1]

    mask = Returns(window_length=5).top(2)
    out = run_pipeline(Pipeline({"m": Masked(mask=mask), "in": mask}), data)
    assert {s[0] for s in sizes} == {2}
    assert all(s[1] == (2,) and s[2] == (3, 2) for s in sizes)
    assert out["m"][~out["in"]].isna().all()
    assert out["m"][out["in"]].notna().all()


def test_custom_filter_classifier_and_multiple_outputs():
    data = make_panel()

    class Rising(CustomFilter):
        inputs = [close]
        window_length = 4

        def compute(self, today, assets, out, closes):
            out[:] = closes[-1] > closes[0]

    class Tier(CustomClassifier):
        inputs = [close]
        window_length = 1

        def compute(self, today, assets, out, closes):
            out[:] = (closes[-1] > 50).astype(np.int64)

    class Range(CustomFactor):
        inputs = [EquityPricing.high, EquityPricing.low]
        outputs = ["width", "mid"]
        window_length = 5

        def compute(self, today, assets, out, highs, lows):
            out.width[:] = highs.max(axis=0) - lows.min(axis=0)
            out.mid[:] = (highs.max(axis=0) + lows.min(axis=0)) / 2

    width, mid = Range()
    out = run_pipeline(Pipeline({"rising": Rising(), "tier": Tier(), "width": width, "mid": mid,
                                 "demeaned": mid.demean(groupby=Tier(), mask=Rising())}), data)
    prices = data.frame("close")
    np.testing.assert_array_equal(out["rising"].unstack(), (prices > prices.shift(3)).shift(1)
                                  .fillna(False).loc[out["rising"].unstack().index])
    assert set(out["tier"].unique()) <= {0, 1}
    high, low = data.frame("high"), data.frame("low")
    expected = (high.rolling(5).max() - low.rolling(5).min()).shift(1).stack()
    np.testing.assert_allclose(out["width"], expected.reindex(out.index), rtol=1e-14)
    assert out["demeaned"][~out["rising"]].isna().all()


def test_user_dataset_binds_other_fields():
    data = make_panel()
    fields = {name: data.array(name) for name in data.fields}
    fields["pe"] = np.where(np.arange(data.n_dates)[:, None] % 7 == 0, np.nan,
                            10 + np.arange(data.n_assets, dtype=float))
    fields["group"] = np.tile(np.array([0.0, 1.0, np.nan, 1.0, 0.0, 2.0]), (data.n_dates, 1))
    fields["flag"] = np.tile(np.array([1.0, 0.0, np.nan, 2.0, 0.0, 1.0]), (data.n_dates, 1))
    panel = MarketData(fields, data.index, data.assets)

    class Fundamentals(DataSet):
        pe = Column(float)
        sector = Column(int, field="group")
        flag = Column(bool)

    out = run_pipeline(Pipeline({"pe": Fundamentals.pe.latest,
                                 "sector": Fundamentals.sector.latest,
                                 "flag": Fundamentals.flag.latest}), panel)
    row = out.xs(panel.index[1], level="date")
    assert row["sector"].tolist() == [0, 1, -1, 1, 0, 2]
    assert row["flag"].tolist() == [True, False, False, True, False, True]
    assert out["pe"].isna().sum() > 0


# --- errors ----------------------------------------------------------------------------------


def test_window_longer_than_the_history_names_the_term_and_the_first_date():
    data = make_panel()
    with pytest.raises(WindowLengthError) as info:
        run_pipeline(Pipeline({"rev": Reversion()}), data, data.index[30])
    message = str(info.value)
    assert "'rev'" in message
    assert "Reversion(window_length=60) <- EquityPricing.close" in message
    assert "needs 60 bar(s)" in message
    assert f"first date it can be computed for is {data.index[60].date()}" in message
    assert f"{data.index[30].date()} has 30 bar(s) before it" in message
    with pytest.raises(WindowLengthError, match=r"AnnualizedVolatility.*<- Returns\(window_len"):
        run_pipeline(Pipeline({"v": AnnualizedVolatility(window_length=100)}), data,
                     data.index[50])
    with pytest.raises(WindowLengthError, match="the data has only 120 bars"):
        run_pipeline(Pipeline({"v": Reversion(window_length=200)}), data)


def test_input_column_missing_from_the_data_is_named():
    data = MarketData.from_frame(make_panel().frame("close"))

    class Fundamentals(DataSet):
        pe = Column(float)

    with pytest.raises(UnknownColumnError, match=r"Fundamentals.pe reads the field 'pe'.*"
                                                 r"fields: \['close'\]"):
        run_pipeline(Pipeline({"pe": Fundamentals.pe.latest}), data)
    with pytest.raises(UnknownColumnError, match="field 'volume'"):
        run_pipeline(Pipeline({"v": SimpleMovingAverage(inputs=[EquityPricing.volume],
                                                         window_length=3)}), data)


def test_compute_writing_the_wrong_shape_or_dtype_is_named():
    data = make_panel()

    class WrongShape(CustomFactor):
        inputs = [close]
        window_length = 5

        def compute(self, today, assets, out, closes):
            out[:] = closes  # the whole window, not one value per asset

    class WrongDtype(CustomFactor):
        inputs = [close]
        window_length = 5

        def compute(self, today, assets, out, closes):
            out[:] = np.array(["high"] * len(assets))

    class Returned(CustomFactor):
        inputs = [close]
        window_length = 5

        def compute(self, today, assets, out, closes):
            return closes.mean(axis=0)

    with pytest.raises(PipelineOutputError, match=r"WrongShape\(window_length=5\).compute failed "
                                                  r"on \d{4}-\d\d-\d\d.*shape \(6,\).*\(5, 6\)"):
        run_pipeline(Pipeline({"x": WrongShape()}), data)
    with pytest.raises(PipelineOutputError, match=r"WrongDtype.*dtype float64"):
        run_pipeline(Pipeline({"x": WrongDtype()}), data)
    with pytest.raises(PipelineOutputError, match=r"returned an array .* instead of writing into out"):
        run_pipeline(Pipeline({"x": Returned()}), data)


def test_arithmetic_on_one_asset_column_stays_one_column():
    data = make_panel()
    daily = Returns(window_length=2)
    market = (daily["A0"] + daily["A1"]) / 2
    out = run_pipeline(Pipeline({"r": daily.pearsonr(market.abs() * 1.0 + market, 10)}), data)
    assert out["r"].notna().any()
    assert market.ndim == 1


def test_other_run_errors():
    data = make_panel()
    with pytest.raises(UnknownAssetError, match="'ZZZ'"):
        run_pipeline(Pipeline({"x": Returns(window_length=2)["ZZZ"].pearsonr(
            Returns(window_length=2)["ZZZ"], 5)}), data)
    with pytest.raises(PipelineError, match="no date to compute"):
        run_pipeline(Pipeline({"x": Returns(window_length=2)}), data, data.index[50],
                     data.index[40])
    with pytest.raises(PipelineError, match="expects a Pipeline"):
        run_pipeline(Returns(window_length=2), data)


# --- the term cache --------------------------------------------------------------------------


def test_wide_results_are_served_from_the_cache():
    data = make_panel()
    cache = TermCache()
    Counted.calls.clear()
    pipe = Pipeline({"z": Counted().zscore()})
    first = engine.compute_wide(pipe, data, cache=cache)
    computed = len(Counted.calls)
    again = engine.compute_wide(pipe, data, cache=cache)
    assert len(Counted.calls) == computed  # nothing recomputed
    np.testing.assert_array_equal(first.columns["z"], again.columns["z"])
    same_content = MarketData({n: data[n].copy() for n in data.fields}, data.index, data.assets)
    engine.compute_wide(Pipeline({"r": Counted().rank()}), same_content, cache=cache)
    assert len(Counted.calls) == computed  # same content hash, another object: still cached
    assert cache.hits >= 3


def test_cache_serves_sub_ranges_and_stays_bounded():
    cache = TermCache(max_bytes=1000)
    key = ("hash", Counted())
    cache.put(key, 10, 19, np.arange(10.0).reshape(10, 1))
    np.testing.assert_array_equal(cache.get(key, 12, 14)[:, 0], [2.0, 3.0, 4.0])
    assert cache.get(key, 9, 14) is None
    for i in range(30):
        cache.put(("hash", Returns(window_length=2 + i)), 0, 9, np.zeros((10, 1)))
    assert cache.nbytes <= 1000
    assert len(cache) == 12
    cache.clear()
    assert len(cache) == 0
