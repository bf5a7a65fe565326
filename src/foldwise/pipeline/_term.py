"""Pipeline terms: immutable expressions, memoized by identity.

A term is a formula over market data — a dataset column, a factor, a filter, a
classifier — never a value: constructing one computes nothing. Terms are **memoized**:
constructing a term twice with the same arguments returns the same object, so a
sub-expression shared by two pipeline columns is a single node of the graph and is
computed once, and the object itself can serve as a cache key within a process::

    >>> from foldwise.pipeline.factors import SimpleMovingAverage
    >>> from foldwise.pipeline.data import EquityPricing
    >>> a = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=5)
    >>> b = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=5)
    >>> a is b
    True

Across processes a term is identified by :meth:`Term.__fingerprint__`, a hash of its class
(and, for a class defined in user code, of that code), its parameters and the fingerprints
of its inputs. Terms are immutable: their attributes cannot be assigned after construction,
which is what makes memoizing them sound.

How a term is built: ``Term.__new__`` calls the class's ``_spec(*args, **kwargs)``, which
validates the constructor arguments and returns a dict of normalised attributes; the
identity of the term is the class plus the frozen form of that dict. A term missing from
the weak-valued memo is created, given those attributes and checked by ``_validate()``.
Pickling goes through the same memo (see :meth:`Term.__reduce__`), so a term sent to a
worker process is memoized there too.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from foldwise._canonical import canonical
from foldwise._fingerprint import code_fingerprint, is_user_module
from foldwise._hashing import hash_json
from foldwise.errors import NonWindowSafeInputError, ParameterError, PipelineDefinitionError

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Cells, Context
    from foldwise.pipeline._filter import Filter

__all__ = ["NotSpecified", "Term"]

#: Version of the pipeline arithmetic, part of every term fingerprint: bump it whenever a
#: change in this package alters a number a built-in term produces.
PIPELINE_VERSION = 1

FLOAT64 = np.dtype("float64")
INT64 = np.dtype("int64")
BOOL = np.dtype("bool")


class _NotSpecifiedType:
    """Sentinel for an argument that was not passed (``None`` can be a real value)."""

    _instance: ClassVar[_NotSpecifiedType | None] = None

    def __new__(cls) -> _NotSpecifiedType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NotSpecified"

    def __reduce__(self) -> str:
        return "NotSpecified"


NotSpecified = _NotSpecifiedType()


def _freeze(value: Any) -> Any:
    """A hashable, type-exact stand-in for ``value`` in a term's identity.

    Terms stand for themselves (they are memoized); floats are compared by their exact
    bits, so NaN equals NaN and ``5`` differs from ``5.0``.
    """
    if isinstance(value, Term) or value is None or value is NotSpecified:
        return value
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("int", int(value))
    if isinstance(value, (float, np.floating)):
        return ("float", float(value).hex())
    if isinstance(value, str):
        return value
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    try:
        hash(value)
    except TypeError:
        raise PipelineDefinitionError(
            f"term arguments must be hashable (terms are memoized by their arguments); got "
            f"{type(value).__name__} {value!r}. Pass numbers, strings or tuples, not arrays "
            "or sets.") from None
    return (type(value).__qualname__, value)


def _fingerprint_value(value: Any) -> Any:
    """The canonical, cross-process form of one term argument."""
    if isinstance(value, Term):
        return value.__fingerprint__()
    if value is NotSpecified:
        return "<NotSpecified>"
    if isinstance(value, np.dtype):
        return value.str
    if isinstance(value, (tuple, list)):
        return [_fingerprint_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _fingerprint_value(v) for k, v in value.items()}
    if callable(value):
        module = getattr(value, "__module__", None)
        if isinstance(module, str) and is_user_module(module):
            return code_fingerprint(value)
        return f"<{module}.{getattr(value, '__qualname__', type(value).__qualname__)}>"
    try:
        return canonical(value)
    except ParameterError as exc:
        raise PipelineDefinitionError(
            f"a term argument of type {type(value).__name__} has no stable identity, so the "
            f"term cannot be fingerprinted: {exc}") from exc


def _rebuild(cls: type[Term], spec: dict[str, Any]) -> Term:
    return cls._create(spec)


class Term:
    """Base class of every pipeline expression (columns, factors, filters, classifiers).

    Attributes
    ----------
    inputs : tuple of Term
        The terms this one is computed from.
    window_length : int
        Rows of each input a windowed term sees per date (0: not windowed; the inputs are
        aligned row for row).
    mask : Filter or None
        Where the term is computed; None means every asset.
    dtype : numpy.dtype
        ``float64`` for factors, ``bool`` for filters, ``int64`` for classifiers.
    missing_value
        What the term writes where it has no value (NaN, False or -1 by default).
    window_safe : bool
        Whether the term's values are comparable across dates, so that it can be the input
        of a windowed term (prices, returns, ranks and z-scores are; raw factor levels that
        depend on the window's own end, in general, are not).

    Notes
    -----
    Subclasses define ``_spec`` (constructor arguments -> attributes), ``_validate`` and
    ``_compute(inputs, mask, ctx)``; the engine calls ``_compute`` with each input already
    cut to the rows the term needs and returns a ``(n_rows, n_assets)`` array (a dict of
    them for several outputs).
    """

    # What kind of term this is: "column", "factor", "filter" or "classifier".
    kind: ClassVar[str] = "term"

    inputs: tuple[Term, ...] = ()
    window_length: int = 0
    mask: Filter | None = None
    dtype: Any = None
    missing_value: Any = NotSpecified
    window_safe: bool = False
    outputs: tuple[str, ...] | None = None
    params: Any = ()
    ndim: int = 2

    # The normalised constructor arguments (set once by ``_create``): the term's identity.
    _spec_items: dict[str, Any]

    _memo: ClassVar[weakref.WeakValueDictionary[Any, Term]] = weakref.WeakValueDictionary()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._create(cls._spec(*args, **kwargs))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: ``__new__`` returns an already initialised (maybe shared) term."""

    @classmethod
    def _spec(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Every concrete term turns its constructor arguments into its identity here."""
        raise PipelineDefinitionError(
            f"{cls.__name__} cannot be constructed: it is an abstract term. Use a concrete "
            "one (e.g. a built-in factor) or subclass CustomFactor / CustomFilter / "
            "CustomClassifier.")

    @classmethod
    def _create(cls, spec: dict[str, Any]) -> Any:
        identity = (cls, tuple(sorted((key, _freeze(value)) for key, value in spec.items())))
        existing = Term._memo.get(identity)
        if existing is not None:
            return existing
        term = object.__new__(cls)
        for key, value in spec.items():
            object.__setattr__(term, key, value)
        object.__setattr__(term, "_spec_items", spec)
        term._validate()
        return Term._memo.setdefault(identity, term)

    def _validate(self) -> None:
        """Check the attributes; raise PipelineDefinitionError naming the problem."""
        if self.window_length > 1:
            for child in self.inputs:
                if not child.window_safe:
                    raise NonWindowSafeInputError(
                        f"{self!r} takes {child!r} as a windowed input (window_length="
                        f"{self.window_length}), but {type(child).__name__} is not window-safe: "
                        "its value on one date is not comparable with its value on another, so "
                        "a window of it mixes incomparable numbers. Use a window-safe input (a "
                        "dataset column, Returns, a rank, a zscore, a filter), or, if its values "
                        "are comparable across dates, declare window_safe = True on "
                        f"{type(child).__name__}.")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"pipeline terms are immutable (they are shared between every expression that "
            f"uses them); cannot set {name!r} on {self!r}. Build a new term instead.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"pipeline terms are immutable; cannot delete {name!r}.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), dict(self._spec_items)))

    def __copy__(self) -> Term:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Term:
        return self

    # --- graph ---------------------------------------------------------------------------

    @property
    def extra_rows(self) -> int:
        """Rows of history each input needs before the term's first row."""
        return max(self.window_length - 1, 0)

    @property
    def dependencies(self) -> tuple[Term, ...]:
        """The inputs, then the mask (if any)."""
        return self.inputs if self.mask is None else (*self.inputs, self.mask)

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> Any:
        """Every concrete term computes its whole date range here."""
        raise PipelineDefinitionError(
            f"{type(self).__name__} defines no computation; subclass CustomFactor (or a "
            "built-in term) and give it a compute() method.")

    def _cell_inputs(self) -> tuple[bool, ...] | None:
        """Whether this term can be computed at chosen cells alone (see ``_compute_cells``).

        None (the default): only whole. Otherwise one flag per input: True where the input
        may arrive as its values at the cells, False where it must arrive whole (a window,
        a cross-section).
        """
        return None

    def _compute_cells(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context,
                       cells: Cells) -> np.ndarray | None:
        """This term's values at ``cells`` alone, equal to those ``_compute`` gives there.

        ``inputs`` are as for ``_compute``, except that an input this term takes at cells
        (``_cell_inputs``) may arrive as a 1-D array of its values at ``cells``; ``mask``
        arrives whole. Returning None declines (the engine then computes the term whole
        and takes its cells), which a term may do only when every input arrived whole.
        """
        return None

    # --- identity ------------------------------------------------------------------------

    def __fingerprint__(self) -> str:
        """A stable identity of the term, the same in every process (32 hex characters).

        Covers the class (and its source when it is defined in user code, e.g. a
        ``CustomFactor`` subclass), every argument, and the fingerprints of the inputs and
        the mask.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cls = type(self)
            code = code_fingerprint(cls) if is_user_module(cls.__module__) else None
            cached = hash_json({
                "v": PIPELINE_VERSION,
                "type": f"{cls.__module__}.{cls.__qualname__}",
                "code": code,
                "spec": {key: _fingerprint_value(value)
                         for key, value in sorted(self._spec_items.items())},
            })
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def _repr_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_args())})"

    def _short_repr(self) -> str:
        """A repr for use inside another term's repr (elided when long)."""
        text = repr(self)
        return text if len(text) <= 60 else f"{type(self).__name__}(...)"


# --- argument checks shared by the term classes ----------------------------------------------


def elementwise_ndim(*terms: Term) -> int:
    """The ``ndim`` of an elementwise operation of ``terms``: 1 when every input has one
    value per date (an asset's slice), so a pipeline refuses the result as a column or
    screen with a message rather than a shape error at run time; else 2 (a one-column
    input broadcasts over the assets)."""
    return 1 if all(term.ndim == 1 for term in terms) else 2


def check_window_length(owner: str, value: Any) -> int:
    """``value`` as an int >= 1, or a PipelineDefinitionError naming ``owner``."""
    if value is NotSpecified or value is None:
        raise PipelineDefinitionError(
            f"{owner} needs a window_length: pass window_length=... to the constructor or set "
            "it as a class attribute, e.g. window_length = 20.")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise PipelineDefinitionError(
            f"{owner}: window_length must be an integer number of bars, got {value!r} "
            f"({type(value).__name__}).")
    if value < 1:
        raise PipelineDefinitionError(f"{owner}: window_length must be >= 1, got {value}.")
    return int(value)


def check_inputs(owner: str, inputs: Any) -> tuple[Term, ...]:
    """``inputs`` as a tuple of terms, or a PipelineDefinitionError naming ``owner``."""
    if inputs is NotSpecified or inputs is None:
        raise PipelineDefinitionError(
            f"{owner} needs inputs: pass inputs=[...] to the constructor or set them as a "
            "class attribute, e.g. inputs = [EquityPricing.close].")
    if isinstance(inputs, Term):
        inputs = (inputs,)
    try:
        inputs = tuple(inputs)
    except TypeError:
        raise PipelineDefinitionError(
            f"{owner}: inputs must be a list of pipeline terms, e.g. [EquityPricing.close]; "
            f"got {inputs!r}.") from None
    bad = [i for i in inputs if not isinstance(i, Term)]
    if bad:
        raise PipelineDefinitionError(
            f"{owner}: every input must be a pipeline term (a dataset column such as "
            f"EquityPricing.close, or a factor, filter or classifier); got {bad[0]!r}.")
    return inputs


def check_mask(owner: str, mask: Any) -> Filter | None:
    """``mask`` as a filter or None."""
    if mask is NotSpecified or mask is None:
        return None
    if not (isinstance(mask, Term) and mask.kind == "filter"):
        raise PipelineDefinitionError(
            f"{owner}: mask must be a Filter (e.g. close.latest > 5), got {mask!r}.")
    # Only Filter subclasses are of kind "filter" (the class is not importable here: it
    # is defined on top of this module).
    return cast("Filter", mask)


def check_groupby(owner: str, groupby: Any) -> Term | None:
    """``groupby`` as a classifier or None."""
    if groupby is NotSpecified or groupby is None:
        return None
    if not (isinstance(groupby, Term) and groupby.kind == "classifier"):
        raise PipelineDefinitionError(
            f"{owner}: groupby must be a Classifier (e.g. factor.quintiles()), got {groupby!r}.")
    return groupby


def default_missing_value(owner: str, dtype: np.dtype) -> Any:
    """NaN for floats, False for bools, -1 for integers."""
    if dtype == FLOAT64:
        return math.nan
    if dtype == BOOL:
        return False
    if dtype == INT64:
        return -1
    raise PipelineDefinitionError(f"{owner}: no default missing_value for dtype {dtype}.")


def check_dtype(owner: str, dtype: Any, allowed: tuple[np.dtype, ...]) -> np.dtype:
    """``dtype`` as a numpy dtype among ``allowed``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise PipelineDefinitionError(f"{owner}: {dtype!r} is not a numpy dtype.") from None
    if resolved not in allowed:
        hint = {BOOL: " Did you mean a CustomFilter?", INT64: " Did you mean a CustomClassifier?"}
        names = ", ".join(str(a) for a in allowed)
        raise PipelineDefinitionError(
            f"{owner}: dtype {resolved} is not supported here (allowed: {names})."
            f"{hint.get(resolved, '') if FLOAT64 in allowed else ''}")
    return resolved
