"""A sampler re-seeded in place suggests exactly what a new sampler of that seed suggests."""

from __future__ import annotations

import sys
import threading
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.samplers._tpe import _truncnorm, probability_distributions
from scipy import special

from foldwise.optimizer import _tpe
from foldwise.optimizer._samplers import make_sampler, reseed, trial_seed
from foldwise.optimizer._tpe import (
    VectorizedTPESampler,
    vectorized_log_gauss_mass,
    vectorized_log_ndtr,
    vectorized_ndtri_exp,
)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3.0, 3.0)
    n = trial.suggest_int("n", 1, 40)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return (x - 1.0) ** 2 + abs(n - 17) / 10 + (kind == "b")


def _suggestions(spec: str | None, reuse: bool, n_trials: int = 30) -> list[dict]:
    """Trial-by-trial suggestions of a study whose sampler is seeded per trial."""
    study = optuna.create_study()
    sampler = None
    for settled in range(n_trials):
        seed = trial_seed(12345, settled)
        if not (reuse and sampler is not None and reseed(sampler, spec, seed)):
            sampler = make_sampler(spec, seed)
        study.sampler = sampler
        trial = study.ask()
        study.tell(trial, _objective(trial))
    return [t.params for t in study.trials]


@pytest.mark.parametrize("spec", [None, "tpe", "optuna-tpe", "random", "TPE"])
def test_a_reseeded_sampler_suggests_what_a_new_one_does(spec):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fresh = _suggestions(spec, reuse=False)
    assert _suggestions(spec, reuse=True) == fresh
    assert len({tuple(sorted(p.items())) for p in fresh}) > 20  # really sampled


def test_only_samplers_built_by_name_are_reseeded():
    assert not reseed(optuna.samplers.TPESampler(seed=1), optuna.samplers.TPESampler(), 2)
    assert not reseed(optuna.samplers.TPESampler(seed=1), lambda seed: None, 2)
    assert not reseed(make_sampler("qmc", 1), "qmc", 2)
    assert reseed(make_sampler("tpe", 1), "tpe", 2)


# --- the vectorized TPE ------------------------------------------------------------------------


def test_tpe_by_name_is_the_vectorized_one_and_optuna_tpe_is_optunas():
    assert type(make_sampler(None, 1)) is VectorizedTPESampler
    assert type(make_sampler("tpe", 1)) is VectorizedTPESampler
    assert type(make_sampler("optuna-tpe", 1)) is optuna.samplers.TPESampler


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-60.0, max_value=60.0, allow_nan=False))
def test_the_log_cdf_is_optunas_function(x):
    """Against Optuna's scalar function: to 1e-15 relative where the CDF is at most one half
    (the left tail TPE works in); to a few ulps absolute above it (where Optuna takes the
    log of a number close to 1 and scipy's log1p is the more accurate)."""
    ours = float(vectorized_log_ndtr(np.array([x]))[0])
    optunas = float(_truncnorm._log_ndtr_single(x))
    if x <= 0:
        assert ours == pytest.approx(optunas, rel=1e-15, abs=0)
    else:
        assert abs(ours - optunas) <= 4.5e-16  # a few ulps of log(1/2)
    # and against the definition: the log of the complementary error function for the left
    # tail (where it does not underflow), log1p of it for the right
    if x > -37:
        reference = (np.log(0.5 * special.erfc(-x / np.sqrt(2))) if x < -1 else
                     np.log1p(-0.5 * special.erfc(x / np.sqrt(2))))
        assert ours == pytest.approx(reference, rel=1e-12, abs=1e-300)


def _exact_log_mass(a: float, b: float) -> float:
    """``log(Phi(b) - Phi(a))`` with 80 significant digits (mpmath); a right-tail interval
    as its mirror image, whose CDFs are not both within 1e-50 of one."""
    mpmath = pytest.importorskip("mpmath")
    if a > 0:
        a, b = -b, -a
    with mpmath.workdps(80):
        return float(mpmath.log(mpmath.ncdf(b) - mpmath.ncdf(a)))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-30.0, max_value=30.0, allow_nan=False),
       st.floats(min_value=1e-6, max_value=20.0, allow_nan=False))
def test_the_log_mass_is_the_exact_one(a, width):
    """Against the mass computed with 80 digits, on each of the three cases (both bounds
    in the left tail, both in the right, one on each side): to 1e-12 relative for an
    interval at least 1e-3 wide. A narrower one is a difference of nearly equal CDFs, in
    Optuna's formula as in this one: the kernels' last-bit errors grow by about the inverse
    of the width, and both functions stay within that bound."""
    b = a + width
    ours = float(vectorized_log_gauss_mass(np.array([a]), np.array([b]))[0])
    optunas = float(_truncnorm._log_gauss_mass(np.array([a]), np.array([b]))[0])
    exact = _exact_log_mass(a, b)
    if not np.isfinite(exact):
        return  # the mass underflows a float: nothing to compare
    bound = max(1.0, abs(exact)) * (1e-12 if width >= 1e-3 else 1e-14 / width)
    assert abs(ours - exact) <= bound
    assert abs(optunas - exact) <= max(bound, 1e-11 * max(1.0, abs(exact)))  # Optuna's erf


def test_the_log_mass_keeps_shapes_and_cases_apart():
    a = np.array([[-3.0, -1.0, 0.5], [-0.2, 2.0, -8.0]])
    b = a + np.array([[1.0, 2.0, 0.1], [0.1, 1.5, 7.0]])
    ours = vectorized_log_gauss_mass(a, b)
    assert ours.shape == a.shape and ours.dtype == np.float64
    expected = [[_exact_log_mass(x, y) for x, y in zip(ra, rb, strict=True)]
                for ra, rb in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    np.testing.assert_allclose(vectorized_log_gauss_mass(-10.0, b), vectorized_log_gauss_mass(
        np.full_like(b, -10.0), b))  # broadcasts like Optuna's
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty interval is -inf, silently, as Optuna's
        assert vectorized_log_gauss_mass(np.array([-1.0, 2.0, 0.0]),
                                         np.array([-1.0, 2.0, 0.0])).tolist() == [-np.inf] * 3


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-700.0, max_value=-1e-300, allow_nan=False))
def test_the_inverse_log_cdf_is_optunas_function(y):
    """scipy's ``ndtri_exp`` against Optuna's Newton iterations and against the log-CDF it
    inverts: the ``x`` whose ``log_ndtr`` is ``y``."""
    ours = float(vectorized_ndtri_exp(np.array([y]))[0])
    optunas = float(_truncnorm._ndtri_exp(np.array([y]))[0])
    assert abs(ours - optunas) <= 4e-15 * max(1.0, abs(optunas))
    back = float(special.log_ndtr(ours))
    assert abs(back - y) <= 1e-12 * max(1.0, abs(y))


def test_the_direct_log_mass_equals_optunas_over_unique_pairs():
    """Every element computed equals Optuna's mass of the distinct pairs scattered back,
    to the bit: a (candidates x kernels) matrix with repeated candidates and kernels."""
    rng = np.random.default_rng(0)
    candidates = rng.integers(5, 50, size=24).astype(float)  # integer steps repeat
    mus = rng.choice([10.0, 20.0, 30.5, 44.0], size=40)
    sigmas = rng.choice([3.0, 7.5], size=40)
    lower = (candidates[:, None] - 0.5 - mus) / sigmas
    upper = (candidates[:, None] + 0.5 - mus) / sigmas
    with _tpe._vectorized():
        unique_first = _tpe._OPTUNA_LOG_GAUSS_MASS_UNIQUE(lower, upper)
    direct = vectorized_log_gauss_mass(lower, upper)
    assert direct.shape == lower.shape
    np.testing.assert_array_equal(direct, unique_first)


def _mixture(rng: np.random.Generator, n_kernels: int, repeated: bool):
    """An Optuna Parzen mixture over a categorical, a stepped, a stepped log-scale, a
    continuous and a continuous log-scale dimension (kernels repeated where asked)."""
    pd = probability_distributions

    def kernels(low: float, high: float, log: bool = False):
        lo, hi = (np.log(low), np.log(high)) if log else (low, high)
        mu = rng.uniform(lo, hi, n_kernels)
        sigma = rng.uniform(0.02, 1.0, n_kernels) * (hi - lo)
        if repeated:  # the kernels of one repeated parameter set: same location and scale
            mu[1::3], sigma[1::3] = mu[0], sigma[0]
        return mu, sigma

    weights = rng.dirichlet(np.ones(n_kernels))
    categories = rng.dirichlet(np.ones(4), size=n_kernels)
    return pd._MixtureOfProductDistribution(weights=weights, distributions=[
        pd._BatchedCategoricalDistributions(categories),
        pd._BatchedDiscreteTruncNormDistributions(*kernels(4.5, 50.5), low=5, high=50, step=1),
        pd._BatchedDiscreteTruncLogNormDistributions(*kernels(19.0, 201.0, log=True), low=20,
                                                     high=200, step=2),
        pd._BatchedTruncNormDistributions(*kernels(-3.0, 3.0), low=-3.0, high=3.0),
        pd._BatchedTruncLogNormDistributions(*kernels(1e-3, 10.0, log=True), low=1e-3, high=10.0),
    ])


def _candidates(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.integers(0, 4, n), rng.integers(5, 51, n),
                            20 + 2 * rng.integers(0, 91, n), rng.uniform(-3, 3, n),
                            np.exp(rng.uniform(np.log(1e-3), np.log(10.0), n))]).astype(float)


@pytest.mark.parametrize("repeated", [False, True])
@pytest.mark.parametrize("n_kernels", [1, 7, 150])
def test_the_compiled_mixture_log_pdf_is_optunas(n_kernels, repeated):
    """The compiled pass over candidates x kernels against Optuna's ``log_pdf``: to 1e-13
    against it computing with foldwise's kernels (the same formulas), and to 1e-9 against
    stock Optuna (its ``erf`` is the less accurate one)."""
    from foldwise.optimizer._tpe_compiled import mixture_log_pdf

    rng = np.random.default_rng(n_kernels + repeated)
    for _ in range(5):
        mixture = _mixture(rng, n_kernels, repeated)
        x = _candidates(rng, 24)
        x[1] = x[0]  # a repeated candidate
        compiled = mixture_log_pdf(x, *_tpe._packed(mixture, x))
        stock = _tpe._OPTUNA_LOG_PDF(mixture, x)
        with _tpe._vectorized():
            swapped = _tpe._OPTUNA_LOG_PDF(mixture, x)
        np.testing.assert_allclose(compiled, swapped, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(compiled, stock, rtol=1e-9, atol=1e-9)
        assert compiled[0] == compiled[1]


def test_the_compiled_log_pdf_keeps_optunas_edge_values():
    """A candidate outside a continuous range has density 0 (-inf); an empty range gives
    NaN; a kernel of weight 0 adds nothing; a row without mass anywhere is -inf."""
    from foldwise.optimizer._tpe_compiled import mixture_log_pdf

    pd = probability_distributions
    mixture = pd._MixtureOfProductDistribution(weights=np.array([0.0, 0.4, 0.6]), distributions=[
        pd._BatchedTruncNormDistributions(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.5, 0.1]),
                                          low=-1.0, high=3.0)])
    x = np.array([[0.5], [3.5], [2.0]])
    with np.errstate(divide="ignore"):
        compiled = mixture_log_pdf(x, *_tpe._packed(mixture, x))
        stock = _tpe._OPTUNA_LOG_PDF(mixture, x)
    np.testing.assert_allclose(compiled, stock, rtol=1e-12)
    assert compiled[1] == -np.inf
    empty = pd._MixtureOfProductDistribution(weights=np.array([1.0]), distributions=[
        pd._BatchedTruncNormDistributions(np.array([1.0]), np.array([0.5]), low=1.0, high=1.0)])
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.array([[1.0]])
        assert np.isnan(mixture_log_pdf(one, *_tpe._packed(empty, one))).all()
        assert np.isnan(_tpe._OPTUNA_LOG_PDF(empty, np.array([[1.0]]))).all()


def test_candidates_the_compiled_pass_must_not_index_with_go_to_optunas(monkeypatch):
    """A category out of range or a candidate that is not finite never reaches compiled
    code (which would read out of bounds): Optuna's pass computes or refuses it."""
    monkeypatch.setattr(_tpe, "COMPILE_AFTER_SECONDS", 0.0)
    mixture = _mixture(np.random.default_rng(3), 5, repeated=False)
    x = _candidates(np.random.default_rng(4), 6)
    assert _tpe._packed(mixture, x) is not None
    bad_category, not_finite = x.copy(), x.copy()
    bad_category[2, 0] = 4  # 4 categories: 0..3
    not_finite[1, 3] = np.nan
    assert _tpe._packed(mixture, bad_category) is None
    assert _tpe._packed(mixture, not_finite) is None
    assert _tpe._packed(mixture, x[:, :3]) is None  # fewer columns than dimensions
    with pytest.raises(IndexError):
        _tpe.parzen_log_pdf(mixture, bad_category)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(_tpe.parzen_log_pdf(mixture, not_finite),
                                      _tpe._OPTUNA_LOG_PDF(mixture, not_finite))
    assert _tpe._kernel is not None


def _no_kernel_yet(monkeypatch, after_seconds: float = float("inf")) -> None:
    """A process that has not loaded the compiled pass, nor spent anything in the numpy
    one, nor loaded the pipeline's compiled kernels."""
    monkeypatch.setattr(_tpe, "_kernel", None)
    monkeypatch.setattr(_tpe, "_numpy_seconds", 0.0)
    monkeypatch.setattr(_tpe, "COMPILE_AFTER_SECONDS", after_seconds)
    monkeypatch.delitem(sys.modules, "foldwise.pipeline._compiled", raising=False)


@pytest.fixture(params=["numpy", "compiled"])
def log_pdf_pass(request, monkeypatch):
    """Optuna's log_pdf (the numpy pass) or the compiled one, whatever this process has
    spent before (the switch depends on it)."""
    _no_kernel_yet(monkeypatch, after_seconds=float("inf") if request.param == "numpy"
                   else 0.0)
    yield request.param
    assert (_tpe._kernel is not None) == (request.param == "compiled")


def test_a_call_planning_many_trials_loads_the_compiled_pass_before_them(monkeypatch,
                                                                        tmp_path):
    """optimize tells foldwise's TPE how many trials the process will run: from
    COMPILE_FOR_TRIALS on, the compiled pass is loaded before the first one; below, or
    for another sampler, it is not."""
    import foldwise
    from foldwise.examples import sma_crossover
    from foldwise.optimizer._samplers import builds_vectorized_tpe
    from foldwise.space import Int
    from foldwise.splits import WalkForward

    _no_kernel_yet(monkeypatch)
    with _tpe.planned_trials(_tpe.COMPILE_FOR_TRIALS - 1):
        pass
    assert _tpe._kernel is None
    assert [builds_vectorized_tpe(s) for s in (None, "tpe", "TPE", VectorizedTPESampler(),
                                               "optuna-tpe", optuna.samplers.TPESampler())] \
        == [True, True, True, True, False, False]
    monkeypatch.setattr(_tpe, "COMPILE_FOR_TRIALS", 10)  # 5 folds x 2 trials
    data = foldwise.datasets.load_goog()

    def run(sampler: str) -> None:
        foldwise.optimize(sma_crossover, data, {"fast": Int(5, 20), "slow": Int(30, 60)},
                          WalkForward(train=750, test=250), n_trials=2, seed=0,
                          sampler=sampler, storage="memory", cache=tmp_path / sampler,
                          show_progress=False, keep_statistics=False)

    run("optuna-tpe")
    assert _tpe._kernel is None
    run("tpe")
    assert _tpe._kernel is not None


def test_a_compiled_pass_that_cannot_load_leaves_optunas_with_one_warning(monkeypatch,
                                                                          caplog):
    """numba or scipy without what the compiled pass needs: the sampler samples with
    Optuna's pass (the compiled one only saves time), and says so once."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _no_kernel_yet(monkeypatch, after_seconds=0.0)
    monkeypatch.setitem(sys.modules, "foldwise.optimizer._tpe_compiled", None)  # import fails
    with caplog.at_level("WARNING", logger="foldwise.optimizer._tpe"):
        with _tpe.planned_trials(10**6):
            ours = _study_params(VectorizedTPESampler(seed=0), floats=False, n_trials=30)
        _study_params(VectorizedTPESampler(seed=0), floats=False, n_trials=15)
    assert _tpe._kernel is False
    assert ours == _study_params(optuna.samplers.TPESampler(seed=0), floats=False, n_trials=30)
    warnings_ = [r for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert len(warnings_) == 1 and "ModuleNotFoundError" in warnings_[0].getMessage()


def test_scipys_functions_are_called_only_with_the_signature_the_compiled_code_uses(
        monkeypatch):
    """The compiled code calls scipy's C functions by address: a function missing, or of
    another signature, is refused at import (and Optuna's pass stays)."""
    from foldwise.optimizer import _tpe_compiled

    assert _tpe_compiled._double_function("log_ndtr") != _tpe_compiled._double_function("ndtr")
    with pytest.raises(ImportError, match="no double-precision nonexistent"):
        _tpe_compiled._double_function("nonexistent")
    monkeypatch.setattr(_tpe_compiled, "_SIGNATURE", b"double (double)")
    with pytest.raises(ImportError, match="log_ndtr"):
        _tpe_compiled._double_function("log_ndtr")


def test_the_compiled_pass_is_loaded_once_the_numpy_pass_has_cost_as_much(monkeypatch):
    """The rent-or-buy switch: Optuna's pass until COMPILE_AFTER_SECONDS of it were spent
    in the process, then the compiled one; within a planned block (an optimize call), only
    at the start of the next block."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _no_kernel_yet(monkeypatch, after_seconds=0.05)
    calls = {"numpy": 0}
    optunas = _tpe._OPTUNA_LOG_PDF

    def counted(mixture, x):
        calls["numpy"] += 1
        return optunas(mixture, x)

    monkeypatch.setattr(_tpe, "_OPTUNA_LOG_PDF", counted)
    _study_params(VectorizedTPESampler(seed=0), floats=False, n_trials=12)
    assert calls["numpy"] > 0 and _tpe._kernel is None  # a short study: numpy only
    spent = _tpe._numpy_seconds
    assert 0 < spent < 0.05
    monkeypatch.setattr(_tpe, "COMPILE_AFTER_SECONDS", spent)  # as if it had cost that much
    with _tpe.planned_trials(0):  # inside a call that started before: no load mid-call
        _study_params(VectorizedTPESampler(seed=1), floats=False, n_trials=12)
    assert _tpe._kernel is None
    with _tpe.planned_trials(12):  # the next call's start loads it
        assert _tpe._kernel is not None
        before = calls["numpy"]
        _study_params(VectorizedTPESampler(seed=1), floats=False, n_trials=20)
    assert calls["numpy"] == before  # compiled from then on
    monkeypatch.setattr(_tpe, "_kernel", None)
    _study_params(VectorizedTPESampler(seed=2), floats=False, n_trials=12)  # outside a call
    assert _tpe._kernel is not None  # loaded at the first log_pdf once earned


def _study_params(sampler, floats: bool, n_trials: int = 60) -> list[tuple]:
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        if floats:
            a = trial.suggest_float("a", 5, 50)
            b = trial.suggest_float("b", 20, 200, log=True)
        else:
            a = trial.suggest_int("a", 5, 50)
            b = trial.suggest_int("b", 20, 200, step=2)
        kind = trial.suggest_categorical("kind", ["x", "y", "z"])
        if a >= b:
            raise optuna.TrialPruned()
        return float(np.sin(a / 7) + np.cos(b / 30) + (kind == "y"))

    study.optimize(objective, n_trials=n_trials)
    return [tuple(t.params.values()) for t in study.trials]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_spaces_get_optunas_suggestions(seed, log_pdf_pass):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stock = _study_params(optuna.samplers.TPESampler(seed=seed), floats=False)
    ours = _study_params(VectorizedTPESampler(seed=seed), floats=False)
    assert ours == stock
    assert len(set(stock)) > 30


def test_continuous_spaces_are_sampled_from_the_same_model(log_pdf_pass):
    """Suggestions can part from Optuna's in the last bits; the first TPE suggestions
    (after the random startup trials) agree to 1e-9."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stock = _study_params(optuna.samplers.TPESampler(seed=4), floats=True, n_trials=11)
    ours = _study_params(VectorizedTPESampler(seed=4), floats=True, n_trials=11)
    assert ours[:10] == stock[:10]  # the random startup trials
    np.testing.assert_allclose(ours[10][:2], stock[10][:2], rtol=1e-9)
    assert ours[10][2] == stock[10][2]


def _optunas_functions() -> tuple:
    return (_truncnorm._log_ndtr, _truncnorm._log_gauss_mass, _truncnorm._ndtri_exp,
            probability_distributions._log_gauss_mass_unique,
            probability_distributions._MixtureOfProductDistribution.log_pdf)


def test_optunas_function_is_restored_after_sampling_even_on_errors():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    original = _optunas_functions()
    _study_params(VectorizedTPESampler(seed=0), floats=True, n_trials=15)
    assert _optunas_functions() == original
    def fail_inside() -> None:
        with _tpe._vectorized():
            assert _truncnorm._log_ndtr is vectorized_log_ndtr
            assert _truncnorm._log_gauss_mass is vectorized_log_gauss_mass
            assert probability_distributions._log_gauss_mass_unique is vectorized_log_gauss_mass
            assert _truncnorm._ndtri_exp is vectorized_ndtri_exp
            assert probability_distributions._MixtureOfProductDistribution.log_pdf \
                is _tpe.parzen_log_pdf
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_inside()
    assert _optunas_functions() == original
    assert _tpe._depth == 0


def test_concurrent_samplers_leave_optunas_function_in_place():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    original = _optunas_functions()
    threads = [threading.Thread(target=_study_params, args=(VectorizedTPESampler(seed=s), True, 25))
               for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _optunas_functions() == original
    assert _tpe._depth == 0
