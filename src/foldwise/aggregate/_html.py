"""The HTML report of a walk-forward result: one self-contained file a person reads fold by
fold (:meth:`foldwise.WalkForwardResult.report`).

The page is rendered by jinja2 from one template shipped with the package
(``templates/report.html.j2``); the figures are plotly figures (:mod:`._figures`) drawn in
the browser by plotly.js, which is inlined once, so the file opens offline and needs
nothing but itself. Figures inside a folded fold section are drawn when it is opened.

This module reads everything from the result — its records, its tables and the runs its
loader reads — and opens no storage, runs no backtest and imports nothing of the
optimizer. Each section is built on its own: a section that does not apply to the study
(the stitched curve of a cross-validated study, PBO of a per-fold strategy, CPCV paths of
a walk-forward) is left out with a one-line note, and one whose runs cannot be had says so
instead of stopping the report.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd
from optuna.trial import TrialState

from foldwise._atomic import atomic_path
from foldwise._canonical import canonical_json
from foldwise._version import __version__
from foldwise.errors import FoldwiseError, ReportError
from foldwise.splits import (
    CombinatorialPurgedKFold,
    PurgedKFold,
    WalkForward,
    positions_to_ranges,
    ranges_to_positions,
)
from foldwise.stats import PBOResult, probability_of_backtest_overfitting

from . import _figures as figures
from ._importance import param_importances
from ._overfitting import overfitting_analysis
from ._snooping import MEANINGS as snooping_meanings
from ._snooping import REPORT_BOOTSTRAP
from ._tables import wfe_metric
from ._text import incomplete_message

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ._folds import FoldRecord
    from ._result import WalkForwardResult

__all__ = ["check_matrix", "write_report"]

logger = logging.getLogger(__name__)

#: The splitters whose folds can be computed again from a stored configuration (to show
#: the exact purged and embargoed bars, which the manifest does not keep).
_SPLITTERS = {cls.__name__: cls for cls in (WalkForward, PurgedKFold, CombinatorialPurgedKFold)}

_PERCENT_METRICS = frozenset({"annual_return", "annual_volatility", "max_drawdown",
                              "total_return", "win_rate"})


# --- formatting ----------------------------------------------------------------------------


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{float(value):,.{digits}f}"
    return str(value)


def _percent(value: Any, digits: int = 1) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    return f"{float(value):.{digits}%}"


def _metric(name: str, value: Any) -> str:
    return _percent(value) if name in _PERCENT_METRICS else _number(value, 2)


def _params(params: Mapping[str, Any] | None) -> str:
    if not params:
        return "–"
    return ", ".join(f"{k}={_number(v, 4) if isinstance(v, float) else v}"
                     for k, v in params.items())


def _date(value: Any) -> str:
    stamp = pd.Timestamp(value)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _raw(value: Any) -> str:
    """A cell's exact value, for sorting and for programs reading the table."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Mapping):
        return canonical_json(dict(value))
    return str(value)


# --- the page model (what the template renders) --------------------------------------------


@dataclass
class _Page:
    """Blocks of the page; figures get the ids the template draws them under."""

    figures: int = 0

    def figure(self, figure: go.Figure, caption: str = "") -> dict[str, Any]:
        self.figures += 1
        return {"kind": "figure", "id": f"figure-{self.figures}",
                "json": figures.figure_json(figure), "caption": caption}


def _cell(text: str, value: Any = None, *, numeric: bool = False,
          css: str = "") -> dict[str, Any]:
    raw = _raw(value)
    sort = raw
    if numeric and (value is None or (isinstance(value, float) and math.isnan(value))):
        sort = ""
    return {"text": text, "value": raw, "sort": sort, "numeric": numeric, "css": css}


def _table(columns: Sequence[str], rows: Sequence[Sequence[dict[str, Any]]], *,
           table_id: str = "", sortable: bool = False, caption: str = "") -> dict[str, Any]:
    return {"kind": "table", "id": table_id, "columns": list(columns),
            "rows": [list(r) for r in rows], "sortable": sortable, "caption": caption}


def _text(text: str, css: str = "") -> dict[str, Any]:
    return {"kind": "text", "text": text, "css": css}


def _stats(items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """Headline numbers: (label, value, one sentence saying what it means)."""
    return {"kind": "stats", "items": [{"label": a, "value": b, "meaning": c}
                                       for a, b, c in items]}


@dataclass
class _Section:
    id: str
    title: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def _section(section_id: str, title: str, build: Callable[[], list[dict[str, Any]] | str]
             ) -> _Section:
    """A section whose blocks ``build`` returns; a string is the one-line note of a section
    that does not apply. A section whose stored runs cannot be had says why and the rest of
    the report is written."""
    try:
        built = build()
    except FoldwiseError as exc:
        logger.warning("report section %r left out: %s", title, exc)
        return _Section(section_id, title, note=f"Not available: {exc}")
    if isinstance(built, str):
        return _Section(section_id, title, note=built)
    return _Section(section_id, title, blocks=built)


# --- what the study is ----------------------------------------------------------------------


def _is_cpcv(result: WalkForwardResult) -> bool:
    """Whether the study has CPCV paths: a combinatorial splitter, each split with its own
    choice (walk-forward mode; a cross-validated study trades one set everywhere)."""
    manifest = result.manifest
    return (result.mode == "walk_forward" and bool(manifest.groups)
            and all(w.test_groups for w in manifest.folds))


def _stitched(result: WalkForwardResult) -> bool:
    """Whether the study has one stitched out-of-sample curve (walk-forward, not CPCV)."""
    return result.mode == "walk_forward" and not _is_cpcv(result)


def _all_trials(result: WalkForwardResult) -> list[Any]:
    return [t for trials in result.record.trials.values() for t in trials]


def _header(result: WalkForwardResult) -> dict[str, Any]:
    manifest = result.manifest
    data = manifest.data
    trials = _all_trials(result)
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    distinct = len({canonical_json(dict(t.params)) for t in complete})
    hits = sum(1 for t in complete if t.record.evaluations and t.record.backtests == 0)
    assets = ""
    try:
        benchmark = result.benchmark
    except FoldwiseError:
        benchmark = None
    if benchmark is not None:
        names = [str(a) for a in benchmark.assets]
        assets = ": " + ", ".join(names[:12]) + (f", … ({len(names)} in all)"
                                                 if len(names) > 12 else "")
    strategy = manifest.strategy
    facts = [
        ("strategy", f"{strategy.name}" + (f" ({strategy.import_path})"
                                           if strategy.import_path else "")
         + ("" if strategy.causal else ", per fold (causal=False)")
         + (", lookahead checked" if manifest.lookahead_checked else "")),
        ("data", f"{data.n_dates:,} bars {data.first[:10]} to {data.last[:10]}, "
                 f"{data.n_assets} asset(s){assets}"),
        ("splitter", f"{manifest.splitter.get('repr', '?')}: {len(manifest.folds)} folds"),
        ("metric", f"{result.metric} ({result.direction}d in sample), mode {result.mode}"),
        ("trials", f"{len(trials):,} ({states.count(TrialState.COMPLETE):,} complete, "
                   f"{states.count(TrialState.FAIL):,} failed, "
                   f"{states.count(TrialState.PRUNED):,} pruned or infeasible)"
                   + (f"; budget {manifest.n_trials} per study"
                      if manifest.n_trials is not None else "")),
        ("distinct sets", f"{distinct:,} parameter sets evaluated"),
        ("cache hits", f"{hits:,} completed trials served by the cache without a backtest; "
                       f"{sum(t.record.backtests for t in trials):,} backtests run"),
    ]
    started = [t.started for t in trials if t.started is not None]
    finished = [t.completed for t in trials if t.completed is not None]
    if started and finished:
        busy = sum((t.completed - t.started).total_seconds() for t in trials
                   if t.started is not None and t.completed is not None)
        facts.append(("runtime", f"{_duration((max(finished) - min(started)).total_seconds())}"
                                 f" from the first trial's start ({min(started):%Y-%m-%d %H:%M})"
                                 f" to the last one's end, {_duration(busy)} in trials"))
    incomplete = "" if result.complete else incomplete_message(result)
    return {"title": f"{strategy.name}: {result.name}", "facts": facts,
            "incomplete": incomplete}


def _verdict(result: WalkForwardResult) -> dict[str, Any]:
    """The pass/fail criteria, or a note saying why there are none."""
    if not _stitched(result):
        has = ("a CPCV study has several paths (below)" if _is_cpcv(result) else
               "a cross-validated study has none")
        return {"note": f"The pass/fail criteria judge one stitched out-of-sample curve; {has}."}
    try:
        summary = result.summary()
    except FoldwiseError as exc:
        return {"note": f"Not available: {exc}"}
    rows = [[_cell(str(r.criterion), r.criterion),
             _cell(_percent(r.value), float(r.value), numeric=True),  # type: ignore[arg-type]
             _cell(str(r.threshold), r.threshold),
             _cell("pass" if r.passed else "FAIL", bool(r.passed),
                   css="pass" if r.passed else "fail")]
            for r in summary.itertuples(index=False)]
    passed = bool(summary["passed"].all())
    return {"passed": passed,
            "table": _table(["criterion", "value", "threshold", "result"], rows,
                            table_id="criteria")}


# --- sections --------------------------------------------------------------------------------


def _equity(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]] | str:
    if not _stitched(result):
        return ("No stitched out-of-sample curve: " +
                ("each CPCV path is a curve of its own (see the CPCV paths below)."
                 if _is_cpcv(result) else
                 "a cross-validated study trades one parameter set on every fold (see the "
                 "fold table)."))
    oos = result.oos_result
    universe = None
    benchmark = result.benchmark
    if benchmark is not None:
        universe = benchmark.slice(oos.index[0], oos.index[-1]).equity
    in_sample = []
    for record in result.fold_records:
        best = record.best
        if best is None or len(record.train) != 1:
            continue
        run = result.loader.load(best.evaluation.run_key("train"))
        positions = ranges_to_positions(np.asarray(record.train)) - best.evaluation.offset
        in_sample.append((record.number, run.take(positions).equity))
    boundaries = [r.test_start for r in result.fold_records[1:] if r.best is not None]
    figure = figures.equity_figure(oos.equity, universe=universe, in_sample=in_sample,
                                   boundaries=boundaries)
    comparison = result.comparison
    columns = [c for c in comparison.columns if c != "dates"]
    rows = [[_cell(str(name), name)] +
            [_cell(_metric(c, row[c]), float(row[c]), numeric=True) for c in columns] +
            [_cell(str(row["dates"]), row["dates"])]
            for name, row in comparison.iterrows()]
    return [
        _text("The walk-forward as it would have been traded: each test window with the "
              "parameters chosen on its own training window, the cost of every "
              "re-optimization included. Dotted lines mark where each fold's test window "
              "starts; the equal-weight universe is held over the same dates. The chosen "
              "sets' curves over their training windows are in the legend (click to show)."),
        page.figure(figure),
        _table(["", *columns, "dates"], rows, table_id="comparison",
               caption="In sample: the mean of the chosen sets over their training windows "
                       "(annualized figures only; drawdown, Calmar and total return grow "
                       "with the length of a period and are compared over the same dates)."),
    ]


def _fold_table(result: WalkForwardResult) -> list[dict[str, Any]]:
    folds = result.folds
    metric = result.metric
    if result.mode == "cv":
        columns = ["fold", "train", "test", "parameters", f"OOS {metric}"]
        rows = [[_cell(str(r["fold"]), int(r["fold"]), numeric=True),
                 _cell(f"{_date(r['train_start'])} – {_date(r['train_end'])}",
                       r["train_start"]),
                 _cell(f"{_date(r['test_start'])} – {_date(r['test_end'])}", r["test_start"]),
                 _cell(_params(r["params"]), r["params"]),
                 _cell(_number(r[f"oos_{metric}"]), float(r[f"oos_{metric}"]), numeric=True)]
                for _, r in folds.iterrows()]
        note = ("Cross-validated: one parameter set, the best by the aggregated fold "
                "metric, judged on every fold's test window.")
    else:
        columns = ["fold", "train", "test", "chosen parameters", f"IS {metric}",
                   f"OOS {metric}", "WFE", "DSR", "trials", "cache hits"]
        rows = []
        for _, r in folds.iterrows():
            oos_value = float(r[f"oos_{metric}"])
            rows.append([
                _cell(str(r["fold"]), int(r["fold"]), numeric=True),
                _cell(f"{_date(r['train_start'])} – {_date(r['train_end'])}", r["train_start"]),
                _cell(f"{_date(r['test_start'])} – {_date(r['test_end'])}", r["test_start"]),
                _cell(_params(r["params"]), r["params"]),
                _cell(_number(r[f"is_{metric}"]), float(r[f"is_{metric}"]), numeric=True),
                _cell(_number(oos_value), oos_value, numeric=True,
                      css="neg" if oos_value < 0 else ""),
                _cell(_number(r["wfe"], 2), float(r["wfe"]), numeric=True),
                _cell(_number(r["dsr"], 2), float(r["dsr"]), numeric=True),
                _cell(str(int(r["trials_complete"])), int(r["trials_complete"]), numeric=True),
                _cell(str(int(r["cache_hits"])), int(r["cache_hits"]), numeric=True)])
        note = (f"IS / OOS: the chosen set's {metric} on the training / test window. WFE: "
                f"walk-forward efficiency, OOS over IS {wfe_metric(metric)}. DSR: deflated "
                "Sharpe ratio of the choice among the fold's distinct sets. Trials: "
                "completed. Click a column header to sort.")
    return [_table(columns, rows, table_id="fold-table", sortable=True), _text(note, "note")]


def _is_oos(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]] | str:
    folds = result.folds
    metric = result.metric
    numbers = [int(n) for n in folds["fold"]]
    if result.mode == "cv":
        figure = figures.is_oos_figure(numbers, None, folds[f"oos_{metric}"].to_numpy(), metric)
        return [_text("Cross-validated: the one chosen set's metric on each fold's test window "
                      "(its in-sample value is the aggregated objective, the same for every "
                      "fold)."), page.figure(figure)]
    figure = figures.is_oos_figure(numbers, folds[f"is_{metric}"].to_numpy(),
                                   folds[f"oos_{metric}"].to_numpy(), metric)
    blocks = [_text(f"Each fold's choice: its {metric} on the training window it was chosen "
                    "on, and on the unseen test window that follows. Out-of-sample bars far "
                    "below the in-sample ones are what overfitting looks like."),
              page.figure(figure)]
    correlation = result.rank_correlation
    rho = correlation["spearman"].to_numpy(dtype=float)
    if np.isfinite(rho).any():
        blocks.append(_text(
            f"Rank correlation of in- and out-of-sample {metric} over each fold's distinct sets "
            f"(Spearman): mean {np.nanmean(rho):.2f}, from {np.nanmin(rho):.2f} to "
            f"{np.nanmax(rho):.2f}; near 1 the in-sample ranking carries over, near 0 or below "
            "it does not.", "note"))
    return blocks


def _space_ranges(result: WalkForwardResult) -> dict[str, tuple[float, float] | None]:
    described = result.manifest.space.get("params")
    ranges: dict[str, tuple[float, float] | None] = {}
    if isinstance(described, Mapping):
        for name, spec in described.items():
            if spec.get("type") in ("int", "float"):
                ranges[name] = (float(spec["low"]), float(spec["high"]))
    return ranges


def _stability(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]] | str:
    if result.mode == "cv":
        return "Cross-validated: one parameter set for every fold, so nothing to compare."
    stability = result.parameter_stability
    if stability.empty:
        return "No fold chose a parameter set."
    chosen = [r for r in result.fold_records if r.best is not None]
    searched = set(_space_ranges(result)) | {
        name for name, spec in (result.manifest.space.get("params") or {}).items()
        if spec.get("type") != "fixed"}
    names = [n for n in stability.index if not searched or n in searched]
    if not names:
        return "Every parameter is fixed: nothing was chosen."
    values = {name: list(stability.loc[name, "values"]) for name in names}
    figure = figures.stability_figure([r.number for r in chosen], values, _space_ranges(result))
    rows = []
    for name in names:
        row = stability.loc[name]
        rows.append([_cell(str(name), name),
                     _cell(str(int(row["n_unique"])), int(row["n_unique"]), numeric=True),
                     _cell(_percent(row["most_common_share"], 0),
                           float(row["most_common_share"]), numeric=True)] +
                    [_cell(_number(row.get(c, math.nan), 2), float(row.get(c, math.nan)),
                           numeric=True) for c in ("mean", "std", "min", "max", "cv")])
    return [_text("The value each fold chose for every searched parameter, on the scale of "
                  "its search range. Values that jump across the range from fold to fold say "
                  "the choice is noise; a stable strategy chooses similar values."),
            page.figure(figure),
            _table(["parameter", "distinct values", "most common in", "mean", "std", "min",
                    "max", "cv"], rows, table_id="stability")]


def _data_dates(result: WalkForwardResult) -> pd.DatetimeIndex | None:
    """The study's dates, read from the equal-weight universe's full-history run."""
    try:
        benchmark = result.benchmark
    except FoldwiseError as exc:
        logger.info("fold layout drawn over bar numbers: %s", exc)
        return None
    if benchmark is None or len(benchmark.index) != result.manifest.data.n_dates:
        return None
    return benchmark.index


def _recomputed_folds(result: WalkForwardResult, dates: pd.DatetimeIndex | None
                      ) -> list[dict[str, np.ndarray]] | None:
    """Purged and embargoed bars of each fold, computed again by the study's splitter from
    its stored configuration and checked against the stored windows; None when that cannot
    be done (a splitter built from what its configuration cannot hold)."""
    config = result.manifest.splitter.get("config") or {}
    cls = _SPLITTERS.get(str(config.get("splitter")))
    if cls is None or dates is None:
        return None
    try:
        splitter = cls(**dict(config.get("params") or {}))
        folds = splitter.folds(pd.Series(np.zeros(len(dates)), index=dates))
    except (FoldwiseError, TypeError, ValueError) as exc:
        logger.info("purged and embargoed bars not recomputed: %s", exc)
        return None
    windows = result.manifest.folds
    if len(folds) != len(windows) or any(
            tuple(f.train_ranges) != tuple(w.train) or tuple(f.test_ranges) != tuple(w.test)
            for f, w in zip(folds, windows, strict=True)):
        return None
    return [{"purged": f.purged, "embargoed": f.embargoed} for f in folds]


def _layout(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]]:
    manifest = result.manifest
    n = manifest.data.n_dates
    dates = _data_dates(result)
    exact = _recomputed_folds(result, dates)
    bars: list[dict[str, Any]] = []

    def add(fold: int, kind: str, start: int, stop: int) -> None:
        if stop <= start:
            return
        if dates is None:
            bars.append({"fold": fold, "kind": kind, "start": start, "stop": stop,
                         "bars": stop - start})
            return
        step = dates[-1] - dates[-2] if len(dates) > 1 else pd.Timedelta(days=1)
        end = dates[stop] if stop < len(dates) else dates[-1] + step
        bars.append({"fold": fold, "kind": kind, "start": dates[start], "stop": end,
                     "bars": stop - start})

    for number, window in enumerate(manifest.folds):
        train, test = list(window.train), list(window.test)
        if manifest.warmup and train:
            add(window.number, "warmup", max(0, train[0][0] - manifest.warmup), train[0][0])
        for a, b in train:
            add(window.number, "train", a, b)
        for a, b in test:
            add(window.number, "test", a, b)
        if exact is not None:
            for kind in ("purged", "embargoed"):
                for a, b in positions_to_ranges(exact[number][kind]):
                    add(window.number, kind, int(a), int(b))
            continue
        used = np.zeros(n, dtype=bool)
        for a, b in (*train, *test):
            used[a:b] = True
        first = min(r[0] for r in (*train, *test))
        last = max(r[1] for r in (*train, *test))
        gap = ~used[first:last]
        for a, b in positions_to_ranges(np.flatnonzero(gap) + first):
            add(window.number, "excluded", int(a), int(b))
    figure = figures.fold_layout_figure(bars, dated=dates is not None)
    removed = sum(f[k].size for f in exact for k in ("purged", "embargoed")) if exact else 0
    how = (("purged and embargoed bars as the splitter computes them" if removed else
            "the splitter purged and embargoed no bar")
           if exact is not None else
           "bars between or around the windows that training left out (purge or embargo)")
    return [_text(f"Where each fold trains and tests, over the data's {n:,} bars: {how}"
                  + ("; the warm-up history a per-fold strategy reads before its training "
                     "window" if manifest.warmup else "") + "."),
            page.figure(figure)]


def _pbo_of(result: WalkForwardResult, n_splits: int = 16
            ) -> tuple[dict[str, float], PBOResult | None]:
    """The overfitting statistics of ``result`` and the CSCV details behind its PBO."""
    matrix = (result.returns_matrix().to_numpy() if result.manifest.strategy.causal
              else None)
    if _stitched(result):
        return overfitting_analysis(result.oos_result, matrix, n_splits=n_splits)
    if matrix is None or matrix.shape[1] < 2:
        return {"pbo": math.nan, "n_configurations": float(0 if matrix is None
                                                           else matrix.shape[1])}, None
    splits = n_splits
    while splits > 2 and matrix.shape[0] < 2 * splits:
        splits -= 2
    details = probability_of_backtest_overfitting(matrix, n_splits=splits)
    return {**details.summary(), "n_configurations": float(matrix.shape[1])}, details


def _overfitting(result: WalkForwardResult, page: _Page, enabled: bool
                 ) -> list[dict[str, Any]] | str:
    if not enabled:
        return "Left out: the report was written with overfitting=False."
    summary, pbo = _pbo_of(result)
    blocks: list[dict[str, Any]] = []
    n_sets = int(summary.get("n_configurations", 0))
    items = []
    if pbo is not None:
        items.append((
            "PBO", _percent(pbo.pbo, 0),
            f"Probability of backtest overfitting: across the {len(pbo.logits):,} ways to "
            f"split the history into halves (CSCV, {pbo.n_splits} blocks, {n_sets:,} distinct "
            "sets), how often the set best on one half ranks in the bottom half on the "
            "other; near 0 the selection carries over, 50 % or more it is no better than "
            "chance."))
        items.append((
            "degradation", _number(pbo.degradation_slope, 2),
            "Slope of out- on in-sample Sharpe ratio of the selected sets over the CSCV "
            "splits: below 0, the better a set did in sample, the worse it did out of "
            "sample."))
        items.append((
            "probability of loss", _percent(pbo.probability_of_loss, 0),
            "Share of the CSCV splits where the set chosen in sample lost money (a Sharpe "
            "ratio below 0) out of sample."))
    if _stitched(result):
        items.append((
            "PSR", _percent(summary.get("oos_psr", math.nan), 0),
            "Probabilistic Sharpe ratio of the stitched out-of-sample curve: the "
            "probability that its true Sharpe ratio is above 0, given its length, skewness "
            "and kurtosis."))
        items.append((
            "DSR", _percent(summary.get("oos_dsr", math.nan), 0),
            f"Deflated Sharpe ratio: the same probability against the best Sharpe ratio that "
            f"{n_sets:,} skill-less trials (the distinct parameter sets tried) would show by "
            "luck; it is what is left of the PSR once the search is paid for."
            if n_sets >= 2 else
            "Deflated Sharpe ratio: needs the full-history returns of the sets tried, which "
            "a per-fold strategy does not have."))
    blocks.append(_stats(items))
    if pbo is not None:
        blocks.append(page.figure(
            figures.logit_histogram(pbo.logits),
            "Logits of the in-sample best's out-of-sample rank over the CSCV splits: right of "
            "0 (green) it ranked in the top half out of sample, left of 0 (red) in the "
            "bottom half. PBO is the red share."))
        blocks.append(page.figure(
            figures.degradation_figure(pbo.in_sample, pbo.out_of_sample,
                                       slope=pbo.degradation_slope,
                                       intercept=pbo.degradation_intercept),
            "Degradation: the in-sample best of each CSCV split, its in- against its "
            "out-of-sample Sharpe ratio (per period), with the least-squares line."))
    else:
        blocks.append(_text(
            "No PBO: it needs the full-history returns of at least two parameter sets, and "
            + ("a per-fold (causal=False) strategy has runs per fold only."
               if not result.manifest.strategy.causal else "fewer than two sets were "
               "evaluated."), "note"))
    if _stitched(result):
        folds = result.folds
        metric = result.metric
        blocks.append(page.figure(
            figures.chosen_scatter(folds[f"is_{metric}"].to_numpy(),
                                   folds[f"oos_{metric}"].to_numpy(),
                                   [int(n) for n in folds["fold"]], metric),
            f"Each fold's chosen set: in- against out-of-sample {metric}. Points below the "
            "dashed line did worse out of sample than in sample."))
    return blocks


def _matrix(table: pd.DataFrame | None, result: WalkForwardResult, page: _Page
            ) -> list[dict[str, Any]] | str:
    if table is None:
        return ("No walk-forward matrix given: pass report(path, "
                "matrix=foldwise.walk_forward_matrix(...)) to show how the result depends on "
                "the window lengths.")
    value = _matrix_value(table, result.metric)
    return [_text("The same optimization over a grid of training and test window lengths: "
                  f"each cell is the stitched out-of-sample {value[4:]} of its own "
                  "walk-forward (✓ passed, ✗ failed its pass/fail summary). A robust strategy "
                  "is good over a region of the grid, not in one lucky cell."),
            page.figure(figures.matrix_heatmap(table, value))]


def _matrix_value(table: pd.DataFrame, metric: str) -> str:
    if f"oos_{metric}" in table.columns:
        return f"oos_{metric}"
    return next(c for c in table.columns if str(c).startswith("oos_"))


def check_matrix(matrix: Any) -> pd.DataFrame | None:
    """``matrix`` as the table :func:`foldwise.walk_forward_matrix` returns, or None."""
    if matrix is None:
        return None
    if not isinstance(matrix, pd.DataFrame):
        raise ReportError(
            f"matrix must be the DataFrame foldwise.walk_forward_matrix(...) returns, got "
            f"{type(matrix).__name__}; pass matrix=foldwise.walk_forward_matrix(...) or leave "
            "it out.")
    missing = [c for c in ("train", "test") if c not in matrix.columns]
    if missing or not any(str(c).startswith("oos_") for c in matrix.columns):
        raise ReportError(
            "matrix must have the columns foldwise.walk_forward_matrix returns (train, test "
            f"and an oos_<metric> column); this one has {list(matrix.columns)}. Pass the "
            "table walk_forward_matrix returned, unchanged.")
    if matrix.empty:
        raise ReportError("matrix is empty: walk_forward_matrix(...) ran no cell; give it "
                          "at least one train and one test length.")
    return matrix


def _cpcv(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]] | str:
    if not _is_cpcv(result):
        return ("No CPCV paths: " + (
            "a cross-validated study trades one parameter set on every split."
            if result.mode == "cv" else
            "the study's splitter is not a CombinatorialPurgedKFold."))
    table, returns = result.cpcv_paths()
    distribution, equity = figures.cpcv_figures(table, returns)
    columns = list(table.columns)
    rows = [[_cell(str(path), path, numeric=True)] +
            [_cell(_metric(c, row[c]), float(row[c]), numeric=True) for c in columns]
            for path, row in table.iterrows()]
    sharpes = table["sharpe"].to_numpy(dtype=float)
    return [_text(f"Combinatorial purged cross-validation recombines the splits' test groups "
                  f"into {len(table)} out-of-sample paths, each traded with the parameters "
                  "chosen on the splits that did not see it. The spread of their Sharpe "
                  f"ratios (mean {np.nanmean(sharpes):.2f}, from {np.nanmin(sharpes):.2f} to "
                  f"{np.nanmax(sharpes):.2f}) is the uncertainty one walk-forward path hides."),
            page.figure(distribution), page.figure(equity),
            _table(["path", *columns], rows, table_id="cpcv-paths", sortable=True)]


# --- per fold --------------------------------------------------------------------------------


def _fold_detail(result: WalkForwardResult, page: _Page, key: int | None,
                 record: FoldRecord | None) -> dict[str, Any]:
    trials = result.record.trials.get(key, ())
    metric = result.metric
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = record.best if record is not None else None
    if record is not None:
        summary = (f"fold {record.number}: train {_date(record.train_start)} – "
                   f"{_date(record.train_end)}, test {_date(record.test_start)} – "
                   f"{_date(record.test_end)}; chosen {_params(best.params if best else None)}")
        if best is not None:
            summary += (f"; IS {_number((best.train or {}).get(metric, math.nan))}, "
                        f"OOS {_number((best.test or {}).get(metric, math.nan))}")
    else:
        summary = f"the cross-validated study: {len(trials)} trials"
    blocks: list[dict[str, Any]] = []
    if complete:
        chosen = best.trial if best is not None else None
        if record is None:
            ranked = sorted(complete, key=lambda t: ((-1 if result.direction == "maximize"
                                                      else 1) * float(t.value or 0), t.number))
            chosen = ranked[0].number
        blocks.append(page.figure(
            figures.history_figure([t.number for t in complete],
                                   [float(t.value or 0.0) for t in complete],
                                   maximize=result.direction == "maximize", metric=metric,
                                   chosen=chosen),
            "Optimization history: each completed trial's objective, the best so far, and "
            "the trial whose set was chosen (a star)."))
        importances = param_importances(complete, result.manifest.space, result.direction)
        if importances:
            blocks.append(page.figure(
                figures.importance_figure(importances),
                "Parameter importances (Optuna's fANOVA evaluator, seeded, on this study's "
                "completed trials): the share of the objective's variance each parameter "
                "explains."))
        else:
            blocks.append(_text("No parameter importances: fewer than two completed trials, "
                                "or no parameter took more than one value.", "note"))
    else:
        blocks.append(_text("No completed trial.", "note"))
    failed = [t for t in trials if t.state == TrialState.FAIL and t.record.failure is not None]
    if failed:
        first = failed[0].record.failure
        assert first is not None
        blocks.append(_text(f"{len(failed)} failed trial(s); the first: trial "
                            f"{failed[0].number}, {first.describe()}", "note"))
    if record is not None and record.selected:
        rows = [[_cell(str(s.rank + 1), s.rank + 1, numeric=True),
                 _cell("-" if s.trial is None else str(s.trial), s.trial, numeric=True),
                 _cell(_params(s.params), dict(s.params)),
                 _cell(_number((s.train or {}).get(metric, math.nan)),
                       float((s.train or {}).get(metric, math.nan)), numeric=True),
                 _cell(_number((s.test or {}).get(metric, math.nan)),
                       float((s.test or {}).get(metric, math.nan)), numeric=True)]
                for s in record.selected]
        blocks.append(_table(["rank", "trial", "parameters", f"IS {metric}", f"OOS {metric}"],
                             rows, caption=f"The {len(record.selected)} distinct sets judged "
                                           f"out of sample, the choice of select="
                                           f"{record.rule_label} first"
                                           + (f" ({record.note})." if record.note else ".")))
    elif record is None and complete:
        top = _top_rows(result, complete)
        blocks.append(_table(["rank", "trial", "parameters", f"objective ({metric})"], top,
                             caption="The best distinct sets by the aggregated fold metric."))
    return {"kind": "details", "summary": summary, "blocks": blocks,
            "fold": "" if record is None else str(record.number)}


def _top_rows(result: WalkForwardResult, complete: Sequence[Any], k: int = 10
                    ) -> list[list[dict[str, Any]]]:
    """Rows of the best ``k`` distinct sets of a cross-validated study."""
    sign = -1.0 if result.direction == "maximize" else 1.0
    seen: set[str] = set()
    rows: list[list[dict[str, Any]]] = []
    for trial in sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number)):
        key = canonical_json(dict(trial.params))
        if key in seen:
            continue
        seen.add(key)
        rows.append([_cell(str(len(rows) + 1), len(rows) + 1, numeric=True),
                     _cell(str(trial.number), trial.number, numeric=True),
                     _cell(_params(trial.params), dict(trial.params)),
                     _cell(_number(trial.value), float(trial.value or 0.0), numeric=True)])
        if len(rows) == k:
            break
    return rows


def _fold_details(result: WalkForwardResult, page: _Page) -> list[dict[str, Any]]:
    if result.mode == "cv":
        return [_fold_detail(result, page, None, None)]
    return [_fold_detail(result, page, r.number, r) for r in result.fold_records]


# --- the file --------------------------------------------------------------------------------


def _snooping_section(result: WalkForwardResult, enabled: bool) -> list[dict[str, Any]] | str:
    """Data snooping: SPA and StepM per window, the haircut Sharpe ratio and the minimum
    backtest length (:meth:`WalkForwardResult.snooping`)."""
    if not enabled:
        return "Left out: the report was written with overfitting=False."
    report = result.snooping(n_bootstrap=REPORT_BOOTSTRAP)
    table = report.table
    items = []
    first = table.iloc[0] if not table.empty else None
    if first is not None and not math.isnan(first["spa_pvalue"]):
        items.append((
            f"SPA p ({first['window']})", _number(first["spa_pvalue"], 3),
            snooping_meanings["spa"] + f" Best: {first['best']}; lower and upper p-values "
            f"{_number(first['spa_lower'], 3)} and {_number(first['spa_upper'], 3)}."))
        items.append((
            "StepM superior", f"{int(first['superior'])} of {int(first['n_sets'])}",
            snooping_meanings["superior"].format(alpha=report.alpha)))
    if report.haircut is not None:
        cut = report.haircut
        items.append((
            "haircut Sharpe", f"{_number(report.best_sharpe, 2)} → "
            f"{_number(cut.haircut_sharpes['bhy'], 2)}",
            snooping_meanings["haircut"].format(n_sets=report.n_sets)
            + f" Bonferroni {_number(cut.haircut_sharpes['bonferroni'], 2)}, Holm "
            f"{_number(cut.haircut_sharpes['holm'], 2)}, BHY "
            f"{_number(cut.haircut_sharpes['bhy'], 2)} ({_percent(cut.haircuts['bhy'], 0)} "
            "cut by BHY)."))
    if math.isfinite(report.min_backtest_length):
        items.append((
            "MinBTL", f"{_number(report.min_backtest_length, 1)} years",
            snooping_meanings["minbtl"].format(n_sets=report.n_sets,
                                               years=report.backtest_years)))
    blocks: list[dict[str, Any]] = [_text(
        f"Every parameter set against the {report.benchmark.replace('_', '-')} benchmark: "
        "over the full history (every distinct set), in each fold's training window (the "
        "sets that fold tried) and on the stitched out-of-sample curve. Stationary "
        f"bootstrap, {report.n_bootstrap:,} replications (result.snooping() runs 1,000 "
        f"by default), seed {report.seed}.")]
    if items:
        blocks.append(_stats(items))
    rows = []
    for row in table.to_dict("records"):
        pvalue, superior = float(row["spa_pvalue"]), float(row["superior"])
        rows.append([
            _cell(str(row["window"])), _cell(_date(row["start"]), row["start"]),
            _cell(_date(row["end"]), row["end"]),
            _cell(f"{row['n_sets']:,}", row["n_sets"], numeric=True),
            _cell(f"{row['n_obs']:,}", row["n_obs"], numeric=True),
            _cell(str(row["best"] or "-")),
            _cell(_percent(row["best_excess"]), row["best_excess"], numeric=True),
            _cell(_number(pvalue, 3), pvalue, numeric=True,
                  css="pass" if pvalue <= 0.05 else ""),
            _cell(_number(row["spa_lower"], 3), row["spa_lower"], numeric=True),
            _cell(_number(row["spa_upper"], 3), row["spa_upper"], numeric=True),
            _cell("-" if math.isnan(superior) else f"{int(superior)}", superior,
                  numeric=True)])
    blocks.append(_table(
        ["window", "from", "to", "sets", "bars", "best set", "excess / year", "SPA p",
         "lower", "upper", "StepM superior"], rows, table_id="snooping-table",
        sortable=True,
        caption="Per window: the best set by studentized mean excess return over the "
                "benchmark, its annualized excess, Hansen's SPA p-values (consistent, with "
                "the lower and upper bounds) and the number of sets Romano-Wolf's StepM "
                f"finds superior at a family-wise error rate of {report.alpha:.0%}."))
    for note in report.notes:
        blocks.append(_text(note[0].upper() + note[1:] + ".", "note"))
    return blocks


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("foldwise.aggregate", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_report(result: WalkForwardResult, *, matrix: pd.DataFrame | None = None,
                  overfitting: bool = True) -> str:
    """The report of ``result`` as one HTML document (a string)."""
    import plotly.offline

    page = _Page()
    sections = [
        _section("equity", "Out-of-sample equity", lambda: _equity(result, page)),
        _section("folds", "Fold by fold", lambda: _fold_table(result)),
        _section("is-oos", "In sample vs out of sample", lambda: _is_oos(result, page)),
        _section("stability", "Parameter stability", lambda: _stability(result, page)),
        _section("layout", "Fold layout", lambda: _layout(result, page)),
        _section("overfitting", "Overfitting", lambda: _overfitting(result, page, overfitting)),
        _section("snooping", "Data snooping",
                 lambda: _snooping_section(result, overfitting)),
        _section("matrix", "Walk-forward matrix", lambda: _matrix(matrix, result, page)),
        _section("cpcv", "CPCV paths", lambda: _cpcv(result, page)),
        _section("fold-details", "Each fold's optimization",
                 lambda: _fold_details(result, page)),
    ]
    plotly_js = plotly.offline.get_plotlyjs().replace("</script", "<\\/script")
    generated = _dt.datetime.now(_dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return _environment().get_template("report.html.j2").render(
        header=_header(result), verdict=_verdict(result), sections=sections,
        plotly_js=plotly_js, template_json=figures.shared_template_json(),
        generated=generated, version=__version__, study=result.name,
        location=result.location)


def write_report(result: WalkForwardResult, path: str | os.PathLike[str], *,
                 matrix: Any = None, overfitting: bool = True) -> Path:
    """Write the report of ``result`` to ``path`` atomically; returns the path."""
    target = Path(path)
    if target.is_dir():
        raise ReportError(
            f"report path {str(target)!r} is a directory; give a file name, e.g. "
            f"{str(target / 'report.html')!r}.")
    table = check_matrix(matrix)
    html = render_report(result, matrix=table, overfitting=overfitting)
    data = html.encode("utf-8")
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    logger.info("wrote the report of study %r to %s (%.1f MB)", result.name, target,
                len(data) / 1e6)
    return target
