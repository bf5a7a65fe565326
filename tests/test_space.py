"""Search spaces: specs, shortcuts, constraints (parsed safely), descriptions."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import foldwise
from foldwise.errors import SearchSpaceError
from foldwise.examples import sma_crossover
from foldwise.space import Categorical, Fixed, Float, Int, SearchSpace
from foldwise.splits import WalkForward


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_shortcuts_become_typed_specs():
    space = SearchSpace({"fast": (5, 50), "rate": (0.1, 2), "slow": range(20, 205, 5),
                         "short": [False, True], "tag": "v2"})
    assert space.params == {"fast": Int(5, 50), "rate": Float(0.1, 2.0),
                            "slow": Int(20, 200, step=5), "short": Categorical([False, True]),
                            "tag": Fixed("v2")}


def test_suggestions_stay_in_range_and_on_the_grid():
    space = SearchSpace({"n": Int(1, 100, log=True), "x": Float(0.0, 1.0, step=0.25),
                         "k": Int(20, 200, step=5), "c": ["a", "b"], "f": 7})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        params = space.suggest(study.ask())
        assert 1 <= params["n"] <= 100
        assert params["x"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert params["k"] % 5 == 0 and 20 <= params["k"] <= 200
        assert params["c"] in ("a", "b") and params["f"] == 7


def test_define_by_run_space():
    def define(trial):
        fast = trial.suggest_int("fast", 2, 10)
        return {"fast": fast, "slow": trial.suggest_int("slow", fast + 1, 30)}

    space = SearchSpace(define, "fast < slow")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = space.suggest(study.ask())
    assert params["fast"] < params["slow"]
    assert space.is_define_by_run
    assert "define_by_run" in space.describe()


@pytest.mark.parametrize(
    ("expression", "params", "feasible"),
    [
        ("fast < slow", {"fast": 5, "slow": 20}, True),
        ("fast < slow", {"fast": 20, "slow": 20}, False),
        ("2 * fast <= slow - 10", {"fast": 5, "slow": 20}, True),
        ("fast < slow < 100", {"fast": 5, "slow": 120}, False),
        ("not short or fast > 3", {"fast": 2, "short": True}, False),
        ("fast % 2 == 0 and fast ** 2 < 50", {"fast": 6}, True),
    ],
)
def test_string_constraints(expression, params, feasible):
    space = SearchSpace({k: (1, 200) if k != "short" else [True, False] for k in params},
                        expression)
    assert (space.infeasible(params) is None) is feasible


def test_callable_constraints_and_several_at_once():
    space = SearchSpace({"a": (1, 10), "b": (1, 10)}, ["a < b", lambda p: p["a"] + p["b"] < 12])
    assert space.infeasible({"a": 2, "b": 5}) is None
    assert space.infeasible({"a": 5, "b": 2}) == "violates 'a < b'"
    assert space.infeasible({"a": 5, "b": 9}) == "violates '<lambda>'"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('echo hi')", "uses Call"),
        ("fast.__class__", "uses Attribute"),
        ("fast <", "not a valid expression"),
        ("fast < speed", "names 'speed', which is not a parameter"),
        ("[fast]", "uses List"),
    ],
)
def test_string_constraints_are_parsed_not_evaluated(expression, message):
    with pytest.raises(SearchSpaceError, match=message):
        SearchSpace({"fast": (1, 10)}, expression)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Int(10, 5), "low must be <= high"),
        (lambda: Int(1, 10, step=0), "step must be >= 1"),
        (lambda: Int(0, 10, log=True), "needs step=1 and low >= 1"),
        (lambda: Int(1.5, 10), "must be an integer"),  # type: ignore[arg-type]
        (lambda: Float(0.0, 1.0, log=True), "low > 0"),
        (lambda: Float("a", 1.0), "must be a number"),  # type: ignore[arg-type]
        (lambda: Categorical([]), "at least one choice"),
        (lambda: Categorical([object()]), "cannot be stored by Optuna"),
        (lambda: SearchSpace({}), "empty"),
        (lambda: SearchSpace(42), "dict of parameter specs"),  # type: ignore[arg-type]
        (lambda: SearchSpace({"a": range(5, 1)}), "empty or decreasing"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(build, message):
    with pytest.raises(SearchSpaceError, match=message):
        build()


def test_description_is_canonical_and_changes_with_the_space():
    a = SearchSpace({"fast": (5, 50), "slow": (20, 200)}, "fast < slow").describe()
    b = SearchSpace({"slow": (20, 200), "fast": (5, 50)}, "fast < slow").describe()
    c = SearchSpace({"fast": (5, 60), "slow": (20, 200)}, "fast < slow").describe()
    assert a["params"] == b["params"]
    assert a != c


# --- regression: a constraint that raises was reported as a strategy failure ---------------


def _ratio_at_most_three(params):
    return params["slow"] / params["fast"] <= 3  # ZeroDivisionError when fast == 0


def test_constraint_that_raises_is_a_search_space_error_not_a_strategy_failure():
    space = SearchSpace({"fast": (0, 10), "slow": (1, 50)}, _ratio_at_most_three)
    with pytest.raises(SearchSpaceError) as caught:
        space.infeasible({"fast": 0, "slow": 20})
    message = str(caught.value)
    assert "_ratio_at_most_three" in message  # names the constraint...
    assert "test_space.py" in message  # ...and where it is defined
    assert "{'fast': 0, 'slow': 20}" in message  # the parameters it was called with
    assert "ZeroDivisionError: division by zero" in message  # the original error
    assert ("Fix the constraint; it must return True or False for every parameter set in the "
            "space") in message
    assert "strategy" not in message.lower()
    assert isinstance(caught.value.__cause__, ZeroDivisionError)  # chained from it


def test_constraint_lambda_that_raises_names_the_lambda():
    space = SearchSpace({"a": (1, 5)}, lambda p: p["a"].bit_length() < {}["x"] or True)
    with pytest.raises(SearchSpaceError, match=r"reads parameter 'x'"):
        space.infeasible({"a": 3})  # a KeyError keeps its own message
    space = SearchSpace({"a": (1, 5)}, lambda p: p["a"] < "3")
    with pytest.raises(SearchSpaceError, match=r"'test_constraint_lambda_that_raises_names_the_lambda"
                                               r"\.<locals>\.<lambda>' .*raised TypeError") as caught:
        space.infeasible({"a": 3})
    assert isinstance(caught.value.__cause__, TypeError)


def test_string_constraint_that_raises_is_a_search_space_error():
    space = SearchSpace({"a": (0, 5), "b": (1, 5)}, "b / a > 1")
    with pytest.raises(SearchSpaceError,
                       match=r"constraint 'b / a > 1' raised ZeroDivisionError.*'a': 0") as caught:
        space.infeasible({"a": 0, "b": 2})
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def _no_return(params):
    params["fast"] < params["slow"]  # noqa: B015 - the bug under test: no return


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        (_no_return, r"returned None \(NoneType\).*lack a return statement"),
        (lambda p: "yes", r"returned 'yes' \(str\)"),
        (lambda p: np.array([True, False]), r"returned array\(\[ True, False\]\) \(ndarray\)"),
        (lambda p: 1, r"returned 1 \(int\)"),
    ],
)
def test_constraint_that_returns_no_bool_is_refused(constraint, message):
    space = SearchSpace({"fast": (1, 10), "slow": (1, 50)}, constraint)
    with pytest.raises(SearchSpaceError, match=message) as caught:
        space.infeasible({"fast": 2, "slow": 20})
    assert "must return True (feasible) or False (infeasible)" in str(caught.value)
    assert "{'fast': 2, 'slow': 20}" in str(caught.value)


def test_numpy_bools_are_bools():
    space = SearchSpace({"fast": (1, 10), "slow": (1, 50)},
                        lambda p: np.int64(p["fast"]) < np.int64(p["slow"]))
    assert space.infeasible({"fast": 2, "slow": 20}) is None
    assert space.infeasible({"fast": 30, "slow": 20}) == "violates '<lambda>'"


def test_constraint_that_raises_stops_the_optimization_instead_of_failing_trials(store_dir):
    data = foldwise.datasets.load_goog()
    with pytest.raises(SearchSpaceError, match="Fix the constraint") as caught:
        foldwise.optimize(
            sma_crossover, data, space={"fast": (0, 10), "slow": (20, 50)},
            constraints=_ratio_at_most_three, splitter=WalkForward(train=1000, test=500),
            n_trials=40, seed=0, show_progress=False, study="constraint-raises")
    assert "Fix the strategy" not in str(caught.value)
