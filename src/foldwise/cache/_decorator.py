"""``@cached_backtest``: a plain strategy function whose backtests go through a cache.

The decorator's settings become one :class:`~foldwise.BacktestSettings` object at
decoration time (so a wrong setting fails there, not at the first call); calls and
:meth:`CachedStrategy.run` hand it to :meth:`foldwise.BacktestCache.get_or_run`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, overload

from foldwise.backtest import BacktestResult, BacktestSettings, Costs, MissingPolicy
from foldwise.cache._cache import BacktestCache
from foldwise.data import MarketData
from foldwise.errors import BacktestError, CacheArgumentError
from foldwise.strategy import Strategy

__all__ = ["CachedStrategy", "cached_backtest"]

_default_caches: dict[str, BacktestCache] = {}


def _default_cache() -> BacktestCache:
    cache = BacktestCache()
    return _default_caches.setdefault(str(cache.root), cache)


class CachedStrategy(Strategy):
    """A :class:`~foldwise.Strategy` whose :meth:`run` and calls are served by a cache.

    Its name, parameters and fingerprint are those of the wrapped function (so it shares
    entries with ``Strategy(func)``); ``uncached`` is that plain strategy.
    Calling it, ``f(data, **params)``, returns the cached :class:`~foldwise.BacktestResult`
    with the settings given to the decorator (:attr:`settings`).
    """

    def __init__(self, func: Callable[..., Any], *, cache: BacktestCache | None = None,
                 name: str | None = None, version: str | None = None,
                 settings: BacktestSettings | Mapping[str, Any] | None = None) -> None:
        super().__init__(func, name=name, version=version)
        self.uncached = Strategy(func, name=name, version=version)
        self._cache = cache
        self.settings = BacktestSettings.coerce(settings)

    @property
    def cache(self) -> BacktestCache:
        """The cache used; by default the one at ``$FOLDWISE_DIR`` or ``./.foldwise``,
        resolved at the first call."""
        if self._cache is None:
            self._cache = _default_cache()
        return self._cache

    @property
    def fingerprint(self) -> str:
        return self.uncached.fingerprint

    def run(self, data: MarketData, params: Mapping[str, Any] | None = None,
            settings: BacktestSettings | None = None, *,
            costs: Costs | Mapping[str, float] | float | None = None,
            delay: int | None = None, price_field: str | None = None,
            missing: MissingPolicy | None = None,
            periods_per_year: float | None = None) -> BacktestResult:
        """Like :meth:`Strategy.run`, served from the cache when stored."""
        return self.cache.get_or_run(self.uncached, params, data, settings, costs=costs,
                                     delay=delay, price_field=price_field, missing=missing,
                                     periods_per_year=periods_per_year)

    def __call__(self, data: MarketData, **params: Any) -> BacktestResult:
        """The cached backtest of ``params`` with the decorator's settings."""
        return self.run(data, params, self.settings)

    def __repr__(self) -> str:
        return f"cached_backtest({self.uncached!r}, cache={self._cache!r})"


@overload
def cached_backtest(func: Callable[..., Any], /) -> CachedStrategy: ...
@overload
def cached_backtest(*, cache: BacktestCache | None = ..., name: str | None = ...,
                    version: str | None = ..., settings: BacktestSettings | None = ...,
                    costs: Costs | Mapping[str, float] | float | None = ...,
                    delay: int | None = ..., price_field: str | None = ...,
                    missing: MissingPolicy | None = ..., periods_per_year: float | None = ...,
                    ) -> Callable[[Callable[..., Any]], CachedStrategy]: ...


def cached_backtest(func: Callable[..., Any] | None = None, /, *,
                    cache: BacktestCache | None = None, name: str | None = None,
                    version: str | None = None, settings: BacktestSettings | None = None,
                    **overrides: Any,
                    ) -> CachedStrategy | Callable[[Callable[..., Any]], CachedStrategy]:
    """Make a strategy function ``f(data, **params) -> weights`` a cached backtest.

    ``@cached_backtest``, ``@cached_backtest(cache=..., costs=..., delay=...)`` or
    ``@cached_backtest(settings=BacktestSettings(...))`` (the keywords replace its fields). The
    decorated object is a :class:`CachedStrategy`: call it as ``f(data, fast=10)`` to get a
    :class:`~foldwise.BacktestResult`, run once per parameter set, data and settings and
    served from the cache afterwards — also in other processes and after a restart.
    Editing the function or a helper it calls gives new keys.

    Examples
    --------
    >>> import tempfile
    >>> import foldwise
    >>> cache = foldwise.BacktestCache(tempfile.mkdtemp())
    >>> @foldwise.cached_backtest(cache=cache, costs=5)
    ... def long_above_mean(data, window=20):
    ...     close = data["close"]
    ...     return (close > close.rolling(window).mean()).astype(float)
    >>> data = foldwise.datasets.load_goog()
    >>> first = long_above_mean(data, window=30)
    >>> again = long_above_mean(data, window=30)       # served from the cache
    >>> cache.stats().hits, cache.stats().misses
    (1, 1)
    """
    unknown = set(overrides) - {"costs", "delay", "price_field", "missing", "periods_per_year"}
    if unknown:
        raise CacheArgumentError(
            f"cached_backtest got unknown setting(s) {sorted(unknown)}; the settings are "
            "settings=BacktestSettings(...), costs, delay, price_field, missing and "
            "periods_per_year.")
    try:
        coerced = BacktestSettings.coerce(settings, **overrides)
    except BacktestError as exc:
        raise CacheArgumentError(f"cached_backtest: {exc}") from exc

    def wrap(f: Callable[..., Any]) -> CachedStrategy:
        return CachedStrategy(f, cache=cache, name=name, version=version, settings=coerced)

    return wrap(func) if func is not None else wrap
