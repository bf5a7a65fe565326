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
ranks back from the sorted keys (the sort itself stays numpy's), and compute each row's
``zscore``/``demean`` in one pass for the sum, one for the squares and one for the
output; their sums run in column order (as bottleneck's, which Zipline uses) rather than
numpy's pairwise order, so they agree with the numpy kernels to rounding, not bit for bit.

The functions are compiled on first use (numba's ``cache=True`` keeps the machine code
beside this file, or in numba's user cache directory, for the next process) and are
imported by the kernels only when a built-in needs them, so ``import foldwise`` does not
load numba. ``error_model="numpy"``: a division by zero gives inf or NaN, as in numpy.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["normalize_rows", "ordinal_codes", "ranks_from_codes", "window_nanmean",
           "window_nanmoments"]


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
    non-NaN cells, summed in column order; NaN elsewhere and in rows without data."""
    n_rows, n_cols = values.shape
    out = np.empty((n_rows, n_cols))
    for row in range(n_rows):
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
    return out
