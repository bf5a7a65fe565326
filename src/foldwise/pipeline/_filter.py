"""Filters: boolean terms, combined with ``&``, ``|`` and ``~``; used as masks and screens.

A filter is True where an asset passes on a date. Comparisons of factors build filters
(``close.latest > 5``); ``Factor.top(n)``, ``bottom(n)`` and ``percentile_between``
build them from ranks and percentiles. Filters are window-safe: a yes/no decision means
the same thing on every date.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError, UnknownAssetError
from foldwise.pipeline._crosssection import check_fraction_bounds, percentile_between_rows
from foldwise.pipeline._term import BOOL, Term, check_mask, elementwise_ndim

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Context

__all__ = ["Filter", "PercentileFilter", "SingleAsset", "StaticAssets"]


class Filter(Term):
    """A pipeline expression computing True or False per asset and date.

    Combine filters with ``&`` (both), ``|`` (either) and ``~`` (not). Python's ``and``,
    ``or`` and ``not`` cannot be overloaded and are refused, as is any use of a filter
    where a single truth value is expected.

    Examples
    --------
    >>> from foldwise.pipeline.data import EquityPricing
    >>> price = EquityPricing.close.latest
    >>> mid = (price > 10) & (price < 100)
    >>> type(mid).__name__, mid.kind
    ('And', 'filter')
    """

    kind = "filter"
    dtype = BOOL
    missing_value = False
    window_safe = True

    def __and__(self, other: Any) -> Filter:
        return And(self, _as_filter("&", other))

    def __rand__(self, other: Any) -> Filter:
        return And(_as_filter("&", other), self)

    def __or__(self, other: Any) -> Filter:
        return Or(self, _as_filter("|", other))

    def __ror__(self, other: Any) -> Filter:
        return Or(_as_filter("|", other), self)

    def __invert__(self) -> Filter:
        return Not(self)

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"the truth value of the filter {self!r} is computed per asset and date, not "
            "now: combine filters with &, | and ~ (not with and, or, not), and write "
            "0 < f < 1 as (0 < f) & (f < 1).")


def _as_filter(op: str, other: Any) -> Filter:
    if isinstance(other, Filter):
        return other
    raise PipelineDefinitionError(
        f"cannot combine a filter with {other!r} using {op}: both sides must be filters "
        "(e.g. factor > 0).")


class _Combine(Filter):
    """Elementwise logical combination of two filters."""

    _op: Any = None
    _symbol = ""

    @classmethod
    def _spec(cls, left: Filter, right: Filter) -> dict[str, Any]:
        return {"inputs": (left, right), "ndim": elementwise_ndim(left, right)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        return self._op(inputs[0], inputs[1])

    def __repr__(self) -> str:
        left, right = self.inputs
        return f"({left!r} {self._symbol} {right!r})"


class And(_Combine):
    """True where both filters are True."""

    _op = staticmethod(np.logical_and)
    _symbol = "&"


class Or(_Combine):
    """True where either filter is True."""

    _op = staticmethod(np.logical_or)
    _symbol = "|"


class Not(Filter):
    """True where the filter is False."""

    @classmethod
    def _spec(cls, term: Filter) -> dict[str, Any]:
        return {"inputs": (term,), "ndim": term.ndim}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        return ~inputs[0]

    def __repr__(self) -> str:
        return f"~{self.inputs[0]!r}"


# Elementwise on arrays (and numbers): the result is an array of bools.
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


class Comparison(Filter):
    """``left <op> right`` for a factor or classifier and a number or another term.

    NaN compares False, except with ``!=`` (as in numpy); a classifier's missing label
    never equals anything.
    """

    op: str
    constant: float | int | None

    @classmethod
    def _spec(cls, op: str, left: Term, right: Any) -> dict[str, Any]:
        if isinstance(right, Term):
            if right.kind not in ("factor", "classifier") or right.kind != left.kind:
                raise PipelineDefinitionError(
                    f"cannot compare {left!r} with {right!r}: both sides must be factors (or "
                    "both classifiers), or one side a number.")
            return {"op": op, "inputs": (left, right), "constant": None,
                    "ndim": elementwise_ndim(left, right)}
        if isinstance(right, bool) or not isinstance(right, (int, float, np.integer, np.floating)):
            raise PipelineDefinitionError(
                f"cannot compare {left!r} with {right!r} ({type(right).__name__}): compare "
                "with a number or another factor.")
        constant = int(right) if left.kind == "classifier" else float(right)
        return {"op": op, "inputs": (left,), "constant": constant, "ndim": left.ndim}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        right = inputs[1] if len(inputs) == 2 else self.constant
        with np.errstate(invalid="ignore"):
            out = _COMPARISONS[self.op](inputs[0], right)
        if self.inputs[0].kind == "classifier":
            out &= inputs[0] != self.inputs[0].missing_value
        return out

    def __repr__(self) -> str:
        right = repr(self.inputs[1]) if len(self.inputs) == 2 else repr(self.constant)
        return f"({self.inputs[0]!r} {self.op} {right})"


class IsNull(Filter):
    """True where a factor is NaN or a classifier holds its missing label (or the reverse)."""

    negate: bool

    @classmethod
    def _spec(cls, term: Term, negate: bool = False) -> dict[str, Any]:
        return {"inputs": (term,), "negate": bool(negate), "ndim": term.ndim}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        term = self.inputs[0]
        values = inputs[0]
        missing = np.isnan(values) if term.kind == "factor" else values == term.missing_value
        return ~missing if self.negate else missing

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.{'notnull' if self.negate else 'isnull'}()"


class PercentileFilter(Filter):
    """True where a factor lies between two percentiles (0-100) of its date's values.

    Percentiles are ``numpy.nanpercentile`` (linear interpolation) over the assets passing
    ``mask``; assets outside the mask are False.
    """

    min_percentile: float
    max_percentile: float

    @classmethod
    def _spec(cls, factor: Term, min_percentile: float, max_percentile: float,
              mask: Any = None) -> dict[str, Any]:
        low, high = check_fraction_bounds("percentile_between", min_percentile, max_percentile,
                                          100.0)
        return {"inputs": (factor,), "min_percentile": low, "max_percentile": high,
                "mask": check_mask("percentile_between", mask)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        valid = np.ones(inputs[0].shape, dtype=bool) if mask is None else mask
        return percentile_between_rows(inputs[0], valid, self.min_percentile,
                                       self.max_percentile)

    def __repr__(self) -> str:
        return (f"{self.inputs[0]!r}.percentile_between({self.min_percentile:g}, "
                f"{self.max_percentile:g})")


class StaticAssets(Filter):
    """True for the named assets on every date.

    Examples
    --------
    >>> StaticAssets(["AAPL", "MSFT"])
    StaticAssets(['AAPL', 'MSFT'])
    """

    assets: tuple[str, ...]

    @classmethod
    def _spec(cls, assets: Iterable[Any]) -> dict[str, Any]:
        if isinstance(assets, str):
            assets = [assets]
        return {"assets": tuple(sorted({str(a) for a in assets}))}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        known = set(ctx.assets)
        unknown = [a for a in self.assets if a not in known]
        if unknown:
            raise UnknownAssetError(
                f"{self!r} names asset(s) {unknown[:5]} that the data does not have (assets: "
                f"{list(ctx.assets[:10])}{'...' if len(ctx.assets) > 10 else ''}).")
        row = np.isin(ctx.assets, self.assets)
        return np.broadcast_to(row, (len(ctx.dates), len(row)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.assets)!r})"


class SingleAsset(StaticAssets):
    """True for one asset on every date."""

    @classmethod
    def _spec(cls, asset: Any) -> dict[str, Any]:
        return {"assets": (str(asset),)}

    def __repr__(self) -> str:
        return f"SingleAsset({self.assets[0]!r})"
