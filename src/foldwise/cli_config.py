"""Study config files for ``foldwise run``: a TOML file parsed into a typed, checked config.

A config file says everything :func:`foldwise.optimize` needs, in a form a person reads::

    study = "goog-sma"                            # default: the file's name without .toml
    strategy = "foldwise.examples:sma_crossover"  # "module:function"

    [data]
    bundled = "goog"          # or path = "prices.csv" (CSV or Parquet), layout, field, ...
    start = 2006-01-01        # optional date range (both ends included)

    [splitter]
    type = "WalkForward"      # or PurgedKFold, CombinatorialPurgedKFold; then its arguments
    train = "2Y"
    test = "6M"

    [space]
    fast = { int = [5, 50] }
    slow = { int = [20, 200], step = 5 }
    threshold = { float = [1e-4, 1e-1], log = true }
    side = { categorical = ["long", "both"] }
    lag = 1                   # a plain value is fixed

    [optimize]
    constraints = ["fast < slow"]
    metric = "sharpe"
    n_trials = 20
    seed = 0
    select = "plateau"        # or "best", "top_k_mean", { rule = "plateau", radius = 0.2 }

    [backtest]
    commission_bps = 1
    slippage_bps = 2

:func:`load_config` reads a file and :func:`parse_config` a parsed document; both check
every key and value before anything runs and raise :class:`~foldwise.errors.ConfigError`
naming the file, the section, the key, the value and the fix (an unknown key gets "did you
mean ..."). Relative paths (the data file, ``dir``, a journal or SQLite ``storage``) are
resolved against the config file's folder, and a strategy module kept next to the file can
be imported.

:meth:`RunConfig.to_json` is the config's canonical JSON: the same sections with every
default written out and every path absolute. ``foldwise run`` stores it with the study
(:func:`foldwise.records.write_run_config`), and :meth:`RunConfig.from_json` reads it back
through the same checks, so ``foldwise resume STUDY`` runs the study again without the file.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import importlib
import inspect
import json
import math
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from foldwise.aggregate import RULES, Best, SelectRule, as_rule
from foldwise.backtest import BacktestSettings, Costs
from foldwise.data import MarketData
from foldwise.datasets import load_goog, load_sp500
from foldwise.errors import ConfigError, FoldwiseError
from foldwise.metrics import METRICS
from foldwise.space import Categorical, Fixed, Float, Int, Param, SearchSpace
from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward
from foldwise.strategy import Strategy, as_strategy

__all__ = [
    "BUNDLED",
    "CONFIG_VERSION",
    "DataConfig",
    "RunConfig",
    "SplitterConfig",
    "load_config",
    "parse_config",
]

#: Version of the stored JSON form (:meth:`RunConfig.to_json`).
CONFIG_VERSION = 1

#: Bundled data sets by name.
BUNDLED: dict[str, Callable[[], MarketData]] = {"goog": load_goog, "sp500": load_sp500}

_SPLITTERS: dict[str, type] = {
    "WalkForward": WalkForward,
    "PurgedKFold": PurgedKFold,
    "CombinatorialPurgedKFold": CombinatorialPurgedKFold,
}
# the values foldwise.optimize accepts (tests keep them in step with the optimizer)
SAMPLERS = ("tpe", "optuna-tpe", "random", "qmc", "cmaes", "gp", "nsga2")
MODES = ("walk_forward", "cv")
CV_AGGREGATES = ("mean", "median", "worst")
_LAYOUTS = ("auto", "wide", "long", "ohlcv")
_FORMATS = ("csv", "parquet")

_TOP = ("study", "strategy", "dir", "storage", "data", "splitter", "space", "optimize",
        "backtest")
_STORED_ONLY = ("version", "origin")  # written by to_json, not by people
_DATA = ("bundled", "path", "format", "layout", "field", "asset", "price_fields", "start",
         "end")
_FILE_ONLY = ("format", "layout", "field", "asset", "price_fields")
_OPTIMIZE = ("constraints", "metric", "direction", "sampler", "n_trials", "seed", "top_k",
             "select", "mode", "timeout", "n_jobs", "cv_aggregate", "warmup", "check_lookahead")
_BACKTEST = ("commission_bps", "slippage_bps", "delay", "price_field", "missing",
             "periods_per_year")
_PARAM_KINDS = ("int", "float", "categorical", "fixed")
_PARAM_OPTIONS = {"int": ("step", "log"), "float": ("step", "log"), "categorical": (),
                  "fixed": ()}


# --- messages ------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    """``value`` as it is written in TOML (true, "text", [1, 2], { a = 1 })."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


@dataclass(frozen=True)
class _Where:
    """Where a value sits, for messages: the file and the section."""

    origin: str  # "study.toml", or "the config stored with study 'x'"
    section: str = ""  # "" is the top level; "space" -> "[space]"

    def at(self, section: str) -> _Where:
        return _Where(self.origin, section)

    def name(self) -> str:
        return f"[{self.section}]" if self.section else "the top level"

    def place(self) -> str:
        return f"in [{self.section}]" if self.section else "at the top level"

    def key(self, key: str) -> str:
        return f"[{self.section}] {key}" if self.section else key

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {message}")

    def bad(self, key: str, value: Any, problem: str) -> ConfigError:
        """``file: [section] key = value: problem`` (the problem says the fix)."""
        return self.error(f"{self.key(key)} = {_toml(value)}: {problem}")


def _close(word: str, choices: Sequence[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: _Where) -> None:
    for key in table:
        if key not in allowed:
            raise where.error(
                f"unknown key {key!r} {where.place()}.{_close(key, allowed)} The keys "
                f"{where.place()} are: {', '.join(allowed)}.")


def _table(document: Mapping[str, Any], key: str, where: _Where, *,
           required: bool = True) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None and not required:
        return {}
    if value is None:
        raise where.error(f"there is no [{key}] section; add one (see examples/study.toml).")
    if not isinstance(value, Mapping):
        raise where.bad(key, value, f"must be a section [{key}] (a table of keys), not a "
                        "value.")
    return value


# --- values --------------------------------------------------------------------------------


def _str(table: Mapping[str, Any], key: str, where: _Where, default: Any = None,
         example: str = "") -> Any:
    value = table.get(key, default)
    if value is None or (isinstance(value, str) and value):
        return value
    hint = f" (e.g. {key} = {json.dumps(example)})" if example else ""
    raise where.bad(key, value, f"must be a non-empty string{hint}.")


def _choice(table: Mapping[str, Any], key: str, where: _Where, choices: Sequence[str],
            default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None or (isinstance(value, str) and value in choices):
        return value
    hint = _close(value, choices) if isinstance(value, str) else ""
    raise where.bad(key, value, f"must be one of {', '.join(map(json.dumps, choices))}.{hint}")


def _int(table: Mapping[str, Any], key: str, where: _Where, default: Any = None, *,
         minimum: int = 0, what: str = "", allow: Sequence[int] = ()) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and (
            value >= minimum or value in allow):
        return value
    also = f" (or {', '.join(map(str, allow))})" if allow else ""
    raise where.bad(key, value, f"must be an integer >= {minimum}{also}{what}.")


def _number(table: Mapping[str, Any], key: str, where: _Where, default: Any = None, *,
            positive: bool = False, what: str = "") -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
            value) and (value > 0 if positive else value >= 0):
        return value
    bound = "> 0" if positive else ">= 0"
    raise where.bad(key, value, f"must be a finite number {bound}{what}.")


def _bool(table: Mapping[str, Any], key: str, where: _Where, default: bool) -> bool:
    value = table.get(key, default)
    if isinstance(value, bool):
        return value
    raise where.bad(key, value, "must be true or false.")


def _date(table: Mapping[str, Any], key: str, where: _Where) -> str | None:
    """A date (TOML date or date-time, or an ISO string) as an ISO string."""
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        try:
            _dt.datetime.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise where.bad(key, value, "must be a date, e.g. 2010-01-01 (a TOML date) or "
                    "\"2010-01-01\".")


def _resolve(path: str, folder: Path) -> str:
    """``path`` (``~`` expanded) made absolute against ``folder``."""
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (folder / candidate).absolute())


def _resolve_storage(storage: str, folder: Path) -> str:
    """A journal path or SQLite URL with a relative file made absolute against ``folder``;
    anything else (a server URL, ``"memory"``) as given."""
    if storage.startswith("journal:"):
        return "journal:" + _resolve(storage[len("journal:"):], folder)
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + _resolve(storage[len("sqlite:///"):], folder)
    if "://" not in storage and storage.endswith((".journal", ".log")):
        return _resolve(storage, folder)
    return storage


# --- sections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` section: a bundled set or a file, and an optional date range.

    Attributes
    ----------
    bundled
        ``"goog"`` or ``"sp500"`` (:mod:`foldwise.datasets`), or None for a file.
    path
        The CSV or Parquet file (absolute), or None for a bundled set.
    format
        ``"csv"`` or ``"parquet"`` (None: from the file's suffix).
    layout, field, asset, price_fields
        Passed to :meth:`foldwise.MarketData.read_csv` / ``read_parquet``.
    start, end
        The first and last date kept (ISO strings, both included), or None.
    """

    bundled: str | None = None
    path: str | None = None
    format: str | None = None
    layout: str = "auto"
    field: str = "close"
    asset: str | None = None
    price_fields: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.bundled is not None:
            values: dict[str, Any] = {"bundled": self.bundled}
        else:
            values = {"path": self.path, "format": self.format, "layout": self.layout,
                      "field": self.field, "asset": self.asset,
                      "price_fields": None if self.price_fields is None
                      else list(self.price_fields)}
        values.update(start=self.start, end=self.end)
        return {k: v for k, v in values.items() if v is not None}

    def describe(self) -> str:
        what = f"bundled {self.bundled!r}" if self.bundled is not None else str(self.path)
        if self.start is not None or self.end is not None:
            what += f" from {self.start or 'the start'} to {self.end or 'the end'}"
        return what

    def load(self, where: str = "[data]") -> MarketData:
        """Read the data and cut the date range; a problem is a ConfigError naming it."""
        if self.bundled is not None:
            data = BUNDLED[self.bundled]()
            origin = f"{where} bundled = {json.dumps(self.bundled)}"
        else:
            assert self.path is not None
            origin = f"{where} path = {json.dumps(self.path)}"
            path = Path(self.path)
            if not path.is_file():
                raise ConfigError(
                    f"{origin}: no such file{' (it is a folder)' if path.is_dir() else ''}. "
                    "Check the path (a relative path is read from the config file's folder).")
            kind = self.format or _format_of(path)
            options: dict[str, Any] = {"layout": self.layout, "field": self.field,
                                       "asset": self.asset, "price_fields": self.price_fields}
            try:
                data = (MarketData.read_parquet(path, **options) if kind == "parquet"
                        else MarketData.read_csv(path, **options))
            except FoldwiseError as exc:
                raise ConfigError(f"{origin}: {exc}") from exc
            except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
                raise ConfigError(
                    f"{origin}: cannot read it as {kind.upper()} ({type(exc).__name__}: "
                    f"{exc}). Check the file, or set format = \"csv\" or \"parquet\".") from exc
        if self.start is None and self.end is None:
            return data
        try:
            return data.slice(self.start, self.end)
        except FoldwiseError as exc:
            raise ConfigError(f"{where} start/end: {exc} Change start or end.") from exc


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def _parse_data(table: Mapping[str, Any], where: _Where, folder: Path) -> DataConfig:
    _check_keys(table, _DATA, where)
    bundled, path = table.get("bundled"), table.get("path")
    if (bundled is None) == (path is None):
        raise where.error(
            "[data] needs exactly one of bundled = \"goog\" (or \"sp500\") and "
            f"path = \"prices.csv\" (a CSV or Parquet file); got "
            f"{'both' if bundled is not None else 'neither'}.")
    start, end = _date(table, "start", where), _date(table, "end", where)
    if start is not None and end is not None and _dt.datetime.fromisoformat(
            start) > _dt.datetime.fromisoformat(end):
        raise where.error(f"[data] start = {start} is after end = {end}; swap them.")
    if bundled is not None:
        _choice(table, "bundled", where, tuple(BUNDLED))
        given = [k for k in _FILE_ONLY if k in table]
        if given:
            raise where.bad(given[0], table[given[0]],
                            f"applies to a file (path = ...), not to bundled = "
                            f"{json.dumps(bundled)}; remove it.")
        return DataConfig(bundled=bundled, start=start, end=end)
    path = _str(table, "path", where, example="prices.csv")
    price_fields = table.get("price_fields")
    if price_fields is not None and not (
            isinstance(price_fields, list) and price_fields
            and all(isinstance(f, str) and f for f in price_fields)):
        raise where.bad("price_fields", price_fields,
                        "must be a list of field names, e.g. [\"close\", \"open\"].")
    return DataConfig(
        path=_resolve(path, folder), format=_choice(table, "format", where, _FORMATS),
        layout=_choice(table, "layout", where, _LAYOUTS, "auto"),
        field=_str(table, "field", where, "close", "close"),
        asset=_str(table, "asset", where, example="GOOG"),
        price_fields=None if price_fields is None else tuple(price_fields),
        start=start, end=end)


@dataclass(frozen=True)
class SplitterConfig:
    """The ``[splitter]`` section: the splitter's class name and its keyword arguments."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """The splitter (its own checks already passed when the config was parsed)."""
        return _SPLITTERS[self.type](**self.options)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.options}


def _splitter_name(value: Any) -> str | None:
    folded = {name.lower(): name for name in _SPLITTERS}
    folded["cpcv"] = "CombinatorialPurgedKFold"
    if not isinstance(value, str):
        return None
    return folded.get(value.replace("_", "").replace("-", "").lower())


def _parse_splitter(table: Mapping[str, Any], where: _Where) -> SplitterConfig:
    kind = table.get("type")
    if kind is None:
        raise where.error(
            "[splitter] needs type = \"WalkForward\" (or \"PurgedKFold\", "
            "\"CombinatorialPurgedKFold\") and its arguments, e.g. train = \"2Y\", "
            "test = \"6M\".")
    name = _splitter_name(kind)
    if name is None:
        hint = _close(kind, tuple(_SPLITTERS)) if isinstance(kind, str) else ""
        raise where.bad("type", kind, f"must be one of {', '.join(map(json.dumps, _SPLITTERS))}."
                        f"{hint}")
    parameters = inspect.signature(_SPLITTERS[name]).parameters
    accepted = list(parameters)
    options = {k: v for k, v in table.items() if k != "type"}
    _check_keys(options, ["type", *accepted], where)
    missing = [p for p in accepted if parameters[p].default is inspect.Parameter.empty
               and p not in options]
    if missing:
        raise where.error(
            f"[splitter] {name} needs {' and '.join(map(repr, missing))} (e.g. train = \"2Y\", "
            "test = \"6M\": calendar spans or a number of bars).")
    for key, value in options.items():
        if isinstance(value, (Mapping, list, _dt.date, _dt.time)):
            raise where.bad(key, value, "must be a number, a string (e.g. \"6M\") or "
                            "true/false.")
    try:
        _SPLITTERS[name](**options)
    except FoldwiseError as exc:
        raise where.error(f"[splitter] {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise where.error(f"[splitter] {name}: {exc}. Check the values of [splitter].") from exc
    return SplitterConfig(name, options)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str))


def _json_value(value: Any) -> bool:
    """Whether ``value`` is stored as JSON and read back the same (no dates, no NaN)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if _is_scalar(value):
        return True
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def _parse_param(name: str, spec: Any, where: _Where) -> Param:
    """One ``[space]`` entry: ``{ int = [lo, hi] }``, ``{ float = ... }``,
    ``{ categorical = [...] }``, ``{ fixed = value }`` or a plain value (fixed)."""
    forms = ("{ int = [low, high] } or { float = [low, high] } for a range, "
             "{ categorical = [...] } for a choice, or a plain value (or { fixed = ... }) to fix it")
    if isinstance(spec, list):
        raise where.bad(name, spec, f"a bare list is ambiguous; write {forms}.")
    if not isinstance(spec, Mapping):
        if not _json_value(spec):
            raise where.bad(name, spec, "a fixed value must be a string, a number or "
                            "true/false (write a date as a string).")
        return Fixed(spec)
    kinds = [k for k in _PARAM_KINDS if k in spec]
    if len(kinds) != 1:
        unknown = [k for k in spec if k not in _PARAM_KINDS]
        hint = _close(unknown[0], _PARAM_KINDS) if unknown and not kinds else ""
        got = (f"both {' and '.join(kinds)}" if kinds else
               f"the key(s) {', '.join(map(repr, spec))}" if spec else "no key")
        raise where.bad(name, spec, f"has {got}.{hint} Write {forms}.")
    kind = kinds[0]
    allowed = (kind, *_PARAM_OPTIONS[kind])
    for key in spec:
        if key not in allowed:
            options = ", ".join(_PARAM_OPTIONS[kind]) or "no other keys"
            article = "an" if kind == "int" else "a"
            raise where.bad(name, spec, f"unknown key {key!r} for {article} {kind} parameter."
                            f"{_close(key, allowed)} It takes {options}.")
    value = spec[kind]
    if kind == "fixed":
        if not _json_value(value):
            raise where.bad(name, spec, "a fixed value must be a string, a number, true/false, "
                            "or a list or table of them (write a date as a string).")
        return Fixed(value)
    if kind == "categorical":
        if not (isinstance(value, list) and value and all(_is_scalar(v) for v in value)):
            raise where.bad(name, spec, "categorical takes a non-empty list of strings, "
                            "numbers or true/false, e.g. { categorical = [\"a\", \"b\"] }.")
        if isinstance(value[0], float) and not all(map(math.isfinite, value)):
            raise where.bad(name, spec, "categorical choices must be finite numbers.")
        return Categorical(value)
    ints = kind == "int"
    number = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if ints else (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
    if not (isinstance(value, list) and len(value) == 2 and all(map(number, value))):
        example = "[5, 50]" if ints else "[0.1, 2.0]"
        raise where.bad(name, spec, f"{kind} takes [low, high] of two "
                        f"{'integers' if ints else 'numbers'}, e.g. {{ {kind} = {example} }}.")
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise where.bad(name, spec, "log must be true or false.")
    if step is not None and not (number(step) and step > 0):
        raise where.bad(name, spec, f"step must be {'an integer' if ints else 'a number'} > 0.")
    try:
        if ints:
            return Int(value[0], value[1], step=1 if step is None else step, log=log)
        return Float(float(value[0]), float(value[1]),
                     step=None if step is None else float(step), log=log)
    except FoldwiseError as exc:
        raise where.bad(name, spec, str(exc)) from exc


def _param_json(param: Param) -> Any:
    """The canonical TOML-shaped form of a parameter (every option written out)."""
    if isinstance(param, Int):
        return {"int": [param.low, param.high], "step": param.step, "log": param.log}
    if isinstance(param, Float):
        form: dict[str, Any] = {"float": [param.low, param.high], "log": param.log}
        if param.step is not None:
            form["step"] = param.step
        return form
    if isinstance(param, Categorical):
        return {"categorical": list(param.choices)}
    assert isinstance(param, Fixed)
    return {"fixed": param.value}


# --- the whole file ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """A checked config file: what ``foldwise run`` passes to :func:`foldwise.optimize`.

    Attributes
    ----------
    study
        The study name.
    strategy
        ``"module:function"`` of the strategy.
    data, splitter
        The ``[data]`` and ``[splitter]`` sections.
    space
        ``[space]``: each parameter's :class:`~foldwise.space.Param`.
    constraints
        ``[optimize] constraints``: expressions such as ``"fast < slow"``.
    metric, direction, sampler, n_trials, seed, top_k, select, mode, timeout, n_jobs,
    cv_aggregate, warmup, check_lookahead
        The rest of ``[optimize]`` (see :func:`foldwise.optimize`); ``select`` is a rule's
        name or an inline table ``{ rule = "plateau", radius = 0.2 }``.
    settings
        ``[backtest]``: costs and the other backtest settings.
    dir, storage
        Where the study and the cache live (None: the defaults); paths absolute.
    folder
        The config file's folder (absolute): relative paths were read from it, and a
        strategy module next to the file is imported from it.
    file
        The config file, or None for a config read back from a study.
    """

    study: str
    strategy: str
    data: DataConfig
    splitter: SplitterConfig
    space: Mapping[str, Param]
    constraints: tuple[str, ...] = ()
    metric: str = "sharpe"
    direction: str | None = None
    sampler: str = "tpe"
    n_trials: int = 100
    seed: int | None = None
    top_k: int = 5
    select: SelectRule = field(default_factory=Best)
    mode: str = "walk_forward"
    timeout: float | None = None
    n_jobs: int = 1
    cv_aggregate: str = "mean"
    warmup: int | None = None
    check_lookahead: bool = True
    settings: BacktestSettings = field(default_factory=BacktestSettings)
    dir: str | None = None
    storage: str | None = None
    folder: str = "."
    file: str | None = None

    # --- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON: the file's sections with every default written out."""
        optimize = {
            "constraints": list(self.constraints), "metric": self.metric,
            "direction": self.direction, "sampler": self.sampler, "n_trials": self.n_trials,
            "seed": self.seed, "top_k": self.top_k, "select": self.select.to_json(),
            "mode": self.mode,
            "timeout": self.timeout, "n_jobs": self.n_jobs, "cv_aggregate": self.cv_aggregate,
            "warmup": self.warmup, "check_lookahead": self.check_lookahead}
        settings = self.settings
        backtest = {"commission_bps": settings.costs.commission_bps,
                    "slippage_bps": settings.costs.slippage_bps, "delay": settings.delay,
                    "price_field": settings.price_field, "missing": settings.missing,
                    "periods_per_year": settings.periods_per_year}
        top = {"version": CONFIG_VERSION, "study": self.study, "strategy": self.strategy,
               "dir": self.dir, "storage": self.storage,
               "origin": {"folder": self.folder, "file": self.file}}
        return {**{k: v for k, v in top.items() if v is not None},
                "data": self.data.to_json(), "splitter": self.splitter.to_json(),
                "space": {name: _param_json(p) for name, p in self.space.items()},
                "optimize": {k: v for k, v in optimize.items() if v is not None},
                "backtest": backtest}

    @classmethod
    def from_json(cls, value: Mapping[str, Any], origin: str = "the stored config"
                  ) -> RunConfig:
        """Read back :meth:`to_json` through the same checks as a file."""
        where = _Where(origin)
        version = value.get("version") if isinstance(value, Mapping) else None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise where.error(f"it has no valid version ({version!r}); it was not written by "
                              "foldwise run. Run the study from its config file.")
        if version > CONFIG_VERSION:
            raise where.error(
                f"it has version {version}, newer than this foldwise reads "
                f"({CONFIG_VERSION}); upgrade foldwise (pip install -U foldwise).")
        stored = value.get("origin")
        if not (isinstance(stored, Mapping) and isinstance(stored.get("folder"), str)):
            raise where.error("it does not say which folder it was read from (origin); run "
                              "the study from its config file.")
        return parse_config(value, folder=stored["folder"], origin=origin,
                            file=stored.get("file"), stored=True)

    # --- running ---------------------------------------------------------------------------

    def with_location(self, dir: str | None, storage: str | None) -> RunConfig:
        """This config with the study and cache elsewhere: the command line's ``--dir`` and
        ``--storage``. Each replaces its own key; ``--dir`` without ``--storage`` also
        moves the study to the journal file in that directory (as everywhere on the command
        line)."""
        if dir is None:
            return self if storage is None else replace(self, storage=storage)
        return replace(self, dir=str(Path(dir).expanduser().absolute()), storage=storage)

    @property
    def location(self) -> tuple[str | None, str | None]:
        """(storage, foldwise directory) as :func:`foldwise.optimize` takes them: without a
        storage, the journal file in ``dir``."""
        storage = self.storage
        if storage is None and self.dir is not None:
            storage = f"journal:{Path(self.dir) / 'studies.journal'}"
        return storage, self.dir

    def load_strategy(self) -> Strategy:
        """Import the strategy (a ConfigError says why it cannot be)."""
        return import_strategy(self.strategy, Path(self.folder))

    def optimize_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`foldwise.optimize` for this config: the strategy
        imported, the data read, the splitter built; the run config itself included."""
        storage, directory = self.location
        return dict(
            strategy=self.load_strategy(), data=self.data.load(), space=dict(self.space),
            splitter=self.splitter.build(), constraints=list(self.constraints) or None,
            metric=self.metric, direction=self.direction, sampler=self.sampler,
            n_trials=self.n_trials, seed=self.seed, top_k=self.top_k, select=self.select,
            mode=self.mode,
            timeout=self.timeout, n_jobs=self.n_jobs, cv_aggregate=self.cv_aggregate,
            warmup=self.warmup, check_lookahead=self.check_lookahead, settings=self.settings,
            study=self.study, storage=storage, cache=directory, run_config=self.to_json())


def import_strategy(path: str, folder: Path | None = None) -> Strategy:
    """The strategy at ``"module:function"`` (``function`` may be ``Class.attribute``).

    A module that sits in ``folder`` (``module.py`` or a package) is imported from there,
    also by worker processes started later.
    """
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ConfigError(
            f"strategy = {json.dumps(path)}: write it as \"module:function\", e.g. "
            "\"foldwise.examples:sma_crossover\" or \"my_strategies:crossover\" for "
            "my_strategies.py next to the config file.")
    top = module_name.split(".")[0]
    if folder is not None and ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
        _add_to_path(folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                f"strategy = {json.dumps(path)}: cannot import module {module_name!r} (no "
                f"module named {exc.name!r}). Install it, or put {top}.py next to the config "
                f"file{f' ({folder})' if folder is not None else ''}.") from exc
        raise ConfigError(f"strategy = {json.dumps(path)}: importing {module_name!r} failed: "
                          f"{exc}. Install what it imports.") from exc
    except Exception as exc:
        where = ""
        if isinstance(exc, SyntaxError):
            where = f" at {exc.filename}:{exc.lineno}"
        raise ConfigError(
            f"strategy = {json.dumps(path)}: importing module {module_name!r} raised "
            f"{type(exc).__name__}{where}: {exc}. Fix the module.") from exc
    target: Any = module
    for part in qualname.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")
                     and callable(getattr(target, n, None))]
            raise ConfigError(
                f"strategy = {json.dumps(path)}: {module_name!r} has no {qualname!r}."
                f"{_close(part, names)} Check the name after the colon.")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"strategy = {json.dumps(path)}: {qualname!r} is a {type(target).__name__}, not "
            "a function (data, **params) -> weights or a foldwise.Strategy.")
    try:
        return as_strategy(target)
    except FoldwiseError as exc:
        raise ConfigError(f"strategy = {json.dumps(path)}: {exc}") from exc


def _add_to_path(folder: Path) -> None:
    """Let this process and the worker processes it starts import modules from ``folder``."""
    entry = str(folder.absolute())
    if entry not in sys.path:
        sys.path.insert(0, entry)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if entry not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([entry, *parts])


def parse_config(document: Mapping[str, Any], *, folder: str | os.PathLike[str] = ".",
                 origin: str = "the config", file: str | None = None,
                 stored: bool = False) -> RunConfig:
    """Check a parsed config document and turn it into a :class:`RunConfig`.

    Parameters
    ----------
    document
        The TOML document as :func:`tomllib.load` returns it (or :meth:`RunConfig.to_json`).
    folder
        The folder relative paths are read from (the config file's).
    origin
        How messages name the config (the file's path).
    file
        The config file, kept in the config.
    stored
        A config read back from a study (it may hold ``version`` and ``origin``).

    Raises
    ------
    ConfigError
        Any key or value that cannot be used; the message names it and the fix.
    """
    base = Path(folder).expanduser().absolute()
    top = _Where(origin)
    _check_keys(document, (*_TOP, *_STORED_ONLY) if stored else _TOP, top)
    default_study = Path(file).stem if file else None
    study = _str(document, "study", top, default_study, "goog-sma")
    if study is None:
        raise top.error("no study = \"name\" at the top level; add one, e.g. "
                        "study = \"goog-sma\".")
    if "/fold-" in study:
        raise top.bad("study", study, "must not contain '/fold-' (fold studies are named "
                      "'<study>/fold-00', ...); choose another name.")
    strategy = document.get("strategy")
    if strategy is None:
        raise top.error("no strategy = \"module:function\" at the top level; add one, e.g. "
                        "strategy = \"foldwise.examples:sma_crossover\".")
    if not isinstance(strategy, str) or strategy.count(":") != 1 or not all(
            strategy.split(":")):
        raise top.bad("strategy", strategy, "must be \"module:function\", e.g. "
                      "\"foldwise.examples:sma_crossover\".")
    directory = _str(document, "dir", top, example=".foldwise")
    storage = _str(document, "storage", top, example="sqlite:///studies.db")

    data = _parse_data(_table(document, "data", top), top.at("data"), base)
    splitter = _parse_splitter(_table(document, "splitter", top), top.at("splitter"))

    space_table = _table(document, "space", top)
    if not space_table:
        raise top.error("[space] is empty; give at least one parameter, e.g. "
                        "fast = { int = [5, 50] }.")
    where = top.at("space")
    space = {str(name): _parse_param(str(name), spec, where)
             for name, spec in space_table.items()}

    options = _table(document, "optimize", top, required=False)
    where = top.at("optimize")
    _check_keys(options, _OPTIMIZE, where)
    constraints = options.get("constraints", [])
    if isinstance(constraints, str):
        constraints = [constraints]
    if not (isinstance(constraints, list) and all(isinstance(c, str) for c in constraints)):
        raise where.bad("constraints", constraints,
                        "must be a list of expressions, e.g. [\"fast < slow\"].")
    try:
        SearchSpace(space, constraints)
    except FoldwiseError as exc:
        raise where.error(f"[optimize] constraints: {exc}") from exc
    metric = options.get("metric", "sharpe")
    if metric not in METRICS:
        raise where.bad("metric", metric, f"unknown metric.{_close(str(metric), tuple(METRICS))}"
                        f" The metrics are: {', '.join(METRICS)}.")
    n_trials = _int(options, "n_trials", where, 100, minimum=1,
                    what=" (finished trials per fold)")
    n_jobs = _int(options, "n_jobs", where, 1, minimum=1, allow=(-1,),
                  what=" (worker processes; -1: all cores)")
    timeout = _number(options, "timeout", where, positive=True, what=" (seconds)")

    values = _table(document, "backtest", top, required=False)
    where = top.at("backtest")
    _check_keys(values, _BACKTEST, where)
    costs = Costs(
        commission_bps=_number(values, "commission_bps", where, 0.0, what=" (basis points)"),
        slippage_bps=_number(values, "slippage_bps", where, 0.0, what=" (basis points)"))
    settings = BacktestSettings(
        costs=costs, delay=_int(values, "delay", where, 0, what=" (bars)"),
        price_field=_str(values, "price_field", where, "close", "close"),
        missing=_choice(values, "missing", where, ("zero", "raise"), "zero"),
        periods_per_year=_number(values, "periods_per_year", where, 252.0, positive=True,
                                 what=" (252 for daily bars)"))

    return RunConfig(
        study=study, strategy=strategy, data=data, splitter=splitter, space=space,
        constraints=tuple(constraints), metric=metric,
        direction=_choice(options, "direction", top.at("optimize"), ("maximize", "minimize")),
        sampler=_choice(options, "sampler", top.at("optimize"), SAMPLERS, "tpe"),
        n_trials=n_trials, seed=_int(options, "seed", top.at("optimize"),
                                     what=" (it seeds each fold's sampler)"),
        top_k=_int(options, "top_k", top.at("optimize"), 5, minimum=1,
                   what=" (parameter sets per fold judged out of sample)"),
        select=_select(options, top.at("optimize")),
        mode=_choice(options, "mode", top.at("optimize"), MODES, "walk_forward"),
        timeout=None if timeout is None else float(timeout), n_jobs=n_jobs,
        cv_aggregate=_choice(options, "cv_aggregate", top.at("optimize"), CV_AGGREGATES,
                             "mean"),
        warmup=_int(options, "warmup", top.at("optimize"), what=" (bars)"),
        check_lookahead=_bool(options, "check_lookahead", top.at("optimize"), True),
        settings=settings,
        dir=None if directory is None else _resolve(directory, base),
        storage=None if storage is None else _resolve_storage(storage, base),
        folder=str(base), file=file)


def _select(options: Mapping[str, Any], where: _Where) -> SelectRule:
    """``[optimize] select``: a rule's name, or an inline table with ``rule`` and its
    settings (``{ rule = "plateau", radius = 0.2, prior = 1.0 }``)."""
    value = options.get("select", "best")
    names = ", ".join(map(json.dumps, RULES))
    if isinstance(value, str) and value not in RULES:
        raise where.bad("select", value, f"must be one of {names}.{_close(value, tuple(RULES))}")
    if isinstance(value, Mapping) and value.get("rule") not in RULES:
        raise where.bad("select", value, f"needs rule = one of {names}, e.g. "
                        "{ rule = \"plateau\", radius = 0.2 }.")
    if not isinstance(value, (str, Mapping)):
        raise where.bad("select", value, f"must be one of {names}, or a table such as "
                        "{ rule = \"plateau\", radius = 0.2 }.")
    try:
        return as_rule(value)
    except FoldwiseError as exc:
        raise where.bad("select", value, str(exc)) from exc


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and check the config file at ``path`` (see the module docstring).

    Raises
    ------
    ConfigError
        The file does not exist, is not valid TOML, or holds a key or value that cannot be
        used.
    """
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file. Check the path (see "
                          "examples/study.toml for one that runs).") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file ({exc}).") from None
    return parse_config(document, folder=file.absolute().parent, origin=str(path),
                        file=str(file.absolute()))
