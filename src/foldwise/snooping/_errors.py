"""The error of the data-snooping statistics."""

from __future__ import annotations

from foldwise.stats import StatsError

__all__ = ["SnoopingError"]


class SnoopingError(StatsError):
    """Inputs a data-snooping test, a haircut Sharpe ratio or a minimum backtest length
    cannot be computed from (a :class:`~foldwise.stats.StatsError`, so a ``ValueError``)."""
