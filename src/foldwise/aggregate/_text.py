"""A plain-text report of a walk-forward result, for the terminal and logs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from foldwise.errors import FoldwiseError

from ._snooping import snooping_text

if TYPE_CHECKING:
    from ._result import WalkForwardResult

__all__ = ["incomplete_message", "text_report"]


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _params(params: dict[str, Any] | None) -> str:
    if not params:
        return "-"
    return ", ".join(f"{k}={_number(v, 4)}" for k, v in params.items())


def incomplete_message(result: WalkForwardResult) -> str:
    """The INCOMPLETE line of an unfinished optimization (the text and HTML reports)."""
    where = ("the study" if result.mode == "cv" else
             "fold(s) " + ", ".join(str(n) for n in result.unfinished))
    return (f"INCOMPLETE: {where} hold fewer than {result.manifest.n_trials} finished trials "
            "(the optimization stopped early, e.g. at its timeout); everything below covers "
            "what finished. Run the same optimize call again to finish it.")


def text_report(result: WalkForwardResult, *, overfitting: bool = True) -> str:
    """The folds, the out-of-sample comparison, the verdict and the overfitting statistics
    of ``result`` as text (what ``foldwise show`` prints)."""
    manifest = result.manifest
    data = manifest.data
    lines = [
        f"study {result.name!r}: {manifest.strategy.name} on {data.n_dates} bars "
        f"{data.first[:10]}..{data.last[:10]} x {data.n_assets} asset(s)",
        f"splitter {manifest.splitter['repr']}",
        f"{len(result.fold_records)} folds, metric {result.metric} ({result.direction}), "
        f"mode {result.mode}",
        "",
    ]
    if result.mode == "walk_forward":
        label = result.fold_records[0].rule_label if result.fold_records else "best"
        lines[-1:-1] = [f"each fold's parameters chosen by select={label}"]
    if not result.complete:
        lines[-1:-1] = [incomplete_message(result)]
    if result.mode != "walk_forward":
        lines.append(result.folds.to_string(index=False))
        lines.append(f"\nbest parameters: {_params(result.best_params[0] if result.best_params else None)}")
        return "\n".join(lines)
    folds = result.folds
    metric = result.metric
    table = pd.DataFrame({
        "fold": folds["fold"],
        "train": [f"{a.date()}..{b.date()}" for a, b in zip(folds["train_start"],
                                                            folds["train_end"], strict=True)],
        "test": [f"{a.date()}..{b.date()}" for a, b in zip(folds["test_start"],
                                                           folds["test_end"], strict=True)],
        "chosen parameters": [_params(p) for p in folds["params"]],
        f"IS {metric}": folds[f"is_{metric}"].map(_number),
        **({"IS smoothed": folds[f"is_{metric}_smoothed"].map(_number)}
           if f"is_{metric}_smoothed" in folds else {}),
        f"OOS {metric}": folds[f"oos_{metric}"].map(_number),
        "WFE": folds["wfe"].map(lambda v: _number(v, 2)),
        "DSR": folds["dsr"].map(lambda v: _number(v, 2)),
        "trials": folds["trials_complete"],
        "cache hits": folds["cache_hits"],
    })
    lines += ["folds", table.to_string(index=False), ""]
    notes = [f"  fold {r.number}: {r.note}" for r in result.fold_records if r.note]
    if notes:
        lines[-1:-1] = notes
    try:
        comparison = result.comparison
    except FoldwiseError as exc:  # runs evicted from the cache: say so, show the rest
        lines += [f"out-of-sample curve unavailable: {exc}"]
        return "\n".join(lines)
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 140):
        lines += ["out of sample (re-optimization costs included) vs in sample vs the universe",
                  comparison.to_string(na_rep="-"), ""]
    summary = result.summary()
    verdict = "PASS" if summary["passed"].all() else "FAIL"
    shown = summary.assign(value=summary["value"].map(lambda v: _number(v, 3)))
    lines += [f"verdict: {verdict}", shown.to_string(index=False), ""]
    stability = result.parameter_stability
    if not stability.empty:
        lines.append("parameter stability across folds")
        for name, row in stability.iterrows():
            extra = (f" mean {_number(row['mean'], 2)}, std {_number(row['std'], 2)}, "
                     f"cv {_number(row['cv'], 2)}" if "mean" in row and not pd.isna(row.get("mean"))
                     else "")
            lines.append(f"  {name}: {row['n_unique']} distinct value(s), most common in "
                         f"{row['most_common_share']:.0%} of folds;{extra}")
        correlation = result.rank_correlation["spearman"]
        lines.append(f"  in/out-of-sample rank correlation per fold: mean "
                     f"{_number(float(correlation.mean()), 2)}")
        lines.append("")
    if overfitting:
        stats = result.overfitting()
        lines.append(
            f"overfitting: PBO {_number(stats.get('pbo', math.nan), 2)} over "
            f"{int(stats.get('n_configurations', 0))} distinct parameter sets; out-of-sample "
            f"PSR {_number(stats['oos_psr'], 2)}, DSR {_number(stats['oos_dsr'], 2)}")
    if overfitting:
        lines += ["", *snooping_text(result)]
    return "\n".join(lines)
