"""Real daily price data bundled with foldwise, for the demo, examples, notebooks and tests.

=============  ==========================================================  ================
loader         content                                                     origin
=============  ==========================================================  ================
load_sp500     adjusted daily close of 20 S&P 500 stocks, 1990-01-02 ..    skfolio's bundled
               2022-12-28 (8313 bars: AAPL, AMD, BAC, BBY, CVX, GE, HD,    dataset (BSD-3),
               JNJ, JPM, KO, LLY, MRK, MSFT, PEP, PFE, PG, RRC, UNH, WMT,  originally Yahoo
               XOM)                                                        Finance
load_goog      daily open, high, low, close, volume of GOOG, 2004-08-19    backtesting.py's
               .. 2013-03-01 (2148 bars)                                   sample (data only)
=============  ==========================================================  ================

Each loader returns :class:`~foldwise.MarketData`; ``as_frame=True`` returns the raw
DataFrame instead. Loaded panels are memoized per process (they are immutable), so their
content hash is computed once.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal, overload

import pandas as pd

from foldwise.data import MarketData

__all__ = ["load_goog", "load_sp500"]

_PACKAGE = "foldwise.datasets"


def _read(name: str) -> pd.DataFrame:
    with resources.files(_PACKAGE).joinpath("data", name).open("rb") as handle:
        compression: Literal["gzip"] | None = "gzip" if name.endswith(".gz") else None
        frame = pd.read_csv(handle, index_col=0, parse_dates=True, compression=compression)
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns")
    frame.index.name = "date"
    frame.columns.name = None
    return frame


@cache
def _sp500() -> MarketData:
    return MarketData.from_frame(_read("sp500_close_1990_2022.csv.gz"), "close")


@cache
def _goog() -> MarketData:
    return MarketData.from_ohlcv(_read("goog_ohlcv_2004_2013.csv"), "GOOG")


@overload
def load_sp500(*, as_frame: Literal[False] = ...) -> MarketData: ...
@overload
def load_sp500(*, as_frame: Literal[True]) -> pd.DataFrame: ...


def load_sp500(*, as_frame: bool = False) -> MarketData | pd.DataFrame:
    """Adjusted daily close of 20 S&P 500 stocks, 1990-01-02 .. 2022-12-28.

    Parameters
    ----------
    as_frame
        Return the raw wide DataFrame (dates x tickers) instead of MarketData.

    Examples
    --------
    >>> data = load_sp500()
    >>> data.shape
    (8313, 20)
    >>> data.fields
    ('close',)
    """
    if as_frame:
        return _read("sp500_close_1990_2022.csv.gz")
    return _sp500()


@overload
def load_goog(*, as_frame: Literal[False] = ...) -> MarketData: ...
@overload
def load_goog(*, as_frame: Literal[True]) -> pd.DataFrame: ...


def load_goog(*, as_frame: bool = False) -> MarketData | pd.DataFrame:
    """Daily OHLCV of GOOG, 2004-08-19 .. 2013-03-01, as one asset named ``"GOOG"``.

    Parameters
    ----------
    as_frame
        Return the raw DataFrame (columns Open, High, Low, Close, Volume) instead.

    Examples
    --------
    >>> data = load_goog()
    >>> data.shape
    (2148, 1)
    >>> data.fields
    ('open', 'high', 'low', 'close', 'volume')
    """
    if as_frame:
        return _read("goog_ohlcv_2004_2013.csv")
    return _goog()
