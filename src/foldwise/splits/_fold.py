"""``Fold`` and ``FoldSet``: what a splitter hands to the optimizer, with stable ids.

A fold's id is a hash of three things only: the content hash of the data, the splitter's
canonical configuration (type-exact JSON, :func:`foldwise._canonical.canonical_json`) and
the fold's number. The same data and the same splitter give the same ids in any process on
any machine; a change to any byte of the data or to any setting gives new ids. The id of
the whole set is the hash of the first two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd

from foldwise._canonical import canonical_hash

from ._purge import positions_to_ranges
from ._timeline import format_date

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Fold", "FoldSet", "fold_id", "fold_set_id"]

# Bump when the meaning of an id changes (what goes into the hash).
_ID_VERSION = 1


def fold_set_id(content_hash: str, config: Any) -> str:
    """Id of the fold set of a splitter configuration on some data."""
    return canonical_hash({"v": _ID_VERSION, "data": content_hash, "splitter": config})


def fold_id(content_hash: str, config: Any, number: int) -> str:
    """Id of fold ``number`` of a splitter configuration on some data."""
    return canonical_hash({"v": _ID_VERSION, "data": content_hash, "splitter": config,
                           "fold": number})


def _readonly(values: Any) -> np.ndarray:
    array = np.array(values, dtype=np.int64, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Fold:
    """One train / test split, with purge and embargo applied.

    Attributes
    ----------
    number
        Position of the fold in its set, from 0.
    train, test
        Sorted, read-only int64 positions of the bars to train and test on. In walk-forward
        each is usually one contiguous range; in k-fold and CPCV the training set has
        several (see :attr:`train_ranges`).
    train_start, train_end, test_start, test_end
        Dates of the first and last bar of each set (inclusive); None without dates.
    fold_id
        Stable 32-hex id (data content hash + splitter configuration + number).
    purged, embargoed
        Read-only positions removed from the training window by the purge and the embargo.
    test_groups
        The groups that make up the test set (combinatorial splitters); empty otherwise.
    """

    number: int
    train: np.ndarray
    test: np.ndarray
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    test_start: pd.Timestamp | None
    test_end: pd.Timestamp | None
    fold_id: str
    purged: np.ndarray = field(default_factory=lambda: _readonly([]))
    embargoed: np.ndarray = field(default_factory=lambda: _readonly([]))
    test_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train", "test", "purged", "embargoed"):
            value = getattr(self, name)
            if not (isinstance(value, np.ndarray) and not value.flags.writeable
                    and value.dtype == np.int64):
                object.__setattr__(self, name, _readonly(value))

    @classmethod
    def build(cls, number: int, train: np.ndarray, test: np.ndarray, *,
              dates: pd.DatetimeIndex | None, fold_id: str, purged: np.ndarray,
              embargoed: np.ndarray, test_groups: tuple[int, ...] = ()) -> Fold:
        """A fold whose first / last dates are read from ``dates``."""
        def date(positions: np.ndarray, at: int) -> pd.Timestamp | None:
            return None if dates is None or positions.size == 0 else dates[int(positions[at])]

        return cls(number, train, test, date(train, 0), date(train, -1), date(test, 0),
                   date(test, -1), fold_id, purged, embargoed, tuple(test_groups))

    @property
    def n_train(self) -> int:
        return int(self.train.size)

    @property
    def n_test(self) -> int:
        return int(self.test.size)

    @property
    def train_ranges(self) -> list[tuple[int, int]]:
        """The training bars as ``(start, stop)`` ranges (stop excluded), for slicing."""
        return [(int(a), int(b)) for a, b in positions_to_ranges(self.train)]

    @property
    def test_ranges(self) -> list[tuple[int, int]]:
        """The test bars as ``(start, stop)`` ranges (stop excluded), for slicing."""
        return [(int(a), int(b)) for a, b in positions_to_ranges(self.test)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fold):
            return NotImplemented
        return (self.fold_id == other.fold_id and self.number == other.number
                and self.test_groups == other.test_groups
                and all(np.array_equal(getattr(self, k), getattr(other, k))
                        for k in ("train", "test", "purged", "embargoed")))

    def __hash__(self) -> int:
        return hash(self.fold_id)

    def __repr__(self) -> str:
        def part(name: str, positions: np.ndarray, first: Any, last: Any) -> str:
            ranges = positions_to_ranges(positions)
            pieces = ", ".join(f"{a}:{b}" for a, b in ranges[:3])
            more = ", ..." if len(ranges) > 3 else ""
            dates = f" {format_date(first)}..{format_date(last)}" if first is not None else ""
            return f"{name}=[{pieces}{more}] ({positions.size} bars{dates})"

        groups = f", test_groups={self.test_groups}" if self.test_groups else ""
        return (f"Fold({self.number}, "
                f"{part('train', self.train, self.train_start, self.train_end)}, "
                f"{part('test', self.test, self.test_start, self.test_end)}, "
                f"purged={self.purged.size}, embargoed={self.embargoed.size}{groups}, "
                f"fold_id={self.fold_id[:12]!r}...)")


@dataclass(frozen=True, eq=False)
class FoldSet(Sequence[Fold]):
    """The folds of one splitter on one dataset: a sequence of :class:`Fold` with an id.

    Attributes
    ----------
    folds
        The folds, in order.
    id
        Stable 32-hex id of the set (data content hash + splitter configuration).
    content_hash
        Content hash of the data the folds were made for.
    n_dates, first_date, last_date
        Size and date range of that data (dates None without dates).
    splitter
        ``repr`` of the splitter.
    config
        The splitter's canonical configuration (the JSON-able form of ``splitter.config``).
    name
        Name under which the set is stored, if it is.
    dates
        The data's dates (for plots), or None.
    """

    folds: tuple[Fold, ...]
    id: str
    content_hash: str
    n_dates: int
    first_date: pd.Timestamp | None
    last_date: pd.Timestamp | None
    splitter: str
    config: Any
    name: str | None = None
    dates: pd.DatetimeIndex | None = field(default=None, repr=False)

    @overload
    def __getitem__(self, item: int) -> Fold: ...
    @overload
    def __getitem__(self, item: slice) -> tuple[Fold, ...]: ...

    def __getitem__(self, item: int | slice) -> Fold | tuple[Fold, ...]:
        return self.folds[item]

    def __len__(self) -> int:
        return len(self.folds)

    def __iter__(self) -> Iterator[Fold]:
        return iter(self.folds)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FoldSet):
            return NotImplemented
        return self.id == other.id and self.folds == other.folds

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def fold_ids(self) -> list[str]:
        return [f.fold_id for f in self.folds]

    def __repr__(self) -> str:
        named = f", name={self.name!r}" if self.name is not None else ""
        return (f"FoldSet({len(self.folds)} folds of {self.splitter} on {self.n_dates} bars"
                f"{named}, id={self.id[:12]!r}...)")

    def describe(self) -> pd.DataFrame:
        """One row per fold: fold, train_start, train_end, test_start, test_end, n_train,
        n_test, purged, embargoed (and test_groups for combinatorial splitters).

        Start / end are the dates of the first and last bar of each set, or bar positions
        for data without dates.
        """
        columns = ["fold", "train_start", "train_end", "test_start", "test_end", "n_train",
                   "n_test", "purged", "embargoed"]
        if any(f.test_groups for f in self.folds):
            columns.append("test_groups")
        rows = []
        for f in self.folds:
            bounds: list[pd.Timestamp | int | None]
            if self.dates is None:
                bounds = [int(a[i]) if a.size else None
                          for a in (f.train, f.test) for i in (0, -1)]
            else:
                bounds = [f.train_start, f.train_end, f.test_start, f.test_end]
            ends = dict(zip(("train_start", "train_end", "test_start", "test_end"), bounds,
                            strict=True))
            row: dict[str, Any] = {"fold": f.number, **ends, "n_train": f.n_train, "n_test": f.n_test,
                   "purged": int(f.purged.size), "embargoed": int(f.embargoed.size)}
            if f.test_groups:
                row["test_groups"] = f.test_groups
            rows.append(row)
        return pd.DataFrame(rows, columns=columns)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the folds over time (train, test, purge, embargo); see ``splitter.plot``."""
        from ._plot import plot_folds

        return plot_folds(self, ax)
