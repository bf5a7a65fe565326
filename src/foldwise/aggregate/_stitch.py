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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from foldwise.backtest import BacktestResult, BacktestSettings
from foldwise.errors import OptimizationError
from foldwise.records import Evaluation

from ._runs import RunLoader

__all__ = ["stitch"]


def stitch(chosen: Sequence[Evaluation | None], test_spans: Sequence[tuple[int, int]],
           loader: RunLoader, settings: BacktestSettings) -> BacktestResult:
    """Stitch the test windows of the folds into one out-of-sample result.

    Parameters
    ----------
    chosen
        Per fold, the chosen parameter set's :class:`~foldwise.records.Evaluation` (the
        keys of its runs and their offset), or None for a fold without a completed trial
        (skipped).
    test_spans
        Per fold, the ``[start, stop)`` bars of its test window.
    loader
        Reads the stored runs.
    settings
        The study's backtest settings (costs of the switches, annualization).
    """
    pieces: list[_Piece] = []
    for evaluation, (start, stop) in zip(chosen, test_spans, strict=True):
        if evaluation is not None:
            run = loader.load(evaluation.run_key("test"))
            pieces.append(_Piece(start, stop, run, evaluation.offset))
    if not pieces:
        raise OptimizationError(
            "no fold has a chosen parameter set to stitch: every fold's trials failed, or "
            "none finished (e.g. the optimization stopped at its timeout before the first "
            "trial). Call foldwise.optimize again with the same study to finish it.")
    for piece, following in itertools.pairwise(pieces):
        piece.stop = min(piece.stop, following.start)  # overlaps: end where the next begins
    pieces = [p for p in pieces if p.stop > p.start]

    index_parts, gross_parts, turnover_parts, change_parts, position_parts = [], [], [], [], []
    contiguous_before = False
    for i, piece in enumerate(pieces):
        held = piece.positions(piece.start - 1, piece.start) \
            if piece.start > piece.offset else None
        # held into its first bar; nothing when the window starts at the run's first bar
        # (a combinatorial test group at the start of the history)
        entering = held[0] if held is not None and len(held) else np.zeros(len(piece.run.assets))
        decided = piece.positions(piece.start, piece.stop).copy()  # dated start..stop-1
        after = pieces[i + 1] if i + 1 < len(pieces) else None
        if after is not None and after.start == piece.stop:  # re-optimized: switch sets
            decided[-1] = after.positions(piece.stop - 1, piece.stop)[0]
        elif after is not None:                               # a gap follows: close out
            decided[-1] = 0.0
        steps = np.diff(np.vstack([entering, decided]), axis=0)
        turnover = np.abs(steps).sum(axis=1)
        if not contiguous_before:  # enter from flat (start of the curve, or after a gap)
            turnover[0] += np.abs(entering).sum()
            steps[0] += entering
        rows = slice(piece.start - piece.offset, piece.stop - piece.offset)
        index_parts.append(piece.run.index[rows])
        gross_parts.append(piece.run.arrays.gross[rows])
        turnover_parts.append(turnover)
        change_parts.append(steps)
        position_parts.append(decided)
        contiguous_before = after is not None and after.start == piece.stop

    index = pd.DatetimeIndex(index_parts[0].append(index_parts[1:]))
    gross = np.concatenate(gross_parts)
    turnover = np.concatenate(turnover_parts)
    costs = turnover * settings.costs.rate
    return BacktestResult(
        index=index, assets=pieces[0].run.assets, net=gross - costs, gross=gross, costs=costs,
        turnover=turnover, positions=np.concatenate(position_parts),
        changes=np.concatenate(change_parts), settings=settings)


@dataclass
class _Piece:
    """One fold's test window ``[start, stop)`` on the curve, and the run it is cut from
    (whose first bar is global bar ``offset``)."""

    start: int
    stop: int
    run: BacktestResult
    offset: int

    def positions(self, first: int, stop: int) -> np.ndarray:
        """Weights the run held from the closes of global bars ``first..stop-1``."""
        positions = self.run.arrays.positions
        if positions is None:
            raise OptimizationError(
                "the stitched out-of-sample curve needs the positions of the chosen runs; "
                "this strategy returned ready results without positions.")
        return positions[first - self.offset: stop - self.offset]
