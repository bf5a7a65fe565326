"""The full-history returns of every distinct parameter set evaluated: the matrix PBO reads.

One column per distinct parameter set (by canonical parameters), in the order the sets were
first tried, from the full-history run of a causal strategy. The runs are read through
:meth:`RunLoader.net_returns <foldwise.aggregate.RunLoader.net_returns>` — one returns
column each, nothing else kept — straight into one float64 array of shape ``(N, T)``
(C order). Its transpose, the ``T x N`` matrix, is a view whose columns are contiguous:
the numbers are held once, whatever ``N``, and a run is read once even when several sets
share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise.errors import OptimizationError
from foldwise.records import StoredTrial, StudyManifest

from ._runs import RunLoader, net_returns

__all__ = ["distinct_full_runs", "first_full_runs", "returns_by_run"]


def distinct_full_runs(trials: Mapping[int | None, Sequence[StoredTrial]],
                       manifest: StudyManifest) -> dict[str, str]:
    """Canonical parameters -> cache key of the full-history run, for every distinct set
    of a completed trial, in the order the sets were first tried.

    Sets are told apart by their run's key, a content address of the canonical parameters
    (with the study's strategy, data and settings): equal keys, equal sets. Only the
    distinct sets' parameters are serialized (a study repeats most of its sets)."""
    if not manifest.strategy.causal:
        raise OptimizationError(
            "PBO needs the full-history returns of each parameter set; a per-fold "
            "(causal=False) strategy has runs per fold only.")
    runs: dict[str, str] = {}
    for key, trial in first_full_runs(trials).items():
        runs.setdefault(canonical_json(trial.params), key)
    return runs


def first_full_runs(trials: Mapping[int | None, Sequence[StoredTrial]]
                    ) -> dict[str, StoredTrial]:
    """Cache key of every full-history run of a completed trial -> the first trial that
    ran it, in the order :func:`distinct_full_runs` walks them (nothing serialized). When
    no two keys have the same canonical parameters (as many keys as distinct sets), the
    ``i``-th key is the run of :func:`distinct_full_runs`'s ``i``-th set."""
    first: dict[str, StoredTrial] = {}
    for fold_trials in trials.values():
        for trial in fold_trials:
            if trial.state != TrialState.COMPLETE:
                continue
            for evaluation in trial.record.evaluations.values():
                full = evaluation.runs.get("full")
                if full:
                    first.setdefault(full, trial)
                    break
    return first


def returns_by_run(loader: RunLoader, keys: Sequence[str]) -> np.ndarray:
    """``(len(keys), T)`` float64, C order: row ``i`` holds the per-period net returns of
    run ``keys[i]`` (each distinct run read once). ``T`` is the length of the runs, which
    must all cover the same bars (full-history runs of one study do)."""
    rows: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        rows.setdefault(key, []).append(row)
    out: np.ndarray | None = None
    for key, values in zip(rows, net_returns(loader, list(rows)), strict=True):
        if out is None:
            out = np.empty((len(keys), len(values)))
        elif len(values) != out.shape[1]:
            raise OptimizationError(
                f"the full-history run {key[:12]}... has {len(values)} bars, the study's "
                f"other full runs {out.shape[1]}: the runs do not cover the same data, so "
                "the study's records are inconsistent. Run the study again under a new name.")
        for row in rows[key]:
            out[row] = values
    return np.empty((0, 0)) if out is None else out
