"""Walk-forward optimization: Optuna studies per fold, through the cache, resumable, parallel.

Public names: :func:`optimize`, :class:`WalkForwardResult`, :func:`load_result`,
:func:`delete_study`. The modules are narrated in their docstrings: ``_run`` (the flow),
``_trials`` (budget, failures, dead workers), ``_evaluate`` (every evaluation through the
cache), ``_study`` (names, metadata, refusal to resume a different study), ``_result``.
"""

from __future__ import annotations

from ._result import FoldRecord, WalkForwardResult, load_result
from ._run import optimize
from ._study import delete_study

__all__ = ["FoldRecord", "WalkForwardResult", "delete_study", "load_result", "optimize"]
