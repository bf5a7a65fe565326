"""``FactorStrategy``: a pipeline factor turned into target weights, every argument tunable.

A factor strategy is a :class:`foldwise.Strategy` (causal), so it backtests, caches and
optimizes like any other. Its parameters are those of the pipeline factory — a function
returning a :class:`Pipeline` or a factor, whose arguments (a window length, a decay) are
then strategy parameters — plus the portfolio-construction ones of
:mod:`foldwise.pipeline._portfolio` (``method``, ``n_long``, ``n_short``, ``quantiles``,
``weighting``, ``gross``, ``net``, ``rebalance``), with the defaults given to the
constructor.

Timing: the pipeline row dated ``D`` uses data through the bar before ``D``; used as the
weight dated ``D`` it earns the return of ``D + 1``.

Across trials, the terms a trial's parameters do not change are served from
:data:`foldwise.pipeline.term_cache` instead of being computed again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from foldwise._canonical import canonical
from foldwise._fingerprint import code_fingerprint, fingerprint_entries
from foldwise._hashing import hash_json
from foldwise.data import MarketData
from foldwise.errors import StrategyError, StrategyParameterError
from foldwise.pipeline._engine import TermCache, compute_wide, term_cache
from foldwise.pipeline._pipeline import Pipeline
from foldwise.pipeline._portfolio import (
    CONSTRUCTION_DEFAULTS,
    check_construction,
    hold_between,
    rebalance_dates,
    target_weights,
)
from foldwise.pipeline._term import PIPELINE_VERSION, Term
from foldwise.strategy import Strategy

__all__ = ["FactorStrategy"]

_VERSION = 1


def as_pipeline(value: Any, what: str) -> Pipeline:
    """A Pipeline from a Pipeline or a single factor (column ``"factor"``)."""
    if isinstance(value, Pipeline):
        return value
    if isinstance(value, Term) and value.kind == "factor":
        return Pipeline({"factor": value})
    raise StrategyError(f"{what} must be a Pipeline or a Factor, got {value!r}.")


def _keyword_parameters(func: Callable[..., Any], skip: int, owner: str) -> list[inspect.Parameter]:
    try:
        parameters = list(inspect.signature(func).parameters.values())[skip:]
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"cannot read the signature of {owner}: {exc}") from exc
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) else p
        for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]


class FactorStrategy(Strategy):
    """Target weights from a pipeline factor (a :class:`foldwise.Strategy`, causal).

    Parameters
    ----------
    pipeline : Pipeline, Factor or callable
        What to compute. A callable ``make(**params) -> Pipeline | Factor`` makes its
        arguments strategy parameters (tunable by ``optimize``); its defaults are theirs.
    column : str, optional
        The pipeline column holding the score; needed when the pipeline has several.
        The pipeline's screen, if any, restricts the eligible assets.
    method : {'top_bottom', 'quantile', 'factor', 'long_only'}
        How legs are formed (see :mod:`foldwise.pipeline._portfolio`).
    n_long, n_short : int
        Assets per leg for ``top_bottom`` (``n_long`` also for ``long_only``; None there
        means every eligible asset).
    quantiles : int
        Bins for ``quantile`` (long the top bin, short the bottom one).
    weighting : {'equal', 'factor'}
        Equal weights within a leg, or proportional to the score's distance from the
        date's mean.
    gross, net : float
        Exposures: the long leg holds ``(gross + net) / 2``, the short leg
        ``(gross - net) / 2`` (``long_only``: ``gross``).
    rebalance : int or str
        Every ``N`` bars (from the first bar of the data), or the first bar of each
        ``"W"``, ``"M"``, ``"Q"`` or ``"Y"`` period; weights are held in between.
    name : str, optional
        Display and cache name.
    cache : TermCache or None, optional
        Where term results are shared across trials (default: the process-wide
        :data:`foldwise.pipeline.term_cache`); None disables it.

    Every construction argument is also a strategy parameter with the value given here as
    its default.

    Examples
    --------
    >>> from foldwise.pipeline import FactorStrategy
    >>> from foldwise.pipeline.factors import Returns
    >>> def momentum(window=20):
    ...     return -Returns(window_length=window)      # buy the recent losers
    >>> strategy = FactorStrategy(momentum, n_long=3, n_short=3, rebalance="W")
    >>> sorted(strategy.parameters)[:4]
    ['gross', 'method', 'n_long', 'n_short']
    >>> from foldwise.datasets import load_sp500
    >>> result = strategy.run(load_sp500(), {"window": 60})
    >>> result.positions.abs().sum(axis=1).max().round(6)
    np.float64(1.0)
    """

    def __init__(self, pipeline: Pipeline | Term | Callable[..., Any], *, column: str | None = None,
                 method: str = "top_bottom", n_long: int | None = 5, n_short: int = 5,
                 quantiles: int = 5, weighting: str = "equal", gross: float = 1.0,
                 net: float = 0.0, rebalance: int | str = 1, name: str | None = None,
                 cache: TermCache | None = term_cache) -> None:
        if isinstance(pipeline, (Pipeline, Term)):
            self._fixed: Pipeline | None = as_pipeline(pipeline, "pipeline")
            self._factory: Callable[..., Any] | None = None
            factory_parameters: list[inspect.Parameter] = []
        elif callable(pipeline):
            self._fixed, self._factory = None, pipeline
            factory_parameters = _keyword_parameters(pipeline, 0, repr(pipeline))
        else:
            raise StrategyError(
                f"FactorStrategy needs a Pipeline, a Factor, or a function returning one; got "
                f"{pipeline!r}.")
        self.defaults = check_construction({
            "method": method, "n_long": n_long, "n_short": n_short, "quantiles": quantiles,
            "weighting": weighting, "gross": gross, "net": net, "rebalance": rebalance})
        clash = [p.name for p in factory_parameters if p.name in CONSTRUCTION_DEFAULTS]
        if clash:
            raise StrategyError(
                f"the pipeline function's parameter(s) {clash} clash with FactorStrategy's "
                f"own ({', '.join(CONSTRUCTION_DEFAULTS)}); rename them.")
        construction = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                        for k, v in self.defaults.items()]
        variadic = [p for p in factory_parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
        fixed = [p for p in factory_parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
        self._parameters = inspect.Signature([*fixed, *construction, *variadic])
        self.column = column
        self.cache = cache
        label = name or getattr(pipeline, "__name__", None) or "factor_strategy"
        super().__init__(name=label, causal=True)

    # --- identity and parameters --------------------------------------------------------

    @cached_property
    def _signature(self) -> inspect.Signature:
        return self._parameters

    @property
    def _code_root(self) -> Any:
        return self._factory if self._factory is not None else type(self)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the pipeline (its factory's code, or the terms) and the defaults."""
        pipeline = (self._fixed.__fingerprint__() if self._fixed is not None
                    else code_fingerprint(self._factory))
        return hash_json({"v": _VERSION, "pipeline_version": PIPELINE_VERSION,
                          "pipeline": pipeline, "column": self.column,
                          "defaults": canonical(self.defaults, "FactorStrategy defaults")})

    def fingerprint_sources(self) -> list[str]:
        """The user code the fingerprint covers (the factory and what it uses)."""
        return sorted(fingerprint_entries(self._factory)) if self._factory is not None else []

    # --- weights ------------------------------------------------------------------------

    def pipeline(self, **params: Any) -> Pipeline:
        """The pipeline for the given factory parameters."""
        if self._fixed is not None:
            return self._fixed
        assert self._factory is not None
        return as_pipeline(self._factory(**params), f"{self.name}'s pipeline function result")

    def compute(self, data: MarketData, **params: Any) -> pd.DataFrame:
        """Target weights ``(dates x assets)`` for ``params``; zero before enough history."""
        resolved = self.validate_params(params)
        construction = check_construction({k: resolved[k] for k in CONSTRUCTION_DEFAULTS})
        factory_params = {k: v for k, v in resolved.items() if k not in CONSTRUCTION_DEFAULTS}
        pipeline = self.pipeline(**factory_params)
        score_name = self._score_column(pipeline)
        wide = compute_wide(pipeline, data, cache=self.cache)
        score = np.asarray(wide.columns[score_name], dtype=np.float64)
        eligible = (np.ones(score.shape, dtype=bool) if wide.screen is None
                    else np.asarray(wide.screen))
        weights = np.zeros(data.shape)
        weights[wide.first:] = target_weights(score, eligible, construction)
        schedule = rebalance_dates(data.index, construction["rebalance"])
        held = hold_between(weights, schedule)
        return pd.DataFrame(held, index=data.index, columns=data.assets, copy=False)

    def _score_column(self, pipeline: Pipeline) -> str:
        columns = pipeline.columns
        if self.column is None:
            if len(columns) != 1:
                raise StrategyParameterError(
                    f"{self.name}: the pipeline has columns {list(columns)}; say which holds the "
                    "score with FactorStrategy(..., column='name').")
            name = next(iter(columns))
        elif self.column not in columns:
            raise StrategyParameterError(
                f"{self.name}: no pipeline column {self.column!r} (columns: {list(columns)}).")
        else:
            name = self.column
        if columns[name].kind != "factor":
            raise StrategyParameterError(
                f"{self.name}: the score column {name!r} must be a factor, got {columns[name]!r}.")
        return name

    def __repr__(self) -> str:
        return f"FactorStrategy({self.name}, causal=True)"
