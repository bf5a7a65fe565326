"""The bars a splitter works on: how many, their dates (if any), and a content hash.

A splitter accepts a :class:`~foldwise.MarketData`, a pandas DataFrame or Series, or any
array-like whose first axis is the bars. :func:`as_timeline` reduces each of them to a
:class:`Timeline`: the number of bars, the ``DatetimeIndex`` when there is one (calendar
spans need it), and — computed only when fold ids are asked for — a hash of the full
content, so that any change to the data gives new fold ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from foldwise._hashing import hash_arrays
from foldwise.data import MarketData, check_index
from foldwise.errors import SplitError

__all__ = ["Timeline", "as_timeline", "format_date"]

# Version of the layout hashed for data that is not a MarketData.
_HASH_VERSION = 1


@dataclass(frozen=True, eq=False)
class Timeline:
    """The bars of one dataset, as a splitter sees them.

    Attributes
    ----------
    n
        Number of bars (rows).
    dates
        The bars' dates, sorted and unique, or None for data without dates.
    source
        The object the timeline was made from (hashed on demand).
    """

    n: int
    dates: pd.DatetimeIndex | None
    source: Any = field(repr=False)

    @property
    def content_hash(self) -> str:
        """Hash of the full content of :attr:`source` (memoized by MarketData itself)."""
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = _content_hash(self.source)
            object.__setattr__(self, "_hash", value)
            return value

    def describe(self) -> str:
        """``"2148 bars 2004-08-19..2013-03-01"`` or ``"500 bars (no dates)"``."""
        if self.dates is None or self.n == 0:
            return f"{self.n} bars (no dates)"
        return f"{self.n} bars {format_date(self.dates[0])}..{format_date(self.dates[-1])}"

    def label(self, position: int) -> str:
        """A bar named for a message: its date, or ``"bar 12"`` without dates."""
        if self.dates is None:
            return f"bar {position}"
        return format_date(self.dates[position])


def format_date(stamp: pd.Timestamp) -> str:
    """``"2024-01-02"`` for a midnight time stamp, the full time stamp otherwise."""
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def as_timeline(X: Any) -> Timeline:
    """Return the :class:`Timeline` of ``X``.

    Parameters
    ----------
    X
        A MarketData; a DataFrame or Series (its index gives the dates when it is a
        ``DatetimeIndex``, which must then be sorted and unique); or an array-like whose
        first axis is the bars (no dates: sizes must be bar counts).

    Examples
    --------
    >>> as_timeline(np.zeros((5, 2))).describe()
    '5 bars (no dates)'
    >>> as_timeline(pd.Series(1.0, index=pd.date_range("2024-01-01", periods=3))).describe()
    '3 bars 2024-01-01..2024-01-03'
    """
    if isinstance(X, MarketData):
        return Timeline(X.n_dates, X.index, X)
    if isinstance(X, (pd.DataFrame, pd.Series)):
        index = X.index
        if isinstance(index, pd.DatetimeIndex):
            if len(index):
                check_index(index, "the index of X")
            return Timeline(len(index), index, X)
        return Timeline(len(index), None, X)
    if X is None:
        raise SplitError(
            "X is None: a splitter needs the data to split. Pass the MarketData, a DataFrame "
            "or Series with a DatetimeIndex, or an array whose first axis is the bars.")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return Timeline(int(shape[0]), None, X)
    try:
        n = len(X)
    except TypeError:
        raise SplitError(
            f"cannot count the bars of X = {type(X).__name__}; pass a MarketData, a "
            "DataFrame or Series, or an array-like whose first axis is the bars.") from None
    return Timeline(n, None, X)


def _column_array(values: Any) -> np.ndarray:
    """An array whose raw bytes identify ``values`` (object columns via pandas' row hash)."""
    array = np.asarray(values)
    if array.dtype.kind in "biufcmM":
        return np.ascontiguousarray(array)
    # Strings and other objects: pandas' hash is fixed-key and stable across processes.
    flat = pd.Series(array.reshape(-1), dtype=object)
    return pd.util.hash_pandas_object(flat, index=False).to_numpy()


def _content_hash(source: Any) -> str:
    if isinstance(source, MarketData):
        return source.content_hash
    if isinstance(source, pd.Series):
        source = source.to_frame(name=source.name)
        kind = "series"
    elif isinstance(source, pd.DataFrame):
        kind = "frame"
    else:
        kind = "array"
    if kind == "array":
        try:
            array = np.asarray(source)
        except (TypeError, ValueError) as exc:
            raise SplitError(
                f"cannot hash X = {type(source).__name__} to derive fold ids ({exc}); pass a "
                "MarketData, a DataFrame or a numpy array.") from exc
        header = {"v": _HASH_VERSION, "kind": kind, "shape": list(array.shape),
                  "dtype": array.dtype.str}
        return hash_arrays(header, [_column_array(array)])
    index = source.index
    header = {
        "v": _HASH_VERSION,
        "kind": kind,
        "columns": [repr(c) for c in source.columns],
        "dtypes": [str(t) for t in source.dtypes],
        "index": type(index).__name__,
        "tz": str(getattr(index, "tz", None)),
    }
    index_array = (index.as_unit("ns").asi8 if isinstance(index, pd.DatetimeIndex)
                   else _column_array(index))
    arrays = [index_array] + [_column_array(source.iloc[:, j]) for j in range(source.shape[1])]
    return hash_arrays(header, arrays)
