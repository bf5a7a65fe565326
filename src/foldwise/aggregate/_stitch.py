"""The stitched out-of-sample curve of a walk-forward.

Each test window is traded with the parameters chosen on its own training window, as a
live walk-forward would have been:

* Fold ``k``'s parameters decide the weights dated from the last bar of its training
  window through the bar before the end of its test window; they earn the returns of its
  test window (the timing convention of :func:`foldwise.backtest`).
* On the last bar of test window ``k`` the portfolio moves from fold ``k``'s positions to
  fold ``k + 1``'s (when the next test window follows at once): that turnover, and its
  cost, is charged on that bar — the cost of re-optimizing.
* The curve starts flat: the cost of entering the first fold's positions is charged on the
  first bar. Where one test window ends before the next starts (a gap), the position is
  closed at the end of the window and entered again at the next one. Where test windows
  overlap, a window ends where the next begins.

Everything is read from the stored runs (positions and gross returns), so building the
curve runs no backtest.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from foldwise.backtest import BacktestResult, BacktestSettings

from ._runs import RunLoader

__all__ = ["stitch"]


def stitch(selected: list[dict[str, Any] | None], test_ranges: list[tuple[int, int]],
           loader: RunLoader, settings: BacktestSettings) -> BacktestResult:
    """Stitch the test windows of the folds into one out-of-sample result.

    Parameters
    ----------
    selected
        Per fold, the chosen parameter set's stored evaluation (``runs``, ``offset``), or
        None for a fold without a completed trial (skipped).
    test_ranges
        Per fold, the ``[start, stop)`` bars of its test window.
    loader
        Reads the stored runs.
    settings
        The study's backtest settings (costs of the switches, annualization).
    """
    pieces = []
    for evaluation, (start, stop) in zip(selected, test_ranges, strict=True):
        if evaluation is not None:
            run, offset = loader.run_of(evaluation, "test")
            pieces.append([start, stop, run, offset])
    if not pieces:
        raise ValueError("no fold has a chosen parameter set to stitch.")
    for piece, following in itertools.pairwise(pieces):
        piece[1] = min(piece[1], following[0])  # overlapping windows: end where the next begins
    pieces = [p for p in pieces if p[1] > p[0]]

    index_parts, gross_parts, turnover_parts, change_parts, position_parts = [], [], [], [], []
    contiguous_before = False
    for i, (start, stop, run, offset) in enumerate(pieces):
        entering = run._positions[start - 1 - offset]   # held into the window's first bar
        decided = run._positions[start - offset: stop - offset].copy()  # dated start..stop-1
        following = pieces[i + 1] if i + 1 < len(pieces) else None
        if following is not None and following[0] == stop:   # re-optimized: switch sets
            decided[-1] = following[2]._positions[stop - 1 - following[3]]
        elif following is not None:                           # a gap follows: close out
            decided[-1] = 0.0
        steps = np.diff(np.vstack([entering, decided]), axis=0)
        turnover = np.abs(steps).sum(axis=1)
        if not contiguous_before:  # enter from flat (start of the curve, or after a gap)
            turnover[0] += np.abs(entering).sum()
            steps[0] += entering
        index_parts.append(run.index[start - offset: stop - offset])
        gross_parts.append(run._gross[start - offset: stop - offset])
        turnover_parts.append(turnover)
        change_parts.append(steps)
        position_parts.append(decided)
        contiguous_before = following is not None and following[0] == stop

    index = index_parts[0].append(index_parts[1:]) if len(index_parts) > 1 else index_parts[0]
    gross = np.concatenate(gross_parts)
    turnover = np.concatenate(turnover_parts)
    costs = turnover * settings.costs.rate
    return BacktestResult(
        index=index, assets=pieces[0][2].assets, net=gross - costs, gross=gross, costs=costs,
        turnover=turnover, positions=np.concatenate(position_parts),
        changes=np.concatenate(change_parts),
        settings=settings)
