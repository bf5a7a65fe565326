"""Walk-forward optimization: Optuna studies per fold, through the cache, resumable, parallel.

Public names: :func:`optimize`, :func:`load_result`, :func:`list_studies`,
:func:`delete_study`, :func:`read_study` (a study's records, without its runs),
:func:`walk_forward_matrix` (and :class:`WalkForwardResult`, which
lives in :mod:`foldwise.aggregate`). The modules are narrated in their docstrings:

* ``_run`` — the flow of ``optimize``: validate -> plan -> run -> read;
* ``_plan`` — the checked request, the folds and the manifest, stored or compared;
* ``_trials`` — the trial loop: budget, failures, dead workers;
* ``_objective`` — what a trial evaluates, every evaluation through the cache;
* ``_studies`` — stored optimizations read back, listed, deleted;
* ``_lookahead`` — the lookahead check run once per study before the first fold;
* ``_matrix`` — the same optimization over a grid of window lengths;
* ``_samplers``, ``_progress``, ``_benchmark`` — samplers, the progress bar, the
  equal-weight universe every result is compared with.
"""

from __future__ import annotations

from foldwise.aggregate import FoldRecord, WalkForwardResult

from ._benchmark import equal_weight_universe
from ._matrix import walk_forward_matrix
from ._run import optimize
from ._studies import delete_study, list_studies, load_result, read_study

__all__ = ["FoldRecord", "WalkForwardResult", "delete_study", "equal_weight_universe",
           "list_studies", "load_result", "optimize", "read_study", "walk_forward_matrix"]
