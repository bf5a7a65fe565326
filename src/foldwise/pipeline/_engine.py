"""The pipeline engine: how :func:`run_pipeline` turns a pipeline into numbers.

Dates and bars. A pipeline row dated ``D`` is computed from data through the bar *before*
``D`` (Zipline's convention): the engine works on bar rows and dates the value computed
through bar ``r`` with the date of bar ``r + 1``. Used as target weights dated ``D``, a
row therefore never sees the close of ``D`` and earns the return of ``D + 1``.

The algorithm:

1. **Build the graph once.** Starting from the pipeline's columns and screen, walk every
   term's inputs and mask. Terms are memoized, so a sub-expression shared by several
   columns is one node; the nodes are put in topological order (inputs first). This is
   :meth:`Plan.build`.

2. **Work out the history each term needs.** Going from the outputs down to the dataset
   columns, a term needs ``window_length - 1`` extra rows of each input for every extra
   row its consumers need of it (``Plan.extra``); going up from the columns, ``Plan.depth``
   is the number of bars a term needs before its first value. The first date a pipeline
   can produce is ``max(depth of the outputs) + 1``; asking for an earlier start raises
   :class:`~foldwise.errors.WindowLengthError` naming the chain of terms that needs the
   history (:meth:`Plan.check_start`).

3. **Give each term a row range.** For ``run_pipeline`` a term is computed over the bars
   its consumers need: from ``first bar - extra`` to the last bar, so dataset columns are
   loaded only as far back as the longest window requires (as views of the MarketData
   arrays, never copies). A factor strategy instead computes each term from its own first
   computable bar (``depth``): the range then depends on the term alone, so a term a
   tuned parameter does not touch is computed once and served from the cache to every
   trial (step 5).

4. **Compute in order, freeing as we go.** For each term: cut each input to the rows the
   term needs (a windowed term gets ``window_length - 1`` more rows before its first row),
   cut its mask, call ``term._compute`` (a whole-array kernel for built-ins, one
   ``compute`` call per date for a user's custom term, fed from a sliding-window view),
   check the result's shape and dtype, and make it read-only. Then decrement the
   reference count of every input; an intermediate result nobody else needs is dropped
   from the workspace at once, so memory holds the live frontier of the graph, not all
   of it.

5. **Reuse across runs (optional).** With a cache, every computed term is stored under
   ``(data content hash, term)`` with its row range; a later run that needs a range
   inside a stored one takes a view of it instead of computing. The cache is bounded in
   bytes (least recently used entries go first).

6. **Assemble the output.** ``run_pipeline`` keeps the rows passing the screen and
   returns a DataFrame indexed by ``(date, asset)``; strategies read the wide arrays.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from foldwise.data import MarketData
from foldwise.errors import (
    PipelineDefinitionError,
    PipelineError,
    PipelineOutputError,
    UnknownAssetError,
    WindowLengthError,
)
from foldwise.pipeline._dataset import BoundColumn
from foldwise.pipeline._term import Term

if TYPE_CHECKING:
    from foldwise.pipeline._pipeline import Pipeline

__all__ = ["Context", "Plan", "TermCache", "WideResult", "compute_wide", "run_pipeline",
           "term_cache"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What a term's ``_compute`` knows besides its inputs.

    Attributes
    ----------
    dates
        The date of each row computed (the date after each bar).
    assets
        Asset labels, a numpy array of strings.
    origin
        Position in the full panel of the first row of the inputs (for a windowed term,
        the first row of its first window); kernels align their blocks on it.
    asset_index
        The labels as a pandas Index, for lookups.
    panel_dates, offset
        The data's whole index and the position of ``dates[0]`` in it, if known (see
        :attr:`timestamps`).
    """

    dates: pd.DatetimeIndex
    assets: np.ndarray
    origin: int
    asset_index: pd.Index
    panel_dates: pd.DatetimeIndex | None = None
    offset: int = 0

    @property
    def timestamps(self) -> Sequence[pd.Timestamp]:
        """``dates`` as ``pandas.Timestamp`` objects (the ``today`` of each compute call),
        sliced from those of ``panel_dates`` when given (made once per index)."""
        if self.panel_dates is None:
            return list(self.dates)
        return _timestamps(self.panel_dates)[self.offset:self.offset + len(self.dates)]

    def asset_position(self, asset: str, term: Term) -> int:
        """Column of ``asset``, or an UnknownAssetError naming ``term``."""
        try:
            position = self.asset_index.get_loc(asset)
        except KeyError:
            sample = list(self.asset_index[:10])
            raise UnknownAssetError(
                f"{term!r} names the asset {asset!r}, which the data does not have (assets: "
                f"{sample}{'...' if len(self.asset_index) > 10 else ''}).") from None
        # Asset labels are unique (MarketData checks it), so a label has one position.
        assert isinstance(position, (int, np.integer))
        return int(position)


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """The term graph of a pipeline, in topological order, with its history needs."""

    outputs: dict[str, Term]
    screen: Term | None
    order: list[Term]
    extra: dict[Term, int]
    depth: dict[Term, int]
    uses: dict[Term, int]

    @classmethod
    def build(cls, columns: dict[str, Term], screen: Term | None) -> Plan:
        roots = [*columns.values(), *([screen] if screen is not None else [])]
        order: list[Term] = []
        state: dict[Term, int] = {}  # 1: being visited, 2: done
        for root in roots:
            stack: list[tuple[Term, bool]] = [(root, False)]
            while stack:
                term, expanded = stack.pop()
                if expanded:
                    state[term] = 2
                    order.append(term)
                    continue
                if state.get(term) == 2:
                    continue
                if state.get(term) == 1:  # pragma: no cover - terms are immutable, no cycles
                    raise PipelineDefinitionError(f"the pipeline graph has a cycle at {term!r}.")
                state[term] = 1
                stack.append((term, True))
                stack.extend((dep, False) for dep in reversed(term.dependencies)
                             if state.get(dep) != 2)
        depth: dict[Term, int] = {}
        uses: dict[Term, int] = dict.fromkeys(order, 0)
        for term in order:
            deps = term.dependencies
            depth[term] = max((depth[d] + (term.extra_rows if d is not term.mask else 0)
                               for d in deps), default=0)
            for dep in deps:
                uses[dep] += 1
        for root in roots:
            uses[root] += 1
        extra: dict[Term, int] = dict.fromkeys(order, 0)
        for term in reversed(order):
            for dep in term.inputs:
                extra[dep] = max(extra[dep], extra[term] + term.extra_rows)
            if term.mask is not None:
                extra[term.mask] = max(extra[term.mask], extra[term])
        return cls(dict(columns), screen, order, extra, depth, uses)

    @property
    def roots(self) -> list[Term]:
        return [*self.outputs.values(), *([self.screen] if self.screen is not None else [])]

    @property
    def first_position(self) -> int:
        """Position (in the data's dates) of the first date every output can be computed for."""
        return max(self.depth[t] for t in self.roots) + 1

    def _chain(self, term: Term) -> str:
        links = [term]
        while links[-1].dependencies:
            current = links[-1]
            links.append(max(current.dependencies,
                             key=lambda d: self.depth[d] + (current.extra_rows
                                                            if d is not current.mask else 0)))
        return " <- ".join(repr(t) for t in links)

    def check_start(self, data: MarketData, position: int) -> None:
        """Raise WindowLengthError if the date at ``position`` lacks history for a root."""
        needed = self.first_position
        if needed <= position and needed < data.n_dates:
            return
        root = max(self.roots, key=lambda t: self.depth[t])
        names = [n for n, t in self.outputs.items() if t is root] or ["the screen"]
        bars = self.depth[root] + 1
        where = (f"the first date it can be computed for is {data.index[needed].date()}"
                 if needed < data.n_dates else
                 f"the data has only {data.n_dates} bars, so no date can be computed")
        asked = (f"{data.index[position].date()} has {position} bar(s) before it"
                 if position < data.n_dates else "the data ends before that")
        raise WindowLengthError(
            f"not enough history for {names[0]!r}: {self._chain(root)} needs {bars} bar(s) "
            f"before each date (windows are cumulated along the chain), but {asked}; {where}. "
            f"Start later, shorten the window, or pass data that begins before "
            f"{data.index[0].date()}.")


# --- the cache ---------------------------------------------------------------------------------


def _nbytes(value: Any) -> int:
    if isinstance(value, dict):
        return sum(v.nbytes for v in value.values())
    return int(value.nbytes)


def _rows(value: Any, start: int) -> Any:
    if isinstance(value, dict):
        return {k: v[start:] if start else v for k, v in value.items()}
    return value[start:] if start else value


def _row_range(value: Any, first: int, last: int) -> Any:
    if isinstance(value, dict):
        return {k: v[first:last] for k, v in value.items()}
    return value[first:last]


class TermCache:
    """Term results kept across pipeline runs, bounded in bytes (least recently used out).

    Keys are ``(data content hash, term)``: the same term on the same data content is
    served from the cache whatever MarketData object carries it. Entries remember their
    row range; a request for rows inside it gets a read-only view. Thread-safe.

    Parameters
    ----------
    max_bytes
        Upper bound of the memory held (256 MiB by default). 0 disables the cache.
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[str, Term], tuple[int, int, Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, Term], first: int, last: int) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] > first or entry[1] < last:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            start, _, value = entry
            return _row_range(value, first - start, last - start + 1)

    def put(self, key: tuple[str, Term], first: int, last: int, value: Any) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _nbytes(old[2])
            self._entries[key] = (first, last, value)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._bytes -= _nbytes(evicted)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to a worker process, a cache arrives empty (the process-wide one as that
        # process's own): results are shared within a process, not shipped between them.
        return (_cache_for_process, (self.max_bytes, self is term_cache))

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (f"TermCache({len(self)} terms, {self._bytes / 2**20:.1f} of "
                f"{self.max_bytes / 2**20:.0f} MiB, {self.hits} hits, {self.misses} misses)")


#: The process-wide cache factor strategies use to share unchanged terms across trials.
term_cache = TermCache()


def _cache_for_process(max_bytes: int, shared: bool) -> TermCache:
    return term_cache if shared else TermCache(max_bytes)


# --- execution ---------------------------------------------------------------------------------


def _checked(label: str, dtype: np.dtype, array: Any, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise PipelineOutputError(
            f"{label} produced an array of shape {array.shape}; expected {shape} (one row per "
            "date, one column per asset).")
    if array.dtype != dtype:
        raise PipelineOutputError(f"{label} produced values of dtype {array.dtype}; expected "
                                  f"{dtype}.")
    if array.flags.writeable:
        array.flags.writeable = False
    return array


def _check_result(term: Term, value: Any, shape: tuple[int, int]) -> Any:
    """``value`` with its shape and dtype checked, made read-only (it may be shared)."""
    if isinstance(value, dict):
        return {name: _checked(f"{term!r}.{name}", term.dtype, array, shape)
                for name, array in value.items()}
    return _checked(repr(term), term.dtype, value, shape)


_TIMESTAMPS: dict[int, tuple[weakref.ref[pd.DatetimeIndex], list[pd.Timestamp]]] = {}


def _timestamps(index: pd.DatetimeIndex) -> list[pd.Timestamp]:
    """The dates of ``index`` as Timestamps, made once per index object (a custom term's
    per-date loop hands one to each ``compute`` call; a MarketData keeps its index)."""
    key = id(index)
    entry = _TIMESTAMPS.get(key)
    if entry is not None and entry[0]() is index:
        return entry[1]
    stamps = list(index)
    _TIMESTAMPS[key] = (weakref.ref(index), stamps)
    weakref.finalize(index, _TIMESTAMPS.pop, key, None)
    return stamps


def execute(plan: Plan, data: MarketData, first_position: int, last_position: int, *,
            from_depth: bool = False, cache: TermCache | None = None) -> dict[Term, Any]:
    """Compute the plan's roots for the dates at positions ``first .. last`` (inclusive).

    Returns each root's rows for those dates. ``from_depth`` computes every term from its
    own first computable bar (see step 3 of the module docstring).
    """
    last_bar = last_position - 1
    first_bar = first_position - 1
    start = {t: plan.depth[t] if from_depth else first_bar - plan.extra[t] for t in plan.order}
    assets = data.assets.to_numpy(dtype=object)
    remaining = dict(plan.uses)
    workspace: dict[Term, Any] = {}
    data_key = data.content_hash if cache is not None else ""
    for term in plan.order:
        first = start[term]
        value: Any  # an array, or a dict of arrays for a term with several outputs
        if isinstance(term, BoundColumn):
            value = term.load(data, first, last_bar)
        else:
            value = None if cache is None else cache.get((data_key, term), first, last_bar)
            if value is None:
                began = time.perf_counter()
                below = first - term.extra_rows
                inputs = [_rows(workspace[dep], below - start[dep]) for dep in term.inputs]
                mask = (None if term.mask is None
                        else _rows(workspace[term.mask], first - start[term.mask]))
                ctx = Context(data.index[first + 1:last_bar + 2], assets, below, data.assets,
                              data.index, first + 1)
                shape = (last_bar - first + 1, 1 if term.ndim == 1 else len(assets))
                value = _check_result(term, term._compute(inputs, mask, ctx), shape)
                if cache is not None:
                    cache.put((data_key, term), first, last_bar, value)
                logger.debug("computed %r over %d rows in %.4fs", term, shape[0],
                             time.perf_counter() - began)
        workspace[term] = value
        for dep in term.dependencies:
            remaining[dep] -= 1
            if remaining[dep] == 0:
                del workspace[dep]
    return {t: _rows(workspace[t], first_bar - start[t]) for t in plan.roots}


def _position(data: MarketData, when: Any, side: Literal["left", "right"]) -> int:
    stamp = pd.Timestamp(when)
    if data.index.tz is not None and stamp.tz is None:
        stamp = stamp.tz_localize(data.index.tz)
    return int(data.index.searchsorted(stamp, side=side))


def resolve_range(plan: Plan, data: MarketData, start: Any, end: Any) -> tuple[int, int]:
    """Positions of the first and last dates to compute, checked against the history."""
    first = plan.first_position if start is None else _position(data, start, "left")
    last = data.n_dates - 1 if end is None else _position(data, end, "right") - 1
    plan.check_start(data, first)
    if last < first or first >= data.n_dates:
        raise PipelineError(
            f"no date to compute between start={start} and end={end}: the data covers "
            f"{data.index[0].date()}..{data.index[-1].date()}.")
    return first, last


def run_pipeline(pipeline: Pipeline, data: MarketData, start: Any = None,
                 end: Any = None) -> pd.DataFrame:
    """Compute ``pipeline`` over the dates ``start .. end`` of ``data``.

    **Lookahead convention (Zipline's):** the row dated ``D`` is computed from data through
    the bar *before* ``D``. A factor's value for ``D`` never uses the close, high, low or
    volume of ``D`` itself; used as a target weight dated ``D`` it earns the return of
    ``D + 1`` (see :func:`foldwise.backtest`).

    Parameters
    ----------
    pipeline : Pipeline
        The columns (and screen) to compute.
    data : MarketData
        The panel the dataset columns read (``EquityPricing.close`` reads the field ``close``).
    start, end : date-like, optional
        First and last dates (inclusive; dates between bars round inward). ``start``
        defaults to the first date for which every column has enough history, ``end`` to
        the last bar.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(date, asset)`` (asset labels are the data's), one column per pipeline
        column in the pipeline's order; rows where the screen is False are dropped.
        Factors are ``float64``, filters ``bool``, classifiers ``int64`` (-1: no label).

    Raises
    ------
    WindowLengthError
        ``start`` leaves too few bars before it for a column's windows; the message names
        the terms that need them and the first date that works.
    UnknownColumnError
        A dataset column reads a field the data does not have.

    Examples
    --------
    >>> from foldwise.datasets import load_sp500
    >>> from foldwise.pipeline import Pipeline, run_pipeline
    >>> from foldwise.pipeline.factors import Returns, SimpleMovingAverage
    >>> from foldwise.pipeline.data import EquityPricing
    >>> momentum = Returns(window_length=20)
    >>> trend = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=50)
    >>> pipe = Pipeline({"momentum": momentum, "trend": trend}, screen=momentum.top(3))
    >>> out = run_pipeline(pipe, load_sp500(), "2022-12-01", "2022-12-28")
    >>> out.index.names, len(out) == 3 * 19
    (FrozenList(['date', 'asset']), True)
    """
    from foldwise.pipeline._pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise PipelineDefinitionError(
            f"run_pipeline expects a Pipeline, got {type(pipeline).__name__}; wrap terms as "
            "Pipeline({'name': term}).")
    if not isinstance(data, MarketData):
        raise PipelineDefinitionError(
            f"run_pipeline reads MarketData, got {type(data).__name__}; wrap a DataFrame with "
            "foldwise.MarketData.from_frame(df).")
    plan = Plan.build(pipeline.columns, pipeline.screen)
    first, last = resolve_range(plan, data, start, end)
    results = execute(plan, data, first, last)
    return to_frame(plan, results, data, first, last)


@dataclass(frozen=True)
class WideResult:
    """A pipeline computed over every date it can be, as ``(dates, assets)`` arrays.

    Attributes
    ----------
    first
        Position in the data of the first date computed (earlier dates lack history).
    columns
        Each pipeline column's values, rows ``first ..`` the last date.
    screen
        The screen's values over the same rows, or None without a screen.
    """

    first: int
    columns: dict[str, np.ndarray]
    screen: np.ndarray | None


def compute_wide(pipeline: Pipeline, data: MarketData, *,
                 cache: TermCache | None = term_cache) -> WideResult:
    """Compute ``pipeline`` over all dates with enough history, for a strategy.

    Each term is computed from its own first computable bar, so that a term shared by
    several runs (a factor a tuned parameter does not change) is served from ``cache``.
    """
    plan = Plan.build(pipeline.columns, pipeline.screen)
    first, last = resolve_range(plan, data, None, None)
    results = execute(plan, data, first, last, from_depth=True, cache=cache)
    screen = None if plan.screen is None else results[plan.screen]
    return WideResult(first, {name: results[t] for name, t in plan.outputs.items()}, screen)


def _codes(positions: np.ndarray, n_labels: int) -> np.ndarray:
    """Level codes in the integer type pandas keeps for ``n_labels`` labels (no recast)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_labels < np.iinfo(dtype).max:
            return positions.astype(dtype, copy=False)
    return positions.astype(np.int64, copy=False)


def to_frame(plan: Plan, results: dict[Term, Any], data: MarketData, first: int,
             last: int) -> pd.DataFrame:
    """The long ``(date, asset)`` DataFrame of the rows passing the screen.

    Cells are picked by their flat position in the ``(dates, assets)`` arrays, each column
    copied out once into an array the frame owns (no fancy 2-D indexing, no block
    consolidation); without a screen, an array the run computed and nobody else holds is
    handed to the frame as it is. Only ``run_pipeline`` calls this, on results that no
    cache keeps.
    """
    n_dates, n_assets = last - first + 1, data.n_assets
    picked: np.ndarray | None = None
    if plan.screen is None:
        rows = np.repeat(_codes(np.arange(n_dates), n_dates), n_assets)
        cols = np.tile(_codes(np.arange(n_assets), n_assets), n_dates)
    else:
        picked = np.flatnonzero(np.asarray(results[plan.screen]))
        rows, cols = np.divmod(picked, n_assets)
        rows, cols = _codes(rows, n_dates), _codes(cols, n_assets)
    # pandas accepts Index levels and integer-array codes (its documented use); the stubs
    # type them as plain sequences.
    index = pd.MultiIndex(levels=[data.index[first:last + 1], data.assets],  # type: ignore[list-item]
                          codes=[rows, cols],  # type: ignore[list-item]
                          names=["date", "asset"], verify_integrity=False)
    frame = {}
    handed: set[int] = set()
    for name, term in plan.outputs.items():
        value = np.asarray(results[term])
        if picked is not None:
            frame[name] = np.broadcast_to(value, (n_dates, n_assets)).reshape(-1)[picked]
        elif (value.shape == (n_dates, n_assets) and value.base is None
              and value.flags.owndata and id(value) not in handed):
            # An array this run computed and nothing else holds (not a view of the data,
            # not already another column's): the frame takes it instead of a copy.
            handed.add(id(value))
            value.flags.writeable = True
            frame[name] = value.reshape(-1)
        else:
            frame[name] = np.broadcast_to(value, (n_dates, n_assets)).reshape(-1).copy()
    return pd.DataFrame(frame, index=index, copy=False)
