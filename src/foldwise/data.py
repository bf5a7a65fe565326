"""``MarketData``: a validated, immutable panel of named fields over dates x assets.

A panel holds a sorted, unique :class:`pandas.DatetimeIndex` of bars, a list of asset
labels (strings) and named fields (``close``, ``open``, ``volume``, anything else), each a
read-only ``float64`` array of shape ``(n_dates, n_assets)``. NaN means "no data".

The panel validates once, on construction, and raises a specific
:class:`~foldwise.errors.DataError` subclass whose message names the problem and the fix.
After that it never changes: arrays are read-only, so the full-content hash
(:attr:`MarketData.content_hash`) is computed once per object and memoized, and derived
arrays (returns, say) can be memoized next to it.

A field reads as a DataFrame over its array (``data["close"]``, ``data.close``; no copy),
for strategy code written in pandas, or as the array itself (``data.array("close")``), the
fast path for numpy code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from foldwise._atomic import atomic_path
from foldwise._hashing import hash_arrays
from foldwise.errors import (
    DuplicateDatesError,
    EmptyDataError,
    MisalignedFieldsError,
    MissingFieldError,
    NonDatetimeIndexError,
    NonFiniteValueError,
    NonNumericFieldError,
    NonPositivePriceError,
    TimezoneError,
    UnsortedDatesError,
)

__all__ = ["PRICE_FIELDS", "MarketData", "check_index"]

logger = logging.getLogger(__name__)

#: Fields that hold prices and must therefore be strictly positive where present.
PRICE_FIELDS: frozenset[str] = frozenset(
    {"open", "high", "low", "close", "adj_close", "price", "vwap"}
)

# Version of the content-hash layout; bump it if the hashed bytes ever change meaning.
_HASH_VERSION = 1

Layout = Literal["auto", "wide", "long", "ohlcv"]


# --- validation helpers --------------------------------------------------------------------


def _as_datetime_index(index: Any, what: str) -> pd.DatetimeIndex:
    """Return ``index`` as a nanosecond ``DatetimeIndex`` or raise a precise error."""
    if isinstance(index, pd.DatetimeIndex):
        return index.as_unit("ns")
    values = list(index[:1000]) if len(index) else []
    stamps = [v for v in values if isinstance(v, pd.Timestamp)]
    if stamps and len(stamps) == len(values):
        zones = sorted({str(v.tz) for v in stamps})
        if len(zones) > 1:
            raise TimezoneError(
                f"{what} mixes time zones ({', '.join(zones)}). Convert every date to one "
                "zone first, e.g. pd.to_datetime(dates, utc=True).tz_convert('America/New_York')."
            )
    example = repr(values[0]) if values else "nothing"
    raise NonDatetimeIndexError(
        f"{what} must be a pandas DatetimeIndex, got {type(index).__name__} of "
        f"{getattr(index, 'dtype', type(example))} (first value {example}). Convert it with "
        "pd.to_datetime(...), e.g. df.index = pd.to_datetime(df.index)."
    )


def _parse_dates(values: Any, what: str, hint: str = "") -> pd.DatetimeIndex:
    """Parse a column of dates read from a file or a long table (strings are expected there)."""
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as exc:
        raise NonDatetimeIndexError(
            f"{what} must hold dates ({exc}). {hint or 'Fix or drop the rows that are not dates.'}"
        ) from exc
    return _as_datetime_index(parsed, what)


def check_index(index: pd.DatetimeIndex, what: str) -> None:
    """Refuse a date index that is empty, has NaT, is unsorted or has duplicates.

    The checks MarketData makes on its dates, for other parts that take dated data (the
    splitters); each error names the position and the fix.

    Parameters
    ----------
    index
        The dates.
    what
        How messages name the index, e.g. ``"the index of X"``.

    Raises
    ------
    EmptyDataError, NonDatetimeIndexError, UnsortedDatesError, DuplicateDatesError

    Examples
    --------
    >>> check_index(pd.DatetimeIndex(["2024-01-03", "2024-01-02"]), "the index")
    Traceback (most recent call last):
    ...
    foldwise.errors.UnsortedDatesError: the index is not sorted: 2024-01-02 00:00:00 comes after 2024-01-03 00:00:00 at position 1. Sort it first, e.g. df.sort_index().
    """
    if len(index) == 0:
        raise EmptyDataError(f"{what} has no dates. Pass at least one bar.")
    if index.hasnans:
        position = int(np.flatnonzero(index.isna())[0])
        raise NonDatetimeIndexError(
            f"{what} has a missing date (NaT) at position {position}. Drop or fix that row "
            "before building MarketData."
        )
    values = index.asi8
    steps = np.diff(values)
    if np.any(steps < 0):
        position = int(np.flatnonzero(steps < 0)[0]) + 1
        raise UnsortedDatesError(
            f"{what} is not sorted: {index[position]} comes after {index[position - 1]} at "
            f"position {position}. Sort it first, e.g. df.sort_index()."
        )
    if np.any(steps == 0):
        position = int(np.flatnonzero(steps == 0)[0]) + 1
        count = int(np.sum(steps == 0))
        raise DuplicateDatesError(
            f"{what} has {count} duplicate date(s), the first {index[position]} at position "
            f"{position}. Keep one row per date, e.g. df[~df.index.duplicated(keep='last')]."
        )


def _check_values(name: str, array: np.ndarray, index: pd.DatetimeIndex, assets: pd.Index,
                  is_price: bool) -> None:
    infinite = np.isinf(array)
    if infinite.any():
        row, col = (int(i[0]) for i in np.nonzero(infinite))
        raise NonFiniteValueError(
            f"field {name!r} has {int(infinite.sum())} infinite value(s), the first "
            f"{array[row, col]} on {index[row].date()} for {assets[col]!r}. Replace them with "
            "NaN (no data) or a real value, e.g. df.replace([np.inf, -np.inf], np.nan)."
        )
    if is_price:
        with np.errstate(invalid="ignore"):
            bad = array <= 0
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            raise NonPositivePriceError(
                f"price field {name!r} has {int(bad.sum())} zero or negative price(s), the "
                f"first {array[row, col]} on {index[row].date()} for {assets[col]!r}. Prices "
                "must be > 0: set missing prices to NaN, or pass price_fields=... without "
                f"{name!r} if this field is not a price."
            )


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        bad = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        raise NonNumericFieldError(
            f"field {name!r} has non-numeric values ({exc}) in column(s) {bad[:5]}. Convert "
            "them first, e.g. df.apply(pd.to_numeric, errors='coerce') (unparseable -> NaN)."
        ) from exc


def _normalise_field_name(name: Any) -> str:
    return str(name).strip().lower().replace(" ", "_")


def _index_summary(index: pd.Index) -> str:
    if len(index) == 0:
        return "no dates"
    return f"{len(index)} dates {index[0]}..{index[-1]}"


def _describe_difference(kind: str, reference: pd.Index, other: pd.Index) -> str:
    missing = reference.difference(other)
    extra = other.difference(reference)
    parts = []
    if len(missing):
        parts.append(f"lacks {len(missing)} {kind} (first {list(missing[:3])})")
    if len(extra):
        parts.append(f"has {len(extra)} extra {kind} (first {list(extra[:3])})")
    if not parts:
        parts.append(f"has the same {kind} in another order")
    return " and ".join(parts)


def _read_only(value: Any) -> Any:
    """``value`` with every numpy array in it (or in a tuple of it) made read-only."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for item in value:
            _read_only(item)
    return value


# --- the panel -----------------------------------------------------------------------------


class MarketData:
    """A panel of named float fields over ``(dates x assets)``.

    Parameters
    ----------
    fields
        Mapping of field name to a 2-D array ``(n_dates, n_assets)``; values are converted
        to ``float64``. NaN means "no data"; +/-inf is refused.
    index
        The bars: a sorted ``DatetimeIndex`` without duplicates (naive or one time zone).
    assets
        Asset labels, one per column; converted to ``str`` and unique.
    price_fields
        Names of the fields that hold prices and must be > 0 where present. Defaults to
        :data:`PRICE_FIELDS` (open, high, low, close, adj_close, price, vwap).

    Notes
    -----
    The object is immutable: arrays are read-only views, so its :attr:`content_hash` never
    goes stale. Use the ``from_*`` / ``read_*`` constructors for DataFrames and files.

    A field reads as a DataFrame (dates x assets) with ``data["close"]``, ``data.close`` or
    ``data.frame("close")`` — a new frame over the same read-only memory each time — and as
    the read-only numpy array itself with ``data.array("close")``. Neither can be written
    into; work on a copy (``data["close"].copy()``).

    Examples
    --------
    >>> import pandas as pd
    >>> close = pd.DataFrame({"A": [10.0, 10.5, 10.2], "B": [20.0, 19.0, 19.5]},
    ...                      index=pd.date_range("2024-01-01", periods=3))
    >>> data = MarketData.from_frame(close)
    >>> data
    MarketData(3 dates 2024-01-01..2024-01-03, 2 assets, fields=['close'])
    >>> data["close"]                    # a DataFrame over the read-only array (no copy)
                   A     B
    2024-01-01  10.0  20.0
    2024-01-02  10.5  19.0
    2024-01-03  10.2  19.5
    >>> data.array("close").shape        # the array itself: the fast path for numpy code
    (3, 2)
    """

    __slots__ = ("__weakref__", "_assets", "_fields", "_hash", "_index", "_memo",
                 "_price_fields")

    def __init__(
        self,
        fields: Mapping[str, Any],
        index: Any,
        assets: Iterable[Any],
        *,
        price_fields: Iterable[str] | None = None,
    ) -> None:
        if not fields:
            raise EmptyDataError("MarketData needs at least one field, e.g. {'close': array}.")
        dates = _as_datetime_index(index, "the date index")
        check_index(dates, "the date index")
        labels = pd.Index([str(a) for a in assets], dtype=object)
        if len(labels) == 0:
            raise EmptyDataError("MarketData needs at least one asset; the asset list is empty.")
        if labels.has_duplicates:
            dupes = sorted(set(labels[labels.duplicated()]))
            raise MisalignedFieldsError(
                f"asset labels must be unique; duplicated: {dupes[:5]}. Rename or drop the "
                "duplicated columns (labels are compared as strings, so 1 and '1' collide)."
            )
        prices = PRICE_FIELDS if price_fields is None else frozenset(price_fields)
        arrays: dict[str, np.ndarray] = {}
        for raw_name, raw_values in fields.items():
            name = str(raw_name)
            try:
                array = np.array(raw_values, dtype=np.float64, order="C", copy=True)
            except (TypeError, ValueError) as exc:
                raise NonNumericFieldError(
                    f"field {name!r} cannot be read as numbers ({exc}). Convert it to a "
                    "numeric dtype first, e.g. pd.to_numeric(..., errors='coerce')."
                ) from exc
            if array.ndim == 1 and len(labels) == 1:
                array = array.reshape(-1, 1)
            if array.shape != (len(dates), len(labels)):
                raise MisalignedFieldsError(
                    f"field {name!r} has shape {array.shape}, but the panel has "
                    f"{len(dates)} dates x {len(labels)} assets. Every field must cover the "
                    "same dates and assets; reindex it first."
                )
            _check_values(name, array, dates, labels, name in prices)
            array.flags.writeable = False
            arrays[name] = array
        self._init(arrays, dates, labels, prices)

    def _init(self, arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, assets: pd.Index,
              price_fields: frozenset[str]) -> None:
        self._fields = arrays
        self._index = index
        self._assets = assets
        self._price_fields = price_fields
        self._hash: str | None = None
        self._memo: dict[Any, Any] = {}

    def __setstate__(self, state: tuple[Any, dict[str, Any]]) -> None:
        # Unpickling (a worker process receiving the data): the arrays come back writeable
        # from pickle protocols below 5, so they are made read-only again. The memoized hash
        # and derived arrays travel with the object.
        for name, value in state[1].items():
            object.__setattr__(self, name, value)
        for array in self._fields.values():
            array.flags.writeable = False
        self._memo = {key: _read_only(value) for key, value in self._memo.items()}

    @classmethod
    def _trusted(cls, arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, assets: pd.Index,
                 price_fields: frozenset[str]) -> MarketData:
        """Build from parts already validated (slices of a valid panel)."""
        obj = cls.__new__(cls)
        obj._init(arrays, index, assets, price_fields)
        return obj

    # --- constructors ------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | pd.Series, field: str = "close", *,
                   price_fields: Iterable[str] | None = None) -> MarketData:
        """One field from a wide DataFrame (dates as index, one column per asset).

        A Series is read as a single asset named after the Series (or ``"asset"``).
        """
        if isinstance(frame, pd.Series):
            frame = frame.to_frame(name=frame.name if frame.name is not None else "asset")
        return cls.from_frames({field: frame}, price_fields=price_fields)

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], *,
                    align: Literal["exact", "inner", "outer"] = "exact",
                    price_fields: Iterable[str] | None = None) -> MarketData:
        """Several fields from a dict of wide DataFrames (field name -> dates x assets).

        Parameters
        ----------
        align
            ``"exact"`` (default) refuses fields that cover different dates or assets, with
            a message naming the difference; ``"inner"`` keeps the dates and assets every
            field has; ``"outer"`` keeps all of them and fills the gaps with NaN.
        """
        if not frames:
            raise EmptyDataError("from_frames needs at least one field, e.g. {'close': df}.")
        prepared: dict[str, pd.DataFrame] = {}
        zones: dict[str, tzinfo | None] = {}
        for name, frame in frames.items():
            if not isinstance(frame, pd.DataFrame):
                raise MisalignedFieldsError(
                    f"field {name!r} must be a wide DataFrame (dates x assets), got "
                    f"{type(frame).__name__}."
                )
            field_index = _as_datetime_index(frame.index, f"the index of field {name!r}")
            check_index(field_index, f"the index of field {name!r}")
            zones[name] = field_index.tz
            prepared[name] = frame.set_axis(field_index, axis=0).set_axis(
                [str(c) for c in frame.columns], axis=1)
        if len({str(z) for z in zones.values()}) > 1:
            listing = ", ".join(f"{n}: {z or 'naive'}" for n, z in zones.items())
            raise TimezoneError(
                f"fields disagree on the time zone ({listing}). Convert every field to one "
                "zone, e.g. df.tz_convert('UTC'), or make all naive with df.tz_localize(None)."
            )
        names = list(prepared)
        reference = prepared[names[0]]
        if align == "exact":
            for name in names[1:]:
                frame = prepared[name]
                if not frame.index.equals(reference.index):
                    raise MisalignedFieldsError(
                        f"field {name!r} covers different dates than {names[0]!r}: it "
                        f"{_describe_difference('dates', reference.index, frame.index)}. "
                        "Reindex the fields to common dates, or pass align='inner' / 'outer'."
                    )
                if not frame.columns.equals(reference.columns):
                    raise MisalignedFieldsError(
                        f"field {name!r} covers different assets than {names[0]!r}: it "
                        f"{_describe_difference('assets', reference.columns, frame.columns)}. "
                        "Select the same columns, or pass align='inner' / 'outer'."
                    )
            index, columns = reference.index, reference.columns
        elif align in ("inner", "outer"):
            index, columns = reference.index, reference.columns
            for frame in list(prepared.values())[1:]:
                if align == "inner":
                    index, columns = index.intersection(frame.index), columns.intersection(frame.columns)
                else:
                    index, columns = index.union(frame.index), columns.union(frame.columns)
            index = index.sort_values()
        else:
            raise ValueError(f"align must be 'exact', 'inner' or 'outer', got {align!r}.")
        arrays = {name: _numeric(frame.reindex(index=index, columns=columns), name)
                  for name, frame in prepared.items()}
        return cls(arrays, index, columns, price_fields=price_fields)

    @classmethod
    def from_long(cls, table: pd.DataFrame, *, date: str = "date", asset: str = "asset",
                  fields: Sequence[str] | None = None,
                  price_fields: Iterable[str] | None = None) -> MarketData:
        """From a long table with one row per (date, asset) and one column per field.

        Row order does not matter; assets come out sorted. A (date, asset) pair that
        appears twice is refused.
        """
        missing = [c for c in (date, asset) if c not in table.columns]
        if missing:
            raise MissingFieldError(
                f"the long table has no column {missing[0]!r} (columns: {list(table.columns)}). "
                f"Name the columns with from_long(table, date=..., asset=...)."
            )
        value_columns = list(fields) if fields is not None else [
            c for c in table.columns if c not in (date, asset)]
        absent = [c for c in value_columns if c not in table.columns]
        if absent:
            raise MissingFieldError(
                f"the long table has no field column {absent[0]!r} (columns: "
                f"{list(table.columns)})."
            )
        if not value_columns:
            raise EmptyDataError("the long table has no field columns besides date and asset.")
        if len(table) == 0:
            raise EmptyDataError("the long table has no rows.")
        dates = _parse_dates(table[date], f"column {date!r} of the long table")
        keys = pd.MultiIndex.from_arrays([dates, table[asset].astype(str)], names=["date", "asset"])
        if keys.has_duplicates:
            first = keys[keys.duplicated()][0]
            raise DuplicateDatesError(
                f"the long table has more than one row for date {first[0]} and asset "
                f"{first[1]!r}. Keep one row per (date, asset), e.g. "
                f"table.drop_duplicates([{date!r}, {asset!r}], keep='last')."
            )
        indexed = table[value_columns].set_axis(keys, axis=0)
        wide = {
            _normalise_field_name(col): indexed[col].unstack("asset").sort_index()
            for col in value_columns
        }
        return cls.from_frames(wide, align="outer", price_fields=price_fields)

    @classmethod
    def from_ohlcv(cls, frame: pd.DataFrame, asset: str = "asset", *,
                   price_fields: Iterable[str] | None = None) -> MarketData:
        """One asset from an OHLCV frame (columns like Open, High, Low, Close, Volume).

        Column names are matched case-insensitively and normalised (``"Adj Close"`` becomes
        ``adj_close``); every numeric column becomes a field.
        """
        numeric = frame.select_dtypes(include="number")
        if numeric.shape[1] == 0:
            raise EmptyDataError(
                f"the OHLCV frame has no numeric columns (columns: {list(frame.columns)}).")
        names = [_normalise_field_name(c) for c in numeric.columns]
        if len(set(names)) != len(names):
            raise MisalignedFieldsError(
                f"OHLCV columns {list(numeric.columns)} collide once lower-cased; rename them.")
        return cls.from_frames(
            {name: numeric[[col]].set_axis([asset], axis=1)
             for name, col in zip(names, numeric.columns, strict=True)},
            price_fields=price_fields,
        )

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], *, layout: Layout = "auto",
                 field: str = "close", asset: str | None = None,
                 price_fields: Iterable[str] | None = None, **read_kwargs: Any) -> MarketData:
        """Read a CSV file (plain or compressed) in wide, long or OHLCV layout.

        Parameters
        ----------
        layout
            ``"wide"``: first column the date, one column per asset, values of ``field``.
            ``"long"``: columns ``date``, ``asset`` and one per field.
            ``"ohlcv"``: first column the date, then Open/High/Low/Close/Volume of one asset
            (named ``asset``, default the file's stem).
            ``"auto"`` picks long if there is an ``asset`` column, OHLCV if there are open,
            high, low and close columns, wide otherwise.
        read_kwargs
            Passed to :func:`pandas.read_csv`.
        """
        table = pd.read_csv(path, **read_kwargs)
        return cls._from_table(table, Path(path), layout, field, asset, price_fields)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike[str], *, layout: Layout = "auto",
                     field: str = "close", asset: str | None = None,
                     price_fields: Iterable[str] | None = None) -> MarketData:
        """Read a Parquet file in wide, long or OHLCV layout (see :meth:`read_csv`).

        Files written by :meth:`to_parquet` round-trip exactly.
        """
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.DatetimeIndex) or table.index.name is not None:
            table = table.reset_index()
        return cls._from_table(table, Path(path), layout, field, asset, price_fields)

    @classmethod
    def _from_table(cls, table: pd.DataFrame, path: Path, layout: Layout, field: str,
                    asset: str | None, price_fields: Iterable[str] | None) -> MarketData:
        lowered = {_normalise_field_name(c): c for c in table.columns}
        if layout == "auto":
            if "asset" in lowered:
                layout = "long"
            elif {"open", "high", "low", "close"} <= set(lowered):
                layout = "ohlcv"
            else:
                layout = "wide"
        if layout == "long":
            date_col = lowered.get("date", table.columns[0])
            asset_col = lowered.get("asset")
            if asset_col is None:
                raise MissingFieldError(
                    f"{path.name}: a long table needs an 'asset' column (columns: "
                    f"{list(table.columns)}). Use layout='wide' if assets are columns."
                )
            return cls.from_long(table.rename(columns={date_col: "date", asset_col: "asset"}),
                                 price_fields=price_fields)
        if layout not in ("wide", "ohlcv"):
            raise ValueError(f"layout must be 'auto', 'wide', 'long' or 'ohlcv', got {layout!r}.")
        date_col = table.columns[0]
        dates = _parse_dates(
            table[date_col], f"{path.name}: the first column {date_col!r}",
            "Put the date in the first column, or pass layout='long' for a (date, asset) table.")
        frame = table.drop(columns=[date_col]).set_axis(dates, axis=0)
        if layout == "ohlcv":
            name = asset or path.name.split(".")[0]
            return cls.from_ohlcv(frame, name, price_fields=price_fields)
        return cls.from_frame(frame, field, price_fields=price_fields)

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write the panel as a long Parquet table (date, asset, one column per field).

        The file is written to a temporary name and renamed into place, so a reader never
        sees half of it.
        """
        with atomic_path(path) as temporary:
            self.to_long().to_parquet(temporary, index=False)

    # --- accessors -----------------------------------------------------------------------

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bars, sorted and unique."""
        return self._index

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Alias of :attr:`index`."""
        return self._index

    @property
    def assets(self) -> pd.Index:
        """Asset labels (strings), one per column."""
        return self._assets

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names, in construction order."""
        return tuple(self._fields)

    @property
    def price_fields(self) -> frozenset[str]:
        """Names of the fields validated as prices."""
        return self._price_fields

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_dates, n_assets)``."""
        return len(self._index), len(self._assets)

    @property
    def n_dates(self) -> int:
        return len(self._index)

    @property
    def n_assets(self) -> int:
        return len(self._assets)

    @property
    def nbytes(self) -> int:
        """Bytes held by the field arrays."""
        return sum(a.nbytes for a in self._fields.values())

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, field: object) -> bool:
        return field in self._fields

    def __getitem__(self, field: str) -> pd.DataFrame:
        """``field`` as a DataFrame (dates x assets) over the read-only data: no copy.

        The same as :meth:`frame`; ``data.close`` is the same as ``data["close"]``. Strategy
        code can use every pandas idiom on it (``data["close"].rolling(20).mean()``); for
        the raw array without building a frame (about 10-20 us less), use :meth:`array`.
        """
        return self.frame(field)

    def __getattr__(self, name: str) -> pd.DataFrame:
        # Only called when normal lookup fails: lets users write data.close.
        if name.startswith("_"):
            raise AttributeError(name)
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return self.frame(name)
        raise AttributeError(
            f"MarketData has no attribute or field {name!r} (fields: {list(fields)})")

    def array(self, field: str = "close") -> np.ndarray:
        """The read-only ``float64`` array ``(n_dates, n_assets)`` of ``field``.

        The fast path: the panel's own memory, returned as is (no frame is built, no copy is
        made), for numpy code where every microsecond of a trial counts. Rows follow
        :attr:`index` and columns :attr:`assets`. The array is read-only because every trial
        shares it: writing into it raises ``ValueError: assignment destination is
        read-only``; work on a copy (``data.array("close").copy()``).

        Raises
        ------
        MissingFieldError
            If the panel has no such field (the message lists the fields it has).

        Examples
        --------
        >>> import pandas as pd
        >>> data = MarketData.from_frame(pd.DataFrame(
        ...     {"A": [10.0, 11.0]}, index=pd.date_range("2024-01-01", periods=2)))
        >>> data.array("close")
        array([[10.],
               [11.]])
        >>> data.array("close").flags.writeable
        False
        """
        try:
            return self._fields[field]
        except (KeyError, TypeError):
            raise MissingFieldError(
                f"no field {field!r} in this MarketData (fields: {list(self._fields)}). "
                "Load it, e.g. MarketData.from_frames({..., " + repr(field) + ": df})."
            ) from None

    def frame(self, field: str = "close") -> pd.DataFrame:
        """``field`` as a DataFrame (dates x assets) built over the read-only array.

        ``data.frame("close")``, ``data["close"]`` and ``data.close`` are the same. The frame
        has :attr:`index` as its index and :attr:`assets` as its columns and shares memory
        with the panel (no copy), so it costs the same whatever the size of the panel.

        Every call builds a new frame (about 10-20 us) rather than returning a memoized
        one: pandas lets code change a frame object itself (``close["A"] = 0``,
        ``close.columns = [...]``, ``close.drop(columns=..., inplace=True)``), and a frame
        shared by every trial would carry such a change into the next one. A fresh frame
        keeps each caller's changes to itself; the numbers stay the panel's own.

        Writing into the values is an error, because the panel is read-only and shared by
        every trial: ``close.iloc[0, 0] = 1``, ``close.loc[...] = ...``,
        ``close.values[...] = ...``, ``close.fillna(0, inplace=True)`` raise pandas'
        ``ValueError`` (``... is read-only``), which :meth:`foldwise.Strategy.run` reports as
        :class:`~foldwise.errors.DataWriteError`. Work on a copy:
        ``close = data["close"].copy()``. Operations that return a new frame
        (``close.rolling(20).mean()``, ``close.fillna(0)``, ``close + 1``) need no copy.

        Raises
        ------
        MissingFieldError
            If the panel has no such field.

        Examples
        --------
        >>> import pandas as pd
        >>> data = MarketData.from_frame(pd.DataFrame(
        ...     {"A": [10.0, 11.0, 12.0]}, index=pd.date_range("2024-01-01", periods=3)))
        >>> data["close"].rolling(2).mean()
                       A
        2024-01-01   NaN
        2024-01-02  10.5
        2024-01-03  11.5
        >>> close = data["close"]
        >>> close.iloc[0, 0] = 0.0
        Traceback (most recent call last):
        ...
        ValueError: assignment destination is read-only
        """
        return pd.DataFrame(self.array(field), index=self._index, columns=self._assets,
                            copy=False)

    def to_long(self) -> pd.DataFrame:
        """The panel as a long table: columns date, asset and one per field."""
        n_dates, n_assets = self.shape
        table = {
            "date": np.repeat(self._index.to_numpy(), n_assets),
            "asset": np.tile(self._assets.to_numpy(dtype=object), n_dates),
        }
        for name, array in self._fields.items():
            table[name] = array.reshape(-1)
        out = pd.DataFrame(table)
        if self._index.tz is not None:
            out["date"] = out["date"].dt.tz_localize("UTC").dt.tz_convert(self._index.tz)
        return out

    # --- identity ------------------------------------------------------------------------

    @property
    def content_hash(self) -> str:
        """xxh3-128 of the full content, computed once per object.

        Covers every byte of every field (names, dtype and shape included), every date (as
        int64 nanoseconds, plus the time zone) and every asset label: changing any single
        value changes the hash. Never a sample of rows.
        """
        if self._hash is None:
            header = {
                "v": _HASH_VERSION,
                "tz": str(self._index.tz) if self._index.tz is not None else None,
                "assets": [str(a) for a in self._assets],
                "fields": list(self._fields),
            }
            arrays = [self._index.asi8, *self._fields.values()]
            self._hash = hash_arrays(header, arrays)
        return self._hash

    def __repr__(self) -> str:
        first, last = self._index[0], self._index[-1]
        fmt = (lambda t: str(t.date())) if all(
            t == t.normalize() for t in (first, last)) else str
        return (f"MarketData({len(self._index)} dates {fmt(first)}..{fmt(last)}, "
                f"{len(self._assets)} assets, fields={list(self._fields)})")

    # --- slicing -------------------------------------------------------------------------

    def islice(self, start: int, stop: int) -> MarketData:
        """Bars ``start <= i < stop`` by position: a view of the same memory, with its own hash."""
        n = len(self._index)
        begin, end, _ = slice(start, stop).indices(n)
        if end <= begin:
            raise EmptyDataError(
                f"positions {start}..{stop} select no bar of the {n} in this MarketData.")
        if begin == 0 and end == n:
            return self
        arrays = {name: a[begin:end] for name, a in self._fields.items()}
        return MarketData._trusted(arrays, self._index[begin:end], self._assets,
                                   self._price_fields)

    def slice(self, start: Any = None, end: Any = None) -> MarketData:
        """Bars from ``start`` through ``end`` (both inclusive, like ``DataFrame.loc``).

        A view of the same memory where possible, with its own content hash. ``None`` means
        the first / last bar. Raises :class:`~foldwise.errors.EmptyDataError` if no bar falls
        in the range.
        """
        begin = 0 if start is None else int(self._index.searchsorted(self._stamp(start), "left"))
        stop = (len(self._index) if end is None
                else int(self._index.searchsorted(self._stamp(end), "right")))
        if stop <= begin:
            raise EmptyDataError(
                f"no bar between {start} and {end}; this MarketData covers "
                f"{_index_summary(self._index)}."
            )
        return self.islice(begin, stop)

    def _stamp(self, value: Any) -> pd.Timestamp:
        stamp = pd.Timestamp(value)
        tz = self._index.tz
        if tz is not None and stamp.tz is None:
            return stamp.tz_localize(tz)
        if tz is None and stamp.tz is not None:
            raise TimezoneError(
                f"{value!r} has a time zone but this MarketData's dates are naive; pass a "
                "naive date.")
        return stamp

    def select(self, assets: Sequence[Any] | None = None,
               fields: Sequence[str] | None = None) -> MarketData:
        """A panel with only the given assets and/or fields (copies the selected columns)."""
        names = list(self._fields) if fields is None else list(fields)
        for name in names:
            self.array(name)  # raises MissingFieldError with the list of fields
        if assets is None:
            columns = np.arange(len(self._assets))
        else:
            wanted = [str(a) for a in assets]
            positions = self._assets.get_indexer(pd.Index(wanted))
            if (positions < 0).any():
                unknown = [a for a, p in zip(wanted, positions, strict=True) if p < 0]
                raise MissingFieldError(
                    f"unknown asset(s) {unknown[:5]}; this MarketData has "
                    f"{list(self._assets[:10])}{'...' if len(self._assets) > 10 else ''}."
                )
            columns = positions
        if len(columns) == 0 or not names:
            raise EmptyDataError("select() would leave no asset or no field.")
        arrays = {}
        for name in names:
            array = np.ascontiguousarray(self._fields[name][:, columns])
            array.flags.writeable = False
            arrays[name] = array
        return MarketData._trusted(arrays, self._index, self._assets[columns],
                                   self._price_fields)

    # --- derived arrays ------------------------------------------------------------------

    def returns(self, field: str = "close") -> np.ndarray:
        """Simple returns of ``field``: row ``t`` is ``p[t] / p[t-1] - 1`` (the return dated t).

        Row 0 is NaN, and so is any return whose price at ``t`` or ``t-1`` is missing.
        Memoized and read-only.
        """
        def compute() -> np.ndarray:
            prices = self.array(field)
            out = np.full(prices.shape, np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.divide(prices[1:], prices[:-1], out=out[1:])
            out[1:] -= 1.0
            out.flags.writeable = False
            return out

        return self.memo(("returns", field), compute)

    def memo(self, key: Any, compute: Any) -> Any:
        """Return the value memoized under ``key``, computing it with ``compute()`` once.

        For derived, read-only values that depend only on this panel's content (returns,
        factor inputs). The memo lives and dies with the object.
        """
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value
