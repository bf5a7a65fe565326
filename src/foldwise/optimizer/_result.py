"""``WalkForwardResult``: an optimization read back from its Optuna storage.

Everything here is rebuilt from the storage alone (the manifest's metadata and the trials'
user attributes); nothing is recomputed and no backtest runs. ``optimize`` returns the
same object ``load_result`` builds, so a live result and a reloaded one are the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import optuna
import pandas as pd

from foldwise._canonical import canonical_json
from foldwise._storage import StorageSpec, open_storage, parse_storage
from foldwise.aggregate import Analysis, Criteria
from foldwise.backtest import BacktestResult
from foldwise.errors import OptimizationError

from ._study import META_ATTR, fold_study_name
from ._trials import ERROR_ATTR, INFEASIBLE_ATTR, RESULT_ATTR

__all__ = ["FoldRecord", "WalkForwardResult", "load_result", "read_result", "select_top"]

TEST_ATTR = "foldwise_test"  # fold-study attribute: test metrics of per-fold strategies


@dataclass
class FoldRecord:
    """One fold of an optimization: where it is, and its trials.

    Attributes
    ----------
    number, fold_id
        Position and stable id of the fold.
    train, test
        ``[start, stop)`` bar ranges.
    train_start, train_end, test_start, test_end
        Dates of the first and last bar of each window.
    trials
        One row per trial of the fold's study (walk-forward) — see
        :attr:`WalkForwardResult.trials` for the columns.
    selected
        The top-k distinct parameter sets by in-sample metric, best first: dicts with
        ``rank``, ``trial``, ``params``, ``train`` and ``test`` metrics.
    """

    number: int
    fold_id: str
    train: list[list[int]]
    test: list[list[int]]
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    trials: pd.DataFrame = field(repr=False)
    selected: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def best(self) -> dict[str, Any] | None:
        return self.selected[0] if self.selected else None


def _trial_rows(trials: list[optuna.trial.FrozenTrial], fold: int | None) -> pd.DataFrame:
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        metrics = t.user_attrs.get(RESULT_ATTR) or {}
        error = t.user_attrs.get(ERROR_ATTR)
        rows.append({
            "fold": fold, "trial": t.number, "state": t.state.name, "value": t.value,
            "params": dict(t.params),
            "train": metrics.get("train"), "test": metrics.get("test"),
            "cv_folds": metrics.get("folds"),
            "evaluation": metrics or None,
            "infeasible": t.user_attrs.get(INFEASIBLE_ATTR),
            "error": f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else None,
            "datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete,
        })
    columns = ["fold", "trial", "state", "value", "params", "train", "test", "cv_folds",
               "evaluation", "infeasible", "error", "datetime_start", "datetime_complete"]
    return pd.DataFrame(rows, columns=columns)


def select_top(trials: pd.DataFrame, direction: str, top_k: int) -> list[pd.Series]:
    """The best ``top_k`` COMPLETE trials with distinct parameters, best first.

    Ties on the value go to the earlier trial, so the choice is the same in every process.
    """
    complete = trials[trials["state"] == "COMPLETE"]
    if complete.empty:
        return []
    ascending = direction == "minimize"
    ordered = complete.sort_values(["value", "trial"], ascending=[ascending, True],
                                   kind="stable")
    chosen, seen = [], set()
    for _, row in ordered.iterrows():
        key = canonical_json(row["params"])
        if key in seen:
            continue
        seen.add(key)
        chosen.append(row)
        if len(chosen) == top_k:
            break
    return chosen


class WalkForwardResult:
    """The result of :func:`foldwise.optimize`, rebuilt from the study storage and the cache.

    Nothing here runs a backtest: trials come from the storage, return series from the
    cache. Tables are computed when first asked for.

    Attributes
    ----------
    name : str
        The study name.
    mode : str
        ``"walk_forward"`` or ``"cv"``.
    metric, direction : str
        The optimized metric and whether it was maximized.
    metadata : dict
        What the study was run with (data, splitter, folds, strategy, space, settings).
    fold_records : list of FoldRecord
        One per fold, with its trials and its top-k parameter sets.
    """

    def __init__(self, name: str, metadata: Mapping[str, Any], fold_records: list[FoldRecord],
                 cv_trials: pd.DataFrame | None, storage: StorageSpec, cache: Any = None) -> None:
        self.name = name
        self.metadata = dict(metadata)
        self.mode: str = metadata["mode"]
        self.metric: str = metadata["metric"]
        self.direction: str = metadata["direction"]
        self.top_k: int = int(metadata.get("top_k", 1))
        self.fold_records = fold_records
        self._cv_trials = cv_trials
        self.storage = storage
        self._cache = cache

    @cached_property
    def analysis(self) -> Analysis:
        """The aggregator behind the tables (:class:`foldwise.aggregate.Analysis`)."""
        from foldwise.cache import BacktestCache

        cache = self._cache if isinstance(self._cache, BacktestCache) else BacktestCache(self._cache)
        return Analysis(self, cache)

    # --- trials --------------------------------------------------------------------------

    @property
    def trials(self) -> pd.DataFrame:
        """Every trial: fold, trial number, state, objective value, params, train and test
        metrics (dicts), the stored evaluation, the reason of an infeasible or failed
        trial, and times."""
        if self.mode == "cv":
            assert self._cv_trials is not None
            return self._cv_trials.copy()
        frames = [r.trials for r in self.fold_records if not r.trials.empty]
        return pd.concat(frames, ignore_index=True) if frames else _trial_rows([], None)

    @property
    def best_params(self) -> list[dict[str, Any]]:
        """Walk-forward: the parameters chosen on each fold's training window, fold by fold.
        Cross-validated: one entry, the best set by the aggregated fold metric."""
        if self.mode == "cv":
            best = self._cv_best()
            return [] if best is None else [dict(best["params"])]
        return [dict(r.best["params"]) for r in self.fold_records if r.best is not None]

    def _cv_best(self) -> pd.Series | None:
        assert self._cv_trials is not None
        chosen = select_top(self._cv_trials, self.direction, 1)
        return chosen[0] if chosen else None

    # --- per fold ------------------------------------------------------------------------

    @property
    def folds(self) -> pd.DataFrame:
        """One row per fold. Walk-forward: windows, chosen parameters, in-sample (``is_``)
        and out-of-sample (``oos_``) metric, Sharpe, annual return, max drawdown and trades,
        walk-forward efficiency (``wfe``), deflated Sharpe ratio of the choice (``dsr``),
        trials completed / failed / pruned / infeasible and cache hits. Cross-validated:
        the best set's metric on each fold's test window."""
        if self.mode == "cv":
            return self._cv_folds()
        return self.analysis.folds

    def _cv_folds(self) -> pd.DataFrame:
        best = self._cv_best()
        rows = []
        for record in self.fold_records:
            metrics = (best["cv_folds"] or {}).get(str(record.number)) if best is not None else None
            rows.append({
                "fold": record.number, "fold_id": record.fold_id,
                "train_start": record.train_start, "train_end": record.train_end,
                "test_start": record.test_start, "test_end": record.test_end,
                "params": dict(best["params"]) if best is not None else None,
                f"oos_{self.metric}": (metrics or {}).get(self.metric, math.nan)})
        return pd.DataFrame(rows)

    @property
    def ranking(self) -> pd.DataFrame:
        """Parameter sets judged out of sample, ranked across folds (robust sets first)."""
        return self.analysis.ranking

    # --- the out-of-sample curve ---------------------------------------------------------

    @property
    def oos_result(self) -> BacktestResult:
        """The stitched out-of-sample walk-forward as a BacktestResult (returns, positions,
        trades, turnover and costs, including the cost of every re-optimization)."""
        return self.analysis.oos

    @property
    def oos_returns(self) -> pd.Series:
        """Per-period returns of the stitched out-of-sample curve."""
        return self.analysis.oos.returns

    @property
    def oos_equity(self) -> pd.Series:
        """Compounded wealth of the stitched out-of-sample curve (1.0 before the start)."""
        return self.analysis.oos.equity

    @property
    def oos_metrics(self) -> dict[str, float]:
        """Every metric of :data:`foldwise.metrics.METRICS` of the stitched curve."""
        return self.analysis.oos.metrics()

    @property
    def comparison(self) -> pd.DataFrame:
        """The out-of-sample curve next to the chosen sets in sample and to an equal-weight
        holding of the universe over the same dates."""
        return self.analysis.comparison

    @property
    def walk_forward_efficiency(self) -> float:
        """Annualized out-of-sample metric over the mean annualized in-sample metric."""
        return self.analysis.walk_forward_efficiency

    # --- stability, verdict, overfitting ---------------------------------------------------

    @property
    def parameter_stability(self) -> pd.DataFrame:
        """Per parameter: the value chosen in each fold and its dispersion across folds."""
        return self.analysis.parameter_stability

    @property
    def rank_correlation(self) -> pd.DataFrame:
        """Per fold: Spearman correlation of in- and out-of-sample metric over its sets."""
        return self.analysis.rank_correlation

    def summary(self, criteria: Criteria | None = None) -> pd.DataFrame:
        """Pass/fail of the walk-forward criteria (thresholds in :class:`Criteria`)."""
        return self.analysis.summary(criteria)

    def passed(self, criteria: Criteria | None = None) -> bool:
        """True when every criterion of :meth:`summary` passes."""
        return bool(self.summary(criteria)["passed"].all())

    def overfitting(self, n_splits: int = 16, max_configurations: int | None = None
                    ) -> dict[str, float]:
        """Probability of backtest overfitting (CSCV over every distinct set evaluated),
        and the PSR and DSR of the out-of-sample curve (see :mod:`foldwise.stats`)."""
        return self.analysis.overfitting(n_splits, max_configurations)

    def returns_matrix(self, max_configurations: int | None = None) -> pd.DataFrame:
        """Full-history returns of every distinct parameter set evaluated (one column each)."""
        return self.analysis.returns_matrix(max_configurations)

    def cpcv_paths(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """CPCV studies: metrics of each out-of-sample path, and the path returns."""
        return self.analysis.cpcv_paths()

    def text_report(self, overfitting: bool = True) -> str:
        """Folds, out-of-sample comparison, verdict, stability and overfitting, as text."""
        from foldwise.aggregate import text_report

        return text_report(self, overfitting=overfitting)

    def __repr__(self) -> str:
        lines = [f"WalkForwardResult({self.name!r}, mode={self.mode}, metric={self.metric} "
                 f"({self.direction}), {len(self.fold_records)} folds)"]
        if self.mode == "walk_forward":
            for record in self.fold_records:
                best = record.best
                if best is None:
                    lines.append(f"  fold {record.number}: no completed trial")
                    continue
                train = (best["train"] or {}).get(self.metric, math.nan)
                test = (best["test"] or {}).get(self.metric, math.nan)
                lines.append(
                    f"  fold {record.number}: train {record.train_start.date()}.."
                    f"{record.train_end.date()} {self.metric}={train:.3f}  test "
                    f"{record.test_start.date()}..{record.test_end.date()} "
                    f"{self.metric}={test:.3f}  params={best['params']}")
        else:
            best = self.best_params
            lines.append(f"  best params: {best[0] if best else None}")
        return "\n".join(lines)


def _fold_record(meta: Mapping[str, Any], trials: pd.DataFrame,
                 selected: list[dict[str, Any]]) -> FoldRecord:
    return FoldRecord(
        number=int(meta["number"]), fold_id=str(meta["fold_id"]),
        train=[list(r) for r in meta["train"]], test=[list(r) for r in meta["test"]],
        train_start=pd.Timestamp(meta["train_start"]), train_end=pd.Timestamp(meta["train_end"]),
        test_start=pd.Timestamp(meta["test_start"]), test_end=pd.Timestamp(meta["test_end"]),
        trials=trials, selected=selected)


def load_result(study: str, storage: Any = None, cache: Any = None) -> WalkForwardResult:
    """Rebuild the result of optimization ``study`` from its storage; no backtest runs.

    Parameters
    ----------
    study
        The study name given to :func:`foldwise.optimize`.
    storage
        The same ``storage=`` as the optimization (None: the default journal file).
    cache
        The :class:`~foldwise.BacktestCache` (or its directory) of the optimization, for
        what needs return series (the stitched out-of-sample curve); None: the default.
    """
    spec = storage if isinstance(storage, StorageSpec) else parse_storage(storage)
    return read_result(study, spec, open_storage(spec), cache)


def read_result(study: str, spec: StorageSpec, opened: Any, cache: Any) -> WalkForwardResult:
    """:func:`load_result` on an already opened storage (``spec`` names it)."""
    try:
        manifest = optuna.load_study(study_name=study, storage=opened)
    except KeyError:
        names = sorted(n for n in optuna.get_all_study_names(storage=opened) if "/fold-" not in n)
        raise OptimizationError(
            f"no study named {study!r} in {spec}; the studies there are {names}. Check the "
            "name and the storage= argument.") from None
    metadata = manifest.user_attrs.get(META_ATTR)
    if metadata is None:
        raise OptimizationError(
            f"study {study!r} in {spec} was not created by foldwise.optimize (it has no "
            f"{META_ATTR!r} metadata); open it with optuna.load_study instead.")
    records = []
    cv_trials = None
    if metadata["mode"] == "cv":
        cv_trials = _trial_rows(manifest.get_trials(deepcopy=False), None)
        records = [_fold_record(meta, _trial_rows([], meta["number"]), [])
                   for meta in metadata["folds"]]
        return WalkForwardResult(study, metadata, records, cv_trials, spec, cache)
    top_k = int(metadata.get("top_k", 1))
    for meta in metadata["folds"]:
        number = int(meta["number"])
        try:
            fold_study = optuna.load_study(study_name=fold_study_name(study, number),
                                           storage=opened)
        except KeyError:
            fold_study = None
        trials = _trial_rows(fold_study.get_trials(deepcopy=False), number) if fold_study else \
            _trial_rows([], number)
        stored_tests = fold_study.user_attrs.get(TEST_ATTR, {}) if fold_study else {}
        selected = []
        for rank, row in enumerate(select_top(trials, metadata["direction"], top_k)):
            evaluation = dict(row["evaluation"] or {})
            tested = stored_tests.get(str(row["trial"]))  # per-fold strategies
            if evaluation.get("test") is None and tested:
                evaluation = {**evaluation, "test": tested["test"],
                              "runs": {**evaluation.get("runs", {}), **tested.get("runs", {})}}
            selected.append({"rank": rank, "trial": int(row["trial"]),
                             "params": dict(row["params"]), "train": evaluation.get("train"),
                             "test": evaluation.get("test"), "evaluation": evaluation})
        records.append(_fold_record(meta, trials, selected))
    return WalkForwardResult(study, metadata, records, cv_trials, spec, cache)
