"""PBO by CSCV, streamed over combinations, against CSCV written plainly.

The reference below copies each combination's halves of the matrix and scores every column
with numpy's mean and ``std(ddof=1)``, ranks with scipy, fits the degradation line with
``scipy.stats.linregress``: nothing of :mod:`foldwise._cscv` is reused.
"""

from __future__ import annotations

import math
import tracemalloc
from itertools import combinations

import numpy as np
import pytest
from scipy import stats as sps

from foldwise import _cscv, stats
from foldwise.aggregate._overfitting import column_sharpes


def reference_cscv(matrix: np.ndarray, n_splits: int) -> dict[str, np.ndarray | float]:
    """CSCV as the paper states it: every half of the blocks in sample, the rest out."""
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    rows = (len(matrix) // n_splits) * n_splits
    matrix = matrix[len(matrix) - rows:]
    blocks = np.split(np.arange(rows), n_splits)

    def sharpe(part: np.ndarray) -> np.ndarray:
        std = part.std(axis=0, ddof=1)
        scores = np.full(part.shape[1], np.nan)
        scores[std > 1e-14] = part.mean(axis=0)[std > 1e-14] / std[std > 1e-14]
        return scores

    logits, in_sample, out_of_sample = [], [], []
    n = matrix.shape[1]
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.concatenate([blocks[i] for i in chosen])
        test = np.concatenate([blocks[i] for i in range(n_splits) if i not in chosen])
        is_scores, oos_scores = sharpe(matrix[train]), sharpe(matrix[test])
        if np.isnan(is_scores).all():
            continue
        best = int(np.nanargmax(is_scores))
        ranks = sps.rankdata(np.nan_to_num(oos_scores, nan=-np.inf), method="average")
        omega = ranks[best] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        in_sample.append(is_scores[best])
        out_of_sample.append(oos_scores[best])
    is_array, oos_array = np.array(in_sample), np.array(out_of_sample)
    finite = np.isfinite(is_array) & np.isfinite(oos_array)
    fit = sps.linregress(is_array[finite], oos_array[finite])
    return {"logits": np.array(logits), "in_sample": is_array, "out_of_sample": oos_array,
            "pbo": float(np.mean(np.array(logits) <= 0)), "slope": fit.slope,
            "intercept": fit.intercept,
            "loss": float(np.mean(oos_array[np.isfinite(oos_array)] < 0))}


def awkward_matrix(seed: int, n_splits: int | None = None) -> tuple[np.ndarray, int]:
    """Random returns with what real studies hold: sets with identical returns (ties in
    and out of sample), sets that never trade (zero returns: no Sharpe ratio), a constant
    non-zero set, missing bars, and a length that is not a multiple of the blocks."""
    rng = np.random.default_rng(seed)
    n_splits = n_splits or int(rng.choice([2, 4, 6, 8, 10, 12]))
    rows = int(rng.integers(2 * n_splits + 3, 420))
    n = int(rng.integers(2, 40))
    matrix = rng.normal(0.0004, 0.01, (rows, n)) + rng.normal(0, 0.002, n)
    if n >= 6:
        best = int(np.argmax(matrix.mean(axis=0) / matrix.std(axis=0)))
        matrix[:, 1] = matrix[:, best]     # a tie with the likely in-sample best
        matrix[:, 2] = matrix[:, 3]
        matrix[:, 4] = 0.0                 # never trades
        matrix[:, 5] = 0.0007              # constant
    if seed % 2:
        matrix[rng.integers(0, rows, 4), rng.integers(0, n, 4)] = np.nan
    return matrix, n_splits


def assert_matches_reference(result: stats.PBOResult, expected: dict) -> None:
    np.testing.assert_array_equal(result.logits, expected["logits"])
    assert result.pbo == expected["pbo"]
    np.testing.assert_allclose(result.in_sample, expected["in_sample"], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(result.out_of_sample, expected["out_of_sample"], rtol=1e-9,
                               atol=1e-12)
    assert result.degradation_slope == pytest.approx(expected["slope"], rel=1e-7, abs=1e-9)
    assert result.degradation_intercept == pytest.approx(expected["intercept"], rel=1e-7,
                                                         abs=1e-9)
    assert result.probability_of_loss == expected["loss"]


@pytest.mark.parametrize(("seed", "n_splits"), [
    *((seed, None) for seed in range(20)),
    # the paper's 16 blocks: 12,870 combinations (the plain reference takes seconds)
    *(pytest.param(seed, 16, marks=pytest.mark.slow) for seed in (20, 21))])
def test_streamed_pbo_equals_plain_cscv(seed, n_splits):
    matrix, n_splits = awkward_matrix(seed, n_splits)
    expected = reference_cscv(matrix, n_splits)
    result = stats.probability_of_backtest_overfitting(matrix, n_splits=n_splits)
    assert_matches_reference(result, expected)
    assert result.n_configurations == matrix.shape[1]
    assert len(result.logits) == math.comb(n_splits, n_splits // 2)


@pytest.mark.parametrize("chunk", [1, 7, 64, 5_000])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n_splits", [8, 6, 10])
def test_chunks_and_layout_change_nothing(chunk, order, n_splits):
    # Every number of a column depends on that column alone, in one order of operations:
    # the same bits whatever the chunk sizes (how many combinations share a chunk's
    # merged prefixes) and the memory layout. 6 and 10 blocks: halves of an odd number
    # of blocks (a last single block after the pairs).
    matrix, _ = awkward_matrix(5)
    matrix = np.asarray(matrix, order=order)
    rows = _cscv.kept_rows(matrix, n_splits, chunk)
    small = _cscv.cscv_sharpe_selection(matrix, n_splits, rows=rows, chunk_elements=chunk,
                                        block_elements=chunk)
    whole = _cscv.cscv_sharpe_selection(np.ascontiguousarray(matrix), n_splits,
                                        rows=_cscv.kept_rows(matrix, n_splits))
    for name in ("usable", "best", "rank", "in_sample", "out_of_sample"):
        np.testing.assert_array_equal(getattr(small, name), getattr(whole, name))
    expected = reference_cscv(matrix, n_splits)
    omega = small.rank[small.usable] / (matrix.shape[1] + 1)
    np.testing.assert_array_equal(np.log(omega / (1 - omega)), expected["logits"])


def test_identical_columns_tie_exactly_whatever_their_position():
    rng = np.random.default_rng(11)
    base = rng.normal(0.0005, 0.01, (320, 1))
    noise = rng.normal(0.0, 0.01, (320, 997))
    matrix = np.hstack([base, noise, base, base])  # the copies fall in other column blocks
    sums, m2 = _cscv.block_moments(matrix, slice(0, 320), 16, chunk_elements=640)
    for copy in (998, 999):
        np.testing.assert_array_equal(sums[:, copy], sums[:, 0])
        np.testing.assert_array_equal(m2[:, copy], m2[:, 0])


def test_sets_equal_over_part_of_the_history_tie_where_they_are_equal():
    # Parameter sets often trade alike for years and differ elsewhere. Where two sets'
    # returns are equal (a whole half of a combination), their Sharpe ratios there are
    # equal to the last bit, as scoring that half plainly gives: the first of equals is
    # the in-sample best and equals share the average rank.
    rng = np.random.default_rng(16)
    matrix = rng.normal(0.0004, 0.01, (400, 12))
    matrix[:, 6:] = matrix[:, :6]
    matrix[200:, 6:] += rng.normal(0.0, 0.01, (200, 6))  # equal on the first half only
    matrix[:200, 3] = matrix[:200, 0]                     # and within the first six
    for n_splits in (2, 4, 8):
        result = stats.probability_of_backtest_overfitting(matrix, n_splits=n_splits)
        assert_matches_reference(result, reference_cscv(matrix, n_splits))


def test_combinations_that_select_nothing_are_skipped():
    # Every set is flat on the first half of the history (a constant return: no
    # dispersion, no Sharpe ratio): the combination taking exactly those blocks in
    # sample selects nothing and is left out, as when the halves are scored plainly.
    rng = np.random.default_rng(12)
    matrix = rng.normal(0.0003, 0.01, (160, 6))
    matrix[:80] = 0.0004
    result = stats.probability_of_backtest_overfitting(matrix, n_splits=4)
    expected = reference_cscv(matrix, 4)
    assert len(result.logits) == len(expected["logits"]) == math.comb(4, 2) - 1
    assert_matches_reference(result, expected)


def test_undefined_everywhere_is_refused():
    with pytest.raises(stats.StatsError, match="undefined performance"):
        stats.probability_of_backtest_overfitting(np.zeros((64, 3)), n_splits=4)


def test_the_input_is_neither_copied_nor_written():
    rng = np.random.default_rng(13)
    matrix = np.asfortranarray(rng.normal(0, 0.01, (256, 50)))
    before = matrix.copy()
    matrix.flags.writeable = False  # a write would raise
    stats.probability_of_backtest_overfitting(matrix, n_splits=16)
    np.testing.assert_array_equal(matrix, before)


@pytest.mark.slow
def test_memory_does_not_grow_with_combinations_times_sets():
    # 12,870 combinations x 2,000 sets: one such float64 array is 206 MB, and CSCV written
    # plainly holds several. Streamed, the peak stays below half of one of them.
    rng = np.random.default_rng(14)
    matrix = np.asfortranarray(rng.normal(0.0002, 0.01, (512, 2000)))
    one_array = math.comb(16, 8) * matrix.shape[1] * 8
    tracemalloc.start()
    try:
        result = stats.probability_of_backtest_overfitting(matrix, n_splits=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < one_array / 2
    assert len(result.logits) == math.comb(16, 8)


def test_the_performance_function_path_agrees_with_the_streamed_one():
    # A custom performance is called per combination; given the Sharpe ratio written
    # plainly it selects the same sets as the streamed kernel.
    matrix, _ = awkward_matrix(3)

    def plain_sharpe(block: np.ndarray) -> np.ndarray:
        std = block.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(std > 1e-14, block.mean(axis=0) / std, np.nan)

    custom = stats.probability_of_backtest_overfitting(matrix, 8, performance=plain_sharpe)
    streamed = stats.probability_of_backtest_overfitting(matrix, 8)
    np.testing.assert_array_equal(custom.logits, streamed.logits)
    np.testing.assert_allclose(custom.in_sample, streamed.in_sample, rtol=1e-9)


@pytest.mark.parametrize("order", ["C", "F"])
def test_column_sharpes_are_those_of_moments_bit_for_bit(order):
    rng = np.random.default_rng(15)
    matrix = rng.normal(0.0005, 0.01, (700, 40))
    matrix[:, 3] = 0.0
    matrix[:, 4] = 0.1
    matrix[::9, 5] = np.nan
    matrix = np.asarray(matrix, order=order)
    expected = np.array([stats.moments(matrix[:, j])[0] for j in range(40)])
    for chunk in (1, 700 * 3, 1 << 20):
        np.testing.assert_array_equal(column_sharpes(matrix, chunk), expected)
