"""Base classes of the splitters.

Two small bases share one core, :class:`_Splitter`:

* :class:`BaseSplitter` follows scikit-learn's cross-validator protocol exactly:
  ``split(X, y=None, groups=None)`` yields ``(train, test)`` integer arrays and
  ``get_n_splits`` counts what ``split`` yields. :class:`~foldwise.splits.WalkForward` and
  :class:`~foldwise.splits.PurgedKFold` derive from it and run unchanged inside
  ``cross_val_score`` or ``GridSearchCV``.
* :class:`BaseCombinatorialSplitter` is for splitters whose test set is made of several
  groups that recombine into backtest paths (CPCV): ``split`` yields ``(train, [test group
  arrays])``, and the path map says which split supplies each group of each path.

Contract for a new splitter (the contract suite in the tests runs every splitter through
it): implement ``_plan(timeline)`` returning the folds as :class:`Planned` items, computed
only from the constructor's settings and the timeline (a pure function: same input, same
folds); validate settings that need no data in ``__init__`` and the rest in ``_plan``,
raising :class:`~foldwise.errors.SplitError` subclasses with the numbers; store every
constructor argument under its own name, so ``repr``, ``get_params`` and the fold ids
derive from the signature. Splitters are immutable once built; fold ids depend on every
setting (but those listed in ``_not_identity``).
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from foldwise._canonical import canonical, canonical_json
from foldwise.errors import EmptyTrainError, SplitError

from ._fold import Fold, FoldSet, fold_id, fold_set_id
from ._purge import LabelEnds, embargo_ends, label_ends, parse_purge, purge_and_embargo
from ._sizes import parse_fraction_or_size
from ._timeline import Timeline, as_timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ._store import FoldStore

__all__ = ["BaseCombinatorialSplitter", "BaseSplitter", "Planned"]

logger = logging.getLogger(__name__)

# Shared documentation of the two leakage parameters, put into each splitter's docstring
# where it says {purge_embargo}.
_PURGE_EMBARGO_DOC = """\
purge : int, str, DateOffset, Timedelta or LabelEnds, default 0
    The label (holding) horizon of a bar: the outcome attributed to bar ``i`` is decided by
    the bars ``i..e_i``. Every training bar whose interval ``[i, e_i]`` overlaps what a
    test window covers is removed from training. An int ``h`` sets ``e_i = i + h``: the
    ``h`` bars before each test window are purged (scikit-learn's ``gap``); a calendar span
    (``"5D"``) reaches to the last bar dated within ``date_i + span``;
    :class:`~foldwise.splits.LabelEnds` gives each bar its own end (López de Prado's
    ``t1``, e.g. triple-barrier labels). A test window covers its bars and their labels,
    so in k-fold the bars inside the labels of its last bars are purged too.

    .. warning::
       The purge must span everything that ties a bar to later prices: the holding or
       label horizon **plus the execution delay** (a signal at the close of ``t`` traded
       ``d`` bars later earns returns through ``t + d + horizon``), and any lookahead in
       the features (centered windows, full-sample normalisation). Too small a purge
       leaks test prices into training and the out-of-sample scores flatter the strategy.
embargo : int, float, str, DateOffset or Timedelta, default 0
    Bars removed from training right after what each test window covers (after the
    purged bars): an int number of bars, a float fraction ``f`` of the sample in [0, 1)
    (``ceil(f * n)`` bars) or a calendar span. Use it where training bars follow a test
    window (k-fold, CPCV); in walk-forward every training bar precedes its test window, so
    the embargo removes nothing there.

    .. warning::
       Features with memory (moving averages, volatility estimates, positions held from
       one bar to the next) carry information from the end of a test window into the bars
       after it. Embargo at least the longest lookback or holding period that crosses the
       window's end, and add the execution delay."""


@dataclass(frozen=True)
class Planned:
    """One fold as a splitter computes it: sorted int64 positions (read-only)."""

    train: np.ndarray
    test: np.ndarray
    purged: np.ndarray
    embargoed: np.ndarray
    test_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train", "test", "purged", "embargoed"):
            getattr(self, name).flags.writeable = False


class _Splitter(ABC):
    """What every splitter shares: settings, repr, identity, folds, summary and plot."""

    #: Settings that never change the folds (limits), left out of the fold ids.
    _not_identity: ClassVar[frozenset[str]] = frozenset()
    #: Version of the splitting rules; bump it when the same settings would give other
    #: folds, so stored fold sets made by the old rules are refused rather than reused.
    _version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{purge_embargo}" in cls.__doc__:
            indent = "    "
            text = "\n".join(indent + line if line else line
                             for line in _PURGE_EMBARGO_DOC.splitlines())
            cls.__doc__ = cls.__doc__.replace(indent + "{purge_embargo}", text)

    # --- settings -------------------------------------------------------------------------

    def _set_purge_embargo(self, purge: Any, embargo: Any) -> None:
        parsed = parse_purge(purge)
        self._purge = parsed
        self.purge = parsed if isinstance(parsed, LabelEnds) else purge
        self._embargo = parse_fraction_or_size(embargo, "embargo")
        self.embargo = embargo

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} settings cannot change after construction (fold ids "
                f"depend on them); build a new splitter instead, e.g. "
                f"{type(self).__name__}(**{{**splitter.get_params(), {name!r}: ...}}).")
        object.__setattr__(self, name, value)

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in list(signature.parameters.values())[1:]
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (as scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _plain_params(self) -> dict[str, Any]:
        """The constructor arguments, label end arrays replaced by their identity."""
        return {k: (v.identity if isinstance(v, LabelEnds) else v)
                for k, v in self.get_params().items()}

    @property
    def config(self) -> dict[str, Any]:
        """The settings that define the folds, as plain values (for canonical JSON and ids)."""
        params = {k: v for k, v in self._plain_params().items() if k not in self._not_identity}
        return {"splitter": type(self).__name__, "version": self._version, "params": params}

    def _key(self) -> str:
        return canonical_json({"splitter": type(self).__name__, "params": self._plain_params()},
                              f"{type(self).__name__} settings")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Splitter):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    # --- folds ----------------------------------------------------------------------------

    @abstractmethod
    def _plan(self, timeline: Timeline) -> list[Planned]:
        """The folds of ``timeline``; raises a SplitError when they do not fit."""

    def _leakage_arrays(self, timeline: Timeline) -> tuple[np.ndarray, np.ndarray]:
        """:func:`label_ends` and :func:`embargo_ends` of the timeline for these settings."""
        return label_ends(self._purge, timeline), embargo_ends(self._embargo, timeline)

    def _planned(self, number: int, timeline: Timeline, window: np.ndarray, test: np.ndarray,
                 leakage: tuple[np.ndarray, np.ndarray], window_text: str,
                 test_groups: tuple[int, ...] = ()) -> Planned:
        """Apply purge and embargo to a training window; refuse a window left empty."""
        train, purged, embargoed = purge_and_embargo(window, test, *leakage)
        if train.size == 0:
            n_window = int(window.sum() - window[test].sum())
            if n_window == 0:
                raise EmptyTrainError(
                    f"fold {number} of {self!r} has no training bar: its training window "
                    f"({window_text}) holds no bar of {timeline.describe()} (a gap in the "
                    "dates?). Use a longer training window.")
            raise EmptyTrainError(
                f"fold {number} of {self!r} has no training bar left: its training window "
                f"({window_text}, {n_window} bars) loses {purged.size} bars to "
                f"purge={self.purge!r} and {embargoed.size} to embargo={self.embargo!r}. "
                "Use a smaller purge or embargo, or a longer training window.")
        return Planned(train, np.asarray(test, dtype=np.int64), purged, embargoed,
                       tuple(test_groups))

    def _build(self, timeline: Timeline, name: str | None = None) -> FoldSet:
        """Compute the folds of ``timeline`` and give them their ids."""
        plans = self._plan(timeline)
        config = self.config
        data_hash = timeline.content_hash
        dates = timeline.dates
        folds = tuple(
            Fold.build(number, p.train, p.test, dates=dates,
                       fold_id=fold_id(data_hash, config, number), purged=p.purged,
                       embargoed=p.embargoed, test_groups=p.test_groups)
            for number, p in enumerate(plans))
        return make_fold_set(self, timeline, folds, name)

    def folds(self, data: Any, store: FoldStore | None = None,
              name: str | None = None) -> FoldSet:
        """The folds of ``data``, with stable ids; stored and reused when ``store`` is given.

        Parameters
        ----------
        data
            A MarketData, a DataFrame / Series (dates from a DatetimeIndex) or an array-like
            whose first axis is the bars.
        store
            A :class:`~foldwise.splits.FoldStore`. The first call stores the fold set under
            ``name``; later calls with the same data and splitter reuse it, and calls with
            other data or another splitter raise
            :class:`~foldwise.errors.FoldSetMismatchError` saying what changed.
        name
            Name of the stored set (e.g. the study's name). Default: derived from the fold
            set id, so it can never mismatch.

        Returns
        -------
        FoldSet
            A sequence of :class:`~foldwise.splits.Fold`, with ``.id`` for the whole set.
        """
        timeline = as_timeline(data)
        if store is None:
            if name is not None:
                raise SplitError(
                    f"name={name!r} names a stored fold set, but no store was given. Pass "
                    "store=FoldStore() (default directory ./.foldwise, or $FOLDWISE_DIR) or "
                    "store=FoldStore(root), or drop name=.")
            return self._build(timeline)
        return store.folds(self, timeline, name)

    def describe(self, data: Any) -> pd.DataFrame:
        """A table of the folds of ``data``: fold, train_start, train_end, test_start,
        test_end, n_train, n_test, purged, embargoed.

        Start and end are the dates of the first and last bar of each set (positions for
        data without dates); purged / embargoed count the bars removed from training.
        """
        return self.folds(data).describe()

    def plot(self, data: Any, ax: Axes | None = None) -> Axes:
        """Draw the folds of ``data`` over time: one row per fold, training bars, test bars,
        and the bars removed by the purge and the embargo. Needs matplotlib.

        Returns
        -------
        matplotlib.axes.Axes
            ``ax``, or the axes of a new figure.
        """
        return self.folds(data).plot(ax)


def make_fold_set(splitter: _Splitter, timeline: Timeline, folds: tuple[Fold, ...],
                  name: str | None) -> FoldSet:
    """A :class:`FoldSet` of ``folds`` made by ``splitter`` on ``timeline``."""
    dates = timeline.dates
    first_date, last_date = (
        (dates[0], dates[-1]) if dates is not None and len(dates) > 0 else (None, None))
    return FoldSet(
        folds=folds,
        id=fold_set_id(timeline.content_hash, splitter.config),
        content_hash=timeline.content_hash,
        n_dates=timeline.n,
        first_date=first_date,
        last_date=last_date,
        splitter=repr(splitter),
        config=canonical(splitter.config, "splitter"),
        name=name,
        dates=dates,
    )


class BaseSplitter(_Splitter):
    """Base of splitters that follow scikit-learn's cross-validator protocol.

    ``split`` yields ``(train, test)`` pairs of sorted int64 position arrays (read-only);
    ``get_n_splits`` counts the folds ``split`` yields for the same ``X``, by the same code.
    """

    def split(self, X: Any, y: Any = None,
              groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` integer positions of the bars of ``X``.

        Parameters
        ----------
        X
            A MarketData, a DataFrame / Series or an array-like with one row per bar.
        y, groups
            Ignored; present for scikit-learn compatibility.
        """
        for planned in self._plan(as_timeline(X)):
            yield planned.train, planned.test

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds ``split(X)`` yields (computed by the same code)."""
        if X is None:
            return self._n_splits_without_data()
        return len(self._plan(as_timeline(X)))

    def _n_splits_without_data(self) -> int:
        raise SplitError(
            f"{type(self).__name__}.get_n_splits needs X: the number of folds depends on the "
            "length (and dates) of the data. Call get_n_splits(X).")


class BaseCombinatorialSplitter(_Splitter):
    """Base of splitters whose test set is several groups that recombine into paths.

    The bars are cut into ``n_groups`` contiguous groups; each split tests on some of them.
    ``split`` yields ``(train, tests)`` where ``tests`` is a list of int arrays, one per
    test group (in group order). Every group is tested in ``n_paths`` splits, so the test
    results recombine into ``n_paths`` full backtest paths: :attr:`path_map` says which
    split supplies each group of each path, :meth:`path_pieces` lists the pieces with their
    positions, and :meth:`stitch` assembles per-split results into paths.

    Subclasses set the attribute ``n_groups`` and implement ``_plan``, ``group_bounds``
    and ``test_groups``.
    """

    #: Number of contiguous groups the bars are cut into.
    n_groups: int

    @property
    @abstractmethod
    def test_groups(self) -> list[tuple[int, ...]]:
        """The groups tested by each split, in split order."""

    @abstractmethod
    def group_bounds(self, X: Any) -> np.ndarray:
        """``(n_groups, 2)`` array of each group's ``[start, stop)`` positions in ``X``."""

    @property
    def n_splits(self) -> int:
        return len(self.test_groups)

    @property
    def n_paths(self) -> int:
        """Number of full backtest paths: how many splits test any one group."""
        counts = np.bincount(np.concatenate(self.test_groups), minlength=self.n_groups)
        return int(counts[0])

    @property
    def path_map(self) -> np.ndarray:
        """``(n_paths, n_groups)`` int array: ``path_map[p, g]`` is the split whose test on
        group ``g`` forms that part of path ``p``.

        The ``k``-th split (in split order) that tests group ``g`` feeds path ``k``, so every
        path covers every group exactly once.
        """
        out = np.empty((self.n_paths, self.n_groups), dtype=np.int64)
        seen = np.zeros(self.n_groups, dtype=np.int64)
        for split, groups in enumerate(self.test_groups):
            for group in groups:
                out[seen[group], group] = split
                seen[group] += 1
        out.flags.writeable = False
        return out

    def split(self, X: Any, y: Any = None,
              groups: Any = None) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """Yield ``(train, tests)``: training positions and one array per test group."""
        timeline = as_timeline(X)
        bounds = self.group_bounds(X)
        for planned in self._plan(timeline):
            yield planned.train, [planned.test[(planned.test >= bounds[g, 0])
                                               & (planned.test < bounds[g, 1])]
                                  for g in planned.test_groups]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of splits ``split(X)`` yields; without ``X``, ``C(n_groups, k)``."""
        if X is None:
            return self.n_splits
        return len(self._plan(as_timeline(X)))

    def path_pieces(self, X: Any) -> pd.DataFrame:
        """The pieces of every path: columns path, group, split, start, stop (positions,
        stop excluded) and, with dates, first and last date of the piece."""
        bounds = self.group_bounds(X)
        timeline = as_timeline(X)
        rows = []
        for path, splits in enumerate(self.path_map):
            for group, split in enumerate(splits):
                start, stop = (int(v) for v in bounds[group])
                row: dict[str, Any] = {"path": path, "group": group, "split": int(split),
                                       "start": start, "stop": stop}
                if timeline.dates is not None:
                    row["first_date"] = timeline.dates[start]
                    row["last_date"] = timeline.dates[stop - 1]
                rows.append(row)
        return pd.DataFrame(rows)

    def stitch(self, results: Sequence[Any], X: Any) -> np.ndarray:
        """Assemble out-of-sample results of every split into full paths.

        Parameters
        ----------
        results
            One array per split, in split order; ``results[s]`` holds a value per test bar
            of split ``s`` (aligned with its test positions, first axis), e.g. the strategy's
            out-of-sample returns.
        X
            The data that was split.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_paths, n_bars, ...)``: path ``p`` is the whole history, each group
            taken from the split :attr:`path_map` names.
        """
        timeline = as_timeline(X)
        bounds = self.group_bounds(X)
        if len(results) != self.n_splits:
            raise SplitError(
                f"stitch needs one result per split: got {len(results)}, but {self!r} makes "
                f"{self.n_splits} splits.")
        arrays = [np.asarray(r) for r in results]
        out = np.empty((self.n_paths, timeline.n, *arrays[0].shape[1:]),
                       dtype=np.result_type(*arrays))
        for split, groups in enumerate(self.test_groups):
            expected = int(sum(bounds[g, 1] - bounds[g, 0] for g in groups))
            if len(arrays[split]) != expected:
                raise SplitError(
                    f"stitch: results[{split}] has {len(arrays[split])} rows, but split {split} "
                    f"tests {expected} bars (groups {groups}). Pass one row per test bar.")
        for path, splits in enumerate(self.path_map):
            for group, split in enumerate(splits):
                start, stop = bounds[group]
                offset = int(sum(bounds[g, 1] - bounds[g, 0]
                                 for g in self.test_groups[split] if g < group))
                out[path, start:stop] = arrays[split][offset:offset + stop - start]
        return out
