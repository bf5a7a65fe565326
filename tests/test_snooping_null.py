"""Under the null (no set better than the benchmark), the SPA and Reality Check p-values
are uniform: across 100 independent studies without skill, a Kolmogorov-Smirnov test does
not reject uniformity, and about 5% of them fall below 0.05."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from foldwise.snooping import reality_check, spa_test

N_STUDIES = 100


def _null_pvalues(block_length: float | str) -> dict[str, np.ndarray]:
    found: dict[str, list[float]] = {"consistent": [], "upper": [], "lower": [], "rc": []}
    for seed in range(N_STUDIES):
        rng = np.random.default_rng(seed)
        # 5 sets exactly as good as the benchmark (the least favourable null): AR(1)
        # returns with coefficient 0.2 and mean 0, against a benchmark of mean 0
        e = rng.standard_normal((300, 5))
        r = e.copy()
        for t in range(1, 300):
            r[t] = 0.2 * r[t - 1] + e[t]
        b = rng.standard_normal(300) * 0.5
        spa = spa_test(r, b, n_bootstrap=400, block_length=block_length, seed=seed)
        found["consistent"].append(spa.pvalue)
        found["upper"].append(spa.pvalue_upper)
        found["lower"].append(spa.pvalue_lower)
        found["rc"].append(reality_check(r, b, n_bootstrap=400, block_length=block_length,
                                         seed=seed).pvalue)
    return {k: np.array(v) for k, v in found.items()}


@pytest.mark.slow
def test_pvalues_are_uniform_without_skill():
    pvalues = _null_pvalues("auto")
    for kind in ("consistent", "upper", "rc"):
        p = pvalues[kind]
        assert stats.kstest(p, "uniform").pvalue > 0.01, kind
        # rejections at 5%: binomial(100, 0.05) stays within 0..12 with probability 0.999
        assert (p < 0.05).sum() <= 12, kind
    # the lower p-value recentres nothing above the benchmark: it can only be smaller
    assert (pvalues["lower"] <= pvalues["consistent"]).all()
    assert (pvalues["consistent"] <= pvalues["upper"]).all()
