"""The parameters of a stored search space, as the selection rules measure them.

A study stores its space as :meth:`foldwise.SearchSpace.describe` gives it: for a dict space
``{"params": {name: {"type": "int" | "float" | "categorical" | "fixed", ...}}}``, for a
define-by-run function only its name. :func:`dimensions` turns that, and the values a fold
evaluated, into one :class:`Dimension` per parameter: numeric ones with a range, a grid
step and a log flag; the others compared by equality.

A define-by-run space says nothing of its parameters, so they are read from the values:
a parameter whose every value is a number (bool excepted) is numeric, with the span of
the values seen as its range, linear, and a grid step of 1 when every value is an integer;
any other is compared by equality.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Dimension", "dimensions", "is_number"]


def is_number(value: Any) -> bool:
    """An int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Dimension:
    """One parameter as the selection rules see it.

    Attributes
    ----------
    name
        The parameter.
    kind
        ``"int"`` or ``"float"`` (numeric), ``"categorical"`` (compared by equality) or
        ``"fixed"`` (one value: ignored).
    low, high
        The range of a numeric parameter (high already lowered to the last grid point).
    step
        Grid step of a numeric parameter (None: continuous).
    log
        Log-scaled: distances and means are taken on ``log(value)``.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    def coordinate(self, value: float) -> float:
        """Where ``value`` sits on the axis distances are measured on."""
        return math.log(value) if self.log else float(value)

    @property
    def span(self) -> float:
        """Length of the range on that axis (0: a single value)."""
        if not self.numeric or self.high <= self.low:
            return 0.0
        return self.coordinate(self.high) - self.coordinate(self.low)


def _grid_high(low: float, high: float, step: float | None) -> float:
    """``high`` lowered to the last point of the grid ``low + n * step``, computed as Optuna
    does (in decimal), so that the same grid point is the same float."""
    if step is None:
        return high
    d_low, d_high, d_step = (decimal.Decimal(str(v)) for v in (low, high, step))
    span = d_high - d_low
    if span % d_step == 0:
        return high
    return float((span // d_step) * d_step + d_low)


def _from_spec(name: str, spec: Mapping[str, Any]) -> Dimension:
    kind = spec.get("type")
    if kind in ("int", "float"):
        low, high = float(spec["low"]), float(spec["high"])
        step = spec.get("step")
        step = None if step is None else float(step)
        return Dimension(name, str(kind), low, _grid_high(low, high, step), step,
                         bool(spec.get("log", False)))
    if kind == "fixed":
        return Dimension(name, "fixed")
    return Dimension(name, "categorical")


def _from_values(name: str, values: list[Any]) -> Dimension:
    if values and all(is_number(v) for v in values):
        integers = all(isinstance(v, int) for v in values)
        return Dimension(name, "int" if integers else "float", float(min(values)),
                         float(max(values)), 1.0 if integers else None)
    return Dimension(name, "categorical")


def dimensions(space: Mapping[str, Any], params: Iterable[Mapping[str, Any]]
               ) -> list[Dimension]:
    """One :class:`Dimension` per parameter of ``space`` (its stored description) or, for
    a parameter the description does not name, of the values in ``params``.

    Ordered as the space lists its parameters, then the others by name.
    """
    sets = list(params)
    specs: Mapping[str, Any] = space.get("params") or {}
    names = list(specs) + sorted({k for p in sets for k in p} - set(specs))
    found = []
    for name in names:
        if name in specs:
            found.append(_from_spec(name, specs[name]))
        else:
            found.append(_from_values(name, [p[name] for p in sets if name in p]))
    return found
