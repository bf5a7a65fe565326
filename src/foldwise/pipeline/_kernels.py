"""Whole-array rolling kernels over ``(n_rows, n_assets)`` arrays (the time axis is 0).

Built-in factors are computed here once for every date, from running sums, never by
re-reducing each date's window. A long cumulative sum loses precision as it grows (the
difference of two sums of thousands of prices keeps only the last digits of the window's
own sum), so sums restart in **blocks** of ``window`` rows: a window of ``w`` rows starting
anywhere spans at most two blocks, and its sum is the suffix sum of the first block plus
the prefix sum of the second, each over fewer than ``w`` values — the accuracy of summing
the window directly, at the cost of a cumulative sum (the van Herk / Gil-Werman scheme).

* Second moments use values shifted by the mean of the block the window starts in, so
  ``E[x^2] - E[x]^2`` does not cancel when the variance is small next to the mean (prices).
* Block boundaries sit at absolute row numbers (``origin``, the position of the first row
  in the full panel, fixes them), so a value does not depend on which range was asked for:
  computing dates 100-200 or 0-200 gives the same bits for the dates they share.
* NaN means "no data": ``nan*`` kernels skip it (counting the values they used), the
  others let it propagate as numpy's non-nan reductions would.

:func:`sliding_windows` gives the ``(window, n_assets)`` views that feed a
``CustomFactor.compute`` call per date, without copying the data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "CoMoments",
    "Moments",
    "sliding_windows",
    "window_comoments",
    "window_counts",
    "window_ewm",
    "window_linear_sum",
    "window_max_drawdown",
    "window_moments",
    "window_sum",
]


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """A read-only ``(n_rows - window + 1, window, n_cols)`` view: entry ``t`` is rows
    ``t .. t + window - 1`` of ``values``, oldest first. No data is copied.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(4, 2)
    >>> w = sliding_windows(x, 3)
    >>> w.shape, np.shares_memory(w, x)
    ((2, 3, 2), True)
    >>> w[1]
    array([[2., 3.],
           [4., 5.],
           [6., 7.]])
    """
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return np.moveaxis(view, -1, 1)


def window_counts(flags: np.ndarray, window: int) -> np.ndarray:
    """How many ``flags`` are True in each window (exact integer running sums)."""
    shape = (flags.shape[0] - window + 1, *flags.shape[1:])
    if flags.all():
        return np.full(shape, window, dtype=np.int64)
    if not flags.any():
        return np.zeros(shape, dtype=np.int64)
    running = np.cumsum(flags, axis=0, dtype=np.int64)
    out = running[window - 1:].copy()
    out[1:] -= running[:-window]
    return out


def _window_sums(own: np.ndarray, following: np.ndarray, window: int, origin: int) -> np.ndarray:
    """Sum every window of ``window`` rows by the two-block scheme.

    A window starting at row ``s`` of block ``b`` sums the suffix of block ``b`` from ``s``
    (taken from ``own``) and the prefix of block ``b + 1`` up to the window's end (taken
    from ``following``); the two arrays differ only when values are shifted per block
    (``following`` then holds each row shifted by the previous block's shift, the one of
    the windows that reach into it). Suffixes are summed from the block's end, so a value
    depends on no row before its window: results do not depend on the range computed.
    """
    n_rows = own.shape[0]
    n_out = n_rows - window + 1
    lead = origin % window
    n_blocks = -(-(lead + n_rows) // window)
    size = n_blocks * window
    tail = own.shape[1:]

    def blocked(values: np.ndarray) -> np.ndarray:
        padded = np.zeros((size, *tail))
        padded[lead:lead + n_rows] = values
        return padded.reshape(n_blocks, window, *tail)

    own_blocks = blocked(own)
    suffix = np.empty_like(own_blocks)
    np.cumsum(own_blocks[:, ::-1], axis=1, out=suffix[:, ::-1])  # summed from each block's end
    suffix = suffix.reshape(size, *tail)
    prefix = np.cumsum(own_blocks if following is own else blocked(following), axis=1)
    prefix = prefix.reshape(size, *tail)
    head = suffix[lead:lead + n_out]
    rest = prefix[lead + window - 1:lead + window - 1 + n_out]
    split = ((np.arange(n_out) + lead) % window != 0).reshape(n_out, *([1] * len(tail)))
    return np.where(split, head + rest, head)


def _block_shifts(values: np.ndarray, window: int, origin: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row shifts: the value on the last row of the row's block, and of the block before.

    Every window starting in a block contains that block's last row, so the shift is a
    value of the window itself (a constant window gives an exact zero variance) and depends
    on no row after the window (nor before the rows asked for): results stay causal and
    independent of the range computed. A missing last value shifts by 0.
    """
    n_rows = values.shape[0]
    lead = origin % window
    n_blocks = -(-(lead + n_rows) // window)
    block_of_row = (np.arange(n_rows) + lead) // window
    last_row = np.minimum((np.arange(n_blocks) + 1) * window - 1 - lead, n_rows - 1)
    ends = values[last_row]
    ends = np.where(np.isnan(ends), 0.0, ends)
    previous = np.maximum(block_of_row - 1, 0)
    return ends[block_of_row], ends[previous]


def window_sum(values: np.ndarray, window: int, origin: int = 0) -> np.ndarray:
    """Sum of each window of ``window`` rows; NaN must already be replaced (e.g. by 0).

    Examples
    --------
    >>> window_sum(np.arange(6.0).reshape(6, 1), 3)[:, 0]
    array([ 3.,  6.,  9., 12.])
    """
    return _window_sums(values, values, window, origin)


class Moments(NamedTuple):
    """Count of non-NaN values, their mean and population variance, per window.

    (The count is ``n_valid``: a field named ``count`` would hide ``tuple.count``.)
    """

    n_valid: np.ndarray
    mean: np.ndarray
    var: np.ndarray


def window_moments(values: np.ndarray, window: int, origin: int = 0) -> Moments:
    """NaN-skipping count, mean and variance (``ddof=0``) of each window.

    Mean and variance are NaN for windows without data; the variance is clamped at 0.

    Examples
    --------
    >>> m = window_moments(np.array([[1.0], [2.0], [np.nan], [4.0]]), 2)
    >>> m.n_valid[:, 0], m.mean[:, 0], m.var[:, 0]
    (array([2, 1, 1]), array([1.5, 2. , 4. ]), array([0.25, 0.  , 0.  ]))
    """
    present = ~np.isnan(values)
    count = window_counts(present, window)
    own_shift, previous_shift = _block_shifts(values, window, origin)
    own = np.where(present, values - own_shift, 0.0)
    following = np.where(present, values - previous_shift, 0.0)
    first = _window_sums(own, following, window, origin)
    second = _window_sums(own * own, following * following, window, origin)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = first / count
        var = np.maximum(second / count - m1 * m1, 0.0)
    mean = own_shift[: len(count)] + m1
    return Moments(count, mean, var)


class CoMoments(NamedTuple):
    """Means, variances and covariance (``ddof=0``) of two series over each window."""

    mean_x: np.ndarray
    mean_y: np.ndarray
    var_x: np.ndarray
    var_y: np.ndarray
    cov: np.ndarray


def window_comoments(x: np.ndarray, y: np.ndarray, window: int, origin: int = 0) -> CoMoments:
    """Joint moments of ``x`` (rows x assets) and ``y`` (same shape or one column).

    Any NaN in a window of either series makes that window's moments NaN (the means of
    numpy's non-nan reductions).
    """
    missing = window_counts(np.isnan(x) | np.isnan(y), window) > 0
    parts = []
    for series in (x, y):
        own_shift, previous_shift = _block_shifts(series, window, origin)
        clean = np.isnan(series)
        parts.append((np.where(clean, 0.0, series - own_shift),
                      np.where(clean, 0.0, series - previous_shift), own_shift))
    (x_own, x_next, x_shift), (y_own, y_next, y_shift) = parts

    def mean_of(own: np.ndarray, following: np.ndarray) -> np.ndarray:
        return _window_sums(own, following, window, origin) / window

    mx, my = mean_of(x_own, x_next), mean_of(y_own, y_next)
    var_x = np.maximum(mean_of(x_own * x_own, x_next * x_next) - mx * mx, 0.0)
    var_y = np.maximum(mean_of(y_own * y_own, y_next * y_next) - my * my, 0.0)
    cov = mean_of(x_own * y_own, x_next * y_next) - mx * my
    n_out = len(missing)
    nan = np.nan
    return CoMoments(
        np.where(missing, nan, x_shift[:n_out] + mx), np.where(missing, nan, y_shift[:n_out] + my),
        np.where(missing, nan, var_x), np.where(missing, nan, var_y), np.where(missing, nan, cov))


def window_ewm(values: np.ndarray, window: int, decay: float, origin: int = 0,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially weighted mean and variance of each window (weights normalised).

    The newest row of a window weighs 1, the one before ``decay``, then ``decay**2``...
    back to ``decay**(window - 1)``. Any NaN in a window makes it NaN (as ``numpy.average``).
    The variance is the weighted population variance ``sum(w (x - m)^2) / sum(w)``.

    With decaying weights a fixed shift cannot sit near the heavily weighted rows of every
    window, so the moments are accumulated with the weighted updates of West (1979), which
    never subtract large sums: within each block, backwards from its last row (the part of
    a window in its first block) and forwards with decay (the part in its second block);
    the two parts are merged with the pairwise formula of Chan et al.
    """
    n_rows = values.shape[0]
    n_out = n_rows - window + 1
    lead = origin % window
    n_blocks = -(-(lead + n_rows) // window)
    tail = values.shape[1:]
    padded = np.full((n_blocks * window, *tail), np.nan)
    padded[lead:lead + n_rows] = values
    blocks = padded.reshape(n_blocks, window, *tail)
    shape = (n_blocks, window, *tail)
    back_mean, back_m2 = np.empty(shape), np.empty(shape)
    fore_mean, fore_m2 = np.empty(shape), np.empty(shape)
    back_weight = np.cumsum(decay ** np.arange(window, dtype=np.float64))[::-1].copy()
    fore_weight = np.cumsum(decay ** np.arange(window, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        mean, m2 = blocks[:, -1].copy(), np.zeros((n_blocks, *tail))
        back_mean[:, -1], back_m2[:, -1] = mean, m2
        for position in range(window - 2, -1, -1):
            weight = decay ** (window - 1 - position)
            delta = blocks[:, position] - mean
            mean = mean + delta * (weight / back_weight[position])
            m2 = m2 + weight * delta * (blocks[:, position] - mean)
            back_mean[:, position], back_m2[:, position] = mean, m2
        mean, m2 = blocks[:, 0].copy(), np.zeros((n_blocks, *tail))
        fore_mean[:, 0], fore_m2[:, 0] = mean, m2
        for position in range(1, window):
            delta = blocks[:, position] - mean
            mean = mean + delta / fore_weight[position]
            m2 = decay * m2 + delta * (blocks[:, position] - mean)
            fore_mean[:, position], fore_m2[:, position] = mean, m2
        starts = np.arange(n_out) + lead
        offsets = starts % window
        first = (starts // window, offsets)
        last = (starts // window + 1, offsets - 1)
        expand = (slice(None), *([None] * len(tail)))
        scale = (decay ** offsets)[expand]
        weight_a = (back_weight[offsets] * decay ** offsets)[expand]
        mean_a, m2_a = back_mean[first], back_m2[first] * scale
        split = offsets != 0
        last_block = np.minimum(last[0], n_blocks - 1)
        weight_b = np.where(split, fore_weight[last[1] % window], 0.0)[expand]
        mean_b = fore_mean[last_block, last[1] % window]
        m2_b = np.where(split[expand], fore_m2[last_block, last[1] % window], 0.0)
        total = weight_a + weight_b
        delta = np.where(split[expand], mean_b - mean_a, 0.0)
        mean = mean_a + delta * (weight_b / total)
        m2 = m2_a + m2_b + delta * delta * (weight_a * weight_b / total)
        return mean, np.maximum(m2 / total, 0.0)


def window_linear_sum(values: np.ndarray, window: int, origin: int = 0) -> np.ndarray:
    """``sum((k + 1) * x_k)`` over each window, ``k = 0`` the oldest row; NaN counts as 0.

    Weights are taken relative to the start of the window's first block, so the two
    running sums combined stay of the window's own magnitude.

    Examples
    --------
    >>> window_linear_sum(np.ones((4, 1)), 3)[:, 0]
    array([6., 6.])
    """
    clean = np.where(np.isnan(values), 0.0, values)
    n_rows = values.shape[0]
    lead = origin % window
    position = ((np.arange(n_rows) + lead) % window).reshape(n_rows, *([1] * (values.ndim - 1)))
    plain = window_sum(clean, window, origin)
    ramp = _window_sums((position + 1.0) * clean, (position + window + 1.0) * clean, window,
                        origin)
    n_out = n_rows - window + 1
    offsets = ((np.arange(n_out) + lead) % window).reshape(n_out, *([1] * (values.ndim - 1)))
    return ramp - offsets * plain


def window_max_drawdown(values: np.ndarray, window: int) -> np.ndarray:
    """Zipline's ``MaxDrawdown`` of each window: ``(peak - trough) / trough``.

    The trough is the first row where ``running max - value`` (NaN skipped by the running
    max) is largest, the peak the running max there. A drawdown has no running form, so
    this walks the ``window`` offsets once, each step over every window at once.
    """
    n_out = values.shape[0] - window + 1
    peak = values[:n_out].copy()
    trough = peak.copy()
    running = peak.copy()
    with np.errstate(invalid="ignore"):
        best = np.where(np.isnan(running - trough), -np.inf, 0.0)
        for offset in range(1, window):
            current = values[offset:offset + n_out]
            running = np.fmax(running, current)
            drawdown = running - current
            drawdown = np.where(np.isnan(drawdown), -np.inf, drawdown)
            better = drawdown > best
            best = np.where(better, drawdown, best)
            peak = np.where(better, running, peak)
            trough = np.where(better, current, trough)
        return (peak - trough) / trough
