"""Haircut Sharpe ratio (Harvey & Liu 2015) and minimum backtest length (Bailey, Borwein,
López de Prado & Zhu 2014): the papers' examples, independent formulas, and statsmodels'
multiple-testing adjustments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from foldwise.snooping import (
    SnoopingError,
    haircut_sharpe_ratio,
    min_backtest_length,
)
from foldwise.stats import EULER_GAMMA


def lo_corrected(sharpe: float, rho: float, q: int) -> float:
    """Lo (2002), eq. (17) of 'The Statistics of Sharpe Ratios', as Harvey & Liu use it."""
    eta = 1 + 2 * rho / (1 - rho) * (1 - (1 - rho**q) / (q * (1 - rho)))
    return sharpe / math.sqrt(eta)


# --- Harvey & Liu ----------------------------------------------------------------------------

def test_harvey_liu_example():
    """The example run of the program published with Harvey & Liu, "Backtesting" (JPM
    42(1), 2015), Haircut_SR.m: an annualized Sharpe ratio of 1 from 120 monthly returns
    with autocorrelation 0.1 (0.912 once corrected), 100 tests, average correlation 0.4.
    Its outputs: adjusted p-values Bonferroni 0.465, Holm 0.409, BHY 0.174, average
    0.348 (the figures mlfinlab's port records for these inputs).

    Bonferroni is deterministic and is reproduced to the third decimal. Holm and BHY are
    medians over 2000 simulations of the other tests; the program counts those as 100
    simulated tests plus this one (101 for Holm and BHY against 100 for Bonferroni),
    foldwise counts the tests once, so n_trials=101 reproduces its Holm and BHY. Their
    medians move by about +-0.005 between seeds: tolerance 0.012.
    """
    result = haircut_sharpe_ratio(1.0, 120, 100, periods_per_year=12, autocorrelation=0.1,
                                  correlation=0.4, seed=0)
    assert result.sharpe == pytest.approx(lo_corrected(1.0, 0.1, 12), rel=1e-12)
    assert round(result.sharpe, 3) == 0.912
    t = result.sharpe * math.sqrt(10)
    assert result.t_stat == pytest.approx(t)
    assert result.pvalue == pytest.approx(2 * stats.t.sf(t, 119))
    assert round(result.adjusted_pvalues["bonferroni"], 3) == 0.465
    # the Sharpe ratio an adjusted p-value corresponds to: the t quantile over sqrt(years)
    expected_bon = stats.t.isf(result.adjusted_pvalues["bonferroni"] / 2, 119) / math.sqrt(10)
    assert result.haircut_sharpes["bonferroni"] == pytest.approx(expected_bon)
    assert result.haircuts["bonferroni"] == pytest.approx(1 - expected_bon / result.sharpe)
    program = haircut_sharpe_ratio(1.0, 120, 101, periods_per_year=12, autocorrelation=0.1,
                                   correlation=0.4, seed=0)
    assert program.adjusted_pvalues["holm"] == pytest.approx(0.409, abs=0.012)
    assert program.adjusted_pvalues["bhy"] == pytest.approx(0.174, abs=0.012)
    average = (0.465 + program.adjusted_pvalues["holm"] + program.adjusted_pvalues["bhy"]) / 3
    assert average == pytest.approx(0.348, abs=0.01)
    # the methods' order: Bonferroni is the strictest, BHY (a false discovery rate) the
    # most lenient
    for r in (result, program):
        p = r.adjusted_pvalues
        assert p["bhy"] < p["holm"] <= p["bonferroni"]
        assert r.haircut_sharpes["bonferroni"] <= r.haircut_sharpes["holm"] \
            < r.haircut_sharpes["bhy"] < r.sharpe


def test_given_other_tests_match_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(3)
    n_obs, ppy = 750, 252
    others = rng.normal(0.3, 0.6, size=39)
    best = 1.4
    result = haircut_sharpe_ratio(best, n_obs, 40, periods_per_year=ppy, other_sharpes=others)
    t_all = np.abs(np.concatenate([[best], others])) * math.sqrt(n_obs / ppy)
    p_all = 2 * stats.t.sf(t_all, n_obs - 1)
    assert result.pvalue == pytest.approx(p_all[0])
    for ours, theirs in (("bonferroni", "bonferroni"), ("holm", "holm"), ("bhy", "fdr_by")):
        adjusted = multitest.multipletests(p_all, method=theirs)[1][0]
        assert result.adjusted_pvalues[ours] == pytest.approx(adjusted, rel=1e-10), ours
    assert result.others == "given"
    assert result.n_simulations == 0
    table = result.table()
    assert list(table.index) == ["bonferroni", "holm", "bhy", "average"]
    assert "given" not in result.summary() and "other trials" in result.summary()


def test_more_trials_cut_more():
    cuts = [haircut_sharpe_ratio(1.2, 2520, n, seed=1, n_simulations=300).haircuts["bonferroni"]
            for n in (1, 10, 100, 1000)]
    assert cuts[0] == pytest.approx(0.0, abs=1e-12)  # one test: nothing to adjust
    assert cuts[0] < cuts[1] < cuts[2] < cuts[3] < 1.0
    # a Sharpe ratio far beyond what luck gives is barely cut (the haircut is non-linear)
    strong = haircut_sharpe_ratio(3.0, 2520, 100, n_simulations=300).haircuts["bonferroni"]
    weak = haircut_sharpe_ratio(0.6, 2520, 100, n_simulations=300).haircuts["bonferroni"]
    assert strong < 0.25 < weak


def test_simulated_others_are_seeded():
    one = haircut_sharpe_ratio(0.9, 500, 50, correlation=0.3, seed=7, n_simulations=300)
    two = haircut_sharpe_ratio(0.9, 500, 50, correlation=0.3, seed=7, n_simulations=300)
    assert one.adjusted_pvalues == two.adjusted_pvalues
    assert "300 simulations" in one.summary()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sharpe": -0.5}, "nothing to haircut"),
    ({"n_obs": 2}, "n_obs"),
    ({"n_trials": 0}, "n_trials"),
    ({"autocorrelation": 1.0}, "autocorrelation"),
    ({"other_sharpes": [0.1, 0.2]}, "other 9"),
    ({"other_sharpes": [np.nan] * 9}, "NaN"),
    ({"correlation": -0.1}, "correlation"),
    ({"periods_per_year": 0}, "periods_per_year"),
])
def test_haircut_errors(kwargs, match):
    args = {"sharpe": 1.0, "n_obs": 252, "n_trials": 10, **kwargs}
    with pytest.raises(SnoopingError, match=match):
        haircut_sharpe_ratio(args.pop("sharpe"), args.pop("n_obs"), args.pop("n_trials"),
                             **args)


# --- minimum backtest length ----------------------------------------------------------------

def expected_max(n: float) -> float:
    """Bailey et al. (2014), the expected maximum of N standard normals (their eq. 5)."""
    g = EULER_GAMMA
    return (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e))


def test_min_backtest_length_paper_example():
    """Bailey, Borwein, López de Prado & Zhu, "Pseudo-mathematics and financial
    charlatanism", Notices of the AMS 61(5), 2014: E[max_N] for N = 10 is about 1.57, and
    "if only 5 years of data are available, no more than 45 independent model
    configurations should be tried" to target an annualized Sharpe ratio of 1; the bound
    2 ln(N) / E[max_N]^2."""
    assert round(expected_max(10), 2) == 1.57
    assert min_backtest_length(10, 1.0) == pytest.approx(expected_max(10) ** 2)
    assert min_backtest_length(45, 1.0) == pytest.approx(5.0, abs=0.01)
    assert min_backtest_length(46, 1.0) > 5.0 > min_backtest_length(44, 1.0)
    assert min_backtest_length(45, 1.0, bound=True) == pytest.approx(2 * math.log(45))
    # in the Sharpe ratio's units: twice the target, a quarter of the length
    assert min_backtest_length(45, 2.0) == pytest.approx(min_backtest_length(45, 1.0) / 4)
    assert min_backtest_length(1) == 0.0
    for n in (2, 10, 100, 10_000):
        assert min_backtest_length(n) < min_backtest_length(n, bound=True)


@pytest.mark.slow
def test_min_backtest_length_by_simulation():
    """45 skill-less strategies over MinBTL years of daily returns: their best annualized
    Sharpe ratio averages the target (1000 studies: standard error about 0.007; the
    paper's E[max_N] approximation is about 2% high at N = 45)."""
    rng = np.random.default_rng(0)
    years = min_backtest_length(45, 1.0)
    days = round(252 * years)
    best = []
    for _ in range(10):
        r = rng.standard_normal((100, days, 45))
        sharpe = r.mean(axis=1) / r.std(axis=1, ddof=1) * math.sqrt(252)
        best.append(sharpe.max(axis=1))
    assert float(np.mean(best)) == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize(("args", "match"), [
    ((0, 1.0), "n_trials"),
    ((10, 0.0), "sharpe"),
    ((math.inf, 1.0), "n_trials"),
])
def test_min_backtest_length_errors(args, match):
    with pytest.raises(SnoopingError, match=match):
        min_backtest_length(*args)
