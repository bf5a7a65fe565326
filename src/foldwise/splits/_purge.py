"""Purge and embargo, as pure functions of bar positions.

Definitions (positions are bar numbers ``0..n-1``, intervals include both ends):

* Each bar ``i`` has a **label interval** ``[i, e_i]``: the bars whose prices decide the
  outcome (label, holding-period return) attributed to bar ``i``. With ``purge=h`` bars,
  ``e_i = i + h``; with a calendar span, ``e_i`` is the last bar dated at or before
  ``date_i + span``; with explicit end times (:class:`LabelEnds`), ``e_i`` is the last bar
  dated at or before the end time of bar ``i``. ``purge=0`` means a bar's label is the bar
  itself.
* A **test window** is a maximal run ``[a, b]`` of consecutive test bars. What its labels
  cover is ``[a, E]`` with ``E = max(e_a, ..., e_b)``.
* **Purge** removes from training every bar whose label interval overlaps what a test window
  covers: bar ``i`` is purged when ``i <= E`` and ``e_i >= a``. Before the window that is the
  bars whose horizon reaches into it; after it (k-fold), the bars that fall inside the
  labels of its last bars.
* **Embargo** removes from training the bars right after what a test window covers:
  ``E < i <= E + m`` for ``embargo=m`` bars, ``m = ceil(f * n)`` for a fraction ``f`` of the
  sample, or the bars dated in ``(date_E, date_E + span]`` for a calendar span.

:func:`label_ends` and :func:`embargo_ends` turn the settings into one array each (the last
bar reached from every bar), and :func:`purge_and_embargo` applies them to a training
window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from foldwise._hashing import hash_arrays
from foldwise.errors import SplitError

from ._sizes import Span, check_span_fits, parse_size
from ._timeline import Timeline

__all__ = ["LabelEnds", "embargo_ends", "label_ends", "parse_purge", "positions_to_ranges",
           "purge_and_embargo", "ranges_to_positions"]


class LabelEnds:
    """Explicit end time of every bar's label (López de Prado's ``t1``), for ``purge=``.

    Parameters
    ----------
    ends
        One entry per bar of the data to split: the date at which the bar's label (or
        position) ends — a DatetimeIndex, datetime64 array or a Series of dates (a Series
        indexed by dates must be indexed by the data's own dates) — or the integer position
        of the last bar of each label. No entry may end before its own bar.

    Examples
    --------
    >>> ends = LabelEnds(np.array([2, 3, 3, 4, 4]))
    >>> ends
    LabelEnds(5 bars, positions)
    """

    __slots__ = ("_dates", "_index", "_key", "_positions")

    def __init__(self, ends: Any) -> None:
        index = None
        if isinstance(ends, pd.Series):
            index = ends.index if isinstance(ends.index, pd.DatetimeIndex) else None
            ends = ends.to_numpy() if not isinstance(ends.dtype, pd.DatetimeTZDtype) else \
                pd.DatetimeIndex(ends)
        if isinstance(ends, pd.DatetimeIndex) or (
                isinstance(ends, np.ndarray) and ends.dtype.kind == "M"):
            dates = pd.DatetimeIndex(ends).as_unit("ns")
            if dates.hasnans:
                position = int(np.flatnonzero(dates.isna())[0])
                raise SplitError(
                    f"purge: the label end of bar {position} is missing (NaT). Give every bar "
                    "an end time; a bar whose label is the bar itself ends at its own date.")
            self._dates: pd.DatetimeIndex | None = dates
            self._positions: np.ndarray | None = None
            arrays = [dates.asi8]
            header = {"kind": "dates", "tz": str(dates.tz)}
        else:
            array = np.asarray(ends)
            if array.ndim != 1 or array.dtype.kind not in "iu":
                raise SplitError(
                    f"purge: label ends must be one date or one integer position per bar, got "
                    f"an array of {array.dtype} with shape {array.shape}. Pass a DatetimeIndex, "
                    "a Series of dates, or an int array of the last bar of each label.")
            self._dates = None
            self._positions = array.astype(np.int64)
            self._positions.flags.writeable = False
            arrays = [self._positions]
            header = {"kind": "positions"}
        self._index = index
        if index is not None:
            arrays.append(index.as_unit("ns").asi8)
            header["index_tz"] = str(index.tz)
        self._key = hash_arrays(header, arrays)

    def __len__(self) -> int:
        return len(self._dates) if self._dates is not None else len(self._end_positions())

    def _end_positions(self) -> np.ndarray:
        # Exactly one of _dates and _positions is set (by __init__).
        assert self._positions is not None
        return self._positions

    @property
    def identity(self) -> dict[str, Any]:
        """What identifies these ends in a splitter's configuration (not the whole array)."""
        kind = "dates" if self._dates is not None else "positions"
        return {"label_ends": self._key, "kind": kind, "n": len(self)}

    def __repr__(self) -> str:
        kind = "dates" if self._dates is not None else "positions"
        return f"LabelEnds({len(self)} bars, {kind})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelEnds) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def resolve(self, timeline: Timeline) -> np.ndarray:
        """The last bar position of each bar's label, checked against ``timeline``."""
        n = timeline.n
        if len(self) != n:
            raise SplitError(
                f"purge: {len(self)} label ends were given but X has {n} bars "
                f"({timeline.describe()}). Give exactly one end per bar of the data you split.")
        if self._index is not None and (
                timeline.dates is None or not self._index.equals(timeline.dates)):
            raise SplitError(
                "purge: the label ends are a Series indexed by other dates than the bars of X "
                f"({timeline.describe()}). Reindex them to the data's dates first, e.g. "
                "ends.reindex(data.index).")
        ends: np.ndarray
        if self._dates is not None:
            if timeline.dates is None:
                raise SplitError(
                    f"purge: label ends are dates but X ({timeline.describe()}) has no dates. "
                    "Pass a MarketData or a DataFrame with a DatetimeIndex, or give the ends as "
                    "integer bar positions.")
            try:
                ends = timeline.dates.searchsorted(self._dates, side="right") - 1
            except TypeError as exc:
                raise SplitError(
                    f"purge: the label end times cannot be compared with the dates of X ({exc}); "
                    "make both naive or both in the same time zone.") from exc
        else:
            ends = self._end_positions()
        ends = np.asarray(ends, dtype=np.int64)
        before = ends < np.arange(n)
        if before.any():
            position = int(np.flatnonzero(before)[0])
            raise SplitError(
                f"purge: the label of {timeline.label(position)} (bar {position}) ends before "
                f"the bar itself (at bar {int(ends[position])}). A label ends at or after its "
                "own bar; check the end times (are they shifted the wrong way?).")
        return np.minimum(ends, n - 1)


def parse_purge(value: Any) -> int | Span | LabelEnds:
    """Check ``purge`` on its own: bars, a calendar span or per-bar label ends."""
    if isinstance(value, LabelEnds):
        return value
    if isinstance(value, (np.ndarray, pd.Series, pd.Index, list, tuple)):
        return LabelEnds(value)
    return parse_size(value, "purge", allow_zero=True)


def _reach(spec: int | Span, timeline: Timeline, name: str) -> np.ndarray:
    """For every bar, the last bar ``spec`` reaches from it (inclusive, capped at n - 1)."""
    n = timeline.n
    if isinstance(spec, Span):
        dates = check_span_fits(timeline, name, spec)
        reached = dates.searchsorted(spec.shift_all(dates), side="right") - 1
        return np.asarray(reached, dtype=np.int64)
    return np.minimum(np.arange(n, dtype=np.int64) + int(spec), n - 1)


def label_ends(purge: int | Span | LabelEnds, timeline: Timeline) -> np.ndarray:
    """The last bar of every bar's label interval (see the module docstring).

    Examples
    --------
    >>> from foldwise.splits._timeline import as_timeline
    >>> label_ends(2, as_timeline(np.zeros(5)))
    array([2, 3, 4, 4, 4])
    """
    if isinstance(purge, LabelEnds):
        return purge.resolve(timeline)
    return _reach(purge, timeline, "purge")


def embargo_ends(embargo: int | float | Span, timeline: Timeline) -> np.ndarray:
    """For every bar ``E``, the last bar embargoed when a test window's labels end at ``E``.

    Examples
    --------
    >>> from foldwise.splits._timeline import as_timeline
    >>> embargo_ends(0.2, as_timeline(np.zeros(5)))  # ceil(0.2 * 5) = 1 bar
    array([1, 2, 3, 4, 4])
    """
    if isinstance(embargo, float):
        bars = math.ceil(embargo * timeline.n - 1e-9) if embargo > 0 else 0
        return _reach(bars, timeline, "embargo")
    return _reach(embargo, timeline, "embargo")


def positions_to_ranges(positions: ArrayLike) -> np.ndarray:
    """Compress sorted bar positions into ``[start, stop)`` ranges.

    Each row of the result is one maximal run of consecutive positions: ``start`` is its
    first position and ``stop`` one past its last, as in ``range(start, stop)``. A fold's
    training set after purging is a few such runs, so this is how fold windows are stored
    and evaluated compactly. :func:`ranges_to_positions` is the inverse.

    Parameters
    ----------
    positions : array_like of int, 1-D
        Bar positions, strictly increasing (as ``Fold.train`` and ``Fold.test`` are).

    Returns
    -------
    numpy.ndarray of int64, shape ``(k, 2)``
        The ranges, sorted and disjoint; two ranges never touch (``stop`` of one is less
        than ``start`` of the next), since touching runs are one run.

    Raises
    ------
    SplitError
        If ``positions`` is not one-dimensional, not integer, or not strictly increasing.

    See Also
    --------
    ranges_to_positions : the inverse.

    Examples
    --------
    >>> import numpy as np
    >>> from foldwise.splits import positions_to_ranges
    >>> positions_to_ranges(np.array([0, 1, 2, 5, 6, 9])).tolist()
    [[0, 3], [5, 7], [9, 10]]
    >>> positions_to_ranges([]).shape
    (0, 2)
    """
    array = np.asarray(positions)
    if array.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise SplitError(
            f"positions_to_ranges: positions must be a 1-D array of integer bar positions, "
            f"got an array of {array.dtype} with shape {array.shape}.")
    indices = array.astype(np.int64, copy=False)
    steps = np.diff(indices)
    if (steps <= 0).any():
        at = int(np.flatnonzero(steps <= 0)[0])
        raise SplitError(
            f"positions_to_ranges: positions must be strictly increasing, but position "
            f"{int(indices[at + 1])} (entry {at + 1}) follows {int(indices[at])}. Sort them "
            "and drop repeats first, e.g. np.unique(positions).")
    breaks = np.flatnonzero(steps != 1) + 1
    starts = indices[np.concatenate(([0], breaks))]
    stops = indices[np.concatenate((breaks - 1, [indices.size - 1]))] + 1
    return np.column_stack((starts, stops))


def ranges_to_positions(ranges: ArrayLike) -> np.ndarray:
    """Expand ``[start, stop)`` ranges into the bar positions they cover.

    The inverse of :func:`positions_to_ranges`: the positions of every range, range after
    range, in the order given.

    Parameters
    ----------
    ranges : array_like of int, shape ``(k, 2)``
        Rows of ``(start, stop)`` with ``start <= stop`` (``stop`` excluded); a list of
        pairs works too, and an empty list gives no positions.

    Returns
    -------
    numpy.ndarray of int64, 1-D
        The positions; sorted if the ranges are sorted and disjoint.

    Raises
    ------
    SplitError
        If ``ranges`` is not a ``(k, 2)`` array of integers or a range ends before it starts.

    See Also
    --------
    positions_to_ranges : the inverse.

    Examples
    --------
    >>> from foldwise.splits import ranges_to_positions
    >>> ranges_to_positions([[0, 3], [5, 7], [9, 10]]).tolist()
    [0, 1, 2, 5, 6, 9]
    >>> ranges_to_positions([]).tolist()
    []
    """
    array = np.asarray(ranges)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2 or array.dtype.kind not in "iu":
        raise SplitError(
            f"ranges_to_positions: ranges must be (start, stop) pairs of integers, shape "
            f"(k, 2); got an array of {array.dtype} with shape {array.shape}.")
    starts, stops = array[:, 0].astype(np.int64), array[:, 1].astype(np.int64)
    lengths = stops - starts
    if (lengths < 0).any():
        at = int(np.flatnonzero(lengths < 0)[0])
        raise SplitError(
            f"ranges_to_positions: range {at} ends before it starts ({int(starts[at])}, "
            f"{int(stops[at])}); each row is (start, stop) with start <= stop.")
    # Position j of range r is starts[r] + j: the offset of each output element from the
    # first element of its range, added to that range's start.
    firsts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - firsts, lengths)


def purge_and_embargo(window: np.ndarray, test: np.ndarray, ends: np.ndarray,
                      embargo_end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a training window into kept, purged and embargoed bars.

    Parameters
    ----------
    window
        Boolean mask of the bars that may train (test bars in it are dropped).
    test
        Sorted positions of the test bars (one or several windows).
    ends
        :func:`label_ends` of the data.
    embargo_end
        :func:`embargo_ends` of the data.

    Returns
    -------
    train, purged, embargoed
        Sorted int64 positions; disjoint, and together the window without the test bars.
        A bar both purged and embargoed counts as purged.

    Examples
    --------
    Ten bars, test bars 4 and 5, labels one bar long, an embargo of two bars: bar 3 reaches
    into the test window, bar 6 lies inside the label of bar 5, bars 7 and 8 follow.

    >>> from foldwise.splits._timeline import as_timeline
    >>> bars = as_timeline(np.zeros(10))
    >>> train, purged, embargoed = purge_and_embargo(
    ...     np.ones(10, bool), np.arange(4, 6), label_ends(1, bars), embargo_ends(2, bars))
    >>> train.tolist(), purged.tolist(), embargoed.tolist()
    ([0, 1, 2, 9], [3, 6], [7, 8])
    """
    n = window.size
    purged = np.zeros(n, dtype=bool)
    embargoed = np.zeros(n, dtype=bool)
    for start, stop in positions_to_ranges(test):
        covered = int(ends[start:stop].max())
        purged[:start] |= ends[:start] >= start
        purged[stop:covered + 1] = True
        embargoed[covered + 1:int(embargo_end[covered]) + 1] = True
    candidates = window.copy()
    candidates[test] = False
    purged &= candidates
    embargoed &= candidates & ~purged
    train = candidates & ~purged & ~embargoed
    return np.flatnonzero(train), np.flatnonzero(purged), np.flatnonzero(embargoed)
