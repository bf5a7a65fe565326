"""The figures of the HTML report, as plotly figures built from plain tables and arrays.

Each function takes numbers the report module has already read from a
:class:`~foldwise.WalkForwardResult` (series, lists, arrays) and returns a
``plotly.graph_objects.Figure``; none of them reads a result, a run or a storage. Plotly is
imported here only, when a report is written.

The figures carry no template of their own: the report applies one shared template to
every figure in the browser, so its definition is written once per file, not once per
figure (:func:`figure_json` strips it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

__all__ = [
    "COLORS",
    "chosen_scatter",
    "cpcv_figures",
    "degradation_figure",
    "equity_figure",
    "figure_json",
    "fold_layout_figure",
    "history_figure",
    "importance_figure",
    "is_oos_figure",
    "logit_histogram",
    "matrix_heatmap",
    "shared_template_json",
    "stability_figure",
]

#: Colours of the report (the fold kinds are those of ``splitter.plot``).
COLORS = {
    "oos": "#1f4e79", "universe": "#8c8c8c", "in_sample": "#dd8452", "drawdown": "#c44e52",
    "train": "#4C72B0", "test": "#DD8452", "purged": "#C44E52", "embargoed": "#8C8C8C",
    "warmup": "#b8c9e0", "excluded": "#C44E52", "good": "#55a868", "bad": "#c44e52",
    "best": "#1f4e79", "trial": "#9fb6cf",
}

#: A legend in one row above the plot area.
_LEGEND_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}

#: Scatter points drawn at most per trace (a sample spread evenly over the rest, so the file
#: stays small; statistics are computed on every point).
MAX_POINTS = 2000


def _dates(index: pd.Index) -> np.ndarray:
    """Dates as ISO strings, without a time when every stamp is at midnight (an array of
    strings: plotly checks it several times faster than a list, and writes it the same)."""
    stamps = pd.DatetimeIndex(index)
    if stamps.tz is not None:
        stamps = stamps.tz_localize(None)
    at_midnight = bool((stamps == stamps.normalize()).all())
    return np.asarray(stamps.strftime("%Y-%m-%d") if at_midnight else
                      [s.isoformat() for s in stamps], dtype=str)


def _floats(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _curve(values: Any) -> np.ndarray:
    """A long curve's values in single precision (7 digits: enough to draw and hover, half
    the bytes in the file)."""
    return np.asarray(values, dtype=float).astype(np.float32)


def _sample(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` points, spread evenly (all of them if fewer)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def figure_json(figure: go.Figure) -> str:
    """The figure as plotly JSON without its template, safe inside a ``<script>`` element."""
    spec = figure.to_plotly_json()
    spec.get("layout", {}).pop("template", None)
    return pio.to_json(spec, validate=False).replace("</", "<\\/")


def shared_template_json() -> str:
    """The template every figure of the report is drawn with (written once per file)."""
    template = pio.templates["plotly_white"].to_plotly_json()
    template.setdefault("layout", {}).update({
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
                 "size": 12},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "hovermode": "closest",
    })
    return json.dumps(template).replace("</", "<\\/")


def _fold_lines(figure: go.Figure, boundaries: Sequence[pd.Timestamp], rows: int) -> None:
    """Dotted vertical lines at the start of each test window, on every row."""
    for row in range(1, rows + 1):
        axis = "x" if row == 1 else f"x{row}"
        for boundary in boundaries:
            at = str(_dates(pd.DatetimeIndex([boundary]))[0])
            figure.add_shape(type="line", xref=axis, yref=f"y{'' if row == 1 else row} domain",
                             x0=at, x1=at, y0=0, y1=1,
                             line={"color": "#bbbbbb", "width": 1, "dash": "dot"})


def equity_figure(oos_equity: pd.Series, *, universe: pd.Series | None = None,
                  in_sample: Sequence[tuple[int, pd.Series]] = (),
                  boundaries: Sequence[pd.Timestamp] = ()) -> go.Figure:
    """The stitched out-of-sample equity, the equal-weight universe over the same dates and
    each fold's chosen set over its own training window (hidden until clicked in the
    legend), with a dotted line where each test window starts; the drawdowns below."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                           vertical_spacing=0.04)
    for number, (fold, curve) in enumerate(in_sample):
        figure.add_trace(go.Scatter(
            x=_dates(curve.index), y=_curve(curve), mode="lines",
            name="chosen sets in sample (training windows)", legendgroup="in_sample",
            showlegend=number == 0, visible="legendonly",
            line={"color": COLORS["in_sample"], "width": 1},
            hovertemplate=f"fold {fold} in sample<br>%{{x}}: %{{y:.3f}}<extra></extra>"),
            row=1, col=1)
    if universe is not None:
        figure.add_trace(go.Scatter(
            x=_dates(universe.index), y=_curve(universe), mode="lines",
            name="equal-weight universe", line={"color": COLORS["universe"], "width": 1.2},
            hovertemplate="universe %{x}: %{y:.3f}<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Scatter(
        x=_dates(oos_equity.index), y=_curve(oos_equity), mode="lines",
        name="walk-forward (out of sample)", line={"color": COLORS["oos"], "width": 2},
        hovertemplate="out of sample %{x}: %{y:.3f}<extra></extra>"), row=1, col=1)
    drawn: list[tuple[str, pd.Series, str]] = [("walk-forward", oos_equity, COLORS["drawdown"])]
    if universe is not None:
        drawn.insert(0, ("universe", universe, COLORS["universe"]))
    for name, line, color in drawn:
        values = _floats(line)
        drawdown = values / np.maximum.accumulate(values) - 1.0
        figure.add_trace(go.Scatter(
            x=_dates(line.index), y=_curve(drawdown), mode="lines",
            name=f"drawdown ({name})",
            showlegend=False, fill="tozeroy" if name == "walk-forward" else None,
            line={"color": color, "width": 1},
            hovertemplate=f"drawdown {name} %{{x}}: %{{y:.1%}}<extra></extra>"), row=2, col=1)
    _fold_lines(figure, boundaries, rows=2)
    figure.update_yaxes(title_text="equity (start = 1)", row=1, col=1)
    figure.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    figure.update_layout(height=520, legend=_LEGEND_TOP,
                         hovermode="x unified")
    return figure


def is_oos_figure(folds: Sequence[int], in_sample: ArrayLike | None,
                  out_of_sample: ArrayLike, metric: str) -> go.Figure:
    """In- and out-of-sample metric of each fold's choice, as grouped bars."""
    figure = go.Figure()
    labels = [f"fold {n}" for n in folds]
    if in_sample is not None:
        figure.add_trace(go.Bar(x=labels, y=_floats(in_sample), name=f"in sample {metric}",
                                marker_color=COLORS["in_sample"]))
    figure.add_trace(go.Bar(x=labels, y=_floats(out_of_sample),
                            name=f"out of sample {metric}", marker_color=COLORS["oos"]))
    figure.update_layout(barmode="group", height=340, yaxis_title=metric,
                         legend=_LEGEND_TOP)
    return figure


def stability_figure(folds: Sequence[int], values: Mapping[str, Sequence[Any]],
                     ranges: Mapping[str, tuple[float, float] | None]) -> go.Figure:
    """The value chosen for each parameter in each fold: one row, one trace per parameter,
    its y axis spanning the parameter's search range where the space gives one."""
    names = list(values)
    figure = make_subplots(rows=len(names), cols=1, shared_xaxes=True,
                           vertical_spacing=min(0.08, 0.3 / max(len(names), 1)),
                           subplot_titles=names)
    labels = [f"fold {n}" for n in folds]
    for row, name in enumerate(names, start=1):
        chosen = list(values[name])
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in chosen)
        figure.add_trace(go.Scatter(
            x=labels, y=chosen if numeric else [str(v) for v in chosen], mode="lines+markers",
            name=name, line={"width": 1.5}, marker={"size": 8},
            hovertemplate=f"%{{x}}: {name} = %{{y}}<extra></extra>"), row=row, col=1)
        bounds = ranges.get(name)
        if numeric and bounds is not None:
            low, high = bounds
            pad = (high - low) * 0.05 or 1.0
            figure.update_yaxes(range=[low - pad, high + pad], row=row, col=1)
    figure.update_layout(height=max(220, 170 * len(names)), showlegend=False)
    return figure


def fold_layout_figure(bars: Sequence[Mapping[str, Any]], *, dated: bool) -> go.Figure:
    """The folds over time: one row per fold, a horizontal bar per train / test / purged /
    embargoed (/ warm-up / excluded) range.

    ``bars`` hold ``fold``, ``kind``, ``start`` and ``stop`` (dates when ``dated``, else bar
    positions) and ``bars`` (the number of bars, for the hover text).
    """
    figure = go.Figure()
    kinds = list(dict.fromkeys(bar["kind"] for bar in bars))
    for kind in kinds:
        chosen = [bar for bar in bars if bar["kind"] == kind]
        labels = [f"fold {bar['fold']}" for bar in chosen]
        if dated:
            starts = pd.DatetimeIndex([bar["start"] for bar in chosen])
            stops = pd.DatetimeIndex([bar["stop"] for bar in chosen])
            widths = ((stops - starts) / pd.Timedelta(milliseconds=1)).to_numpy(dtype=float)
            base: Any = _dates(starts)
            ends = _dates(stops)
        else:
            base = [int(bar["start"]) for bar in chosen]
            widths = _floats([bar["stop"] - bar["start"] for bar in chosen])
            ends = np.asarray([str(int(bar["stop"])) for bar in chosen])
        figure.add_trace(go.Bar(
            y=labels, x=widths, base=base, orientation="h", name=kind,
            marker_color=COLORS.get(kind, "#999999"),
            customdata=[[b, e, bar["bars"]] for b, e, bar in zip(base, ends, chosen,
                                                                 strict=True)],
            hovertemplate=(f"%{{y}} {kind}: %{{customdata[0]}} to %{{customdata[1]}} "
                           "(%{customdata[2]} bars)<extra></extra>")))
    n_folds = len({bar["fold"] for bar in bars})
    figure.update_layout(barmode="overlay", height=max(240, 24 * n_folds + 120),
                         legend=_LEGEND_TOP)
    figure.update_yaxes(autorange="reversed", type="category")
    if dated:
        figure.update_xaxes(type="date")
    else:
        figure.update_xaxes(title_text="bar")
    return figure


def logit_histogram(logits: np.ndarray, bins: int = 30) -> go.Figure:
    """Histogram of the CSCV logits: left of 0 (red) the in-sample best ranked in the bottom
    half out of sample."""
    values = _floats(logits)
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    share = counts / max(values.size, 1)
    figure = go.Figure(go.Bar(
        x=centres, y=share, width=np.diff(edges),
        marker_color=[COLORS["bad"] if c <= 0 else COLORS["good"] for c in centres],
        customdata=np.column_stack([edges[:-1], edges[1:], counts]),
        hovertemplate=("logit %{customdata[0]:.2f} to %{customdata[1]:.2f}: "
                       "%{customdata[2]} combinations (%{y:.1%})<extra></extra>")))
    figure.add_vline(x=0, line={"color": "#333333", "width": 1, "dash": "dash"})
    figure.update_layout(height=320, xaxis_title="logit of the in-sample best's "
                         "out-of-sample rank", yaxis_title="share of combinations",
                         yaxis_tickformat=".0%", bargap=0.02)
    return figure


def degradation_figure(in_sample: np.ndarray, out_of_sample: np.ndarray, *, slope: float,
                       intercept: float, label: str = "Sharpe ratio (per period)"
                       ) -> go.Figure:
    """Out- against in-sample performance of the in-sample best of each CSCV combination,
    with the least-squares line (a negative slope: the better in sample, the worse out)."""
    is_values, oos_values = _floats(in_sample), _floats(out_of_sample)
    finite = np.isfinite(is_values) & np.isfinite(oos_values)
    is_values, oos_values = is_values[finite], oos_values[finite]
    shown = _sample(is_values.size)
    figure = go.Figure(go.Scatter(
        x=is_values[shown].astype(np.float32), y=oos_values[shown].astype(np.float32),
        mode="markers", name="CSCV combinations",
        marker={"size": 4, "color": COLORS["oos"], "opacity": 0.35},
        hovertemplate="in sample %{x:.4f}<br>out of sample %{y:.4f}<extra></extra>"))
    if is_values.size and math.isfinite(slope) and math.isfinite(intercept):
        xs = np.array([is_values.min(), is_values.max()])
        figure.add_trace(go.Scatter(
            x=xs, y=intercept + slope * xs, mode="lines",
            name=f"fit: slope {slope:.2f}", line={"color": COLORS["bad"], "width": 2}))
    figure.add_hline(y=0, line={"color": "#999999", "width": 1})
    title = (f"{shown.size} of {is_values.size} combinations shown"
             if shown.size < is_values.size else f"{is_values.size} combinations")
    figure.update_layout(height=360, xaxis_title=f"in sample: {label}",
                         yaxis_title=f"out of sample: {label}",
                         title={"text": title, "font": {"size": 12}},
                         legend={"orientation": "h", "y": -0.2, "x": 0})
    return figure


def chosen_scatter(in_sample: ArrayLike, out_of_sample: ArrayLike,
                   folds: Sequence[int], metric: str) -> go.Figure:
    """Out- against in-sample metric of each fold's chosen set, with the line y = x."""
    is_values, oos_values = _floats(in_sample), _floats(out_of_sample)
    figure = go.Figure(go.Scatter(
        x=is_values, y=oos_values, mode="markers+text", text=[str(f) for f in folds],
        textposition="top center", name="chosen sets",
        marker={"size": 9, "color": COLORS["oos"]},
        hovertemplate="fold %{text}<br>in sample %{x:.3f}<br>out of sample %{y:.3f}"
                      "<extra></extra>"))
    finite = np.concatenate([is_values, oos_values])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines",
                                    name="out of sample = in sample",
                                    line={"color": "#999999", "dash": "dash", "width": 1}))
    figure.update_layout(height=360, xaxis_title=f"in sample {metric}",
                         yaxis_title=f"out of sample {metric}",
                         legend={"orientation": "h", "y": -0.2, "x": 0})
    return figure


def history_figure(numbers: Sequence[int], values: Sequence[float], *, maximize: bool,
                   metric: str, chosen: int | None = None) -> go.Figure:
    """Objective value of each completed trial by trial number, the best so far as a
    step line, and the trial whose set the fold chose."""
    trials = np.asarray(numbers, dtype=int)
    objective = _floats(values)
    order = np.argsort(trials, kind="stable")
    trials, objective = trials[order], objective[order]
    best = (np.fmax.accumulate(objective) if maximize else np.fmin.accumulate(objective))
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=trials, y=objective, mode="markers", name="trial",
        marker={"color": COLORS["trial"], "size": 6},
        hovertemplate="trial %{x}: %{y:.4f}<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=trials, y=best, mode="lines", name="best so far", line_shape="hv",
        line={"color": COLORS["best"], "width": 2},
        hovertemplate="best after trial %{x}: %{y:.4f}<extra></extra>"))
    if chosen is not None and chosen in set(trials.tolist()):
        at = int(np.flatnonzero(trials == chosen)[0])
        figure.add_trace(go.Scatter(
            x=[chosen], y=[objective[at]], mode="markers", name="chosen",
            marker={"symbol": "star", "size": 14, "color": COLORS["in_sample"]},
            hovertemplate="chosen: trial %{x}, %{y:.4f}<extra></extra>"))
    figure.update_layout(height=300, xaxis_title="trial", yaxis_title=f"in sample {metric}",
                         legend=_LEGEND_TOP)
    return figure


def importance_figure(importances: Mapping[str, float]) -> go.Figure:
    """Parameter importances as horizontal bars, the most important on top."""
    names = list(importances)
    figure = go.Figure(go.Bar(
        x=_floats([importances[n] for n in names]), y=names, orientation="h",
        marker_color=COLORS["oos"], hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(height=max(160, 40 * len(names) + 90), xaxis_title="importance",
                         xaxis_range=[0, 1])
    figure.update_yaxes(autorange="reversed")
    return figure


def matrix_heatmap(table: pd.DataFrame, value: str) -> go.Figure:
    """The walk-forward matrix: ``value`` of each (train, test) cell, with the cell's value
    and a tick or a cross for its pass/fail summary written in it."""
    trains = list(dict.fromkeys(table["train"].tolist()))
    tests = list(dict.fromkeys(table["test"].tolist()))
    grid = np.full((len(trains), len(tests)), np.nan)
    text = [["" for _ in tests] for _ in trains]
    hover = [["" for _ in tests] for _ in trains]
    for _, row in table.iterrows():
        i, j = trains.index(row["train"]), tests.index(row["test"])
        cell = float(row[value])
        grid[i, j] = cell
        passed = row.get("passed")
        mark = "" if passed is None or pd.isna(passed) else (" ✓" if passed else " ✗")
        text[i][j] = ("n/a" if math.isnan(cell) else f"{cell:.2f}") + mark
        extra = [f"{k} {row[k]:.3f}" if isinstance(row[k], float) else f"{k} {row[k]}"
                 for k in table.columns if k not in ("train", "test", value)]
        hover[i][j] = "<br>".join(extra)
    finite = grid[np.isfinite(grid)]
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    figure = go.Figure(go.Heatmap(
        z=grid, x=[str(t) for t in tests], y=[str(t) for t in trains], text=text,
        texttemplate="%{text}", customdata=hover, colorscale="RdBu", zmid=0,
        zmin=-limit, zmax=limit, colorbar={"title": {"text": value}},
        hovertemplate=("train %{y}, test %{x}: " + value +
                       " %{z:.3f}<br>%{customdata}<extra></extra>")))
    figure.update_layout(height=max(260, 60 * len(trains) + 140), xaxis_title="test window",
                         yaxis_title="train window")
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def cpcv_figures(paths: pd.DataFrame, returns: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """CPCV: the distribution of the paths' Sharpe ratios, and each path's equity."""
    sharpes = _floats(paths["sharpe"])
    distribution = go.Figure(go.Histogram(
        x=sharpes, nbinsx=max(5, min(30, sharpes.size)), marker_color=COLORS["oos"],
        hovertemplate="Sharpe %{x}: %{y} path(s)<extra></extra>", name="paths"))
    finite = sharpes[np.isfinite(sharpes)]
    if finite.size:
        distribution.add_vline(x=float(finite.mean()), line={"color": COLORS["bad"],
                                                             "dash": "dash"},
                               annotation_text=f"mean {finite.mean():.2f}")
    distribution.update_layout(height=300, xaxis_title="annualized Sharpe ratio of a path",
                               yaxis_title="paths", showlegend=False)
    equity = go.Figure()
    for path in returns.columns:
        series = returns[path].fillna(0.0)
        equity.add_trace(go.Scatter(
            x=_dates(series.index), y=_curve(np.cumprod(1.0 + series.to_numpy(dtype=float))),
            mode="lines", name=f"path {path}", line={"width": 1},
            hovertemplate=f"path {path} %{{x}}: %{{y:.3f}}<extra></extra>"))
    equity.update_layout(height=360, yaxis_title="equity (start = 1)",
                         legend=_LEGEND_TOP)
    return distribution, equity
