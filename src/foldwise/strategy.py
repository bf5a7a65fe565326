"""The strategy contract: ``(data, **params) -> weights`` (or a ready ``BacktestResult``).

A strategy is any callable whose first argument is a :class:`~foldwise.MarketData` and whose
other arguments are its parameters, returning target weights — a DataFrame (dates x
assets), a Series (one asset) or an array ``(n_dates, n_assets)`` — or a
:class:`~foldwise.BacktestResult` it computed itself. Weights follow the timing convention
of :func:`foldwise.backtest`: a weight dated ``t`` uses data through the close of ``t`` only.

Strategy code reads a field as a DataFrame, ``data["close"]`` (dates x assets), or as the
read-only numpy array, ``data.array("close")``. The data is shared by every trial and cannot
be written into: a strategy that tries fails with a
:class:`~foldwise.errors.DataWriteError` saying to work on a copy.

:class:`Strategy` wraps such a callable with what the rest of foldwise needs:

* a **name** and a **fingerprint** of its code and of the user code it calls (see
  :mod:`foldwise._fingerprint`), which the backtest cache uses so that editing the strategy
  or a helper it calls is never served a stale result, while editing an unrelated function
  is;
* **parameter validation** against the signature, with "did you mean ...?" for typos;
* a ``causal`` flag: a causal strategy's weight dated ``t`` depends on data through ``t``
  only, so one backtest over the full history serves every fold (see
  :func:`check_causal` to test the claim).

Use the :func:`strategy` decorator, wrap a function with ``Strategy(func)``, or subclass
:class:`Strategy` and define ``compute(self, data, **params)``.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property, partial
from typing import Any, NamedTuple, overload

import joblib
import numpy as np
import pandas as pd

from foldwise._fingerprint import code_fingerprint, fingerprint_entries
from foldwise.backtest import BacktestResult, BacktestSettings, Costs, MissingPolicy, backtest
from foldwise.data import MarketData
from foldwise.errors import (
    DataWriteError,
    LookaheadError,
    MisalignedWeightsError,
    StrategyError,
    StrategyOutputError,
    StrategyParameterError,
)

__all__ = ["Strategy", "as_strategy", "check_causal", "strategy"]

StrategyFunction = Callable[..., Any]


class Strategy:
    """A named, fingerprinted strategy.

    Parameters
    ----------
    func
        ``func(data, **params)`` returning weights or a ``BacktestResult``. Omit it when
        subclassing and define ``compute(self, data, **params)`` instead.
    name
        Display and cache name; defaults to the function's (or class's) name.
    version
        For code whose source cannot be read: the fingerprint becomes the name plus this
        string, and it is up to you to change it whenever the code changes.
    causal
        Declares that the weight dated ``t`` depends on data through the close of ``t``
        only (default True). A function of ``(data, params)`` that is not causal has
        lookahead whatever window it is run on; :func:`check_causal` tests the claim.

    Examples
    --------
    >>> from foldwise import Strategy
    >>> def flat(data, level=0.0):
    ...     return data["close"] * 0 + level
    >>> s = Strategy(flat)
    >>> s.validate_params({"level": 0.5})
    {'level': 0.5}
    >>> s.validate_params({"levle": 0.5})
    Traceback (most recent call last):
    ...
    foldwise.errors.StrategyParameterError: strategy 'flat' has no parameter 'levle'. Did you mean 'level'? Its parameters: level.
    """

    def __init__(self, func: StrategyFunction | None = None, *, name: str | None = None,
                 version: str | None = None, causal: bool = True) -> None:
        if func is None:
            if type(self).compute is Strategy.compute:
                raise StrategyError(
                    "Strategy needs a function, e.g. Strategy(my_function), or a subclass that "
                    "defines compute(self, data, **params).")
            func = self.compute
        elif isinstance(func, Strategy):
            raise StrategyError("this is already a Strategy; use it directly.")
        elif not callable(func):
            raise StrategyError(
                f"a strategy must be callable as func(data, **params), got {func!r}.")
        self.func = func
        self.name = name or getattr(func, "__name__", None) or type(self).__name__
        if self.name == "compute" and func == getattr(self, "compute", None):
            self.name = type(self).__name__
        self.version = version
        self.causal = bool(causal)

    def compute(self, data: MarketData, **params: Any) -> Any:
        """Override in a subclass to define the strategy as a method."""
        raise StrategyError(f"{type(self).__name__} does not define compute(self, data, **params).")

    # --- identity ------------------------------------------------------------------------

    @property
    def _code_root(self) -> Any:
        return type(self) if self.func == getattr(self, "compute", None) else self.func

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the strategy's code and the user code it calls (32 hex characters).

        Stable across processes; changes when the strategy or a user helper it uses is
        edited (comments, formatting and docstrings excepted), or when ``version`` changes.
        """
        return code_fingerprint(self._code_root, version=self.version)

    def fingerprint_sources(self) -> list[str]:
        """The qualified names of the code and values the fingerprint covers."""
        if self.version is not None:
            return []
        return sorted(fingerprint_entries(self._code_root))

    # --- parameters ----------------------------------------------------------------------

    @cached_property
    def _signature(self) -> inspect.Signature:
        try:
            signature = inspect.signature(self.func)
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"cannot read the signature of strategy {self.name!r}: {exc}") from exc
        parameters = list(signature.parameters.values())
        if not parameters or parameters[0].kind not in (
                inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise StrategyError(
                f"strategy {self.name!r} must take the market data as its first positional "
                f"argument, e.g. def {self.name}(data, fast=10, slow=50); its signature is "
                f"{signature}.")
        return signature.replace(parameters=parameters[1:])

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter names and their defaults (``inspect.Parameter.empty`` if required)."""
        return dict(self._parameter_spec[0])

    @cached_property
    def _parameter_spec(self) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], bool]:
        """Read once from the signature: every parameter with its default, the defaults
        alone, the required names, and whether ``**kwargs`` accepts any name."""
        signature = self._signature.parameters.values()
        known = {p.name: p.default for p in signature
                 if p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                   inspect.Parameter.VAR_POSITIONAL)}
        defaults = {k: d for k, d in known.items() if d is not inspect.Parameter.empty}
        required = tuple(k for k, d in known.items() if d is inspect.Parameter.empty)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)
        return known, defaults, required, accepts_any

    def validate_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check ``params`` against the signature and return them with defaults filled in.

        Raises
        ------
        StrategyParameterError
            For an unknown name (with the closest known names) or a missing required one.
        """
        params = dict(params or {})
        known, defaults, required, accepts_any = self._parameter_spec
        if not accepts_any:
            for key in params:
                if key not in known:
                    close = difflib.get_close_matches(str(key), list(known), n=3, cutoff=0.6)
                    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                    listing = ", ".join(known) if known else "none"
                    raise StrategyParameterError(
                        f"strategy {self.name!r} has no parameter {key!r}.{hint} Its "
                        f"parameters: {listing}.")
        missing = [k for k in required if k not in params]
        if missing:
            raise StrategyParameterError(
                f"strategy {self.name!r} needs a value for {', '.join(map(repr, missing))} "
                "(no default). Add it to the parameters or the search space.")
        resolved = dict(defaults)
        resolved.update(params)
        return resolved

    # --- running -------------------------------------------------------------------------

    def __call__(self, data: MarketData, **params: Any) -> Any:
        """Call the underlying function: ``func(data, **params)``."""
        return self.func(data, **params)

    def _weights(self, data: MarketData, params: dict[str, Any]) -> Any:
        """What :meth:`run` backtests: ``func(data, **params)`` with validated parameters.

        A subclass may override it to give the same weights in a cheaper form (a numpy
        array rather than the DataFrame ``func`` returns), without changing ``func``, its
        fingerprint or its import path.
        """
        return self.func(data, **params)

    def run(self, data: MarketData, params: Mapping[str, Any] | None = None,
            settings: BacktestSettings | None = None, *,
            costs: Costs | Mapping[str, float] | float | None = None,
            delay: int | None = None, price_field: str | None = None,
            missing: MissingPolicy | None = None,
            periods_per_year: float | None = None) -> BacktestResult:
        """Validate ``params``, call the strategy and backtest its weights.

        ``settings`` (a :class:`~foldwise.BacktestSettings`) holds the backtest settings;
        the keywords ``costs``, ``delay``, ... replace its fields (see
        :func:`foldwise.backtest`).

        Raises
        ------
        StrategyParameterError
            Parameters that do not fit the signature.
        StrategyOutputError
            The strategy returned something other than weights of the data's shape or a
            ``BacktestResult`` covering the data's dates.
        DataWriteError
            The strategy wrote into read-only memory, most often the market data
            (``data["close"].iloc[0, 0] = ...``, ``data["close"].fillna(0, inplace=True)``):
            pandas' or numpy's ``ValueError: ... read-only`` (or the ``TypeError`` pandas
            raises from it) is re-raised naming the strategy and the fix, chained.
        """
        if not isinstance(data, MarketData):
            raise StrategyError(
                f"strategies run on MarketData, got {type(data).__name__}; wrap a DataFrame "
                "with foldwise.MarketData.from_frame(df).")
        resolved = self.validate_params(params)
        settings = BacktestSettings.coerce(settings, costs=costs, delay=delay,
                                           price_field=price_field, missing=missing,
                                           periods_per_year=periods_per_year)
        try:
            output = self._weights(data, resolved)
        except (ValueError, TypeError) as exc:
            cause = None if isinstance(exc, DataWriteError) else _read_only_write(exc)
            if cause is None:
                raise
            raise DataWriteError(
                f"strategy {self.name!r} wrote into read-only memory ({cause}). The market "
                "data is shared by every trial and read-only: work on a copy, e.g. "
                "close = data['close'].copy() (or data.array('close').copy()), and change "
                "the copy. The arrays pandas returns from .values and .to_numpy() are "
                "read-only too: use .to_numpy(copy=True) for an array to write into."
            ) from exc
        if isinstance(output, BacktestResult):
            if not output.index.equals(data.index):
                raise StrategyOutputError(
                    f"strategy {self.name!r} returned a BacktestResult over {len(output.index)} "
                    f"dates, but the data has {data.n_dates}; it must cover the data's dates.")
            return output
        if not isinstance(output, (pd.DataFrame, pd.Series, np.ndarray, list)):
            raise StrategyOutputError(
                f"strategy {self.name!r} returned {type(output).__name__}; it must return "
                "weights (DataFrame dates x assets, Series for one asset, or an array) or a "
                "BacktestResult.")
        try:
            return backtest(output, data, settings)
        except MisalignedWeightsError as exc:
            raise StrategyOutputError(
                f"strategy {self.name!r} returned weights that do not fit the data: {exc}") from exc

    def __repr__(self) -> str:
        params = ", ".join(
            k if d is inspect.Parameter.empty else f"{k}={d!r}" for k, d in self.parameters.items())
        return f"Strategy({self.name}({params}), causal={self.causal})"


def _read_only_write(exc: BaseException) -> BaseException | None:
    """The "... is read-only" ``ValueError`` behind ``exc``, or None.

    numpy says "assignment destination is read-only" or "output array is read-only",
    pandas' compiled code "buffer source array is read-only"; pandas re-raises some of them
    as a ``TypeError`` ("Invalid value ... for dtype") or another ``ValueError``, chained,
    so the chain of causes is followed (a few links at most).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        if isinstance(current, ValueError) and "read-only" in str(current):
            return current
        current = current.__cause__ or current.__context__
    return None


@overload
def strategy(func: StrategyFunction, /) -> Strategy: ...
@overload
def strategy(*, name: str | None = ..., version: str | None = ...,
             causal: bool = ...) -> Callable[[StrategyFunction], Strategy]: ...


def strategy(func: StrategyFunction | None = None, /, *, name: str | None = None,
             version: str | None = None, causal: bool = True,
             ) -> Strategy | Callable[[StrategyFunction], Strategy]:
    """Decorator form of :class:`Strategy`: ``@strategy`` or ``@strategy(name=..., ...)``."""
    if func is not None:
        return Strategy(func, name=name, version=version, causal=causal)

    def wrap(f: StrategyFunction) -> Strategy:
        return Strategy(f, name=name, version=version, causal=causal)

    return wrap


def as_strategy(obj: Strategy | StrategyFunction) -> Strategy:
    """Return ``obj`` if it is a :class:`Strategy`, else wrap the callable."""
    return obj if isinstance(obj, Strategy) else Strategy(obj)


def check_causal(strategy: Strategy | StrategyFunction, data: MarketData,
                 params: Mapping[str, Any] | None = None, *, cutoffs: int = 5,
                 seed: int = 0, settings: BacktestSettings | None = None,
                 baseline: BacktestResult | None = None, n_jobs: int = 1) -> int:
    """Check that weights dated ``t`` do not change when data after ``t`` changes.

    For ``cutoffs`` dates ``t`` spread over the history, every field is scrambled strictly
    after ``t`` twice — once pushed up (random factors 1.5-3), once down (0.2-0.6), so a
    threshold on a future value flips one way or the other; prices stay positive — and the
    weights through ``t`` are compared with the original ones (two backtests per cut-off).

    Parameters
    ----------
    settings
        The backtest settings the strategy is run with (its positions are compared, so a
        ``delay`` matters).
    baseline
        The strategy's result on ``data`` with ``params`` and ``settings`` if already at
        hand (e.g. from the cache); else it is run.
    n_jobs
        Processes the scrambled backtests are spread over (joblib; ``-1``: every core).
        Each scramble is seeded on its own, so the check and its verdict do not depend on
        ``n_jobs``.

    Returns
    -------
    int
        The backtests the check ran.

    Raises
    ------
    LookaheadError
        Naming the first date (and asset) whose weight changed: the strategy looks ahead.
    """
    runner = as_strategy(strategy)
    resolved = runner.validate_params(params)
    ran = 0 if baseline is not None else 1
    reference = _weights_of(baseline if baseline is not None
                            else runner.run(data, resolved, settings))
    n = data.n_dates
    cuts = np.linspace(n // 5, n - 2, num=max(1, cutoffs)).astype(int)
    seeds = iter(np.random.SeedSequence(seed).spawn(2 * len(cuts)))
    cases = [_Scramble(int(cut), span, next(seeds))
             for cut, span in itertools.product(cuts, ((1.5, 3.0), (0.2, 0.6)))]
    check = partial(_first_changes, runner, data, resolved, settings, reference)
    workers = min(len(cases), joblib.effective_n_jobs(n_jobs))
    found: Iterator[tuple[int, int] | None]
    if workers == 1:  # case by case, stopping at the first that finds lookahead
        found = (check([case])[0] for case in cases)
    else:  # one task per worker: the data and the reference travel once to each
        parts = joblib.Parallel(n_jobs=workers)(
            joblib.delayed(check)(cases[w::workers]) for w in range(workers))
        found = iter([parts[i % workers][i // workers] for i in range(len(cases))])
    for case, changed in zip(cases, found, strict=True):
        ran += 1
        if changed is not None:
            row, column = changed
            asset = f" for {data.assets[column]!r}" if reference.shape[1] == data.n_assets \
                else ""
            raise LookaheadError(
                f"strategy {runner.name!r} looks ahead: its weight dated "
                f"{data.index[row].date()}{asset} changed when only data after "
                f"{data.index[case.cut].date()} changed (parameters {dict(resolved)}). Use "
                "only data through each date (rolling windows, no centred windows, no "
                "full-sample statistics, no shift(-1)), or declare causal=False.")
    return ran


class _Scramble(NamedTuple):
    """One case of :func:`check_causal`: every field after bar ``cut`` multiplied by
    random factors in ``span``, drawn from ``seed``."""

    cut: int
    span: tuple[float, float]
    seed: np.random.SeedSequence


def _weights_of(result: BacktestResult) -> np.ndarray:
    """The weights a causality check compares (the returns of a result without positions)."""
    return result.positions.to_numpy() if result.positions.shape[1] else (
        result.returns.to_numpy()[:, None])


def _first_changes(runner: Strategy, data: MarketData, params: Mapping[str, Any],
                   settings: BacktestSettings | None, reference: np.ndarray,
                   cases: list[_Scramble]) -> list[tuple[int, int] | None]:
    """For each case, the first (date, column) whose weight through the cut differs from
    ``reference`` when the strategy runs on the scrambled data; None where none does."""
    found: list[tuple[int, int] | None] = []
    for cut, span, seed in cases:
        rng = np.random.default_rng(seed)
        fields = {}
        for name in data.fields:
            values = data.array(name).copy()
            values[cut + 1:] *= rng.uniform(*span, size=values[cut + 1:].shape)
            fields[name] = values
        perturbed = MarketData(fields, data.index, data.assets, price_fields=data.price_fields)
        weights = _weights_of(runner.run(perturbed, params, settings))
        changed = ~np.isclose(weights[: cut + 1], reference[: cut + 1], rtol=0, atol=1e-12,
                              equal_nan=True)
        rows, columns = np.nonzero(changed)
        found.append((int(rows[0]), int(columns[0])) if rows.size else None)
    return found
