"""Where a result keeps the statistics it computed, for the next reader of the same study.

The overfitting statistics and the data-snooping tests of a large study take seconds
(PBO over every distinct parameter set, thousands of bootstrap replications); the study
they describe does not change once it is finished. A :class:`StatisticsStore` keeps each
computed value under the study's content and the arguments it was computed with, so that
``foldwise show`` of the same study computes them once. foldwise's implementation is
:class:`foldwise.optimizer._snapshots.StatisticsFile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["StatisticsStore"]


class StatisticsStore(Protocol):
    """Computed statistics of one study, by name and arguments, as JSON values.

    An implementation must tie what it keeps to the study's content and to the code that
    computed it, so that a value is never read back for another study or after a change of
    the statistics' code; it never raises for a value it cannot keep or read (it recomputes).
    """

    def get(self, name: str, args: Mapping[str, Any]) -> Any | None:
        """The value kept for ``name`` computed with ``args``, or None."""
        ...

    def put(self, name: str, args: Mapping[str, Any], value: Any) -> None:
        """Keep ``value`` (JSON: dicts, lists, str, numbers, None) for ``name`` and ``args``."""
        ...
