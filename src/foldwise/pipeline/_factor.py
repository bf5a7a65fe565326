"""Factors: numeric terms and their algebra.

Factors combine with numbers and with each other through ``+ - * / ** %`` and unary
``-``; comparisons build filters; ``log``, ``exp``, ``abs``, ``sqrt`` (and the other math
functions Zipline offers) apply elementwise. Cross-sectional operations work on each
date's row: ``rank``, ``zscore``, ``demean``, ``winsorize`` (all with ``mask`` and
``groupby``), ``top``/``bottom`` and ``percentile_between`` (filters), ``quantiles``
(classifiers). ``fillna`` and ``clip`` repair values. Every operation returns a new
memoized term: nothing is computed until the pipeline runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._classifier import Classifier, Quantiles
from foldwise.pipeline._crosssection import (
    check_fraction_bounds,
    check_rank_method,
    demean_rows,
    ordinal_rank_cells,
    rank_rows,
    top_rows,
    winsorize_rows,
    zscore_rows,
)
from foldwise.pipeline._filter import Comparison, Filter, IsNull, PercentileFilter
from foldwise.pipeline._term import (
    FLOAT64,
    Term,
    check_groupby,
    check_mask,
    elementwise_ndim,
)

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Cells, Context

__all__ = ["Factor", "Rank", "Top"]

_NUMBER = (int, float, np.integer, np.floating)

_BINARY_OPS = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide,
    "**": np.power, "%": np.mod,
}

_MATH_FUNCTIONS = {
    name: getattr(np, name) for name in (
        "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "arcsinh", "arccosh", "arctanh", "log", "log10", "log1p", "exp", "expm1", "sqrt",
    )
}
_MATH_FUNCTIONS["abs"] = np.abs

# The operations whose result on a value never depends on how numpy loops over the array
# (IEEE-exact: correctly rounded, or no rounding at all), so that computing them at a few
# cells gives the bits computing them over the whole array gives there. (``**``, ``%``
# and the transcendental functions may take vectorised code paths that differ in the last
# bit from the scalar ones.)
_EXACT_BINARY_OPS = frozenset({"+", "-", "*", "/"})
_EXACT_FUNCTIONS = frozenset({"negative", "abs", "sqrt"})


def _reusable(inputs: list[Any], ctx: Context, shape: tuple[int, ...]) -> np.ndarray | None:
    """An input array the engine lets this term overwrite (``ctx.disposable``) that can
    hold a float result of ``shape``, made writeable; None to allocate a new one. An
    elementwise ufunc writing into one of its inputs gives the same values."""
    for position in sorted(ctx.disposable):
        array = inputs[position]
        if array.shape == shape and array.dtype == np.float64:
            array.flags.writeable = True
            return array
    return None


def _at_cells(value: np.ndarray, cells: Cells) -> np.ndarray:
    """An input's values at ``cells``: as given if it arrived at cells (1-D), else taken
    from the whole array."""
    return value if value.ndim == 1 else cells.take(value)


def _both_masks(first: Filter | None, second: Filter | None) -> Filter | None:
    if first is None:
        return second
    if second is None or second is first:
        return first
    return first & second


class Factor(Term):
    """A pipeline expression computing a number per asset and date (``float64``).

    Examples
    --------
    >>> from foldwise.pipeline.factors import Returns
    >>> momentum = Returns(window_length=20)
    >>> score = (momentum.zscore() - momentum.rank().zscore()) / 2
    >>> score.kind, (score > 0).kind, momentum.quintiles().kind
    ('factor', 'filter', 'classifier')
    """

    kind = "factor"
    dtype = FLOAT64
    missing_value = math.nan

    # --- arithmetic ----------------------------------------------------------------------

    def _arith(self, op: str, other: Any, reflected: bool = False) -> Factor:
        return BinaryOperation(op, other, self) if reflected else BinaryOperation(op, self, other)

    def __add__(self, other: Any) -> Factor:
        return self._arith("+", other)

    def __radd__(self, other: Any) -> Factor:
        return self._arith("+", other, reflected=True)

    def __sub__(self, other: Any) -> Factor:
        return self._arith("-", other)

    def __rsub__(self, other: Any) -> Factor:
        return self._arith("-", other, reflected=True)

    def __mul__(self, other: Any) -> Factor:
        return self._arith("*", other)

    def __rmul__(self, other: Any) -> Factor:
        return self._arith("*", other, reflected=True)

    def __truediv__(self, other: Any) -> Factor:
        return self._arith("/", other)

    def __rtruediv__(self, other: Any) -> Factor:
        return self._arith("/", other, reflected=True)

    def __pow__(self, other: Any) -> Factor:
        return self._arith("**", other)

    def __rpow__(self, other: Any) -> Factor:
        return self._arith("**", other, reflected=True)

    def __mod__(self, other: Any) -> Factor:
        return self._arith("%", other)

    def __rmod__(self, other: Any) -> Factor:
        return self._arith("%", other, reflected=True)

    def __neg__(self) -> Factor:
        return MathFunction("negative", self)

    def __abs__(self) -> Factor:
        return MathFunction("abs", self)

    # --- comparisons (filters); == stays identity, use .eq() ------------------------------

    def __lt__(self, other: Any) -> Filter:
        return Comparison("<", self, other)

    def __le__(self, other: Any) -> Filter:
        return Comparison("<=", self, other)

    def __gt__(self, other: Any) -> Filter:
        return Comparison(">", self, other)

    def __ge__(self, other: Any) -> Filter:
        return Comparison(">=", self, other)

    # A filter, not a bool: comparisons build terms (typeshed's object.__ne__ returns bool).
    def __ne__(self, other: Any) -> Filter:  # type: ignore[override]
        return Comparison("!=", self, other)

    def eq(self, other: Any) -> Filter:
        """A filter True where ``self == other`` (``==`` itself compares terms by identity)."""
        return Comparison("==", self, other)

    # --- elementwise functions ---------------------------------------------------------

    def log(self) -> Factor:
        """Natural logarithm of each value."""
        return MathFunction("log", self)

    def log10(self) -> Factor:
        """Base-10 logarithm of each value."""
        return MathFunction("log10", self)

    def log1p(self) -> Factor:
        """``log(1 + x)`` of each value."""
        return MathFunction("log1p", self)

    def exp(self) -> Factor:
        """Exponential of each value."""
        return MathFunction("exp", self)

    def expm1(self) -> Factor:
        """``exp(x) - 1`` of each value."""
        return MathFunction("expm1", self)

    def sqrt(self) -> Factor:
        """Square root of each value."""
        return MathFunction("sqrt", self)

    def abs(self) -> Factor:
        """Absolute value of each value."""
        return MathFunction("abs", self)

    def sin(self) -> Factor:
        """Sine of each value."""
        return MathFunction("sin", self)

    def cos(self) -> Factor:
        """Cosine of each value."""
        return MathFunction("cos", self)

    def tan(self) -> Factor:
        """Tangent of each value."""
        return MathFunction("tan", self)

    def arcsin(self) -> Factor:
        """Inverse sine of each value."""
        return MathFunction("arcsin", self)

    def arccos(self) -> Factor:
        """Inverse cosine of each value."""
        return MathFunction("arccos", self)

    def arctan(self) -> Factor:
        """Inverse tangent of each value."""
        return MathFunction("arctan", self)

    def sinh(self) -> Factor:
        """Hyperbolic sine of each value."""
        return MathFunction("sinh", self)

    def cosh(self) -> Factor:
        """Hyperbolic cosine of each value."""
        return MathFunction("cosh", self)

    def tanh(self) -> Factor:
        """Hyperbolic tangent of each value."""
        return MathFunction("tanh", self)

    def arcsinh(self) -> Factor:
        """Inverse hyperbolic sine of each value."""
        return MathFunction("arcsinh", self)

    def arccosh(self) -> Factor:
        """Inverse hyperbolic cosine of each value."""
        return MathFunction("arccosh", self)

    def arctanh(self) -> Factor:
        """Inverse hyperbolic tangent of each value."""
        return MathFunction("arctanh", self)

    def clip(self, min_bound: float, max_bound: float, mask: Any = None) -> Factor:
        """Limit values to ``[min_bound, max_bound]`` (pass ``-np.inf``/``np.inf`` for one side).

        NaN stays NaN; assets outside ``mask`` are NaN.
        """
        return Clip(self, min_bound, max_bound, mask)

    def fillna(self, fill_value: Any) -> Factor:
        """Replace NaN with a number, or with the values of another factor."""
        return FillNa(self, fill_value)

    # --- missing data (filters) --------------------------------------------------------

    def isnan(self) -> Filter:
        """A filter True where the value is NaN."""
        return IsNull(self)

    def notnan(self) -> Filter:
        """A filter True where the value is not NaN."""
        return IsNull(self, negate=True)

    isnull = isnan
    notnull = notnan

    def isfinite(self) -> Filter:
        """A filter True where the value is neither NaN nor infinite."""
        return (self > -np.inf) & (self < np.inf)

    # --- cross-sectional operations ----------------------------------------------------

    def rank(self, method: str = "ordinal", ascending: bool = True, mask: Any = None,
             groupby: Any = None) -> Factor:
        """Rank of each value among the date's values (1 = lowest when ascending).

        Parameters
        ----------
        method : {'ordinal', 'min', 'max', 'dense', 'average'}
            Tie handling as in ``scipy.stats.rankdata``; ``'ordinal'`` (the default, as in
            Zipline) gives tied values consecutive ranks in the order of the assets.
        ascending : bool
            Rank 1 is the lowest value (``False``: the highest).
        mask : Filter, optional
            Rank only among assets passing the filter; the others get NaN.
        groupby : Classifier, optional
            Rank separately within each label.

        NaN values get NaN ranks.
        """
        return Rank(self, method, ascending, mask, groupby)

    def demean(self, mask: Any = None, groupby: Any = None) -> Factor:
        """Subtract the date's (group's) mean, ignoring NaN and assets outside ``mask``."""
        return Normalized("demean", self, mask, groupby)

    def zscore(self, mask: Any = None, groupby: Any = None) -> Factor:
        """``(x - mean) / std`` per date (group), with the population std (``ddof=0``)."""
        return Normalized("zscore", self, mask, groupby)

    def winsorize(self, min_percentile: float, max_percentile: float, mask: Any = None,
                  groupby: Any = None) -> Factor:
        """Clip each date's (group's) values to its ``min``/``max`` percentiles (0-1).

        Values below the one ranked ``floor(n * min_percentile)`` take that value, values
        above the one ranked ``ceil(n * max_percentile) - 1`` take that one
        (``scipy.stats.mstats.winsorize``).
        """
        low, high = check_fraction_bounds("winsorize", min_percentile, max_percentile, 1.0)
        return Normalized("winsorize", self, mask, groupby, (low, high))

    def top(self, N: int, mask: Any = None, groupby: Any = None) -> Filter:
        """A filter True for the ``N`` highest values of each date (group); ties by position.

        The cells where ``self.rank(ascending=False, mask=mask, groupby=groupby) <= N``,
        found without ranking whole rows.
        """
        return Top(self, _check_count("top", N), False, mask, groupby)

    def bottom(self, N: int, mask: Any = None, groupby: Any = None) -> Filter:
        """A filter True for the ``N`` lowest values of each date (group); ties by position.

        The cells where ``self.rank(ascending=True, mask=mask, groupby=groupby) <= N``.
        """
        return Top(self, _check_count("bottom", N), True, mask, groupby)

    def percentile_between(self, min_percentile: float, max_percentile: float,
                           mask: Any = None) -> Filter:
        """A filter True where the value lies between two percentiles (0-100) of its date."""
        return PercentileFilter(self, min_percentile, max_percentile, mask)

    def quantiles(self, bins: int, mask: Any = None) -> Classifier:
        """A classifier labelling each date's values ``0 .. bins - 1`` by quantile."""
        return Quantiles(self, bins, self.mask if mask is None else mask)

    def quartiles(self, mask: Any = None) -> Classifier:
        """``quantiles(4)``."""
        return self.quantiles(4, mask)

    def quintiles(self, mask: Any = None) -> Classifier:
        """``quantiles(5)``."""
        return self.quantiles(5, mask)

    def deciles(self, mask: Any = None) -> Classifier:
        """``quantiles(10)``."""
        return self.quantiles(10, mask)

    # --- time-series statistics against a target -----------------------------------------

    def pearsonr(self, target: Term, correlation_length: int, mask: Any = None) -> Factor:
        """Rolling Pearson correlation of each asset's values with ``target``.

        ``target`` is a factor (asset by asset) or a single column such as
        ``returns["AAPL"]``.
        """
        from foldwise.pipeline.factors.statistical import RollingPearson

        return RollingPearson(self, target, correlation_length, mask)

    def linear_regression(self, target: Term, regression_length: int,
                          mask: Any = None) -> Factor:
        """Rolling regression of each asset's values on ``target`` (five outputs)."""
        from foldwise.pipeline.factors.statistical import RollingLinearRegression

        return RollingLinearRegression(self, target, regression_length, mask)

    def __getitem__(self, asset: Any) -> Factor:
        """This factor's column for one asset, e.g. ``Returns(window_length=2)["AAPL"]``."""
        return Slice(self, asset)


def _check_count(owner: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PipelineDefinitionError(f"{owner}: N must be an integer >= 1, got {n!r}.")
    return int(n)


def _check_float_factor(owner: str, term: Any) -> None:
    if not isinstance(term, Factor) or term.dtype != FLOAT64:
        dtype = getattr(term, "dtype", None)
        raise PipelineDefinitionError(
            f"{owner} needs float64 factors; got {term!r}"
            f"{f' of dtype {dtype}' if dtype is not None else ''}.")


class BinaryOperation(Factor):
    """``left <op> right`` elementwise, where either side may be a number."""

    op: str
    constants: tuple[float | None, ...]

    @classmethod
    def _spec(cls, op: str, left: Any, right: Any) -> dict[str, Any]:
        terms: list[Term] = []
        constants: list[float | None] = []
        for side in (left, right):
            if isinstance(side, Term):
                _check_float_factor(f"the operator {op}", side)
                terms.append(side)
                constants.append(None)
            elif isinstance(side, _NUMBER) and not isinstance(side, bool):
                constants.append(float(side))
            else:
                raise PipelineDefinitionError(
                    f"cannot compute {left!r} {op} {right!r}: operands must be factors or "
                    "numbers.")
        return {"op": op, "inputs": tuple(terms), "constants": tuple(constants),
                "window_safe": all(t.window_safe for t in terms),
                "ndim": elementwise_ndim(*terms)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        arrays = iter(inputs)
        left, right = (next(arrays) if c is None else c for c in self.constants)
        out = _reusable(inputs, ctx, np.broadcast_shapes(np.shape(left), np.shape(right)))
        with np.errstate(all="ignore"):
            return _BINARY_OPS[self.op](left, right, out=out)

    def _cell_inputs(self) -> tuple[bool, ...] | None:
        return (True,) * len(self.inputs) if self.op in _EXACT_BINARY_OPS else None

    def _compute_cells(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context,
                       cells: Cells) -> np.ndarray:
        return self._compute([_at_cells(value, cells) for value in inputs], mask, ctx)

    def __repr__(self) -> str:
        terms = iter(self.inputs)
        left, right = (repr(next(terms)) if c is None else f"{c:g}" for c in self.constants)
        return f"({left} {self.op} {right})"


class MathFunction(Factor):
    """An elementwise numpy function of a factor (``log``, ``exp``, ``abs``, negation...)."""

    function: str

    @classmethod
    def _spec(cls, name: str, term: Factor) -> dict[str, Any]:
        _check_float_factor(f"{name}()", term)
        return {"function": name, "inputs": (term,), "window_safe": term.window_safe,
                "ndim": term.ndim}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        function = np.negative if self.function == "negative" else _MATH_FUNCTIONS[self.function]
        out = _reusable(inputs, ctx, np.shape(inputs[0]))
        with np.errstate(all="ignore"):
            return function(inputs[0], out=out)

    def _cell_inputs(self) -> tuple[bool, ...] | None:
        return (True,) if self.function in _EXACT_FUNCTIONS else None

    def _compute_cells(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context,
                       cells: Cells) -> np.ndarray:
        return self._compute([_at_cells(inputs[0], cells)], mask, ctx)

    def __repr__(self) -> str:
        if self.function == "negative":
            return f"-{self.inputs[0]!r}"
        return f"{self.inputs[0]!r}.{self.function}()"


class Clip(Factor):
    """Values limited to ``[min_bound, max_bound]``; NaN outside ``mask``."""

    bounds: tuple[float, float]

    @classmethod
    def _spec(cls, term: Factor, min_bound: float, max_bound: float,
              mask: Any = None) -> dict[str, Any]:
        _check_float_factor("clip()", term)
        if not (isinstance(min_bound, _NUMBER) and isinstance(max_bound, _NUMBER)) or not (
                min_bound <= max_bound):
            raise PipelineDefinitionError(
                f"clip(): bounds must be numbers with min_bound <= max_bound, got "
                f"{min_bound!r}, {max_bound!r}.")
        return {"inputs": (term,), "bounds": (float(min_bound), float(max_bound)),
                "mask": check_mask("clip()", mask), "window_safe": term.window_safe}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        out = np.clip(inputs[0], *self.bounds)
        return out if mask is None else np.where(mask, out, np.nan)

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.clip({self.bounds[0]:g}, {self.bounds[1]:g})"


class FillNa(Factor):
    """NaN replaced by a number or by another factor's value."""

    fill: float | None

    @classmethod
    def _spec(cls, term: Factor, fill: Any) -> dict[str, Any]:
        if isinstance(fill, Term):
            if fill.kind != "factor":
                raise PipelineDefinitionError(
                    f"fillna(): the fill value must be a number or a factor, got {fill!r} "
                    "(for a dataset column, use column.latest).")
            return {"inputs": (term, fill), "fill": None,
                    "window_safe": term.window_safe and fill.window_safe}
        if isinstance(fill, bool) or not isinstance(fill, _NUMBER):
            raise PipelineDefinitionError(
                f"fillna(): the fill value must be a number or a factor, got {fill!r}.")
        return {"inputs": (term,), "fill": float(fill), "window_safe": term.window_safe}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        fill = inputs[1] if self.fill is None else self.fill
        return np.where(np.isnan(inputs[0]), fill, inputs[0])

    def __repr__(self) -> str:
        fill = repr(self.inputs[1]) if self.fill is None else f"{self.fill:g}"
        return f"{self.inputs[0]!r}.fillna({fill})"


def _group_valid(mask: np.ndarray | None, labels: np.ndarray | None,
                 missing_label: int, shape: tuple[int, ...]) -> np.ndarray:
    valid = np.ones(shape, dtype=bool) if mask is None else mask.copy()
    if labels is not None:
        valid &= labels != missing_label
    return valid


class Rank(Factor):
    """Per-date ranks of a factor (see :meth:`Factor.rank`)."""

    method: str
    ascending: bool

    window_safe = True

    @classmethod
    def _spec(cls, factor: Factor, method: str = "ordinal", ascending: bool = True,
              mask: Any = None, groupby: Any = None) -> dict[str, Any]:
        _check_float_factor("rank()", factor)
        groupby = check_groupby("rank()", groupby)
        return {"inputs": (factor,) if groupby is None else (factor, groupby),
                "method": check_rank_method("rank()", method), "ascending": bool(ascending),
                "mask": check_mask("rank()", mask)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        labels = inputs[1] if len(inputs) > 1 else None
        missing = self.inputs[1].missing_value if labels is not None else -1
        valid = _group_valid(mask, labels, missing, inputs[0].shape)
        return rank_rows(inputs[0], valid, self.method, self.ascending, labels)

    def _cell_inputs(self) -> tuple[bool, ...] | None:
        # Ordinal ranks over the whole row (no groups) are counted cell by cell.
        return (False,) if self.method == "ordinal" and len(self.inputs) == 1 else None

    def _compute_cells(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context,
                       cells: Cells) -> np.ndarray | None:
        values = inputs[0]
        if values.shape[1] != len(ctx.assets):  # not a cross-section: computed whole
            return None
        valid = np.ones(values.shape, dtype=bool) if mask is None else mask
        return ordinal_rank_cells(values, valid, self.ascending, cells.rows, cells.cols)

    def __repr__(self) -> str:
        extra = "" if self.ascending else ", ascending=False"
        extra += f", groupby={self.inputs[1]!r}" if len(self.inputs) > 1 else ""
        extra += f", mask={self.mask!r}" if self.mask is not None else ""
        return f"{self.inputs[0]!r}.rank({self.method!r}{extra})"


class Top(Filter):
    """The ``n`` highest (``ascending=True``: lowest) values of each date (group), ties by
    position: the cells whose ordinal rank is at most ``n`` (see :meth:`Factor.top`)."""

    n: int
    ascending: bool

    @classmethod
    def _spec(cls, factor: Factor, n: int, ascending: bool, mask: Any = None,
              groupby: Any = None) -> dict[str, Any]:
        owner = "bottom()" if ascending else "top()"
        _check_float_factor(owner, factor)
        groupby = check_groupby(owner, groupby)
        return {"inputs": (factor,) if groupby is None else (factor, groupby), "n": int(n),
                "ascending": bool(ascending), "mask": check_mask(owner, mask)}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        labels = inputs[1] if len(inputs) > 1 else None
        missing = self.inputs[1].missing_value if labels is not None else -1
        valid = _group_valid(mask, labels, missing, inputs[0].shape)
        if labels is None:
            return top_rows(inputs[0], valid, self.n, self.ascending)
        with np.errstate(invalid="ignore"):
            return rank_rows(inputs[0], valid, "ordinal", self.ascending, labels) <= self.n

    def __repr__(self) -> str:
        extra = f", groupby={self.inputs[1]!r}" if len(self.inputs) > 1 else ""
        extra += f", mask={self.mask!r}" if self.mask is not None else ""
        return f"{self.inputs[0]!r}.{'bottom' if self.ascending else 'top'}({self.n}{extra})"

class Normalized(Factor):
    """``demean``, ``zscore`` or ``winsorize`` of each date's (group's) values."""

    how: str
    bounds: tuple[float, float]

    @classmethod
    def _spec(cls, how: str, factor: Factor, mask: Any = None, groupby: Any = None,
              bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
        _check_float_factor(f"{how}()", factor)
        groupby = check_groupby(f"{how}()", groupby)
        mask = _both_masks(check_mask(f"{how}()", mask), factor.mask)
        return {"how": how, "inputs": (factor,) if groupby is None else (factor, groupby),
                "mask": mask, "bounds": bounds,
                "window_safe": True if how == "zscore" else factor.window_safe}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        labels = inputs[1] if len(inputs) > 1 else None
        missing = self.inputs[1].missing_value if labels is not None else -1
        valid = _group_valid(mask, labels, missing, inputs[0].shape)
        if self.how == "demean":
            return demean_rows(inputs[0], valid, labels)
        if self.how == "zscore":
            return zscore_rows(inputs[0], valid, labels)
        return winsorize_rows(inputs[0], valid, *self.bounds, labels=labels)

    def __repr__(self) -> str:
        args = [f"{b:g}" for b in self.bounds] if self.how == "winsorize" else []
        if len(self.inputs) > 1:
            args.append(f"groupby={self.inputs[1]!r}")
        return f"{self.inputs[0]!r}.{self.how}({', '.join(args)})"


class Slice(Factor):
    """One asset's column of a factor: an ``(n_dates, 1)`` term, broadcast where used."""

    asset: str

    ndim = 1

    @classmethod
    def _spec(cls, factor: Factor, asset: Any) -> dict[str, Any]:
        if not isinstance(factor, Factor):
            raise PipelineDefinitionError(f"only factors can be sliced by asset, not {factor!r}.")
        return {"inputs": (factor,), "asset": str(asset), "window_safe": factor.window_safe}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        return inputs[0][:, ctx.asset_position(self.asset, self)][:, None]

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}[{self.asset!r}]"


class OutputField(Factor):
    """One named output of a multi-output custom factor (``bands.upper``)."""

    name: str

    @classmethod
    def _spec(cls, factor: Term, name: str) -> dict[str, Any]:
        return {"inputs": (factor,), "name": name, "mask": factor.mask,
                "window_safe": factor.window_safe, "dtype": factor.dtype,
                "missing_value": factor.missing_value}

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> np.ndarray:
        return inputs[0][self.name]

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.{self.name}"

