"""What ``import foldwise`` costs: the modules a report does not need load only where used,
and what replaced them computes the same numbers (``foldwise show`` imported scipy.stats
and scipy.spatial, about a second of its start, for a normal quantile, Student's t tail
probabilities, average ranks and a k-d tree of the plateau rule)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from foldwise import stats
from foldwise.aggregate import _tables
from foldwise.snooping import _haircut, haircut_sharpe_ratio


def test_import_foldwise_cli_loads_no_scipy_stats_or_spatial():
    code = ("import sys, foldwise, foldwise.cli; print(sorted(m for m in sys.modules if "
            "m.startswith(('scipy.stats', 'scipy.spatial', 'scipy.optimize', 'sklearn', "
            "'numba', 'matplotlib', 'plotly', 'jinja2'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_normal_and_t_functions_equal_scipy_stats_bit_for_bit():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 500), [0.0, -0.0, 40.0, -40.0, np.inf, -np.inf]])
    for df in (1, 2.5, 9, 119, 2147, 10**7):
        np.testing.assert_array_equal(_haircut._t_sf(x, df), sps.t.sf(x, df))
        assert _haircut._t_sf(1.7, df) == sps.t.sf(1.7, df)
    q = np.concatenate([rng.random(500), [1e-300, 0.5, 1 - 1e-16]])
    np.testing.assert_array_equal(-_haircut._special.stdtrit(9, q), sps.t.isf(q, 9))
    np.testing.assert_array_equal(stats._special.ndtri(q), sps.norm.ppf(q))
    np.testing.assert_array_equal(2.0 * _haircut._special.ndtr(-np.abs(x)),
                                  2.0 * sps.norm.sf(np.abs(x)))


def test_haircut_expected_max_sharpe_and_min_track_record_as_with_scipy_stats():
    """Written out with scipy.stats as before, the same numbers to the last bit."""
    years, df = 2520 / 252, 2519
    others = np.random.default_rng(3).normal(0.5, 0.4, 60)
    result = haircut_sharpe_ratio(1.1, 2520, 61, other_sharpes=others)
    assert result.pvalue == min(2.0 * sps.t.sf(1.1 * math.sqrt(years), df), 1.0)
    for method, p_adj in result.adjusted_pvalues.items():
        t_adj = float(sps.t.isf(p_adj / 2.0, df)) if p_adj < 1.0 else 0.0
        assert result.haircut_sharpes[method] == max(t_adj, 0.0) / math.sqrt(years)
    n, v = 4824, 0.37
    z1, z2 = sps.norm.ppf(1.0 - 1.0 / n), sps.norm.ppf(1.0 - 1.0 / (n * math.e))
    assert stats.expected_max_sharpe(n, v) == float(
        math.sqrt(v) * ((1 - stats.EULER_GAMMA) * z1 + stats.EULER_GAMMA * z2))


@pytest.mark.parametrize("seed", range(5))
def test_spearman_and_average_ranks_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(3, 400))
    train = rng.normal(size=size).round(int(rng.integers(0, 3)))  # ties
    test = rng.normal(size=size).round(1)
    pairs = list(zip(train.tolist(), test.tolist(), strict=True))
    assert _tables.spearman(pairs) == sps.spearmanr(train, test).statistic
    np.testing.assert_array_equal(_tables._average_ranks(train.tolist()),
                                  sps.rankdata(train, method="average"))


def test_spearman_of_a_constant_side_is_nan():
    assert math.isnan(_tables.spearman([(1.0, 2.0), (1.0, 3.0), (1.0, 4.0)]))
    assert math.isnan(_tables.spearman([(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]))
    assert _tables.spearman([(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]) == pytest.approx(1.0)
