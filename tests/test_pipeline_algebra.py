"""Factor algebra and cross-sectional operations against brute-force pandas, row by row.

The pipeline's values are checked against pandas applied to the same inputs: elementwise
operators, comparisons and filters; ``rank`` / ``zscore`` / ``demean`` / ``winsorize`` /
``top`` / ``bottom`` with ``mask`` and ``groupby``; ``percentile_between``; ``quantiles``.
The cross-sectional kernels are also checked on random small arrays (ties, NaN, masks,
groups) with hypothesis.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from foldwise import MarketData
from foldwise.datasets import load_sp500
from foldwise.pipeline import Column, DataSet, EquityPricing, Pipeline, run_pipeline
from foldwise.pipeline._crosssection import (
    demean_rows,
    quantile_labels,
    rank_rows,
    top_rows,
    winsorize_rows,
    zscore_rows,
)
from foldwise.pipeline.factors import Returns, SimpleMovingAverage


class Extra(DataSet):
    sector = Column(int)
    liquid = Column(bool)


F = Returns(window_length=10)
G = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=5)
SECTOR = Extra.sector.latest
MASK = Extra.liquid.latest
START, END = "2001-01-02", "2004-12-31"


@pytest.fixture(scope="module")
def data() -> MarketData:
    base = load_sp500()
    rng = np.random.default_rng(7)
    prices = base.array("close").copy()
    prices[rng.random(prices.shape) < 0.02] = np.nan
    prices[:, 3] = np.where(np.arange(len(prices)) % 11 == 0, np.nan, prices[:, 3])
    sector = np.tile(np.arange(base.n_assets) % 4, (base.n_dates, 1)).astype(float)
    sector[rng.random(sector.shape) < 0.05] = np.nan  # no label
    liquid = (rng.random(prices.shape) < 0.8).astype(float)
    return MarketData({"close": prices, "sector": sector, "liquid": liquid}, base.index,
                      base.assets)


@pytest.fixture(scope="module")
def frame(data: MarketData) -> pd.DataFrame:
    """The base terms as a long (date, asset) frame."""
    pipe = Pipeline({"f": F, "g": G, "sector": SECTOR, "mask": MASK})
    return run_pipeline(pipe, data, START, END)


def compute(data: MarketData, **columns) -> pd.DataFrame:
    return run_pipeline(Pipeline(columns), data, START, END)


def first_year(values: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """The first year of the range, for the brute-force references that loop in Python."""
    return values.loc[values.index.get_level_values("date") < "2002-01-01"]


def quick_first(cases) -> list:
    """Parameters for ``pytest.mark.parametrize``: the first case runs in the quick loop, the
    others, marked ``slow``, in the full suite only (each costs a per-date pandas reference
    of about half a second)."""
    first, *rest = [tuple(itertools.chain.from_iterable(
        c if isinstance(c, tuple) else (c,) for c in case)) for case in cases]
    return [pytest.param(*first), *(pytest.param(*case, marks=pytest.mark.slow) for case in rest)]


def assert_series(ours: pd.Series, expected: pd.Series, rtol: float = 1e-12) -> None:
    expected = expected.reindex(ours.index)
    a, b = ours.to_numpy(dtype=float), expected.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    np.testing.assert_allclose(a[ok], b[ok], rtol=rtol, atol=1e-15)


# --- elementwise -------------------------------------------------------------------------


def test_arithmetic(data, frame):
    f, g = frame["f"], frame["g"]
    out = compute(data, add=F + G, sub=F - 2, rsub=2 - F, mul=F * G, div=F / G, rdiv=1 / G,
                  pow=G ** 0.5, rpow=2 ** F, mod=G % 7, neg=-F, abs=abs(F), abs2=F.abs(),
                  log=G.log(), exp=F.exp(), sqrt=G.sqrt(), log1p=F.log1p(),
                  composite=(F.zscore() + (-F).zscore()) / 2 - F * 3)
    with np.errstate(all="ignore"):
        expected = {
            "add": f + g, "sub": f - 2, "rsub": 2 - f, "mul": f * g, "div": f / g, "rdiv": 1 / g,
            "pow": g ** 0.5, "rpow": 2 ** f, "mod": g % 7, "neg": -f, "abs": f.abs(),
            "abs2": f.abs(), "log": np.log(g), "exp": np.exp(f), "sqrt": np.sqrt(g),
            "log1p": np.log1p(f),
        }
    for name, reference in expected.items():
        assert_series(out[name], reference)
    # the per-date z-scores loop in Python: checked over the first year (see first_year)
    f = first_year(f)
    z = f.groupby(level="date").transform(lambda x: (x - x.mean()) / x.std(ddof=0))
    zneg = (-f).groupby(level="date").transform(lambda x: (x - x.mean()) / x.std(ddof=0))
    assert_series(first_year(out["composite"]), (z + zneg) / 2 - f * 3)


def test_comparisons_and_logic(data, frame):
    f, g = frame["f"], frame["g"]
    out = compute(data, gt=F > 0, ge=F >= -0.01, lt=F < G, le=F <= 0.0, ne=F != 0, eq=F.eq(0),
                  both=(F > 0) & (G > 20), either=(F > 0.05) | (F < -0.05), inverse=~(F > 0),
                  isnan=F.isnan(), notnan=F.notnan(), isnull=F.isnull(),
                  finite=(F / (F * 0)).isfinite(), finite2=F.isfinite())
    with np.errstate(all="ignore"):
        expected = {
            "gt": f > 0, "ge": f >= -0.01, "lt": f < g, "le": f <= 0, "ne": f != 0,
            "eq": f == 0, "both": (f > 0) & (g > 20), "either": (f > 0.05) | (f < -0.05),
            "inverse": ~(f > 0), "isnan": f.isna(), "notnan": f.notna(), "isnull": f.isna(),
            "finite": np.isfinite(f / (f * 0)), "finite2": np.isfinite(f),
        }
    for name, reference in expected.items():
        assert out[name].dtype == bool
        np.testing.assert_array_equal(out[name].to_numpy(), reference.to_numpy(), err_msg=name)
    assert (out["ne"] == f.isna() | (f != 0)).all()  # NaN != 0 is True, as in numpy


def test_fillna_and_clip(data, frame):
    f, g, mask = frame["f"], frame["g"], frame["mask"]
    out = compute(data, zero=F.fillna(0), other=F.fillna(G), clipped=F.clip(-0.02, 0.03),
                  masked=F.clip(-0.02, 0.03, mask=MASK), one_side=F.clip(-np.inf, 0.0))
    assert_series(out["zero"], f.fillna(0.0))
    assert_series(out["other"], f.fillna(g))
    assert_series(out["clipped"], f.clip(-0.02, 0.03))
    assert_series(out["masked"], f.clip(-0.02, 0.03).where(mask))
    assert_series(out["one_side"], f.clip(upper=0.0))


# --- cross-sectional, against pandas groupby ---------------------------------------------


def _eligible(frame: pd.DataFrame, mask: bool, groupby: bool) -> pd.Series:
    keep = frame["f"].notna()
    if mask:
        keep &= frame["mask"]
    if groupby:
        keep &= frame["sector"] != -1
    return keep


def _groups(frame: pd.DataFrame, keep: pd.Series, groupby: bool) -> list:
    dates = frame.index.get_level_values("date")[keep.to_numpy()]
    return [dates, frame["sector"][keep].to_numpy()] if groupby else [dates]


@pytest.mark.parametrize("method", ["ordinal", "min", "max", "dense", "average"])
@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize(("mask", "groupby"), [(False, False), (True, False), (False, True),
                                               (True, True)])
def test_rank(data, frame, method, ascending, mask, groupby):
    term = F.rank(method=method, ascending=ascending, mask=MASK if mask else None,
                  groupby=SECTOR if groupby else None)
    ours = compute(data, r=term)["r"]
    keep = _eligible(frame, mask, groupby)
    pandas_method = "first" if method == "ordinal" else method
    kept = frame["f"][keep]
    ranks = kept.groupby(_groups(frame, keep, groupby)).rank(method=pandas_method,
                                                              ascending=ascending)
    assert_series(ours, ranks.reindex(frame.index))


@pytest.mark.parametrize("how", ["demean", "zscore"])
@pytest.mark.parametrize(("mask", "groupby"), [(False, False), (True, False), (False, True),
                                               (True, True)])
def test_demean_and_zscore(data, frame, how, mask, groupby):
    term = getattr(F, how)(mask=MASK if mask else None, groupby=SECTOR if groupby else None)
    ours = compute(data, x=term)["x"]
    keep = _eligible(frame, mask, groupby)
    kept = frame["f"][keep]
    grouped = kept.groupby(_groups(frame, keep, groupby))
    if how == "demean":
        expected = kept - grouped.transform("mean")
    else:
        expected = (kept - grouped.transform("mean")) / grouped.transform("std", ddof=0)
    assert_series(ours, expected.reindex(frame.index), rtol=1e-10)


def _zipline_winsorize(row: np.ndarray, low: float, high: float) -> np.ndarray:
    """Zipline's definition (``scipy.stats.mstats.winsorize`` cut-offs), one group."""
    a = row.copy()
    nan_count = int(np.isnan(row).sum())
    n = a.size - nan_count
    idx = a.argsort()
    if low > 0:
        cut = int(low * n)
        a[idx[:cut]] = a[idx[cut]]
    if high < 1:
        cut = math.ceil(n * high)
        if cut < n:
            a[idx[cut:(-nan_count if nan_count else None)]] = a[idx[cut - 1]]
    return a


@pytest.mark.parametrize(("mask", "groupby", "low", "high"), quick_first(itertools.product(
    [(True, True), (False, False)], [(0.1, 0.9), (0.0, 0.75), (0.25, 1.0), (0.3, 0.31)])))
def test_winsorize(data, frame, low, high, mask, groupby):
    ours = first_year(compute(data, w=F.winsorize(low, high, mask=MASK if mask else None,
                                                  groupby=SECTOR if groupby else None))["w"])
    frame = first_year(frame)
    keep = frame["mask"] if mask else pd.Series(True, index=frame.index)
    if groupby:
        keep = keep & (frame["sector"] != -1)
    kept = frame["f"][keep]
    keys = _groups(frame, keep, groupby)
    expected = kept.groupby(keys).transform(
        lambda x: pd.Series(_zipline_winsorize(x.to_numpy(), low, high), index=x.index))
    assert_series(ours, expected.reindex(frame.index))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize(("mask", "groupby"), [(False, False), (True, False), (True, True)])
def test_top_and_bottom(data, frame, n, mask, groupby):
    kwargs = {"mask": MASK if mask else None, "groupby": SECTOR if groupby else None}
    out = compute(data, top=F.top(n, **kwargs), bottom=F.bottom(n, **kwargs))
    keep = _eligible(frame, mask, groupby)
    kept = frame["f"][keep]
    keys = _groups(frame, keep, groupby)
    top = kept.groupby(keys).rank(method="first", ascending=False) <= n
    bottom = kept.groupby(keys).rank(method="first", ascending=True) <= n
    np.testing.assert_array_equal(out["top"], top.reindex(frame.index, fill_value=False))
    np.testing.assert_array_equal(out["bottom"], bottom.reindex(frame.index, fill_value=False))
    per_date = out["top"].groupby(level="date").sum()
    assert per_date.max() <= n * (4 if groupby else 1)


@pytest.mark.parametrize(("low", "high", "mask"), [(10, 90, False), (0, 50, True),
                                                   (33.3, 100, True)])
def test_percentile_between(data, frame, low, high, mask):
    ours = first_year(compute(data, p=F.percentile_between(low, high,
                                                           mask=MASK if mask else None))["p"])
    frame = first_year(frame)
    values = frame["f"].where(frame["mask"]) if mask else frame["f"]
    by_date = values.groupby(level="date")
    lower = by_date.transform(lambda x: np.nanpercentile(x, low))
    upper = by_date.transform(lambda x: np.nanpercentile(x, high))
    np.testing.assert_array_equal(ours, (values >= lower) & (values <= upper))


@pytest.mark.parametrize(("mask", "bins"), quick_first(itertools.product([True, False],
                                                                        [5, 2, 4, 10])))
def test_quantiles_follow_qcut(data, frame, bins, mask):
    ours = first_year(compute(data, q=F.quantiles(bins, mask=MASK if mask else None))["q"])
    frame = first_year(frame)
    values = frame["f"].where(frame["mask"]) if mask else frame["f"]

    def qcut(x: pd.Series) -> pd.Series:
        labels = pd.qcut(x, bins, labels=False)
        return labels.fillna(-1).astype(int)

    expected = values.groupby(level="date", group_keys=False).apply(qcut)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, expected.reindex(frame.index))
    assert F.quintiles() is F.quantiles(5)
    assert F.deciles() is F.quantiles(10)
    assert F.quartiles() is F.quantiles(4)


def test_classifier_filters(data, frame):
    out = compute(data, two=SECTOR.eq(2), not_two=SECTOR != 2, some=SECTOR.element_of([0, 3]),
                  missing=SECTOR.isnull(), present=SECTOR.notnull())
    sector = frame["sector"]
    np.testing.assert_array_equal(out["two"], sector == 2)
    np.testing.assert_array_equal(out["not_two"], (sector != 2) & (sector != -1))
    np.testing.assert_array_equal(out["some"], sector.isin([0, 3]))
    np.testing.assert_array_equal(out["missing"], sector == -1)
    np.testing.assert_array_equal(out["present"], sector != -1)


# --- the kernels on random arrays ---------------------------------------------------------

_cells = st.one_of(st.integers(-3, 3).map(float), st.just(np.nan),
                   st.floats(-5, 5, allow_nan=False, width=32))


def _matrices():
    return st.tuples(st.integers(1, 6), st.integers(1, 9)).flatmap(
        lambda shape: st.tuples(arrays(np.float64, shape, elements=_cells),
                                arrays(np.bool_, shape),
                                arrays(np.int64, shape, elements=st.integers(-1, 2))))


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices(), st.sampled_from(["ordinal", "min", "max", "dense", "average"]),
       st.booleans())
def test_rank_kernel_matches_scipy(matrices, method, ascending):
    values, valid, labels = matrices
    valid = valid | (labels == 2)  # keep a fair share of valid cells
    got = rank_rows(values, valid & (labels != -1), method, ascending, labels)
    for row in range(values.shape[0]):
        expected = np.full(values.shape[1], np.nan)
        for label in (0, 1, 2):
            cells = valid[row] & (labels[row] == label) & ~np.isnan(values[row])
            if cells.any():
                x = values[row][cells]
                expected[cells] = stats.rankdata(x if ascending else -x, method=method)
        np.testing.assert_array_equal(got[row], expected)


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices(), st.floats(0, 0.6), st.floats(0.4, 1.0))
def test_winsorize_kernel_matches_zipline(matrices, low, high):
    values, valid, labels = matrices
    if low >= high:
        return
    got = winsorize_rows(values, valid, low, high, labels)
    for row in range(values.shape[0]):
        expected = np.full(values.shape[1], np.nan)
        for label in np.unique(labels[row]):
            cells = valid[row] & (labels[row] == label)
            if cells.any():
                expected[cells] = _zipline_winsorize(values[row][cells], low, high)
        np.testing.assert_array_equal(got[row], expected)


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices())
def test_zscore_kernel_matches_numpy(matrices):
    values, valid, labels = matrices
    got = zscore_rows(values, valid, labels)
    with np.errstate(all="ignore"):
        for row in range(values.shape[0]):
            for label in np.unique(labels[row]):
                cells = valid[row] & (labels[row] == label)
                x = values[row][cells]
                expected = (x - np.nanmean(x)) / np.nanstd(x) if x.size and not np.isnan(
                    x).all() else np.full(x.size, np.nan)
                np.testing.assert_allclose(got[row][cells], expected, rtol=1e-12, atol=1e-12)
            assert np.isnan(got[row][~valid[row]]).all()


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices(), st.integers(1, 6))
def test_quantile_kernel_matches_qcut_without_repeated_edges(matrices, bins):
    values, valid, _ = matrices
    got = quantile_labels(values, valid, bins)
    for row in range(values.shape[0]):
        cells = valid[row] & ~np.isnan(values[row])
        x = pd.Series(np.where(cells, values[row], np.nan))
        try:
            expected = pd.qcut(x, bins, labels=False).fillna(-1).astype(int).to_numpy()
        except ValueError:  # repeated edges: qcut refuses, the kernel takes the lowest bin
            assert set(got[row][cells]) <= set(range(bins))
            continue
        np.testing.assert_array_equal(got[row], expected)


def _ordinal_top(values, valid, n, ascending):
    """The cells scipy's ordinal ranks put at ``n`` or better, row by row (NaN and invalid
    cells never)."""
    expected = np.zeros(values.shape, dtype=bool)
    for row in range(values.shape[0]):
        cells = valid[row] & ~np.isnan(values[row])
        if cells.any():
            x = values[row][cells]
            expected[row, cells] = stats.rankdata(x if ascending else -x, method="ordinal") <= n
    return expected


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices(), st.integers(1, 10), st.booleans())
def test_top_kernel_matches_scipy_ordinal_ranks(matrices, n, ascending):
    """top_rows selects (by partition) the cells scipy's ordinal ranks put at n or better:
    ties at the boundary go to the leftmost columns; NaN and invalid cells never."""
    values, valid, _ = matrices
    got = top_rows(values, valid, n, ascending)
    np.testing.assert_array_equal(got, _ordinal_top(values, valid, n, ascending))


@settings(max_examples=40, deadline=None)
@given(_matrices(), st.integers(1, 3))
def test_top_kernel_with_many_ties(matrices, n):
    """Rows of a few repeated values: the boundary tie is split by column order."""
    values, valid, _ = matrices
    values = np.round(values / 3)  # -1, 0, 1 (and NaN): many ties
    got = top_rows(values, valid, n)
    ranks = rank_rows(values, valid, "ordinal", ascending=False)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(got, ranks <= n)


@pytest.mark.slow  # seconds: 150 generated cases (quick loop: -m 'not slow')
@settings(max_examples=150, deadline=None)
@given(_matrices(), st.booleans())
def test_ungrouped_zscore_and_demean_kernels_match_numpy(matrices, all_valid):
    values, valid, _ = matrices
    if all_valid:
        valid = np.ones_like(valid)
    z, d = zscore_rows(values, valid), demean_rows(values, valid)
    with np.errstate(all="ignore"):
        for row in range(values.shape[0]):
            cells = valid[row] & ~np.isnan(values[row])
            x = values[row][cells]
            if x.size:
                np.testing.assert_allclose(z[row][cells], (x - x.mean()) / x.std(), rtol=1e-12,
                                           atol=1e-12)
                np.testing.assert_allclose(d[row][cells], x - x.mean(), rtol=1e-12, atol=1e-12)
            assert np.isnan(z[row][~cells]).all() and np.isnan(d[row][~cells]).all()


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("n_cols", [1, 2, 7, 600])
def test_rank_kernel_on_values_a_few_ulps_apart(n_cols, compiled, monkeypatch):
    """Ordinal ranks sort values by integer images whose lowest bits hold the column:
    values equal but for those bits, signed zeros, infinities and huge or tiny
    magnitudes must still rank as scipy ranks them (numpy and compiled kernels)."""
    if compiled:
        from foldwise.pipeline import _crosssection

        monkeypatch.setattr(_crosssection, "COMPILED_MIN_CELLS", 0)
    rng = np.random.default_rng(n_cols)
    base = np.array([1.0, -1.0, 0.0, -0.0, 1e-300, -1e-300, 1e300, np.inf, -np.inf, 5e-324])
    rows = []
    for _ in range(40):
        centre = rng.choice(base)
        steps = rng.integers(-3, 4, n_cols)
        row = np.array([centre] * n_cols)
        for i, step in enumerate(steps):
            for _ in range(abs(int(step))):
                row[i] = np.nextafter(row[i], np.inf if step > 0 else -np.inf)
        rows.append(row)
    rows.append(rng.normal(size=n_cols))
    rows.append(np.where(rng.random(n_cols) < 0.3, np.nan, rng.normal(size=n_cols)))
    zeros = rng.normal(size=n_cols)
    zeros[[0, -1]] = 0.0, -0.0  # equal values: -0.0 (last column) ranks after 0.0
    rows.append(zeros)
    values = np.array(rows)
    valid = rng.random(values.shape) < 0.9
    valid[-1] = True
    for ascending in (True, False):
        got = rank_rows(values, valid, "ordinal", ascending)
        picked = top_rows(values, valid, 3, ascending)
        for row in range(values.shape[0]):
            cells = valid[row] & ~np.isnan(values[row])
            expected = np.full(n_cols, np.nan)
            x = values[row][cells]
            expected[cells] = stats.rankdata(x if ascending else -x, method="ordinal")
            np.testing.assert_array_equal(got[row], expected)
            with np.errstate(invalid="ignore"):
                np.testing.assert_array_equal(picked[row], expected <= 3)


def test_compiled_cross_sections_match_the_numpy_ones(monkeypatch):
    """Large arrays take compiled kernels (numba): the same ordinal ranks, and zscores
    and demeaned values equal to rounding (their sums run in column order)."""
    from foldwise.pipeline import _crosssection

    rng = np.random.default_rng(11)
    cases = []
    for case in range(60):
        shape = (int(rng.integers(1, 12)), int(rng.integers(1, 40)))
        values = rng.normal(size=shape)
        if case % 2:
            values = np.round(values * 2) / 2  # ties
        values[rng.random(shape) < 0.15] = np.nan
        if case % 5 == 0:
            values[0] = np.nan  # a row without data
        valid = rng.random(shape) < (0.8 if case % 3 else 1.1)
        cases.append((values, valid))
    with np.errstate(all="ignore"):
        expected = [(rank_rows(v, m, "ordinal", True), rank_rows(v, m, "ordinal", False),
                     zscore_rows(v, m), demean_rows(v, m)) for v, m in cases]
        monkeypatch.setattr(_crosssection, "COMPILED_MIN_CELLS", 0)
        for (values, valid), (up, down, z, d) in zip(cases, expected, strict=True):
            np.testing.assert_array_equal(rank_rows(values, valid, "ordinal", True), up)
            np.testing.assert_array_equal(rank_rows(values, valid, "ordinal", False), down)
            np.testing.assert_allclose(zscore_rows(values, valid), z, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(demean_rows(values, valid), d, rtol=1e-13, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(_matrices(), st.integers(1, 12), st.booleans(), st.booleans())
def test_compiled_top_matches_scipy_ordinal_ranks(matrices, n, ascending, ties):
    """The compiled heap pass picks the cells scipy's ordinal ranks put at n or better
    (ties by column, NaN and invalid cells never), whatever n."""
    from foldwise.pipeline import _compiled

    values, valid, _ = matrices
    if ties:
        values = np.round(values / 3)
    got = _compiled.top_cells(values, valid, n, ascending)
    np.testing.assert_array_equal(got, _ordinal_top(values, valid, n, ascending))


def test_compiled_top_on_rows_in_order_and_signed_zeros(monkeypatch):
    """Rows already sorted (every cell enters the heap) or reversed, -0.0 tied with 0.0:
    top_rows takes the compiled pass on large arrays and picks what numpy's selection
    picks."""
    from foldwise.pipeline import _crosssection

    rng = np.random.default_rng(4)
    values = np.sort(rng.normal(size=(30, 50)), axis=1)
    values[10:20] = values[10:20, ::-1]
    values[20:] = np.round(values[20:])
    values[25, :6] = [0.0, -0.0, 0.0, -0.0, np.inf, -np.inf]
    valid = rng.random(values.shape) < 0.9
    expected = {(n, up): top_rows(values, valid, n, up) for n in (1, 3, 10) for up in (1, 0)}
    monkeypatch.setattr(_crosssection, "COMPILED_MIN_CELLS", 0)
    for (n, up), picked in expected.items():
        np.testing.assert_array_equal(top_rows(values, valid, n, bool(up)), picked)


def _column_order_zscore(values: np.ndarray, valid: np.ndarray, scale: bool) -> np.ndarray:
    """The reference: each row's usable cells summed one by one in column order."""
    out = np.full(values.shape, np.nan)
    for row in range(values.shape[0]):
        usable = [col for col in range(values.shape[1])
                  if valid[row, col] and not math.isnan(values[row, col])]
        total = 0.0
        for col in usable:
            total += float(values[row, col])
        mean = total / len(usable) if usable else math.nan
        squares = 0.0
        for col in usable:  # d * d, as numpy's std: libm's pow(d, 2) may differ by an ulp
            deviation = float(values[row, col]) - mean
            squares += deviation * deviation
        divisor = math.sqrt(squares / len(usable)) if usable else math.nan
        for col in usable:
            deviation = float(values[row, col]) - mean
            out[row, col] = (deviation / divisor if divisor else
                             math.copysign(math.inf, deviation) if deviation else math.nan
                             ) if scale else deviation
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 11), st.integers(1, 9), st.integers(0, 2**32 - 1), st.booleans())
def test_compiled_zscore_sums_each_row_in_column_order(n_rows, n_cols, seed, holes):
    """The compiled zscore/demean (four rows at a time when they are complete) equals,
    bit for bit, the row sums taken cell by cell in column order."""
    from foldwise.pipeline import _compiled

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_rows, n_cols)) * 10.0 ** rng.integers(-3, 4, size=(n_rows, 1))
    valid = np.ones(values.shape, dtype=bool)
    if holes:
        values[rng.random(values.shape) < 0.15] = np.nan
        valid = rng.random(values.shape) < 0.85
    with np.errstate(all="ignore"):
        for scale in (True, False):
            got = _compiled.normalize_rows(values, valid, scale)
            assert np.array_equal(got, _column_order_zscore(values, valid, scale),
                                  equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(_matrices(), st.booleans(), st.integers(0, 2**32 - 1))
def test_ordinal_ranks_at_cells_equal_the_whole_ranks(matrices, ascending, seed):
    """Ranks counted at chosen cells (a screened run's outputs) are the whole rows' ordinal
    ranks there: ties by column, NaN for NaN and invalid cells."""
    from foldwise.pipeline import _compiled

    values, valid, _ = matrices
    whole = rank_rows(values, valid, "ordinal", ascending)
    keep = np.random.default_rng(seed).random(values.size) < 0.5
    rows, cols = np.divmod(np.flatnonzero(keep), values.shape[1])
    got = _compiled.ordinal_rank_cells(values, valid, ascending, rows, cols)
    np.testing.assert_array_equal(got, whole[rows, cols])
