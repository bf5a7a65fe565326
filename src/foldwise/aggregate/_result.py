"""``WalkForwardResult``: every table of an optimization, from its records and stored runs.

A result is built from a :class:`~foldwise.records.StudyRecord` (what the study storage
holds) and a :class:`RunLoader` (the cache); nothing here runs a backtest or opens a
storage. Each table is computed when first asked for, by the functions of ``_tables``,
``_stitch``, ``_criteria`` and ``_overfitting``, and kept.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from foldwise.backtest import BacktestResult
from foldwise.errors import OptimizationError
from foldwise.records import StudyManifest, StudyRecord
from foldwise.snooping import SnoopingError

from . import _tables as tables
from ._complete import with_every_metric
from ._criteria import Criteria, criteria_table
from ._folds import FoldRecord, fold_records
from ._overfitting import overfitting_summary
from ._returns import distinct_full_runs, returns_by_run
from ._runs import RunLoader, run_returns
from ._select import select_top
from ._snooping import REPORT_BOOTSTRAP, SnoopingReport, snooping_report
from ._stitch import stitch
from ._stored import StatisticsStore

__all__ = ["WalkForwardResult"]

logger = logging.getLogger(__name__)


class WalkForwardResult:
    """The result of :func:`foldwise.optimize` (or :func:`foldwise.load_result`).

    Trials come from the study storage, return series from the loader (the cache; the
    optimizer's loader re-creates a run the cache lacks, see :attr:`runs_rebuilt`). Tables
    are computed when first asked for.

    Attributes
    ----------
    name : str
        The study name.
    manifest : foldwise.records.StudyManifest
        What the study was run with (data, splitter, folds, strategy, space, settings).
    mode : str
        ``"walk_forward"`` or ``"cv"``.
    metric, direction : str
        The optimized metric and whether it was maximized.
    fold_records : list of FoldRecord
        One per fold, with its trials and its top-k parameter sets.
    location : str
        The storage the study was read from.
    """

    def __init__(self, record: StudyRecord, loader: RunLoader,
                 statistics: StatisticsStore | None = None) -> None:
        self.record = record
        self.loader = loader
        self.statistics = statistics
        self.name = record.name
        self.manifest: StudyManifest = record.manifest
        self.mode = self.manifest.mode
        self.metric = self.manifest.metric
        self.direction = self.manifest.direction
        self.top_k = self.manifest.top_k
        self.location = record.location

    @cached_property
    def fold_records(self) -> list[FoldRecord]:
        """Each fold's windows, trials and selected sets, with every metric of the selected
        sets (computed from their runs on first access: a trial stores its objective and
        the Sharpe ratio only, see :mod:`foldwise.aggregate._complete`)."""
        return with_every_metric(fold_records(self.record), self.loader)

    @property
    def runs_rebuilt(self) -> int:
        """Runs re-created so far because the cache lacked them (evicted, cleared, damaged
        or unreadable); 0 when every run came from the cache."""
        return int(getattr(self.loader, "rebuilt", 0))

    @property
    def _maximize(self) -> bool:
        return self.direction == "maximize"

    # --- trials --------------------------------------------------------------------------

    @cached_property
    def trials(self) -> pd.DataFrame:
        """Every trial: fold, trial number, state, objective value, params, train and test
        metrics (dicts), per-fold test metrics in cross-validated mode (``cv_folds``),
        backtests it ran (0: served by the cache), the reason of an infeasible or failed
        trial, and times."""
        return tables.trials_frame(self.record.trials)

    @property
    def best_params(self) -> list[dict[str, Any]]:
        """Walk-forward: the parameters chosen on each fold's training window, fold by fold.
        Cross-validated: one entry, the best set by the aggregated fold metric."""
        if self.mode == "cv":
            best = select_top(self.record.trials.get(None, ()), self.direction, 1)
            return [dict(best[0].params)] if best else []
        return [dict(r.best.params) for r in self.fold_records if r.best is not None]

    @cached_property
    def unfinished(self) -> list[int | None]:
        """The studies holding fewer finished trials than the last call's ``n_trials``: fold
        numbers (walk-forward), or ``[None]`` for an unfinished cross-validated study. Empty
        when the optimization is complete (or its budget was not recorded)."""
        budget = self.manifest.n_trials
        if budget is None:
            return []
        keys: list[int | None] = ([None] if self.mode == "cv"
                                  else [w.number for w in self.manifest.folds])
        return [key for key in keys
                if sum(t.uses_budget for t in self.record.trials.get(key, ())) < budget]

    @property
    def complete(self) -> bool:
        """True when every study holds its ``n_trials`` finished trials (see
        :attr:`unfinished`); the tables of an incomplete study cover what finished."""
        return not self.unfinished

    # --- per fold ------------------------------------------------------------------------

    @cached_property
    def folds(self) -> pd.DataFrame:
        """One row per fold. Walk-forward: windows, chosen parameters, in-sample (``is_``)
        and out-of-sample (``oos_``) metric, Sharpe, annual return, max drawdown and trades,
        walk-forward efficiency (``wfe``), deflated Sharpe ratio of the choice (``dsr``),
        trials completed / failed / pruned / infeasible and cache hits. Cross-validated:
        the best set's metric on each fold's test window."""
        if self.mode == "cv":
            return self._cv_folds()
        return tables.fold_table(self.fold_records, self.metric, self.loader,
                                 self.manifest.settings.periods_per_year)

    def _cv_folds(self) -> pd.DataFrame:
        best = select_top(self.record.trials.get(None, ()), self.direction, 1)
        rows = []
        for record in self.fold_records:
            evaluation = best[0].record.evaluations.get(record.number) if best else None
            test = (evaluation.test if evaluation else None) or {}
            rows.append({
                "fold": record.number, "fold_id": record.fold_id,
                "train_start": record.train_start, "train_end": record.train_end,
                "test_start": record.test_start, "test_end": record.test_end,
                "params": dict(best[0].params) if best else None,
                f"oos_{self.metric}": test.get(self.metric, math.nan)})
        return pd.DataFrame(rows)

    @cached_property
    def ranking(self) -> pd.DataFrame:
        """Parameter sets judged out of sample, ranked across folds: sets judged in at least
        two folds first (robust sets first); :meth:`ranked` takes another threshold."""
        return self.ranked()

    def ranked(self, min_folds: int = 2) -> pd.DataFrame:
        """:attr:`ranking` with sets judged in at least ``min_folds`` folds first."""
        return tables.ranking(self.fold_records, self.metric, self._maximize, min_folds)

    # --- the out-of-sample curve ---------------------------------------------------------

    @cached_property
    def oos_result(self) -> BacktestResult:
        """The stitched out-of-sample walk-forward as a BacktestResult (returns, positions,
        trades, turnover and costs, including the cost of every re-optimization)."""
        if self.mode != "walk_forward":
            raise OptimizationError(
                "a stitched out-of-sample curve belongs to walk-forward mode; a "
                "cross-validated study has one parameter set for all folds (see "
                "result.folds), and CPCV paths are in result.cpcv_paths().")
        chosen = [r.best.evaluation if r.best else None for r in self.fold_records]
        return stitch(chosen, [r.test_span for r in self.fold_records], self.loader,
                      self.manifest.settings)

    @property
    def oos_returns(self) -> pd.Series:
        """Per-period returns of the stitched out-of-sample curve."""
        return self.oos_result.returns

    @property
    def oos_equity(self) -> pd.Series:
        """Compounded wealth of the stitched out-of-sample curve (1.0 before the start)."""
        return self.oos_result.equity

    @property
    def oos_metrics(self) -> dict[str, float]:
        """Every metric of :data:`foldwise.metrics.METRICS` of the stitched curve."""
        return self.oos_result.metrics()

    @cached_property
    def benchmark(self) -> BacktestResult | None:
        """The equal-weight universe over the study's data and settings (None if unknown)."""
        key = self.manifest.benchmark
        return None if key is None else self.loader.load(key)

    @cached_property
    def comparison(self) -> pd.DataFrame:
        """The out-of-sample curve next to the chosen sets in sample and to an equal-weight
        holding of the universe over the same dates."""
        return tables.comparison(self.oos_result, self.fold_records, self.benchmark)

    @cached_property
    def walk_forward_efficiency(self) -> float:
        """Annualized out-of-sample metric of the stitched curve over the mean annualized
        in-sample metric of the chosen sets (the optimized metric when it is annualized,
        else the annual return)."""
        name = tables.wfe_metric(self.metric)
        return tables.ratio(self.oos_metrics[name],
                            tables.chosen_in_sample(self.fold_records, name))

    # --- stability, verdict, overfitting ---------------------------------------------------

    @cached_property
    def parameter_stability(self) -> pd.DataFrame:
        """Per parameter: the value chosen in each fold and its dispersion across folds."""
        return tables.parameter_stability(self.fold_records)

    @cached_property
    def rank_correlation(self) -> pd.DataFrame:
        """Per fold: Spearman correlation of in- and out-of-sample metric over its sets."""
        return tables.rank_correlation(self.fold_records, self.metric)

    def fold_profits(self) -> list[float]:
        """Per fold with a chosen set, the log return of its window on the stitched curve."""
        returns = self.oos_returns
        return [float(np.log1p(returns.loc[r.test_start: r.test_end].to_numpy()).sum())
                for r in self.fold_records if r.best is not None]

    def summary(self, criteria: Criteria | None = None) -> pd.DataFrame:
        """Pass/fail of the walk-forward criteria (thresholds in :class:`Criteria`), and
        whether the optimization is complete: an unfinished one does not pass."""
        table = criteria_table(self.walk_forward_efficiency, self.fold_profits(),
                               self.oos_metrics["max_drawdown"], criteria or Criteria())
        studies = len(self.fold_records) if self.mode == "walk_forward" else 1
        finished = (studies - len(self.unfinished)) / studies if studies else 1.0
        complete = pd.DataFrame([("complete", finished, "= 100%", self.complete)],
                                columns=table.columns)
        return pd.concat([table, complete], ignore_index=True)

    def passed(self, criteria: Criteria | None = None) -> bool:
        """True when every criterion of :meth:`summary` passes."""
        return bool(self.summary(criteria)["passed"].all())

    def _set_returns(self, count: int | None = None
                     ) -> tuple[list[str], np.ndarray, pd.Index]:
        """The first ``count`` distinct sets evaluated (all when None) by canonical
        parameters, their full-history returns as one read-only ``(N, T)`` array (see
        :mod:`._returns`), and its dates. Kept: each set's returns are read once per
        result."""
        kept: tuple[list[str], np.ndarray, pd.Index, bool] | None = getattr(
            self, "_returns_read", None)
        if kept is not None:
            names, values, dates, every = kept
            if every or (count is not None and count <= len(names)):
                return names[:count], values[:count], dates
        runs = distinct_full_runs(self.record.trials, self.manifest)
        names = list(runs)[:count]
        if not names:
            return [], np.empty((0, 0)), pd.Index([])
        values = returns_by_run(self.loader, [runs[name] for name in names])
        values.flags.writeable = False
        dates = run_returns(self.loader, runs[names[0]]).index
        self._returns_read = (names, values, dates, len(names) == len(runs))
        return names, values, dates

    def returns_matrix(self, max_configurations: int | None = None) -> pd.DataFrame:
        """Full-history returns of every distinct parameter set evaluated (one column each,
        named by the set's canonical parameters, in the order the sets were first tried;
        the first ``max_configurations`` sets when given).

        Only each run's returns are read, once per result, into one read-only array that
        the frame wraps without a copy (``.copy()`` it to write to it)."""
        names, values, dates = self._set_returns(max_configurations or None)
        if not names:
            return pd.DataFrame()
        return pd.DataFrame(values.T, index=dates, columns=names, copy=False)

    def overfitting(self, n_splits: int = 16, max_configurations: int | None = None
                    ) -> dict[str, float]:
        """Probability of backtest overfitting (CSCV over every distinct set evaluated),
        and the PSR and DSR of the out-of-sample curve (see :mod:`foldwise.stats`).

        Reads one returns column per distinct set (see :meth:`returns_matrix`); memory
        beyond those columns stays bounded however many sets there are."""
        def compute() -> dict[str, float]:
            matrix = None
            if self.manifest.strategy.causal:
                matrix = self._set_returns(max_configurations or None)[1].T
            return overfitting_summary(self.oos_result, matrix, n_splits=n_splits)

        return self._kept(
            "overfitting", {"n_splits": n_splits, "max_configurations": max_configurations or None},
            compute, encode=dict, decode=lambda kept: {str(k): float(v) for k, v in kept.items()})

    def _kept(self, name: str, args: dict[str, Any], compute: Callable[[], Any], *,
              encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
        """``compute()``, or what it returned before: in this object, or for an earlier
        reader of the same study (:attr:`statistics`, as JSON: ``encode`` / ``decode``)."""
        key = (name, repr(sorted(args.items())))
        kept = self.__dict__.setdefault("_kept_statistics", {})
        if key in kept:
            return kept[key]
        stored = None if self.statistics is None else self.statistics.get(name, args)
        if stored is not None:
            try:
                kept[key] = decode(stored)
                return kept[key]
            except (ValueError, TypeError, KeyError) as exc:  # kept by another version
                logger.info("kept %s of study %r not used (%s); computed again", name,
                            self.name, exc)
        value = kept[key] = compute()
        if self.statistics is not None:
            self.statistics.put(name, args, encode(value))
        return value

    def snooping(self, benchmark: Any = "auto", *, n_bootstrap: int = 1000,
                 block_length: float | str = "auto", seed: int = 0, alpha: float = 0.05,
                 max_configurations: int | None = None) -> SnoopingReport:
        """After trying all these parameter sets, is the best better than a benchmark at all?

        Hansen's SPA test and Romano & Wolf's StepM (:mod:`foldwise.snooping`) on every
        distinct set the study evaluated over the full history (causal strategies), on the
        sets each fold tried over its training bars, and on the stitched out-of-sample
        curve (walk-forward); the haircut Sharpe ratio and the minimum backtest length of
        the best set by full-history Sharpe ratio. See
        :mod:`foldwise.aggregate._snooping` for what each window answers.

        Parameters
        ----------
        benchmark
            ``"flat"`` (a return of 0: staying in cash), ``"equal_weight"`` (the universe
            held in equal weights, the study's own benchmark run), ``"buy_and_hold"``
            (single-asset studies: the asset held throughout), ``"auto"`` (equal weight
            when the study recorded it, else flat), or a Series of per-period returns
            indexed by date.
        n_bootstrap, block_length, seed
            The stationary bootstrap: replications, mean block length (``"auto"``: Politis
            & White per window) and seed; the same study and seed give the same report.
        alpha
            StepM's family-wise error rate.
        max_configurations
            Use the first this many distinct sets in the full-history window.

        Returns
        -------
        SnoopingReport
            ``.table`` (one row per window), ``.summary()``, and the full results.
        """
        def compute() -> SnoopingReport:
            return snooping_report(self, benchmark, n_bootstrap=n_bootstrap,
                                   block_length=block_length, seed=seed, alpha=alpha,
                                   max_configurations=max_configurations)

        if not isinstance(benchmark, str):  # a Series: not part of the study, not kept
            return compute()
        args = {"benchmark": benchmark, "n_bootstrap": n_bootstrap,
                "block_length": block_length, "seed": seed, "alpha": alpha,
                "max_configurations": max_configurations}
        return self._kept("snooping", args, compute, encode=SnoopingReport.to_json,
                          decode=SnoopingReport.from_json)

    def keep_report_statistics(self) -> None:
        """Compute now the statistics every report of the study shows — :meth:`overfitting`
        and the data-snooping section (:meth:`snooping` with
        :data:`~foldwise.aggregate._snooping.REPORT_BOOTSTRAP` replications) — and keep them
        with the study (:attr:`statistics`), so that the next ``foldwise show`` or
        :meth:`report` of it reads them instead. :func:`foldwise.optimize` calls this at the
        end of a long optimization (its ``keep_statistics``).

        A study whose snooping section is unavailable (the reports say why) keeps only its
        overfitting statistics.
        """
        self.overfitting()
        try:
            self.snooping(n_bootstrap=REPORT_BOOTSTRAP)
        except SnoopingError as exc:  # only "unavailable": a fault of the machine propagates
            logger.info("study %r: data snooping not kept (%s)", self.name, exc)

    def cpcv_paths(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """CPCV studies: metrics of each out-of-sample path, and the path returns."""
        return tables.cpcv_paths(self.fold_records, self.manifest, self.loader)

    def text_report(self, overfitting: bool = True) -> str:
        """Folds, out-of-sample comparison, verdict, stability and overfitting, as text."""
        from ._text import text_report

        return text_report(self, overfitting=overfitting)

    def report(self, path: str | os.PathLike[str], *, matrix: pd.DataFrame | None = None,
               overfitting: bool = True) -> Path:
        """Write the HTML report: one self-contained file that opens offline.

        The header (strategy, data, splitter, metric, trials, distinct sets, cache hits,
        runtime), the verdict of :meth:`summary` (and an INCOMPLETE banner), the stitched
        out-of-sample equity with its drawdown next to the equal-weight universe, the
        sortable fold table, in- vs out-of-sample metric and the chosen parameters per
        fold, the fold layout, the overfitting statistics (PBO with its logits and
        degradation, PSR and DSR), and per fold the optimization history, the parameter
        importances and the top sets. Sections that do not apply to the study are left
        out with a one-line note. Nothing is run: the figures come from the records and
        the stored runs.

        Parameters
        ----------
        path
            The file to write (replaced atomically if it exists).
        matrix
            The table :func:`foldwise.walk_forward_matrix` returned, shown as a heatmap.
        overfitting
            Include the overfitting statistics (they read every parameter set's run).

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> result.report("report.html")  # doctest: +SKIP
        PosixPath('report.html')
        """
        from ._html import write_report

        return write_report(self, path, matrix=matrix, overfitting=overfitting)

    def __str__(self) -> str:
        """The readable summary ``print(result)`` shows: :meth:`text_report` without the
        overfitting statistics (which read every parameter set's run)."""
        return self.text_report(overfitting=False)

    def __repr__(self) -> str:
        lines = [f"WalkForwardResult({self.name!r}, mode={self.mode}, metric={self.metric} "
                 f"({self.direction}), {len(self.fold_records)} folds)"]
        if self.mode != "walk_forward":
            chosen = self.best_params
            lines.append(f"  best params: {chosen[0] if chosen else None}")
            return "\n".join(lines)
        for record in self.fold_records:
            best = record.best
            if best is None:
                lines.append(f"  fold {record.number}: no completed trial")
                continue
            train = (best.train or {}).get(self.metric, math.nan)
            test = (best.test or {}).get(self.metric, math.nan)
            lines.append(
                f"  fold {record.number}: train {record.train_start.date()}.."
                f"{record.train_end.date()} {self.metric}={train:.3f}  test "
                f"{record.test_start.date()}..{record.test_end.date()} "
                f"{self.metric}={test:.3f}  params={dict(best.params)}")
        return "\n".join(lines)
