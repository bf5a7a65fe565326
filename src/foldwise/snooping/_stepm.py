"""Romano & Wolf's stepwise multiple testing procedure (StepM): which sets beat the
benchmark, with the family-wise error rate controlled at ``alpha``.

Romano & Wolf (2005), "Stepwise Multiple Testing as Formalized Data Snooping",
Econometrica 73(4), algorithms 3.1 (basic) and 4.1 (studentized), with Hansen's
full-sample long-run variances as the studentizing denominators:

1. ``A`` = every set. Statistic per set: ``z_k = sqrt(T) mean(d_k) / omega_k``.
2. ``c`` = the ``1 - alpha`` quantile over stationary-bootstrap replications of
   ``max_{k in A} sqrt(T) (mean*(d_k) - g(mean(d_k))) / omega_k``.
3. Every ``k`` in ``A`` with ``z_k > max(c, 0)`` beats the benchmark; remove them from
   ``A`` and go back to 2 (the same replications); stop when a step rejects nothing.

``g`` recentres: ``recentering="full"`` is Romano & Wolf's ``g(x) = x``;
``"consistent"`` is Hansen's consistent recentering (sets far below the benchmark keep
their own mean), the Step-SPA of Hsu, Hsu & Kuan (2010, Journal of Empirical Finance
17(3)), which ``arch.bootstrap.StepM`` implements. The probability that any set no better
than the benchmark is declared superior is at most ``alpha`` (asymptotically). The
critical value is floored at 0: a set whose mean does not exceed the benchmark's is never
declared superior.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from foldwise._exact_json import ExactJSONFields

from ._bootstrap import SeedLike
from ._engine import bootstrap_maxima, kept_counts
from ._errors import SnoopingError
from ._inputs import Differentials, prepare
from ._setup import Setup, setup
from ._spa import SPAResult, _seed_text, spa_centers, spa_result, statistics_table

__all__ = ["StepMResult", "spa_stepm", "stepm"]


@dataclass(frozen=True)
class StepMResult(ExactJSONFields):
    """The sets found to beat the benchmark by Romano & Wolf's StepM.

    Attributes
    ----------
    superior
        Labels of the sets that beat the benchmark, family-wise error rate ``alpha``
        (largest statistic first). Empty: no set can be said to beat it.
    alpha
        The family-wise error rate controlled.
    critical_values
        The critical value of each step (the last one rejected nothing, unless every set
        was rejected).
    table
        Per set (index: the labels): ``mean_excess`` (mean per-period return minus the
        benchmark's), ``statistic`` (``sqrt(T)`` times it, divided by the long-run standard
        deviation when studentized; ``-inf`` for a set left out), ``superior`` and ``step``
        (the step that rejected it, from 1; 0 if none).
    n_sets, n_obs, n_excluded, n_bootstrap, block_length, seed, studentized
        As in :class:`~foldwise.snooping.SPAResult`.
    recentering
        ``"full"`` (Romano & Wolf) or ``"consistent"`` (Hansen; Hsu, Hsu & Kuan's Step-SPA).
    """

    superior: list[Hashable]
    alpha: float
    critical_values: tuple[float, ...]
    n_sets: int
    n_obs: int
    n_excluded: int
    n_bootstrap: int
    block_length: float
    seed: Any
    studentized: bool
    recentering: str
    table: pd.DataFrame = field(repr=False, compare=False)

    def summary(self) -> str:
        """A few lines: how many sets beat the benchmark, and the first of them."""
        how = "studentized" if self.studentized else "not studentized"
        shown = ", ".join(repr(s) for s in self.superior[:5])
        more = f" and {len(self.superior) - 5} more" if len(self.superior) > 5 else ""
        found = (f"  {len(self.superior)} set(s) beat the benchmark: {shown}{more}"
                 if self.superior else "  no set beats the benchmark")
        return "\n".join([
            f"Romano-Wolf StepM: {self.n_sets} sets x {self.n_obs} periods, family-wise "
            f"error rate {self.alpha:g} ({how}, {self.recentering} recentering)",
            found,
            f"  {len(self.critical_values)} step(s), critical values "
            + ", ".join(f"{c:.3f}" for c in self.critical_values),
            f"  stationary bootstrap: {self.n_bootstrap} replications, mean block length "
            f"{self.block_length:.2f}, seed {_seed_text(self.seed)}",
        ])

    def __str__(self) -> str:
        return self.summary()



def stepm(returns: Any, benchmark: Any = 0.0, *, alpha: float = 0.05,
          n_bootstrap: int = 1000, block_length: float | str = "auto",
          seed: SeedLike = None, studentize: bool = True,
          recentering: Literal["full", "consistent"] = "full") -> StepMResult:
    """Romano & Wolf's StepM: every set that beats the benchmark, family-wise error
    rate ``alpha``.

    Parameters
    ----------
    returns, benchmark, n_bootstrap, block_length, seed, studentize
        As in :func:`~foldwise.snooping.spa_test`.
    alpha
        The family-wise error rate, in (0, 1).
    recentering
        ``"full"``: Romano & Wolf (every remaining set recentred at its mean);
        ``"consistent"``: Hansen's consistent recentering, more powerful when many sets
        are clearly worse than the benchmark (Hsu, Hsu & Kuan's Step-SPA; what
        ``arch.bootstrap.StepM`` computes, unstudentized).

    Returns
    -------
    StepMResult

    Notes
    -----
    Each step is one pass over the same resamples (their counts are kept between steps
    when they take at most 64 MB, else drawn again from the seed); most runs end after one
    to three steps.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = rng.normal(0.0, 0.01, size=(1000, 30))
    >>> r[:, [4, 9]] += 0.002
    >>> stepm(r, n_bootstrap=300, block_length=1.0, seed=0).superior
    [4, 9]
    """
    data, prepared, counts = _prepared(returns, benchmark, alpha=alpha,
                                       recentering=recentering, block_length=block_length,
                                       studentize=studentize, seed=seed,
                                       n_bootstrap=n_bootstrap)
    return _stepm(data, prepared, counts, alpha=float(alpha), n_bootstrap=n_bootstrap,
                  studentize=studentize, recentering=recentering)


def _prepared(returns: Any, benchmark: Any, *, alpha: float, recentering: str,
              block_length: float | str, studentize: bool, seed: SeedLike, n_bootstrap: int
              ) -> tuple[Differentials, Setup, list[np.ndarray] | None]:
    """The arguments checked, the loss differentials, their setup and the kept resample
    counts, shared by :func:`stepm` and :func:`spa_stepm`."""
    if not 0.0 < float(alpha) < 1.0:
        raise SnoopingError(f"alpha must be in (0, 1), got {alpha!r}.")
    if recentering not in ("full", "consistent"):
        raise SnoopingError(
            f"recentering must be 'full' or 'consistent', got {recentering!r}.")
    data = prepare(returns, benchmark)
    prepared = setup(data, block_length=block_length, studentize=studentize, seed=seed,
                     n_bootstrap=n_bootstrap)
    counts = kept_counts(data.n_obs, prepared.block_length, n_bootstrap, prepared.root)
    return data, prepared, counts


def _stepm(data: Differentials, prepared: Setup, counts: list[np.ndarray] | None, *,
           alpha: float, n_bootstrap: int, studentize: bool, recentering: str,
           first: np.ndarray | None = None) -> StepMResult:
    """StepM's steps over the resamples of ``prepared`` (their ``counts`` when kept);
    ``first``: the first step's maxima when already computed (by :func:`spa_stepm`)."""
    table = statistics_table(data, prepared)
    stats = table["statistic"].to_numpy()
    mean = data.mean
    center = mean if recentering == "full" else np.where(prepared.relevant, mean, 0.0)
    active = prepared.scale > 0
    step_of = np.zeros(data.n_sets, dtype=int)
    critical: list[float] = []
    while active.any():
        if first is not None:
            maxima, first = first, None
        else:
            maxima = bootstrap_maxima(data, block_length=prepared.block_length,
                                      n_bootstrap=n_bootstrap, root=prepared.root,
                                      scale=prepared.scale, centers=center[None, :],
                                      active=active, kept=counts)[:, 0]
        value = float(np.quantile(maxima, 1.0 - alpha))
        critical.append(value)
        rejected = active & (stats > max(value, 0.0))
        if not rejected.any():
            break
        step_of[rejected] = len(critical)
        active &= ~rejected
    table["superior"] = step_of > 0
    table["step"] = step_of
    order = np.argsort(-np.where(step_of > 0, stats, -np.inf), kind="stable")
    superior = [data.labels[k] for k in order if step_of[k] > 0]
    return StepMResult(
        superior=superior, alpha=alpha, critical_values=tuple(critical),
        n_sets=data.n_sets, n_obs=data.n_obs, n_excluded=prepared.n_excluded,
        n_bootstrap=n_bootstrap, block_length=prepared.block_length, seed=prepared.seed,
        studentized=studentize, recentering=recentering, table=table)


def spa_stepm(returns: Any, benchmark: Any = 0.0, *, alpha: float = 0.05,
              n_bootstrap: int = 1000, block_length: float | str = "auto",
              seed: SeedLike = None, studentize: bool = True,
              recentering: Literal["full", "consistent"] = "full"
              ) -> tuple[SPAResult, StepMResult]:
    """Hansen's SPA test and Romano & Wolf's StepM on the same resamples, for about the
    cost of one test.

    The same numbers as ``spa = spa_test(returns, benchmark, seed=seed, ...)`` and
    ``stepm(returns, benchmark, seed=seed, block_length=spa.block_length, ...)``, bit for
    bit: both draw the same resamples from the same seed, and StepM's first step needs
    the very maxima SPA's upper (``"full"`` recentering) or consistent (``"consistent"``)
    p-value counts. So the block length, the long-run variances and the first pass over
    the resamples are computed once; StepM passes over them again only for its later
    steps (when a step found sets to remove). Parameters as in
    :func:`~foldwise.snooping.spa_test` and :func:`~foldwise.snooping.stepm`.

    Returns
    -------
    tuple of SPAResult and StepMResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = rng.normal(0.0, 0.01, size=(1000, 30))
    >>> r[:, [4, 9]] += 0.002
    >>> spa, found = spa_stepm(r, n_bootstrap=300, block_length=1.0, seed=0)
    >>> spa.pvalue < 0.05, found.superior
    (True, [4, 9])
    """
    data, prepared, counts = _prepared(returns, benchmark, alpha=alpha,
                                       recentering=recentering, block_length=block_length,
                                       studentize=studentize, seed=seed,
                                       n_bootstrap=n_bootstrap)
    maxima = bootstrap_maxima(data, block_length=prepared.block_length,
                              n_bootstrap=n_bootstrap, root=prepared.root,
                              scale=prepared.scale, centers=spa_centers(data, prepared),
                              kept=counts)
    spa = spa_result(data, prepared, maxima, n_bootstrap=n_bootstrap, studentize=studentize)
    # StepM's first step: every set with a positive scale, recentred as its choice says
    first = maxima[:, 2 if recentering == "full" else 1].copy()
    return spa, _stepm(data, prepared, counts, alpha=float(alpha), n_bootstrap=n_bootstrap,
                       studentize=studentize, recentering=recentering, first=first)
