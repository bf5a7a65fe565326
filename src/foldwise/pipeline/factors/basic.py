"""Built-in factors on prices and volume: returns, moving averages, volatility, drawdown.

Each is a :class:`~foldwise.pipeline.CustomFactor` with Zipline's definition as its
per-date ``compute`` and a whole-array kernel (``_compute_all``) the engine runs instead;
the two agree to rounding. Windows hold ``window_length`` bars ending with the bar
before each date.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._custom import CustomFactor
from foldwise.pipeline._dataset import EquityPricing
from foldwise.pipeline._kernels import (
    window_ewm,
    window_linear_sum,
    window_max_drawdown,
    window_nanmean,
    window_nanmean_cells,
    window_std,
    window_sum,
)

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Cells, Context

__all__ = [
    "EWMA",
    "EWMSTD",
    "VWAP",
    "AnnualizedVolatility",
    "AverageDollarVolume",
    "DailyReturns",
    "ExponentialWeightedMovingAverage",
    "ExponentialWeightedMovingStdDev",
    "LinearWeightedMovingAverage",
    "MaxDrawdown",
    "PercentChange",
    "Returns",
    "SimpleMovingAverage",
]


@contextlib.contextmanager
def quiet_numpy() -> Iterator[None]:
    """Silence numpy's warnings about empty or all-NaN windows (their result, NaN, is meant)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class _BuiltIn(CustomFactor):
    """Shared by the built-ins: numpy warnings about empty windows off (``ctx``)."""

    @property
    def ctx(self) -> Any:
        return quiet_numpy()

    def _single_input(self) -> None:
        if len(self.inputs) != 1:
            raise PipelineDefinitionError(
                f"{type(self).__name__} takes exactly one input, got {len(self.inputs)}: "
                f"{list(self.inputs)}.")


def _change(values: np.ndarray, window: int, absolute: bool) -> np.ndarray:
    new, old = values[window - 1:], values[: len(values) - window + 1]
    change = np.subtract(new, old)
    return np.divide(change, np.abs(old) if absolute else old, out=change)


def _change_cells(values: np.ndarray, window: int, absolute: bool, cells: Cells) -> np.ndarray:
    """:func:`_change` at ``cells`` alone (the same two exact operations on each)."""
    old = cells.take(values)
    new = cells.shifted(window - 1).take(values)
    change = np.subtract(new, old)
    return np.divide(change, np.abs(old) if absolute else old, out=change)


class Returns(_BuiltIn):
    """Percent change of the close over the window: ``(close[-1] - close[0]) / close[0]``.

    ``Returns(window_length=2)`` is the daily return of the bar before each date.
    """

    inputs = (EquityPricing.close,)
    window_safe = True

    def _validate(self) -> None:
        super()._validate()
        if self.window_length < 2:
            raise PipelineDefinitionError(
                f"Returns needs a window_length of at least 2 (2 for daily returns), got "
                f"{self.window_length}.")

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, close: np.ndarray) -> None:
        out[:] = (close[-1] - close[0]) / close[0]

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return _change(inputs[0], self.window_length, absolute=False)

    def _cells_all(self, inputs: list[np.ndarray], ctx: Context, cells: Cells) -> np.ndarray:
        return _change_cells(inputs[0], self.window_length, False, cells)


class DailyReturns(Returns):
    """The daily percent change of the close (``Returns`` with ``window_length=2``)."""

    window_length = 2


class PercentChange(_BuiltIn):
    """Percent change of any input over the window: ``(new - old) / abs(old)``."""

    window_safe = True

    def _validate(self) -> None:
        super()._validate()
        self._single_input()
        if self.window_length < 2:
            raise PipelineDefinitionError(
                f"PercentChange needs a window_length of at least 2, got {self.window_length}.")

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, values: np.ndarray) -> None:
        out[:] = (values[-1] - values[0]) / np.abs(values[0])

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return _change(inputs[0], self.window_length, absolute=True)

    def _cells_all(self, inputs: list[np.ndarray], ctx: Context, cells: Cells) -> np.ndarray:
        return _change_cells(inputs[0], self.window_length, True, cells)


class SimpleMovingAverage(_BuiltIn):
    """Mean of the input over the window, NaN skipped (NaN if the window has no data)."""

    def _validate(self) -> None:
        super()._validate()
        self._single_input()

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray) -> None:
        out[:] = np.nanmean(data, axis=0)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return window_nanmean(inputs[0], self.window_length, ctx.origin)

    def _cells_all(self, inputs: list[np.ndarray], ctx: Context,
                   cells: Cells) -> np.ndarray | None:
        return window_nanmean_cells(inputs[0], self.window_length, ctx.origin, cells.rows,
                                    cells.cols)


class VWAP(_BuiltIn):
    """Volume-weighted average price: ``nansum(close * volume) / nansum(volume)``."""

    inputs = (EquityPricing.close, EquityPricing.volume)

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, close: np.ndarray,
                volume: np.ndarray) -> None:
        out[:] = np.nansum(close * volume, axis=0) / np.nansum(volume, axis=0)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        close, volume = inputs
        dollars = np.nan_to_num(close * volume, nan=0.0)
        traded = window_sum(dollars, self.window_length, ctx.origin)
        volumes = window_sum(np.nan_to_num(volume, nan=0.0), self.window_length, ctx.origin)
        return traded / volumes


class AverageDollarVolume(_BuiltIn):
    """Average daily dollar volume: ``nansum(close * volume) / window_length``."""

    inputs = (EquityPricing.close, EquityPricing.volume)

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, close: np.ndarray,
                volume: np.ndarray) -> None:
        out[:] = np.nansum(close * volume, axis=0) / len(close)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        dollars = np.nan_to_num(inputs[0] * inputs[1], nan=0.0)
        return window_sum(dollars, self.window_length, ctx.origin) / self.window_length


class MaxDrawdown(_BuiltIn):
    """Zipline's maximum drawdown of the input over the window.

    The trough is where ``running max - value`` is largest (first such bar); the factor is
    ``(peak - trough) / trough`` — relative to the trough, as Zipline defines it, not to the
    peak.
    """

    def _validate(self) -> None:
        super()._validate()
        self._single_input()

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray) -> None:
        drawdowns = np.fmax.accumulate(data, axis=0) - data
        drawdowns[np.isnan(drawdowns)] = -np.inf
        ends = np.argmax(drawdowns, axis=0)
        for column, end in enumerate(ends):
            peak = np.nanmax(data[: end + 1, column])
            out[column] = (peak - data[end, column]) / data[end, column]

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return window_max_drawdown(inputs[0], self.window_length)


def _exponential_weights(length: int, decay_rate: float) -> np.ndarray:
    """Weights ``decay_rate ** (length + 1), ..., decay_rate ** 2`` (oldest first), as Zipline."""
    return np.full(length, decay_rate, dtype=np.float64) ** np.arange(length + 1, 1, -1)


class _ExponentialWeightedFactor(_BuiltIn):
    """Base of the exponentially weighted factors: ``decay_rate`` and its constructors."""

    params: Any = ("decay_rate",)

    def _validate(self) -> None:
        super()._validate()
        self._single_input()
        rate = self.params["decay_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not (
                0.0 < rate <= 1.0):
            raise PipelineDefinitionError(
                f"{type(self).__name__}: decay_rate must be a number in (0, 1], got {rate!r}.")

    @classmethod
    def from_span(cls, inputs: Any, window_length: int, span: float, **kwargs: Any) -> Any:
        """Build with ``decay_rate = 1 - 2 / (1 + span)`` (pandas' ``span``); ``span > 1``."""
        if not isinstance(span, (int, float, np.number)) or span <= 1:
            raise PipelineDefinitionError(f"{cls.__name__}.from_span: span must be > 1, got {span!r}.")
        return cls(inputs=inputs, window_length=window_length,
                   decay_rate=1.0 - 2.0 / (1.0 + span), **kwargs)

    @classmethod
    def from_halflife(cls, inputs: Any, window_length: int, halflife: float, **kwargs: Any) -> Any:
        """Build with ``decay_rate = exp(log(0.5) / halflife)``; ``halflife > 0``."""
        if not isinstance(halflife, (int, float, np.number)) or halflife <= 0:
            raise PipelineDefinitionError(
                f"{cls.__name__}.from_halflife: halflife must be > 0, got {halflife!r}.")
        return cls(inputs=inputs, window_length=window_length,
                   decay_rate=math.exp(math.log(0.5) / halflife), **kwargs)

    @classmethod
    def from_center_of_mass(cls, inputs: Any, window_length: int, center_of_mass: float,
                            **kwargs: Any) -> Any:
        """Build with ``decay_rate = 1 - 1 / (1 + center_of_mass)``; ``center_of_mass >= 0``."""
        if not isinstance(center_of_mass, (int, float, np.number)) or center_of_mass < 0:
            raise PipelineDefinitionError(
                f"{cls.__name__}.from_center_of_mass: center_of_mass must be >= 0, got "
                f"{center_of_mass!r}.")
        return cls(inputs=inputs, window_length=window_length,
                   decay_rate=1.0 - 1.0 / (1.0 + center_of_mass), **kwargs)


class ExponentialWeightedMovingAverage(_ExponentialWeightedFactor):
    """Exponentially weighted mean over the window (also importable as ``EWMA``).

    The newest bar weighs 1, the one before ``decay_rate``, then ``decay_rate ** 2``...;
    the window is truncated at ``window_length`` bars. Any NaN in the window gives NaN.
    """

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray,
                decay_rate: float) -> None:
        out[:] = np.average(data, axis=0, weights=_exponential_weights(len(data), decay_rate))

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        mean, _ = window_ewm(inputs[0], self.window_length, float(self.params["decay_rate"]),
                             ctx.origin)
        return mean


class ExponentialWeightedMovingStdDev(_ExponentialWeightedFactor):
    """Exponentially weighted standard deviation over the window (also ``EWMSTD``).

    Weighted like :class:`ExponentialWeightedMovingAverage`, with the bias correction
    ``(sum w)^2 / ((sum w)^2 - sum w^2)`` (NaN for a one-bar window).
    """

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray,
                decay_rate: float) -> None:
        weights = _exponential_weights(len(data), decay_rate)
        mean = np.average(data, axis=0, weights=weights)
        variance = np.average((data - mean) ** 2, axis=0, weights=weights)
        squared_weight_sum = np.sum(weights) ** 2
        bias_correction = squared_weight_sum / (squared_weight_sum - np.sum(weights ** 2))
        out[:] = np.sqrt(variance * bias_correction)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        rate = float(self.params["decay_rate"])
        _, variance = window_ewm(inputs[0], self.window_length, rate, ctx.origin)
        weights = _exponential_weights(self.window_length, rate)
        squared_weight_sum = np.sum(weights) ** 2
        bias_correction = squared_weight_sum / (squared_weight_sum - np.sum(weights ** 2))
        return np.sqrt(variance * bias_correction)


class LinearWeightedMovingAverage(_BuiltIn):
    """Linearly weighted mean: weights ``1 .. window_length`` (newest heaviest), divided by
    ``window_length * (window_length + 1) / 2``; NaN counts as 0 (Zipline's ``nansum``)."""

    def _validate(self) -> None:
        super()._validate()
        self._single_input()

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, data: np.ndarray) -> None:
        n = data.shape[0]
        weights = np.arange(1, n + 1, dtype=np.float64).reshape(n, 1)
        out[:] = np.nansum(data * weights, axis=0) / ((n * (n + 1)) / 2)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        n = self.window_length
        return window_linear_sum(inputs[0], n, ctx.origin) / ((n * (n + 1)) / 2)


class AnnualizedVolatility(_BuiltIn):
    """Standard deviation (``ddof=0``, NaN skipped) of daily returns over the window, times
    ``sqrt(annualization_factor)`` (252 by default). Default window: 252 bars."""

    inputs = (Returns(window_length=2),)
    params: Any = MappingProxyType({"annualization_factor": 252.0})
    window_length = 252

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, returns: np.ndarray,
                annualization_factor: float) -> None:
        out[:] = np.nanstd(returns, axis=0) * (annualization_factor ** 0.5)

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        return window_std(inputs[0], self.window_length, ctx.origin,
                          self.params["annualization_factor"] ** 0.5)


# Zipline's short names.
EWMA = ExponentialWeightedMovingAverage
EWMSTD = ExponentialWeightedMovingStdDev
