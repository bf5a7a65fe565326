"""CSCV with the per-period Sharpe ratio, streamed over combinations and columns.

The kernel behind :func:`foldwise.stats.probability_of_backtest_overfitting` for its
default performance measure. The ``T x N`` matrix of per-period returns is cut into ``S``
blocks of ``L`` consecutive rows; each of the ``C(S, S/2)`` combinations takes half of
the blocks in sample and the other half out of sample. Written plainly, every
combination copies half the matrix and every statistic is a ``C(S, S/2) x N`` array
(12,870 x N for ``S = 16``: 2 GB per array at N = 20,000). Here nothing grows with
``C(S, S/2) x N``:

1. **Per column block** (at most ``block_elements`` values of the matrix at once), each
   block of rows of each column is reduced to its sum and its sum of squared deviations
   from its own mean (``M2``): two ``S x N`` arrays. Only a column block of the matrix is
   ever copied, and none when the matrix is column-major (the aggregator builds it so).
2. A half's count, sum and ``M2`` are merged from those of its blocks by the exact
   pairwise update of Chan, Golub & LeVeque (1979) (``M2 = M2_a + M2_b + d^2 n_a n_b / n``,
   ``d`` the difference of the two means), in one fixed order: consecutive pairs of its
   blocks (from a table of every pair's merge, ``S (S - 1) / 2 x N``), then those pairs
   left to right. Mean and sample variance (``ddof=1``) follow, hence the Sharpe ratio
   as :func:`foldwise.stats.sharpe_of_columns` defines it (NaN for a standard deviation
   of at most 1e-14). A combination and its complement swap halves, so each pair's two
   halves are scored once and serve both. Combinations next to each other in
   lexicographic order share their first pairs: a chunk merges each distinct prefix of
   pairs once, and the combinations of one prefix take their last pair from consecutive
   rows of the pair table, so the prefix's row is broadcast against those rows; nothing
   is gathered row by row. Every number is still the one the left-to-right merge of the
   half's own pairs gives, operation for operation (only repeated merges are skipped).
3. **Per chunk of combinations** (at most ``chunk_elements // N`` pairs), the in-sample
   best column is located (NaN ignored, the first of equals) and ranked among the
   out-of-sample Sharpe ratios (average rank of ties, NaN ranked worst); only these
   per-combination numbers are kept.

Memory beyond the input: ``O(S^2 N + C(S, S/2) S + block_elements + chunk_elements)``,
nothing of the order of ``C(S, S/2) x N``.

A half's numbers depend on that half's data alone, in a fixed order of operations: two
parameter sets with the same returns over a half (sets often coincide over part of the
history) get the same Sharpe ratio there to the last bit, so they tie as they do when
the half is scored plainly; a set flat over a half has no dispersion there (NaN), not a
rounding residue. Nor does anything depend on the chunk sizes or the memory layout.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "CHUNK_ELEMENTS", "CSCVSelection", "block_moments",
           "combination_blocks", "cscv_sharpe_selection", "kept_rows"]

#: Values of a ``combinations x columns`` array computed at once: about ten arrays of
#: this size are alive during a chunk (1 MB each). Larger chunks share more prefixes and
#: make fewer calls, smaller ones stay in the CPU's cache: measured on 2,148 x 4,824
#: returns (S = 16), 1 << 17 took 0.65-0.70 s at best against 0.70-0.90 s for 1 << 16
#: and 1 << 18, and 0.9 s for 1 << 15.
CHUNK_ELEMENTS = 1 << 17

#: Values of the matrix read at once when reducing it to per-block sums (8 MB).
BLOCK_ELEMENTS = 1 << 20

#: A standard deviation at most this is no dispersion (the Sharpe ratio is NaN).
_ZERO_DISPERSION = 1e-14


@dataclass(frozen=True)
class CSCVSelection:
    """Per combination (in lexicographic order of the in-sample blocks): the in-sample best.

    Attributes
    ----------
    usable
        False where every column's in-sample Sharpe ratio is NaN (nothing to select).
    best
        Column of the in-sample best (0 where not usable).
    rank
        Its average rank among the out-of-sample Sharpe ratios, 1 = worst, NaN ranked below
        everything (NaN where not usable).
    in_sample, out_of_sample
        Its Sharpe ratio in and out of sample (NaN where not usable).
    """

    usable: np.ndarray
    best: np.ndarray
    rank: np.ndarray
    in_sample: np.ndarray
    out_of_sample: np.ndarray


def kept_rows(matrix: np.ndarray, n_splits: int, chunk_elements: int = BLOCK_ELEMENTS
              ) -> slice | np.ndarray:
    """The rows CSCV uses: rows without a NaN, the first ones dropped so that the rest
    fill ``n_splits`` equal blocks. A slice when they are consecutive (no copy is needed),
    else their positions. NaN rows are found column block by column block."""
    n_rows, n_columns = matrix.shape
    width = max(1, chunk_elements // max(n_rows, 1))
    bad = np.zeros(n_rows, dtype=bool)
    for lo in range(0, n_columns, width):
        bad |= np.isnan(matrix[:, lo:lo + width]).any(axis=1)
    good = np.flatnonzero(~bad)
    count = (good.size // n_splits) * n_splits
    good = good[good.size - count:]
    if count == 0 or good[-1] - good[0] + 1 == count:
        start = int(good[0]) if count else n_rows
        return slice(start, start + count)
    return good


def block_moments(matrix: np.ndarray, rows: slice | np.ndarray, n_splits: int,
                  chunk_elements: int = BLOCK_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Per block of rows and column, the sum and the sum of squared deviations from the
    block's mean: ``(sums (S, N), m2 (S, N))`` over the rows ``rows``."""
    n_columns = matrix.shape[1]
    n_rows = (rows.stop - rows.start) if isinstance(rows, slice) else len(rows)
    length = n_rows // n_splits
    sums = np.empty((n_splits, n_columns))
    m2 = np.empty((n_splits, n_columns))
    width = max(1, chunk_elements // max(n_rows, 1))
    for lo in range(0, n_columns, width):
        hi = min(lo + width, n_columns)
        # each column contiguous (no copy when the matrix is column-major and the rows a
        # slice, wherever it starts): its sums run along it in one fixed order, whatever
        # the block's width
        block = matrix[rows, lo:hi].T
        if block.strides[1] != block.itemsize:
            block = np.ascontiguousarray(block)
        block = block.reshape(hi - lo, n_splits, length)
        total = block.sum(axis=2)
        centred = block - (total / length)[:, :, None]
        np.multiply(centred, centred, out=centred)
        sums[:, lo:hi] = total.T
        m2[:, lo:hi] = centred.sum(axis=2).T
    return sums, m2


def _merge(sums: np.ndarray, m2: np.ndarray, count: int, other_sums: np.ndarray,
           other_m2: np.ndarray, other_count: int, spare: np.ndarray) -> None:
    """Merge the second group's (sum, M2) into the first's, in place (Chan et al.):
    ``M2 += M2' + (s'/n' - s/n)^2 n n' / (n + n')``; ``sums += sums'``."""
    if count == other_count:  # (s' - s)^2 / (2 n): fewer operations, the same formula
        np.subtract(other_sums, sums, out=spare)
        np.multiply(spare, spare, out=spare)
        spare *= 1.0 / (2 * count)
    else:
        np.multiply(sums, -1.0 / count, out=spare)
        spare += other_sums / other_count
        np.multiply(spare, spare, out=spare)
        spare *= count * other_count / (count + other_count)
    m2 += other_m2
    m2 += spare
    sums += other_sums


def _pair_table(sums: np.ndarray, m2: np.ndarray, length: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each block's row, then the merge of every pair of blocks ``a < b`` (in the order
    of :func:`itertools.combinations`): ``(S + S (S - 1) / 2) x N`` sums and M2."""
    first, second = np.triu_indices(sums.shape[0], k=1)
    pair_sums, pair_m2 = sums[first], m2[first]
    _merge(pair_sums, pair_m2, length, sums[second], m2[second], length,
           np.empty_like(pair_sums))
    return np.concatenate([sums, pair_sums]), np.concatenate([m2, pair_m2])


def combination_blocks(n_splits: int) -> np.ndarray:
    """``C(S, S/2) x S/2`` ints: the in-sample blocks of each combination, in the order of
    :func:`itertools.combinations` (the complement of combination ``c`` is combination
    ``C - 1 - c``; the first half are those holding block 0)."""
    return np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.intp)


def _term_index(blocks: np.ndarray, n_splits: int) -> np.ndarray:
    """For each combination's blocks, the rows of :func:`_pair_table` it is merged from:
    pairs of consecutive blocks, then a last single block when their number is odd."""
    pair_row = np.full((n_splits, n_splits), -1, dtype=np.intp)
    first, second = np.triu_indices(n_splits, k=1)
    pair_row[first, second] = n_splits + np.arange(first.size)
    count = blocks.shape[1]
    columns = [pair_row[blocks[:, k], blocks[:, k + 1]] for k in range(0, count - 1, 2)]
    if count % 2:
        columns.append(blocks[:, -1])
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class _Level:
    """The distinct prefixes of ``k + 1`` terms of the halves (the last level: the halves
    themselves), numbered in the lexicographic order of the combinations, so that
    consecutive combinations have consecutive prefix ids.

    ``of``: each combination's prefix id; ``parent``: each prefix's id at level ``k - 1``;
    ``term``: the pair-table row of its last term; ``run``: whether a prefix starts a run,
    i.e. does not continue the previous one (the same parent, and the next row of the
    pair table as its last term)."""

    of: np.ndarray
    parent: np.ndarray
    term: np.ndarray
    run: np.ndarray


def _prefix_levels(index: np.ndarray) -> list[_Level]:
    """:class:`_Level` of every prefix length, from :func:`_term_index`."""
    levels: list[_Level] = []
    change = np.zeros(max(len(index) - 1, 0), dtype=bool)
    for k in range(index.shape[1]):
        change |= index[1:, k] != index[:-1, k]
        first = np.concatenate([[True], change])
        starts = np.flatnonzero(first)
        parent = levels[-1].of[starts] if levels else np.zeros(len(starts), dtype=np.intp)
        term = index[starts, k]
        run = np.concatenate([[True], (parent[1:] != parent[:-1])
                              | (term[1:] != term[:-1] + 1)])
        levels.append(_Level(np.cumsum(first) - 1, parent, term, run))
    return levels


class _Halves:
    """The sums and M2 of the halves of consecutive combinations, merged term by term left
    to right as :func:`_term_index` lists them (buffers reused from call to call).

    Consecutive combinations share their first terms, so each distinct prefix of terms of
    the combinations asked for is merged once, level by level (a prefix of ``k + 1``
    terms from its parent of ``k`` terms and its last term). The prefixes of a level with
    the same parent come in *runs* whose last terms are consecutive rows of the pair
    table (the pairs ``(a, b)`` with one ``a``, in order); a run is merged by
    broadcasting its parent's row against those rows, nothing gathered. Each number is
    the one merging that half's terms left to right gives, operation for operation: only
    repeated merges are left out."""

    def __init__(self, table: tuple[np.ndarray, np.ndarray], sizes: list[int],
                 index: np.ndarray, rows: int) -> None:
        self.sums, self.m2 = table
        self.sizes = sizes
        self.levels = _prefix_levels(index)
        shape = (rows, self.sums.shape[1])
        # levels 1 .. n_terms - 1: at most one prefix per combination of a call
        self.buffers = [(np.empty(shape), np.empty(shape)) for _ in sizes[1:] or [0]]
        self.spare, self.scaled = np.empty(shape), np.empty(shape)
        # a term's sums over its observations, as the merge divides them; the first
        # terms' sums scaled as the merge scales a prefix's
        self.divided = {size: self.sums / size for size in set(sizes[1:])}
        self.table_scaled = (self.sums * (-1.0 / sizes[0])
                             if len(sizes) > 1 and sizes[0] != sizes[1] else None)

    def merge(self, lo: int, hi: int, *, reverse: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """The halves of combinations ``lo .. hi - 1``: ``(sums, m2)``, a row each (in
        reverse order with ``reverse``)."""
        levels = self.levels
        first, last = int(levels[0].of[lo]), int(levels[0].of[hi - 1]) + 1
        # level 0: rows of the pair table
        prefix, rows = (self.sums, self.m2), levels[0].term[first:last]
        halves = (self.buffers[-1][0][:hi - lo], self.buffers[-1][1][:hi - lo])
        if len(levels) == 1:  # one term: rows of the table
            rows = rows[::-1] if reverse else rows
            np.take(self.sums, rows, axis=0, out=halves[0])
            np.take(self.m2, rows, axis=0, out=halves[1])
            return halves
        count = self.sizes[0]
        for k in range(1, len(levels)):
            level = levels[k]
            start, stop = int(level.of[lo]), int(level.of[hi - 1]) + 1
            parents = rows[level.parent[start:stop] - first]
            runs = np.flatnonzero(level.run[start + 1:stop]) + 1
            sums, m2 = self.buffers[k - 1]
            out = (sums[:stop - start], m2[:stop - start])
            if reverse and k == len(levels) - 1:
                # written back to front: row i of the buffers is combination hi - 1 - i
                out = (out[0][::-1], out[1][::-1])
            self._merge_runs(out, prefix, parents, level.term[start:stop], runs, count,
                             self.sizes[k], from_table=k == 1)
            prefix, rows = out, np.arange(stop - start)
            first, count = start, count + self.sizes[k]
        return halves

    def _merge_runs(self, out: tuple[np.ndarray, np.ndarray],
                    prefix: tuple[np.ndarray, np.ndarray], parents: np.ndarray,
                    terms: np.ndarray, runs: np.ndarray, count: int, other_count: int,
                    *, from_table: bool) -> None:
        """:func:`_merge` of the prefixes' rows ``parents`` of ``prefix`` (of ``count``
        observations; ``from_table``: the pair table itself) with the pair table's rows
        ``terms`` (``other_count``) into ``out``; ``runs``: where a run of consecutive
        ``terms`` with one parent starts (beyond 0)."""
        out_sums, out_m2 = out
        spare = self.spare[:len(terms)]
        if count == other_count:  # (s' - s)^2 / (2 n)
            first_operand, second_operand = prefix[0], self.sums
        else:  # (s (-1/n) + s'/n')^2 n n' / (n + n')
            if from_table and self.table_scaled is not None:
                first_operand = self.table_scaled
            else:
                first_operand = np.multiply(prefix[0], -1.0 / count,
                                            out=self.scaled[:len(prefix[0])])
            second_operand = self.divided[other_count]
        bounds = [0, *runs.tolist(), len(terms)]
        for a, b in itertools.pairwise(bounds):
            row, t0 = int(parents[a]), int(terms[a])
            t1 = t0 + (b - a)
            if count == other_count:
                np.subtract(second_operand[t0:t1], first_operand[row], out=spare[a:b])
            else:
                np.add(first_operand[row], second_operand[t0:t1], out=spare[a:b])
            np.add(prefix[1][row], self.m2[t0:t1], out=out_m2[a:b])
            np.add(prefix[0][row], self.sums[t0:t1], out=out_sums[a:b])
        np.multiply(spare, spare, out=spare)
        if count == other_count:
            spare *= 1.0 / (2 * count)
        else:
            spare *= count * other_count / (count + other_count)
        out_m2 += spare


def _sharpe(sums: np.ndarray, m2: np.ndarray, count: int, out: np.ndarray) -> np.ndarray:
    """Sharpe ratio of each element into ``out``; ``-inf`` where undefined (a standard
    deviation of at most 1e-14, or NaN). Overwrites ``m2``."""
    mean = np.divide(sums, count, out=out)
    std = m2
    std /= count - 1
    with np.errstate(invalid="ignore"):
        np.sqrt(std, out=std)  # NaN for a negative: no dispersion
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(mean, std, out=mean)
    defined = std > _ZERO_DISPERSION
    if not defined.all():
        np.copyto(mean, -np.inf, where=~defined)
    return mean


def _select(is_perf: np.ndarray, oos_perf: np.ndarray, flags: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: whether a column is defined in sample, the in-sample best column (first of
    equals), its average rank out of sample (1 = worst), its in- and out-of-sample
    values (NaN where undefined). Undefined scores are ``-inf``. ``flags``: a boolean
    buffer of at least the shape of the scores."""
    n_rows = is_perf.shape[0]
    lines = np.arange(n_rows)
    top = is_perf.argmax(axis=1)
    picked_is = is_perf[lines, top]
    value = oos_perf[lines, top]
    column = value[:, None]
    flags = flags[:n_rows]
    # count_nonzero row by row: its axis= form sums booleans as integers, twice as slow
    np.less(oos_perf, column, out=flags)
    below = np.array([np.count_nonzero(line) for line in flags], dtype=np.intp)
    np.equal(oos_perf, column, out=flags)
    ties = np.array([np.count_nonzero(line) for line in flags], dtype=np.intp)
    usable = picked_is > -np.inf
    rank = np.where(usable, below + (ties + 1) / 2.0, np.nan)
    picked_is = np.where(usable, picked_is, np.nan)
    picked_oos = np.where(usable & (value > -np.inf), value, np.nan)
    return usable, np.where(usable, top, 0), rank, picked_is, picked_oos


def cscv_sharpe_selection(matrix: np.ndarray, n_splits: int, *,
                          rows: slice | np.ndarray | None = None,
                          chunk_elements: int = CHUNK_ELEMENTS,
                          block_elements: int = BLOCK_ELEMENTS) -> CSCVSelection:
    """The in-sample best of every CSCV combination and its out-of-sample rank.

    Parameters
    ----------
    matrix
        ``T x N`` float64 returns; only read.
    n_splits
        ``S``, even; the rows used must be a multiple of it.
    rows
        The rows used (:func:`kept_rows`); default all.
    chunk_elements, block_elements
        Values computed at once (see :data:`CHUNK_ELEMENTS` and :data:`BLOCK_ELEMENTS`);
        they do not change the result.
    """
    if rows is None:
        rows = slice(0, matrix.shape[0])
    n_rows = (rows.stop - rows.start) if isinstance(rows, slice) else len(rows)
    n_columns = matrix.shape[1]
    length = n_rows // n_splits
    sums, m2 = block_moments(matrix, rows, n_splits, block_elements)
    table = _pair_table(sums, m2, length)
    blocks = combination_blocks(n_splits)
    n_combinations = len(blocks)
    n_pairs = n_combinations // 2
    index = _term_index(blocks, n_splits)
    per_half = n_splits // 2
    sizes = [2 * length] * (per_half // 2) + [length] * (per_half % 2)
    count = length * per_half
    usable = np.zeros(n_combinations, dtype=bool)
    best = np.zeros(n_combinations, dtype=np.intp)
    rank, in_sample, out_of_sample = (np.full(n_combinations, np.nan) for _ in range(3))
    step = max(1, min(n_pairs, chunk_elements // max(n_columns, 1)))
    halves = _Halves(table, sizes, index, step)
    first, second = np.empty((step, n_columns)), np.empty((step, n_columns))
    flags = np.empty((step, n_columns), dtype=bool)
    for lo in range(0, n_pairs, step):
        hi = min(lo + step, n_pairs)
        size = hi - lo
        # combination c holds block 0 in sample; its complement C - 1 - c the other half:
        # the complements of lo .. hi - 1 are C - hi .. C - 1 - lo, merged in reverse order
        # (row i of each side is one half of combination lo + i)
        mirror = np.arange(n_combinations - 1 - lo, n_combinations - 1 - hi, -1)
        a = _sharpe(*halves.merge(lo, hi), count, first[:size])
        b = _sharpe(*halves.merge(n_combinations - hi, n_combinations - lo, reverse=True),
                    count, second[:size])
        for where, is_perf, oos_perf in ((slice(lo, hi), a, b), (mirror, b, a)):
            ok, top, ranks, picked_is, picked_oos = _select(is_perf, oos_perf, flags)
            usable[where], best[where], rank[where] = ok, top, ranks
            in_sample[where], out_of_sample[where] = picked_is, picked_oos
    return CSCVSelection(usable, best, rank, in_sample, out_of_sample)
