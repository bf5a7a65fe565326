"""The tables of a walk-forward result, as pure functions of its fold records and runs.

Each function takes what it needs — the :class:`FoldRecord` list, the metric and its
direction, a :class:`RunLoader` where return series are needed — and returns a DataFrame or
a number. :class:`foldwise.WalkForwardResult` calls them once each and keeps the answer.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from foldwise._canonical import canonical_json
from foldwise.backtest import BacktestResult
from foldwise.errors import FoldwiseError, OptimizationError
from foldwise.metrics import summarize
from foldwise.records import StoredTrial, StudyManifest
from foldwise.splits import ranges_to_positions

from ._folds import FoldRecord
from ._overfitting import fold_dsr
from ._returns import distinct_full_runs, returns_by_run
from ._rules import Plateau, TopKMean
from ._runs import RunLoader, run_returns

logger = logging.getLogger(__name__)

__all__ = [
    "ANNUALIZED",
    "ANNUALIZED_COMPARED",
    "COMPARED",
    "FOLD_METRICS",
    "chosen_in_sample",
    "comparison",
    "cpcv_paths",
    "fold_table",
    "parameter_stability",
    "rank_correlation",
    "ranking",
    "ratio",
    "returns_matrix",
    "trials_frame",
    "wfe_metric",
]

#: Metrics already on a yearly scale; walk-forward efficiency uses the optimized metric
#: when it is one of these, and the annual return otherwise.
ANNUALIZED = frozenset({"sharpe", "sortino", "annual_return", "calmar"})

#: Metrics shown in and out of sample for every fold.
FOLD_METRICS = ("sharpe", "annual_return", "max_drawdown", "n_trades")

#: Metrics of the comparison table.
COMPARED = ("sharpe", "annual_return", "annual_volatility", "max_drawdown", "calmar",
            "total_return")
#: Of :data:`COMPARED`, the figures that do not grow with the length of the period.
ANNUALIZED_COMPARED = ("sharpe", "annual_return", "annual_volatility")

TRIAL_COLUMNS = ["fold", "trial", "state", "value", "params", "train", "test", "cv_folds",
                 "backtests", "infeasible", "error", "datetime_start", "datetime_complete"]


def wfe_metric(metric: str) -> str:
    """The metric walk-forward efficiency compares (annualized)."""
    return metric if metric in ANNUALIZED else "annual_return"


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` for finite values and a positive denominator, else NaN."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


def _complete(trials: Sequence[StoredTrial]) -> list[StoredTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def _distinct(trials: Sequence[StoredTrial]) -> list[StoredTrial]:
    """The first trial of every distinct parameter set (by canonical parameters)."""
    seen: set[str] = set()
    first = []
    texts: dict[Any, str] = {}
    for trial in trials:
        params = trial.params
        try:  # the same names, types and values in the same order: the same canonical text
            token: Any = tuple((name, value.__class__, value) for name, value in params.items())
            key = texts.get(token)
        except TypeError:  # an unhashable value
            token, key = None, None
        if key is None:
            key = canonical_json(params)
            if token is not None:
                texts[token] = key
        if key not in seen:
            seen.add(key)
            first.append(trial)
    return first


# --- trials --------------------------------------------------------------------------------


def trials_frame(trials: Mapping[int | None, Sequence[StoredTrial]]) -> pd.DataFrame:
    """One row per trial: fold (None in cross-validated mode), number, state, value,
    params, train and test metrics, per-fold test metrics (``cv_folds``), backtests run,
    the reason of an infeasible or failed trial, and times."""
    rows = []
    for fold, fold_trials in trials.items():
        for t in sorted(fold_trials, key=lambda t: t.number):
            record = t.record
            own = record.evaluations.get(fold) if fold is not None else None
            failure = record.failure
            rows.append({
                "fold": fold, "trial": t.number, "state": t.state.name, "value": t.value,
                "params": dict(record.params),
                "train": None if own is None or own.train is None else dict(own.train),
                "test": None if own is None or own.test is None else dict(own.test),
                "cv_folds": None if fold is not None else {
                    k: dict(e.test) for k, e in record.evaluations.items() if e.test is not None},
                "backtests": record.backtests, "infeasible": record.infeasible,
                "error": None if failure is None else failure.describe(),
                "datetime_start": t.started, "datetime_complete": t.completed})
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


# --- per fold ------------------------------------------------------------------------------


def fold_table(folds: Sequence[FoldRecord], metric: str, loader: RunLoader,
               periods_per_year: float) -> pd.DataFrame:
    """One row per fold: windows, chosen parameters, in-sample (``is_``) and out-of-sample
    (``oos_``) metrics, walk-forward efficiency, DSR of the choice, trial counts, cache hits.

    ``trials_failed`` counts the strategy's own failures (they used the budget);
    ``trials_rerun`` the trials stopped by something else — a worker that died, an
    interrupt, a fault of the machine, a trial given back to keep the budget exact — whose
    place in the budget was run again.

    The selection rule that chose the parameters is named in ``table.attrs["select"]``.
    Under ``"plateau"`` two columns follow the in-sample metric: ``is_<metric>_smoothed``
    (the choice's smoothed value, what the rule ranked by) and ``neighbours`` (the other
    sets its neighbourhood held). Under ``"top_k_mean"``: ``averaged`` (the trials whose
    sets were averaged; empty when the best set stood in) and ``select_note`` (why the
    best set stood in, else None)."""
    metrics = list(dict.fromkeys((metric, *FOLD_METRICS)))
    compared = wfe_metric(metric)
    rule = folds[0].rule_label if folds else "best"
    rows = []
    for record in folds:
        complete = _complete(record.trials)
        best = record.best
        train = (best.train if best else None) or {}
        test = (best.test if best else None) or {}
        row: dict[str, Any] = {
            "fold": record.number, "fold_id": record.fold_id,
            "train_start": record.train_start, "train_end": record.train_end,
            "test_start": record.test_start, "test_end": record.test_end,
            "params": dict(best.params) if best else None,
        }
        for name in metrics:
            row[f"is_{name}"] = train.get(name, math.nan)
            if name == metric:
                row.update(_rule_columns(record, metric))
            row[f"oos_{name}"] = test.get(name, math.nan)
        row["wfe"] = ratio(test.get(compared, math.nan), train.get(compared, math.nan))
        row["dsr"] = _fold_dsr(record, complete, loader, periods_per_year) if best else math.nan
        states = [t.state for t in record.trials]
        infeasible = sum(t.record.infeasible is not None for t in record.trials)
        failed = [t.record.failure for t in record.trials if t.state == TrialState.FAIL]
        own = sum(1 for f in failed if f is None or f.kind.uses_budget)
        row.update({
            "trials_complete": len(complete),
            "trials_failed": own,  # the strategy's own failures (they used the budget)
            "trials_rerun": len(failed) - own,  # a dead worker's, a fault's ...: run again
            "trials_pruned": states.count(TrialState.PRUNED) - infeasible,
            "trials_infeasible": infeasible,
            "cache_hits": sum(1 for t in complete if t.record.evaluations and
                              t.record.backtests == 0),
        })
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["select"] = rule
    return table


def _rule_columns(record: FoldRecord, metric: str) -> dict[str, Any]:
    """The columns a selection rule adds to its fold's row (see :func:`fold_table`)."""
    best = record.best
    if isinstance(record.rule, Plateau):
        smoothed = best.smoothed if best and best.smoothed is not None else math.nan
        return {f"is_{metric}_smoothed": smoothed,
                "neighbours": best.neighbours if best and best.neighbours is not None else 0}
    if isinstance(record.rule, TopKMean):
        return {"averaged": list(best.averaged) if best else [], "select_note": record.note}
    return {}


def _fold_dsr(record: FoldRecord, complete: list[StoredTrial], loader: RunLoader,
              periods_per_year: float) -> float:
    best = record.best
    assert best is not None
    sharpes = []
    for trial in _distinct(complete):
        own = trial.record.evaluations.get(record.number)
        sharpes.append((own.train or {}).get("sharpe", math.nan) if own else math.nan)
    try:
        run = run_returns(loader, best.evaluation.run_key("train"))
    except FoldwiseError as exc:  # no run to be had: the table shows what the records hold
        logger.info("fold %d: no deflated Sharpe ratio (%s)", record.number, exc)
        return math.nan
    positions = ranges_to_positions(np.asarray(record.train)) - best.evaluation.offset
    return fold_dsr(run.take(positions).net, sharpes, periods_per_year)


def ranking(folds: Sequence[FoldRecord], metric: str, maximize: bool,
            min_folds: int = 2) -> pd.DataFrame:
    """Parameter sets judged out of sample (each fold's top-k), ranked across folds.

    Columns: the parameters, ``n_folds`` (folds where the set was evaluated out of sample),
    mean / median / worst out-of-sample metric, ``mean_rank`` (its rank among each fold's
    evaluated sets, 1 = best, averaged) and the mean in-sample metric. Sets judged in at
    least ``min_folds`` folds (capped at the number of folds) come first — a set that won
    the one fold it was tried in has shown nothing about the others — then by mean rank,
    then median metric: sets that are good everywhere come first.
    """
    entries: dict[str, dict[str, Any]] = {}
    for record in folds:
        scored = [s for s in record.selected
                  if s.test and math.isfinite(s.test.get(metric, math.nan))]
        values = [s.test[metric] for s in scored if s.test]
        ranks = _average_ranks([-v if maximize else v for v in values])
        for chosen, rank in zip(scored, ranks, strict=True):
            entry = entries.setdefault(canonical_json(chosen.params), {
                "params": dict(chosen.params), "oos": [], "ranks": [], "is": []})
            entry["oos"].append((chosen.test or {})[metric])
            entry["ranks"].append(float(rank))
            entry["is"].append((chosen.train or {}).get(metric, math.nan))
    rows = []
    for entry in entries.values():
        oos = np.array(entry["oos"])
        rows.append({**entry["params"], "n_folds": len(oos),
                     f"mean_oos_{metric}": float(oos.mean()),
                     f"median_oos_{metric}": float(np.median(oos)),
                     f"worst_oos_{metric}": float(oos.min() if maximize else oos.max()),
                     "mean_rank": float(np.mean(entry["ranks"])),
                     f"mean_is_{metric}": float(np.nanmean(entry["is"]))})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    enough = table["n_folds"] >= min(min_folds, len(folds))
    return (table.assign(_enough=enough)
            .sort_values(["_enough", "mean_rank", f"median_oos_{metric}"],
                         ascending=[False, True, not maximize], kind="stable")
            .drop(columns="_enough").reset_index(drop=True))


# --- stability -----------------------------------------------------------------------------


def parameter_stability(folds: Sequence[FoldRecord]) -> pd.DataFrame:
    """Per parameter: the value chosen in each fold and its dispersion across folds."""
    chosen = [r.best.params for r in folds if r.best]
    names = list(dict.fromkeys(k for params in chosen for k in params))
    rows = []
    for name in names:
        values = [params.get(name) for params in chosen]
        counts = pd.Series([canonical_json(v) for v in values]).value_counts()
        row: dict[str, Any] = {"parameter": name, "values": values,
                               "n_unique": int(counts.size),
                               "most_common_share": float(counts.iloc[0] / len(values))}
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numeric) == len(values) and values:
            array = np.array(numeric, dtype=float)
            std = float(array.std(ddof=1)) if array.size > 1 else 0.0
            row.update({"mean": float(array.mean()), "std": std, "min": float(array.min()),
                        "max": float(array.max()),
                        "cv": std / abs(array.mean()) if array.mean() else math.nan})
        rows.append(row)
    return pd.DataFrame(rows).set_index("parameter") if rows else pd.DataFrame()


def _average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average (``scipy.stats.rankdata``'s default)."""
    return pd.Series(values, dtype=np.float64).rank(method="average").to_numpy()


def spearman(pairs: Sequence[tuple[float, float]]) -> float:
    """Spearman's rank correlation of the pairs (finite values), as
    ``scipy.stats.spearmanr`` computes it: the correlation of the average ranks; NaN when
    one side is constant."""
    ranks = pd.DataFrame(pairs, dtype=np.float64).rank(method="average").to_numpy()
    if len(ranks) < 2 or (ranks[0] == ranks).all(axis=0).any():
        return math.nan
    return float(np.corrcoef(ranks, rowvar=False)[1, 0])


def rank_correlation(folds: Sequence[FoldRecord], metric: str) -> pd.DataFrame:
    """Per fold: Spearman correlation of in-sample and out-of-sample metric over the
    distinct parameter sets evaluated on both windows (near 1: the in-sample ranking
    carries over; near 0 or below: it does not)."""
    rows = []
    for record in folds:
        pairs = []
        for trial in _distinct(_complete(record.trials)):
            own = trial.record.evaluations.get(record.number)
            if own is None or own.train is None or own.test is None:
                continue
            train, test = own.train.get(metric, math.nan), own.test.get(metric, math.nan)
            if math.isfinite(train) and math.isfinite(test):
                pairs.append((train, test))
        if not pairs:  # per-fold strategies: the selected sets only
            pairs = [(s.train[metric], s.test[metric]) for s in record.selected
                     if s.train and s.test]
        rho = math.nan
        if len(pairs) >= 3:
            rho = spearman(pairs)
        rows.append({"fold": record.number, "spearman": rho, "n_sets": len(pairs)})
    return pd.DataFrame(rows)


# --- comparison ----------------------------------------------------------------------------


def chosen_in_sample(folds: Sequence[FoldRecord], name: str) -> float:
    """Mean over folds of metric ``name`` of the chosen sets on their training windows."""
    values = [r.best.train.get(name, math.nan) for r in folds if r.best and r.best.train]
    return float(np.nanmean(values)) if values else math.nan


def comparison(oos: BacktestResult, folds: Sequence[FoldRecord],
               benchmark: BacktestResult | None) -> pd.DataFrame:
    """The stitched out-of-sample curve next to the chosen sets in sample (mean over folds)
    and to an equal-weight holding of the universe over the same dates.

    Like is compared with like: the in-sample row holds the annualized figures only (the
    mean of each fold's training window); figures that grow with the length of the period
    (maximum drawdown, Calmar ratio, total return) are shown for the rows over the same
    dates — the out-of-sample curve and the universe — and left empty in sample. The
    ``dates`` column says what each row covers.
    """
    span = f"{oos.index[0].date()}..{oos.index[-1].date()}"
    rows = {"walk-forward (out of sample)": {**oos.metrics(), "dates": span},
            "chosen sets in sample (mean of folds)": {
                **{name: chosen_in_sample(folds, name) for name in ANNUALIZED_COMPARED},
                "dates": f"{sum(1 for r in folds if r.best)} training windows"}}
    if benchmark is not None:
        rows["equal-weight universe (same dates)"] = {
            **benchmark.slice(oos.index[0], oos.index[-1]).metrics(), "dates": span}
    table = pd.DataFrame(rows).T[[*COMPARED, "dates"]]
    return table.astype({name: float for name in COMPARED})


# --- runs of every set ---------------------------------------------------------------------


def returns_matrix(trials: Mapping[int | None, Sequence[StoredTrial]], manifest: StudyManifest,
                   loader: RunLoader, max_configurations: int | None = None) -> pd.DataFrame:
    """Full-history per-period returns of every distinct parameter set evaluated (causal
    strategies: one column per set, in the order they were first tried), for PBO."""
    runs = list(distinct_full_runs(trials, manifest).items())[: max_configurations or None]
    if not runs:
        return pd.DataFrame()
    values = returns_by_run(loader, [key for _, key in runs])  # each run read once
    dates = run_returns(loader, runs[0][1]).index
    return pd.DataFrame(values.T, index=dates, columns=[params for params, _ in runs])


def cpcv_paths(folds: Sequence[FoldRecord], manifest: StudyManifest, loader: RunLoader
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-sample paths of a combinatorial purged k-fold optimization.

    Each path takes every group from the ``p``-th split (in split order) that tests it,
    traded with the parameters chosen on that split's training groups. Returns the metrics
    of each path, and the returns (one column per path).
    """
    groups = manifest.groups
    if not groups or not all(w.test_groups for w in manifest.folds):
        raise OptimizationError(
            "CPCV paths need a CombinatorialPurgedKFold splitter; this study used "
            f"{manifest.splitter['repr']}.")
    by_group: dict[int, list[int]] = defaultdict(list)
    for window in manifest.folds:
        for group in window.test_groups:
            by_group[group].append(window.number)
    n_paths = min(len(v) for v in by_group.values())
    records = {r.number: r for r in folds}
    series = {}
    for path in range(n_paths):
        parts = []
        for group, (start, stop) in enumerate(groups):
            best = records[by_group[group][path]].best
            if best is None:
                raise OptimizationError(
                    f"split {by_group[group][path]} has no completed trial.")
            run = run_returns(loader, best.evaluation.run_key("test"))
            rows = slice(start - best.evaluation.offset, stop - best.evaluation.offset)
            parts.append(pd.Series(run.net[rows], index=run.index[rows], name="returns"))
        series[path] = pd.concat(parts)
    returns = pd.DataFrame(series)
    settings = manifest.settings
    table = pd.DataFrame({path: summarize(returns[path].to_numpy(),
                                          periods_per_year=settings.periods_per_year)
                          for path in returns}).T
    table.index.name = "path"
    return table[list(COMPARED)], returns


