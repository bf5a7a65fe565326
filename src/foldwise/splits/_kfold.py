"""``PurgedKFold``: k contiguous test groups, training on the rest minus purge and embargo.

López de Prado, *Advances in Financial Machine Learning* (2018), chapter 7. The bars are cut
into ``n_splits`` contiguous groups of sizes as equal as possible (the first ``n % k``
groups one bar longer, as scikit-learn's ``KFold``); each fold tests on one group and
trains on all other bars, without those the purge and the embargo remove. With
``purge=0`` and ``embargo=0`` the folds are exactly those of ``KFold(n_splits)``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from foldwise.errors import NoFoldsError, SplitError

from ._base import BaseSplitter, Planned
from ._timeline import Timeline

__all__ = ["PurgedKFold", "check_count", "contiguous_groups"]


def check_count(value: Any, name: str, smallest: int) -> int:
    """An int setting (number of groups or splits) of at least ``smallest``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SplitError(f"{name}={value!r} must be an int >= {smallest}, e.g. {name}=5.")
    if value < smallest:
        raise SplitError(f"{name}={value} must be >= {smallest}.")
    return int(value)


def contiguous_groups(timeline: Timeline, n_groups: int, owner: Any) -> np.ndarray:
    """``(n_groups, 2)`` ``[start, stop)`` bounds of contiguous groups of near-equal size.

    Examples
    --------
    >>> from foldwise.splits._timeline import as_timeline
    >>> contiguous_groups(as_timeline(np.zeros(10)), 3, "splitter").tolist()
    [[0, 4], [4, 7], [7, 10]]
    """
    n = timeline.n
    if n < n_groups:
        raise NoFoldsError(
            f"{owner!r} cuts the bars into {n_groups} groups, but X has only "
            f"{timeline.describe()}. Use at most {max(n, 1)} groups, or more data.")
    sizes = np.full(n_groups, n // n_groups, dtype=np.int64)
    sizes[: n % n_groups] += 1
    stops = np.cumsum(sizes)
    bounds = np.column_stack((stops - sizes, stops))
    bounds.flags.writeable = False
    return bounds


class PurgedKFold(BaseSplitter):
    """K-fold cross-validation on contiguous groups, with purge and embargo.

    Every fold tests on one contiguous group and trains on the bars before **and after**
    it. Training on the future is accepted here on purpose (it uses all the data); the
    purge and the embargo keep a test window's information out of its training set.

    Parameters
    ----------
    n_splits : int
        Number of folds (groups), at least 2.
    {purge_embargo}

    Examples
    --------
    >>> import numpy as np
    >>> cv = PurgedKFold(3, purge=1, embargo=1)
    >>> for train, test in cv.split(np.zeros(9)):
    ...     print(train, test)
    [5 6 7 8] [0 1 2]
    [0 1 8] [3 4 5]
    [0 1 2 3 4] [6 7 8]
    """

    def __init__(self, n_splits: int = 5, *, purge: Any = 0, embargo: Any = 0) -> None:
        self.n_splits = check_count(n_splits, "n_splits", 2)
        self._set_purge_embargo(purge, embargo)
        self._freeze()

    def _n_splits_without_data(self) -> int:
        return self.n_splits

    def _plan(self, timeline: Timeline) -> list[Planned]:
        bounds = contiguous_groups(timeline, self.n_splits, self)
        leakage = self._leakage_arrays(timeline)
        plans = []
        for number, (start, stop) in enumerate(bounds):
            text = (f"all bars outside test group {number} "
                    f"({timeline.label(int(start))}..{timeline.label(int(stop) - 1)})")
            plans.append(self._planned(number, timeline, np.ones(timeline.n, dtype=bool),
                                       np.arange(start, stop, dtype=np.int64), leakage, text))
        return plans
