"""Overfitting statistics against the papers' worked numbers, simulations and brute force."""

from __future__ import annotations

import math
from itertools import combinations, pairwise

import numpy as np
import pytest
from scipy import stats as sps

from foldwise import stats


def test_deflated_sharpe_ratio_reproduces_the_papers_example():
    # Bailey & López de Prado (2014): SR 2.5 annualized, 5 years of daily data, skew -3,
    # kurtosis 10, 100 trials with annualized SR variance 0.5 -> DSR 0.9004; SR0 = 0.1132.
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = stats.deflated_sharpe_ratio(sharpe=2.5 / math.sqrt(250), skew=-3, kurtosis=10,
                                      n=1250, n_trials=100, sharpe_variance=0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_deflated_sharpe_ratio_falls_as_trials_rise():
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0008, 0.01, 1000)
    values = [stats.deflated_sharpe_ratio(returns, n_trials=n, sharpe_variance=0.002)
              for n in (1, 2, 10, 100, 1000, 10_000)]
    assert all(a > b for a, b in pairwise(values))
    # one trial: nothing selected, DSR is the plain PSR against 0
    assert values[0] == pytest.approx(stats.probabilistic_sharpe_ratio(returns))


def test_expected_max_sharpe_matches_a_simulation():
    rng = np.random.default_rng(1)
    for n_trials, variance in [(10, 1.0), (100, 0.25), (1000, 0.04)]:
        draws = rng.normal(0.0, math.sqrt(variance), size=(4000, n_trials)).max(axis=1)
        assert stats.expected_max_sharpe(n_trials, variance) == pytest.approx(
            draws.mean(), rel=0.03)


def test_min_track_record_length_is_where_psr_reaches_the_confidence():
    sharpe, skew, kurtosis = 0.08, -0.5, 5.0
    n = stats.min_track_record_length(sharpe=sharpe, skew=skew, kurtosis=kurtosis,
                                      confidence=0.95)
    variance = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    psr_at_n = sps.norm.cdf(sharpe * math.sqrt(n - 1) / math.sqrt(variance))
    assert psr_at_n == pytest.approx(0.95, abs=1e-12)
    assert stats.min_track_record_length(sharpe=0.0, skew=0, kurtosis=3) == math.inf
    # a higher confidence needs a longer record
    assert stats.min_track_record_length(sharpe=sharpe, skew=skew, kurtosis=kurtosis,
                                         confidence=0.99) > n


def test_moments_use_population_skew_and_non_excess_kurtosis():
    r = np.random.default_rng(2).standard_t(5, 500) * 0.01
    sharpe, skew, kurtosis, n = stats.moments(r)
    assert n == 500
    assert sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert skew == pytest.approx(sps.skew(r))
    assert kurtosis == pytest.approx(sps.kurtosis(r, fisher=False))


def brute_force_pbo(matrix, n_splits, score):
    """CSCV written plainly: every half of the blocks, argmax in sample, rank out of sample."""
    blocks = np.array_split(np.arange(len(matrix)), n_splits)
    below = total = 0
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.concatenate([blocks[i] for i in chosen])
        test = np.concatenate([blocks[i] for i in range(n_splits) if i not in chosen])
        is_scores = [score(matrix[train, j]) for j in range(matrix.shape[1])]
        oos_scores = [score(matrix[test, j]) for j in range(matrix.shape[1])]
        best = int(np.argmax(is_scores))
        rank = 1 + sum(s < oos_scores[best] for s in oos_scores) + 0.5 * (
            sum(s == oos_scores[best] for s in oos_scores) - 1)
        omega = rank / (len(oos_scores) + 1)
        below += math.log(omega / (1 - omega)) <= 0
        total += 1
    return below / total


def test_pbo_matches_a_brute_force_cscv():
    rng = np.random.default_rng(3)
    matrix = rng.normal(0.0002, 0.01, size=(240, 7)) + rng.normal(0, 0.002, size=7)
    result = stats.probability_of_backtest_overfitting(matrix, n_splits=8)
    expected = brute_force_pbo(matrix, 8, lambda c: c.mean() / c.std(ddof=1))
    assert result.pbo == pytest.approx(expected)
    assert len(result.logits) == math.comb(8, 4)


def test_pbo_is_one_when_the_in_sample_best_is_always_the_out_of_sample_worst():
    r = np.random.default_rng(4).normal(0, 0.01, 160)
    r -= r.mean()  # in-sample gain of a column is exactly its out-of-sample loss
    matrix = np.column_stack([r, -r])
    result = stats.probability_of_backtest_overfitting(
        matrix, n_splits=8, performance=lambda block: block.mean(axis=0))
    assert result.pbo == 1.0
    assert result.probability_of_loss == 1.0
    assert result.degradation_slope < 0


def test_pbo_is_zero_when_the_in_sample_best_is_always_the_out_of_sample_best():
    rng = np.random.default_rng(5)
    good = 0.01 + rng.normal(0, 0.001, 160)
    matrix = np.column_stack([good, good - 0.02, good - 0.03])
    result = stats.probability_of_backtest_overfitting(matrix, n_splits=8)
    assert result.pbo == 0.0
    assert result.probability_of_loss == 0.0


def test_pbo_on_pure_noise_is_near_one_half():
    # One noise matrix gives a PBO anywhere in a wide band (the combinations overlap);
    # over many matrices it centres on 1/2.
    rng = np.random.default_rng(6)
    values = [stats.probability_of_backtest_overfitting(rng.normal(0, 0.01, (400, 20)),
                                                        n_splits=8).pbo for _ in range(40)]
    assert np.mean(values) == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize(
    ("matrix", "n_splits", "message"),
    [
        (np.zeros((100, 1)), 4, "N >= 2"),
        (np.zeros((100, 3)), 5, "even"),
        (np.zeros((100, 3)), 18, "combinations"),
        (np.zeros((10, 3)), 8, "too few"),
    ],
)
def test_pbo_refuses_unusable_inputs(matrix, n_splits, message):
    with pytest.raises(stats.StatsError, match=message):
        stats.probability_of_backtest_overfitting(matrix, n_splits=n_splits)
