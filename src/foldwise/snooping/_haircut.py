"""Haircut Sharpe ratio (Harvey & Liu 2015, "Backtesting", Journal of Portfolio Management
42(1)): the Sharpe ratio that remains once the number of trials behind it is counted.

1. The annualized Sharpe ratio ``SR`` (optionally corrected for the returns' first-order
   autocorrelation ``a`` as Lo (2002): ``SR * (1 + 2a/(1-a) (1 - (1 - a^q)/(q (1-a))))^-1/2``
   with ``q`` periods a year) measured over ``n`` periods is a t-statistic
   ``t = SR * sqrt(n / q)`` with the two-sided p-value ``p = 2 (1 - F(t))``, ``F`` Student's
   t distribution with ``n - 1`` degrees of freedom.
2. ``p`` is adjusted for ``M`` tests:

   * **Bonferroni**: ``min(M p, 1)``.
   * **Holm** (step-down): with the ``M`` p-values sorted, ``p_(i)`` this test's,
     ``min(1, max_{j <= i} (M - j + 1) p_(j))``.
   * **BHY** (Benjamini, Hochberg & Yekutieli step-up, any dependence):
     ``min(1, min_{j >= i} M c(M) p_(j) / j)`` with ``c(M) = sum_{m=1}^M 1/m``.
   * **Average**: the mean of the three.

   Holm and BHY need the other ``M - 1`` tests' p-values. Given their Sharpe ratios (a
   study's other parameter sets), those are used as they are. Otherwise they are
   simulated as the paper does, from the model of Harvey, Liu & Zhu (2016, "... and the
   Cross-Section of Expected Returns", RFS 29(1)) at the assumed average correlation
   ``rho`` of the strategies' returns: a test is a true discovery with probability
   ``1 - p0`` (monthly mean drawn from an exponential of mean ``lambda``), its estimation
   noise is normal with correlation ``rho`` across tests (240 months, 15% annual
   volatility), and ``(p0, lambda)`` are interpolated in ``rho`` in the paper's table
   (rho from 0 to 0.8; a larger rho is taken as 0.8). The adjusted p-value is the median
   over the simulations.
3. The adjusted p-value is turned back into a t-statistic and a Sharpe ratio (the haircut
   Sharpe ratio); the haircut is ``(SR - haircut SR) / SR``.

Two documented departures from the paper's program: the degrees of freedom and the
conversion to a t-statistic use the ``n`` observations at their own frequency (the
program first converts them to whole months, the same thing for monthly data), and all
three adjustments count ``M`` tests (the program's Holm and BHY count ``M + 1``: ``M``
simulated tests plus the one at hand).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special as _special  # not scipy.stats: a second of import time

from foldwise._exact_json import ExactJSONFields

from ._bootstrap import SeedLike, resolve_seed
from ._errors import SnoopingError

__all__ = ["HaircutResult", "haircut_sharpe_ratio"]

METHODS = ("bonferroni", "holm", "bhy", "average")

#: Harvey, Liu & Zhu (2016) model parameters by average correlation, as the paper's program
#: tabulates them: (rho, total tests, p0 = probability of a zero-mean strategy,
#: lambda = mean monthly return of a true strategy).
_HLZ = np.array([
    [0.0, 1295, 0.39660, 0.0054995],
    [0.2, 1377, 0.44589, 0.0055508],
    [0.4, 1476, 0.48604, 0.0055413],
    [0.6, 1773, 0.59902, 0.0055512],
    [0.8, 3109, 0.83901, 0.0055956],
])
#: The simulated strategies' monthly volatility and number of months (HLZ's calibration).
_HLZ_SIGMA = 0.15 / math.sqrt(12.0)
_HLZ_MONTHS = 240
#: Simulations per chunk (bounds memory to chunk x M floats).
_SIM_CHUNK = 250


@dataclass(frozen=True)
class HaircutResult(ExactJSONFields):
    """A Sharpe ratio haircut for multiple testing.

    Attributes
    ----------
    sharpe
        The annualized Sharpe ratio tested (after the autocorrelation correction, if any).
    t_stat, pvalue
        Its t-statistic and two-sided single-test p-value.
    n_obs, n_trials, periods_per_year
        Observations behind the Sharpe ratio, tests ``M`` and periods per year.
    adjusted_pvalues, haircut_sharpes, haircuts
        Per method (``"bonferroni"``, ``"holm"``, ``"bhy"``, ``"average"``): the adjusted
        p-value, the Sharpe ratio it corresponds to, and the haircut
        ``(sharpe - haircut Sharpe) / sharpe`` (0.6: 60% of the Sharpe ratio is attributed
        to the search).
    others
        Where Holm's and BHY's other p-values came from: ``"given"`` (the other trials'
        Sharpe ratios) or ``"simulated"`` (the HLZ model at ``correlation``).
    correlation
        The average correlation assumed by the simulation (None when given).
    n_simulations
        Simulations behind Holm and BHY (0 when given).
    """

    sharpe: float
    t_stat: float
    pvalue: float
    n_obs: int
    n_trials: int
    periods_per_year: float
    adjusted_pvalues: dict[str, float]
    haircut_sharpes: dict[str, float]
    haircuts: dict[str, float]
    others: str
    correlation: float | None
    n_simulations: int
    seed: Any = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per method: ``adjusted_pvalue``, ``haircut_sharpe``, ``haircut``."""
        return pd.DataFrame({"adjusted_pvalue": self.adjusted_pvalues,
                             "haircut_sharpe": self.haircut_sharpes,
                             "haircut": self.haircuts}).loc[list(METHODS)]

    def summary(self) -> str:
        """A few lines: the Sharpe ratio, its tests, and what is left of it by method."""
        source = ("the other trials' Sharpe ratios" if self.others == "given" else
                  f"{self.n_simulations} simulations at average correlation "
                  f"{self.correlation:g}")
        lines = [f"Haircut Sharpe ratio (Harvey & Liu 2015): Sharpe {self.sharpe:.3f} over "
                 f"{self.n_obs} periods (t {self.t_stat:.2f}, p {self.pvalue:.4f}), "
                 f"{self.n_trials} tests; Holm and BHY from {source}"]
        for method in METHODS:
            lines.append(f"  {method:<10} adjusted p {self.adjusted_pvalues[method]:.4f}  "
                         f"Sharpe {self.haircut_sharpes[method]:.3f}  haircut "
                         f"{self.haircuts[method]:.1%}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()



def _t_sf(x: Any, df: float) -> Any:
    """Student's t survival function (``scipy.stats.t.sf``, computed as it does)."""
    return _special.stdtr(df, -np.asarray(x, dtype=np.float64))


def _lo_factor(autocorrelation: float, periods_per_year: float) -> float:
    a, q = autocorrelation, periods_per_year
    if a == 0.0:
        return 1.0
    inner = 1.0 + (2.0 * a / (1.0 - a)) * (1.0 - (1.0 - a ** q) / (q * (1.0 - a)))
    return inner ** -0.5


def _hlz_parameters(rho: float) -> tuple[float, float]:
    """``(p0, lambda)`` interpolated linearly in the table (rho capped at 0.8)."""
    rho = min(rho, 0.8)
    p0 = float(np.interp(rho, _HLZ[:, 0], _HLZ[:, 2]))
    lam = float(np.interp(rho, _HLZ[:, 0], _HLZ[:, 3]))
    return p0, lam


def _simulated_pvalues(n_others: int, n_sim: int, rho: float,
                       rng: np.random.Generator) -> np.ndarray:
    """``(n_sim, n_others)`` two-sided p-values of the HLZ model's strategies."""
    p0, lam = _hlz_parameters(rho)
    scale = math.sqrt(_HLZ_MONTHS) / _HLZ_SIGMA      # monthly mean -> t-statistic
    common = rng.standard_normal((n_sim, 1))
    own = rng.standard_normal((n_sim, n_others))
    noise = math.sqrt(rho) * common + math.sqrt(1.0 - rho) * own
    true = rng.random((n_sim, n_others)) > p0
    means = rng.exponential(lam, size=(n_sim, n_others))
    t = np.abs(np.where(true, means, 0.0) * scale + noise)
    return 2.0 * _special.ndtr(-t)  # the normal survival function


def _holm_bhy(p: float, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holm and BHY adjusted p-values of ``p`` among the rows of ``others``
    (``(rows, M - 1)``), one per row."""
    rows, n_others = others.shape
    m = n_others + 1
    everything = np.sort(np.concatenate([np.full((rows, 1), p), others], axis=1), axis=1)
    position = (others < p).sum(axis=1)          # 0-based place of p among the sorted
    take = np.arange(rows)
    j = np.arange(1, m + 1, dtype=np.float64)
    holm = np.maximum.accumulate((m - j + 1) * everything, axis=1)
    holm = np.minimum(holm, 1.0)[take, position]
    c = float((1.0 / j).sum())
    scaled = m * c * everything / j
    bhy = np.minimum.accumulate(scaled[:, ::-1], axis=1)[:, ::-1]
    bhy = np.minimum(bhy, 1.0)[take, position]
    return holm, bhy


def haircut_sharpe_ratio(sharpe: float, n_obs: int, n_trials: int, *,
                         periods_per_year: float = 252, autocorrelation: float = 0.0,
                         other_sharpes: Sequence[float] | np.ndarray | None = None,
                         correlation: float = 0.2, n_simulations: int = 2000,
                         seed: SeedLike = None) -> HaircutResult:
    """Harvey & Liu's haircut of an annualized Sharpe ratio for ``n_trials`` tests.

    Parameters
    ----------
    sharpe
        The annualized Sharpe ratio of the selected strategy (> 0).
    n_obs
        Return observations it was measured over (at ``periods_per_year``).
    n_trials
        ``M``, the tests behind it, this one included (a study's distinct parameter sets).
    periods_per_year
        252 for daily returns, 12 for monthly ones.
    autocorrelation
        First-order autocorrelation of the returns; non-zero applies Lo's (2002)
        correction to ``sharpe`` first (pass 0 if ``sharpe`` is already corrected).
    other_sharpes
        Annualized Sharpe ratios of the other ``M - 1`` tests over the same observations
        (e.g. every other parameter set of a study): Holm and BHY then use their p-values,
        no simulation. Their count must be ``n_trials - 1``.
    correlation
        Without ``other_sharpes``: the average correlation among the strategies' returns
        the simulation assumes (the paper's default 0.2; 0 to 0.8, a larger value taken
        as 0.8).
    n_simulations, seed
        Simulations of the other tests (the paper's program uses 2000) and their seed.

    Returns
    -------
    HaircutResult

    Examples
    --------
    A Sharpe ratio of 1 over 10 years of monthly returns, the best of 100 trials:

    >>> r = haircut_sharpe_ratio(1.0, 120, 100, periods_per_year=12, seed=0)
    >>> round(r.pvalue, 4), round(r.adjusted_pvalues["bonferroni"], 3)
    (0.002, 0.199)
    >>> r.haircut_sharpes["bonferroni"] < r.haircut_sharpes["bhy"] < r.sharpe
    True
    """
    for name, value in (("sharpe", sharpe), ("periods_per_year", periods_per_year)):
        if not math.isfinite(float(value)) or value <= 0:
            raise SnoopingError(
                f"{name} must be a finite number > 0, got {value!r}"
                + (": a Sharpe ratio at or below 0 has nothing to haircut." if name ==
                   "sharpe" else "."))
    if int(n_obs) != n_obs or n_obs < 3:
        raise SnoopingError(f"n_obs must be an int >= 3, got {n_obs!r}.")
    if int(n_trials) != n_trials or n_trials < 1:
        raise SnoopingError(f"n_trials must be an int >= 1, got {n_trials!r}.")
    if not -1.0 < autocorrelation < 1.0:
        raise SnoopingError(f"autocorrelation must be in (-1, 1), got {autocorrelation!r}.")
    n_obs, n_trials = int(n_obs), int(n_trials)
    years = n_obs / periods_per_year
    df = n_obs - 1
    adjusted_sharpe = float(sharpe) * _lo_factor(float(autocorrelation), periods_per_year)
    t_stat = adjusted_sharpe * math.sqrt(years)
    pvalue = float(min(2.0 * _t_sf(t_stat, df), 1.0))
    bonferroni = min(n_trials * pvalue, 1.0)
    root = None
    if other_sharpes is not None:
        others = np.asarray(other_sharpes, dtype=np.float64).reshape(-1)
        if others.size != n_trials - 1:
            raise SnoopingError(
                f"other_sharpes has {others.size} Sharpe ratios; with n_trials={n_trials} "
                f"it must hold the other {n_trials - 1}.")
        if not np.isfinite(others).all():
            raise SnoopingError("other_sharpes contains NaN or infinite values; drop them "
                                "and lower n_trials to match.")
        other_p = np.minimum(2.0 * _t_sf(np.abs(others) * math.sqrt(years), df), 1.0)
        holm_all, bhy_all = _holm_bhy(pvalue, other_p[None, :])
        holm, bhy = float(holm_all[0]), float(bhy_all[0])
        source, rho, n_sim = "given", None, 0
    else:
        if not 0.0 <= correlation < 1.0:
            raise SnoopingError(f"correlation must be in [0, 1), got {correlation!r}.")
        if int(n_simulations) < 1:
            raise SnoopingError(f"n_simulations must be >= 1, got {n_simulations!r}.")
        root = resolve_seed(seed)
        rng = np.random.default_rng(root)
        holms, bhys = [], []
        for start in range(0, int(n_simulations), _SIM_CHUNK):
            size = min(_SIM_CHUNK, int(n_simulations) - start)
            sims = _simulated_pvalues(n_trials - 1, size, float(correlation), rng)
            h, b = _holm_bhy(pvalue, sims)
            holms.append(h)
            bhys.append(b)
        holm = float(np.median(np.concatenate(holms)))
        bhy = float(np.median(np.concatenate(bhys)))
        source, rho, n_sim = "simulated", float(correlation), int(n_simulations)
    adjusted = {"bonferroni": bonferroni, "holm": holm, "bhy": bhy,
                "average": (bonferroni + holm + bhy) / 3.0}
    sharpes = {}
    for method, p_adj in adjusted.items():
        t_adj = float(-_special.stdtrit(df, p_adj / 2.0)) if p_adj < 1.0 else 0.0
        sharpes[method] = max(t_adj, 0.0) / math.sqrt(years)
    haircuts = {m: (adjusted_sharpe - s) / adjusted_sharpe for m, s in sharpes.items()}
    return HaircutResult(
        sharpe=adjusted_sharpe, t_stat=t_stat, pvalue=pvalue, n_obs=n_obs,
        n_trials=n_trials, periods_per_year=float(periods_per_year),
        adjusted_pvalues=adjusted, haircut_sharpes=sharpes, haircuts=haircuts,
        others=source, correlation=rho, n_simulations=n_sim,
        seed=None if root is None else root.entropy)
