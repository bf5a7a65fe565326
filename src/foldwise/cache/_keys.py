"""Cache keys: what identifies a backtest, hashed into 32 hex characters.

A key covers everything that can change a stored number:

* the strategy's **fingerprint** (its code and the user code it calls, see
  :attr:`foldwise.Strategy.fingerprint`);
* the **canonical parameters**, with the strategy's defaults filled in (so ``{}`` and
  ``{"fast": 10}`` are the same run when 10 is the default), key order irrelevant and types
  exact (see :func:`foldwise._canonical.canonical`);
* the **data content hash** (:attr:`foldwise.MarketData.content_hash`, every byte);
* the **settings** of the backtest: the canonical JSON of
  :meth:`foldwise.BacktestSettings.to_dict` (costs, delay, price field, missing-price
  policy, periods per year), so equal settings objects give equal keys (``252`` and
  ``252.0`` periods per year alike);
* :data:`foldwise.backtest.ENGINE_VERSION` and this module's key layout version;
* for a slice entry, the **window**: bar positions ``start <= i < stop`` of the data and
  the first and last dates they cover.

Building a key is on the optimizer's hot path, so it is memoized per process. The settings
are coerced once into one frozen :class:`~foldwise.BacktestSettings` and their JSON is
memoized per settings object (the optimizer passes the same object on every trial, which
costs an identity check). Keys whose parameters are plain scalars are memoized too: the
same call again costs a tuple hash and a dict lookup. That memo is keyed by the strategy
fingerprint and data hash (both memoized on their objects), the settings JSON and
type-tagged parameter values, so ``5`` and ``5.0`` never share an entry.

Every memo of this module holds at most :data:`_MEMO_LIMIT` entries, the oldest dropped
first: an optimization of 20,000 trials builds tens of thousands of distinct keys, and a
memo kept without bound grew the process by about a kilobyte per trial. A key dropped from
the memo is built again when asked for (tens of microseconds), never wrong.
"""

from __future__ import annotations

import importlib
import json
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foldwise._canonical import canonical_json
from foldwise._hashing import hash_text
from foldwise.backtest import BacktestSettings, Costs, MissingPolicy
from foldwise.data import MarketData
from foldwise.errors import CacheArgumentError
from foldwise.strategy import Strategy, as_strategy

__all__ = ["KEY_VERSION", "CacheKey", "Window", "coerce_settings", "make_key",
           "resolve_strategy", "settings_json"]

#: Version of the key layout; bump it when what goes into a key changes meaning.
KEY_VERSION = 1

# The module, not the name: ``foldwise.backtest`` is also the function re-exported by the
# package. ENGINE_VERSION is read per key so a bump (or a test patching it) takes effect.
_engine = importlib.import_module("foldwise.backtest")
#: Entries each memo of this module holds at most (about 0.5 KB each).
_MEMO_LIMIT = 4096
_memo: dict[tuple[Any, ...], CacheKey] = {}
_settings_memo: dict[BacktestSettings, str] = {}
_last_settings: tuple[BacktestSettings | None, str] = (None, "")
_DEFAULT_SETTINGS = BacktestSettings()
_windows: dict[tuple[str, int, int], Window] = {}
_fulls: dict[str, CacheKey] = {}  # slice digest -> key of its full run
_strategies: weakref.WeakKeyDictionary[Callable[..., Any], Strategy] = weakref.WeakKeyDictionary()
# Parameter values of these exact types can be compared by ``==`` without mixing up
# canonical forms, provided the type goes into the memo token too (-0.0 excepted).
_SCALARS = frozenset({int, float, str, bool, type(None)})


@dataclass(frozen=True, slots=True)
class Window:
    """Bars ``start <= i < stop`` of the data a slice entry covers, and their dates.

    ``first`` and ``last`` are the ISO dates of bars ``start`` and ``stop - 1``; they are
    implied by the positions and the data hash, and kept for people reading the index.
    """

    start: int
    stop: int
    first: str
    last: str

    @classmethod
    def of(cls, window: Window | slice | tuple[int, int], data: MarketData) -> Window:
        """Check ``window`` against ``data`` and fill in its dates."""
        if isinstance(window, Window):
            start, stop = window.start, window.stop
        elif isinstance(window, slice):
            if window.step not in (None, 1):
                raise CacheArgumentError(f"a window is a contiguous range of bars; got step {window.step}.")
            start, stop = window.start, window.stop
        else:
            if isinstance(window, BacktestSettings):
                raise CacheArgumentError(
                    "got BacktestSettings where a window goes; pass it as settings=... .")
            try:
                start, stop = window
            except (TypeError, ValueError):
                raise CacheArgumentError(
                    f"window must be (start, stop) bar positions, a slice or a Window, got "
                    f"{window!r}.") from None
        n = data.n_dates
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)) or not (
                0 <= start < stop <= n):
            raise CacheArgumentError(
                f"window ({start!r}, {stop!r}) is not a range of bar positions "
                f"0 <= start < stop <= {n} of this data; pass integer positions such as a "
                "fold's train range.")
        token = (data.content_hash, start, stop)
        window_obj = _windows.get(token)
        if window_obj is None:  # formatting two dates costs more than the rest of a key
            index = data.index
            window_obj = cls(start, stop, index[start].isoformat(), index[stop - 1].isoformat())
            _remember(_windows, token, window_obj)
        if isinstance(window, Window) and window != window_obj:
            raise CacheArgumentError(
                f"window {window} does not match the dates of this data ({window_obj.first} .. "
                f"{window_obj.last}); build it from the same data.")
        return window_obj

    def as_list(self) -> list[Any]:
        return [self.start, self.stop, self.first, self.last]


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A cache key and the parts it was hashed from (all strings, all canonical).

    Build one with :meth:`foldwise.BacktestCache.key`. ``str(key)`` is the digest; methods
    of the cache accept either.

    Attributes
    ----------
    digest : str
        32 hex characters identifying the entry.
    strategy : str
        The strategy's display name (not part of the digest: the fingerprint is).
    fingerprint, data_hash : str
        The strategy's code fingerprint and the data's content hash.
    params, settings : str
        Canonical JSON of the parameters (defaults filled in) and of the settings.
    window : Window or None
        The bars of a slice entry; None for a full run.
    """

    digest: str
    strategy: str
    fingerprint: str
    params: str
    data_hash: str
    settings: str
    window: Window | None = None

    def __str__(self) -> str:
        return self.digest

    @property
    def is_slice(self) -> bool:
        return self.window is not None

    def full(self) -> CacheKey:
        """The key of the full-history run this slice is cut from (itself if not a slice)."""
        if self.window is None:
            return self
        full = _fulls.get(self.digest)
        if full is None:  # hashed once per slice key: the hot path asks for it per miss
            full = _build(self.strategy, self.fingerprint, self.params, self.data_hash,
                          self.settings, None)
            _remember(_fulls, self.digest, full)
        return full


def _build(name: str, fingerprint: str, params: str, data_hash: str, settings: str,
           window: Window | None) -> CacheKey:
    parts = [KEY_VERSION, _engine.ENGINE_VERSION, fingerprint, params, data_hash, settings,
             None if window is None else window.as_list()]
    digest = hash_text(json.dumps(parts, separators=(",", ":")))
    return CacheKey(digest, name, fingerprint, params, data_hash, settings, window)


def resolve_strategy(strategy: Any) -> Strategy:
    """``strategy`` as a :class:`Strategy`, wrapping a plain function once per process.

    Wrapping is memoized so the function's fingerprint is computed once, not per call.
    """
    if isinstance(strategy, Strategy):
        return strategy
    try:
        runner = _strategies.get(strategy)
    except TypeError:  # not weak-referenceable or not hashable: wrap every time
        return as_strategy(strategy)
    if runner is None:
        runner = _strategies[strategy] = as_strategy(strategy)
    return runner


def coerce_settings(settings: BacktestSettings | Mapping[str, Any] | None = None, *,
                    costs: Costs | Mapping[str, float] | float | None = None,
                    delay: int | None = None, price_field: str | None = None,
                    missing: MissingPolicy | None = None,
                    periods_per_year: float | None = None) -> BacktestSettings:
    """:meth:`BacktestSettings.coerce`, without building anything when a settings object
    (or nothing) comes alone, as on every trial of the optimizer."""
    if costs is None and delay is None and price_field is None and missing is None \
            and periods_per_year is None:
        if type(settings) is BacktestSettings:
            return settings
        if settings is None:
            return _DEFAULT_SETTINGS
    return BacktestSettings.coerce(settings, costs=costs, delay=delay, price_field=price_field,
                                   missing=missing, periods_per_year=periods_per_year)


def settings_json(settings: BacktestSettings) -> str:
    """The canonical JSON of ``settings.to_dict()`` that keys hash, memoized per object."""
    global _last_settings
    last, text = _last_settings
    if settings is last:
        return text
    found = _settings_memo.get(settings)
    if found is None:
        values = settings.to_dict()
        # -0.0 and 0.0 bps both cost nothing (and compare equal): + 0.0 turns the first
        # into the second, so equal settings give one text.
        values["costs"] = {name: float(bps) + 0.0 for name, bps in values["costs"].items()}
        found = canonical_json(values, "settings")
        _remember(_settings_memo, settings, found)
    _last_settings = (settings, found)
    return found


def _params_token(params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    token = []
    for name, value in params.items():
        cls = value.__class__
        if cls not in _SCALARS or (cls is float and value == 0.0):
            return None
        token.append((name, cls, value))
    return tuple(token)


def make_key(strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
             window: Window | slice | tuple[int, int] | None = None,
             settings: BacktestSettings | None = None, *,
             costs: Costs | Mapping[str, float] | float | None = None,
             delay: int | None = None, price_field: str | None = None,
             missing: MissingPolicy | None = None,
             periods_per_year: float | None = None) -> CacheKey:
    """The key of ``strategy`` run with ``params`` on ``data`` (see the module docstring).

    ``settings`` and the keywords are coerced as by :meth:`BacktestSettings.coerce`.

    Raises
    ------
    ParameterError
        A parameter value that has no canonical form (named in the message).
    StrategyParameterError
        Parameters that do not fit the strategy's signature.
    CacheArgumentError
        A window outside the data.
    BacktestError
        A setting that cannot be used.
    """
    return key_of(strategy, params, data, window, coerce_settings(
        settings, costs=costs, delay=delay, price_field=price_field, missing=missing,
        periods_per_year=periods_per_year))


def key_of(strategy: Any, params: Mapping[str, Any] | None, data: MarketData,
           window: Window | slice | tuple[int, int] | None,
           settings: BacktestSettings) -> CacheKey:
    """:func:`make_key` of settings already coerced."""
    if not isinstance(data, MarketData):
        raise CacheArgumentError(
            f"cache keys are computed on MarketData, got {type(data).__name__}; wrap a "
            "DataFrame with foldwise.MarketData.from_frame(df).")
    runner = resolve_strategy(strategy)
    fingerprint = runner.fingerprint
    data_hash = data.content_hash
    given = params if params is not None else {}
    settings_text = settings_json(settings)
    token = None
    params_token = _params_token(given) if given.__class__ is dict else None
    if params_token is not None and (window is None or (
            window.__class__ is tuple and len(window) == 2)):
        token = (_engine.ENGINE_VERSION, fingerprint, runner.name, data_hash, params_token,
                 settings_text, window if window is None else (
                     window[0].__class__, window[0], window[1].__class__, window[1]))
        try:
            key = _memo.get(token)
        except TypeError:  # an unhashable window value
            key, token = None, None
        if key is not None:
            return key
    if token is not None and window is not None:
        # A window of a set seen before (the optimizer asks for the full run's key, then
        # for its train and test windows): its parameters are validated and canonical
        # once, and the slice knows its full run without hashing it again.
        full_token = (*token[:-1], None)
        full = _memo.get(full_token)
        if full is None:
            full = _build(runner.name, fingerprint, canonical_json(runner.validate_params(
                given)), data_hash, settings_text, None)
            _remember(_memo, full_token, full)
        key = _build(runner.name, fingerprint, full.params, data_hash, settings_text,
                     Window.of(window, data))
        _remember(_fulls, key.digest, full)
        _remember(_memo, token, key)
        return key
    resolved = runner.validate_params(given)
    key = _build(runner.name, fingerprint, canonical_json(resolved), data_hash, settings_text,
                 None if window is None else Window.of(window, data))
    if token is not None:
        _remember(_memo, token, key)
    return key


def _remember(memo: dict[Any, Any], token: Any, value: Any) -> None:
    """Add ``token: value`` to ``memo``, dropping the oldest entry beyond :data:`_MEMO_LIMIT`."""
    memo[token] = value
    while len(memo) > _MEMO_LIMIT:
        try:
            del memo[next(iter(memo))]
        except (KeyError, RuntimeError, StopIteration):  # another thread changed it
            break
