"""The folds of an optimization as the aggregator sees them: windows, trials, chosen sets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise.records import Evaluation, FoldWindow, SelectionRecord, StoredTrial, StudyRecord

from ._rules import Best, SelectRule, TopKMean, rule_from_json
from ._select import FoldChoice, SelectedSet, choose

__all__ = ["FoldRecord", "fold_records", "study_rule"]


@dataclass(frozen=True)
class FoldRecord:
    """One fold of an optimization: where it is, its trials, and the sets it selected.

    Attributes
    ----------
    number, fold_id
        Position and stable id of the fold.
    train, test
        ``[start, stop)`` bar ranges.
    train_start, train_end, test_start, test_end
        Dates of the first and last bar of each window.
    trials
        The trials of the fold's study (walk-forward; empty in cross-validated mode).
    selected
        The sets judged out of sample, the fold's choice first (rank 0): under ``"best"``
        the top-k distinct sets by in-sample value; under ``"plateau"`` the top-k by
        smoothed value; under ``"top_k_mean"`` the average, then the top-k sets.
    rule
        The study's selection rule.
    rule_label
        The rule as the reports name it (e.g. ``"plateau(radius=0.1, prior=1)"``).
    note
        Why the rule's choice could not be had and the best set stands in (a
        ``"top_k_mean"`` average that violates a constraint, failed, or was not evaluated
        yet), else None.
    """

    number: int
    fold_id: str
    train: tuple[tuple[int, int], ...]
    test: tuple[tuple[int, int], ...]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    trials: tuple[StoredTrial, ...] = field(default=(), repr=False)
    selected: tuple[SelectedSet, ...] = field(default=(), repr=False)
    rule: SelectRule = field(default_factory=Best)
    rule_label: str = "best"
    note: str | None = None

    @property
    def best(self) -> SelectedSet | None:
        """The fold's choice under the study's selection rule (with ``"best"``, the best
        in-sample set), or None without a completed trial."""
        return self.selected[0] if self.selected else None

    @property
    def test_span(self) -> tuple[int, int]:
        """``[start, stop)`` from the first to the last test bar."""
        return self.test[0][0], self.test[-1][1]


def _evaluation(trial: StoredTrial, fold: int, tested: Evaluation | None) -> Evaluation:
    """The trial's evaluation on ``fold``, completed by a separately stored test window."""
    own = trial.record.evaluations.get(fold, Evaluation())
    if own.test is not None or tested is None:
        return own
    return Evaluation(train=own.train, test=tested.test, runs={**own.runs, **tested.runs},
                      offset=own.offset, backtests=own.backtests)


def _window(window: FoldWindow, trials: tuple[StoredTrial, ...],
            selected: tuple[SelectedSet, ...], rule: SelectRule, label: str,
            note: str | None = None) -> FoldRecord:
    return FoldRecord(number=window.number, fold_id=window.fold_id, train=window.train,
                      test=window.test, train_start=pd.Timestamp(window.train_start),
                      train_end=pd.Timestamp(window.train_end),
                      test_start=pd.Timestamp(window.test_start),
                      test_end=pd.Timestamp(window.test_end), trials=trials, selected=selected,
                      rule=rule, rule_label=label, note=note)


def study_rule(study: StudyRecord) -> SelectRule:
    """The selection rule ``study`` was stored with (``"best"`` for a study stored before
    rules existed)."""
    return rule_from_json(study.manifest.select)


def _usable(selection: SelectionRecord | None, average: Mapping[str, Any], metric: str
            ) -> str | None:
    """Why the stored ``selection`` cannot stand for ``average`` as the fold's choice."""
    if selection is None or canonical_json(selection.params) != canonical_json(average):
        return ("it has not been evaluated yet (the optimization stopped before); run the "
                "same optimize call again to evaluate it")
    if selection.failure is not None:
        return selection.failure
    train = (selection.evaluation.train or {}) if selection.evaluation else {}
    if not math.isfinite(train.get(metric, math.nan)):
        return f"its in-sample {metric} is not finite"
    return None


def _averaged_choice(choice: FoldChoice, selection: SelectionRecord | None,
                     trials: tuple[StoredTrial, ...], metric: str
                     ) -> tuple[SelectedSet | None, str | None]:
    """The ``"top_k_mean"`` choice of a fold, or why the best set stands in for it."""
    average = choice.average
    if average is None:
        return None, None
    shown = ", ".join(f"{k}={v!r}" for k, v in average.items())
    reason = _usable(selection, average, metric)
    if reason is not None:
        return None, (f"the average of the top {len(choice.averaged)} sets ({shown}) is not "
                      f"used: {reason}; the best in-sample set stands in")
    assert selection is not None
    assert selection.evaluation is not None
    key = canonical_json(average)
    same = next((t.number for t in sorted(trials, key=lambda t: t.number)
                 if t.state == TrialState.COMPLETE and canonical_json(t.params) == key), None)
    return SelectedSet(0, same, dict(average), selection.evaluation,
                       averaged=tuple(t.number for t in choice.averaged)), None


def fold_records(study: StudyRecord) -> list[FoldRecord]:
    """One :class:`FoldRecord` per fold of ``study``, with its choice under the study's
    selection rule and the sets judged out of sample next to it."""
    manifest = study.manifest
    rule = study_rule(study)
    label = rule.label(manifest.top_k)
    records = []
    for window in manifest.folds:
        if manifest.mode == "cv":  # one study for all folds: no per-fold choice
            records.append(_window(window, (), (), rule, label))
            continue
        trials = study.trials.get(window.number, ())
        tests = study.fold_tests.get(window.number, {})
        choice = choose(trials, manifest.direction, manifest.top_k, rule, manifest.space)
        sets = [SelectedSet(0, t.number, dict(t.params),
                            _evaluation(t, window.number, tests.get(t.number)),
                            smoothed=score.smoothed if score else None,
                            neighbours=score.neighbours if score else None)
                for t in choice.ranked
                for score in [choice.scores.get(t.number)]]
        note = None
        if isinstance(rule, TopKMean):
            averaged, note = _averaged_choice(choice, study.selections.get(window.number),
                                              trials, manifest.metric)
            if averaged is not None:
                key = canonical_json(averaged.params)
                sets = [averaged, *(s for s in sets if canonical_json(s.params) != key)]
        selected = tuple(replace(s, rank=rank) for rank, s in enumerate(sets))
        records.append(_window(window, trials, selected, rule, label, note))
    return records
