"""User-defined terms: ``CustomFactor``, ``CustomFilter``, ``CustomClassifier``.

The contract is Zipline's, so code written for Zipline runs unchanged apart from imports::

    class Reversion(CustomFactor):
        inputs = [EquityPricing.close]
        window_length = 60

        def compute(self, today, assets, out, prices):
            out[:] = -prices[-1] / np.mean(prices, axis=0)

For each date the engine calls ``compute(today, assets, out, *inputs, **params)``:

* ``today`` — the date of the row being computed (a ``pandas.Timestamp``); the windows end
  with the bar *before* it (see :func:`foldwise.pipeline.run_pipeline`);
* ``assets`` — the labels of the assets passing ``mask`` that day (all assets without a
  mask), a numpy array of strings;
* ``out`` — the ``(len(assets),)`` array to write into (a record array with one field per
  name when ``outputs`` is declared: ``out.alpha[:] = ...``);
* one read-only ``(window_length, len(assets))`` array per input, oldest row first, taken
  from a sliding-window view of the whole input without copying it (a copy is made only
  on days when a mask drops some assets; single-column inputs such as ``returns["AAPL"]``
  are passed whole);
* the declared ``params``, as keyword arguments.

Built-in factors subclass :class:`CustomFactor` too and keep a per-date ``compute`` (the
reference definition), but also define ``_compute_all``, a whole-array kernel the engine
uses instead — unless a subclass overrides ``compute``, in which case its ``compute`` runs.
Some also define ``_cells_all``, the same kernel's values at chosen cells alone, which a
screened ``run_pipeline`` uses for a column only the output needs (see
:func:`foldwise.pipeline._engine.execute_screened`); overriding ``_compute_all`` or
``compute`` turns it off.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError, PipelineOutputError
from foldwise.pipeline._classifier import Classifier
from foldwise.pipeline._factor import Factor, OutputField
from foldwise.pipeline._filter import Filter
from foldwise.pipeline._kernels import sliding_windows
from foldwise.pipeline._term import (
    BOOL,
    FLOAT64,
    INT64,
    NotSpecified,
    Term,
    check_dtype,
    check_inputs,
    check_mask,
    check_window_length,
    default_missing_value,
)

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Cells, Context

__all__ = ["CustomClassifier", "CustomFactor", "CustomFilter", "Latest"]

_RESERVED = frozenset({"inputs", "outputs", "window_length", "mask", "dtype", "missing_value",
                       "window_safe", "ndim", "domain", "compute", "params"})


def _declared_params(cls: type[_CustomTerm]) -> dict[str, Any]:
    declared = cls.params
    if isinstance(declared, Mapping):
        return dict(declared)
    if isinstance(declared, str):
        declared = (declared,)
    return {name: NotSpecified for name in declared}


def custom_spec(cls: type[_CustomTerm], allowed: tuple[np.dtype, ...], inputs: Any, outputs: Any,
                window_length: Any, mask: Any, dtype: Any, missing_value: Any,
                window_safe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The attributes of a custom term: constructor arguments, else the class's defaults."""
    name = cls.__name__
    if isinstance(inputs, (int, np.integer)) and not isinstance(inputs, bool):
        if window_length is not NotSpecified:
            raise PipelineDefinitionError(
                f"{name}({inputs}, window_length={window_length}): the first argument is "
                "read as the window length; pass only one of them.")
        inputs, window_length = NotSpecified, inputs
    inputs = check_inputs(name, cls.inputs if inputs is NotSpecified else inputs)
    for term in inputs:
        if term.outputs is not None:
            raise PipelineDefinitionError(
                f"{name}: the input {term!r} has several outputs ({', '.join(term.outputs)}); "
                f"pass one of them, e.g. {term!r}.{term.outputs[0]}.")
    window_length = check_window_length(
        name, cls.window_length if window_length is NotSpecified else window_length)
    outputs = cls.outputs if outputs is NotSpecified else outputs
    if outputs is not None:
        outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        reserved = {a for a in dir(cls) if not a.startswith("_")} | _RESERVED
        bad = [o for o in outputs if not isinstance(o, str) or not o.isidentifier()
               or o.startswith("_") or o in reserved]
        if not outputs or bad:
            raise PipelineDefinitionError(
                f"{name}: outputs must be a non-empty list of names that are valid identifiers, "
                f"do not start with '_' and do not shadow an attribute; got {list(outputs)}.")
    dtype = check_dtype(name, cls.dtype if dtype is NotSpecified else dtype, allowed)
    if missing_value is NotSpecified:
        missing_value = cls.missing_value
    if missing_value is NotSpecified:
        missing_value = default_missing_value(name, dtype)
    declared = _declared_params(cls)
    unknown = [k for k in kwargs if k not in declared]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(declared) or "none"
        raise PipelineDefinitionError(
            f"{name} got unexpected keyword argument(s) {unknown}.{hint} Its params: {known} "
            "(declare more with params = ('name', ...) or {'name': default}).")
    params = {}
    for key, default in declared.items():
        if key in _RESERVED:
            raise PipelineDefinitionError(f"{name}: a param cannot be named {key!r}.")
        value = kwargs.get(key, default)
        if value is NotSpecified:
            raise PipelineDefinitionError(
                f"{name} needs a value for its param {key!r}, e.g. {name}({key}=...).")
        params[key] = value
    return {
        "inputs": inputs,
        "outputs": outputs,
        "window_length": window_length,
        "mask": check_mask(name, mask),
        "dtype": dtype,
        "missing_value": missing_value,
        "window_safe": bool(cls.window_safe if window_safe is NotSpecified else window_safe),
        "params": params,
    }


def _standard_spec(cls: type[_CustomTerm], inputs: Any = NotSpecified,
                   outputs: Any = NotSpecified, window_length: Any = NotSpecified,
                   mask: Any = NotSpecified, dtype: Any = NotSpecified,
                   missing_value: Any = NotSpecified, window_safe: Any = NotSpecified,
                   **kwargs: Any) -> dict[str, Any]:
    """The constructor arguments of CustomFactor, CustomFilter and CustomClassifier."""
    return custom_spec(cls, cls._allowed_dtypes, inputs, outputs, window_length, mask,
                       dtype, missing_value, window_safe, kwargs)


def _defining_class(cls: type, attribute: str) -> type | None:
    return next((c for c in cls.__mro__ if attribute in vars(c)), None)


class _CustomTerm(Term):
    """What the three custom term classes share: construction and the per-date loop."""

    _allowed_dtypes: tuple[np.dtype, ...] = (FLOAT64,)
    inputs: Any = NotSpecified
    window_length: Any = NotSpecified
    # On the class: the declared params (names, or a dict of names to defaults, as in
    # Zipline); on a constructed term: a dict of their values. Subclasses that declare
    # params annotate them ``Any`` too, so that both readings type-check.
    params: Any = ()
    ctx: Any = contextlib.nullcontext()

    @classmethod
    def _spec(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Untyped here so that a subclass can take other constructor arguments (as
        # RollingPearson does); the standard ones are bound by _standard_spec.
        return _standard_spec(cls, *args, **kwargs)

    if TYPE_CHECKING:
        # An optional whole-array kernel (built-ins define it). Declared for the type
        # checker only: whether a class defines it decides how the term is computed.
        def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> Any: ...

        # An optional kernel giving the whole kernel's values at chosen cells alone (None
        # to decline), for a screened run_pipeline; declared for the type checker only.
        def _cells_all(self, inputs: list[np.ndarray], ctx: Context,
                       cells: Cells) -> np.ndarray | None: ...

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, *inputs: Any) -> None:
        """Write this term's values for ``today`` into ``out`` (override in a subclass)."""
        raise PipelineDefinitionError(
            f"{type(self).__name__} must define compute(self, today, assets, out, *inputs).")

    def _uses_kernel(self) -> bool:
        """True if a whole-array ``_compute_all`` stands for this class's ``compute``."""
        kernel_owner = _defining_class(type(self), "_compute_all")
        compute_owner = _defining_class(type(self), "compute")
        return (kernel_owner is not None and compute_owner is not None
                and issubclass(kernel_owner, compute_owner))

    def _uses_cell_kernel(self) -> bool:
        """True if a ``_cells_all`` stands for the whole kernel this class computes with
        (defined on the class of that kernel or below it, so that overriding
        ``_compute_all`` or ``compute`` also turns off the cell kernel above it)."""
        cell_owner = _defining_class(type(self), "_cells_all")
        kernel_owner = _defining_class(type(self), "_compute_all")
        return (cell_owner is not None and kernel_owner is not None
                and issubclass(cell_owner, kernel_owner) and self._uses_kernel())

    def _compute(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> Any:
        if self._uses_kernel():
            with self.ctx:
                result = self._compute_all(inputs, ctx)
            return _apply_mask(result, mask, self.missing_value)
        return self._compute_by_date(inputs, mask, ctx)

    def _cell_inputs(self) -> tuple[bool, ...] | None:
        if self.outputs is not None or not self._uses_cell_kernel():
            return None
        return (False,) * len(self.inputs)  # windows: each input arrives whole

    def _compute_cells(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context,
                       cells: Cells) -> np.ndarray | None:
        if any(array.shape[1] != len(ctx.assets) for array in inputs):
            return None  # a single-column input: computed whole, as the kernel expects
        with self.ctx:
            values = self._cells_all(inputs, ctx, cells)
        if values is None or mask is None:
            return values
        return np.where(cells.take(mask), values, self.missing_value)

    def _allocate(self, shape: tuple[int, int]) -> np.ndarray:
        if self.outputs is None:
            return np.full(shape, self.missing_value, dtype=self.dtype)
        out = np.recarray(shape, dtype=[(name, self.dtype) for name in self.outputs])
        for name in self.outputs:
            out[name] = self.missing_value
        return out

    def _compute_by_date(self, inputs: list[Any], mask: np.ndarray | None, ctx: Context) -> Any:
        n_rows, n_assets = len(ctx.dates), len(ctx.assets)
        windows = [sliding_windows(values, self.window_length) for values in inputs]
        out = self._allocate((n_rows, n_assets))
        with self.ctx:
            if mask is None or mask.all():
                self._run_unmasked(out, windows, ctx)
            else:
                self._run_masked(out, windows, mask, ctx)
        if self.outputs is None:
            return out
        return {name: np.ascontiguousarray(out[name]) for name in self.outputs}

    def _run_unmasked(self, out: np.ndarray, windows: list[np.ndarray], ctx: Context) -> None:
        """One ``compute`` call per date over every asset: the loop Python runs most.

        The per-date views of ``out`` and of each input's windows are made by numpy's own
        iteration (``list(array)``), so a call costs the user's ``compute`` and little else.
        """
        compute, params, assets = self.compute, self.params, ctx.assets
        rows = list(out)
        today, row = None, rows[0]
        try:
            if len(windows) == 1 and not params:
                for today, row, window in zip(ctx.timestamps, rows, list(windows[0]),
                                              strict=True):
                    returned = compute(today, assets, row, window)
                    if returned is not None:
                        self._check_returned(returned, row)
            else:
                for today, row, *arrays in zip(ctx.timestamps, rows, *map(list, windows),
                                               strict=True):
                    returned = compute(today, assets, row, *arrays, **params)
                    if returned is not None:
                        self._check_returned(returned, row)
        except PipelineOutputError:
            raise
        except (ValueError, TypeError) as exc:
            raise self._compute_failed(exc, today, row, n_assets=len(assets)) from exc

    def _run_masked(self, out: np.ndarray, windows: list[np.ndarray], mask: np.ndarray,
                    ctx: Context) -> None:
        compute, params, assets = self.compute, self.params, ctx.assets
        for row, today in enumerate(ctx.timestamps):
            day_mask = mask[row]
            if day_mask.all():
                arrays = [w[row] for w in windows]
                self._call(compute, today, assets, out[row], arrays, params)
                continue
            columns = np.flatnonzero(day_mask)
            arrays = [w[row] if w.shape[2] == 1 else w[row][:, columns] for w in windows]
            row_out = out[row][columns]
            self._call(compute, today, assets[columns], row_out, arrays, params)
            out[row, columns] = row_out

    def _call(self, compute: Any, today: Any, assets: np.ndarray, out: np.ndarray,
              arrays: list[np.ndarray], params: dict[str, Any]) -> None:
        try:
            returned = compute(today, assets, out, *arrays, **params)
        except (ValueError, TypeError) as exc:
            raise self._compute_failed(exc, today, out, len(assets)) from exc
        if returned is not None:
            self._check_returned(returned, out)

    def _compute_failed(self, exc: Exception, today: Any, out: np.ndarray,
                        n_assets: int) -> PipelineOutputError:
        day = today.date() if today is not None else "the first date"
        return PipelineOutputError(
            f"{self!r}.compute failed on {day} with {type(exc).__name__}: {exc}. "
            f"It receives out of shape {out.shape} and dtype {self.dtype} (one value per "
            f"asset passing the mask that day) and each input as an array of shape "
            f"({self.window_length}, {n_assets}); write one value per asset into out, "
            "e.g. out[:] = np.mean(prices, axis=0).")

    def _check_returned(self, returned: Any, out: np.ndarray) -> None:
        if (isinstance(returned, np.ndarray) and returned is not out
                and not np.shares_memory(returned, out)):
            raise PipelineOutputError(
                f"{self!r}.compute returned an array of shape {returned.shape} instead of "
                f"writing into out (shape {out.shape}); write the values with out[:] = ... "
                "(a returned value is ignored).")


def _apply_mask(result: Any, mask: np.ndarray | None, missing: Any) -> Any:
    if mask is None:
        return result
    if isinstance(result, dict):
        return {name: np.where(mask, values, missing) for name, values in result.items()}
    return np.where(mask, result, missing)


class CustomFactor(_CustomTerm, Factor):
    """Base class of user-defined factors (see the module docstring for the contract).

    Parameters
    ----------
    inputs : list of terms, optional
        Dataset columns (``EquityPricing.close``) or window-safe factors/filters; defaults
        to the class attribute ``inputs``. (An integer as first argument is read as the
        window length: ``Returns(20)`` is ``Returns(window_length=20)``.)
    window_length : int, optional
        Rows of each input passed per date; defaults to the class attribute.
    outputs : list of str, optional
        Names of several outputs; each becomes an attribute (``factor.name``) and the
        factor can be unpacked (``low, high = MyBands()``).
    mask : Filter, optional
        Compute only for assets passing the filter each day; the others get
        ``missing_value``.
    dtype : numpy dtype, optional
        ``float64`` (the default and only factor dtype).
    missing_value : optional
        Written where the mask excludes an asset (NaN by default).
    window_safe : bool, optional
        Declare the output comparable across dates (default False, or the class
        attribute), so that it may feed another windowed term.
    **params
        Values of the parameters declared by the class attribute ``params`` (a tuple of
        names, or a dict of names to defaults); passed to ``compute`` as keywords.

    Examples
    --------
    >>> import numpy as np
    >>> from foldwise.pipeline import CustomFactor, EquityPricing, run_pipeline, Pipeline
    >>> class Reversion(CustomFactor):
    ...     inputs = [EquityPricing.close]
    ...     window_length = 60
    ...     def compute(self, today, assets, out, prices):
    ...         out[:] = -prices[-1] / np.mean(prices, axis=0)
    >>> from foldwise.datasets import load_sp500
    >>> frame = run_pipeline(Pipeline({"reversion": Reversion()}), load_sp500(),
    ...                      "2022-12-01", "2022-12-28")
    >>> frame.shape
    (380, 1)
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        outputs = self.__dict__.get("outputs")
        if outputs is not None and name in outputs:
            return OutputField(self, name)
        choices = f" Its outputs: {', '.join(outputs)}." if outputs else ""
        raise AttributeError(f"{type(self).__name__} has no attribute or output {name!r}.{choices}")

    def __iter__(self) -> Iterator[Factor]:
        if self.outputs is None:
            raise PipelineDefinitionError(
                f"{self!r} has a single output; it cannot be unpacked (declare outputs = [...] "
                "for several).")
        return (OutputField(self, name) for name in self.outputs)

    def _repr_args(self) -> list[str]:
        cls = type(self)
        args = []
        class_inputs = cls.inputs
        if class_inputs is NotSpecified or tuple(class_inputs) != self.inputs:
            args.append(f"[{', '.join(t._short_repr() for t in self.inputs)}]")
        args.append(f"window_length={self.window_length}")
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        if self.mask is not None:
            args.append(f"mask={self.mask._short_repr()}")
        return args


class CustomFilter(_CustomTerm, Filter):
    """Base class of user-defined filters: like :class:`CustomFactor`, writing booleans.

    Examples
    --------
    >>> from foldwise.pipeline import CustomFilter, EquityPricing
    >>> class AllPositive(CustomFilter):
    ...     inputs = [EquityPricing.close]
    ...     window_length = 5
    ...     def compute(self, today, assets, out, closes):
    ...         out[:] = (closes > 0).all(axis=0)
    >>> AllPositive().dtype
    dtype('bool')
    """

    _allowed_dtypes = (BOOL,)
    window_safe = True
    _repr_args = CustomFactor._repr_args


class CustomClassifier(_CustomTerm, Classifier):
    """Base class of user-defined classifiers: like :class:`CustomFactor`, writing ``int64``
    labels (``missing_value`` -1 by default)."""

    _allowed_dtypes = (INT64,)
    _repr_args = CustomFactor._repr_args


class _LatestMixin:
    """``column.latest``: the column's value on the bar before each date."""

    inputs: tuple[Term, ...]
    window_length = 1

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray) -> None:
        out[:] = data[-1]

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return inputs[0]

    def __repr__(self) -> str:
        return f"{self.inputs[0]!r}.latest"


class Latest(_LatestMixin, CustomFactor):
    """The latest value of a float column (``EquityPricing.close.latest``)."""

    window_safe = False


class LatestFilter(_LatestMixin, CustomFilter):
    """The latest value of a boolean column."""


class LatestClassifier(_LatestMixin, CustomClassifier):
    """The latest value of an integer column."""


def latest_of(column: Term) -> Term:
    """The ``Latest`` term matching ``column``'s dtype."""
    kind = {FLOAT64: Latest, BOOL: LatestFilter, INT64: LatestClassifier}[column.dtype]
    missing = column.missing_value
    if isinstance(missing, float) and math.isnan(missing):
        return kind(inputs=[column])
    return kind(inputs=[column], missing_value=missing)
