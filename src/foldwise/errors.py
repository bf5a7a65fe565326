"""The exceptions foldwise raises.

Every error foldwise raises on bad input derives from :class:`FoldwiseError`, and its message
says three things: what is wrong, the offending value, and how to fix it. Subclasses also
derive from the built-in exception a Python user would expect (``ValueError``,
``TypeError``, ``KeyError``), so ``except ValueError`` keeps working.

Each part of the flow has its own branch (``DataError`` for market data, ``BacktestError``
for weights, ``StrategyError`` for strategies); tests assert on the specific class, so a
message can be reworded without breaking callers that catch by type.
"""

from __future__ import annotations

__all__ = [
    "BacktestError",
    "DataError",
    "DuplicateDatesError",
    "EmptyDataError",
    "FingerprintError",
    "FoldwiseError",
    "MisalignedFieldsError",
    "MisalignedWeightsError",
    "MissingFieldError",
    "MissingPriceError",
    "NonDatetimeIndexError",
    "NonFiniteValueError",
    "NonPositivePriceError",
    "NonWindowSafeInputError",
    "ParameterError",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineOutputError",
    "StrategyError",
    "StrategyOutputError",
    "StrategyParameterError",
    "TimezoneError",
    "UnknownAssetError",
    "UnknownColumnError",
    "UnsortedDatesError",
    "WindowLengthError",
]


class FoldwiseError(Exception):
    """Base class of every error foldwise raises on purpose."""


# --- market data -------------------------------------------------------------------------


class DataError(FoldwiseError, ValueError):
    """Market data that cannot be used as given."""


class NonDatetimeIndexError(DataError, TypeError):
    """The dates are not a ``DatetimeIndex`` (strings, integers, objects)."""


class UnsortedDatesError(DataError):
    """The dates are not in increasing order."""


class DuplicateDatesError(DataError):
    """A date appears more than once."""


class TimezoneError(DataError):
    """Dates mix time zones, or fields disagree on the time zone."""


class NonFiniteValueError(DataError):
    """A value is +inf or -inf (NaN is allowed and means "no data")."""


class NonPositivePriceError(DataError):
    """A price field holds a zero or negative price."""


class EmptyDataError(DataError):
    """The panel has no dates, no assets or no fields."""


class MisalignedFieldsError(DataError):
    """Fields of one panel cover different dates or assets."""


class MissingFieldError(DataError, KeyError):
    """A field that was asked for is not in the panel."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


# --- backtest ------------------------------------------------------------------------------


class BacktestError(FoldwiseError, ValueError):
    """Weights or settings that cannot be backtested."""


class MisalignedWeightsError(BacktestError):
    """Weights whose dates, assets or shape do not match the market data."""


class MissingPriceError(BacktestError):
    """A non-zero weight sits on an asset with no price that day (``missing="raise"``)."""


# --- strategies ----------------------------------------------------------------------------


class StrategyError(FoldwiseError):
    """A strategy that cannot be run or identified."""


class StrategyParameterError(StrategyError, TypeError):
    """Parameters that do not fit the strategy's signature."""


class StrategyOutputError(StrategyError, ValueError):
    """A strategy returned something other than weights of the right shape or a result."""


class FingerprintError(StrategyError):
    """The strategy's code cannot be read to compute its fingerprint."""


# --- parameters and keys -------------------------------------------------------------------


class ParameterError(FoldwiseError, TypeError):
    """A parameter value that cannot be written canonically (and so cannot be a key)."""


# --- pipeline ------------------------------------------------------------------------------


class PipelineError(FoldwiseError, ValueError):
    """A pipeline or pipeline term that cannot be built or computed."""


class PipelineDefinitionError(PipelineError, TypeError):
    """A term or pipeline defined with arguments it cannot take (caught at construction)."""


class NonWindowSafeInputError(PipelineDefinitionError):
    """A term whose values are not comparable across dates used as a windowed input."""


class WindowLengthError(PipelineError):
    """The data does not reach back far enough for a term's window."""


class UnknownColumnError(PipelineError, KeyError):
    """A dataset column reading a field the market data lacks, or an unknown pipeline column."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnknownAssetError(PipelineError, KeyError):
    """An asset named by a term (a slice, a static filter) that the market data lacks."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PipelineOutputError(PipelineError):
    """A custom term's ``compute`` wrote output of the wrong shape or dtype."""
