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

6. **Assemble the output.** Without a screen, ``run_pipeline`` returns every cell as a
   DataFrame indexed by ``(date, asset)``; strategies read the wide arrays. With a screen
   (:func:`execute_screened`) the screen and the terms it needs are computed first, over
   every asset; the cells it keeps are then known, and a term that only the output
   columns need is computed at those cells alone when it can be (``Plan.late_terms``:
   returns, moving averages, ordinal ranks, exact arithmetic — each giving there the bits
   its whole computation gives), while every other output is cut down to the kept cells
   as soon as no term needs it whole.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections import Counter, OrderedDict
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
    disposable
        Positions of the inputs whose array the term may overwrite (an intermediate result
        this run computed, that nothing else holds or needs): an elementwise term can
        write its result there instead of into a new array.
    """

    dates: pd.DatetimeIndex
    assets: np.ndarray
    origin: int
    asset_index: pd.Index
    panel_dates: pd.DatetimeIndex | None = None
    offset: int = 0
    disposable: frozenset[int] = frozenset()

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


@dataclass(frozen=True)
class Cells:
    """The (date, asset) cells a screen keeps, in row-major order (date, then asset).

    Attributes
    ----------
    rows
        The row of each cell in the array it indexes (0: that array's first row).
    cols
        The column (asset position) of each cell.
    """

    rows: np.ndarray
    cols: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def shifted(self, offset: int) -> Cells:
        """The same cells in an array whose first row comes ``offset`` rows earlier."""
        return self if offset == 0 else Cells(self.rows + offset, self.cols)

    def take(self, whole: np.ndarray) -> np.ndarray:
        """The values of a ``(rows, assets)`` array at the cells (a single-column array
        gives each cell its row's value)."""
        if whole.shape[1] == 1:
            return whole[self.rows, 0]
        return whole[self.rows, self.cols]


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

    def screen_terms(self) -> set[Term]:
        """The screen and every term it is computed from (empty without a screen)."""
        if self.screen is None:
            return set()
        found = {self.screen}
        stack = [self.screen]
        while stack:
            for dep in stack.pop().dependencies:
                if dep not in found:
                    found.add(dep)
                    stack.append(dep)
        return found

    def late_terms(self) -> set[Term]:
        """The terms a screened run computes at the screen's cells alone.

        A term qualifies if the screen does not need it, it can be computed cell by cell
        (``Term._cell_inputs``), and every term using it qualifies too and takes it at
        cells (not as a mask, nor as a window or a cross-section): what only the output
        columns need, and only where the screen keeps them.
        """
        needed = self.screen_terms()
        if not needed:
            return set()
        users: dict[Term, list[Term]] = {t: [] for t in self.order}
        for term in self.order:
            for dep in set(term.dependencies):
                users[dep].append(term)
        late: set[Term] = set()
        for term in reversed(self.order):  # every user of a term comes before it
            if (term in needed or isinstance(term, BoundColumn) or term.ndim != 2
                    or term._cell_inputs() is None):
                continue
            if all(user in late and _takes_cells(user, term) for user in users[term]):
                late.add(term)
        return late

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


def _takes_cells(user: Term, term: Term) -> bool:
    """Whether ``user`` takes ``term`` at cells wherever it uses it."""
    accepts = user._cell_inputs()
    return (accepts is not None and term is not user.mask
            and all(ok for dep, ok in zip(user.inputs, accepts, strict=True) if dep is term))


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


def _checked_cells(label: str, dtype: np.dtype, array: Any, n_cells: int) -> np.ndarray:
    """A term's values at ``n_cells`` cells, checked (one per cell, the term's dtype)."""
    array = np.asarray(array)
    if array.shape != (n_cells,) or array.dtype != dtype:
        raise PipelineOutputError(
            f"{label} produced an array of shape {array.shape} and dtype {array.dtype} at "
            f"{n_cells} cells; expected shape ({n_cells},) and dtype {dtype}.")
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


class _Run:
    """One execution of a plan: each term's first row, the live results, and how many
    terms still need each of them (a result nobody needs any more is dropped)."""

    def __init__(self, plan: Plan, data: MarketData, first_position: int, last_position: int,
                 from_depth: bool, reuse: bool = True) -> None:
        self.plan = plan
        self.reuse = reuse  # whether a term may overwrite an intermediate it alone needs
        self.data = data
        self.first_bar = first_position - 1
        self.last_bar = last_position - 1
        self.start = {t: plan.depth[t] if from_depth else self.first_bar - plan.extra[t]
                      for t in plan.order}
        self.assets = data.assets.to_numpy(dtype=object)
        self.remaining = dict(plan.uses)
        self.workspace: dict[Term, Any] = {}
        #: Terms whose result holds their values at a screen's cells (1-D), not whole.
        self.at_cells: set[Term] = set()

    def arguments(self, term: Term) -> tuple[list[Any], np.ndarray | None, Context]:
        """``term``'s inputs cut to the rows it needs, its mask and its context."""
        first = self.start[term]
        below = first - term.extra_rows
        disposable = frozenset(i for i, dep in enumerate(term.inputs)
                               if self._disposable(term, dep, below))
        inputs = [self.workspace[dep] if dep in self.at_cells
                  else _rows(self.workspace[dep], below - self.start[dep])
                  for dep in term.inputs]
        mask = (None if term.mask is None
                else _rows(self.workspace[term.mask], first - self.start[term.mask]))
        ctx = Context(self.data.index[first + 1:self.last_bar + 2], self.assets, below,
                      self.data.assets, self.data.index, first + 1, disposable)
        return inputs, mask, ctx

    def _disposable(self, term: Term, dep: Term, below: int) -> bool:
        """Whether ``term`` may overwrite ``dep``'s whole array: ``term`` is its last user
        (and uses it once), this run computed it (no data, no cache), ``term`` gets it as
        it is (not a slice of its rows), and nothing else holds it — not even a view (a
        view keeps a reference to it, which ``sys.getrefcount`` counts) — nor its memory:
        the array owns it, or its owner is no array (numba's arrays have one) and nothing
        else holds that owner."""
        if (not self.reuse or self.remaining[dep] != 1 or dep in self.at_cells
                or isinstance(dep, BoundColumn) or below != self.start[dep]
                or term.dependencies.count(dep) != 1):
            return False
        value = self.workspace[dep]
        if not isinstance(value, np.ndarray) or isinstance(value.base, np.ndarray):
            return False
        # References to the array: the workspace's, this local's and getrefcount's
        # argument; to its owner: the array's and the argument.
        return sys.getrefcount(value) == 3 and (value.base is None
                                                or sys.getrefcount(value.base) == 2)

    def shape(self, term: Term) -> tuple[int, int]:
        return (self.last_bar - self.start[term] + 1,
                1 if term.ndim == 1 else len(self.assets))

    def compute_whole(self, term: Term) -> Any:
        """``term`` over all its rows and assets (a dataset column: a view of the data)."""
        if isinstance(term, BoundColumn):
            return term.load(self.data, self.start[term], self.last_bar)
        began = time.perf_counter()
        inputs, mask, ctx = self.arguments(term)
        shape = self.shape(term)
        value = _check_result(term, term._compute(inputs, mask, ctx), shape)
        logger.debug("computed %r over %d rows in %.4fs", term, shape[0],
                     time.perf_counter() - began)
        return value

    def compute_cells(self, term: Term, cells: Cells) -> np.ndarray:
        """``term``'s values at ``cells`` alone, or, if the term declines, whole and then
        taken at ``cells``."""
        began = time.perf_counter()
        inputs, mask, ctx = self.arguments(term)
        value = term._compute_cells(inputs, mask, ctx, cells)
        if value is None:
            if any(dep in self.at_cells for dep in term.inputs):  # pragma: no cover - a bug
                raise PipelineError(f"{term!r} took inputs at cells, then declined them.")
            value = cells.take(_check_result(term, term._compute(inputs, mask, ctx),
                                             self.shape(term)))
        else:
            value = _checked_cells(repr(term), term.dtype, value, len(cells))
        self.at_cells.add(term)
        logger.debug("computed %r at %d cells in %.4fs", term, len(cells),
                     time.perf_counter() - began)
        return value

    def release(self, term: Term) -> list[Term]:
        """Count ``term``'s use of its dependencies; drop those nobody needs any more and
        return the others."""
        alive = []
        for dep in term.dependencies:
            self.remaining[dep] -= 1
            if self.remaining[dep] == 0:
                del self.workspace[dep]
            else:
                alive.append(dep)
        return alive


def execute(plan: Plan, data: MarketData, first_position: int, last_position: int, *,
            from_depth: bool = False, cache: TermCache | None = None) -> dict[Term, Any]:
    """Compute the plan's roots for the dates at positions ``first .. last`` (inclusive).

    Returns each root's rows for those dates. ``from_depth`` computes every term from its
    own first computable bar (see step 3 of the module docstring).
    """
    # A cached result may be served again: no term overwrites one.
    run = _Run(plan, data, first_position, last_position, from_depth, reuse=cache is None)
    data_key = data.content_hash if cache is not None else ""
    for term in plan.order:
        if cache is None or isinstance(term, BoundColumn):
            value = run.compute_whole(term)
        else:
            value = cache.get((data_key, term), run.start[term], run.last_bar)
            if value is None:
                value = run.compute_whole(term)
                cache.put((data_key, term), run.start[term], run.last_bar, value)
        run.workspace[term] = value
        run.release(term)
    return {t: _rows(run.workspace[t], run.first_bar - run.start[t]) for t in plan.roots}


def execute_screened(plan: Plan, data: MarketData, first_position: int,
                     last_position: int) -> tuple[Cells, dict[Term, np.ndarray]]:
    """Compute a screened plan's roots at the cells its screen keeps (step 6).

    The screen and the terms it needs are computed first, over every asset; then the
    terms only the output columns need are computed at the kept cells alone where they
    can be (``Plan.late_terms``), and every other root is cut down to those cells as soon
    as no term needs it whole, which frees its whole array early. Returns the cells and
    each root's values at them (1-D, one per cell).
    """
    if plan.screen is None:  # pragma: no cover - run_pipeline checks
        raise PipelineError("execute_screened needs a pipeline with a screen.")
    run = _Run(plan, data, first_position, last_position, from_depth=False)
    needed = plan.screen_terms()
    late = plan.late_terms()
    order = [t for t in plan.order if t in needed] + [t for t in plan.order if t not in needed]
    root_uses = Counter(plan.roots)
    n_dates, n_assets = last_position - first_position + 1, data.n_assets
    cells: Cells | None = None

    def settle(term: Term) -> None:
        # A root that only the output needs any more keeps its cells alone.
        if (cells is not None and term in root_uses and term not in run.at_cells
                and run.remaining[term] == root_uses[term]):
            offset = run.first_bar - run.start[term]
            run.workspace[term] = cells.shifted(offset).take(run.workspace[term])
            run.at_cells.add(term)

    for term in order:
        if term in late:
            assert cells is not None  # the screen comes first
            run.workspace[term] = run.compute_cells(
                term, cells.shifted(run.first_bar - run.start[term]))
        else:
            run.workspace[term] = run.compute_whole(term)
        if term is plan.screen:
            kept = _rows(run.workspace[term], run.first_bar - run.start[term])
            rows, cols = np.divmod(np.flatnonzero(np.broadcast_to(kept, (n_dates, n_assets))),
                                   n_assets)
            cells = Cells(rows, cols)
            for done in list(run.workspace):
                settle(done)
        settle(term)
        for dep in run.release(term):
            settle(dep)
    assert cells is not None
    return cells, {t: run.workspace[t] for t in plan.roots}


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
    if plan.screen is not None:
        cells, values = execute_screened(plan, data, first, last)
        return cells_frame(plan, cells, values, data, first, last)
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


def _frame(plan: Plan, columns: dict[str, np.ndarray], data: MarketData, first: int, last: int,
           rows: np.ndarray, cols: np.ndarray) -> pd.DataFrame:
    """The long DataFrame of ``columns`` (1-D, one value per cell) at the cells
    ``(rows, cols)`` of the dates ``first .. last``."""
    n_dates = last - first + 1
    # pandas accepts Index levels and integer-array codes (its documented use); the stubs
    # type them as plain sequences.
    index = pd.MultiIndex(levels=[data.index[first:last + 1], data.assets],  # type: ignore[list-item]
                          codes=[_codes(rows, n_dates), _codes(cols, data.n_assets)],  # type: ignore[list-item]
                          names=["date", "asset"], verify_integrity=False)
    return pd.DataFrame(columns, index=index, copy=False)


def cells_frame(plan: Plan, cells: Cells, values: dict[Term, np.ndarray], data: MarketData,
                first: int, last: int) -> pd.DataFrame:
    """The long ``(date, asset)`` DataFrame of a screened run (:func:`execute_screened`).

    Each column takes its root's array of values at the cells as it is, unless another
    column already did or it is read-only (then a copy): the frame owns what it holds.
    """
    columns = {}
    handed: set[int] = set()
    for name, term in plan.outputs.items():
        value = values[term]
        if value.flags.writeable and id(value) not in handed:
            handed.add(id(value))
            columns[name] = value
        else:
            columns[name] = value.copy()
    return _frame(plan, columns, data, first, last, cells.rows, cells.cols)


def to_frame(plan: Plan, results: dict[Term, Any], data: MarketData, first: int,
             last: int) -> pd.DataFrame:
    """The long ``(date, asset)`` DataFrame of an unscreened run: every cell.

    An array the run computed and nothing else holds (not a view of the data, not already
    another column's) is handed to the frame as it is, other columns are copied out once
    (no block consolidation). Only ``run_pipeline`` calls this, on results that no cache
    keeps.
    """
    n_dates, n_assets = last - first + 1, data.n_assets
    rows = np.repeat(_codes(np.arange(n_dates), n_dates), n_assets)
    cols = np.tile(_codes(np.arange(n_assets), n_assets), n_dates)
    columns = {}
    handed: set[int] = set()
    for name, term in plan.outputs.items():
        value = np.asarray(results[term])
        if (value.shape == (n_dates, n_assets) and value.base is None
                and value.flags.owndata and id(value) not in handed):
            handed.add(id(value))
            value.flags.writeable = True
            columns[name] = value.reshape(-1)
        else:
            columns[name] = np.broadcast_to(value, (n_dates, n_assets)).reshape(-1).copy()
    return _frame(plan, columns, data, first, last, rows, cols)
