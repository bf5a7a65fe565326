"""Every metric of the sets a table shows, computed from their runs when first shown.

A trial computes only what the optimizer needs — its objective and the Sharpe ratio
(:func:`foldwise.optimizer._objective.trial_metrics`) — so that a trial of a fast strategy
costs its backtest and not twenty metrics it never uses. The sets the study's tables and
reports show (each fold's choice and the other sets judged out of sample) get the rest
here, from their runs: the run the evaluation recorded (``Evaluation.runs``) is loaded
through the result's :class:`~foldwise.aggregate.RunLoader` (read from the cache,
re-computed where its arrays were not kept, re-created from the study where it is gone),
the window's bars are cut from it exactly as the trial cut them, and the metrics of the
cut are computed. The values the trial stored are kept as they are; the others equal what
the trial would have computed, being the same function of the same bars.

An evaluation whose run cannot be had keeps the metrics it stored (the tables show NaN for
the others), as the fold table does for its deflated Sharpe ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from foldwise.errors import FoldwiseError
from foldwise.metrics import METRICS
from foldwise.records import Evaluation
from foldwise.splits import ranges_to_positions

from ._folds import FoldRecord
from ._runs import RunLoader, run_returns
from ._select import SelectedSet

__all__ = ["with_every_metric"]

logger = logging.getLogger(__name__)


def _complete(metrics: Mapping[str, float] | None) -> bool:
    return metrics is None or all(name in metrics for name in METRICS)


def _window_metrics(evaluation: Evaluation, window: str,
                    ranges: tuple[tuple[int, int], ...], loader: RunLoader
                    ) -> Mapping[str, float]:
    """Every metric of ``evaluation``'s ``window`` (``"train"``/``"test"``), whose bars are
    ``ranges`` of the data, cut from the run the evaluation recorded."""
    stored = getattr(evaluation, window) or {}
    run = run_returns(loader, evaluation.run_key(window))
    positions = ranges_to_positions(np.asarray(ranges)) - evaluation.offset
    return {**run.take(positions).metrics(), **stored}


def _completed(chosen: SelectedSet, record: FoldRecord, loader: RunLoader) -> SelectedSet:
    evaluation = chosen.evaluation
    if _complete(evaluation.train) and _complete(evaluation.test):
        return chosen
    train, test = evaluation.train, evaluation.test
    try:
        if not _complete(train):
            train = _window_metrics(evaluation, "train", record.train, loader)
        if not _complete(test):
            test = _window_metrics(evaluation, "test", record.test, loader)
    except FoldwiseError as exc:  # no run to be had: show what the trial stored
        logger.info("fold %d: metrics of %s not computed (%s)", record.number,
                    dict(chosen.params), exc)
    if train is evaluation.train and test is evaluation.test:
        return chosen
    return replace(chosen, evaluation=replace(evaluation, train=train, test=test))


def with_every_metric(records: list[FoldRecord], loader: RunLoader) -> list[FoldRecord]:
    """``records`` with every metric of each selected set's train and test windows."""
    out = []
    for record in records:
        selected = tuple(_completed(chosen, record, loader) for chosen in record.selected)
        same = all(a is b for a, b in zip(selected, record.selected, strict=True))
        out.append(record if same else replace(record, selected=selected))
    return out
