"""Metrics against independent computations (pandas, scipy, brute force) and edge cases."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from foldwise import metrics

# Returns as data has them: no sub-1e-9 specks whose ratios only test float underflow.
returns_lists = st.lists(
    st.floats(min_value=-0.2, max_value=0.2, allow_nan=False, allow_infinity=False).map(
        lambda x: 0.0 if abs(x) < 1e-9 else x),
    min_size=3, max_size=200,
).filter(lambda xs: statistics.pstdev(xs) > 1e-6)


def brute_force_drawdown(returns):
    wealth, worst = [1.0], 0.0
    for r in returns:
        wealth.append(wealth[-1] * (1 + r))
    for j in range(len(wealth)):
        for i in range(j):
            worst = min(worst, wealth[j] / wealth[i] - 1)
    return worst


@given(returns_lists)
def test_against_independent_formulas(xs):
    s = pd.Series(xs)
    n = len(xs)
    assert metrics.total_return(xs) == pytest.approx(math.prod(1 + x for x in xs) - 1,
                                                     rel=1e-9, abs=1e-12)
    growth = math.exp(sum(math.log1p(x) for x in xs))
    assert metrics.annual_return(xs) == pytest.approx(growth ** (252 / n) - 1, rel=1e-8, abs=1e-12)
    assert metrics.annual_volatility(xs) == pytest.approx(statistics.stdev(xs) * math.sqrt(252),
                                                          rel=1e-9)
    assert metrics.sharpe(xs) == pytest.approx(
        statistics.fmean(xs) / statistics.stdev(xs) * math.sqrt(252), rel=1e-8, abs=1e-10)
    assert metrics.max_drawdown(xs) == pytest.approx(brute_force_drawdown(xs), abs=1e-12)
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in xs) / n)
    expected_sortino = statistics.fmean(xs) * math.sqrt(252) / downside if downside else math.nan
    assert metrics.sortino(xs) == pytest.approx(expected_sortino, rel=1e-8, abs=1e-10, nan_ok=True)
    low, high = s.quantile(0.05), s.quantile(0.95)  # pandas' linear interpolation
    expected_tail = abs(high) / abs(low) if low != 0 else math.nan
    assert metrics.tail_ratio(xs) == pytest.approx(expected_tail, rel=1e-9, nan_ok=True)
    gains, losses = sum(x for x in xs if x > 0), -sum(x for x in xs if x < 0)
    assert metrics.profit_factor(xs) == pytest.approx(gains / losses if losses else math.nan,
                                                      rel=1e-9, nan_ok=True)
    active = [x for x in xs if x != 0]
    assert metrics.win_rate(xs) == pytest.approx(
        sum(x > 0 for x in active) / len(active) if active else math.nan, nan_ok=True)


@given(returns_lists)
def test_probabilistic_sharpe_ratio_against_scipy(xs):
    a = np.array(xs)
    sr = a.mean() / a.std(ddof=1)
    skew = sps.skew(a)                        # population moments (bias=True)
    kurt = sps.kurtosis(a, fisher=False)      # non-excess
    var = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    expected = sps.norm.cdf(sr * math.sqrt(len(a) - 1) / math.sqrt(var)) if var > 0 else math.nan
    assert metrics.probabilistic_sharpe_ratio(a) == pytest.approx(expected, abs=1e-10, nan_ok=True)


def test_probabilistic_sharpe_ratio_behaves_as_a_probability():
    rng = np.random.default_rng(1)
    good = rng.normal(0.001, 0.01, 2000)
    assert metrics.probabilistic_sharpe_ratio(good) > 0.95
    assert metrics.probabilistic_sharpe_ratio(-good) < 0.05
    # a higher benchmark is harder to beat
    assert (metrics.probabilistic_sharpe_ratio(good, benchmark_sharpe=0.1)
            < metrics.probabilistic_sharpe_ratio(good))
    # for normal returns with SR = 0 against SR* = 0 the statistic is Phi(0) = 0.5
    symmetric = np.array([0.01, -0.01] * 50)
    assert metrics.probabilistic_sharpe_ratio(symmetric) == pytest.approx(0.5)


def test_hand_made_values():
    assert metrics.total_return([0.1, -0.1]) == pytest.approx(-0.01)
    assert metrics.max_drawdown([0.1, -0.5]) == pytest.approx(-0.5)
    assert metrics.max_drawdown([-0.1, 0.05]) == pytest.approx(-0.1)  # the start is a peak
    assert metrics.max_drawdown([0.01, 0.02]) == 0.0
    assert metrics.annual_return([0.01] * 252) == pytest.approx(1.01**252 - 1)
    assert metrics.annual_return([0.01] * 126, periods_per_year=252) == pytest.approx(1.01**252 - 1)
    assert metrics.calmar([0.1, -0.5, 0.2]) == pytest.approx(
        metrics.annual_return([0.1, -0.5, 0.2]) / 0.5)
    assert metrics.win_rate([0.0, 0.1, -0.1, 0.2]) == pytest.approx(2 / 3)
    assert metrics.profit_factor([0.3, -0.1, -0.05]) == pytest.approx(2.0)
    assert metrics.sharpe([0.01, 0.03], risk_free=0.01) == pytest.approx(
        0.01 / statistics.stdev([0.0, 0.02]) * math.sqrt(252))
    assert metrics.annual_return([-1.0, 0.5]) == -1.0  # wiped out
    assert metrics.average_turnover([0.0, 1.0, 0.5]) == pytest.approx(0.5)
    assert metrics.n_trades([[0.0, 0.5], [-0.5, 0.0]]) == 2


# Expected value per (metric, series); NaN where the metric is undefined.
EDGE_CASES = {
    "empty": ([], {}),
    "all NaN": ([np.nan, np.nan], {}),
    "all zero": ([0.0, 0.0, 0.0], {"annual_volatility": 0.0}),
    "constant gain": ([0.01] * 5, {"annual_volatility": 0.0, "win_rate": 1.0, "tail_ratio": 1.0}),
}


@pytest.mark.parametrize("name", [
    "sharpe", "sortino", "annual_volatility", "calmar", "profit_factor", "tail_ratio",
    "probabilistic_sharpe_ratio", "win_rate"])
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_give_nan_or_a_documented_value(name, case):
    series, defined = EDGE_CASES[case]
    value = getattr(metrics, name)(series)
    assert isinstance(value, float)
    assert value == pytest.approx(defined.get(name, math.nan), abs=1e-12, nan_ok=True)


def test_nan_entries_are_dropped():
    assert metrics.sharpe([0.01, np.nan, -0.02, 0.03]) == pytest.approx(
        metrics.sharpe([0.01, -0.02, 0.03]))
    assert math.isnan(metrics.total_return([np.nan]))


@given(returns_lists)
def test_summarize_equals_the_individual_functions(xs):
    summary = metrics.summarize(xs, turnover=[0.5] * len(xs), trades=7)
    assert list(summary) == list(metrics.METRICS)
    for name in metrics.METRICS:
        if name == "average_turnover":
            expected = 0.5
        elif name == "n_trades":
            expected = 7.0
        else:
            expected = getattr(metrics, name)(xs)
        assert summary[name] == pytest.approx(expected, rel=1e-12, abs=1e-15, nan_ok=True), name
        assert isinstance(summary[name], float)


def test_summarize_of_nothing_is_all_nan():
    summary = metrics.summarize([])
    assert all(math.isnan(v) for v in summary.values())


# --- the moments kernel -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_moments_kernel_against_scipy_and_numpy_with_nans(seed):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, 300) * 0.01 + 0.0004
    r[rng.choice(300, 25, replace=False)] = np.nan
    clean = r[~np.isnan(r)]
    m = metrics.return_moments(r)
    assert m.n == clean.size == 275
    assert m.total == pytest.approx(clean.sum(), rel=1e-12)
    assert m.mean == pytest.approx(np.mean(clean), rel=1e-12)
    assert m.std == pytest.approx(np.std(clean, ddof=1), rel=1e-12)
    assert m.skew == pytest.approx(sps.skew(clean), rel=1e-9)
    assert m.kurtosis == pytest.approx(sps.kurtosis(clean, fisher=False), rel=1e-9)
    assert m.sharpe == pytest.approx(np.mean(clean) / np.std(clean, ddof=1), rel=1e-12)
    assert m.skew == pytest.approx(sps.skew(r, nan_policy="omit"), rel=1e-9)


def test_moments_kernel_edge_cases():
    assert metrics.return_moments([]).n == 0
    assert math.isnan(metrics.return_moments([]).mean)
    one = metrics.return_moments([0.01, np.nan])
    assert (one.n, one.mean) == (1, 0.01) and math.isnan(one.std)
    two = metrics.return_moments([0.01, 0.03])
    assert two.std == pytest.approx(np.std([0.01, 0.03], ddof=1)) and math.isnan(two.skew)
    flat = metrics.return_moments([0.01] * 10)  # no dispersion
    assert math.isnan(flat.sharpe) and math.isnan(flat.skew) and math.isnan(flat.kurtosis)


def test_every_metric_takes_its_moments_from_the_kernel(monkeypatch):
    """summarize, the per-metric functions and the overfitting statistics share one kernel."""
    from foldwise import stats

    calls = []
    kernel = metrics._moments

    def counted(r):
        calls.append(r.size)
        return kernel(r)

    monkeypatch.setattr(metrics, "_moments", counted)
    r = np.random.default_rng(3).normal(0.001, 0.01, 100)
    for compute in (lambda: metrics.summarize(r), lambda: metrics.sharpe(r),
                    lambda: metrics.annual_volatility(r),
                    lambda: metrics.probabilistic_sharpe_ratio(r), lambda: stats.moments(r),
                    lambda: stats.deflated_sharpe_ratio(r, n_trials=10, sharpe_variance=1e-3),
                    lambda: stats.min_track_record_length(r)):
        calls.clear()
        compute()
        assert calls == [100]


# --- one metric by name ---------------------------------------------------------------------

series_with_gaps = st.lists(
    st.one_of(st.floats(min_value=-0.3, max_value=0.3, allow_nan=False),
              st.just(0.0), st.just(float("nan"))),
    min_size=0, max_size=120)


@given(series_with_gaps, st.permutations(list(metrics.METRICS)),
       st.sampled_from([252, 12, 365.25]))
def test_each_named_metric_equals_the_same_entry_of_the_full_summary(xs, order, periods):
    """summarize(names=...) computes only what the named metrics need; each value is the
    full summary's exactly, whatever the order or company it is asked in."""
    turnover = [abs(x) if x == x else x for x in xs]  # NaN entries in turnover too
    full = metrics.summarize(xs, turnover=turnover, trades=5, periods_per_year=periods)
    for name in order:
        alone = metrics.summarize(xs, turnover=turnover, trades=5, periods_per_year=periods,
                                  names=[name])
        assert list(alone) == [name]
        assert alone[name] == pytest.approx(full[name], nan_ok=True, rel=0, abs=0), name
    some = metrics.summarize(xs, turnover=turnover, trades=5, periods_per_year=periods,
                             names=order[:4] + order[:2])
    assert list(some) == order[:4]
    assert some == pytest.approx({k: full[k] for k in order[:4]}, nan_ok=True, rel=0, abs=0)


@given(series_with_gaps)
def test_average_turnover_and_n_trades_against_numpy(xs):
    values = np.array(xs, dtype=float)
    clean = values[~np.isnan(values)]
    expected = float(np.mean(np.abs(clean))) if clean.size else math.nan
    assert metrics.average_turnover(np.abs(values)) == pytest.approx(expected, rel=1e-15,
                                                                     nan_ok=True)
    summary = metrics.summarize(values, weight_changes=values, names=["n_trades"])
    assert summary == {"n_trades": float(np.count_nonzero(np.nan_to_num(values)))}


def test_unknown_metric_name_is_refused_with_the_closest_one():
    from foldwise.errors import UnknownMetricError

    with pytest.raises(UnknownMetricError, match=r"unknown metric 'sortin'\. Did you mean "
                                                 r"'sortino'\? The metrics are: sharpe, "):
        metrics.summarize([0.01, 0.02, -0.01], names=["sharpe", "sortin"])
    with pytest.raises(KeyError):
        metrics.summarize([0.01, 0.02, -0.01], names=["nothing_like_it"])
    assert metrics.summarize([0.01, 0.02, -0.01], names="win_rate") == {"win_rate": 2 / 3}
