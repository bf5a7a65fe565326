"""The exceptions foldwise raises.

Every error foldwise raises on bad input derives from :class:`FoldwiseError`, and its message
says three things: what is wrong, the offending value, and how to fix it. Subclasses also
derive from the built-in exception a Python user would expect (``ValueError``,
``TypeError``, ``KeyError``), so ``except ValueError`` keeps working.

Each part of the flow has its own branch (``DataError`` for market data, ``BacktestError``
for weights, ``StrategyError`` for strategies, ``CacheError`` for the backtest cache); tests
assert on the specific class, so a message can be reworded without breaking callers that
catch by type.
"""

from __future__ import annotations

__all__ = [
    "AllTrialsFailedError",
    "ArraysNotKeptError",
    "BacktestError",
    "CacheArgumentError",
    "CacheCorruptedError",
    "CacheError",
    "CacheMissError",
    "CacheNotFoundError",
    "CacheReadOnlyError",
    "CalendarSpanError",
    "CombinatorialExplosionError",
    "ConfigError",
    "DataError",
    "DataWriteError",
    "DuplicateDatesError",
    "EmptyDataError",
    "EmptyTrainError",
    "FingerprintError",
    "FoldSetMismatchError",
    "FoldStoreError",
    "FoldwiseError",
    "JournalCorruptedError",
    "LookaheadError",
    "MachineFaultError",
    "MisalignedFieldsError",
    "MisalignedWeightsError",
    "MissingFieldError",
    "MissingPriceError",
    "NoFoldsError",
    "NonDatetimeIndexError",
    "NonFiniteValueError",
    "NonNumericFieldError",
    "NonPositivePriceError",
    "NonWindowSafeInputError",
    "OptimizationError",
    "ParameterError",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineOutputError",
    "ReportError",
    "SearchSpaceError",
    "SplitError",
    "StorageError",
    "StorageNotFoundError",
    "StrategyError",
    "StrategyOutputError",
    "StrategyParameterError",
    "StudyMismatchError",
    "TimezoneError",
    "UnknownAssetError",
    "UnknownColumnError",
    "UnknownMetricError",
    "UnsortedDatesError",
    "WindowLengthError",
    "mark_raised_by_strategy",
    "raised_by_strategy",
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


class NonNumericFieldError(DataError, TypeError):
    """A field holds values that are not numbers (strings, objects)."""


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


# --- metrics -------------------------------------------------------------------------------


class UnknownMetricError(FoldwiseError, KeyError):
    """A metric name that is not one of :data:`foldwise.metrics.METRICS`."""

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


class LookaheadError(StrategyError):
    """A strategy declared causal whose weights use data after their date."""


class FingerprintError(StrategyError):
    """The strategy's code cannot be read to compute its fingerprint."""


class DataWriteError(StrategyError, ValueError):
    """A strategy wrote into read-only memory: most often the market data, which is shared
    by every trial, through ``data["close"]`` or ``data.array("close")``; sometimes an array
    pandas returned (``.values`` and ``.to_numpy()`` are read-only views).

    Raised by :meth:`foldwise.Strategy.run` in place of pandas' or numpy's
    ``ValueError: ... is read-only`` (chained as ``__cause__``), so the failed trial says
    what happened. The fix is to work on a copy, e.g. ``close = data["close"].copy()``.
    """


# --- parameters and keys -------------------------------------------------------------------


class ParameterError(FoldwiseError, TypeError):
    """A parameter value that cannot be written canonically (and so cannot be a key)."""


# --- configuration files -------------------------------------------------------------------


class ConfigError(FoldwiseError, ValueError):
    """A study config file (``foldwise run``) that cannot be used: a file that cannot be
    read, an unknown key, a value of the wrong type, a strategy that cannot be imported.
    The message names the file, the section and key, the value and the fix."""


# --- optimization --------------------------------------------------------------------------


class SearchSpaceError(FoldwiseError, ValueError):
    """A search space or constraint that cannot be used."""


class OptimizationError(FoldwiseError, RuntimeError):
    """An optimization that cannot go on."""


class AllTrialsFailedError(OptimizationError):
    """Every trial of a fold failed; the message names the first reason."""


class StudyMismatchError(OptimizationError):
    """Resuming a study with different data, splitter, metric, space or strategy code."""


class StorageError(OptimizationError):
    """An Optuna storage that cannot be opened or used."""


class StorageNotFoundError(StorageError):
    """A study storage opened for reading that does not exist (a journal or SQLite file that
    is not there): reading never creates one."""


class JournalCorruptedError(StorageError):
    """A study journal with a damaged line (not JSON, or a checksum that does not match)."""


class MachineFaultError(OptimizationError):
    """A fault of the machine, not of the strategy, stopped the optimization.

    A full disk, a read-only or unreachable directory, a permission denied, a damaged or
    unreachable storage or cache index. The trial it interrupted is not counted: the same
    ``optimize`` call resumes once the fault is fixed and runs that trial again. The message
    names the path and the cause; the original exception is chained (``__cause__``).
    """


# --- reports -------------------------------------------------------------------------------


class ReportError(FoldwiseError, ValueError):
    """A report that cannot be written as asked (a path that is a directory, a ``matrix``
    that is not the table ``walk_forward_matrix`` returns)."""


# --- who raised it -------------------------------------------------------------------------

_RAISED_BY_STRATEGY = "_foldwise_raised_by_strategy"


def mark_raised_by_strategy(exc: BaseException) -> BaseException:
    """Tag ``exc`` as raised by a strategy's own code (or the backtest of its output).

    The cache tags what escapes ``Strategy.run``; the optimizer counts a trial as failed only
    when its exception carries the tag, and stops on any other (a disk, the storage, the
    cache). Tagging does not change the exception's type or message. Returns ``exc``.
    """
    setattr(exc, _RAISED_BY_STRATEGY, True)
    return exc


def raised_by_strategy(exc: BaseException) -> bool:
    """True when :func:`mark_raised_by_strategy` tagged ``exc``."""
    return getattr(exc, _RAISED_BY_STRATEGY, False) is True


# --- splitters and folds -------------------------------------------------------------------


class SplitError(FoldwiseError, ValueError):
    """A splitter setting that is invalid, or folds that do not fit the data."""


class CalendarSpanError(SplitError):
    """A calendar span ("6M") that cannot be read, has no dates to apply to, or is shorter
    than one bar."""


class NoFoldsError(SplitError):
    """The data is too short for even one fold (train + test longer than the history)."""


class EmptyTrainError(SplitError):
    """Purge and embargo (or a gap in the dates) leave a fold without any training bar."""


class CombinatorialExplosionError(SplitError):
    """A combinatorial splitter would make more splits than its limit allows."""


class FoldStoreError(SplitError):
    """A stored fold set that cannot be read or written (bad name, damaged file)."""


class FoldSetMismatchError(FoldStoreError):
    """A stored fold set was built with other data or another splitter than the one asked for."""


# --- backtest cache ------------------------------------------------------------------------


class CacheError(FoldwiseError):
    """The backtest cache cannot do what was asked (its directory or index is unusable)."""


class CacheArgumentError(CacheError, ValueError):
    """An argument of a cache method that cannot be used (a window outside the data, an
    unknown metric, an eviction without a limit)."""


class CacheMissError(CacheError, KeyError):
    """A key that was required to be in the cache is not (``compare``, a slice's full run)."""


class ArraysNotKeptError(CacheMissError):
    """A stored run whose arrays were not kept, because running it again costs less than
    storing them (see :mod:`foldwise.cache._costs`): its metrics are in the cache, its
    arrays come from :meth:`~foldwise.BacktestCache.get_or_run`, which runs it again."""


class CacheNotFoundError(CacheError):
    """A cache directory opened for reading that does not exist: reading never creates one."""


class CacheReadOnlyError(CacheError):
    """A write to a cache that cannot be written: opened read-only, on a read-only file
    system, or without permission. The message names the path and the fix; an underlying
    ``OSError`` or ``sqlite3`` error is chained (``__cause__``)."""


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


class CacheCorruptedError(CacheError):
    """A stored entry whose files are missing, truncated or not what the index recorded.

    Never raised for a foreign file that merely sits in the cache directory: such files are
    reported by ``BacktestCache.verify()`` and never opened.
    """


class UnknownAssetError(PipelineError, KeyError):
    """An asset named by a term (a slice, a static filter) that the market data lacks."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PipelineOutputError(PipelineError):
    """A custom term's ``compute`` wrote output of the wrong shape or dtype."""
