"""The folds of an optimization as the aggregator sees them: windows, trials, chosen sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from foldwise.records import Evaluation, FoldWindow, StoredTrial, StudyRecord

from ._select import SelectedSet, select_top

__all__ = ["FoldRecord", "fold_records"]


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
        The top-k distinct parameter sets by in-sample value, best first.
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

    @property
    def best(self) -> SelectedSet | None:
        """The fold's choice (the best in-sample set), or None without a completed trial."""
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
            selected: tuple[SelectedSet, ...]) -> FoldRecord:
    return FoldRecord(number=window.number, fold_id=window.fold_id, train=window.train,
                      test=window.test, train_start=pd.Timestamp(window.train_start),
                      train_end=pd.Timestamp(window.train_end),
                      test_start=pd.Timestamp(window.test_start),
                      test_end=pd.Timestamp(window.test_end), trials=trials, selected=selected)


def fold_records(study: StudyRecord) -> list[FoldRecord]:
    """One :class:`FoldRecord` per fold of ``study``, with its top-k selection."""
    manifest = study.manifest
    records = []
    for window in manifest.folds:
        if manifest.mode == "cv":  # one study for all folds: no per-fold choice
            records.append(_window(window, (), ()))
            continue
        trials = study.trials.get(window.number, ())
        tests = study.fold_tests.get(window.number, {})
        chosen = select_top(trials, manifest.direction, manifest.top_k)
        selected = tuple(
            SelectedSet(rank, t.number, dict(t.params),
                        _evaluation(t, window.number, tests.get(t.number)))
            for rank, t in enumerate(chosen))
        records.append(_window(window, trials, selected))
    return records
