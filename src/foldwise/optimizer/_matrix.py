"""The walk-forward matrix: the same optimization over a grid of train x test lengths.

Each cell is a walk-forward optimization of its own (study ``"<study>-<train>-<test>"``)
whose backtests are shared through the cache: a causal strategy's parameter set is run
once for the whole grid, so a grid costs little more than its largest cell. The table
tells whether the result depends on the window lengths (a robust strategy is good in a
region of the grid, not in one lucky cell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from foldwise.data import MarketData
from foldwise.splits import WalkForward

from ._run import optimize

__all__ = ["walk_forward_matrix"]


def walk_forward_matrix(strategy: Any, data: MarketData, space: Mapping[str, Any] | Callable[..., Any],
                        *, trains: Sequence[Any], tests: Sequence[Any], study: str = "wfm",
                        anchored: bool = False, purge: Any = 0, **optimize_kwargs: Any
                        ) -> pd.DataFrame:
    """Run a walk-forward optimization for every (train length, test length) pair.

    Parameters
    ----------
    strategy, data, space
        As for :func:`foldwise.optimize`.
    trains, tests
        Window lengths (bars or calendar spans such as ``"2Y"``, ``"6M"``).
    study
        Prefix of the cells' study names.
    anchored, purge
        Passed to every cell's :class:`~foldwise.splits.WalkForward`.
    optimize_kwargs
        Passed to :func:`foldwise.optimize` (metric, n_trials, seed, costs, storage,
        cache, ...).

    Returns
    -------
    DataFrame
        One row per cell: train, test, number of folds, out-of-sample metric of the
        stitched curve, its annual return and maximum drawdown, walk-forward efficiency,
        and whether the pass/fail summary passed.
    """

    rows = []
    for train in trains:
        for test in tests:
            result = optimize(strategy, data, space,
                              WalkForward(train=train, test=test, anchored=anchored, purge=purge),
                              study=f"{study}-{train}-{test}", **optimize_kwargs)
            oos = result.oos_metrics
            rows.append({"train": train, "test": test, "n_folds": len(result.fold_records),
                         f"oos_{result.metric}": oos[result.metric],
                         "oos_annual_return": oos["annual_return"],
                         "oos_max_drawdown": oos["max_drawdown"],
                         "wfe": result.walk_forward_efficiency,
                         "passed": bool(result.summary()["passed"].all())})
    return pd.DataFrame(rows)
