"""Optuna's INFO lines held back while foldwise drives Optuna.

Optuna logs one INFO line per study it creates and per trial it is told — dozens for one
small optimization, and one for each in-memory study the report builds. foldwise reports
progress itself, so while it runs Optuna its INFO lines are held back; its warnings still
show. Only Optuna's default level (INFO) is lowered, and restored afterwards: a verbosity
the user set to DEBUG is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna

__all__ = ["optuna_quiet"]


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Lower Optuna's verbosity from INFO to WARNING for the block."""
    before = optuna.logging.get_verbosity()
    if before == optuna.logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
