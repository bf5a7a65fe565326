"""The top-k mean rule: one parameter set averaged from a fold's best sets.

:func:`average_params` combines the ``k`` best distinct sets (best first) parameter by
parameter:

* **int / float**: the mean (the geometric mean for a log-scaled parameter: the mean on the
  axis the sampler draws on), then put on the parameter's grid — the nearest point
  ``low + n * step`` (halves round up; an int's step is at least 1) — and clipped to its
  range. An int stays an ``int`` and a float a ``float``, so the set has the exact types a
  trial would give it (``5`` and ``5.0`` are different sets to the cache).
* **categorical**: the most frequent value; a tie goes to the value of the better-ranked
  set.
* **fixed**: its one value.

Only sets with the same parameter names as the best one are averaged (a define-by-run
space may give other branches other names); in a define-by-run space each parameter is
read from its values (see :mod:`._dimensions`): integers are averaged and rounded, other
numbers averaged, anything else takes the most frequent value; numbers are clipped to the
span of the values averaged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from foldwise._canonical import canonical_json
from foldwise.records import StoredTrial

from ._dimensions import Dimension, dimensions, is_number

__all__ = ["average_params", "averaged_sets"]


def _round_half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


def _mean(values: Sequence[float], log: bool) -> float:
    if log:
        return math.exp(math.fsum(math.log(v) for v in values) / len(values))
    return math.fsum(values) / len(values)


def _on_grid(dim: Dimension, value: float) -> int | float:
    """``value`` on ``dim``'s grid and range, with the type a trial gives the parameter."""
    low, high = dim.low, dim.high
    if dim.step is not None or dim.kind == "int":
        step = dim.step if dim.step is not None else 1.0
        last = math.floor((high - low) / step + 1e-9)
        index = min(max(_round_half_up((value - low) / step), 0.0), float(last))
        # the expression Optuna's samplers use, so a grid point is the same float
        snapped = min(max(index * step + low, low), high)
        return round(snapped) if dim.kind == "int" else float(snapped)
    clipped = min(max(value, low), high)
    return int(_round_half_up(clipped)) if dim.kind == "int" else float(clipped)


def _mode(values: Sequence[Any]) -> Any:
    """The most frequent value; a tie goes to the one that comes first (the better set)."""
    counts: dict[str, int] = {}
    first: dict[str, Any] = {}
    for value in values:
        key = canonical_json(value)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, value)
    top = max(counts.values())
    for key, value in first.items():  # insertion order: rank order
        if counts[key] == top:
            return value
    raise AssertionError("unreachable")


def averaged_sets(top: Sequence[StoredTrial]) -> list[StoredTrial]:
    """Of ``top`` (best first), the sets with the same parameter names as the best."""
    if not top:
        return []
    names = set(top[0].params)
    return [t for t in top if set(t.params) == names]


def average_params(top: Sequence[StoredTrial], space: Mapping[str, Any]) -> dict[str, Any]:
    """The average of the parameter sets ``top`` (best first; see the module docstring).

    Parameters
    ----------
    top
        The sets to average, best first (:func:`averaged_sets` of the fold's top k).
    space
        The study's stored search space (:meth:`foldwise.SearchSpace.describe`).

    Returns
    -------
    dict
        The averaged set, its parameters in the order of the best set's.

    Examples
    --------
    >>> from optuna.trial import TrialState
    >>> from foldwise.records import StoredTrial, TrialRecord
    >>> def t(n, **params):
    ...     return StoredTrial(n, TrialState.COMPLETE, 1.0, TrialRecord(params=params))
    >>> space = {"params": {"fast": {"type": "int", "low": 5, "high": 50, "step": 1,
    ...                              "log": False},
    ...                     "slow": {"type": "int", "low": 20, "high": 200, "step": 5,
    ...                              "log": False},
    ...                     "side": {"type": "categorical", "choices": ["long", "both"]}}}
    >>> average_params([t(0, fast=10, slow=50, side="both"), t(1, fast=11, slow=65,
    ...                 side="long"), t(2, fast=13, slow=60, side="long")], space)
    {'fast': 11, 'slow': 60, 'side': 'long'}
    """
    if not top:
        raise ValueError("average_params needs at least one parameter set.")
    sets = averaged_sets(top)
    dims = {d.name: d for d in dimensions(space, [t.params for t in sets])}
    averaged: dict[str, Any] = {}
    for name, best in sets[0].params.items():
        values = [t.params[name] for t in sets]
        dim = dims[name]
        if dim.kind == "fixed":
            averaged[name] = best
        elif dim.numeric and all(is_number(v) for v in values):
            log = dim.log and all(v > 0 for v in values)
            averaged[name] = _on_grid(dim, _mean([float(v) for v in values], log))
        else:
            averaged[name] = _mode(values)
    return averaged
