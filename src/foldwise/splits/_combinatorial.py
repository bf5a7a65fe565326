"""``CombinatorialPurgedKFold``: every choice of k test groups out of N, recombined into paths.

López de Prado, *Advances in Financial Machine Learning* (2018), chapter 12. The bars are
cut into ``N = n_groups`` contiguous groups (as :class:`~foldwise.splits.PurgedKFold`
does); each of the ``C(N, k)`` splits tests on ``k = n_test_groups`` of them and trains on
the rest, purged and embargoed around every test window. Each group is tested in
``C(N-1, k-1) = k/N * C(N, k)`` splits, which is the number of backtest paths: path ``p``
takes every group from the ``p``-th split (in split order) that tests it, so every path
covers the whole history exactly once, out of sample.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from foldwise.errors import CombinatorialExplosionError, SplitError

from ._base import BaseCombinatorialSplitter, Planned
from ._kfold import check_count, contiguous_groups
from ._timeline import Timeline, as_timeline

__all__ = ["CombinatorialPurgedKFold"]

#: Default limit on the number of splits (each is a separate training run).
MAX_SPLITS = 1000


def _alternatives(n_groups: int, n_test_groups: int, limit: int) -> str:
    """Nearby settings within ``limit`` splits (fewer test groups; fewer groups)."""
    found = []
    fewer_tests = [k for k in range(1, n_test_groups) if math.comb(n_groups, k) <= limit]
    if fewer_tests:
        found.append((n_groups, fewer_tests[-1]))
    fewer_groups = [n for n in range(n_test_groups + 1, n_groups)
                    if math.comb(n, n_test_groups) <= limit]
    if fewer_groups:
        found.append((fewer_groups[-1], n_test_groups))
    return "; ".join(f"(n_groups={n}, n_test_groups={k}) makes {math.comb(n, k)} splits and "
                     f"{math.comb(n - 1, k - 1)} paths" for n, k in found)


class CombinatorialPurgedKFold(BaseCombinatorialSplitter):
    """Combinatorial purged cross-validation (CPCV): C(N, k) splits, several backtest paths.

    Parameters
    ----------
    n_groups : int
        ``N``, the number of contiguous groups the bars are cut into (>= 2).
    n_test_groups : int
        ``k``, the number of groups each split tests on (1 <= k < N).
    {purge_embargo}
    max_splits : int, default 1000
        Refuse settings with more than this many splits: ``C(N, k)`` grows fast
        (``C(20, 10)`` is 184,756) and each split is a full training run. Not part of the
        fold ids.

    Attributes
    ----------
    n_splits : int
        ``C(N, k)``.
    n_paths : int
        ``k / N * C(N, k)``: how many full out-of-sample paths the splits recombine into.
    test_groups : list of tuple
        The groups each split tests, in split order (lexicographic).
    path_map : numpy.ndarray
        ``(n_paths, N)``; ``path_map[p, g]`` is the split whose test on group ``g`` is part
        of path ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> cv = CombinatorialPurgedKFold(6, 2, purge=2, embargo=1)
    >>> cv.n_splits, cv.n_paths
    (15, 5)
    >>> cv.path_map[0].tolist()  # path 0 takes group 0 from split 0, group 1 from split 0...
    [0, 0, 1, 2, 3, 4]
    >>> train, tests = next(cv.split(np.zeros(60)))
    >>> [t.tolist() for t in tests]
    [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]]
    >>> int(train[0])  # bars 20, 21 are purged, 22 embargoed
    23
    """

    _not_identity = frozenset({"max_splits"})

    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, *, purge: Any = 0,
                 embargo: Any = 0, max_splits: int = MAX_SPLITS) -> None:
        self.n_groups = check_count(n_groups, "n_groups", 2)
        self.n_test_groups = check_count(n_test_groups, "n_test_groups", 1)
        self.max_splits = check_count(max_splits, "max_splits", 1)
        if self.n_test_groups >= self.n_groups:
            raise SplitError(
                f"n_test_groups={n_test_groups} must be smaller than n_groups={n_groups}: "
                "some groups must be left to train on.")
        count = math.comb(self.n_groups, self.n_test_groups)
        if count > self.max_splits:
            paths = math.comb(self.n_groups - 1, self.n_test_groups - 1)
            raise CombinatorialExplosionError(
                f"CombinatorialPurgedKFold(n_groups={n_groups}, n_test_groups="
                f"{n_test_groups}) makes C({n_groups}, {n_test_groups}) = {count:,} splits "
                f"({paths:,} paths), more than max_splits={self.max_splits:,}; every split "
                "is a full training run. Use fewer groups or fewer test groups — "
                f"{_alternatives(self.n_groups, self.n_test_groups, self.max_splits)} — or "
                f"raise max_splits to {count} if you mean it.")
        self._set_purge_embargo(purge, embargo)
        self._test_groups = list(itertools.combinations(range(self.n_groups),
                                                        self.n_test_groups))
        self._freeze()

    @property
    def test_groups(self) -> list[tuple[int, ...]]:
        return list(self._test_groups)

    def group_bounds(self, X: Any) -> np.ndarray:
        return contiguous_groups(as_timeline(X), self.n_groups, self)

    def _plan(self, timeline: Timeline) -> list[Planned]:
        bounds = contiguous_groups(timeline, self.n_groups, self)
        leakage = self._leakage_arrays(timeline)
        plans = []
        for number, groups in enumerate(self._test_groups):
            test = np.concatenate([np.arange(*bounds[g], dtype=np.int64) for g in groups])
            text = f"all bars outside test groups {groups}"
            plans.append(self._planned(number, timeline, np.ones(timeline.n, dtype=bool),
                                       test, leakage, text, test_groups=groups))
        return plans
