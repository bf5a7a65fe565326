"""foldwise.snooping: the stationary bootstrap, its block length and variance, and the
Reality Check, SPA and StepM tests, against independent formulas and the ``arch`` package.

The reference implementations here are written from the papers, loop by loop: the
resampled means from the resamples' row indices (not their counts), the long-run variance
from its lag sum, the p-values by counting. ``arch`` (a test-only dependency) checks the
block lengths exactly and the p-values within Monte Carlo error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from foldwise import snooping
from foldwise.snooping import (
    SnoopingError,
    bootstrap_indices,
    long_run_variance,
    optimal_block_length,
    reality_check,
    spa_stepm,
    spa_test,
    stepm,
)
from foldwise.stats import StatsError

arch_bootstrap = pytest.importorskip("arch.bootstrap")


# --- reference formulas --------------------------------------------------------------------

def lag_sum_variance(d: np.ndarray, block_length: float) -> float:
    """Hansen (2005) eq. for omega^2, lag by lag."""
    t = d.size
    q = 1.0 / block_length
    e = d - d.mean()
    total = float(e @ e) / t
    for i in range(1, t):
        kappa = (1 - i / t) * (1 - q) ** i + (i / t) * (1 - q) ** (t - i)
        total += 2 * kappa * float(e[: t - i] @ e[i:]) / t
    return total


def reference_tests(r: np.ndarray, b: np.ndarray, indices: np.ndarray, block_length: float,
                    studentize: bool) -> dict[str, object]:
    """RC and SPA p-values and the bootstrap maxima from row indices, replication by
    replication."""
    d = r - b[:, None]
    t, n = d.shape
    mean = d.mean(axis=0)
    omega2 = np.array([lag_sum_variance(d[:, k], block_length) for k in range(n)])
    scale = math.sqrt(t) / np.sqrt(omega2) if studentize else np.full(n, math.sqrt(t))
    threshold = -np.sqrt(omega2 / t * 2 * math.log(math.log(t)))
    centers = {"lower": np.maximum(mean, 0.0),
               "consistent": np.where(mean >= threshold, mean, 0.0),
               "upper": mean}
    maxima = {name: [] for name in centers}
    for row in indices:
        resampled = d[row].mean(axis=0)
        for name, g in centers.items():
            maxima[name].append(float(np.max((resampled - g) * scale)))
    stat = float(np.max(mean * scale))
    spa_stat = max(stat, 0.0)
    out: dict[str, object] = {"rc": float(np.mean(np.array(maxima["upper"]) > stat)),
                              "rc_maxima": np.array(maxima["upper"]), "stat": stat}
    for name in centers:
        floored = np.maximum(np.array(maxima[name]), 0.0)
        out[name] = float(np.mean(floored >= spa_stat))
        out[name + "_maxima"] = floored
    return out


def reference_stepm(r: np.ndarray, b: np.ndarray, indices: np.ndarray, block_length: float,
                    alpha: float, studentize: bool, recentering: str) -> list[int]:
    d = r - b[:, None]
    t, n = d.shape
    mean = d.mean(axis=0)
    omega2 = np.array([lag_sum_variance(d[:, k], block_length) for k in range(n)])
    scale = math.sqrt(t) / np.sqrt(omega2) if studentize else np.full(n, math.sqrt(t))
    threshold = -np.sqrt(omega2 / t * 2 * math.log(math.log(t)))
    g = mean if recentering == "full" else np.where(mean >= threshold, mean, 0.0)
    centred = np.array([(d[row].mean(axis=0) - g) * scale for row in indices])  # B x N
    stats = mean * scale
    remaining = list(range(n))
    superior: list[int] = []
    while remaining:
        c = max(float(np.quantile(centred[:, remaining].max(axis=1), 1 - alpha)), 0.0)
        new = [k for k in remaining if stats[k] > c]
        if not new:
            break
        superior += new
        remaining = [k for k in remaining if k not in new]
    return sorted(superior, key=lambda k: -stats[k])


def ar1(n: int, phi: float, seed: int, columns: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, columns))
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


@pytest.fixture
def small() -> tuple[np.ndarray, np.ndarray]:
    """120 days x 6 sets, mildly autocorrelated, against a noisy benchmark, with mean
    differentials chosen so the three p-values differ: set 1 slightly below the benchmark
    (recentred by the consistent p-value, not the lower), set 4 far below it (recentred
    by the upper only), set 2 the best, a p-value near 0.2."""
    rng = np.random.default_rng(11)
    r = 0.01 * (ar1(120, 0.3, seed=3, columns=6) + rng.standard_normal((120, 6)))
    b = 0.005 * rng.standard_normal(120)
    r -= r.mean(axis=0) - b.mean()
    r += np.array([0.0005, -0.001, 0.0025, 0.0, -0.008, 0.001])
    return r, b


# --- the stationary bootstrap --------------------------------------------------------------

def test_resamples_are_wrapped_blocks_of_geometric_length():
    n, block = 400, 8.0
    idx = bootstrap_indices(n, block, 200, seed=5)
    assert idx.shape == (200, n)
    assert idx.min() >= 0 and idx.max() < n
    # a continuation is the previous index + 1 (mod n); anything else starts a block
    follows = idx[:, 1:] == (idx[:, :-1] + 1) % n
    new_blocks = (~follows).sum() + idx.shape[0]
    # blocks start with probability 1/8 (a random start equal to the continuation is rare)
    expected = idx.size / block
    assert abs(new_blocks - expected) < 4 * math.sqrt(expected)
    # every observation is drawn about equally often
    counts = np.bincount(idx.ravel(), minlength=n)
    assert counts.min() > 0.5 * idx.size / n


def test_block_length_one_is_the_iid_bootstrap():
    idx = bootstrap_indices(1000, 1.0, 20, seed=0)
    follows = idx[:, 1:] == (idx[:, :-1] + 1) % 1000
    assert follows.mean() < 0.01  # only by chance


def test_same_seed_same_resamples_and_groups_do_not_depend_on_count():
    a = bootstrap_indices(50, 3.0, 100, seed=42)
    b = bootstrap_indices(50, 3.0, 100, seed=42)
    c = bootstrap_indices(50, 3.0, 30, seed=42)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:30], c)
    assert not np.array_equal(a, bootstrap_indices(50, 3.0, 100, seed=43))


def test_a_generator_seed_advances_and_is_reported():
    gen = np.random.default_rng(1)
    first = bootstrap_indices(30, 2.0, 5, seed=gen)
    second = bootstrap_indices(30, 2.0, 5, seed=gen)
    assert not np.array_equal(first, second)


# --- block length and long-run variance ----------------------------------------------------

@pytest.mark.parametrize(("phi", "seed"), [(0.5, 0), (0.5, 1), (0.8, 2), (0.3, 3), (0.9, 4)])
def test_block_length_equals_arch(phi, seed):
    x = ar1(1500, phi, seed, columns=3)
    theirs = arch_bootstrap.optimal_block_length(x)
    np.testing.assert_allclose(optimal_block_length(x), theirs["stationary"], rtol=1e-10)
    np.testing.assert_allclose(optimal_block_length(x, "circular"), theirs["circular"],
                               rtol=1e-10)


def test_block_length_grows_with_dependence_and_is_bounded():
    lengths = [optimal_block_length(ar1(2000, phi, 7)[:, 0]) for phi in (0.0, 0.4, 0.8)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[0] >= 1.0
    assert optimal_block_length(ar1(100, 0.99, 1)[:, 0]) <= math.ceil(min(30, 100 / 3))
    assert optimal_block_length(np.ones(50)) == 1.0


def test_long_run_variance_equals_the_lag_sum():
    rng = np.random.default_rng(2)
    x = ar1(300, 0.6, 9, columns=4) + rng.standard_normal((300, 4))
    bench = rng.standard_normal(300)
    for block in (1.0, 2.5, 17.0, 300.0):
        expected = [lag_sum_variance(x[:, k] - bench, block) for k in range(4)]
        np.testing.assert_allclose(long_run_variance(x, block, benchmark=bench), expected,
                                   rtol=1e-10)


def test_long_run_variance_is_the_bootstrap_variance_of_the_mean():
    """Hansen's omega^2 is the stationary bootstrap's variance of sqrt(T) x the mean."""
    x = ar1(200, 0.5, 4)[:, 0]
    block = 6.0
    idx = bootstrap_indices(200, block, 20000, seed=3)
    boot = x[idx].mean(axis=1)
    empirical = 200 * boot.var()
    # the variance of a variance estimate from 20000 draws: about 1% relative
    assert long_run_variance(x, block) == pytest.approx(empirical, rel=0.05)


# --- the tests against the reference formulas (same resamples) -----------------------------

@pytest.mark.parametrize("studentize", [True, False])
def test_spa_and_rc_equal_the_reference(small, studentize):
    r, b = small
    block, reps, seed = 4.0, 300, 8
    idx = bootstrap_indices(r.shape[0], block, reps, seed=seed)
    ref = reference_tests(r, b, idx, block, studentize)
    spa = spa_test(r, b, n_bootstrap=reps, block_length=block, seed=seed,
                   studentize=studentize)
    assert spa.pvalue_lower == ref["lower"]
    assert spa.pvalue == ref["consistent"]
    assert spa.pvalue_upper == ref["upper"]
    np.testing.assert_allclose(spa.bootstrap_statistics[:, 1], ref["consistent_maxima"],
                               rtol=1e-9, atol=1e-12)
    assert spa.statistic == pytest.approx(max(ref["stat"], 0.0), rel=1e-12)
    rc = reality_check(r, b, n_bootstrap=reps, block_length=block, seed=seed,
                       studentize=studentize)
    assert rc.pvalue == ref["rc"]
    np.testing.assert_allclose(rc.bootstrap_statistics, ref["rc_maxima"], rtol=1e-9,
                               atol=1e-12)
    assert 0.05 < spa.pvalue_lower < spa.pvalue < spa.pvalue_upper < 0.5


@pytest.mark.parametrize(("studentize", "recentering"),
                         [(True, "full"), (False, "full"), (True, "consistent")])
def test_stepm_equals_the_reference(studentize, recentering):
    rng = np.random.default_rng(21)
    r = rng.normal(0.0, 0.01, size=(250, 12))
    r[:, [1, 5]] += 0.003
    r[:, 8] += 0.0015
    b = rng.normal(0.0, 0.002, size=250)
    idx = bootstrap_indices(250, 2.0, 400, seed=4)
    expected = reference_stepm(r, b, idx, 2.0, 0.1, studentize, recentering)
    found = stepm(r, b, alpha=0.1, n_bootstrap=400, block_length=2.0, seed=4,
                  studentize=studentize, recentering=recentering)
    assert found.superior == expected
    assert set(expected) >= {1, 5}
    assert list(found.table.index[found.table["superior"]]) == sorted(expected)


def _assert_same_spa_and_stepm(returns, bench, **kwargs):
    spa, found = spa_stepm(returns, bench, **kwargs)
    alpha = kwargs.pop("alpha", 0.05)
    recentering = kwargs.pop("recentering", "full")
    alone = spa_test(returns, bench, **kwargs)
    assert spa.pvalues == alone.pvalues and spa.statistic == alone.statistic
    assert (spa.best, spa.block_length, spa.seed) == (alone.best, alone.block_length,
                                                       alone.seed)
    np.testing.assert_array_equal(spa.bootstrap_statistics, alone.bootstrap_statistics)
    kwargs["block_length"] = alone.block_length
    by_itself = stepm(returns, bench, alpha=alpha, recentering=recentering, **kwargs)
    assert found.superior == by_itself.superior
    assert found.critical_values == by_itself.critical_values
    pd.testing.assert_frame_equal(found.table, by_itself.table)
    return found


@pytest.mark.parametrize(("studentize", "recentering"),
                         [(True, "full"), (False, "full"), (True, "consistent"),
                          (False, "consistent")])
def test_spa_stepm_equals_the_two_tests_run_alone(studentize, recentering):
    """Both tests on one pass over the resamples: the report ran SPA and StepM on a
    window each with its own resamples, and StepM computed again what SPA had."""
    rng = np.random.default_rng(21)
    r = rng.normal(0.0, 0.01, size=(250, 700))  # more sets than one batch
    r[:, [1, 5]] += 0.003
    r[:, 8] += 0.0015
    r[:, 9] = 0.0  # a set equal to the flat benchmark: left out when studentized
    found = _assert_same_spa_and_stepm(
        np.asfortranarray(r), 0.0, alpha=0.1, n_bootstrap=300, block_length="auto",
        seed=np.random.SeedSequence(7, spawn_key=(3,)), studentize=studentize,
        recentering=recentering)
    assert len(found.critical_values) >= 2  # later steps pass over the kept resamples


def test_spa_stepm_without_superior_sets_and_without_kept_counts(monkeypatch):
    from foldwise.snooping import _engine

    rng = np.random.default_rng(2)
    r = pd.DataFrame(rng.normal(0.0, 0.01, size=(300, 40)))
    b = pd.Series(rng.normal(0.0, 0.01, size=300))
    found = _assert_same_spa_and_stepm(r, b, n_bootstrap=130, seed=5)
    assert found.superior == [] and len(found.critical_values) == 1
    monkeypatch.setattr(_engine, "KEEP_COUNTS_BYTES", 0)  # resamples drawn again per step
    r.iloc[:, 3] += 0.004
    found = _assert_same_spa_and_stepm(r, b, n_bootstrap=130, seed=5, alpha=0.2)
    assert 3 in found.superior


def test_spa_stepm_checks_its_arguments():
    r = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(SnoopingError, match="alpha"):
        spa_stepm(r, alpha=0.0)
    with pytest.raises(SnoopingError, match="recentering"):
        spa_stepm(r, recentering="partial")  # type: ignore[arg-type]


def test_same_seed_same_pvalues_different_seed_different_draws(small):
    r, b = small
    one = spa_test(r, b, n_bootstrap=200, seed=3)
    two = spa_test(r, b, n_bootstrap=200, seed=3)
    assert one.pvalues == two.pvalues
    np.testing.assert_array_equal(one.bootstrap_statistics, two.bootstrap_statistics)
    three = spa_test(r, b, n_bootstrap=200, seed=4)
    assert not np.array_equal(one.bootstrap_statistics, three.bootstrap_statistics)
    # a fresh-entropy run reports its seed, which repeats it
    fresh = spa_test(r, b, n_bootstrap=200)
    again = spa_test(r, b, n_bootstrap=200, seed=fresh.seed)
    assert fresh.pvalues == again.pvalues


def test_columns_beyond_a_batch_and_a_large_n():
    """More sets than one multiplication batch, several batches of replications."""
    rng = np.random.default_rng(5)
    r = rng.normal(0.0, 0.01, size=(60, 700))
    r[:, 123] += 0.01
    idx = bootstrap_indices(60, 1.5, 600, seed=1)
    d = r - 0.0
    mean = d.mean(axis=0)
    expected = np.array([(d[row].mean(axis=0) - mean).max() for row in idx]) * math.sqrt(60)
    rc = reality_check(r, 0.0, n_bootstrap=600, block_length=1.5, seed=1)
    np.testing.assert_allclose(rc.bootstrap_statistics, expected, rtol=1e-9)
    assert rc.best == 123


# --- against arch (Monte Carlo error) ------------------------------------------------------

def _mc_tolerance(p: float, reps_a: int, reps_b: int, z: float = 4.5) -> float:
    """z standard errors of the difference of two independent bootstrap p-values
    (binomial, each from its own replications) around p, at least 2/reps."""
    se = math.sqrt(max(p * (1 - p), 0.01) * (1 / reps_a + 1 / reps_b))
    return z * se


@pytest.mark.slow
def test_spa_agrees_with_arch_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, size=(500, 20)) + 0.0003 * rng.standard_normal(20)
    r[:, 0] += 0.0008
    b = 0.005 * rng.standard_normal(500)
    reps = 4000
    # arch takes losses: a return is a negative loss
    theirs = arch_bootstrap.SPA(-b, -r, block_size=5, reps=reps, bootstrap="stationary",
                                seed=1)
    theirs.compute()
    ours = spa_test(r, b, n_bootstrap=reps, block_length=5.0, seed=2, studentize=False)
    for kind in ("lower", "consistent", "upper"):
        p = ours.pvalues[kind]
        assert 0.1 < p < 0.9  # the case tests the middle of the distribution
        assert abs(p - theirs.pvalues[kind]) < _mc_tolerance(p, reps, reps), kind


@pytest.mark.slow
def test_stepm_agrees_with_arch():
    """arch's StepM: unstudentized, consistent recentering (Step-SPA)."""
    rng = np.random.default_rng(8)
    r = rng.normal(0, 0.01, size=(600, 25))
    r[:, [3, 11, 17]] += np.array([0.004, 0.003, 0.0025])
    r[:, 20:] -= 0.002
    b = 0.003 * rng.standard_normal(600)
    theirs = arch_bootstrap.StepM(-b, -r, size=0.05, block_size=3, reps=2000, seed=0)
    theirs.compute()
    ours = stepm(r, b, alpha=0.05, n_bootstrap=2000, block_length=3.0, seed=0,
                 studentize=False, recentering="consistent")
    assert sorted(ours.superior) == sorted(theirs.superior_models) == [3, 11, 17]
    # the first step's critical value: arch's SPA critical value, within the Monte Carlo
    # error of a 95% quantile (bracketed by our quantiles at 95% +- 4.5 binomial errors)
    spa = arch_bootstrap.SPA(-b, -r, block_size=3, reps=2000, seed=0)
    spa.compute()
    critical = float(spa.critical_values(0.05)["consistent"]) * math.sqrt(600)
    full = stepm(r, b, alpha=0.05, n_bootstrap=2000, block_length=3.0, seed=0,
                 studentize=False, recentering="consistent")
    assert full.critical_values[0] > 0
    spread = 4.5 * math.sqrt(0.05 * 0.95 * 2 / 2000)
    reference = spa_test(r, b, n_bootstrap=2000, block_length=3.0, seed=0, studentize=False)
    low = np.quantile(reference.bootstrap_statistics[:, 1], 0.95 - spread)
    high = np.quantile(reference.bootstrap_statistics[:, 1], 0.95 + spread)
    assert low <= critical <= high


# --- behaviour -------------------------------------------------------------------------------

def test_a_planted_edge_is_found():
    rng = np.random.default_rng(12)
    r = rng.normal(0, 0.01, size=(1000, 200))
    r[:, 77] += 0.0025  # t about 8
    b = rng.normal(0, 0.005, size=1000)
    spa = spa_test(r, b, n_bootstrap=500, seed=0)
    assert spa.best == 77
    assert spa.pvalue < 0.01
    assert reality_check(r, b, n_bootstrap=500, seed=0).pvalue < 0.01


@pytest.mark.slow
def test_stepm_finds_the_planted_sets_and_mostly_no_others():
    planted = {5, 31, 60}
    false_discoveries = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        r = rng.normal(0, 0.01, size=(750, 80))
        r[:, sorted(planted)] += 0.003  # t about 8
        found = set(stepm(r, 0.0, alpha=0.05, n_bootstrap=300, block_length=1.0,
                          seed=seed).superior)
        assert planted <= found, seed
        false_discoveries += bool(found - planted)
    # family-wise error 5%: 20 studies, 3 or more with a false discovery has p < 0.08
    assert false_discoveries <= 2


def test_no_skill_gives_a_large_pvalue_and_no_superior_set():
    rng = np.random.default_rng(4)
    r = rng.normal(0, 0.01, size=(500, 50)) - 0.0005  # every set worse than flat
    r[:, 0] = rng.normal(0.0001, 0.01, size=500)        # one about as good as flat
    spa = spa_test(r, 0.0, n_bootstrap=300, seed=1)
    assert spa.pvalue > 0.5
    # no set above the benchmark in sample: the statistic is 0, no evidence at all
    r -= r.mean(axis=0) + 0.0001
    spa = spa_test(r, 0.0, n_bootstrap=300, seed=1)
    assert spa.statistic == 0.0
    assert spa.pvalues == {"lower": 1.0, "consistent": 1.0, "upper": 1.0}
    assert stepm(r, 0.0, n_bootstrap=300, seed=1).superior == []


def test_a_set_equal_to_the_benchmark_is_left_out_of_studentized_tests():
    rng = np.random.default_rng(6)
    b = rng.normal(0, 0.01, size=200)
    r = np.column_stack([b, b + rng.normal(0.001, 0.01, size=200)])
    spa = spa_test(r, b, n_bootstrap=200, seed=0)
    assert spa.n_excluded == 1
    assert spa.best == 1
    raw = spa_test(r, b, n_bootstrap=200, seed=0, studentize=False)
    assert raw.n_excluded == 0


def test_dataframe_labels_and_series_benchmark():
    rng = np.random.default_rng(1)
    index = pd.bdate_range("2021-01-01", periods=300)
    frame = pd.DataFrame(rng.normal(0, 0.01, (300, 3)), index=index,
                         columns=["fast=5", "fast=10", "fast=20"])
    frame["fast=10"] += 0.004
    bench = pd.Series(rng.normal(0, 0.01, 300), index=index)
    result = spa_test(frame, bench, n_bootstrap=200, seed=0)
    assert result.best == "fast=10"
    assert "fast=10" in result.summary()
    found = stepm(frame, bench, n_bootstrap=200, seed=0)
    assert found.superior == ["fast=10"]
    assert list(found.table.index) == list(frame.columns)
    assert "beat the benchmark" in found.summary()
    assert "Reality Check" in str(reality_check(frame, bench, n_bootstrap=100, seed=0))
    # a scalar benchmark is a constant per-period return
    shifted = spa_test(frame - 0.001, -0.001, n_bootstrap=200, seed=0)
    assert shifted.pvalues == pytest.approx(spa_test(frame, 0.0, n_bootstrap=200,
                                                     seed=0).pvalues)


def test_auto_block_length_is_the_median_of_the_differentials():
    x = ar1(400, 0.6, 2, columns=5) * 0.01
    result = spa_test(x, 0.0, n_bootstrap=50, seed=0)
    assert result.block_length == pytest.approx(float(np.median(optimal_block_length(x))))


def test_the_input_matrix_is_not_modified(small):
    r, b = small
    r_copy, b_copy = r.copy(), b.copy()
    spa_test(r, b, n_bootstrap=50, seed=0)
    stepm(np.asfortranarray(r), b, n_bootstrap=50, seed=0)
    np.testing.assert_array_equal(r, r_copy)
    np.testing.assert_array_equal(b, b_copy)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"returns": np.full((50, 2), np.nan)}, "NaN"),
    ({"returns": np.zeros((5, 2))}, "at least 10"),
    ({"returns": np.zeros((50, 2, 2))}, "T x N"),
    ({"benchmark": np.zeros(49)}, "49 observations"),
    ({"benchmark": np.full(50, np.inf)}, "benchmark"),
    ({"n_bootstrap": 0}, "n_bootstrap"),
    ({"block_length": 0.5}, "block_length"),
    ({"block_length": 80.0}, "exceeds"),
    ({"block_length": "fixed"}, "'auto'"),
    ({"seed": -1}, "seed"),
    ({"seed": "x"}, "seed"),
])
def test_errors_name_the_cause(kwargs, match):
    args = {"returns": np.random.default_rng(0).normal(size=(50, 2)), "benchmark": 0.0}
    args.update(kwargs)
    returns, benchmark = args.pop("returns"), args.pop("benchmark")
    with pytest.raises(SnoopingError, match=match) as info:
        spa_test(returns, benchmark, **args)
    assert isinstance(info.value, StatsError)
    assert isinstance(info.value, ValueError)


def test_misaligned_benchmark_and_bad_stepm_arguments():
    index = pd.bdate_range("2021-01-01", periods=40)
    frame = pd.DataFrame(np.zeros((40, 2)) + 0.001, index=index)
    with pytest.raises(SnoopingError, match="reindex"):
        spa_test(frame, pd.Series(0.0, index=index + pd.Timedelta(days=1)))
    with pytest.raises(SnoopingError, match="alpha"):
        stepm(frame, alpha=1.5)
    with pytest.raises(SnoopingError, match="recentering"):
        stepm(frame, recentering="partial")  # type: ignore[arg-type]
    with pytest.raises(SnoopingError, match="stationary"):
        optimal_block_length(np.zeros(50), "moving")  # type: ignore[arg-type]


def test_public_names():
    assert set(snooping.__all__) >= {"spa_test", "reality_check", "stepm", "spa_stepm",
                                      "haircut_sharpe_ratio", "min_backtest_length"}
    import foldwise

    assert foldwise.snooping is snooping
    assert foldwise.spa_test is spa_test
