"""Whole-array cross-sectional kernels: per-date ranks, normalisations and quantiles.

Each function takes a ``(n_dates, n_assets)`` float array, a boolean array of the cells to
consider (the term's mask and, for grouped operations, a non-missing group label) and
optionally integer group labels, and works on every date at once: rows are sorted once
with numpy (stable sorts, so ties keep the assets' order), and groups inside a row become
contiguous runs of the sorted row (a lexicographic sort by label, then value). No Python
loop over dates or groups.

The definitions are Zipline's (``zipline/pipeline/factors/factor.py``, ``lib/rank.pyx``,
``lib/quantiles.py``): ordinal ranks break ties by position, ``zscore`` divides by the
population standard deviation (``ddof=0``), ``winsorize`` clips to the values found at
``floor(n * min_percentile)`` and ``ceil(n * max_percentile) - 1`` of the sorted group,
quantile labels follow ``pandas.qcut`` (bins closed on the right, the lowest edge
included). NaN values never take part and come out missing.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import numpy as np

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._kernels import COMPILED_MIN_CELLS

__all__ = [
    "demean_rows",
    "ordinal_rank_cells",
    "percentile_between_rows",
    "quantile_labels",
    "rank_rows",
    "top_rows",
    "winsorize_rows",
    "zscore_rows",
]

RANK_METHODS = ("ordinal", "min", "max", "dense", "average")

#: ``top``/``bottom`` of at most this many cells per row go to the compiled heap pass on
#: large arrays; a heap of more cells is replaced more often (and each time deeper) than
#: a partition of the row costs.
TOP_COMPILED_MAX_N = 10


class _SortedRows:
    """Every row sorted by (group label, value), with the runs of each group marked.

    Invalid cells (masked, NaN, missing label) sort to the end of their row and belong to
    no group.
    """

    def __init__(self, keys: np.ndarray, valid: np.ndarray, labels: np.ndarray | None) -> None:
        n_rows, n_cols = keys.shape
        keys = np.where(valid, keys, np.nan)
        if labels is None:
            self.order = np.argsort(keys, axis=1, kind="stable")
            sorted_labels = None
        else:
            group = np.where(valid, labels, np.iinfo(np.int64).max)
            self.order = np.lexsort((keys, group), axis=-1)
            sorted_labels = np.take_along_axis(group, self.order, axis=1)
        self.keys = np.take_along_axis(keys, self.order, axis=1)
        self.valid = np.take_along_axis(valid, self.order, axis=1)
        position = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
        new_group = np.zeros((n_rows, n_cols), dtype=bool)
        new_group[:, 0] = True
        if sorted_labels is not None:
            new_group[:, 1:] = sorted_labels[:, 1:] != sorted_labels[:, :-1]
        new_group[:, 1:] |= self.valid[:, 1:] != self.valid[:, :-1]
        self.new_group = new_group
        self.group_start = np.maximum.accumulate(np.where(new_group, position, 0), axis=1)
        last = np.ones((n_rows, n_cols), dtype=bool)
        last[:, :-1] = new_group[:, 1:]
        self.group_end = _last_index(last, n_cols)
        self.position = position

    def scatter(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Put per-sorted-cell ``values`` back in the original column order."""
        out = np.empty(values.shape, dtype=np.float64)
        np.put_along_axis(out, self.order, np.where(self.valid, values, fill), axis=1)
        return out


def _last_index(is_last: np.ndarray, n_cols: int) -> np.ndarray:
    """For each cell, the position of the first ``True`` at or after it in its row."""
    candidates = np.where(is_last, np.arange(n_cols), n_cols - 1)
    return np.minimum.accumulate(candidates[:, ::-1], axis=1)[:, ::-1]


def rank_rows(values: np.ndarray, valid: np.ndarray, method: str = "ordinal",
              ascending: bool = True, labels: np.ndarray | None = None) -> np.ndarray:
    """Per-row (per-group) ranks starting at 1, as ``scipy.stats.rankdata`` would give.

    ``ascending=False`` ranks ``-values`` (so ties still go in the assets' order).
    Cells that are invalid or NaN get NaN.

    Examples
    --------
    >>> x = np.array([[3.0, 1.0, np.nan, 1.0]])
    >>> rank_rows(x, np.ones_like(x, dtype=bool))
    array([[ 3.,  1., nan,  2.]])
    >>> rank_rows(x, np.ones_like(x, dtype=bool), method="average", ascending=False)
    array([[1. , 2.5, nan, 2.5]])
    """
    valid = valid & ~np.isnan(values)
    if method == "ordinal" and labels is None:  # the common case
        return _ordinal_ranks(values, valid, ascending)
    keys = values if ascending else -values
    rows = _SortedRows(keys, valid, labels)
    ordinal = rows.position - rows.group_start + 1
    if method == "ordinal":
        ranks = ordinal.astype(np.float64)
    else:
        new_tie = rows.new_group.copy()
        new_tie[:, 1:] |= rows.keys[:, 1:] != rows.keys[:, :-1]
        n_cols = values.shape[1]
        tie_start = np.maximum.accumulate(np.where(new_tie, rows.position, 0), axis=1)
        if method == "min":
            ranks = (tie_start - rows.group_start + 1).astype(np.float64)
        elif method in ("max", "average"):
            last = np.ones(new_tie.shape, dtype=bool)
            last[:, :-1] = new_tie[:, 1:]
            tie_end = _last_index(last, n_cols)
            high = (tie_end - rows.group_start + 1).astype(np.float64)
            ranks = high if method == "max" else (tie_start - rows.group_start + 1 + high) / 2.0
        elif method == "dense":
            count = np.cumsum(new_tie, axis=1)
            at_start = np.take_along_axis(count, rows.group_start, axis=1)
            ranks = (count - at_start + 1).astype(np.float64)
        else:  # pragma: no cover - validated when the term is built
            raise ValueError(f"unknown rank method {method!r}")
    return rows.scatter(ranks)


def ordinal_rank_cells(values: np.ndarray, valid: np.ndarray, ascending: bool,
                       rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """``rank_rows(values, valid, "ordinal", ascending)`` at the cells ``(rows, cols)``
    alone (cells in row-major order), each rank counted over its row; None where ranking
    whole rows is the cheaper (more than one cell in twelve kept) or the array is too
    small for the compiled kernels.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(1000, 300))
    >>> valid = np.ones(x.shape, dtype=bool)
    >>> rows, cols = np.array([0, 0, 7]), np.array([3, 9, 0])
    >>> np.array_equal(ordinal_rank_cells(x, valid, False, rows, cols),
    ...                rank_rows(x, valid, "ordinal", False)[rows, cols])
    True
    """
    if values.size < COMPILED_MIN_CELLS or len(rows) * 12 > values.size:
        return None
    from foldwise.pipeline import _compiled

    return _compiled.ordinal_rank_cells(np.ascontiguousarray(values, dtype=np.float64),
                                        np.ascontiguousarray(valid), ascending, rows, cols)


def _masked_keys(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``keys`` with the invalid cells NaN (``keys`` itself when every cell is valid)."""
    return keys if valid.all() else np.where(valid, keys, np.nan)


def _ordinal_ranks(values: np.ndarray, valid: np.ndarray, ascending: bool) -> np.ndarray:
    """Ordinal ranks of each row's valid values (ties in column order), NaN elsewhere.

    Rows are ordered by one sort of 64-bit integers (numpy sorts integers with vector
    instructions, several times faster than an argsort of floats): each float is mapped
    to an integer of the same order, its lowest bits replaced by the column number, so
    the sorted integers carry the column of each rank and equal values stay in column
    order. Two different values that agree in every bit but the replaced ones (a relative
    difference below ``2**-43`` for 500 columns) could come out in column order instead
    of value order, so a row holding values that close — or tied — takes numpy's stable
    argsort instead, which orders ties by column as
    ``scipy.stats.rankdata(method="ordinal")`` does.
    """
    n_rows, n_cols = values.shape
    bits = max((n_cols - 1).bit_length(), 1)
    if values.size >= COMPILED_MIN_CELLS:  # the same steps, in two compiled passes
        from foldwise.pipeline import _compiled

        code = _compiled.ordinal_codes(np.ascontiguousarray(values, dtype=np.float64),
                                       np.ascontiguousarray(valid), ascending, bits)
        code.sort(axis=1)
        ranks = np.empty(values.shape)
        redo = _compiled.ranks_from_codes(code, bits, ranks)
        if redo.size:
            keys = values[redo] if ascending else -values[redo]
            stable = _stable_ranks(_masked_keys(keys, valid[redo]))
            stable[~valid[redo]] = np.nan
            ranks[redo] = stable
        return ranks
    keys = values if ascending else -values
    masked = _masked_keys(keys, valid)
    low = np.int64((1 << bits) - 1)
    # -0.0 + 0.0 is +0.0: the two zeros are equal values and must map to one integer.
    code = np.add(masked, 0.0).view(np.int64)
    code ^= (code >> 63) & np.int64(0x7FFF_FFFF_FFFF_FFFF)  # float order -> integer order
    code &= ~low
    code |= np.arange(n_cols, dtype=np.int64)
    code.sort(axis=1)
    high = code >> bits
    # Invalid cells hold NaN, which sorts after every number; their ties do not matter.
    nan_high = np.array([np.nan]).view(np.int64)[0] >> bits
    unsure = ((high[:, 1:] == high[:, :-1]) & (high[:, 1:] != nan_high)).any(axis=1)
    order = code & low
    order += (np.arange(n_rows, dtype=np.int64) * n_cols)[:, None]
    ranks = np.empty(values.shape)
    ranks.reshape(-1)[order] = np.arange(1.0, n_cols + 1)
    redo = np.flatnonzero(unsure)
    if redo.size:
        ranks[redo] = _stable_ranks(masked[redo])
    ranks[~valid] = np.nan
    return ranks


def _stable_ranks(masked: np.ndarray) -> np.ndarray:
    """1-based positions of each cell in its row's stable sort (ties in column order)."""
    order = np.argsort(masked, axis=1, kind="stable")
    ranks = np.empty(masked.shape)
    np.put_along_axis(ranks, order, np.arange(1.0, masked.shape[1] + 1)[None, :], axis=1)
    return ranks


def top_rows(values: np.ndarray, valid: np.ndarray, n: int, ascending: bool = False,
             ) -> np.ndarray:
    """True for the ``n`` highest (``ascending=True``: lowest) valid values of each row.

    The same cells as ``rank_rows(values, valid, "ordinal", not ascending...) <= n``
    would pick — ties at the boundary go to the leftmost columns — found by selection
    rather than by ranking whole rows: ``numpy.partition``, or, for large arrays and
    ``n <= 10``, one compiled pass per row keeping the best ``n`` cells in a heap
    (:func:`foldwise.pipeline._compiled.top_cells`; a few times faster on typical rows
    and no slower on rows already in order, where every cell enters the heap). NaN and
    invalid cells are never picked.

    Examples
    --------
    >>> x = np.array([[3.0, 1.0, np.nan, 3.0, 2.0]])
    >>> top_rows(x, np.ones_like(x, dtype=bool), 2)
    array([[ True, False, False,  True, False]])
    >>> top_rows(x, np.ones_like(x, dtype=bool), 2, ascending=True)
    array([[False,  True, False, False,  True]])
    """
    n_cols = values.shape[1]
    if n < n_cols and n <= TOP_COMPILED_MAX_N and values.size >= COMPILED_MIN_CELLS:
        from foldwise.pipeline import _compiled

        return _compiled.top_cells(np.ascontiguousarray(values, dtype=np.float64),
                                   np.ascontiguousarray(valid), n, ascending)
    valid = valid & ~np.isnan(values)
    if n >= n_cols:
        return valid
    masked = _masked_keys(values if ascending else -values, valid)
    kth = np.partition(masked, n - 1, axis=1)[:, n - 1:n]  # NaN when fewer than n valid
    with np.errstate(invalid="ignore"):
        picked = masked <= kth
        # Several values equal to the n-th smallest: keep only as many as fit, leftmost first.
        crowded = np.flatnonzero(picked.sum(axis=1) > n)
        if crowded.size:
            rows = masked[crowded]
            below = rows < kth[crowded]
            equal = rows == kth[crowded]
            room = n - below.sum(axis=1, keepdims=True)
            picked[crowded] = below | (equal & (np.cumsum(equal, axis=1) <= room))
    short = np.isnan(kth[:, 0])
    if short.any():
        picked[short] = valid[short]
    return picked


def _dense_groups(valid: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """A dense id per (row, label) pair of the valid cells, -1 elsewhere."""
    n_rows = valid.shape[0]
    rows = np.broadcast_to(np.arange(n_rows)[:, None], valid.shape)
    _, dense_labels = np.unique(labels[valid], return_inverse=True)
    n_labels = int(dense_labels.max()) + 1 if dense_labels.size else 1
    ids = np.full(valid.shape, -1, dtype=np.int64)
    ids[valid] = rows[valid] * n_labels + dense_labels.reshape(-1)
    return ids, n_rows * n_labels


def _row_deviations(values: np.ndarray, usable: np.ndarray | None, with_std: bool,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Deviations from each row's mean (0 on unusable cells), the mean, and the std.

    ``usable`` None means every cell is usable. Sums are numpy's (pairwise) row sums of
    the values with unusable cells zeroed, divided by the row's count.
    """
    if usable is None:
        count: np.ndarray | int = values.shape[1]
        mean = values.sum(axis=1, keepdims=True) / count
        deviations = values - mean
    else:
        count = usable.sum(axis=1, keepdims=True)
        mean = np.where(count > 0, np.where(usable, values, 0.0).sum(axis=1, keepdims=True)
                        / count, np.nan)
        deviations = np.where(usable, values - mean, 0.0)
    if not with_std:
        return deviations, mean, None
    var: np.ndarray = (deviations * deviations).sum(axis=1, keepdims=True) / count
    if usable is not None:
        var = np.where(count > 0, var, np.nan)
    return deviations, mean, np.sqrt(var)


def _group_moments(values: np.ndarray, valid: np.ndarray, labels: np.ndarray,
                   with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean (and population std) of the group of every cell; NaN where there is none."""
    usable = valid & ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        ids, n_groups = _dense_groups(valid, labels)
        picked = ids[usable]
        counts = np.bincount(picked, minlength=n_groups)
        sums = np.bincount(picked, weights=values[usable], minlength=n_groups)
        group_mean = sums / counts
        lookup = np.where(ids >= 0, ids, 0)
        mean = np.where(ids >= 0, group_mean[lookup], np.nan)
        if not with_std:
            return mean, None
        deviations = values[usable] - group_mean[picked]
        var = np.bincount(picked, weights=deviations * deviations, minlength=n_groups) / counts
        std = np.where(ids >= 0, np.sqrt(var)[lookup], np.nan)
        return mean, std


def _compiled_normalize(values: np.ndarray, valid: np.ndarray, scale: bool) -> np.ndarray:
    """``demean`` (``scale``: ``zscore``) of each row in one compiled pass per step."""
    from foldwise.pipeline import _compiled

    return _compiled.normalize_rows(np.ascontiguousarray(values, dtype=np.float64),
                                    np.ascontiguousarray(valid), scale)


def _usable(values: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Cells that are valid and not NaN; None when that is every cell."""
    usable = ~np.isnan(values)
    if not valid.all():
        usable &= valid
    return None if usable.all() else usable


def demean_rows(values: np.ndarray, valid: np.ndarray,
                labels: np.ndarray | None = None) -> np.ndarray:
    """``x - mean`` of each row (group), ignoring NaN and invalid cells; NaN there.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> demean_rows(x, np.array([[False, True, True, True]]))
    array([[nan, -1.,  0.,  1.]])
    """
    if labels is not None:
        mean, _ = _group_moments(values, valid, labels, with_std=False)
        return np.where(valid, values - mean, np.nan)
    if values.size >= COMPILED_MIN_CELLS:
        return _compiled_normalize(values, valid, scale=False)
    usable = _usable(values, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviations, _, _ = _row_deviations(values, usable, with_std=False)
    return deviations if usable is None else np.where(usable, deviations, np.nan)


def zscore_rows(values: np.ndarray, valid: np.ndarray,
                labels: np.ndarray | None = None) -> np.ndarray:
    """``(x - mean) / std`` of each row (group) with ``ddof=0``; NaN for invalid cells.

    Examples
    --------
    >>> zscore_rows(np.array([[1.0, 3.0]]), np.array([[True, True]]))
    array([[-1.,  1.]])
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if labels is not None:
            mean, std = _group_moments(values, valid, labels, with_std=True)
            return np.where(valid, (values - mean) / std, np.nan)
        if values.size >= COMPILED_MIN_CELLS:
            return _compiled_normalize(values, valid, scale=True)
        usable = _usable(values, valid)
        deviations, _, row_std = _row_deviations(values, usable, with_std=True)
        assert row_std is not None
        scores = np.divide(deviations, row_std, out=deviations)
        return scores if usable is None else np.where(usable, scores, np.nan)


def winsorize_rows(values: np.ndarray, valid: np.ndarray, min_percentile: float,
                   max_percentile: float, labels: np.ndarray | None = None) -> np.ndarray:
    """Clip each row (group) to the values at its ``min_percentile`` / ``max_percentile``.

    With ``n`` non-NaN values sorted ascending, values below the one at position
    ``floor(n * min_percentile)`` are raised to it (when ``min_percentile > 0``) and
    values above the one at ``ceil(n * max_percentile) - 1`` are lowered to it (when
    ``max_percentile < 1``), as in ``scipy.stats.mstats.winsorize``.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    >>> winsorize_rows(x, np.ones_like(x, dtype=bool), 0.25, 0.75)
    array([[2., 2., 3., 4., 5., 5.]])
    """
    valid = valid & ~np.isnan(values)
    rows = _SortedRows(values, valid, labels)
    size = (rows.group_end - rows.group_start + 1).astype(np.float64)
    out = rows.keys.copy()
    n_cols = values.shape[1]
    if min_percentile > 0:
        low = rows.group_start + np.floor(min_percentile * size).astype(np.intp)
        floor_value = np.take_along_axis(rows.keys, np.minimum(low, n_cols - 1), axis=1)
        out = np.fmax(out, floor_value)
    if max_percentile < 1:
        count = np.ceil(size * max_percentile).astype(np.intp)
        high = rows.group_start + np.maximum(count, 1) - 1
        cap = np.take_along_axis(rows.keys, high, axis=1)
        out = np.where(count < size, np.fmin(out, cap), out)
    return rows.scatter(out)


def _sorted_with_counts(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted ascending with invalid cells (as NaN) last, and the valid count per row."""
    masked = np.where(valid, values, np.nan)
    return np.sort(masked, axis=1), valid.sum(axis=1)


def _row_quantiles(sorted_rows: np.ndarray, counts: np.ndarray,
                   quantiles: np.ndarray) -> np.ndarray:
    """``numpy.quantile(..., method="linear")`` of each row's valid values.

    Same arithmetic as numpy (virtual index ``(n - 1) * q``, the two-sided lerp), so an
    edge equals the value numpy gives bit for bit. Rows with no valid value give NaN.
    """
    n = counts.astype(np.float64)[:, None]
    virtual = (n - 1) * quantiles[None, :]
    previous = np.floor(virtual)
    last = np.maximum(counts[:, None] - 1, 0)
    above = virtual >= n - 1
    lo = np.where(above, last, np.clip(previous, 0, None)).astype(np.intp)
    hi = np.where(above, last, np.clip(previous + 1, 0, None)).astype(np.intp)
    a = np.take_along_axis(sorted_rows, lo, axis=1)
    b = np.take_along_axis(sorted_rows, hi, axis=1)
    gamma = virtual - previous
    diff = b - a
    with np.errstate(invalid="ignore"):
        out = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    out[counts == 0] = np.nan
    return out


def quantile_labels(values: np.ndarray, valid: np.ndarray, bins: int) -> np.ndarray:
    """Per-row quantile labels ``0 .. bins - 1`` (as ``pandas.qcut(row, bins, labels=False)``).

    Edges are the row's linear quantiles at ``0, 1/bins, ..., 1``; a value gets the label
    of the first bin whose right edge it does not exceed (the lowest edge included).
    Invalid and NaN cells get -1. Unlike ``pandas.qcut``, repeated edges (many equal
    values) do not raise: such values take the lowest bin they fall in.

    Examples
    --------
    >>> x = np.array([[5.0, 1.0, 3.0, np.nan, 2.0, 4.0]])
    >>> quantile_labels(x, np.ones_like(x, dtype=bool), 2)
    array([[ 1,  0,  0, -1,  0,  1]])
    """
    valid = valid & ~np.isnan(values)
    sorted_rows, counts = _sorted_with_counts(values, valid)
    edges = _row_quantiles(sorted_rows, counts, np.linspace(0, 1, bins + 1))
    below = np.zeros(values.shape, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for k in range(bins + 1):
            below += edges[:, k : k + 1] < values
        at_lowest = values == edges[:, :1]
    labels = np.where(at_lowest, 0, below - 1)
    return np.where(valid, labels, -1)


def percentile_between_rows(values: np.ndarray, valid: np.ndarray, min_percentile: float,
                            max_percentile: float) -> np.ndarray:
    """True where a value lies between the row's two percentiles (``numpy.nanpercentile``).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    >>> percentile_between_rows(x, np.ones_like(x, dtype=bool), 25, 75)
    array([[False,  True,  True,  True, False]])
    """
    valid = valid & ~np.isnan(values)
    sorted_rows, counts = _sorted_with_counts(values, valid)
    bounds = _row_quantiles(
        sorted_rows, counts, np.true_divide(np.array([min_percentile, max_percentile],
                                                     dtype=np.float64), 100))
    with np.errstate(invalid="ignore"):
        inside = (bounds[:, :1] <= values) & (values <= bounds[:, 1:])
    return inside & valid


def check_rank_method(owner: str, method: object) -> str:
    """Return ``method`` if it is a rank method, else raise naming the choices."""
    if method not in RANK_METHODS:
        raise PipelineDefinitionError(
            f"{owner}: unknown rank method {method!r}; choose one of "
            f"{', '.join(map(repr, RANK_METHODS))} (as scipy.stats.rankdata).")
    return str(method)


def _is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool))


def check_fraction_bounds(owner: str, low: object, high: object, upper: float) -> tuple[float, float]:
    """``0 <= low < high <= upper`` as floats, else an error naming the bounds."""
    if (not (_is_number(low) and _is_number(high))
            or not (0.0 <= float(low) < float(high) <= upper) or math.isnan(float(low))):
        raise PipelineDefinitionError(
            f"{owner}: the bounds must satisfy 0 <= min < max <= {upper:g}; got min={low!r}, "
            f"max={high!r}.")
    return float(low), float(high)
