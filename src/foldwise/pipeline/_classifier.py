"""Classifiers: integer labels per asset and date, used to group cross-sectional operations.

``Factor.quantiles(n)`` (and ``quartiles``, ``quintiles``, ``deciles``) build the most
common one; ``groupby=`` of ``rank``, ``zscore``, ``demean``, ``winsorize``, ``top`` and
``bottom`` takes any classifier. Labels are ``int64``; ``-1`` means "no label".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._crosssection import quantile_labels
from foldwise.pipeline._filter import Comparison, Filter, IsNull
from foldwise.pipeline._term import INT64, Term, check_mask

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Context

__all__ = ["Classifier", "Quantiles"]


class Classifier(Term):
    """A pipeline expression computing an integer label per asset and date.

    Classifiers compare only for (in)equality with a label: ``c.eq(2)``, ``c != 2``,
    ``c.element_of([1, 2])``; ordering comparisons are refused (labels are categories).
    """

    kind = "classifier"
    dtype = INT64
    missing_value = -1

    def eq(self, other: int) -> Filter:
        """A filter True where the label equals ``other``."""
        if other == self.missing_value:
            raise PipelineDefinitionError(
                f"{self!r}.eq({other!r}) compares with the missing label, which never matches; "
                "use .isnull() to find missing labels.")
        return Comparison("==", self, other)

    # A filter, not a bool: comparisons build terms (typeshed's object.__ne__ returns bool).
    def __ne__(self, other: Any) -> Filter:  # type: ignore[override]
        return Comparison("!=", self, other)

    def _refuse(self, *_: Any) -> Any:
        raise PipelineDefinitionError(
            f"{self!r} holds category labels, which have no order; use .eq(label), != or "
            ".element_of([...]).")

    __lt__ = __le__ = __gt__ = __ge__ = _refuse

    def element_of(self, choices: Iterable[int]) -> Filter:
        """A filter True where the label is one of ``choices``."""
        labels = tuple(sorted({int(c) for c in choices}))
        if self.missing_value in labels:
            raise PipelineDefinitionError(
                f"{self!r}.element_of({list(labels)}) includes the missing label "
                f"{self.missing_value}, which never matches; use .isnull() for it.")
        return ElementOf(self, labels)

    def isnull(self) -> Filter:
        """A filter True where the label is missing."""
        return IsNull(self)

    def notnull(self) -> Filter:
        """A filter True where there is a label."""
        return IsNull(self, negate=True)


class ElementOf(Filter):
    """True where a classifier's label is one of a set of labels."""

    labels: tuple[int, ...]

    @classmethod
    def _spec(cls, classifier: Classifier, labels: tuple[int, ...]) -> dict[str, Any]:
        return {"inputs": (classifier,), "labels": labels}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        return np.isin(inputs[0], self.labels)

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.element_of({list(self.labels)})"


class Quantiles(Classifier):
    """Per-date quantile labels ``0 .. bins - 1`` of a factor (``pandas.qcut`` edges).

    NaN values and assets outside ``mask`` get -1. See
    :func:`foldwise.pipeline._crosssection.quantile_labels` for the rule at repeated edges.
    """

    bins: int

    @classmethod
    def _spec(cls, factor: Term, bins: int, mask: Any = None) -> dict[str, Any]:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise PipelineDefinitionError(
                f"quantiles: bins must be an integer >= 1, got {bins!r}.")
        return {"inputs": (factor,), "bins": int(bins), "mask": check_mask("quantiles", mask)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        valid = np.ones(inputs[0].shape, dtype=bool) if mask is None else mask
        return quantile_labels(inputs[0], valid, self.bins)

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.quantiles({self.bins})"
