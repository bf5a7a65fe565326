"""The plateau rule: each evaluated set scored by its neighbourhood, not by itself.

The score of a set ``i`` among the fold's ``n`` distinct evaluated sets is a kernel-weighted
mean of their in-sample values ``v``, shrunk towards the fold's median value ``m``::

    score_i = (sum_j w_ij * v_j + prior * m) / (sum_j w_ij + prior)

with ``w_ii = 1``: the set always counts itself, so the score is defined with no neighbour
at all (then it is ``(v_i + prior * m) / (1 + prior)``). The weights:

* **Numeric parameters** (int and float) are measured on their own axis — ``log(value)``
  for a log-scaled one — in units of a per-parameter radius
  ``r_p = radius * span_p`` (``span_p``: the parameter's range on that axis), never less
  than two grid steps of a linearly stepped parameter, so that the next point of a coarse
  grid is a neighbour. With ``d_ij`` the Euclidean distance over the numeric parameters in
  those units, ``w_ij = 1 - d_ij**2`` for ``d_ij < 1`` (the Epanechnikov kernel) and 0
  beyond: a set further than the radius is no neighbour. A parameter with one value in
  the space does not count.
* **Categorical parameters** are compared by equality: two sets that differ in one are no
  neighbours (``w_ij = 0``), since a switch of a categorical is no small move. A fixed
  parameter is ignored, and so, in a define-by-run space, are sets whose parameter names
  differ (no neighbours: another branch of the space).

Everything is computed in a fixed order (the sets as given, by trial number), so the
scores — and the choice, ties broken by trial number — are the same in every process.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foldwise._canonical import canonical_json
from foldwise.records import StoredTrial

from ._dimensions import Dimension, dimensions

__all__ = ["PlateauScore", "plateau_scores"]

@dataclass(frozen=True)
class PlateauScore:
    """The plateau score of one evaluated set.

    Attributes
    ----------
    trial
        The trial that stands for the set.
    value
        Its in-sample value.
    smoothed
        The score: its neighbourhood's weighted mean value, shrunk towards the median.
    neighbours
        Other sets with a positive weight (within the radius, same categoricals).
    """

    trial: StoredTrial
    value: float
    smoothed: float
    neighbours: int


def _radius(dimension: Dimension, radius: float) -> float:
    """The per-parameter radius on the parameter's axis (see the module docstring)."""
    scaled = radius * dimension.span
    if dimension.step is not None and not dimension.log:
        scaled = max(scaled, 2.0 * dimension.step)
    return scaled


def _coordinates(sets: Sequence[StoredTrial], dims: Sequence[Dimension], radius: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Numeric coordinates in radius units ``(n, d)``, and a group code per set ``(n,)``:
    sets in different groups differ in a categorical parameter or in their names."""
    numeric = [d for d in dims if d.numeric and d.span > 0]
    columns = []
    for dim in numeric:
        scale = _radius(dim, radius)
        origin = dim.coordinate(dim.low)
        columns.append([(dim.coordinate(float(t.params[dim.name])) - origin) / scale
                        if dim.name in t.params else 0.0 for t in sets])
    coords = (np.array(columns, dtype=float).T if columns
              else np.zeros((len(sets), 0), dtype=float))
    names_numeric = {d.name for d in numeric}
    groups: dict[Hashable, int] = {}
    codes = []
    for trial in sets:
        key = (tuple(sorted(trial.params)),
               *((k, _typed(v)) for k, v in sorted(trial.params.items())
                 if k not in names_numeric))
        codes.append(groups.setdefault(key, len(groups)))
    return coords, np.array(codes, dtype=np.int64)


def _typed(value: Any) -> Hashable:
    """A key equal for two values exactly when they are the same value of the same type
    (``True`` is not ``1``, ``1`` is not ``1.0``), as the canonical form compares them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    return canonical_json(value)


def _kernel_sums(coords: np.ndarray, groups: np.ndarray, values: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per set: the sum of its weights, of its weighted values, and its neighbour count.

    Only pairs within the radius carry weight, so they are found with a k-d tree (pairs
    at distance <= 1 in radius units) rather than by comparing every pair; the sums run
    in a fixed order (the set itself, then its pairs sorted by index), so they are the
    same in every process.
    """
    n = len(values)
    if coords.shape[1] == 0:  # no numeric parameter: a neighbourhood is a whole group
        sums = np.bincount(groups, weights=values)
        sizes = np.bincount(groups)
        return sizes[groups].astype(float), sums[groups], sizes[groups] - 1
    from scipy.spatial import cKDTree  # only here: a plateau rule needs it, a report not

    found = [np.empty((0, 2), dtype=np.intp)]
    for group in np.unique(groups):  # sets in different groups are never neighbours
        members = np.flatnonzero(groups == group)
        if len(members) > 1:
            local = cKDTree(coords[members]).query_pairs(1.0 + 1e-9, output_type="ndarray")
            found.append(members[local])
    pairs = np.concatenate(found)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    first, second = pairs[:, 0], pairs[:, 1]
    step = coords[first] - coords[second]
    weight = 1.0 - (step * step).sum(axis=1)
    keep = weight > 0.0
    first, second, weight = first[keep], second[keep], weight[keep]
    rows = np.concatenate([np.arange(n), first, second])
    weights = np.concatenate([np.ones(n), weight, weight])
    others = np.concatenate([values, values[second], values[first]])
    total = np.bincount(rows, weights=weights, minlength=n)
    weighted = np.bincount(rows, weights=weights * others, minlength=n)
    return total, weighted, np.bincount(rows, minlength=n) - 1


def _fixed_dims(dims: Sequence[Dimension]) -> list[Dimension]:
    """Fixed parameters do not count: their one value is in every set."""
    return [d for d in dims if d.kind != "fixed"]


def plateau_scores(sets: Sequence[StoredTrial], space: Mapping[str, Any], *,
                   radius: float = 0.1, prior: float = 1.0) -> list[PlateauScore]:
    """The plateau score of each of ``sets`` (distinct evaluated sets of one fold).

    Parameters
    ----------
    sets
        One COMPLETE trial per distinct parameter set, each with its value; the order is
        the order of the answer (and of every sum).
    space
        The study's stored search space (:meth:`foldwise.SearchSpace.describe`).
    radius, prior
        See :class:`foldwise.Plateau` and the module docstring.

    Returns
    -------
    list of PlateauScore
        One per set, in the order given.

    Examples
    --------
    A peak at 10 with poor neighbours scores below a broad ridge::

    >>> from optuna.trial import TrialState
    >>> from foldwise.records import StoredTrial, TrialRecord
    >>> def t(n, x, v):
    ...     return StoredTrial(n, TrialState.COMPLETE, v, TrialRecord(params={"x": x}))
    >>> space = {"params": {"x": {"type": "int", "low": 0, "high": 100, "step": 1,
    ...                           "log": False}}}
    >>> sets = [t(0, 10, 3.0), t(1, 12, 0.0), t(2, 8, 0.1), t(3, 60, 1.5), t(4, 62, 1.5),
    ...         t(5, 58, 1.5)]
    >>> best = max(plateau_scores(sets, space), key=lambda s: s.smoothed)
    >>> best.trial.params, best.neighbours
    ({'x': 60}, 2)
    """
    if not sets:
        return []
    dims = _fixed_dims(dimensions(space, [t.params for t in sets]))
    if any(t.value is None for t in sets):
        raise ValueError("plateau_scores needs trials with a value (COMPLETE trials).")
    coords, groups = _coordinates(sets, dims, radius)
    values = np.array([float(t.value or 0.0) for t in sets], dtype=float)
    median = float(np.median(values))
    total, weighted, neighbours = _kernel_sums(coords, groups, values)
    smoothed = (weighted + prior * median) / (total + prior)
    return [PlateauScore(trial, float(value), float(score), int(count))
            for trial, value, score, count in zip(sets, values, smoothed, neighbours,
                                                  strict=True)]
