"""Data-snooping statistics of an optimization: after the search, is the best better than a
benchmark at all? (:meth:`WalkForwardResult.snooping`.)

The tests of :mod:`foldwise.snooping` run on three kinds of window, each a returns matrix of
the parameter sets that competed there against the benchmark over the same bars:

``full history``
    Every distinct parameter set the study evaluated (causal strategies: their
    full-history runs, :meth:`WalkForwardResult.returns_matrix`) over the whole data. The
    classic setting of White's Reality Check: a universe of rules tried on one history.
``fold k in sample``
    The sets fold ``k`` tried (walk-forward: its study's trials; cross-validated: the trials
    evaluated on that fold) over its training bars: was the fold's choice better than the
    benchmark once its own search is paid for? A per-fold (``causal=False``) strategy uses
    its per-fold training runs.
``out of sample``
    Walk-forward only: the stitched out-of-sample curve against the benchmark over the
    test bars, a test of one series. Each fold chose its set before its test window, so
    the search is already paid for; what is left is whether the procedure's out-of-sample
    returns beat the benchmark's beyond their noise.

Per window: Hansen's SPA p-values and the sets Romano & Wolf's StepM finds superior. For
the full history also the haircut Sharpe ratio (Harvey & Liu; Holm and BHY with the other
sets' own Sharpe ratios) and the minimum backtest length (Bailey et al.) of the best set
by full-history Sharpe ratio, next to the length of the history.

Rows where a set or the benchmark has no return (NaN) are left out of a window. Each
window's bootstrap is seeded by its own child of ``seed`` (window ``i``: the first child
of ``SeedSequence(seed)``'s child ``spawn_key=(i,)``), so the same study and seed give the
same table. SPA and StepM run on the same resamples of the window
(:func:`~foldwise.snooping.spa_stepm`: the block length, the long-run variances and the
first pass over the resamples serve both tests).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise._exact_json import (
    MalformedJSONError,
    UnsupportedValueError,
    encode,
    fields_from_json,
)
from foldwise._version import __version__
from foldwise.errors import FoldwiseError
from foldwise.records import StoredTrial
from foldwise.snooping import (
    MIN_OBSERVATIONS,
    HaircutResult,
    SnoopingError,
    SPAResult,
    StepMResult,
    haircut_sharpe_ratio,
    min_backtest_length,
    spa_stepm,
)
from foldwise.splits import ranges_to_positions

from ._returns import distinct_full_runs, first_full_runs
from ._runs import run_returns

if TYPE_CHECKING:
    from ._result import WalkForwardResult

__all__ = ["BENCHMARKS", "MEANINGS", "REPORT_BOOTSTRAP", "SnoopingReport", "snooping_report",
           "snooping_text"]

#: The named benchmarks of :meth:`WalkForwardResult.snooping`.
BENCHMARKS = ("auto", "flat", "buy_and_hold", "equal_weight")

#: Replications of the data-snooping tests in the text and HTML reports (``foldwise show``):
#: half of :meth:`WalkForwardResult.snooping`'s 1,000, which halves the section's
#: bootstrap (a p-value near 0.05 is then within about +-0.02 of its limit, at two standard
#: errors, instead of +-0.014). The reports say how many were run; call
#: ``result.snooping()`` for the full count.
REPORT_BOOTSTRAP = 500
_DEFAULT_BOOTSTRAP = 1000  # WalkForwardResult.snooping's default

FULL = "full history"
OOS = "out of sample"

COLUMNS = ["window", "start", "end", "n_sets", "n_obs", "best", "best_excess",
           "spa_pvalue", "spa_lower", "spa_upper", "superior", "block_length"]

#: The format number :meth:`SnoopingReport.to_json` writes and :meth:`SnoopingReport.from_json`
#: reads (1: this layout).
JSON_FORMAT = 1


@dataclass(frozen=True)
class SnoopingReport:
    """Data-snooping statistics of an optimization (see the module docstring).

    Attributes
    ----------
    benchmark
        What the sets were tested against (``"flat"``, ``"equal_weight"``,
        ``"buy_and_hold"`` or ``"series"``).
    table
        One row per window (``full history``, ``fold k in sample``, ``out of sample``):
        its first and last date, ``n_sets`` and ``n_obs``, the ``best`` set's parameters
        and its annualized mean return in excess of the benchmark (``best_excess``), the
        SPA p-values (consistent ``spa_pvalue``, ``spa_lower``, ``spa_upper``), the number
        of sets StepM finds ``superior`` at ``alpha``, and the bootstrap's mean block length.
        A window too short to test (fewer than 10 bars) has NaN statistics.
    spa, stepm
        Per window, the full :class:`~foldwise.snooping.SPAResult` and
        :class:`~foldwise.snooping.StepMResult`.
    haircut
        The haircut Sharpe ratio of the best set by full-history Sharpe ratio among the
        ``n_sets`` distinct sets (None without full-history runs or a positive best Sharpe).
    best_sharpe
        That set's annualized full-history Sharpe ratio.
    min_backtest_length, backtest_years
        Years of history ``n_sets`` skill-less trials need before their best shows
        ``best_sharpe`` by luck alone, and the years the study's history has: a history
        shorter than the minimum cannot tell that Sharpe ratio from luck.
    n_sets
        Distinct parameter sets in the full-history window.
    alpha, n_bootstrap, seed
        StepM's family-wise error rate, the replications and the seed.
    notes
        Why a window or statistic is missing.
    """

    benchmark: str
    table: pd.DataFrame
    spa: dict[str, SPAResult] = field(repr=False)
    stepm: dict[str, StepMResult] = field(repr=False)
    haircut: HaircutResult | None
    best_sharpe: float
    min_backtest_length: float
    backtest_years: float
    n_sets: int
    alpha: float
    n_bootstrap: int
    seed: int
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """The table and the full-history haircut as text, each figure with a sentence."""
        return "\n".join(summary_lines(self))

    def __str__(self) -> str:
        return self.summary()

    def to_json(self) -> dict[str, Any]:
        """This report as plain JSON, which :meth:`from_json` reads back exactly: to store a
        computed report and read it back instead of running the bootstrap again.

        Returns
        -------
        dict
            ``{"format": 1, ...}`` and one entry per field, holding only dicts, lists, str,
            int, float, bool and None (``json.dumps`` writes it; NaN and infinities as
            ``NaN`` and ``Infinity``). The table keeps its index, columns, dtypes and
            values (dates, strings, missing values); ``spa``, ``stepm`` and ``haircut``
            are their results' :meth:`~foldwise.snooping.SPAResult.to_json`; floats keep
            their bits.

        Raises
        ------
        TypeError
            A value of a type the format cannot give back exactly (a set label other than
            None, bool, int, float, str, a tuple of these, a numpy scalar or a pandas
            Timestamp; see :mod:`foldwise._exact_json`).
        """
        out: dict[str, Any] = {"format": JSON_FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("spa", "stepm"):
                out[f.name] = {_window_key(name, f.name): result.to_json()
                               for name, result in value.items()}
            elif f.name == "haircut":
                out[f.name] = None if value is None else value.to_json()
            else:
                out[f.name] = encode(value, f"SnoopingReport.{f.name}")
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Self:
        """The report :meth:`to_json` wrote, every value of its type and to the last bit
        (``summary()`` prints the same text).

        Parameters
        ----------
        value
            :meth:`to_json`'s dict (as ``json.loads`` reads it back).

        Returns
        -------
        SnoopingReport

        Raises
        ------
        SnoopingError
            ``value`` has no format number or one this foldwise does not read, or was not
            written by :meth:`to_json` (a ``ValueError``).

        Examples
        --------
        A format this version does not know is refused:

        >>> import json
        >>> text = json.dumps({"format": 99})
        >>> SnoopingReport.from_json(json.loads(text))
        Traceback (most recent call last):
        ...
        foldwise.snooping._errors.SnoopingError: the stored data-snooping report has format 99, ...
        """
        if not isinstance(value, Mapping):
            raise SnoopingError(
                f"a stored data-snooping report must be the dict SnoopingReport.to_json() "
                f"wrote, got {type(value).__name__}.")
        found = value.get("format")
        if isinstance(found, bool) or not isinstance(found, int):
            raise SnoopingError(
                f"the stored data-snooping report has no format number ({found!r}); it was "
                "not written by SnoopingReport.to_json(). Compute the report again with "
                "result.snooping().")
        if found != JSON_FORMAT:
            newer = (" (newer than it: upgrade foldwise, pip install -U foldwise, to read it, "
                     "or compute the report again with result.snooping())"
                     if found > JSON_FORMAT else
                     "; compute the report again with result.snooping()")
            raise SnoopingError(
                f"the stored data-snooping report has format {found}, which this foldwise "
                f"{__version__} does not read: it reads format {JSON_FORMAT}{newer}.")
        try:
            kwargs = fields_from_json(cls, {k: v for k, v in value.items() if k != "format"},
                                      raw=("spa", "stepm", "haircut"))
            kwargs["spa"] = {name: SPAResult.from_json(v) for name, v in kwargs["spa"].items()}
            kwargs["stepm"] = {name: StepMResult.from_json(v)
                               for name, v in kwargs["stepm"].items()}
            if kwargs["haircut"] is not None:
                kwargs["haircut"] = HaircutResult.from_json(kwargs["haircut"])
        except (MalformedJSONError, AttributeError) as exc:
            raise SnoopingError(f"the stored data-snooping report is malformed: {exc}") from exc
        return cls(**kwargs)


def _window_key(name: Any, field_name: str) -> str:
    if type(name) is not str:
        raise UnsupportedValueError(
            f"cannot write SnoopingReport.{field_name} as exact JSON: its keys must be window "
            f"names (str), got {type(name).__name__} {name!r}.")
    return name


# --- the benchmark ----------------------------------------------------------------------------


def _benchmark_series(result: WalkForwardResult, benchmark: Any
                      ) -> tuple[str, pd.Series | None]:
    """The benchmark's name and its per-period returns over the study's dates (None: 0)."""
    if isinstance(benchmark, (pd.Series, np.ndarray, list)):
        if not isinstance(benchmark, pd.Series):
            raise SnoopingError(
                "pass the benchmark as a pandas Series indexed by date (its values are "
                "matched to the study's bars by date), or one of "
                f"{', '.join(repr(b) for b in BENCHMARKS)}.")
        return "series", benchmark.astype(float)
    if benchmark not in BENCHMARKS:
        raise SnoopingError(
            f"unknown benchmark {benchmark!r}; use one of "
            f"{', '.join(repr(b) for b in BENCHMARKS)} or a Series of per-period returns "
            "indexed by date.")
    if benchmark == "auto":
        benchmark = "equal_weight" if result.manifest.benchmark is not None else "flat"
    if benchmark == "flat":
        return "flat", None
    if benchmark == "buy_and_hold" and result.manifest.data.n_assets != 1:
        raise SnoopingError(
            f"benchmark='buy_and_hold' needs a single-asset study; this one trades "
            f"{result.manifest.data.n_assets} assets. Use 'equal_weight' (the universe held "
            "in equal weights) or pass the benchmark's returns as a Series.")
    run = result.benchmark
    if run is None:
        raise SnoopingError(
            f"this study recorded no {benchmark.replace('_', '-')} benchmark run; use "
            "benchmark='flat' or pass the benchmark's returns as a Series.")
    # one asset held at weight 1 throughout is both the equal-weight universe and buy and hold
    return benchmark, run.returns


def _aligned(bench: pd.Series | None, dates: pd.Index, window: str) -> np.ndarray:
    if bench is None:
        return np.zeros(len(dates))
    values = bench.reindex(dates)
    missing = int(values.isna().sum())
    if missing:
        first = dates[np.flatnonzero(values.isna().to_numpy())[0]]
        raise SnoopingError(
            f"the benchmark has no return on {missing} of the {len(dates)} bars of the "
            f"{window} window (the first {first}); pass a series that covers the study's "
            "dates.")
    return values.to_numpy(dtype=np.float64)


# --- the windows --------------------------------------------------------------------------------


def _label(key: str) -> str:
    """``fast=10, slow=50`` from a canonical-JSON parameter set."""
    try:
        params = json.loads(key)
    except (TypeError, ValueError):
        return str(key)
    if not isinstance(params, dict):
        return str(key)
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _distinct_complete(trials: Sequence[StoredTrial], fold: int) -> list[StoredTrial]:
    """The first completed trial of every distinct set with an evaluation on ``fold``."""
    seen: set[str] = set()
    first = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE or fold not in trial.record.evaluations:
            continue
        key = canonical_json(trial.params)
        if key not in seen:
            seen.add(key)
            first.append(trial)
    return first


@dataclass
class _Window:
    name: str
    returns: np.ndarray          # T x N
    benchmark: np.ndarray        # T
    dates: pd.Index
    labels: Sequence[Hashable]


def _complete_rows(window: _Window) -> _Window:
    keep = ~(np.isnan(window.returns).any(axis=1) | np.isnan(window.benchmark))
    if keep.all():
        return window
    return _Window(window.name, window.returns[keep], window.benchmark[keep],
                   window.dates[keep], window.labels)


def _full_columns(result: WalkForwardResult, full: pd.DataFrame | None) -> dict[str, int]:
    """The full-history run key of each set of ``full`` -> its column."""
    if full is None or full.shape[1] == 0:
        return {}
    keys = first_full_runs(result.record.trials)
    if len(keys) == full.shape[1]:
        # as many runs as columns: no two runs share a set (distinct_full_runs keeps one
        # run per set) and every set has its column, in the order of the runs; the sets'
        # parameters need not be serialized again to match them (0.06 s for 4,824 sets)
        return {key: column for column, key in enumerate(keys)}
    position = {name: i for i, name in enumerate(full.columns)}
    runs = distinct_full_runs(result.record.trials, result.manifest)
    return {key: position[name] for name, key in runs.items() if name in position}


def _fold_sets(trials: Sequence[StoredTrial], fold: int, column_of: Mapping[str, int]
               ) -> list[int] | None:
    """The columns of ``full`` of the distinct sets ``fold`` completed, in the order they
    were first tried (equal full-history run keys, equal sets); None when one of them has
    no column."""
    columns: dict[str, int] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        evaluation = trial.record.evaluations.get(fold)
        if evaluation is None:
            continue
        key = evaluation.runs.get("full")
        if key is None or key not in column_of:
            return None
        columns.setdefault(key, column_of[key])
    return list(columns.values())


def _fold_windows(result: WalkForwardResult, bench: pd.Series | None,
                  full: pd.DataFrame | None, dates: pd.Index | None) -> list[_Window]:
    windows = []
    trials_by_key: Mapping[int | None, Sequence[StoredTrial]] = result.record.trials
    column_of = _full_columns(result, full)
    values = None if full is None else full.to_numpy()
    # the labels as a list: indexing the frame's Index once per set of every fold cost
    # 0.1 s for 20 folds of ~480 sets (an Arrow-backed string Index)
    names = [] if full is None else list(full.columns)
    for record in result.fold_records:
        trials = trials_by_key.get(None if result.mode == "cv" else record.number, ())
        positions = ranges_to_positions(np.asarray(record.train))
        name = f"fold {record.number} in sample"
        columns = _fold_sets(trials, record.number, column_of) if column_of else None
        if columns is not None and values is not None and dates is not None and full is not None:
            # the sets' full-history runs, already read: the window's rows of their columns
            if not columns:
                continue
            matrix = values[np.ix_(positions, np.asarray(columns, dtype=np.intp))]
            window_dates = dates[positions]
            keys = [names[c] for c in columns]
        else:
            sets = _distinct_complete(trials, record.number)
            if not sets:
                continue
            keys = [canonical_json(t.params) for t in sets]
            evaluations = [t.record.evaluations[record.number] for t in sets]
            run_keys = [e.run_key("train") for e in evaluations]
            first = run_returns(result.loader, run_keys[0])
            window_dates = first.index[positions - evaluations[0].offset]
            columns_ = [run_returns(result.loader, key).net[positions - e.offset]
                        for key, e in zip(run_keys, evaluations, strict=True)]
            matrix = np.column_stack(columns_)
        windows.append(_Window(name, matrix, _aligned(bench, window_dates, name),
                               window_dates, keys))
    return windows


def _test(window: _Window, *, alpha: float, n_bootstrap: int, block_length: float | str,
          seed: np.random.SeedSequence, periods_per_year: float
          ) -> tuple[dict[str, Any], SPAResult | None, StepMResult | None]:
    window = _complete_rows(window)
    row: dict[str, Any] = {
        "window": window.name, "start": window.dates[0] if len(window.dates) else pd.NaT,
        "end": window.dates[-1] if len(window.dates) else pd.NaT,
        "n_sets": window.returns.shape[1], "n_obs": window.returns.shape[0],
        "best": None, "best_excess": math.nan, "spa_pvalue": math.nan,
        "spa_lower": math.nan, "spa_upper": math.nan, "superior": math.nan,
        "block_length": math.nan}
    if window.returns.shape[0] < MIN_OBSERVATIONS or window.returns.shape[1] == 0:
        return row, None, None
    spa, found = spa_stepm(window.returns, window.benchmark, alpha=alpha,
                           n_bootstrap=n_bootstrap, block_length=block_length,
                           seed=seed.spawn(1)[0])
    best = window.labels[spa.best] if isinstance(spa.best, int) else spa.best
    row.update({"best": _label(str(best)), "best_excess": spa.best_mean * periods_per_year,
                "spa_pvalue": spa.pvalue, "spa_lower": spa.pvalue_lower,
                "spa_upper": spa.pvalue_upper, "superior": len(found.superior),
                "block_length": spa.block_length})
    return row, spa, found


def snooping_report(result: WalkForwardResult, benchmark: Any = "auto", *,
                    n_bootstrap: int = 1000, block_length: float | str = "auto",
                    seed: int = 0, alpha: float = 0.05,
                    max_configurations: int | None = None) -> SnoopingReport:
    """The :class:`SnoopingReport` of ``result`` (see
    :meth:`WalkForwardResult.snooping`)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SnoopingError(f"seed must be an int >= 0, got {seed!r}.")
    name, bench = _benchmark_series(result, benchmark)
    periods_per_year = float(result.manifest.settings.periods_per_year)
    notes: list[str] = []
    full: pd.DataFrame | None = None
    if result.manifest.strategy.causal:
        full = result.returns_matrix(max_configurations)
    else:
        notes.append("no full-history window, haircut or minimum backtest length: a "
                     "per-fold (causal=False) strategy has runs per fold only")
    windows: list[_Window] = []
    dates = None if full is None else full.index
    if full is not None and full.shape[1] > 0:
        windows.append(_Window(FULL, full.to_numpy(), _aligned(bench, full.index, FULL),
                               full.index, list(full.columns)))
    windows += _fold_windows(result, bench, full, dates)
    if result.mode == "walk_forward" and any(r.best is not None for r in result.fold_records):
        try:
            oos = result.oos_result
        except FoldwiseError as exc:
            notes.append(f"no out-of-sample window: {exc}")
        else:
            windows.append(_Window(OOS, oos.arrays.net[:, None],
                                   _aligned(bench, oos.returns.index, OOS),
                                   oos.returns.index, ["the stitched out-of-sample curve"]))
    root = np.random.SeedSequence(int(seed))
    rows, spas, stepms = [], {}, {}
    for number, window in enumerate(windows):
        child = np.random.SeedSequence(root.entropy, spawn_key=(number,))
        row, spa, found = _test(window, alpha=alpha, n_bootstrap=n_bootstrap,
                                block_length=block_length, seed=child,
                                periods_per_year=periods_per_year)
        if window.name == OOS:
            row["best"] = "stitched curve"
        rows.append(row)
        if spa is not None and found is not None:
            spas[window.name] = spa
            stepms[window.name] = found
        else:
            notes.append(f"{window.name}: {row['n_obs']} bars, too few to test "
                         f"(at least {MIN_OBSERVATIONS})")
    table = pd.DataFrame(rows, columns=COLUMNS)
    haircut, best_sharpe, minbtl, years, n_sets = _haircut(full, periods_per_year, notes)
    return SnoopingReport(
        benchmark=name, table=table, spa=spas, stepm=stepms, haircut=haircut,
        best_sharpe=best_sharpe, min_backtest_length=minbtl, backtest_years=years,
        n_sets=n_sets, alpha=alpha, n_bootstrap=n_bootstrap, seed=int(seed),
        notes=tuple(notes))


#: Columns of the returns matrix whose moments are taken at once (a C-order copy of
#: ``T x 64`` values: 1 MB for 2,000 bars).
_MOMENT_COLUMNS = 64


def _complete_moments(values: np.ndarray, min_rows: int = 3
                      ) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """The rows of ``values`` without a NaN: their number, and each column's mean and
    standard deviation (``ddof=1``) over them (None for fewer than ``min_rows``).

    The numbers of ``values[complete].mean(axis=0)`` and ``.std(axis=0, ddof=1)``, bit for
    bit, without copying the whole matrix into C order (0.4 s for 2,148 x 4,824 column-
    major returns): a block of columns at a time is copied into C order, where numpy sums
    each column row after row as it does in the whole copy. Blocks are at least two
    columns wide (a lone column is contiguous, and numpy would sum it pairwise)."""
    n_rows, n_columns = values.shape
    bad = np.zeros(n_rows, dtype=bool)
    for lo in range(0, n_columns, 16 * _MOMENT_COLUMNS):
        bad |= np.isnan(values[:, lo:lo + 16 * _MOMENT_COLUMNS]).any(axis=1)
    n_obs = n_rows - int(bad.sum())
    if n_obs < min_rows:
        return n_obs, None, None
    keep = ~bad if n_obs < n_rows else None
    mean, std = np.empty(n_columns), np.empty(n_columns)
    n_blocks = max(1, n_columns // _MOMENT_COLUMNS)
    edges = [n_columns * i // n_blocks for i in range(n_blocks + 1)]
    for lo, hi in itertools.pairwise(edges):
        block = values[:, lo:hi]
        block = np.ascontiguousarray(block) if keep is None else block[keep]
        mean[lo:hi] = block.mean(axis=0)
        std[lo:hi] = block.std(axis=0, ddof=1)
    return n_obs, mean, std


def _haircut(full: pd.DataFrame | None, periods_per_year: float, notes: list[str]
             ) -> tuple[HaircutResult | None, float, float, float, int]:
    """Haircut Sharpe ratio and minimum backtest length of the best full-history set."""
    if full is None or full.shape[1] == 0:
        return None, math.nan, math.nan, math.nan, 0
    n_obs, mean, std = _complete_moments(full.to_numpy())
    n_sets = full.shape[1]
    years = n_obs / periods_per_year
    if mean is None or std is None:  # fewer than 3 complete rows
        return None, math.nan, math.nan, years, n_sets
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(std > 1e-14, mean / std, np.nan) * math.sqrt(periods_per_year)
    usable = np.isfinite(sharpes)
    if not usable.any():
        notes.append("no haircut: no set has a defined Sharpe ratio")
        return None, math.nan, math.nan, years, n_sets
    best = int(np.nanargmax(sharpes))
    best_sharpe = float(sharpes[best])
    if best_sharpe <= 0:
        notes.append("no haircut or minimum backtest length: no set has a Sharpe ratio above 0")
        return None, best_sharpe, math.nan, years, n_sets
    others = np.delete(sharpes, best)
    others = others[np.isfinite(others)]
    haircut = haircut_sharpe_ratio(best_sharpe, n_obs, others.size + 1,
                                   periods_per_year=periods_per_year, other_sharpes=others)
    return (haircut, best_sharpe, min_backtest_length(others.size + 1, best_sharpe), years,
            n_sets)


# --- as text ------------------------------------------------------------------------------------


def _p(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.3f}"


#: One sentence per figure, shared by the text and the HTML report.
MEANINGS = {
    "spa": ("SPA p-value (Hansen): the probability that the best of the window's sets would "
            "look this much better than the benchmark if none of them were; small (below "
            "0.05) means the best beats the benchmark even after the search."),
    "superior": ("StepM (Romano-Wolf): how many sets beat the benchmark with a {alpha:.0%} "
                 "chance, at most, that any of them is a false discovery."),
    "haircut": ("Haircut Sharpe ratio (Harvey-Liu): the Sharpe ratio of the set with the "
                "best full-history Sharpe ratio once the {n_sets} sets tried are counted "
                "(Bonferroni / Holm / BHY); the haircut is the share of it attributed to the "
                "search."),
    "minbtl": ("Minimum backtest length (Bailey et al.): years of history below which "
               "{n_sets} skill-less trials are expected to show the best's Sharpe ratio by "
               "luck alone; the study has {years:.1f}."),
}


def summary_lines(report: SnoopingReport) -> list[str]:
    """The data-snooping section of the text report."""
    fewer = (f"; result.snooping() runs {_DEFAULT_BOOTSTRAP}"
             if report.n_bootstrap < _DEFAULT_BOOTSTRAP else "")
    lines = [f"data snooping: the parameter sets against the {report.benchmark} benchmark "
             f"(stationary bootstrap, {report.n_bootstrap} replications{fewer}, seed "
             f"{report.seed})"]
    table = report.table
    if not table.empty:
        shown = pd.DataFrame({
            "window": table["window"],
            "sets": table["n_sets"], "bars": table["n_obs"],
            "best": table["best"].fillna("-"),
            "excess/yr": table["best_excess"].map(_p),
            "SPA p": table["spa_pvalue"].map(_p),
            "(lower, upper)": [f"({_p(a)}, {_p(b)})" for a, b in
                               zip(table["spa_lower"], table["spa_upper"], strict=True)],
            "StepM superior": table["superior"].map(
                lambda v: "-" if isinstance(v, float) and math.isnan(v) else str(int(v))),
        })
        lines.append(shown.to_string(index=False))
    lines.append("  " + MEANINGS["spa"])
    lines.append("  " + MEANINGS["superior"].format(alpha=report.alpha))
    haircut = report.haircut
    if haircut is not None:
        cut = haircut.haircut_sharpes
        lines.append(
            f"haircut Sharpe ratio of the best set (full-history Sharpe "
            f"{report.best_sharpe:.2f}): Bonferroni {cut['bonferroni']:.2f}, Holm "
            f"{cut['holm']:.2f}, BHY {cut['bhy']:.2f} (haircut "
            f"{haircut.haircuts['bhy']:.0%} by BHY)")
        lines.append("  " + MEANINGS["haircut"].format(n_sets=report.n_sets))
    if math.isfinite(report.min_backtest_length):
        lines.append(f"minimum backtest length: {report.min_backtest_length:.1f} years for "
                     f"{report.n_sets} sets at a Sharpe ratio of {report.best_sharpe:.2f}; "
                     f"the history has {report.backtest_years:.1f} years")
        lines.append("  " + MEANINGS["minbtl"].format(n_sets=report.n_sets,
                                                      years=report.backtest_years))
    lines += [f"  ({note})" for note in report.notes]
    return lines


def snooping_text(result: WalkForwardResult) -> list[str]:
    """The data-snooping section of the text report (:func:`summary_lines` of
    :meth:`WalkForwardResult.snooping` with :data:`REPORT_BOOTSTRAP` replications), or one
    line saying why it is missing."""
    try:
        return summary_lines(result.snooping(n_bootstrap=REPORT_BOOTSTRAP))
    except FoldwiseError as exc:
        return [f"data snooping unavailable: {exc}"]
