"""The analysis of an optimization: every table of a ``WalkForwardResult`` beyond its trials.

Built from what the optimization stored — trial user attributes in the study storage and
runs in the cache — so it never runs a backtest. Each table is computed once, when first
asked for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

from foldwise._canonical import canonical_json
from foldwise.backtest import BacktestResult, BacktestSettings
from foldwise.errors import OptimizationError
from foldwise.metrics import summarize
from foldwise.splits._purge import from_runs

from ._criteria import Criteria, criteria_table
from ._overfitting import fold_dsr, overfitting_summary
from ._runs import RunLoader
from ._stitch import stitch

if TYPE_CHECKING:
    from foldwise.cache import BacktestCache
    from foldwise.optimizer import WalkForwardResult

__all__ = ["ANNUALIZED", "Analysis"]

#: Metrics already on a yearly scale; walk-forward efficiency uses the optimized metric
#: when it is one of these, and the annual return otherwise.
ANNUALIZED = frozenset({"sharpe", "sortino", "annual_return", "calmar"})

#: Metrics shown in and out of sample for every fold.
FOLD_METRICS = ("sharpe", "annual_return", "max_drawdown", "n_trades")

#: Metrics of the comparison table.
COMPARED = ("sharpe", "annual_return", "annual_volatility", "max_drawdown", "calmar",
            "total_return")


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


class Analysis:
    """Tables of a walk-forward result (see :class:`foldwise.optimizer.WalkForwardResult`)."""

    def __init__(self, result: WalkForwardResult, cache: BacktestCache) -> None:
        self.result = result
        self.loader = RunLoader(cache, result.name)
        self.settings = BacktestSettings.from_dict(result.metadata["settings"])
        self.periods_per_year = self.settings.periods_per_year
        self.metric = result.metric
        self.wfe_metric = self.metric if self.metric in ANNUALIZED else "annual_return"
        self.maximize = result.direction == "maximize"

    # --- the stitched out-of-sample curve ------------------------------------------------

    def _chosen(self) -> list[dict[str, Any] | None]:
        return [r.best["evaluation"] if r.best else None for r in self.result.fold_records]

    @cached_property
    def oos(self) -> BacktestResult:
        """The walk-forward's out-of-sample result (see :mod:`foldwise.aggregate._stitch`)."""
        if self.result.mode != "walk_forward":
            raise OptimizationError(
                "a stitched out-of-sample curve belongs to walk-forward mode; a "
                "cross-validated study has one parameter set for all folds (see "
                "result.folds), and CPCV paths are in result.cpcv_paths().")
        ranges = [tuple(r.test[0]) if len(r.test) == 1 else (r.test[0][0], r.test[-1][1])
                  for r in self.result.fold_records]
        return stitch(self._chosen(), ranges, self.loader, self.settings)

    def fold_profits(self) -> list[float]:
        """Per fold with a chosen set, the log return of its window on the stitched curve."""
        returns = self.oos.returns
        profits = []
        for record in self.result.fold_records:
            if record.best is None:
                continue
            window = returns.loc[record.test_start: record.test_end]
            profits.append(float(np.log1p(window.to_numpy()).sum()))
        return profits

    # --- per-fold table ------------------------------------------------------------------

    @cached_property
    def folds(self) -> pd.DataFrame:
        """One row per fold: windows, chosen parameters, in- and out-of-sample metrics,
        walk-forward efficiency, deflated Sharpe ratio of the choice, trial counts and
        cache hits."""
        metrics = list(dict.fromkeys((self.metric, *FOLD_METRICS)))
        rows = []
        for record in self.result.fold_records:
            trials = record.trials
            states = trials["state"]
            infeasible = trials["infeasible"].notna()
            complete = trials[states == "COMPLETE"]
            best = record.best
            train = (best or {}).get("train") or {}
            test = (best or {}).get("test") or {}
            row: dict[str, Any] = {
                "fold": record.number, "fold_id": record.fold_id,
                "train_start": record.train_start, "train_end": record.train_end,
                "test_start": record.test_start, "test_end": record.test_end,
                "params": dict(best["params"]) if best else None,
            }
            for name in metrics:
                row[f"is_{name}"] = train.get(name, math.nan)
                row[f"oos_{name}"] = test.get(name, math.nan)
            row["wfe"] = _ratio(test.get(self.wfe_metric, math.nan),
                                train.get(self.wfe_metric, math.nan))
            row["dsr"] = self._fold_dsr(record, complete) if best else math.nan
            row.update({
                "trials_complete": len(complete),
                "trials_failed": int((states == "FAIL").sum()),
                "trials_pruned": int(((states == "PRUNED") & ~infeasible).sum()),
                "trials_infeasible": int(infeasible.sum()),
                "cache_hits": int(sum(1 for e in complete["evaluation"]
                                      if isinstance(e, dict) and e.get("backtests") == 0)),
            })
            rows.append(row)
        return pd.DataFrame(rows)

    def _fold_dsr(self, record: Any, complete: pd.DataFrame) -> float:
        distinct = _distinct(complete)
        sharpes = [t.get("sharpe", math.nan) if isinstance(t, dict) else math.nan
                   for t in distinct["train"]]
        run, offset = self.loader.run_of(record.best["evaluation"], "train")
        positions = from_runs(record.train) - offset
        return fold_dsr(run.take(positions)._net, sharpes, self.periods_per_year)

    # --- robust parameter sets -----------------------------------------------------------

    @cached_property
    def ranking(self) -> pd.DataFrame:
        """Parameter sets judged out of sample (each fold's top-k), ranked across folds.

        Columns: the parameters, ``n_folds`` (folds where the set was evaluated out of
        sample), mean / median / worst out-of-sample metric, ``mean_rank`` (its rank among
        each fold's evaluated sets, 1 = best, averaged) and the mean in-sample metric.
        Sorted by mean rank, then median metric: sets that are good everywhere come first.
        """
        entries: dict[str, dict[str, Any]] = {}
        for record in self.result.fold_records:
            scored = [s for s in record.selected if s.get("test") and
                      math.isfinite(s["test"].get(self.metric, math.nan))]
            values = [s["test"][self.metric] for s in scored]
            ranks = _sps.rankdata([-v if self.maximize else v for v in values], method="average")
            for selected, rank in zip(scored, ranks, strict=True):
                key = canonical_json(selected["params"])
                entry = entries.setdefault(key, {"params": selected["params"], "oos": [],
                                                 "ranks": [], "is": []})
                entry["oos"].append(selected["test"][self.metric])
                entry["ranks"].append(float(rank))
                entry["is"].append((selected.get("train") or {}).get(self.metric, math.nan))
        rows = []
        for entry in entries.values():
            oos = np.array(entry["oos"])
            rows.append({**entry["params"], "n_folds": len(oos),
                         f"mean_oos_{self.metric}": float(oos.mean()),
                         f"median_oos_{self.metric}": float(np.median(oos)),
                         f"worst_oos_{self.metric}": float(oos.min() if self.maximize else oos.max()),
                         "mean_rank": float(np.mean(entry["ranks"])),
                         f"mean_is_{self.metric}": float(np.nanmean(entry["is"]))})
        table = pd.DataFrame(rows)
        if table.empty:
            return table
        median = f"median_oos_{self.metric}"
        return table.sort_values(["mean_rank", median], ascending=[True, not self.maximize],
                                 kind="stable").reset_index(drop=True)

    # --- stability -----------------------------------------------------------------------

    @cached_property
    def parameter_stability(self) -> pd.DataFrame:
        """Per parameter: the value chosen in each fold and its dispersion across folds."""
        chosen = [r.best["params"] for r in self.result.fold_records if r.best]
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

    @cached_property
    def rank_correlation(self) -> pd.DataFrame:
        """Per fold: Spearman correlation of in-sample and out-of-sample metric over the
        distinct parameter sets evaluated on both windows (near 1: the in-sample ranking
        carries over; near 0 or below: it does not)."""
        rows = []
        for record in self.result.fold_records:
            distinct = _distinct(record.trials[record.trials["state"] == "COMPLETE"])
            pairs = [(t[self.metric], s[self.metric]) for t, s in zip(
                distinct["train"], distinct["test"], strict=True)
                if isinstance(t, dict) and isinstance(s, dict)
                and math.isfinite(t.get(self.metric, math.nan))
                and math.isfinite(s.get(self.metric, math.nan))]
            if not pairs:  # per-fold strategies: the selected sets only
                pairs = [(s["train"][self.metric], s["test"][self.metric])
                         for s in record.selected if s.get("train") and s.get("test")]
            rho = math.nan
            if len(pairs) >= 3:
                rho = float(_sps.spearmanr(*zip(*pairs, strict=True)).statistic)
            rows.append({"fold": record.number, "spearman": rho, "n_sets": len(pairs)})
        return pd.DataFrame(rows)

    # --- comparison and summary ----------------------------------------------------------

    @cached_property
    def comparison(self) -> pd.DataFrame:
        """The stitched out-of-sample curve next to the chosen sets in sample (mean over
        folds) and to an equal-weight holding of the universe over the same dates."""
        oos = self.oos
        rows = {"walk-forward (out of sample)": oos.metrics()}
        chosen = [r.best["train"] for r in self.result.fold_records if r.best and r.best["train"]]
        rows["chosen sets in sample (mean of folds)"] = {
            name: float(np.nanmean([c.get(name, math.nan) for c in chosen])) for name in COMPARED}
        digest = self.result.metadata.get("benchmark")
        if digest:
            benchmark = self.loader.load(digest).slice(oos.index[0], oos.index[-1])
            rows["equal-weight universe (same dates)"] = benchmark.metrics()
        table = pd.DataFrame(rows).T
        return table[list(COMPARED)]

    @cached_property
    def walk_forward_efficiency(self) -> float:
        """Annualized out-of-sample metric of the stitched curve over the mean annualized
        in-sample metric of the chosen sets (the optimized metric when it is annualized,
        else the annual return)."""
        chosen = [r.best["train"].get(self.wfe_metric, math.nan)
                  for r in self.result.fold_records if r.best and r.best["train"]]
        in_sample = float(np.nanmean(chosen)) if chosen else math.nan
        return _ratio(self.oos.metrics()[self.wfe_metric], in_sample)

    def summary(self, criteria: Criteria | None = None) -> pd.DataFrame:
        """The pass/fail table (see :mod:`foldwise.aggregate._criteria`)."""
        return criteria_table(self.walk_forward_efficiency, self.fold_profits(),
                              self.oos.metrics()["max_drawdown"], criteria or Criteria())

    # --- overfitting ---------------------------------------------------------------------

    def returns_matrix(self, max_configurations: int | None = None) -> pd.DataFrame:
        """Full-history per-period returns of every distinct parameter set evaluated
        (causal strategies: one column per set), for PBO."""
        if not self.result.metadata.get("strategy", {}).get("causal", True):
            raise OptimizationError(
                "PBO needs the full-history returns of each parameter set; a per-fold "
                "(causal=False) strategy has runs per fold only.")
        seen: dict[str, str] = {}
        for record in self.result.fold_records:
            complete = record.trials[record.trials["state"] == "COMPLETE"]
            for params, evaluation in zip(complete["params"], complete["evaluation"], strict=True):
                if isinstance(evaluation, dict) and (evaluation.get("runs") or {}).get("full"):
                    seen.setdefault(canonical_json(params), evaluation["runs"]["full"])
        if self.result.mode == "cv" and self.result._cv_trials is not None:
            trials = self.result._cv_trials
            for params, evaluation in zip(trials["params"], trials["evaluation"], strict=True):
                runs = next(iter((evaluation or {}).get("evaluations", {}).values()), {}).get("runs", {})
                if runs.get("full"):
                    seen.setdefault(canonical_json(params), runs["full"])
        items = list(seen.items())[: max_configurations or None]
        columns = {key: self.loader.load(digest).returns for key, digest in items}
        return pd.DataFrame(columns)

    def overfitting(self, n_splits: int = 16, max_configurations: int | None = None
                    ) -> dict[str, float]:
        """PBO of the evaluated sets, and PSR / DSR of the stitched out-of-sample curve."""
        try:
            matrix = self.returns_matrix(max_configurations).to_numpy()
        except OptimizationError:
            matrix = None
        return overfitting_summary(self.oos, matrix, n_splits=n_splits)

    # --- CPCV paths ----------------------------------------------------------------------

    def cpcv_paths(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Out-of-sample paths of a combinatorial purged k-fold optimization.

        Each path takes every group from the ``p``-th split (in split order) that tests it,
        traded with the parameters chosen on that split's training groups. Returns the
        metrics of each path, and the returns (one column per path).
        """
        groups = self.result.metadata.get("groups")
        folds = self.result.metadata["folds"]
        if not groups or not all(f.get("test_groups") for f in folds):
            raise OptimizationError(
                "CPCV paths need a CombinatorialPurgedKFold splitter; this study used "
                f"{self.result.metadata['splitter']['repr']}.")
        by_group: dict[int, list[int]] = defaultdict(list)
        for fold in folds:
            for group in fold["test_groups"]:
                by_group[group].append(fold["number"])
        n_paths = min(len(v) for v in by_group.values())
        records = {r.number: r for r in self.result.fold_records}
        series = {}
        for path in range(n_paths):
            parts = []
            for group, (start, stop) in enumerate(groups):
                record = records[by_group[group][path]]
                if record.best is None:
                    raise OptimizationError(f"split {record.number} has no completed trial.")
                run, offset = self.loader.run_of(record.best["evaluation"], "test")
                parts.append(run.returns.iloc[start - offset: stop - offset])
            series[path] = pd.concat(parts)
        returns = pd.DataFrame(series)
        table = pd.DataFrame({path: summarize(returns[path].to_numpy(),
                                              periods_per_year=self.periods_per_year)
                              for path in returns}).T
        table.index.name = "path"
        return table[list(COMPARED)], returns


def _distinct(trials: pd.DataFrame) -> pd.DataFrame:
    """The first trial of every distinct parameter set."""
    if trials.empty:
        return trials
    keys = trials["params"].map(canonical_json)
    return trials.loc[~keys.duplicated()]

