"""Search spaces: typed parameter specs, shortcuts, and constraints between parameters.

A search space is either a dict of parameter specs::

    {"fast": Int(5, 50), "slow": Int(20, 200, step=5), "short": Categorical([False, True]),
     "costs_model": "v2"}                                  # a plain value is fixed

or an Optuna define-by-run callable ``(trial) -> params``. Shortcuts keep notebooks short:
``(5, 50)`` is ``Int(5, 50)``, ``(0.1, 2.0)`` is ``Float(0.1, 2.0)``, ``range(5, 55, 5)`` is
``Int(5, 50, step=5)``, a list is ``Categorical``, anything else is ``Fixed``.

Constraints (``"fast < slow"``, or any callable ``params -> bool``) are checked before a
parameter set is run: an infeasible set is never backtested and does not count towards the
trial budget (see :func:`foldwise.optimize`). String constraints are parsed, not
evaluated: only parameter names, numbers, arithmetic, comparisons, ``and``/``or``/``not``.
"""

from __future__ import annotations

import ast
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from foldwise._canonical import canonical
from foldwise._fingerprint import code_fingerprint
from foldwise.errors import FingerprintError, SearchSpaceError

__all__ = ["Categorical", "Fixed", "Float", "Int", "Param", "SearchSpace"]


class Param(ABC):
    """One parameter's spec: how to suggest it from an Optuna trial and how to describe it."""

    @abstractmethod
    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        """Ask ``trial`` for a value of this parameter."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A canonical, JSON-able description (stored with the study)."""


def _number(value: Any, name: str, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SearchSpaceError(f"{name} must be a number, got {value!r}.")
    return kind(value)


@dataclass(frozen=True)
class Int(Param):
    """Integers ``low <= x <= high`` on a grid of ``step`` (or log-uniform with ``log=True``)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        for attr in ("low", "high", "step"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SearchSpaceError(f"Int {attr} must be an integer, got {value!r}.")
        if self.low > self.high:
            raise SearchSpaceError(f"Int(low={self.low}, high={self.high}): low must be <= high.")
        if self.step < 1:
            raise SearchSpaceError(f"Int step must be >= 1, got {self.step}.")
        if self.log and (self.step != 1 or self.low < 1):
            raise SearchSpaceError(
                f"Int(log=True) needs step=1 and low >= 1 (got step={self.step}, low={self.low}).")

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step,
                "log": self.log}


@dataclass(frozen=True)
class Float(Param):
    """Floats ``low <= x <= high``, uniform, on a grid of ``step``, or log-uniform."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", _number(self.low, "Float low", float))
        object.__setattr__(self, "high", _number(self.high, "Float high", float))
        if self.step is not None:
            object.__setattr__(self, "step", _number(self.step, "Float step", float))
        if self.low > self.high:
            raise SearchSpaceError(f"Float(low={self.low}, high={self.high}): low must be <= high.")
        if self.step is not None and self.step <= 0:
            raise SearchSpaceError(f"Float step must be > 0, got {self.step}.")
        if self.log and (self.step is not None or self.low <= 0):
            raise SearchSpaceError(
                f"Float(log=True) needs no step and low > 0 (got step={self.step}, low={self.low}).")

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "step": self.step,
                "log": self.log}


@dataclass(frozen=True)
class Categorical(Param):
    """One of ``choices`` (None, bool, int, float or str, as Optuna stores them)."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Iterable[Any]) -> None:
        values = tuple(choices)
        if not values:
            raise SearchSpaceError("Categorical needs at least one choice.")
        for value in values:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise SearchSpaceError(
                    f"Categorical choice {value!r} ({type(value).__name__}) cannot be stored by "
                    "Optuna; use None, bool, int, float or str, and map it to an object inside "
                    "the strategy.")
        object.__setattr__(self, "choices", values)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def describe(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": canonical(list(self.choices))}


@dataclass(frozen=True)
class Fixed(Param):
    """A value that is not searched (passed to the strategy as is)."""

    value: Any

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return self.value

    def describe(self) -> dict[str, Any]:
        return {"type": "fixed", "value": canonical(self.value, f"fixed value {self.value!r}")}


def as_param(spec: Any, name: str) -> Param:
    """Turn a shortcut into a :class:`Param` (see the module docstring)."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, range):
        if len(spec) == 0 or spec.step < 0:
            raise SearchSpaceError(f"parameter {name!r}: {spec!r} is empty or decreasing.")
        return Int(spec.start, spec[-1], step=spec.step)
    if isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
        low, high = spec
        if isinstance(low, int) and isinstance(high, int):
            return Int(low, high)
        return Float(float(low), float(high))
    if isinstance(spec, list):
        return Categorical(spec)
    return Fixed(spec)


# --- constraints ---------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}


class _Expression:
    """A constraint written as a string, parsed into a whitelisted AST and walked."""

    def __init__(self, text: str, names: Sequence[str] | None) -> None:
        self.text = text
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise SearchSpaceError(f"constraint {text!r} is not a valid expression: {exc.msg}.") from exc
        for node in ast.walk(self._tree):
            allowed = (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp,
                       ast.Load, ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or,
                       *_BINARY, *_COMPARE)
            if not isinstance(node, allowed):
                raise SearchSpaceError(
                    f"constraint {text!r} uses {type(node).__name__}; only parameter names, "
                    "numbers, + - * / // % **, comparisons and and/or/not are allowed. Pass a "
                    "function params -> bool for anything else.")
            if isinstance(node, ast.Name) and names is not None and node.id not in names:
                raise SearchSpaceError(
                    f"constraint {text!r} names {node.id!r}, which is not a parameter of the "
                    f"search space ({', '.join(names)}).")

    def __call__(self, params: Mapping[str, Any]) -> bool:
        return bool(self._eval(self._tree, params))

    def _eval(self, node: ast.AST, params: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return params[node.id]
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, params)
            return _UNARY[type(node.op)](value)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, params),
                                          self._eval(node.right, params))
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, params) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, params)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, params)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        raise SearchSpaceError(f"constraint {self.text!r}: unsupported {type(node).__name__}.")


Constraint = Callable[[Mapping[str, Any]], bool] | str


def _identify(func: Callable[..., Any]) -> str:
    """Name plus code fingerprint of a callable (the name alone if its source is unreadable)."""
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    try:
        return f"{name}:{code_fingerprint(func)}"
    except FingerprintError:
        return name


def _name_constraint(label: str, check: Callable[..., Any]) -> str:
    """A constraint as a message names it: the string, or the function and where it is."""
    if isinstance(check, _Expression):
        return repr(label)
    name = getattr(check, "__qualname__", None) or label
    code = getattr(check, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{name!r}{where}"


class SearchSpace:
    """A search space and its constraints.

    Parameters
    ----------
    space
        A dict ``{name: spec}`` (see the module docstring) or a define-by-run callable
        ``(trial) -> params``.
    constraints
        A constraint or a list of them: strings such as ``"fast < slow"`` or callables
        ``params -> bool`` (True when the set is feasible).

    Examples
    --------
    >>> space = SearchSpace({"fast": (5, 50), "slow": range(20, 205, 5)}, "fast < slow")
    >>> space.infeasible({"fast": 30, "slow": 20})
    "violates 'fast < slow'"
    >>> space.infeasible({"fast": 10, "slow": 20}) is None
    True
    """

    def __init__(self, space: Mapping[str, Any] | Callable[[optuna.trial.BaseTrial], Mapping[str, Any]],
                 constraints: Constraint | Sequence[Constraint] | None = None) -> None:
        if isinstance(space, SearchSpace):
            raise SearchSpaceError("this is already a SearchSpace; pass it directly.")
        self._define: Callable[[optuna.trial.BaseTrial], Mapping[str, Any]] | None
        if callable(space) and not isinstance(space, Mapping):
            self.params: dict[str, Param] | None = None
            self._define = space
        elif isinstance(space, Mapping):
            if not space:
                raise SearchSpaceError("the search space is empty; give at least one parameter.")
            self.params = {str(name): as_param(spec, str(name)) for name, spec in space.items()}
            self._define = None
        else:
            raise SearchSpaceError(
                f"a search space is a dict of parameter specs or a function (trial) -> params, "
                f"got {type(space).__name__}.")
        if constraints is None:
            items: list[Constraint] = []
        elif isinstance(constraints, str) or callable(constraints):
            items = [constraints]
        else:
            items = list(constraints)
        names = list(self.params) if self.params is not None else None
        self._constraints: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = []
        for item in items:
            if isinstance(item, str):
                self._constraints.append((item, _Expression(item, names)))
            elif callable(item):
                self._constraints.append((getattr(item, "__name__", repr(item)), item))
            else:
                raise SearchSpaceError(
                    f"a constraint is a string like 'fast < slow' or a function params -> bool, "
                    f"got {item!r}.")

    @property
    def is_define_by_run(self) -> bool:
        return self._define is not None

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Ask ``trial`` for a full parameter set."""
        if self._define is not None:
            params = self._define(trial)
            if not isinstance(params, Mapping):
                raise SearchSpaceError(
                    f"the search-space function returned {type(params).__name__}; it must "
                    "return a dict of parameters.")
            return dict(params)
        assert self.params is not None
        return {name: spec.suggest(trial, name) for name, spec in self.params.items()}

    def infeasible(self, params: Mapping[str, Any]) -> str | None:
        """The first violated constraint as a reason string, or None if ``params`` is feasible."""
        for label, check in self._constraints:
            try:
                ok = check(params)
            except KeyError as exc:
                raise SearchSpaceError(
                    f"constraint {label!r} reads parameter {exc.args[0]!r}, which the search "
                    "space does not produce.") from None
            except Exception as exc:
                # The constraint's own fault, not the strategy's: no backtest has run yet.
                raise SearchSpaceError(
                    f"constraint {_name_constraint(label, check)} raised "
                    f"{type(exc).__name__}: {exc} (called with the parameters "
                    f"{dict(params)!r}). Fix the constraint; it must return True or False for "
                    "every parameter set in the space.") from exc
            if not isinstance(ok, (bool, np.bool_)):
                raise SearchSpaceError(
                    f"constraint {_name_constraint(label, check)} returned {ok!r} "
                    f"({type(ok).__name__}) for the parameters {dict(params)!r}; a constraint "
                    "must return True (feasible) or False (infeasible) for every parameter set "
                    "in the space"
                    + (" (does it lack a return statement?)." if ok is None else ".")
                    + " Fix the constraint, e.g. return bool(...).")
            if not ok:
                return f"violates {label!r}"
        return None

    def describe(self) -> dict[str, Any]:
        """Canonical description stored with a study (resuming with another space is refused)."""
        constraints = [label if isinstance(check, _Expression) else _identify(check)
                       for label, check in self._constraints]
        if self._define is not None:
            return {"define_by_run": _identify(self._define), "constraints": constraints}
        assert self.params is not None
        return {"params": {name: spec.describe() for name, spec in self.params.items()},
                "constraints": constraints}

    def __repr__(self) -> str:
        if self._define is not None:
            inner = getattr(self._define, "__name__", "define-by-run")
        else:
            assert self.params is not None
            inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        constraints = ", ".join(label for label, _ in self._constraints)
        return f"SearchSpace({inner}{'; ' + constraints if constraints else ''})"
