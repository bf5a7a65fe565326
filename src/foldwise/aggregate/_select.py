"""Which parameter sets a fold chose: the top-k distinct sets by in-sample value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise.records import Evaluation, StoredTrial

__all__ = ["SelectedSet", "select_top"]


@dataclass(frozen=True)
class SelectedSet:
    """A parameter set a fold selected, and how it did on the fold's two windows.

    Attributes
    ----------
    rank
        0 for the fold's choice, then 1, 2, ... by in-sample value.
    trial
        Number of the first trial that evaluated the set.
    params
        The parameters.
    evaluation
        Its :class:`~foldwise.records.Evaluation` on the fold (train and test metrics).
    """

    rank: int
    trial: int
    params: Mapping[str, Any]
    evaluation: Evaluation

    @property
    def train(self) -> Mapping[str, float] | None:
        """Metrics of the training window."""
        return self.evaluation.train

    @property
    def test(self) -> Mapping[str, float] | None:
        """Metrics of the test window (None if it was not evaluated)."""
        return self.evaluation.test


def select_top(trials: Iterable[StoredTrial], direction: str, top_k: int) -> list[StoredTrial]:
    """The best ``top_k`` COMPLETE trials with distinct parameters, best first.

    Ties on the value go to the earlier trial, so the choice is the same in every process.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    complete.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    chosen: list[StoredTrial] = []
    seen: set[str] = set()
    for trial in complete:
        key = canonical_json(trial.params)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(trial)
        if len(chosen) == top_k:
            break
    return chosen
