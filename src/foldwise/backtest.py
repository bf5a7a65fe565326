"""Vectorized backtest: target weights and prices in, returns, positions, trades and costs out.

The timing convention, which every other part of foldwise relies on:

    A weight dated ``t`` is decided with information through the close of bar ``t``; the
    portfolio trades to it at that close and earns the return from close ``t`` to close
    ``t + 1``, i.e. the portfolio return dated ``t + 1``.

So the portfolio return dated ``t`` is ``sum_j w[t-1, j] * r[t, j] - cost[t]``, where
``r[t, j]`` is the simple return of asset ``j`` from close ``t-1`` to close ``t`` and
``cost[t]`` is the cost of the trades made at close ``t``. The first bar's return is only
the cost of entering the first weights. ``delay=d`` postpones execution by ``d`` bars (a
weight dated ``t`` is traded at close ``t + d``), a conservative check for strategies whose
signal can only be acted on later.

Weights are fractions of equity held from one close to the next (long > 0, short < 0, any
leverage). The position is rebalanced to the target at every close; turnover on a date is
the sum over assets of ``abs(w[t] - w[t-1])`` and costs are charged on it. The small trades
that would correct for intraday drift between two equal targets are not charged (the
convention of empyrical, pyfolio and alphalens).

Ruin is a state: on the first bar whose loss takes the whole equity the return is -100 %,
the position is closed, and every later bar is flat (``BacktestResult.ruined`` names the
date), so a leveraged strategy that blows up reports a -100 % drawdown, not a rebound.

Everything is whole-array numpy over ``(n_dates, n_assets)``: no Python loop over dates.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from foldwise import metrics as _metrics
from foldwise.data import MarketData
from foldwise.errors import BacktestError, MisalignedWeightsError, MissingPriceError

__all__ = ["ENGINE_VERSION", "BacktestArrays", "BacktestResult", "BacktestSettings", "Costs",
           "backtest"]

logger = logging.getLogger(__name__)

#: Version of the backtest arithmetic. Part of every cache key: bump it whenever a change
#: here alters any number a backtest produces, so no stored result from the old rules is
#: ever served.
ENGINE_VERSION = 2  # 2: ruin is a state (a loss of the whole equity ends the run)

MissingPolicy = Literal["zero", "raise"]


@dataclass(frozen=True)
class Costs:
    """Trading costs in basis points of traded notional.

    Parameters
    ----------
    commission_bps
        Broker commission, bps of the traded value.
    slippage_bps
        Spread and market impact, bps of the traded value.

    Examples
    --------
    >>> Costs(commission_bps=1, slippage_bps=4).total_bps
    5.0
    """

    commission_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        for name in ("commission_bps", "slippage_bps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise BacktestError(f"{name} must be a number of basis points, got {value!r}.")
            value = float(value)
            if not np.isfinite(value) or value < 0:
                raise BacktestError(
                    f"{name} must be a finite number >= 0 (basis points), got {value!r}.")
            object.__setattr__(self, name, value + 0.0)  # -0.0 is 0.0 (one canonical form)

    @property
    def total_bps(self) -> float:
        """Commission plus slippage, in basis points."""
        return self.commission_bps + self.slippage_bps

    @property
    def rate(self) -> float:
        """Cost per unit of traded notional (``total_bps / 10_000``)."""
        return self.total_bps / 10_000.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def coerce(cls, costs: Costs | Mapping[str, float] | float | None) -> Costs:
        """Accept ``Costs``, a dict of its fields, a total in bps (as commission), or None."""
        if costs is None:
            return cls()
        if isinstance(costs, Costs):
            return costs
        if isinstance(costs, Mapping):
            unknown = set(costs) - {"commission_bps", "slippage_bps"}
            if unknown:
                raise BacktestError(
                    f"unknown cost setting(s) {sorted(unknown)}; use commission_bps and "
                    "slippage_bps.")
            return cls(**costs)
        if isinstance(costs, (int, float, np.integer, np.floating)) and not isinstance(costs, bool):
            return cls(commission_bps=float(costs))
        raise BacktestError(
            f"costs must be Costs(...), a dict, a number of bps or None, got {costs!r}.")


_UNSET: Any = None  # a keyword argument left out: the value comes from ``settings``


@dataclass(frozen=True)
class BacktestSettings:
    """Everything besides weights and data that changes a backtest's numbers.

    One frozen object travels from :func:`optimize` through the cache key to
    :func:`backtest`; its :meth:`to_dict` is the canonical form the cache key hashes, so two
    settings objects that compare equal always give the same key.

    Parameters
    ----------
    costs
        :class:`Costs`, a dict of its fields, a number (commission in bps) or None (free).
    delay
        Extra bars between a decision and its trade (a weight dated t trades at the close of
        ``t + delay``).
    price_field
        The field of the data that holds the prices traded at.
    missing
        ``"zero"`` or ``"raise"``: what to do with a weight on an asset without a price.
    periods_per_year
        Annualization of the metrics (252 for daily bars).

    Examples
    --------
    >>> settings = BacktestSettings(costs=3, delay=1)
    >>> settings.costs.total_bps, settings.delay
    (3.0, 1)
    >>> settings.replace(delay=0) == BacktestSettings(costs=3)
    True
    """

    costs: Costs = field(default_factory=Costs)
    delay: int = 0
    price_field: str = "close"
    missing: MissingPolicy = "zero"
    periods_per_year: float = _metrics.DEFAULT_PERIODS_PER_YEAR

    def __post_init__(self) -> None:
        object.__setattr__(self, "costs", Costs.coerce(self.costs))
        delay = self.delay
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
            raise BacktestError(f"delay must be an integer >= 0 (bars), got {delay!r}.")
        object.__setattr__(self, "delay", int(delay))
        if not isinstance(self.price_field, str) or not self.price_field:
            raise BacktestError(
                f"price_field must be the name of a data field (e.g. 'close'), got "
                f"{self.price_field!r}.")
        if self.missing not in ("zero", "raise"):
            raise BacktestError(f"missing must be 'zero' or 'raise', got {self.missing!r}.")
        periods = self.periods_per_year
        if isinstance(periods, bool) or not isinstance(periods, (int, float, np.integer,
                                                                 np.floating)) \
                or not np.isfinite(periods) or periods <= 0:
            raise BacktestError(
                f"periods_per_year must be a finite number > 0 (252 for daily bars), got "
                f"{periods!r}.")
        object.__setattr__(self, "periods_per_year", float(periods))

    @classmethod
    def coerce(cls, settings: BacktestSettings | Mapping[str, Any] | None = None, *,
               costs: Costs | Mapping[str, float] | float | None = _UNSET,
               delay: int | None = _UNSET, price_field: str | None = _UNSET,
               missing: MissingPolicy | None = _UNSET,
               periods_per_year: float | None = _UNSET) -> BacktestSettings:
        """``settings`` (an object, a dict of its fields, or None for the defaults) with the
        keyword arguments that were given replacing its fields.

        This is how every public function that takes ``settings=`` and the individual
        keywords (``costs=3``, ``delay=1``) turns them into one object. The object is
        immutable, so the same arguments (compared with their types: ``3`` and ``3.0``
        are different arguments) give back the object built the first time, without
        validating them again.
        """
        if (isinstance(settings, BacktestSettings) and costs is _UNSET and delay is _UNSET
                and price_field is _UNSET and missing is _UNSET
                and periods_per_year is _UNSET):
            return settings
        try:  # the same arguments again (every trial of a study): the same frozen object
            key: Any = (cls, settings, _typed(costs), _typed(delay), _typed(price_field),
                        _typed(missing), _typed(periods_per_year))
            return _COERCED[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument (a dict of costs): not memoized
            key = None
        resolved = cls._coerce(settings, costs=costs, delay=delay, price_field=price_field,
                               missing=missing, periods_per_year=periods_per_year)
        if key is not None:
            if len(_COERCED) >= _COERCED_LIMIT:
                _COERCED.clear()
            _COERCED[key] = resolved
        return resolved

    @classmethod
    def _coerce(cls, settings: BacktestSettings | Mapping[str, Any] | None, *,
                costs: Any, delay: Any, price_field: Any, missing: Any,
                periods_per_year: Any) -> BacktestSettings:
        if settings is None:
            base = cls()
        elif isinstance(settings, BacktestSettings):
            base = settings
        elif isinstance(settings, Mapping):
            base = cls.from_dict(settings)
        else:
            raise BacktestError(
                f"settings must be a BacktestSettings, a dict of its fields or None, got "
                f"{type(settings).__name__}.")
        given = {name: value for name, value in (
            ("costs", costs), ("delay", delay), ("price_field", price_field),
            ("missing", missing), ("periods_per_year", periods_per_year)) if value is not _UNSET}
        return base.replace(**given) if given else base

    def replace(self, **changes: Any) -> BacktestSettings:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able form (what the cache key hashes and studies store)."""
        return {"costs": self.costs.to_dict(), "delay": self.delay,
                "price_field": self.price_field, "missing": self.missing,
                "periods_per_year": self.periods_per_year}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BacktestSettings:
        """Rebuild settings from :meth:`to_dict` (unknown fields are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise BacktestError(
                f"unknown backtest setting(s) {sorted(unknown)}; the settings are "
                f"{sorted(known)}.")
        return cls(**dict(values))


def _typed(value: Any) -> tuple[type, Any]:
    return type(value), value


#: :meth:`BacktestSettings.coerce` memo: hashable arguments (with their types) -> settings.
_COERCED: dict[Any, BacktestSettings] = {}
_COERCED_LIMIT = 256


@dataclass(frozen=True)
class BacktestArrays:
    """The numbers of a :class:`BacktestResult` as read-only numpy arrays, one row per date.

    This is the view the cache stores and the aggregator stitches; it copies nothing.

    Attributes
    ----------
    net, gross, costs, turnover : numpy.ndarray
        ``(n_dates,)``: net and gross portfolio return, cost and turnover per date.
    positions, changes : numpy.ndarray or None
        ``(n_dates, n_assets)``: weights held from each close to the next and their change
        at each close; None for a result built from returns alone.
    """

    net: np.ndarray
    gross: np.ndarray
    costs: np.ndarray
    turnover: np.ndarray
    positions: np.ndarray | None
    changes: np.ndarray | None


# --- the result ----------------------------------------------------------------------------


class BacktestResult:
    """The outcome of a backtest: per-date returns, positions, trades, turnover and costs.

    Arrays are held as numpy and turned into pandas objects only when asked for, so a
    result used just for its metrics (the optimizer's hot path) never builds a DataFrame.

    Attributes
    ----------
    returns : pandas.Series
        Net portfolio return per date (after costs).
    gross_returns : pandas.Series
        Portfolio return per date before costs.
    positions : pandas.DataFrame
        Weights actually held from each close to the next (after ``delay`` and after
        zeroing weights on missing prices); all zeros if the result was built from returns.
    trades : pandas.DataFrame
        One row per (date, asset) weight change: ``date, asset, weight_before,
        weight_after, traded`` (signed fraction of equity) and ``cost``.
    turnover, costs : pandas.Series
        Per date: sum of absolute weight changes; cost as a fraction of equity.
    settings : BacktestSettings
        The settings that produced the result (costs, delay, price field, ...).
    ruined : pandas.Timestamp or None
        The date equity reached zero: that bar returns -100 % and every later one is flat.
    arrays : BacktestArrays
        The same numbers as numpy arrays (no pandas object built).
    """

    def __init__(self, *, index: pd.DatetimeIndex, assets: pd.Index, net: np.ndarray,
                 gross: np.ndarray, costs: np.ndarray, turnover: np.ndarray,
                 positions: np.ndarray | None, changes: np.ndarray | None,
                 settings: BacktestSettings | None = None) -> None:
        self._dates: pd.DatetimeIndex | None = index
        self._dates_of: tuple[pd.DatetimeIndex, slice] | None = None  # see islice
        self._assets = assets
        self._net = net
        self._gross = gross
        self._costs = costs
        self._turnover = turnover
        self._positions = positions
        self._changes = changes
        self.settings = settings if settings is not None else BacktestSettings()
        self._values: dict[str, float] = {}  # every metric computed so far
        self._metrics: dict[str, float] | None = None  # all of them, in METRICS order
        self._n_trades: int | None = None

    @property
    def _index(self) -> pd.DatetimeIndex:
        """The dates; those of a slice are cut from its parent's on first use (slicing a
        DatetimeIndex costs more than the metrics of a window, which need no dates)."""
        dates = self._dates
        if dates is None:
            assert self._dates_of is not None
            parent, part = self._dates_of
            dates = self._dates = parent[part]
            self._dates_of = None
        return dates

    @classmethod
    def from_arrays(cls, index: pd.DatetimeIndex, assets: pd.Index, arrays: BacktestArrays,
                    settings: BacktestSettings | None = None) -> BacktestResult:
        """A result from its :attr:`arrays` (how the cache and the aggregator rebuild one)."""
        return cls(index=index, assets=assets, net=arrays.net, gross=arrays.gross,
                   costs=arrays.costs, turnover=arrays.turnover, positions=arrays.positions,
                   changes=arrays.changes, settings=settings)

    @property
    def arrays(self) -> BacktestArrays:
        """The result's numbers as numpy arrays (views, not copies; do not write to them)."""
        return BacktestArrays(net=self._net, gross=self._gross, costs=self._costs,
                              turnover=self._turnover, positions=self._positions,
                              changes=self._changes)

    @property
    def periods_per_year(self) -> float:
        """Annualization of :meth:`metrics` (from :attr:`settings`)."""
        return self.settings.periods_per_year

    # --- alternative constructors ----------------------------------------------------

    @classmethod
    def from_returns(cls, returns: pd.Series, *, positions: pd.DataFrame | None = None,
                     turnover: pd.Series | None = None, costs: pd.Series | None = None,
                     settings: BacktestSettings | Mapping[str, Any] | None = None,
                     periods_per_year: float | None = None) -> BacktestResult:
        """Build a result from a net return series (and, optionally, what produced it).

        For strategies that run their own simulation and return a ready result. Without
        ``positions`` the result has no trades, and turnover and costs default to zero.
        """
        if not isinstance(returns, pd.Series):
            raise BacktestError(
                f"returns must be a pandas Series indexed by date, got {type(returns).__name__}.")
        if not isinstance(returns.index, pd.DatetimeIndex):
            raise MisalignedWeightsError(
                "returns must be indexed by a DatetimeIndex; convert it with pd.to_datetime.")
        index = returns.index.as_unit("ns")
        net = returns.to_numpy(dtype=np.float64, copy=True)
        if np.isinf(net).any():
            raise BacktestError("returns contain +/-inf; a return must be finite or NaN.")
        n = len(net)

        def column(series: pd.Series | None, name: str) -> np.ndarray:
            if series is None:
                return np.zeros(n)
            values = series.reindex(returns.index).to_numpy(dtype=np.float64)
            if np.isnan(values).any():
                raise MisalignedWeightsError(f"{name} does not cover every date of returns.")
            return values

        cost_values = column(costs, "costs")
        pos: np.ndarray | None
        changes: np.ndarray | None
        if positions is not None:
            held = positions.reindex(returns.index).fillna(0.0)
            assets = pd.Index([str(c) for c in held.columns], dtype=object)
            pos = held.to_numpy(dtype=np.float64)
            changes = np.diff(pos, axis=0, prepend=0.0)
            turn = np.abs(changes).sum(axis=1) if turnover is None else column(turnover, "turnover")
        else:
            assets = pd.Index([], dtype=object)
            pos = changes = None
            turn = column(turnover, "turnover")
        return cls(index=index, assets=assets, net=net, gross=net + cost_values,
                   costs=cost_values, turnover=turn, positions=pos, changes=changes,
                   settings=BacktestSettings.coerce(settings, periods_per_year=periods_per_year))

    # --- pandas views ------------------------------------------------------------------

    @property
    def index(self) -> pd.DatetimeIndex:
        return self._index

    @property
    def assets(self) -> pd.Index:
        return self._assets

    def _series(self, values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=self._index, name=name, copy=False)

    @cached_property
    def returns(self) -> pd.Series:
        return self._series(self._net, "returns")

    @cached_property
    def gross_returns(self) -> pd.Series:
        return self._series(self._gross, "gross_returns")

    @cached_property
    def turnover(self) -> pd.Series:
        return self._series(self._turnover, "turnover")

    @cached_property
    def costs(self) -> pd.Series:
        return self._series(self._costs, "costs")

    @cached_property
    def equity(self) -> pd.Series:
        """Compounded wealth starting from 1.0 before the first date."""
        return self._series(np.cumprod(1.0 + np.nan_to_num(self._net)), "equity")

    @cached_property
    def positions(self) -> pd.DataFrame:
        values = (self._positions if self._positions is not None
                  else np.zeros((len(self._index), 0)))
        return pd.DataFrame(values, index=self._index, columns=self._assets, copy=False)

    @cached_property
    def trades(self) -> pd.DataFrame:
        columns = ["date", "asset", "weight_before", "weight_after", "traded", "cost"]
        if self._changes is None or self._positions is None:
            return pd.DataFrame({c: [] for c in columns}).astype(
                {"date": "datetime64[ns]", "asset": object})
        rows, cols = np.nonzero(self._changes)
        after = self._positions[rows, cols]
        traded = self._changes[rows, cols]
        rate = self.settings.costs.rate
        return pd.DataFrame({
            "date": self._index[rows],
            "asset": self._assets.to_numpy(dtype=object)[cols],
            "weight_before": after - traded,
            "weight_after": after,
            "traded": traded,
            "cost": np.abs(traded) * rate,
        })

    @cached_property
    def ruined(self) -> pd.Timestamp | None:
        """The date equity reached zero (a -100 % bar; flat ever after), or None."""
        bars = np.flatnonzero(self._net <= -1.0)
        return self._index[int(bars[0])] if bars.size else None

    @property
    def n_trades(self) -> int:
        """Number of (date, asset) weight changes."""
        if self._n_trades is None:
            self._n_trades = 0 if self._changes is None else int(np.count_nonzero(self._changes))
        return self._n_trades

    # --- numbers -------------------------------------------------------------------------

    def metrics(self, names: Iterable[str] | None = None) -> dict[str, float]:
        """Every metric of :data:`foldwise.metrics.METRICS` (or those in ``names``), as floats.

        Parameters
        ----------
        names
            Metric names to compute; None (default) for all of them. Only what the named
            metrics need is computed, and each value equals the same entry of the full
            ``metrics()`` exactly.

        Returns
        -------
        dict
            ``{name: float}`` in the order of :data:`~foldwise.metrics.METRICS` (or of
            ``names``). A new dict each call; the values are memoized, so asking again
            costs a dict copy.

        Raises
        ------
        UnknownMetricError
            A name that is not a metric (the message suggests the closest one).
        """
        if names is None:
            if self._metrics is None:
                self._compute(_metrics.METRICS)
                self._metrics = {name: self._values[name] for name in _metrics.METRICS}
            return dict(self._metrics)
        if isinstance(names, str):
            names = (names,)
        chosen = tuple(names)
        self._compute(chosen)
        return {name: self._values[name] for name in chosen}

    def metric(self, name: str) -> float:
        """One metric of :data:`foldwise.metrics.METRICS` by name, computing only what it needs.

        Equal to ``metrics()[name]`` exactly (the same computation, memoized): the
        optimizer's hot path asks for its objective's metric alone and the rest only when
        they are shown.

        Raises
        ------
        UnknownMetricError
            ``name`` is not a metric (the message suggests the closest one).

        Examples
        --------
        >>> import pandas as pd
        >>> from foldwise import MarketData, backtest
        >>> close = pd.DataFrame({"A": [100.0, 110.0, 99.0, 104.0]},
        ...                      index=pd.date_range("2024-01-01", periods=4))
        >>> result = backtest([1.0, 1.0, 1.0, 0.0], MarketData.from_frame(close))
        >>> result.metric("total_return") == result.metrics()["total_return"]
        True
        """
        try:
            return self._values[name]
        except KeyError:
            self._compute((name,))
            return self._values[name]

    def _compute(self, names: Iterable[str]) -> None:
        """Compute the metrics of ``names`` not yet in the memo (validated by summarize)."""
        if not self._values and names is _metrics.METRICS:  # all of them, the usual call
            missing: list[str] | None = None
        else:
            missing = [name for name in names if name not in self._values]
            if not missing:
                return
        self._values.update(_metrics.summarize(
            self._net, turnover=self._turnover,
            trades=self.n_trades if missing is None or "n_trades" in missing else None,
            periods_per_year=self.periods_per_year, names=missing))

    def islice(self, start: int, stop: int) -> BacktestResult:
        """The result restricted to bars ``start <= i < stop`` (views, no recomputation).

        The first bar of the slice keeps its return, which was earned by the position held
        from the previous close, and the cost of the trades made at its own close.
        """
        begin, end, _ = slice(start, stop).indices(len(self._net))
        if end <= begin:
            raise BacktestError(
                f"positions {start}..{stop} select no bar of the {len(self._net)} in this "
                "result.")
        part = slice(begin, end)
        result = BacktestResult(
            index=None, assets=self._assets, net=self._net[part],  # type: ignore[arg-type]
            gross=self._gross[part], costs=self._costs[part], turnover=self._turnover[part],
            positions=None if self._positions is None else self._positions[part],
            changes=None if self._changes is None else self._changes[part],
            settings=self.settings)
        if self._dates is not None:
            result._dates_of = (self._dates, part)
        else:  # a slice of a slice whose dates were not cut yet: cut from the first parent
            assert self._dates_of is not None
            parent, outer = self._dates_of
            result._dates_of = (parent, slice(outer.start + begin, outer.start + end))
        return result

    def take(self, positions: Any) -> BacktestResult:
        """The result restricted to the bars at ``positions`` (sorted ints; copies).

        For training sets made of several ranges (purged k-fold, CPCV): the metrics of the
        result are those of the concatenated returns of the chosen bars.
        """
        rows = np.asarray(positions, dtype=np.int64)
        if rows.ndim != 1 or rows.size == 0:
            raise BacktestError("take() needs a non-empty 1-D array of bar positions.")
        if rows.size > 1 and np.any(np.diff(rows) <= 0):
            raise BacktestError("take() needs sorted, unique bar positions.")
        if rows[0] < 0 or rows[-1] >= len(self._net):
            raise BacktestError(
                f"positions {rows[0]}..{rows[-1]} fall outside the {len(self._net)} bars.")
        if rows[-1] - rows[0] + 1 == rows.size:  # contiguous: a view
            return self.islice(int(rows[0]), int(rows[-1]) + 1)
        return BacktestResult(
            index=self._index[rows], assets=self._assets, net=self._net[rows],
            gross=self._gross[rows], costs=self._costs[rows], turnover=self._turnover[rows],
            positions=None if self._positions is None else self._positions[rows],
            changes=None if self._changes is None else self._changes[rows],
            settings=self.settings)

    def slice(self, start: Any = None, end: Any = None) -> BacktestResult:
        """The result restricted to dates ``start`` through ``end`` (inclusive)."""
        begin = 0 if start is None else int(self._index.searchsorted(pd.Timestamp(start), "left"))
        stop = (len(self._index) if end is None
                else int(self._index.searchsorted(pd.Timestamp(end), "right")))
        return self.islice(begin, stop)

    def __len__(self) -> int:
        return len(self._net)

    def __repr__(self) -> str:
        m = self.metrics()
        span = f"{self._index[0].date()}..{self._index[-1].date()}" if len(self._index) else "empty"
        ruin = "" if self.ruined is None else f", ruined on {self.ruined.date()}"
        return (f"BacktestResult({len(self._index)} dates {span}, {len(self._assets)} assets, "
                f"sharpe={m['sharpe']:.3f}, annual_return={m['annual_return']:.2%}, "
                f"max_drawdown={m['max_drawdown']:.2%}, trades={self.n_trades}{ruin})")


# --- weights -> array ----------------------------------------------------------------------


def _weights_array(weights: Any, data: MarketData) -> np.ndarray:
    """Return weights as a fresh float64 array ``(n_dates, n_assets)`` aligned with ``data``."""
    n_dates, n_assets = data.shape
    if isinstance(weights, pd.Series):
        if n_assets != 1:
            raise MisalignedWeightsError(
                f"a Series of weights is for one asset, but the data has {n_assets} assets. "
                "Pass a DataFrame (dates x assets) instead.")
        weights = weights.to_frame(name=data.assets[0])
    if isinstance(weights, pd.DataFrame):
        return _frame_to_array(weights, data)
    if isinstance(weights, BacktestResult):
        raise MisalignedWeightsError("backtest() takes weights; this is already a BacktestResult.")
    array = np.array(weights, dtype=np.float64, copy=True)
    if array.ndim == 1 and n_assets == 1:
        array = array.reshape(-1, 1)
    if array.shape != (n_dates, n_assets):
        raise MisalignedWeightsError(
            f"weights have shape {array.shape}, the data {n_dates} dates x {n_assets} assets. "
            "Return one row per date of the data and one column per asset (or a DataFrame "
            "indexed by date with asset columns).")
    return array


def _frame_to_array(frame: pd.DataFrame, data: MarketData) -> np.ndarray:
    if frame.index.equals(data.index) and frame.columns.equals(data.assets):
        return frame.to_numpy(dtype=np.float64, copy=True)  # the usual case: built on data
    columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    if columns.has_duplicates:
        raise MisalignedWeightsError(
            f"weights have duplicated asset columns {sorted(set(columns[columns.duplicated()]))}.")
    unknown = columns.difference(data.assets)
    if len(unknown):
        raise MisalignedWeightsError(
            f"weights name {len(unknown)} asset(s) not in the data, e.g. {list(unknown[:5])}. "
            f"The data's assets are {list(data.assets[:10])}"
            f"{'...' if data.n_assets > 10 else ''}; drop or rename those columns.")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise MisalignedWeightsError(
            f"weights must be indexed by date (DatetimeIndex), got {type(index).__name__}. "
            "Use data.index as the index of the weights.")
    if (index.tz is None) != (data.index.tz is None):
        raise MisalignedWeightsError(
            f"weights dates are {'naive' if index.tz is None else index.tz} but the data's are "
            f"{'naive' if data.index.tz is None else data.index.tz}; use data.index.")
    if index.equals(data.index):
        values = frame.to_numpy(dtype=np.float64, copy=True)
    else:
        if not index.is_monotonic_increasing or index.has_duplicates:
            raise MisalignedWeightsError(
                "weights dates must be sorted and unique; use weights.sort_index() and drop "
                "duplicated dates.")
        outside = index.difference(data.index)
        if len(outside):
            raise MisalignedWeightsError(
                f"weights have {len(outside)} date(s) that are not bars of the data, e.g. "
                f"{[str(d.date()) for d in outside[:3]]}. Date weights on data.index (a weight "
                "can only be traded at a bar's close).")
        # Dates without a row hold the previous row's targets; before the first row: flat.
        values = frame.reindex(data.index, method="ffill").to_numpy(dtype=np.float64, copy=True)
    if not columns.equals(data.assets):
        full = np.zeros((data.n_dates, data.n_assets))
        full[:, data.assets.get_indexer(columns)] = values
        values = full
    return values


def _held_asset_returns(data: MarketData, price_field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-asset returns a held position earns, and the mask of missing prices (or None).

    A missing price is carried forward from the last known close for the return of a
    position held into it (the position cannot be marked, so it earns 0 until a price is
    known again); no weight may be held on a bar without a price (see ``missing``).
    """

    def compute() -> tuple[np.ndarray, np.ndarray | None]:
        prices = data.array(price_field)
        missing = np.isnan(prices)
        if missing.any():
            rows = np.where(missing, 0, np.arange(prices.shape[0])[:, None])
            np.maximum.accumulate(rows, axis=0, out=rows)
            prices = np.take_along_axis(prices, rows, axis=0)
        else:
            missing = None
        returns = np.zeros(prices.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(prices[1:], prices[:-1], out=returns[1:])
        returns[1:] -= 1.0
        np.nan_to_num(returns, copy=False, nan=0.0)
        returns.flags.writeable = False
        return returns, missing

    return data.memo(("held_asset_returns", price_field), compute)


# --- the backtest --------------------------------------------------------------------------


def _ruin(net: np.ndarray, gross: np.ndarray, cost: np.ndarray, turnover: np.ndarray,
          held: np.ndarray, changes: np.ndarray) -> None:
    """Ruin is a state: from the first bar whose loss takes the whole equity, nothing more.

    Equity ``prod(1 + net)`` reaches zero on the first bar with ``net <= -1``. That bar loses
    exactly everything (-100 %: a loss beyond the equity is not the strategy's to keep
    compounding), the position is closed at its close, and every later bar is flat: return,
    cost and turnover 0. Edits the arrays in place.
    """
    if net.min() > -1.0:  # the usual case, one reduction
        return
    ruined = np.flatnonzero(net <= -1.0)
    if not ruined.size:
        return
    bar = int(ruined[0])
    net[bar] = -1.0
    for values in (net, gross, cost, turnover):
        values[bar + 1:] = 0.0
    held[bar:] = 0.0
    changes[bar + 1:] = 0.0
    changes[bar] = -held[bar - 1] if bar else 0.0


def backtest(weights: Any, data: MarketData, settings: BacktestSettings | None = None, *,
             costs: Costs | Mapping[str, float] | float | None = _UNSET,
             delay: int | None = _UNSET, price_field: str | None = _UNSET,
             missing: MissingPolicy | None = _UNSET,
             periods_per_year: float | None = _UNSET) -> BacktestResult:
    """Backtest target weights on market data.

    Parameters
    ----------
    weights
        Target weights (fractions of equity; short < 0): a DataFrame indexed by dates of
        ``data`` with asset columns, a Series (one asset), or an array
        ``(n_dates, n_assets)``. **A weight dated t must use information through the close
        of t only; it earns the return from close t to close t+1** (the return dated t+1).
        NaN means no position. Missing asset columns hold nothing; dates missing from a
        DataFrame hold the previous row's targets (nothing before the first row).
    data
        The market data; prices are read from ``price_field``.
    settings
        A :class:`BacktestSettings` holding all the settings below; a keyword given
        alongside it replaces that field.
    costs
        :class:`Costs` (commission and slippage in bps of traded notional), a dict of them,
        a number (total bps) or None for no costs. Charged on the date of the trade.
    delay
        Extra bars between the decision and the trade: a weight dated t is traded at the
        close of ``t + delay``. 0 (default) trades at the decision close.
    price_field
        The field that holds the prices to trade at.
    missing
        What to do with a non-zero weight on an asset that has no price (NaN) that day:
        ``"zero"`` (default) sets it to 0 and logs one warning with the count and the first
        case; ``"raise"`` raises :class:`~foldwise.errors.MissingPriceError`. A position
        held into a missing price earns 0 for that bar (the last known close is carried
        forward).
    periods_per_year
        Annualization factor for the metrics.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> import pandas as pd
    >>> from foldwise import MarketData, backtest
    >>> close = pd.DataFrame({"A": [100.0, 110.0, 99.0]},
    ...                      index=pd.date_range("2024-01-01", periods=3))
    >>> result = backtest(pd.Series([1.0, 1.0, 0.0], index=close.index), MarketData.from_frame(close))
    >>> result.returns.round(4).tolist()    # bought at the close of day 1, earns day 2 and 3
    [0.0, 0.1, -0.1]
    """
    settings = BacktestSettings.coerce(settings, costs=costs, delay=delay,
                                       price_field=price_field, missing=missing,
                                       periods_per_year=periods_per_year)
    delay, price_field = settings.delay, settings.price_field
    asset_returns, missing_prices = _held_asset_returns(data, price_field)

    held = _weights_array(weights, data)
    # NaN or +/-inf anywhere makes the sum non-finite: one reduction instead of a mask in
    # the usual case (a finite panel whose sum overflows is scanned for nothing).
    if not math.isfinite(held.sum()):
        finite = np.isfinite(held)
        if np.isinf(held).any():
            row, col = (int(i[0]) for i in np.nonzero(np.isinf(held)))
            raise BacktestError(
                f"weights contain +/-inf, the first on {data.index[row].date()} for "
                f"{data.assets[col]!r}. Weights must be finite (NaN means no position).")
        held[~finite] = 0.0
    if delay:
        held[delay:] = held[:-delay].copy()
        held[:delay] = 0.0
    if missing_prices is not None:
        stranded = missing_prices & (held != 0.0)
        if stranded.any():
            row, col = (int(i[0]) for i in np.nonzero(stranded))
            message = (f"{int(stranded.sum())} non-zero weight(s) on assets with no price that "
                       f"day, the first on {data.index[row].date()} for {data.assets[col]!r}")
            if settings.missing == "raise":
                raise MissingPriceError(
                    f"{message}. Give those assets weight 0 (or NaN) while they have no price, "
                    "or pass missing='zero' to zero them.")
            logger.warning("%s; they were set to 0 (missing='zero').", message)
            held[stranded] = 0.0

    n_dates, n_assets = held.shape
    gross = np.empty(n_dates)
    gross[0] = 0.0
    changes = np.empty_like(held)  # np.diff(held, axis=0, prepend=0.0) without the concatenation
    changes[0] = held[0]
    np.subtract(held[1:], held[:-1], out=changes[1:])
    if n_assets == 1:  # the row sums are the products themselves
        np.multiply(held[:-1, 0], asset_returns[1:, 0], out=gross[1:])
        gross += 0.0  # as the sum does: -0.0 becomes 0.0
        turnover = np.abs(changes[:, 0])
    else:
        np.einsum("ij,ij->i", held[:-1], asset_returns[1:], out=gross[1:])
        turnover = np.abs(changes).sum(axis=1)
    cost = turnover * settings.costs.rate
    net = gross - cost
    _ruin(net, gross, cost, turnover, held, changes)
    return BacktestResult(index=data.index, assets=data.assets, net=net, gross=gross,
                          costs=cost, turnover=turnover, positions=held, changes=changes,
                          settings=settings)
