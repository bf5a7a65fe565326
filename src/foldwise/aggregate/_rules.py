"""Selection rules: how a fold's study picks the parameter set judged out of sample.

``optimize(..., select=...)`` takes a rule's name or a rule object:

==================  ===========================================================================
``"best"``          :class:`Best` — the set with the best in-sample value (ties: the earlier
                    trial). The sharpest peak of the in-sample surface, and so the most
                    fragile choice there is.
``"plateau"``       :class:`Plateau` — the evaluated set whose in-sample value, smoothed over
                    its neighbourhood in parameter space, is best (:mod:`._plateau`).
``"top_k_mean"``    :class:`TopKMean` — the average of the ``k`` best sets' parameters
                    (:mod:`._average`), evaluated on the fold's windows after the trials.
==================  ===========================================================================

A rule is stored with the study as JSON (:meth:`SelectRule.to_json`, read back by
:func:`rule_from_json`), so a study read back later selects as the run did.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from foldwise.errors import OptimizationError

__all__ = ["RULES", "Best", "Plateau", "SelectRule", "TopKMean", "as_rule", "rule_from_json"]


class SelectRule(ABC):
    """How a fold chooses its parameter set from its trials (immutable, JSON-able).

    Subclasses are frozen dataclasses with a class attribute ``name`` (the string form
    ``optimize(select=...)`` accepts) and only JSON-able fields.
    """

    name: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """``{"rule": name, <field>: value, ...}`` as stored with the study."""
        return {"rule": self.name, **self._fields()}

    def label(self, top_k: int | None = None) -> str:
        """The rule as the reports name it, e.g. ``"plateau(radius=0.1, prior=1)"``.

        ``top_k``: the study's, shown for a setting that defaults to it."""
        fields = self._fields(top_k)
        if not fields:
            return self.name
        return f"{self.name}({', '.join(f'{k}={_show(v)}' for k, v in fields.items())})"

    @abstractmethod
    def _fields(self, top_k: int | None = None) -> dict[str, Any]:
        """The rule's settings (``top_k``: the study's, to resolve a default)."""


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _positive_number(value: Any, what: str, *, zero: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero)):
        bound = ">= 0" if zero else "> 0"
        raise OptimizationError(f"{what} must be a finite number {bound}, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Best(SelectRule):
    """The set with the best in-sample value; ties go to the earlier trial."""

    name: ClassVar[str] = "best"

    def _fields(self, top_k: int | None = None) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Plateau(SelectRule):
    """The evaluated set whose neighbourhood is best on average, not its single peak.

    Each distinct set of the fold gets a score: the kernel-weighted mean of the in-sample
    values of the sets around it (itself included, with weight 1), shrunk towards the
    fold's median value by ``prior``; the set with the best score is chosen (ties: the
    earlier trial). See :func:`foldwise.aggregate.plateau_scores` for the neighbourhood of
    each kind of parameter.

    Parameters
    ----------
    radius
        Size of a neighbourhood, as a share of each numeric parameter's range (in log
        units for a log-scaled one); never less than two grid steps of a stepped parameter.
    prior
        Weight of the fold's median value in every neighbourhood. A set with no neighbour
        scores ``(value + prior * median) / (1 + prior)``, so a lone lucky spike does not
        win by itself; 0 turns the shrinkage off.

    Examples
    --------
    >>> Plateau(radius=0.2).to_json()
    {'rule': 'plateau', 'radius': 0.2, 'prior': 1.0}
    """

    name: ClassVar[str] = "plateau"
    radius: float = 0.1
    prior: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", _positive_number(self.radius, "Plateau radius"))
        object.__setattr__(self, "prior", _positive_number(self.prior, "Plateau prior",
                                                           zero=True))

    def _fields(self, top_k: int | None = None) -> dict[str, Any]:
        return {"radius": self.radius, "prior": self.prior}


@dataclass(frozen=True)
class TopKMean(SelectRule):
    """The average of the ``k`` best distinct sets' parameters (by in-sample value).

    Numeric parameters are averaged (log-scaled ones geometrically), rounded to the
    parameter's grid (integers, steps; halves round up) and clipped to its range;
    categorical ones take the most frequent value, ties going to the better-ranked set.
    The average may be a set no trial evaluated: after the trials it is evaluated on the
    fold's training and test windows (through the cache) and becomes the fold's choice.

    Parameters
    ----------
    k
        How many of the best sets are averaged; None: the study's ``top_k`` (the sets
        judged out of sample next to the average).
    """

    name: ClassVar[str] = "top_k_mean"
    k: int | None = None

    def __post_init__(self) -> None:
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)
                                   or self.k < 1):
            raise OptimizationError(
                f"TopKMean k must be None (the study's top_k) or an integer >= 1, got "
                f"{self.k!r}.")

    def resolved_k(self, top_k: int) -> int:
        """The number of sets averaged in a study with ``top_k``."""
        return top_k if self.k is None else self.k

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.name, "k": self.k}

    def _fields(self, top_k: int | None = None) -> dict[str, Any]:
        return {"k": self.k if self.k is not None or top_k is None else top_k}


#: The rules by name.
RULES: dict[str, type[SelectRule]] = {rule.name: rule for rule in (Best, Plateau, TopKMean)}


def _unknown(value: Any) -> OptimizationError:
    close = difflib.get_close_matches(str(value), list(RULES), n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return OptimizationError(
        f"unknown select rule {value!r}.{hint} The rules are: "
        f"{', '.join(repr(n) for n in RULES)} (or foldwise.Plateau(radius=...), "
        "foldwise.TopKMean(k=...)).")


def as_rule(value: Any) -> SelectRule:
    """The :class:`SelectRule` ``select=`` names: a rule, its name, or its JSON form.

    Raises
    ------
    OptimizationError
        An unknown name (the message lists the valid ones) or settings the rule refuses.

    Examples
    --------
    >>> as_rule("plateau")
    Plateau(radius=0.1, prior=1.0)
    >>> as_rule({"rule": "top_k_mean", "k": 3})
    TopKMean(k=3)
    """
    if isinstance(value, SelectRule):
        return value
    if isinstance(value, str):
        if value not in RULES:
            raise _unknown(value)
        return RULES[value]()
    if isinstance(value, Mapping):
        return rule_from_json(value)
    raise OptimizationError(
        f"select must be a rule name ({', '.join(repr(n) for n in RULES)}) or a rule such as "
        f"foldwise.Plateau(radius=0.1), got {type(value).__name__} {value!r}.")


def rule_from_json(value: Mapping[str, Any] | None) -> SelectRule:
    """A rule from :meth:`SelectRule.to_json`; None (a study stored before rules) is Best."""
    if value is None:
        return Best()
    name = value.get("rule")
    if not isinstance(name, str) or name not in RULES:
        raise _unknown(name)
    settings = {k: v for k, v in value.items() if k != "rule"}
    rule = RULES[name]
    allowed = {f.name for f in fields(rule)}  # type: ignore[arg-type]
    extra = sorted(set(settings) - allowed)
    if extra:
        raise OptimizationError(
            f"select rule {name!r} has no setting {', '.join(map(repr, extra))}; its settings "
            f"are: {', '.join(sorted(allowed)) or 'none'}.")
    return rule(**settings)
