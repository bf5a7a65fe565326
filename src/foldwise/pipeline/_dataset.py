"""Datasets: named columns of market data that pipeline terms read.

A :class:`DataSet` subclass declares :class:`Column` attributes; reading one from the class
gives a :class:`BoundColumn`, the term that loads the MarketData field of that name (or
the ``field=`` given). :class:`EquityPricing` binds ``open``, ``high``, ``low``, ``close``
and ``volume``; declare your own dataset for any other field::

    class Fundamentals(DataSet):
        earnings_yield = Column(float)
        sector = Column(int)           # a classifier column (NaN -> -1)

A column's ``.latest`` is its value on the bar before each date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from foldwise.errors import PipelineDefinitionError, UnknownColumnError
from foldwise.pipeline._term import (
    BOOL,
    FLOAT64,
    INT64,
    NotSpecified,
    Term,
    check_dtype,
    default_missing_value,
)

if TYPE_CHECKING:
    from foldwise.data import MarketData

__all__ = ["BoundColumn", "Column", "DataSet", "EquityPricing", "USEquityPricing"]


class Column:
    """A column declared on a :class:`DataSet` (an unbound description).

    Parameters
    ----------
    dtype
        ``float`` (a factor column, the default), ``bool`` (a filter column: NaN and 0 read
        as False) or ``int`` (a classifier column: NaN reads as ``missing_value``).
    missing_value
        The value of missing data (NaN, False and -1 by default).
    field
        The MarketData field to load; defaults to the attribute name.
    doc, metadata
        Accepted as in Zipline (a description and a dict), stored, not used.
    """

    def __init__(self, dtype: Any = float, missing_value: Any = NotSpecified,
                 doc: str | None = None, metadata: dict[str, Any] | None = None, *,
                 field: str | None = None) -> None:
        self.dtype = check_dtype("Column", dtype, (FLOAT64, BOOL, INT64))
        self.missing_value = (default_missing_value("Column", self.dtype)
                              if missing_value is NotSpecified else missing_value)
        self.doc, self.metadata = doc, dict(metadata or {})
        self.field = field
        self.name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> BoundColumn:
        if self.name is None:  # pragma: no cover - only without a class body
            raise PipelineDefinitionError("a Column must be declared in a DataSet class body.")
        return BoundColumn(owner, self.name, self.dtype, self.missing_value,
                           self.field or self.name)


class classproperty:
    """A read-only property of the class itself."""

    def __init__(self, getter: Any) -> None:
        self.getter = getter

    def __get__(self, instance: Any, owner: type) -> Any:
        return self.getter(owner)


class DataSet:
    """Base class of datasets: subclass it and declare :class:`Column` attributes.

    Examples
    --------
    >>> class Fundamentals(DataSet):
    ...     earnings_yield = Column(float)
    >>> Fundamentals.earnings_yield
    Fundamentals.earnings_yield
    >>> Fundamentals.columns
    (Fundamentals.earnings_yield,)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "columns" in vars(cls):
            raise PipelineDefinitionError(
                f"{cls.__name__}: 'columns' is reserved on datasets; rename that column.")

    @classmethod
    def _column_names(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Column) and name not in names:
                    names.append(name)
        return names

    @classproperty
    def columns(cls) -> tuple[BoundColumn, ...]:
        """Every column of the dataset, bound."""
        return tuple(getattr(cls, name) for name in cls._column_names())


class BoundColumn(Term):
    """A dataset column as a pipeline term: the MarketData field it names, row per bar.

    Bound columns are window-safe inputs of windowed factors; use ``.latest`` to make a
    pipeline column of one.
    """

    dataset: type
    name: str
    field: str

    kind = "column"
    window_safe = True

    @classmethod
    def _spec(cls, dataset: type, name: str, dtype: np.dtype, missing_value: Any,
              field: str) -> dict[str, Any]:
        return {"dataset": dataset, "name": name, "dtype": dtype,
                "missing_value": missing_value, "field": field}

    @property
    def latest(self) -> Term:
        """The column's value on the bar before each date (a factor, filter or classifier)."""
        from foldwise.pipeline._custom import latest_of

        return latest_of(self)

    def load(self, data: MarketData, first: int, last: int) -> np.ndarray:
        """Rows ``first .. last`` (bar positions) of the field, as this column's dtype."""
        if self.field not in data.fields:
            raise UnknownColumnError(
                f"{self!r} reads the field {self.field!r}, which this MarketData does not have "
                f"(fields: {list(data.fields)}). Load it (e.g. MarketData.from_frames"
                f"({{..., {self.field!r}: frame}})) or bind the column to an existing field "
                f"with Column(field=...).")
        values = data.array(self.field)[first:last + 1]
        if self.dtype == FLOAT64:
            return values
        if self.dtype == BOOL:
            return np.nan_to_num(values, nan=0.0) != 0
        return np.where(np.isnan(values), self.missing_value, values).astype(np.int64)

    def __repr__(self) -> str:
        return f"{self.dataset.__name__}.{self.name}"


class EquityPricing(DataSet):
    """Daily prices and volume: the ``open``, ``high``, ``low``, ``close`` and ``volume``
    fields of the MarketData."""

    open: ClassVar[Any] = Column(float)
    high: ClassVar[Any] = Column(float)
    low: ClassVar[Any] = Column(float)
    close: ClassVar[Any] = Column(float)
    volume: ClassVar[Any] = Column(float)


#: Zipline's older name for :class:`EquityPricing`.
USEquityPricing = EquityPricing
