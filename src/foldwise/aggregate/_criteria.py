"""The pass/fail summary of a walk-forward: the criteria practitioners apply.

==============================  ===========================================================
criterion                       passes when
==============================  ===========================================================
walk_forward_efficiency         annualized out-of-sample metric / mean annualized in-sample
                                metric of the chosen sets >= ``min_wfe`` (Pardo's
                                walk-forward efficiency; 50 % by default)
profitable_folds                share of folds whose test window made money >= ``min_profitable``
largest_fold_share              no single fold earned ``max_fold_share`` (50 %) or more of the
                                total out-of-sample profit (log returns; fails when there is
                                no total profit)
max_drawdown                    the stitched curve's maximum drawdown is smaller than
                                ``max_drawdown`` (30 % by default)
complete                        every study holds the ``n_trials`` finished trials the last
                                call asked for (added by ``WalkForwardResult.summary``)
==============================  ===========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

__all__ = ["Criteria", "criteria_table"]


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the pass/fail summary (fractions: 0.5 is 50 %)."""

    min_wfe: float = 0.5
    min_profitable: float = 0.5
    max_fold_share: float = 0.5
    max_drawdown: float = 0.3


def criteria_table(wfe: float, fold_profits: list[float], max_drawdown: float,
                   criteria: Criteria) -> pd.DataFrame:
    """One row per criterion: value, threshold, passed.

    Parameters
    ----------
    wfe
        Walk-forward efficiency of the whole walk-forward.
    fold_profits
        Per fold, the log return of its test window on the stitched curve.
    max_drawdown
        Maximum drawdown of the stitched curve (<= 0).
    """
    n = len(fold_profits)
    profitable = sum(p > 0 for p in fold_profits) / n if n else math.nan
    total = sum(fold_profits)
    share = max(fold_profits) / total if total > 0 else math.nan
    rows = [
        ("walk_forward_efficiency", wfe, f">= {criteria.min_wfe:.0%}",
         bool(wfe >= criteria.min_wfe)),
        ("profitable_folds", profitable, f">= {criteria.min_profitable:.0%}",
         bool(profitable >= criteria.min_profitable)),
        ("largest_fold_share", share, f"< {criteria.max_fold_share:.0%}",
         bool(total > 0 and share < criteria.max_fold_share)),
        ("max_drawdown", max_drawdown, f"> -{criteria.max_drawdown:.0%}",
         bool(max_drawdown > -criteria.max_drawdown)),
    ]
    return pd.DataFrame(rows, columns=["criterion", "value", "threshold", "passed"])
