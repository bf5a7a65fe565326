"""Compiled (numba) forms of the kernels the built-in factors spend most time in.

The kernels use them for inputs of ``COMPILED_MIN_CELLS`` cells or more (see
:mod:`foldwise.pipeline._kernels`). The rolling ones run the same two-block scheme as
:class:`foldwise.pipeline._kernels._Layout` — the same additions, in the same order, on
the same shifted values — so their results are the numpy kernels' bit for bit
(``tests/test_pipeline_factors.py`` checks it). What changes
is memory traffic: numpy materialises every step (padded blocks, shifted copies, squares,
suffix sums, prefix sums, quotients) as a full ``(rows, assets)`` array; here each value is
read from the input twice and each result written once, with the running sums of one block
held in a ``(window, assets)`` buffer that stays in the processor's cache.

The cross-sectional kernels build the integer sort keys of the ordinal ranks and read the
ranks back from the sorted keys (the sort itself stays numpy's), pick the ``top``/``bottom``
cells of each row in one pass, and compute each row's ``zscore``/``demean`` in one pass
for the sum, one for the squares and one for the output (four rows at a time); their sums
run in column order (as bottleneck's, which Zipline uses) rather than numpy's pairwise
order, so they agree with the numpy kernels to rounding, not bit for bit.

The ``*_cells`` kernels give a whole kernel's values at chosen cells alone (the outputs a
screened ``run_pipeline`` keeps), with the same arithmetic in the same order.

The functions are compiled on first use (numba's ``cache=True`` keeps the machine code
beside this file, or in numba's user cache directory, for the next process) and are
imported by the kernels only when a built-in needs them, so ``import foldwise`` does not
load numba. ``error_model="numpy"``: a division by zero gives inf or NaN, as in numpy.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["has_nan", "normalize_rows", "ordinal_codes", "ordinal_rank_cells", "ranks_from_codes",
           "top_cells", "window_nanmean", "window_nanmean_cells", "window_nanmoments",
           "window_std_complete"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def window_nanmean(values: np.ndarray, window: int, lead: int) -> np.ndarray:  # pragma: no cover - compiled
    """NaN-skipping mean of each window of ``window`` rows (NaN for a window without data).

    ``lead`` is the row's offset in its block (``origin % window``). The sum of a window
    starting at offset ``i`` of block ``b`` is the suffix sum of block ``b`` from ``i``
    (summed from the block's end) plus the prefix sum of block ``b + 1`` up to ``i - 1``;
    counts of the values used are summed the same way, exactly.
    """
    n_rows, n_cols = values.shape
    n_out = n_rows - window + 1
    n_blocks = (lead + n_rows + window - 1) // window
    out = np.empty((n_out, n_cols))
    suffix = np.empty((window, n_cols))
    suffix_count = np.empty((window, n_cols), dtype=np.int64)
    prefix = np.empty(n_cols)
    prefix_count = np.empty(n_cols, dtype=np.int64)
    for block in range(n_blocks):
        base = block * window - lead  # row of the block's first position
        if base >= n_out:
            break
        for position in range(window - 1, -1, -1):
            row = base + position
            last = position == window - 1
            for col in range(n_cols):
                value = 0.0
                present = 0
                if 0 <= row < n_rows:
                    x = values[row, col]
                    if x == x:
                        value = x
                        present = 1
                if last:
                    suffix[position, col] = value
                    suffix_count[position, col] = present
                else:
                    suffix[position, col] = suffix[position + 1, col] + value
                    suffix_count[position, col] = suffix_count[position + 1, col] + present
        for position in range(window):
            start = base + position
            if position > 0:  # extend the prefix of the next block by one row
                row = base + window + position - 1
                for col in range(n_cols):
                    value = 0.0
                    present = 0
                    if row < n_rows:
                        x = values[row, col]
                        if x == x:
                            value = x
                            present = 1
                    if position == 1:
                        prefix[col] = value
                        prefix_count[col] = present
                    else:
                        prefix[col] = prefix[col] + value
                        prefix_count[col] = prefix_count[col] + present
            if start < 0 or start >= n_out:
                continue
            for col in range(n_cols):
                if position == 0:
                    out[start, col] = suffix[0, col] / suffix_count[0, col]
                else:
                    total = suffix[position, col] + prefix[col]
                    out[start, col] = total / (suffix_count[position, col] + prefix_count[col])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def window_nanmoments(values: np.ndarray, window: int, lead: int, want_mean: bool,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """NaN-skipping count, mean and population variance (clamped at 0) of each window.

    Values are shifted by the value on the last row of the block the window starts in (0
    if that value is missing), which every window starting in the block contains; the
    window's first and second moments of the shifted values are summed by the two-block
    scheme. The mean (and count) arrays are filled only with ``want_mean``.
    """
    n_rows, n_cols = values.shape
    n_out = n_rows - window + 1
    n_blocks = (lead + n_rows + window - 1) // window
    var = np.empty((n_out, n_cols))
    mean = np.empty((n_out if want_mean else 0, n_cols))
    count = np.empty((n_out if want_mean else 0, n_cols), dtype=np.int64)
    first = np.empty((window, n_cols))
    second = np.empty((window, n_cols))
    used = np.empty((window, n_cols), dtype=np.int64)
    shift = np.empty(n_cols)
    next_first = np.empty(n_cols)
    next_second = np.empty(n_cols)
    next_used = np.empty(n_cols, dtype=np.int64)
    for block in range(n_blocks):
        base = block * window - lead
        if base >= n_out:
            break
        end_row = min(base + window - 1, n_rows - 1)
        for col in range(n_cols):
            x = values[end_row, col]
            shift[col] = x if x == x else 0.0
        for position in range(window - 1, -1, -1):
            row = base + position
            last = position == window - 1
            for col in range(n_cols):
                d = 0.0
                present = 0
                if 0 <= row < n_rows:
                    x = values[row, col]
                    if x == x:
                        d = x - shift[col]
                        present = 1
                if last:
                    first[position, col] = d
                    second[position, col] = d * d
                    used[position, col] = present
                else:
                    first[position, col] = first[position + 1, col] + d
                    second[position, col] = second[position + 1, col] + d * d
                    used[position, col] = used[position + 1, col] + present
        for position in range(window):
            start = base + position
            if position > 0:
                row = base + window + position - 1
                for col in range(n_cols):
                    d = 0.0
                    present = 0
                    if row < n_rows:
                        x = values[row, col]
                        if x == x:
                            d = x - shift[col]
                            present = 1
                    if position == 1:
                        next_first[col] = d
                        next_second[col] = d * d
                        next_used[col] = present
                    else:
                        next_first[col] = next_first[col] + d
                        next_second[col] = next_second[col] + d * d
                        next_used[col] = next_used[col] + present
            if start < 0 or start >= n_out:
                continue
            for col in range(n_cols):
                if position == 0:
                    s1 = first[0, col]
                    s2 = second[0, col]
                    n = used[0, col]
                else:
                    s1 = first[position, col] + next_first[col]
                    s2 = second[position, col] + next_second[col]
                    n = used[position, col] + next_used[col]
                m1 = s1 / n
                v = s2 / n - m1 * m1
                if v < 0.0:
                    v = 0.0
                var[start, col] = v
                if want_mean:
                    mean[start, col] = shift[col] + m1
                    count[start, col] = n
    return count, mean, var


@numba.njit(cache=True, nogil=True)
def has_nan(values: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Whether any value of the 2-D ``values`` is NaN (stops after the first row with one;
    a row is scanned whole, a loop the compiler vectorises)."""
    for row in range(values.shape[0]):
        found = False
        for col in range(values.shape[1]):
            found |= values[row, col] != values[row, col]
        if found:
            return True
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def window_std_complete(values: np.ndarray, window: int, lead: int,
                        scale: float) -> np.ndarray:  # pragma: no cover - compiled
    """``sqrt(var) * scale`` of each window of ``values`` holding no NaN: the variance of
    :func:`window_nanmoments` (the same shifts, the same additions in the same order, the
    same bits), without the counts of values present — every window has ``window`` of
    them — nor a separate pass for the root and the scale."""
    n_rows, n_cols = values.shape
    n_out = n_rows - window + 1
    n_blocks = (lead + n_rows + window - 1) // window
    out = np.empty((n_out, n_cols))
    first = np.empty((window, n_cols))
    second = np.empty((window, n_cols))
    shift = np.empty(n_cols)
    next_first = np.empty(n_cols)
    next_second = np.empty(n_cols)
    for block in range(n_blocks):
        base = block * window - lead
        if base >= n_out:
            break
        end_row = min(base + window - 1, n_rows - 1)
        for col in range(n_cols):
            shift[col] = values[end_row, col]
        for position in range(window - 1, -1, -1):
            row = base + position
            present = 0 <= row < n_rows  # padding rows add 0.0
            for col in range(n_cols):
                d = values[row, col] - shift[col] if present else 0.0
                if position == window - 1:
                    first[position, col] = d
                    second[position, col] = d * d
                else:
                    first[position, col] = first[position + 1, col] + d
                    second[position, col] = second[position + 1, col] + d * d
        for position in range(window):
            start = base + position
            if position > 0:
                row = base + window + position - 1
                present = row < n_rows
                for col in range(n_cols):
                    d = values[row, col] - shift[col] if present else 0.0
                    if position == 1:
                        next_first[col] = d
                        next_second[col] = d * d
                    else:
                        next_first[col] = next_first[col] + d
                        next_second[col] = next_second[col] + d * d
            if start < 0 or start >= n_out:
                continue
            for col in range(n_cols):
                if position == 0:
                    s1 = first[0, col]
                    s2 = second[0, col]
                else:
                    s1 = first[position, col] + next_first[col]
                    s2 = second[position, col] + next_second[col]
                m1 = s1 / window
                v = s2 / window - m1 * m1
                if v < 0.0:
                    v = 0.0
                out[start, col] = np.sqrt(v) * scale
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def window_nanmean_cells(values: np.ndarray, window: int, lead: int, rows: np.ndarray,
                         cols: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`window_nanmean` at the windows starting on ``rows[i]`` of column ``cols[i]``
    alone (cells in row-major order, as a screen keeps them).

    Each is the same sum as there: the suffix of the window's first block, from the
    block's last row back to the window's first (a missing value adds 0.0), plus the
    prefix of the next block, added in the same order — the same bits. The cells of one
    row share their block, so they are taken four at a time, their sums interleaved.
    """
    n = len(rows)
    out = np.empty(n)
    i = 0
    while i < n:
        row = rows[i]
        end = i
        while end < n and rows[end] == row:
            end += 1
        position = (lead + row) % window
        last = row - position + window - 1  # the last row of the window's first block
        while i + 4 <= end:
            c0, c1, c2, c3 = cols[i], cols[i + 1], cols[i + 2], cols[i + 3]
            s0, n0 = _present(values[last, c0])
            s1, n1 = _present(values[last, c1])
            s2, n2 = _present(values[last, c2])
            s3, n3 = _present(values[last, c3])
            for r in range(last - 1, row - 1, -1):
                v0, p0 = _present(values[r, c0])
                v1, p1 = _present(values[r, c1])
                v2, p2 = _present(values[r, c2])
                v3, p3 = _present(values[r, c3])
                s0, s1, s2, s3 = s0 + v0, s1 + v1, s2 + v2, s3 + v3
                n0, n1, n2, n3 = n0 + p0, n1 + p1, n2 + p2, n3 + p3
            if position == 0:
                out[i], out[i + 1] = s0 / n0, s1 / n1
                out[i + 2], out[i + 3] = s2 / n2, s3 / n3
            else:
                h0, m0 = _present(values[last + 1, c0])
                h1, m1 = _present(values[last + 1, c1])
                h2, m2 = _present(values[last + 1, c2])
                h3, m3 = _present(values[last + 1, c3])
                for r in range(last + 2, last + 1 + position):
                    v0, p0 = _present(values[r, c0])
                    v1, p1 = _present(values[r, c1])
                    v2, p2 = _present(values[r, c2])
                    v3, p3 = _present(values[r, c3])
                    h0, h1, h2, h3 = h0 + v0, h1 + v1, h2 + v2, h3 + v3
                    m0, m1, m2, m3 = m0 + p0, m1 + p1, m2 + p2, m3 + p3
                out[i], out[i + 1] = (s0 + h0) / (n0 + m0), (s1 + h1) / (n1 + m1)
                out[i + 2], out[i + 3] = (s2 + h2) / (n2 + m2), (s3 + h3) / (n3 + m3)
            i += 4
        while i < end:
            col = cols[i]
            total, count = _present(values[last, col])
            for r in range(last - 1, row - 1, -1):
                value, present = _present(values[r, col])
                total, count = total + value, count + present
            if position > 0:
                head, head_count = _present(values[last + 1, col])
                for r in range(last + 2, last + 1 + position):
                    value, present = _present(values[r, col])
                    head, head_count = head + value, head_count + present
                total, count = total + head, count + head_count
            out[i] = total / count
            i += 1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _present(x: float) -> tuple[float, int]:  # pragma: no cover - compiled
    """``(x, 1)``, or ``(0.0, 0)`` for a missing (NaN) value."""
    return (x, 1) if x == x else (0.0, 0)


# --- cross-sectional kernels -------------------------------------------------------------------

#: Bits of a positive quiet NaN (numpy's ``np.nan``).
_NAN_BITS = 0x7FF8_0000_0000_0000
_LOW_63 = 0x7FFF_FFFF_FFFF_FFFF


@numba.njit(cache=True, nogil=True)
def ordinal_codes(values: np.ndarray, valid: np.ndarray, ascending: bool,
                  bits: int) -> np.ndarray:  # pragma: no cover - compiled
    """Sortable 64-bit integers: each valid value's order-preserving image (``-value``
    when descending; both zeros map to 0) with its ``bits`` lowest bits replaced by the
    column; invalid and NaN cells get NaN's image, after every number."""
    n_rows, n_cols = values.shape
    codes = np.empty((n_rows, n_cols), dtype=np.int64)
    cell = np.empty(1)
    cell_bits = cell.view(np.int64)  # the bits of the float stored in cell[0]
    low = (np.int64(1) << bits) - 1
    keep = ~low
    for row in range(n_rows):
        for col in range(n_cols):
            x = values[row, col]
            if not valid[row, col] or x != x:
                code = np.int64(_NAN_BITS)
            elif x == 0.0:
                code = np.int64(0)
            else:
                cell[0] = x if ascending else -x
                code = cell_bits[0]
                code ^= (code >> 63) & np.int64(_LOW_63)
            codes[row, col] = (code & keep) | col
    return codes


@numba.njit(cache=True, nogil=True)
def ranks_from_codes(codes: np.ndarray, bits: int, ranks: np.ndarray,
                     ) -> np.ndarray:  # pragma: no cover - compiled
    """Fill ``ranks`` from rows of sorted codes (NaN for NaN's image); return the rows
    where two numbers share all but the column bits (tied or nearly: ranked elsewhere)."""
    n_rows, n_cols = codes.shape
    low = (np.int64(1) << bits) - 1
    nan_high = np.int64(_NAN_BITS) >> bits
    unsure = np.zeros(n_rows, dtype=np.bool_)
    for row in range(n_rows):
        previous = np.int64(0)
        for position in range(n_cols):
            code = codes[row, position]
            high = code >> bits
            col = code & low
            if high == nan_high:
                ranks[row, col] = np.nan
                continue
            if position > 0 and high == previous:
                unsure[row] = True
            previous = high
            ranks[row, col] = position + 1.0
    return np.flatnonzero(unsure)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def normalize_rows(values: np.ndarray, valid: np.ndarray, scale: bool,
                   ) -> np.ndarray:  # pragma: no cover - compiled
    """Per row: ``x - mean`` (``scale``: divided by the population std) over the valid,
    non-NaN cells, summed in column order; NaN elsewhere and in rows without data.

    A row's sum is one chain of dependent additions (column order is the contract), so a
    row alone waits on the latency of each addition. Rows are therefore taken four at a
    time, their four sums interleaved in one loop over the columns; when the four rows
    turn out to have every cell usable (all valid, and sums that are not NaN, so no NaN
    was added) their squares and outputs follow the same way, else each of the four rows
    is done again alone, skipping its unusable cells. Either way each row's additions are
    the same, in the same order: the results of one row at a time, bit for bit.
    """
    n_rows, n_cols = values.shape
    out = np.empty((n_rows, n_cols))
    row = 0
    while row + 4 <= n_rows:
        t0 = t1 = t2 = t3 = 0.0
        for col in range(n_cols):
            t0 += values[row, col]
            t1 += values[row + 1, col]
            t2 += values[row + 2, col]
            t3 += values[row + 3, col]
        usable = not (t0 != t0 or t1 != t1 or t2 != t2 or t3 != t3)
        if usable:
            for r in range(row, row + 4):
                for col in range(n_cols):
                    usable &= valid[r, col]
        if usable:
            _finish_four(values, scale, out, row, t0, t1, t2, t3)
        else:
            for r in range(row, row + 4):
                _normalize_one(values, valid, scale, out, r)
        row += 4
    while row < n_rows:
        _normalize_one(values, valid, scale, out, row)
        row += 1
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _normalize_one(values: np.ndarray, valid: np.ndarray, scale: bool, out: np.ndarray,
                   row: int) -> None:  # pragma: no cover - compiled
    """Row ``row`` of :func:`normalize_rows`, any cell possibly unusable."""
    n_cols = values.shape[1]
    total = 0.0
    count = 0
    for col in range(n_cols):
        x = values[row, col]
        if valid[row, col] and x == x:
            total += x
            count += 1
    mean = total / count
    divisor = 1.0
    if scale:
        squares = 0.0
        for col in range(n_cols):
            x = values[row, col]
            if valid[row, col] and x == x:
                d = x - mean
                squares += d * d
        divisor = np.sqrt(squares / count)
    for col in range(n_cols):
        x = values[row, col]
        if valid[row, col] and x == x:
            out[row, col] = (x - mean) / divisor if scale else x - mean
        else:
            out[row, col] = np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _finish_four(values: np.ndarray, scale: bool, out: np.ndarray, row: int, t0: float,
                 t1: float, t2: float, t3: float) -> None:  # pragma: no cover - compiled
    """Rows ``row .. row + 3`` of :func:`normalize_rows` from their sums ``t0 .. t3``,
    every cell usable: the four rows' squares interleaved, each in column order."""
    n_cols = values.shape[1]
    m0, m1, m2, m3 = t0 / n_cols, t1 / n_cols, t2 / n_cols, t3 / n_cols
    if not scale:
        for col in range(n_cols):
            out[row, col] = values[row, col] - m0
            out[row + 1, col] = values[row + 1, col] - m1
            out[row + 2, col] = values[row + 2, col] - m2
            out[row + 3, col] = values[row + 3, col] - m3
        return
    q0 = q1 = q2 = q3 = 0.0
    for col in range(n_cols):
        d0 = values[row, col] - m0
        d1 = values[row + 1, col] - m1
        d2 = values[row + 2, col] - m2
        d3 = values[row + 3, col] - m3
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
    s0, s1 = np.sqrt(q0 / n_cols), np.sqrt(q1 / n_cols)
    s2, s3 = np.sqrt(q2 / n_cols), np.sqrt(q3 / n_cols)
    for col in range(n_cols):
        out[row, col] = (values[row, col] - m0) / s0
        out[row + 1, col] = (values[row + 1, col] - m1) / s1
        out[row + 2, col] = (values[row + 2, col] - m2) / s2
        out[row + 3, col] = (values[row + 3, col] - m3) / s3


@numba.njit(cache=True, nogil=True)
def top_cells(values: np.ndarray, valid: np.ndarray, n: int,
              ascending: bool) -> np.ndarray:  # pragma: no cover - compiled
    """True for the ``n`` highest (``ascending``: lowest) valid, non-NaN values of each
    row, ties going to the leftmost columns (ordinal ranks ``<= n``).

    One pass over each row keeps the ``n`` best cells seen so far in a heap whose root is
    the worst of them; columns arrive in order, so a value equal to the root's comes from
    a later column and loses the tie: once the heap is full, a cell enters only if
    strictly better than the root. (Bottom values are found as the top of the negated
    values, which order the same way; -0.0 and 0.0 stay equal.)
    """
    n_rows, n_cols = values.shape
    picked = np.zeros((n_rows, n_cols), dtype=np.bool_)
    kept_value = np.empty(n)
    kept_col = np.empty(n, dtype=np.int64)
    sign = -1.0 if ascending else 1.0
    for row in range(n_rows):
        kept = 0
        filled = 0  # columns read while filling the heap with the first usable cells
        while kept < n and filled < n_cols:
            x = values[row, filled] * sign
            if valid[row, filled] and x == x:
                _heap_push(kept_value, kept_col, kept, x, filled)
                kept += 1
            filled += 1
        root = kept_value[0]  # not read unless the heap is full
        for col in range(filled, n_cols):
            x = values[row, col] * sign
            if x > root and valid[row, col]:  # False for NaN
                _heap_replace_root(kept_value, kept_col, n, x, col)
                root = kept_value[0]
        for k in range(kept):
            picked[row, kept_col[k]] = True
    return picked


@numba.njit(cache=True, nogil=True)
def _heap_push(kept_value: np.ndarray, kept_col: np.ndarray, size: int, x: float,
               col: int) -> None:  # pragma: no cover - compiled
    """Add ``(x, col)`` to the heap of ``size`` cells (root: the worst; lower values, then
    later columns, are worse)."""
    node = size
    while node > 0:
        parent = (node - 1) // 2
        if not _worse(x, col, kept_value[parent], kept_col[parent]):
            break
        kept_value[node] = kept_value[parent]
        kept_col[node] = kept_col[parent]
        node = parent
    kept_value[node] = x
    kept_col[node] = col


@numba.njit(cache=True, nogil=True)
def _heap_replace_root(kept_value: np.ndarray, kept_col: np.ndarray, size: int, x: float,
                       col: int) -> None:  # pragma: no cover - compiled
    """Put ``(x, col)`` in place of the root of the full heap and restore its order."""
    node = 0
    while True:
        child = 2 * node + 1
        if child >= size:
            break
        if child + 1 < size and _worse(kept_value[child + 1], kept_col[child + 1],
                                       kept_value[child], kept_col[child]):
            child += 1
        if not _worse(kept_value[child], kept_col[child], x, col):
            break
        kept_value[node] = kept_value[child]
        kept_col[node] = kept_col[child]
        node = child
    kept_value[node] = x
    kept_col[node] = col


@numba.njit(cache=True, nogil=True, inline="always")
def _worse(value: float, col: int, other: float, other_col: int,
           ) -> bool:  # pragma: no cover - compiled
    """Whether ``(value, col)`` ranks after ``(other, other_col)``: a lower value, or an
    equal one in a later column."""
    if value == other:
        return col > other_col
    return value < other


@numba.njit(cache=True, nogil=True)
def ordinal_rank_cells(values: np.ndarray, valid: np.ndarray, ascending: bool, rows: np.ndarray,
                       cols: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Ordinal ranks (ties in column order, as ``scipy.stats.rankdata``) of the cells
    ``(rows[i], cols[i])`` among their row's valid, non-NaN values; NaN for a cell that is
    not one of them.

    Each rank is counted: one plus the row's cells ranked before it (lower, or equal and
    to the left; NaN compares False). The row is first copied into a buffer of keys
    (negated when descending, NaN where not valid), once for the cells of a row that
    follow each other, so that the count is a plain loop the compiler vectorises.
    """
    n_cols = values.shape[1]
    out = np.empty(len(rows))
    keys = np.empty(n_cols)
    sign = 1.0 if ascending else -1.0
    current = -1
    for i in range(len(rows)):
        row, col = rows[i], cols[i]
        if row != current:
            for other in range(n_cols):
                keys[other] = values[row, other] * sign if valid[row, other] else np.nan
            current = row
        x = keys[col]
        if x != x:
            out[i] = np.nan
            continue
        before = 0
        for other in range(n_cols):
            y = keys[other]
            before += (y < x) | ((y == x) & (other < col))
        out[i] = before + 1.0
    return out
