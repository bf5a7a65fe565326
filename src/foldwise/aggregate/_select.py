"""Which parameter sets a fold chose: its choice under the study's rule, and the sets
judged out of sample next to it.

:func:`select_top` ranks a fold's distinct sets by in-sample value; :func:`choose` applies
a selection rule (:mod:`._rules`) on top of it and says what the fold chose.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise.records import Evaluation, StoredTrial

from ._average import average_params, averaged_sets
from ._plateau import PlateauScore, plateau_scores
from ._rules import Best, Plateau, SelectRule, TopKMean

__all__ = ["FoldChoice", "SelectedSet", "choose", "params_key", "select_top"]


@dataclass(frozen=True)
class SelectedSet:
    """A parameter set a fold selected, and how it did on the fold's two windows.

    Attributes
    ----------
    rank
        0 for the fold's choice, then 1, 2, ... in the order of the study's selection rule
        (in-sample value; for ``"plateau"`` the smoothed value).
    trial
        Number of the trial that evaluated the set; None for a set no trial evaluated (a
        ``"top_k_mean"`` average, evaluated after the trials).
    params
        The parameters.
    evaluation
        Its :class:`~foldwise.records.Evaluation` on the fold (train and test metrics).
    smoothed
        ``"plateau"``: the set's smoothed in-sample value (else None).
    neighbours
        ``"plateau"``: how many other sets its neighbourhood held (else None).
    averaged
        ``"top_k_mean"``, the choice: numbers of the trials whose sets were averaged.
    """

    rank: int
    trial: int | None
    params: Mapping[str, Any]
    evaluation: Evaluation
    smoothed: float | None = None
    neighbours: int | None = None
    averaged: tuple[int, ...] = ()

    @property
    def train(self) -> Mapping[str, float] | None:
        """Metrics of the training window."""
        return self.evaluation.train

    @property
    def test(self) -> Mapping[str, float] | None:
        """Metrics of the test window (None if it was not evaluated)."""
        return self.evaluation.test


_PRIMITIVE = (type(None), bool, int, float, str)


def params_key(params: Mapping[str, Any]) -> Hashable:
    """A key equal for two parameter sets exactly when their canonical JSON is
    (:func:`foldwise._canonical.canonical_json`: order-free, type-exact), without building
    the JSON for the usual sets of None, bool, int, float and str values."""
    items = []
    for name, value in params.items():
        if isinstance(value, np.generic) and isinstance(value, (np.bool_, np.integer,
                                                                np.floating, np.str_)):
            value = value.item()
        if type(value) not in _PRIMITIVE or not isinstance(name, str):
            return ("json", canonical_json(params))
        # repr tells floats apart as the JSON does (-0.0, nan); the type tells 1, 1.0, True
        items.append((name, type(value).__name__,
                      repr(value) if isinstance(value, float) else value))
    return ("typed", tuple(sorted(items)))


def select_top(trials: Iterable[StoredTrial], direction: str, top_k: int) -> list[StoredTrial]:
    """The best ``top_k`` COMPLETE trials with distinct parameters, best first.

    Ties on the value go to the earlier trial, so the choice is the same in every process.
    ``top_k=0`` ranks every distinct set.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    complete.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    chosen: list[StoredTrial] = []
    seen: set[Hashable] = set()
    for trial in complete:
        key = params_key(trial.params)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(trial)
        if len(chosen) == top_k:
            break
    return chosen


def _distinct_ranked(trials: Iterable[StoredTrial], direction: str) -> list[StoredTrial]:
    """Every distinct COMPLETE set once, best first (the order of :func:`select_top`)."""
    return select_top(trials, direction, 0)


@dataclass(frozen=True)
class FoldChoice:
    """What a selection rule chose on one fold's trials.

    Attributes
    ----------
    rule
        The rule.
    ranked
        The evaluated sets judged out of sample, in the rule's order: ``"best"`` and
        ``"plateau"`` put the fold's choice first; ``"top_k_mean"`` lists the best sets by
        in-sample value, its choice being :attr:`average`.
    scores
        ``"plateau"``: the score of each of :attr:`ranked`, by trial number.
    average
        ``"top_k_mean"``: the averaged parameters (None otherwise, or without a trial).
    averaged
        ``"top_k_mean"``: the trials whose sets were averaged, best first.
    """

    rule: SelectRule
    ranked: tuple[StoredTrial, ...]
    scores: Mapping[int, PlateauScore] = field(default_factory=dict)
    average: Mapping[str, Any] | None = None
    averaged: tuple[StoredTrial, ...] = ()


def choose(trials: Sequence[StoredTrial], direction: str, top_k: int, rule: SelectRule,
           space: Mapping[str, Any]) -> FoldChoice:
    """Apply ``rule`` to one fold's trials.

    Parameters
    ----------
    trials
        The fold's trials (any state; only COMPLETE ones with a value are candidates).
    direction
        ``"maximize"`` or ``"minimize"``.
    top_k
        Sets judged out of sample.
    rule
        The selection rule (:class:`~foldwise.aggregate.Best`,
        :class:`~foldwise.aggregate.Plateau`, :class:`~foldwise.aggregate.TopKMean`).
    space
        The study's stored search space (ranges, steps and log scales of the parameters).

    ``Best`` gives exactly :func:`select_top`. ``Plateau`` scores every distinct set
    (:func:`~foldwise.aggregate.plateau_scores`) and ranks them by score, ties to the
    earlier trial. ``TopKMean`` averages the best ``k`` sets
    (:func:`~foldwise.aggregate.average_params`); :attr:`FoldChoice.ranked` then holds the
    ``top_k`` best sets by in-sample value.
    """
    if isinstance(rule, Plateau):
        distinct = sorted(_distinct_ranked(trials, direction), key=lambda t: t.number)
        scores = plateau_scores(distinct, space, radius=rule.radius, prior=rule.prior)
        sign = -1.0 if direction == "maximize" else 1.0
        scores.sort(key=lambda s: (sign * s.smoothed, s.trial.number))
        return FoldChoice(rule, tuple(s.trial for s in scores[:top_k]),
                          scores={s.trial.number: s for s in scores[:top_k]})
    if isinstance(rule, TopKMean):
        k = rule.resolved_k(top_k)
        ranked = select_top(trials, direction, max(k, top_k))
        top = averaged_sets(ranked[:k])
        return FoldChoice(rule, tuple(ranked[:top_k]),
                          average=average_params(top, space) if top else None,
                          averaged=tuple(top))
    if not isinstance(rule, Best):
        raise TypeError(f"unknown selection rule {rule!r}")
    return FoldChoice(rule, tuple(select_top(trials, direction, top_k)))
