"""Walk-forward splitters: folds that never leak and are the same on every machine.

Three splitters share one contract (scikit-learn's ``split`` / ``get_n_splits``, a
``repr`` from the constructor, immutable settings) and one toolkit (``folds``, ``describe``,
``plot``):

* :class:`WalkForward` — rolling or anchored training windows, each followed by its test
  window; sizes in bars or calendar spans (``"3Y"``, ``"6M"``).
* :class:`PurgedKFold` — k contiguous test groups, training on the rest (AFML ch. 7).
* :class:`CombinatorialPurgedKFold` — all ``C(N, k)`` choices of test groups, recombined
  into ``k/N * C(N, k)`` backtest paths (AFML ch. 12).

Every splitter takes ``purge`` (the label / holding horizon, removed from training where it
overlaps a test window) and ``embargo`` (bars removed right after each test window).
``splitter.folds(data)`` returns a :class:`FoldSet` of :class:`Fold` objects whose ids are
derived from the data's content hash and the splitter's canonical configuration;
:class:`FoldStore` keeps fold sets on disk and refuses to reuse one for other data.
:func:`positions_to_ranges` and :func:`ranges_to_positions` convert a fold's positions to
``[start, stop)`` ranges and back.

>>> import numpy as np
>>> from foldwise.splits import WalkForward
>>> [(train.tolist(), test.tolist()) for train, test in WalkForward(3, 2).split(np.zeros(7))]
[([0, 1, 2], [3, 4]), ([2, 3, 4], [5, 6])]
"""

from __future__ import annotations

from ._base import BaseCombinatorialSplitter, BaseSplitter
from ._combinatorial import CombinatorialPurgedKFold
from ._fold import Fold, FoldSet
from ._kfold import PurgedKFold
from ._purge import LabelEnds, positions_to_ranges, ranges_to_positions
from ._store import FoldStore
from ._walk_forward import WalkForward

__all__ = [
    "BaseCombinatorialSplitter",
    "BaseSplitter",
    "CombinatorialPurgedKFold",
    "Fold",
    "FoldSet",
    "FoldStore",
    "LabelEnds",
    "PurgedKFold",
    "WalkForward",
    "positions_to_ranges",
    "ranges_to_positions",
]
