"""Algorithm style: ``attach_pipeline`` in ``initialize``, ``pipeline_output`` when rebalancing.

For code shaped like a Zipline algorithm::

    def initialize(context, n=5):
        attach_pipeline(make_pipeline(), "factors")
        context.n = n

    def rebalance(context, data):
        scores = pipeline_output("factors")["score"]
        longs = scores.nlargest(context.n).index
        return pd.Series(1.0 / len(longs), index=longs)

    strategy = AlgorithmStrategy(initialize, rebalance, schedule="M")

``initialize`` runs once per backtest; its keyword arguments are the strategy's
(tunable) parameters. Each attached pipeline is then computed **once**, over every date,
in one batch; ``pipeline_output(name)`` only reads the row of the current date (assets
passing the screen, one column per pipeline column). ``rebalance(context, data)`` is
called on each scheduled date with ``data`` the MarketData through that date's bar, and
returns the target weights (a Series or dict of asset -> weight; unlisted assets get 0;
None keeps the previous targets), held until the next rebalance.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from foldwise._fingerprint import code_fingerprint, fingerprint_entries
from foldwise._hashing import hash_json
from foldwise.data import MarketData
from foldwise.errors import PipelineError, StrategyError, StrategyOutputError
from foldwise.pipeline._engine import TermCache, WideResult, compute_wide, term_cache
from foldwise.pipeline._pipeline import Pipeline
from foldwise.pipeline._portfolio import check_rebalance, hold_between, rebalance_dates
from foldwise.pipeline._strategy import _keyword_parameters, as_pipeline
from foldwise.pipeline._term import PIPELINE_VERSION
from foldwise.strategy import Strategy

__all__ = ["AlgorithmStrategy", "attach_pipeline", "get_datetime", "pipeline_output"]


@dataclass
class _Session:
    """The state of one backtest run of an algorithm."""

    data: MarketData
    phase: str = "initialize"
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    results: dict[str, WideResult] = field(default_factory=dict)
    row: int = -1


_SESSION: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "foldwise_pipeline_session", default=None)


def _session(caller: str, phase: str) -> _Session:
    session = _SESSION.get()
    if session is None or session.phase != phase:
        where = "initialize(context)" if phase == "initialize" else "the rebalance callback"
        raise PipelineError(
            f"{caller} can only be called inside {where} of an AlgorithmStrategy that is "
            "running.")
    return session


def attach_pipeline(pipeline: Pipeline | Any, name: str, chunks: Any = None,
                    eager: bool = True) -> Pipeline:
    """Register ``pipeline`` under ``name`` for this run (call it in ``initialize``).

    ``chunks`` and ``eager`` are accepted for compatibility and ignored: the pipeline is
    always computed in one batch over the whole run.
    """
    session = _session("attach_pipeline", "initialize")
    if name in session.pipelines:
        raise PipelineError(f"a pipeline named {name!r} is already attached; pick another name.")
    session.pipelines[name] = as_pipeline(pipeline, f"attach_pipeline({name!r})")
    return session.pipelines[name]


def pipeline_output(name: str) -> pd.DataFrame:
    """The current date's rows of the pipeline attached as ``name``, indexed by asset.

    Before the pipeline has enough history the frame is empty.
    """
    session = _session("pipeline_output", "rebalance")
    try:
        result = session.results[name]
    except KeyError:
        raise PipelineError(
            f"no pipeline attached as {name!r} (attached: {list(session.results)}); call "
            "attach_pipeline(pipeline, name) in initialize.") from None
    assets = session.data.assets
    columns = list(result.columns)
    offset = session.row - result.first
    if offset < 0:
        return pd.DataFrame({c: pd.Series(dtype=result.columns[c].dtype) for c in columns},
                            index=assets[:0])
    keep = (np.ones(len(assets), dtype=bool) if result.screen is None
            else np.asarray(result.screen[offset]))
    return pd.DataFrame({c: result.columns[c][offset][keep] for c in columns},
                        index=assets[keep])


def get_datetime() -> pd.Timestamp:
    """The date being rebalanced (inside the rebalance callback)."""
    session = _session("get_datetime", "rebalance")
    return session.data.index[session.row]


def _row_of(targets: Any, assets: pd.Index, date: pd.Timestamp, owner: str) -> np.ndarray:
    if not isinstance(targets, (pd.Series, dict)):
        raise StrategyOutputError(
            f"{owner}'s rebalance callback returned {type(targets).__name__} on {date.date()}; "
            "return a Series or dict of asset -> weight (None keeps the previous targets).")
    row = np.zeros(len(assets))
    for asset, weight in targets.items():
        position = assets.get_indexer(pd.Index([str(asset)]))[0]
        if position < 0:
            raise StrategyOutputError(
                f"{owner}'s rebalance callback on {date.date()} gave a weight to {asset!r}, "
                f"which is not an asset of the data.")
        if not isinstance(weight, (int, float, np.number)) or not math.isfinite(float(weight)):
            raise StrategyOutputError(
                f"{owner}'s rebalance callback on {date.date()} gave {asset!r} the weight "
                f"{weight!r}; weights must be finite numbers.")
        row[position] = float(weight)
    return row


class AlgorithmStrategy(Strategy):
    """A strategy written as ``initialize`` + ``rebalance`` callbacks (see module docs).

    Parameters
    ----------
    initialize : callable
        ``initialize(context, **params)``: attach pipelines, store settings on
        ``context``. Its keyword arguments are the strategy's parameters.
    rebalance : callable
        ``rebalance(context, data) -> weights``, called on each scheduled date.
    schedule : int or str
        Every ``N`` bars, or the first bar of each ``"W"``, ``"M"``, ``"Q"``, ``"Y"``
        period (default: every bar).
    name : str, optional
        Display and cache name.
    cache : TermCache or None, optional
        Term results shared across runs (default: :data:`foldwise.pipeline.term_cache`).

    Examples
    --------
    >>> import pandas as pd
    >>> from foldwise.pipeline import AlgorithmStrategy, attach_pipeline, pipeline_output
    >>> from foldwise.pipeline.factors import Returns
    >>> def initialize(context, window=20, n=2):
    ...     attach_pipeline(-Returns(window_length=window), "reversal")
    ...     context.n = n
    >>> def rebalance(context, data):
    ...     score = pipeline_output("reversal")["factor"]
    ...     picks = score.nlargest(context.n).index
    ...     return pd.Series(1.0 / context.n, index=picks)
    >>> strategy = AlgorithmStrategy(initialize, rebalance, schedule="M")
    >>> from foldwise.datasets import load_sp500
    >>> strategy.run(load_sp500().slice("2020-01-01"), {"window": 10}).positions.sum(axis=1).max()
    np.float64(1.0)
    """

    def __init__(self, initialize: Callable[..., Any], rebalance: Callable[..., Any], *,
                 schedule: int | str = 1, name: str | None = None,
                 cache: TermCache | None = term_cache) -> None:
        if not callable(initialize) or not callable(rebalance):
            raise StrategyError(
                "AlgorithmStrategy needs two functions: initialize(context, **params) and "
                "rebalance(context, data).")
        self.schedule = check_rebalance(schedule)
        self.initialize, self.rebalance = initialize, rebalance
        self.cache = cache
        self._parameters = inspect.Signature(
            _keyword_parameters(initialize, 1, f"initialize {initialize!r}"))
        super().__init__(name=name or getattr(rebalance, "__name__", "algorithm"), causal=True)

    @cached_property
    def _signature(self) -> inspect.Signature:
        return self._parameters

    @property
    def _code_root(self) -> Any:
        return self.initialize

    @cached_property
    def fingerprint(self) -> str:
        """Hash of both callbacks' code (and the user code they use) and the schedule."""
        return hash_json({"v": 1, "pipeline_version": PIPELINE_VERSION,
                          "initialize": code_fingerprint(self.initialize),
                          "rebalance": code_fingerprint(self.rebalance),
                          "schedule": self.schedule})

    def fingerprint_sources(self) -> list[str]:
        """The user code the fingerprint covers."""
        return sorted({*fingerprint_entries(self.initialize),
                       *fingerprint_entries(self.rebalance)})

    def compute(self, data: MarketData, **params: Any) -> pd.DataFrame:
        """Run ``initialize``, compute the attached pipelines once, rebalance on schedule."""
        resolved = self.validate_params(params)
        session = _Session(data)
        context = types.SimpleNamespace()
        token = _SESSION.set(session)
        try:
            self.initialize(context, **resolved)
            session.results = {name: compute_wide(pipeline, data, cache=self.cache)
                               for name, pipeline in session.pipelines.items()}
            session.phase = "rebalance"
            start = max((r.first for r in session.results.values()), default=0)
            schedule = rebalance_dates(data.index, self.schedule)
            weights = np.zeros(data.shape)
            current = np.zeros(data.n_assets)
            decided = np.zeros(data.n_dates, dtype=bool)
            for row in (np.flatnonzero(schedule[start:]) + start).tolist():
                session.row = row
                targets = self.rebalance(context, data.islice(0, row + 1))
                if targets is not None:
                    current = _row_of(targets, data.assets, data.index[row], self.name)
                weights[row] = current
                decided[row] = True
        finally:
            _SESSION.reset(token)
        return pd.DataFrame(hold_between(weights, decided), index=data.index,
                            columns=data.assets, copy=False)

    def __repr__(self) -> str:
        return f"AlgorithmStrategy({self.name}, schedule={self.schedule!r})"
