"""Window sizes: bar counts or calendar spans, checked once and resolved against dates.

A size is either an ``int`` number of bars or a calendar span: a string ``"3Y"``, ``"6M"``,
``"2W"``, ``"10D"`` (years, months, weeks, days; other pandas durations such as ``"12h"``
or ``"30min"`` work too), a :class:`pandas.DateOffset` or a :class:`pandas.Timedelta` /
:class:`datetime.timedelta`. :func:`parse_size` checks the value alone (in a splitter's
``__init__``); :func:`require_dates` and :func:`check_span_fits` check it against the data
(in ``split``), so a span applied to data without dates, or shorter than one bar, is an
error that gives the numbers.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from foldwise.errors import CalendarSpanError, SplitError

from ._timeline import Timeline

__all__ = ["Size", "Span", "bar_spacing", "check_span_fits", "format_duration",
           "parse_fraction_or_size", "parse_size", "require_dates"]

#: What a user may pass as a size.
Size = int | str | pd.offsets.BaseOffset | pd.Timedelta | _dt.timedelta | np.timedelta64

_SPAN_PATTERN = re.compile(r"^\s*(\d+)\s*([YMWD]|[ywd])\s*$")
_SPAN_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}
# A date far from month ends and leap days, used to tell the sign of an offset.
_REFERENCE = pd.Timestamp("2001-01-15")


@dataclass(frozen=True)
class Span:
    """A calendar span, applied to dates with :meth:`shift`.

    Attributes
    ----------
    offset
        The :class:`pandas.DateOffset` or :class:`pandas.Timedelta` it stands for.
    text
        How the user wrote it, for messages.
    """

    offset: pd.offsets.BaseOffset | pd.Timedelta
    text: str

    def shift(self, stamp: pd.Timestamp, times: int = 1) -> pd.Timestamp:
        """``stamp`` moved by ``times`` spans (negative moves back); one multiplication, so
        month arithmetic never drifts from step to step."""
        if times == 0:
            return stamp
        return stamp + self.offset * times

    def shift_all(self, dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Every date moved forward by one span."""
        return dates + self.offset

    def length_at(self, stamp: pd.Timestamp) -> pd.Timedelta:
        """The duration of one span starting at ``stamp``."""
        return self.shift(stamp) - stamp


def _span_error(name: str, value: Any, why: str) -> CalendarSpanError:
    return CalendarSpanError(
        f"{name}={value!r} {why}. Pass a number of bars (int > 0) or a calendar span such as "
        "'3Y', '6M', '2W', '10D' (years, months, weeks, days), a pandas duration such as "
        "'12h', a pd.DateOffset or a pd.Timedelta.")


def _parse_span(value: Any, name: str) -> Span:
    if isinstance(value, str):
        match = _SPAN_PATTERN.match(value)
        if match:
            count, unit = int(match.group(1)), match.group(2).upper()
            unit_count: dict[str, Any] = {_SPAN_UNITS[unit]: count}
            span = Span(pd.DateOffset(**unit_count), value)
        elif re.match(r"^\s*\d+\s*m\s*$", value):
            raise CalendarSpanError(
                f"{name}={value!r} is ambiguous: write '{value.strip()[:-1].strip()}M' for "
                f"months or '{value.strip()[:-1].strip()}min' for minutes.")
        else:
            try:
                span = Span(pd.Timedelta(value), value)
            except (TypeError, ValueError):
                raise _span_error(name, value, "is not a size foldwise can read") from None
    elif isinstance(value, pd.offsets.BaseOffset):
        span = Span(value, value.freqstr)
    elif isinstance(value, (pd.Timedelta, _dt.timedelta, np.timedelta64)):
        delta = pd.Timedelta(value)
        span = Span(delta, str(delta))
    else:
        raise _span_error(name, value, f"has type {type(value).__name__}")
    try:
        positive = span.shift(_REFERENCE) > _REFERENCE
    except (TypeError, ValueError) as exc:
        raise _span_error(name, value, f"cannot be added to a date ({exc})") from None
    if not positive:
        raise _span_error(name, value, "is not a positive span")
    return span


def parse_size(value: Any, name: str, *, allow_zero: bool = False) -> int | Span:
    """Check a size parameter on its own and return bars (``int``) or a :class:`Span`.

    Parameters
    ----------
    value
        An int number of bars or a calendar span (see the module docstring).
    name
        The parameter's name, for messages.
    allow_zero
        Whether 0 bars is allowed (purge and embargo; not window sizes).

    Examples
    --------
    >>> parse_size(20, "test")
    20
    >>> parse_size("6M", "test")
    Span(offset=<DateOffset: months=6>, text='6M')
    """
    if isinstance(value, (bool, np.bool_)):
        raise SplitError(f"{name}={value!r} is a bool; pass a number of bars or a span.")
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.timedelta64):
        bars = int(value)
        smallest = 0 if allow_zero else 1
        if bars < smallest:
            raise SplitError(
                f"{name}={bars} bars must be >= {smallest}"
                + ("" if allow_zero else " (a window needs at least one bar)")
                + f"; pass a positive number of bars, e.g. {name}=20, or a span such as '6M'.")
        return bars
    if isinstance(value, (float, np.floating)):
        raise SplitError(
            f"{name}={value!r} is a float; sizes are whole bars (int) or calendar spans such as "
            f"'6M'. Did you mean {name}={round(float(value))}?")
    return _parse_span(value, name)


def parse_fraction_or_size(value: Any, name: str) -> int | float | Span:
    """Like :func:`parse_size` with zero allowed, plus a float fraction of the sample in
    ``[0, 1)`` (the embargo)."""
    if isinstance(value, (float, np.floating)) and not isinstance(value, (bool, np.bool_)):
        fraction = float(value)
        if not 0.0 <= fraction < 1.0:
            raise SplitError(
                f"{name}={fraction!r}: a float {name} is a fraction of the sample and must be in "
                f"[0, 1), e.g. {name}=0.01 for 1% of the bars; pass an int for a number of bars.")
        return fraction
    return parse_size(value, name, allow_zero=True)


def require_dates(timeline: Timeline, name: str, span: Span) -> pd.DatetimeIndex:
    """The timeline's dates, or a :class:`CalendarSpanError` saying why a span needs them."""
    if timeline.dates is None:
        raise CalendarSpanError(
            f"{name}={span.text!r} is a calendar span, but X ({type(timeline.source).__name__}, "
            f"{timeline.describe()}) has no dates to apply it to. Pass a MarketData or a "
            f"DataFrame / Series with a DatetimeIndex, or give {name} as a number of bars.")
    return timeline.dates


def format_duration(delta: pd.Timedelta) -> str:
    """``"7 days"``, ``"1 day"`` or pandas' form for durations that are not whole days."""
    if delta == delta.floor("D"):
        days = delta.days
        return f"{days} day" if days == 1 else f"{days} days"
    return str(delta)


def bar_spacing(dates: pd.DatetimeIndex) -> pd.Timedelta:
    """The median time between consecutive bars (what "one bar" lasts)."""
    # TimedeltaIndex.median exists (pandas' datetime-like ops); pandas-stubs omit it.
    return pd.Timedelta((dates[1:] - dates[:-1]).median())  # type: ignore[attr-defined]


def check_span_fits(timeline: Timeline, name: str, span: Span) -> pd.DatetimeIndex:
    """The timeline's dates; refuse a span shorter than one bar (their median spacing)."""
    dates = require_dates(timeline, name, span)
    if len(dates) < 2:
        return dates
    spacing = bar_spacing(dates)
    length = span.length_at(dates[0])
    if length < spacing:
        raise CalendarSpanError(
            f"{name}={span.text!r} ({format_duration(length)}) is shorter than one bar: the "
            f"bars of X are {format_duration(spacing)} apart (median spacing of "
            f"{timeline.describe()}). Use a span of at least {format_duration(spacing)}, or "
            f"give {name} as a number of bars.")
    return dates
