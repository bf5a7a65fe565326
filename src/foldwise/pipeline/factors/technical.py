"""Technical indicators: relative strength and Bollinger bands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._dataset import EquityPricing
from foldwise.pipeline._kernels import window_counts, window_moments, window_sum
from foldwise.pipeline.factors.basic import _BuiltIn

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Context

__all__ = ["RSI", "BollingerBands"]


class RSI(_BuiltIn):
    """Relative Strength Index over the window (15 bars by default).

    With ``ups`` the mean of the positive day-to-day changes (negative ones count as 0)
    and ``downs`` the mean size of the negative ones, over the ``window_length - 1``
    changes in the window (NaN changes skipped): ``100 - 100 / (1 + ups / downs)``; 100
    when there is no down move, NaN when there is no move at all.
    """

    inputs = (EquityPricing.close,)
    window_length = 15

    def _validate(self) -> None:
        super()._validate()
        self._single_input()
        if self.window_length < 2:
            raise PipelineDefinitionError(
                f"RSI needs a window_length of at least 2, got {self.window_length}.")

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, closes: np.ndarray) -> None:
        diffs = np.diff(closes, axis=0)
        ups = np.nanmean(np.clip(diffs, 0, np.inf), axis=0)
        downs = np.abs(np.nanmean(np.clip(diffs, -np.inf, 0), axis=0))
        out[:] = 100 - (100 / (1 + (ups / downs)))

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        diffs = np.diff(inputs[0], axis=0)
        present = ~np.isnan(diffs)
        span = self.window_length - 1
        counts = window_counts(present, span)
        ups = window_sum(np.where(present, np.clip(diffs, 0, np.inf), 0.0), span, ctx.origin + 1)
        downs = window_sum(np.where(present, np.clip(diffs, -np.inf, 0), 0.0), span,
                           ctx.origin + 1)
        ups, downs = ups / counts, np.abs(downs / counts)
        return 100 - (100 / (1 + (ups / downs)))


class BollingerBands(_BuiltIn):
    """Bollinger bands: ``middle`` the mean of the close over the window, ``upper`` and
    ``lower`` that mean plus and minus ``k`` population standard deviations (NaN skipped).

    Outputs ``lower``, ``middle``, ``upper``; use ``BollingerBands(window_length=20, k=2).upper``.
    """

    params: Any = ("k",)
    inputs = (EquityPricing.close,)
    outputs = ("lower", "middle", "upper")

    def compute(self, today: Any, assets: np.ndarray, out: Any, close: np.ndarray,
                k: float) -> None:
        difference = k * np.nanstd(close, axis=0)
        out.middle = middle = np.nanmean(close, axis=0)
        out.upper = middle + difference
        out.lower = middle - difference

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> dict[str, np.ndarray]:
        moments = window_moments(inputs[0], self.window_length, ctx.origin)
        difference = self.params["k"] * np.sqrt(moments.var)
        middle = moments.mean
        return {"lower": middle - difference, "middle": middle, "upper": middle + difference}
