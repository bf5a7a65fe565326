"""Rolling statistics of each asset against a target: correlation and linear regression.

The target is either a factor (statistics asset by asset) or one asset's column, such as
``Returns(window_length=2)["AAPL"]``, compared with every asset. Any NaN in a window of
either series makes that window NaN, as in Zipline (``numpy.mean``, ``scipy.stats.linregress``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from foldwise.errors import PipelineDefinitionError
from foldwise.pipeline._custom import custom_spec
from foldwise.pipeline._kernels import window_comoments
from foldwise.pipeline._term import FLOAT64, NotSpecified, Term
from foldwise.pipeline.factors.basic import Returns, _BuiltIn

if TYPE_CHECKING:
    from foldwise.pipeline._engine import Context

__all__ = [
    "RollingLinearRegression",
    "RollingLinearRegressionOfReturns",
    "RollingPearson",
    "RollingPearsonOfReturns",
]

_TINY = 1.0e-20  # scipy.stats.linregress's guard against r = +/-1


def _pair_spec(cls: type[_BuiltIn], owner: str, base: Any, target: Any, length: Any,
               mask: Any) -> dict[str, Any]:
    for role, term in (("the factor", base), ("the target", target)):
        if not isinstance(term, Term) or term.kind not in ("factor", "column"):
            raise PipelineDefinitionError(
                f"{owner}: {role} must be a factor, a dataset column or one asset's column "
                f"(factor['AAPL']), got {term!r}.")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        raise PipelineDefinitionError(f"{owner}: the window length must be an integer >= 2, "
                                      f"got {length!r}.")
    if target.ndim == 2 and base.mask is not target.mask:
        raise PipelineDefinitionError(
            f"{owner}: {base!r} and {target!r} are computed on different masks, so their "
            "columns are not comparable asset by asset; give them the same mask.")
    return custom_spec(cls, (FLOAT64,), [base, target], NotSpecified, int(length), mask,
                       NotSpecified, NotSpecified, NotSpecified, {})


class RollingPearson(_BuiltIn):
    """Rolling Pearson correlation of each column of a factor with a target.

    Parameters
    ----------
    base_factor : Factor
        Correlated column by column (must be window-safe, e.g. ``Returns``).
    target : Factor or one asset's column
        The other series.
    correlation_length : int
        Bars per correlation (>= 2).
    mask : Filter, optional
        Assets to compute.
    """

    window_safe = True

    @classmethod
    def _spec(cls, base_factor: Any, target: Any, correlation_length: Any,
              mask: Any = NotSpecified) -> dict[str, Any]:
        return _pair_spec(cls, cls.__name__, base_factor, target, correlation_length, mask)

    def compute(self, today: Any, assets: np.ndarray, out: np.ndarray, base: np.ndarray,
                target: np.ndarray) -> None:
        target_residual = target - np.mean(target, axis=0)
        base_residual = base - np.mean(base, axis=0)
        covariance = np.mean(target_residual * base_residual, axis=0)
        out[:] = covariance / np.sqrt(np.mean(target_residual ** 2, axis=0)
                                      * np.mean(base_residual ** 2, axis=0))

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> np.ndarray:
        m = window_comoments(inputs[0], inputs[1], self.window_length, ctx.origin)
        return m.cov / np.sqrt(m.var_x * m.var_y)


class RollingLinearRegression(_BuiltIn):
    """Rolling least-squares regression of each column of a factor on a target.

    Outputs, as ``scipy.stats.linregress(x=target, y=column)``: ``alpha`` (intercept),
    ``beta`` (slope), ``r_value``, ``p_value`` (two-sided test of a zero slope) and
    ``stderr`` (of the slope). Where the target is constant over a window every output is
    NaN (scipy refuses such a regression).

    Parameters
    ----------
    dependent : Factor
        Regressed column by column (must be window-safe, e.g. ``Returns``).
    independent : Factor or one asset's column
        The regressor.
    regression_length : int
        Bars per regression (>= 2).
    mask : Filter, optional
        Assets to compute.
    """

    outputs = ("alpha", "beta", "r_value", "p_value", "stderr")
    window_safe = True

    @classmethod
    def _spec(cls, dependent: Any, independent: Any, regression_length: Any,
              mask: Any = NotSpecified) -> dict[str, Any]:
        return _pair_spec(cls, cls.__name__, dependent, independent, regression_length, mask)

    def compute(self, today: Any, assets: np.ndarray, out: Any, dependent: np.ndarray,
                independent: np.ndarray) -> None:
        from scipy.stats import linregress

        independent = np.broadcast_arrays(independent, dependent)[0]
        for column in range(len(out)):
            x, y = independent[:, column], dependent[:, column]
            if not np.isnan(x).any() and np.max(x) == np.min(x):
                continue  # scipy raises on a constant regressor; leave the outputs missing
            result = linregress(x=x, y=y)
            out.alpha[column], out.beta[column] = result.intercept, result.slope
            out.r_value[column], out.p_value[column] = result.rvalue, result.pvalue
            out.stderr[column] = result.stderr

    def _compute_all(self, inputs: list[np.ndarray], ctx: Context) -> dict[str, np.ndarray]:
        n = self.window_length
        m = window_comoments(inputs[1], inputs[0], n, ctx.origin)
        ssxm, ssym, ssxym = m.var_x, m.var_y, m.cov
        degenerate = ssym == 0.0
        r = np.where(degenerate, np.where(ssxym == 0, np.nan, 0.0),
                     np.clip(ssxym / np.sqrt(ssxm * ssym), -1.0, 1.0))
        slope = ssxym / ssxm
        intercept = m.mean_y - slope * m.mean_x
        if n == 2:
            p_value = np.where(np.isnan(ssym), np.nan, np.where(ssym == 0, 1.0, 0.0))
            stderr = np.where(np.isnan(ssym), np.nan, 0.0)
        else:
            df = n - 2
            t = r * np.sqrt(df / ((1.0 - r + _TINY) * (1.0 + r + _TINY)))
            p_value = 2 * special.stdtr(df, -np.abs(t))
            stderr = np.sqrt((1 - r ** 2) * ssym / ssxm / df)
        constant_x = ssxm == 0.0
        return {name: np.where(constant_x, np.nan, values) for name, values in (
            ("alpha", intercept), ("beta", slope), ("r_value", r), ("p_value", p_value),
            ("stderr", stderr))}


def _returns_target(target: Any, returns_length: int) -> tuple[Returns, Any]:
    returns = Returns(window_length=returns_length)
    return returns, returns[target]


class RollingPearsonOfReturns(RollingPearson):
    """Rolling correlation of every asset's returns with the returns of ``target``.

    Parameters
    ----------
    target : str
        The asset label to correlate with.
    returns_length : int
        Window of the returns (2 for daily returns).
    correlation_length : int
        Bars of returns per correlation.
    mask : Filter, optional
        Assets to compute.
    """

    # _spec is the constructor; Zipline's RollingPearsonOfReturns takes other arguments
    # than RollingPearson, and substitutability does not apply to constructors.
    @classmethod
    def _spec(cls, target: Any, returns_length: Any, correlation_length: Any,  # type: ignore[override]
              mask: Any = NotSpecified) -> dict[str, Any]:
        returns, column = _returns_target(target, returns_length)
        return super()._spec(returns, column, correlation_length, mask)


class RollingLinearRegressionOfReturns(RollingLinearRegression):
    """Rolling regression of every asset's returns on the returns of ``target``.

    Outputs ``alpha``, ``beta``, ``r_value``, ``p_value``, ``stderr`` (see
    :class:`RollingLinearRegression`).

    Parameters
    ----------
    target : str
        The asset label to regress on.
    returns_length : int
        Window of the returns (2 for daily returns).
    regression_length : int
        Bars of returns per regression.
    mask : Filter, optional
        Assets to compute.
    """

    @classmethod
    def _spec(cls, target: Any, returns_length: Any, regression_length: Any,
              mask: Any = NotSpecified) -> dict[str, Any]:
        returns, column = _returns_target(target, returns_length)
        return super()._spec(returns, column, regression_length, mask)
