"""Whole-array rolling kernels over ``(n_rows, n_assets)`` arrays (the time axis is 0).

Built-in factors are computed here once for every date, from running sums, never by
re-reducing each date's window. A long cumulative sum loses precision as it grows (the
difference of two sums of thousands of prices keeps only the last digits of the window's
own sum), so sums restart in **blocks** of ``window`` rows: a window of ``w`` rows starting
anywhere spans at most two blocks, and its sum is the suffix sum of the first block plus
the prefix sum of the second, each over fewer than ``w`` values — the accuracy of summing
the window directly, at the cost of a cumulative sum (the van Herk / Gil-Werman scheme).

* Second moments use values shifted by the value on the last row of the block the window
  starts in (a value of every window starting there), so ``E[x^2] - E[x]^2`` does not
  cancel when the variance is small next to the mean (prices).
* The sums step through the ``window`` positions of all blocks at once (one row of every
  block per numpy call). The means and moments of large inputs run in compiled kernels
  (:mod:`foldwise.pipeline._compiled`) that make the same additions in the same order
  without materialising each step: the same bits, a fraction of the memory traffic.
* Block boundaries sit at absolute row numbers (``origin``, the position of the first row
  in the full panel, fixes them), so a value does not depend on which range was asked for:
  computing dates 100-200 or 0-200 gives the same bits for the dates they share.
* NaN means "no data": ``nan*`` kernels skip it (counting the values they used), the
  others let it propagate as numpy's non-nan reductions would.

:func:`sliding_windows` gives the ``(window, n_assets)`` views that feed a
``CustomFactor.compute`` call per date, without copying the data.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
    "window_nanmean",
    "window_nanmean_cells",
    "window_std",
    "window_sum",
    "window_variance",
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
    """How many ``flags`` are True in each window (exact integer block sums)."""
    shape = (flags.shape[0] - window + 1, *flags.shape[1:])
    if flags.all():
        return np.full(shape, window, dtype=np.int64)
    if not flags.any():
        return np.zeros(shape, dtype=np.int64)
    layout = _Layout(flags.shape[0], window, 0)
    blocks = layout.blocks(flags, np.int64)
    return layout.sums(blocks, blocks)


class _Layout:
    """Rows cut in blocks of ``window`` rows aligned on absolute row numbers.

    Row ``r`` of the values sits at row ``lead + r`` of a zero-padded array of
    ``n_blocks * window`` rows, seen as ``(n_blocks, window, ...)`` blocks.
    """

    def __init__(self, n_rows: int, window: int, origin: int) -> None:
        self.n_rows = n_rows
        self.window = window
        self.lead = origin % window
        self.n_blocks = -(-(self.lead + n_rows) // window)
        self.n_out = n_rows - window + 1

    def blocks(self, values: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """``values`` copied into zero-padded blocks."""
        lead, n_rows, window = self.lead, self.n_rows, self.window
        padded = np.empty((self.n_blocks * window, *values.shape[1:]), dtype=dtype)
        padded[:lead] = 0
        padded[lead:lead + n_rows] = values
        padded[lead + n_rows:] = 0
        return padded.reshape(self.n_blocks, window, *values.shape[1:])

    def clear_padding(self, blocks: np.ndarray) -> None:
        """Set the padding rows of ``blocks`` back to 0 (in place)."""
        flat = blocks.reshape(-1, *blocks.shape[2:])
        flat[:self.lead] = 0
        flat[self.lead + self.n_rows:] = 0

    def rows(self, blocks: np.ndarray) -> np.ndarray:
        """The rows of ``blocks`` that hold values (a view)."""
        return blocks.reshape(-1, *blocks.shape[2:])[self.lead:self.lead + self.n_rows]

    def per_row(self, per_block: np.ndarray) -> np.ndarray:
        """``per_block[b]`` for each output row, ``b`` the block the row's window starts in."""
        first = self.lead
        return np.repeat(per_block, self.window, axis=0)[first:first + self.n_out]

    def sums(self, own: np.ndarray, following: np.ndarray) -> np.ndarray:
        """Sum every window of ``window`` rows by the two-block scheme (blocks in, rows out).

        A window starting at row ``s`` of block ``b`` sums the suffix of block ``b`` from
        ``s`` (taken from ``own``) and the prefix of block ``b + 1`` up to the window's end
        (taken from ``following``); the two differ only when values are shifted per block
        (``following`` then holds each row shifted by the previous block's shift, the one
        of the windows that reach into it). Suffixes are summed from the block's end, so a
        value depends on no row before its window: results do not depend on the range
        computed. Both running sums step through the ``window`` positions of all blocks at
        once, adding one row of every block per step (the additions of ``numpy.cumsum``
        along the block, in the same order, without its strided inner loop).
        """
        window, lead, n_out = self.window, self.lead, self.n_out
        tail = own.shape[2:]
        suffix = np.empty(own.shape, dtype=own.dtype)
        suffix[:, -1] = own[:, -1]
        for position in range(window - 2, -1, -1):
            np.add(suffix[:, position + 1], own[:, position], out=suffix[:, position])
        prefix = np.empty(following.shape, dtype=following.dtype)
        prefix[:, 0] = following[:, 0]
        for position in range(1, window):
            np.add(prefix[:, position - 1], following[:, position], out=prefix[:, position])
        size = self.n_blocks * window
        head = suffix.reshape(size, *tail)[lead:lead + n_out]
        rest = prefix.reshape(size, *tail)[lead + window - 1:lead + window - 1 + n_out]
        # A window starting on a block's first row is that block: its suffix sum alone.
        aligned = slice((-lead) % window, None, window)
        whole = head[aligned].copy()
        np.add(head, rest, out=head)
        head[aligned] = whole
        return head


def _window_sums(own: np.ndarray, following: np.ndarray, window: int, origin: int) -> np.ndarray:
    """Sum every window of ``window`` rows by the two-block scheme (see ``_Layout.sums``)."""
    layout = _Layout(own.shape[0], window, origin)
    own_blocks = layout.blocks(own)
    following_blocks = own_blocks if following is own else layout.blocks(following)
    return layout.sums(own_blocks, following_blocks)


def _block_ends(values: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per-block shifts: the value on the block's last row, and on the previous block's.

    Every window starting in a block contains that block's last row, so the shift is a
    value of the window itself (a constant window gives an exact zero variance) and depends
    on no row after the window (nor before the rows asked for): results stay causal and
    independent of the range computed. A missing last value shifts by 0.
    """
    window, lead = layout.window, layout.lead
    last_row = np.minimum((np.arange(layout.n_blocks) + 1) * window - 1 - lead, layout.n_rows - 1)
    ends = values[last_row]
    ends = np.where(np.isnan(ends), 0.0, ends)
    previous = ends[np.maximum(np.arange(layout.n_blocks) - 1, 0)]
    return ends, previous


def _shifted_blocks(values: np.ndarray, present: np.ndarray | None, layout: _Layout,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocks of ``values`` minus their own block's shift and minus the previous block's.

    Missing values (``present`` False; None when all are present) and padding become 0.
    Returns both block arrays and the per-block shifts.
    """
    ends, previous = _block_ends(values, layout)
    blocks = layout.blocks(values)
    expand = (slice(None), None)
    own = np.subtract(blocks, ends[expand])
    following = np.subtract(blocks, previous[expand], out=blocks)
    for shifted in (own, following):
        layout.clear_padding(shifted)
        if present is not None:
            np.copyto(layout.rows(shifted), 0.0, where=~present)
    return own, following, ends


def window_sum(values: np.ndarray, window: int, origin: int = 0) -> np.ndarray:
    """Sum of each window of ``window`` rows; NaN must already be replaced (e.g. by 0).

    Examples
    --------
    >>> window_sum(np.arange(6.0).reshape(6, 1), 3)[:, 0]
    array([ 3.,  6.,  9., 12.])
    """
    return _window_sums(values, values, window, origin)


#: Inputs of at least this many cells go to the compiled kernels of
#: :mod:`foldwise.pipeline._compiled` (same results, bit for bit, in a fraction of the
#: time); smaller ones stay in numpy, where loading numba (about a second, once per
#: process) would cost more than it saves.
COMPILED_MIN_CELLS = 250_000


def _compiled(values: np.ndarray) -> Any:
    """The compiled kernels module if ``values`` is large enough to use it, else None."""
    if values.size < COMPILED_MIN_CELLS:
        return None
    from foldwise.pipeline import _compiled as module

    return module


def _float_rows(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def window_nanmean(values: np.ndarray, window: int, origin: int = 0) -> np.ndarray:
    """NaN-skipping mean of each window (NaN for a window without data): the two-block
    sums of the values present divided by their count.

    Examples
    --------
    >>> window_nanmean(np.array([[1.0], [np.nan], [4.0], [6.0]]), 2)[:, 0]
    array([1., 4., 5.])
    """
    compiled = _compiled(values)
    if compiled is not None:
        return compiled.window_nanmean(_float_rows(values), window, origin % window)
    return _nanmean_numpy(values, window, origin)


def window_nanmean_cells(values: np.ndarray, window: int, origin: int, rows: np.ndarray,
                         cols: np.ndarray) -> np.ndarray | None:
    """:func:`window_nanmean` of the windows starting on ``rows`` in columns ``cols`` alone
    (cells in row-major order), bit for bit; None where the whole kernel is the cheaper
    (or the smaller) one: a window costs one scattered read per row, so cells pay only
    while they are few next to the array (fewer than one per ``window`` cells), and
    inputs too small for the compiled kernels are computed whole anyway.

    Examples
    --------
    >>> x = np.arange(600_000.0).reshape(-1, 2)
    >>> rows, cols = np.array([5, 9]), np.array([1, 0])
    >>> np.array_equal(window_nanmean_cells(x, 3, 0, rows, cols),
    ...                window_nanmean(x, 3)[rows, cols])
    True
    """
    compiled = _compiled(values)
    if compiled is None or len(rows) * window > values.size:
        return None
    return compiled.window_nanmean_cells(_float_rows(values), window, origin % window,
                                         rows, cols)


def _nanmean_numpy(values: np.ndarray, window: int, origin: int) -> np.ndarray:
    present = ~np.isnan(values)
    if present.all():
        return np.divide(window_sum(values, window, origin), window)
    sums = window_sum(np.where(present, values, 0.0), window, origin)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(sums, window_counts(present, window), out=sums)


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
    compiled = _compiled(values)
    if compiled is not None:
        return Moments(*compiled.window_nanmoments(_float_rows(values), window,
                                                   origin % window, True))
    layout, count, m1, var, ends = _moments_numpy(values, window, origin)
    mean = np.add(layout.per_row(ends), m1, out=m1)
    if isinstance(count, int):
        count = np.full(mean.shape, window, dtype=np.int64)
    return Moments(count, mean, var)


def window_variance(values: np.ndarray, window: int, origin: int = 0) -> np.ndarray:
    """The ``var`` of :func:`window_moments` alone (no mean or count array is built).

    Examples
    --------
    >>> window_variance(np.array([[1.0], [2.0], [np.nan], [4.0]]), 2)[:, 0]
    array([0.25, 0.  , 0.  ])
    """
    compiled = _compiled(values)
    if compiled is not None:
        return compiled.window_nanmoments(_float_rows(values), window, origin % window,
                                          False)[2]
    return _moments_numpy(values, window, origin)[3]


def window_std(values: np.ndarray, window: int, origin: int = 0,
               scale: float = 1.0) -> np.ndarray:
    """``sqrt(window_variance(...)) * scale``: the population standard deviation of each
    window, scaled. A large input holding no NaN takes one compiled pass that gives the
    same bits (no counts of values present, no separate root and product).

    Examples
    --------
    >>> window_std(np.array([[1.0], [3.0], [np.nan], [4.0]]), 2, scale=2.0)[:, 0]
    array([2., 0., 0.])
    """
    compiled = _compiled(values)
    if compiled is not None:
        rows = _float_rows(values)
        if not compiled.has_nan(rows):
            return compiled.window_std_complete(rows, window, origin % window, float(scale))
    variance = window_variance(values, window, origin)
    std = np.sqrt(variance, out=variance)
    return np.multiply(std, scale, out=std)


def _moments_numpy(values: np.ndarray, window: int, origin: int,
                   ) -> tuple[_Layout, np.ndarray | int, np.ndarray, np.ndarray, np.ndarray]:
    """Layout, count, mean of the shifted values, variance, and the per-block shifts."""
    layout = _Layout(values.shape[0], window, origin)
    present = ~np.isnan(values)
    complete = bool(present.all())
    count: np.ndarray | int = window if complete else window_counts(present, window)
    own, following, ends = _shifted_blocks(values, None if complete else present, layout)
    first = layout.sums(own, following)
    np.multiply(own, own, out=own)
    np.multiply(following, following, out=following)
    second = layout.sums(own, following)
    del own, following
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = np.divide(first, count, out=first)
        var = np.divide(second, count, out=second)
        var -= m1 * m1
        np.maximum(var, 0.0, out=var)
    return layout, count, m1, var, ends


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
    layout = _Layout(x.shape[0], window, origin)
    parts = []
    for series in (x, y):
        present = ~np.isnan(series)
        own, following, ends = _shifted_blocks(series, None if present.all() else present, layout)
        parts.append((own, following, layout.per_row(ends)))
    (x_own, x_next, x_shift), (y_own, y_next, y_shift) = parts

    def mean_of(own: np.ndarray, following: np.ndarray) -> np.ndarray:
        return layout.sums(own, following) / window

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
