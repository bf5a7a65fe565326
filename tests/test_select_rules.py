"""Selection rules on constructed trials: "best" is today's choice, plateau neighbourhoods of
each kind of parameter, determinism, the top-k mean's averaging and snapping, the rule in
the manifest and in the fold records."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st
from optuna.trial import TrialState

import foldwise
from foldwise._canonical import canonical_json
from foldwise.aggregate import (
    Best,
    Plateau,
    TopKMean,
    as_rule,
    average_params,
    choose,
    plateau_scores,
    rule_from_json,
    select_top,
)
from foldwise.aggregate._folds import fold_records
from foldwise.aggregate._select import params_key
from foldwise.backtest import BacktestSettings
from foldwise.errors import OptimizationError
from foldwise.records import (
    DataSummary,
    Evaluation,
    FoldWindow,
    SelectionRecord,
    StoredTrial,
    StrategyIdentity,
    StudyManifest,
    StudyRecord,
    TrialRecord,
)
from foldwise.space import Categorical, Fixed, Float, Int, SearchSpace


def trial(number, value, state=TrialState.COMPLETE, **params):
    return StoredTrial(number, state, value if state == TrialState.COMPLETE else None,
                       TrialRecord(params=params))


def space_of(**params):
    return SearchSpace(params).describe()


# --- "best" is exactly today's choice --------------------------------------------------------


def _reference_best(trials, direction):
    """The choice before rules existed, written out: the COMPLETE trial with the best value,
    the lowest trial number among equal values."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = -1 if direction == "maximize" else 1
    return min(complete, key=lambda t: (sign * t.value, t.number))


trial_lists = st.lists(
    st.tuples(st.sampled_from([TrialState.COMPLETE] * 4 + [TrialState.FAIL, TrialState.PRUNED,
                                                            TrialState.RUNNING]),
              st.sampled_from([-1.5, 0.0, 0.25, 1.0, 2.0]) | st.floats(-5, 5),
              st.integers(0, 4), st.sampled_from(["a", "b"])),
    max_size=25)


@given(trial_lists, st.sampled_from(["maximize", "minimize"]), st.integers(1, 6),
       st.randoms(use_true_random=False))
def test_best_chooses_exactly_what_select_top_chose(rows, direction, top_k, rng):
    numbers = list(range(len(rows)))
    rng.shuffle(numbers)  # trial numbers in any order of the list
    trials = [trial(n, value, state, x=x, kind=kind)
              for n, (state, value, x, kind) in zip(numbers, rows, strict=True)]
    choice = choose(trials, direction, top_k, as_rule("best"), space_of(
        x=Int(0, 4), kind=Categorical(["a", "b"])))
    expected = _reference_best(trials, direction)
    today = select_top(trials, direction, 1)
    if expected is None:
        assert choice.ranked == () and today == []
        return
    assert choice.ranked[0] is expected is today[0]
    assert list(choice.ranked) == select_top(trials, direction, top_k)


values = (st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, -0.0, 1.0, 0.5])
          | st.floats(allow_nan=True) | st.sampled_from(["a", "1", "b"])
          | st.sampled_from([np.int64(1), np.float64(1.0), np.bool_(True)])
          | st.lists(st.integers(0, 2), max_size=2) | st.tuples(st.integers(0, 2)))
param_sets = st.dictionaries(st.sampled_from(["x", "y", "z"]), values, max_size=3)


@given(param_sets, param_sets)
def test_the_key_of_a_set_is_its_canonical_json(a, b):
    assert (params_key(a) == params_key(b)) == (canonical_json(a) == canonical_json(b))
    assert params_key(a) == params_key(dict(reversed(list(a.items()))))


# --- plateau: neighbourhoods of each kind of parameter -----------------------------------------


def _score(sets, space, **rule):
    return {s.trial.number: s for s in plateau_scores(sets, space, **rule)}


def test_an_integer_neighbourhood_is_a_share_of_its_range():
    space = space_of(x=Int(0, 100))  # radius 0.1: 10 units
    sets = [trial(0, 2.0, x=50), trial(1, 1.0, x=55), trial(2, 7.0, x=60), trial(3, 9.0, x=39)]
    scores = _score(sets, space, radius=0.1, prior=0.0)
    # 50 and 55: d = 0.5, w = 0.75; 60 sits exactly on the radius (w = 0); 39 is 1.1 away
    assert scores[0].smoothed == pytest.approx((2.0 + 0.75 * 1.0) / 1.75)
    assert scores[0].neighbours == 1
    assert scores[1].smoothed == pytest.approx((1.0 + 0.75 * 2.0 + 0.75 * 7.0) / 2.5)
    assert scores[2].smoothed == pytest.approx((7.0 + 0.75 * 1.0) / 1.75)
    assert (scores[3].smoothed, scores[3].neighbours) == (9.0, 0)


def test_a_coarse_grid_keeps_the_next_grid_point_a_neighbour():
    # Int(0, 10, step=5): 10 % of the range is 1 unit, less than a step; two steps (10) rule
    space = space_of(x=Int(0, 10, step=5))
    sets = [trial(0, 1.0, x=0), trial(1, 3.0, x=5), trial(2, 5.0, x=10)]
    scores = _score(sets, space, radius=0.1, prior=0.0)
    assert scores[0].smoothed == pytest.approx((1.0 + 0.75 * 3.0) / 1.75)  # d = 0.5
    assert scores[0].neighbours == 1  # 10 is exactly two steps away: weight 0


def test_a_log_parameter_is_measured_in_log_units():
    space = space_of(rate=Float(1e-4, 1.0, log=True))  # span ln(1e4); radius 0.921 log units
    radius = 0.1 * math.log(1e4)
    sets = [trial(0, 1.0, rate=1e-3), trial(1, 2.0, rate=2e-3), trial(2, 4.0, rate=3.1e-3)]
    scores = _score(sets, space, radius=0.1, prior=0.0)
    w = 1 - (math.log(2) / radius) ** 2  # 1e-3 and 2e-3 are ln 2 apart
    assert scores[0].smoothed == pytest.approx((1.0 + w * 2.0) / (1 + w))
    # 3.1e-3 is ln 3.1 > radius from 1e-3, although 0.0021 apart on a range of 1
    assert scores[0].neighbours == 1
    linear = _score(sets, space_of(rate=Float(1e-4, 1.0)), radius=0.1, prior=0.0)
    assert linear[0].neighbours == 2  # on a linear axis all three are close


def test_a_float_distance_and_two_parameters_combine_euclidean():
    space = space_of(a=Float(0.0, 1.0), b=Float(0.0, 10.0))
    sets = [trial(0, 1.0, a=0.5, b=5.0), trial(1, 3.0, a=0.57, b=5.8)]
    scores = _score(sets, space, radius=0.1, prior=0.0)
    # each alone is within its radius (0.7 and 0.8 of it); together 0.49 + 0.64 > 1
    assert scores[0].neighbours == 0
    sets[1] = trial(1, 3.0, a=0.55, b=5.6)
    w = 1 - ((0.05 / 0.1) ** 2 + (0.6 / 1.0) ** 2)
    assert _score(sets, space, radius=0.1, prior=0.0)[0].smoothed == pytest.approx(
        (1.0 + w * 3.0) / (1 + w))


def test_categorical_parameters_are_neighbours_only_when_equal_and_fixed_ones_do_not_count():
    space = space_of(x=Int(0, 100), side=Categorical(["long", "both"]), lag=Fixed(1))
    sets = [trial(0, 1.0, x=50, side="long", lag=1), trial(1, 5.0, x=50, side="both", lag=1),
            trial(2, 3.0, x=52, side="long", lag=1)]
    scores = _score(sets, space, radius=0.1, prior=0.0)
    w = 1 - 0.2 ** 2
    assert scores[0].smoothed == pytest.approx((1.0 + w * 3.0) / (1 + w))
    assert scores[1].neighbours == 0  # same x, other side: no neighbour


def test_a_define_by_run_space_reads_ranges_from_the_values_and_branches_apart():
    space = {"define_by_run": "space_fn", "constraints": []}
    sets = [trial(0, 1.0, x=0), trial(1, 2.0, x=10), trial(2, 4.0, x=100),
            trial(3, 8.0, x=5, branch="b")]
    scores = _score(sets, space, radius=0.1, prior=0.0)  # range 0..100 seen: radius 10 units
    assert scores[0].neighbours == 0  # 0 and 10: exactly on the radius
    assert scores[3].neighbours == 0  # other names: another branch of the space
    assert _score(sets, space, radius=0.2, prior=0.0)[0].smoothed == pytest.approx(
        (1.0 + 0.75 * 2.0) / 1.75)


def test_few_neighbours_are_well_defined_and_a_lone_spike_is_shrunk_to_the_median():
    space = space_of(x=Int(0, 100))
    alone = _score([trial(0, 3.0, x=10)], space)
    assert alone[0].smoothed == 3.0  # one set: its own value (the median is itself)
    sets = [trial(0, 10.0, x=0), trial(1, 1.0, x=50), trial(2, 1.0, x=52), trial(3, 2.0, x=90)]
    scores = _score(sets, space, radius=0.1, prior=1.0)
    median = float(np.median([10.0, 1.0, 1.0, 2.0]))
    assert scores[0].smoothed == pytest.approx((10.0 + median) / 2)
    assert scores[3].smoothed == pytest.approx((2.0 + median) / 2)


def test_plateau_prefers_a_broad_ridge_to_a_sharp_peak():
    space = space_of(x=Int(0, 100))
    rng = random.Random(0)
    sets = [trial(0, 4.0, x=20)]  # the peak; its neighbours are poor
    sets += [trial(n, rng.uniform(-0.5, 0.5), x=x) for n, x in enumerate([14, 17, 23, 26], 1)]
    sets += [trial(n, 2.0 + rng.uniform(-0.2, 0.2), x=x)
             for n, x in enumerate(range(60, 80, 3), 5)]
    best = choose(sets, "maximize", 3, Best(), space)
    plateau = choose(sets, "maximize", 3, Plateau(), space)
    assert best.ranked[0].params == {"x": 20}
    assert 60 <= plateau.ranked[0].params["x"] < 80
    assert plateau.scores[plateau.ranked[0].number].neighbours >= 2
    # minimizing the negated values gives the same choice
    negated = [StoredTrial(t.number, t.state, -t.value, t.record) for t in sets]
    assert (choose(negated, "minimize", 3, Plateau(), space).ranked[0].params
            == plateau.ranked[0].params)


def test_plateau_is_deterministic_and_ties_go_to_the_earlier_trial():
    space = space_of(x=Int(0, 100))
    # two identical plateaus far apart: equal scores, trial 3 comes before trial 7
    sets = [trial(7, 1.0, x=20), trial(8, 1.0, x=22), trial(3, 1.0, x=80), trial(4, 1.0, x=82),
            trial(5, 1.0, x=50)]
    firsts = set()
    for seed in range(20):
        shuffled = sets[:]
        random.Random(seed).shuffle(shuffled)
        choice = choose(shuffled, "maximize", 2, Plateau(), space)
        firsts.add((choice.ranked[0].number, choice.ranked[1].number))
    assert firsts == {(3, 4)}


def test_plateau_uses_one_trial_per_distinct_set():
    space = space_of(x=Int(0, 10))
    sets = [trial(0, 1.0, x=5), trial(1, 1.0, x=5), trial(2, 1.0, x=5), trial(3, 3.0, x=0)]
    choice = choose(sets, "maximize", 5, Plateau(radius=0.1, prior=0.0), space)
    assert [t.number for t in choice.ranked] == [3, 0]  # duplicates of x=5 count once


# --- top_k_mean: averaging and snapping -----------------------------------------------------


def test_numbers_are_averaged_and_put_on_their_grid_with_their_type():
    space = space_of(fast=Int(5, 50), slow=Int(20, 200, step=5), w=Float(0.0, 1.0),
                     q=Float(0.0, 1.0, step=0.25))
    top = [trial(0, 3.0, fast=10, slow=50, w=0.25, q=0.25),
           trial(1, 2.0, fast=11, slow=55, w=0.5, q=0.5)]
    averaged = average_params(top, space)
    # 10.5 -> 11 (halves up); 52.5 is 6.5 steps from 20 -> 7 steps -> 55; 0.375 stays;
    # 0.375 is 1.5 steps of 0.25 -> 2 steps -> 0.5
    assert averaged == {"fast": 11, "slow": 55, "w": 0.375, "q": 0.5}
    assert [type(v) for v in averaged.values()] == [int, int, float, float]
    assert type(average_params([trial(0, 1.0, w=1.0), trial(1, 1.0, w=0.0)],
                               space_of(w=Float(0.0, 1.0)))["w"]) is float


def test_values_are_clipped_to_the_range_and_the_last_grid_point():
    space = space_of(x=Int(0, 12, step=5), f=Float(0.0, 1.0, step=0.3))
    # off-grid values (a space changed by hand) still come back on the grid, inside it
    averaged = average_params([trial(0, 1.0, x=12, f=0.99), trial(1, 1.0, x=12, f=0.99)],
                              space)
    assert averaged == {"x": 10, "f": pytest.approx(0.9)}


def test_log_parameters_are_averaged_geometrically():
    space = space_of(n=Int(1, 10_000, log=True), rate=Float(1e-5, 1.0, log=True))
    averaged = average_params([trial(0, 1.0, n=10, rate=1e-4), trial(1, 1.0, n=1000,
                                                                      rate=1e-2)], space)
    assert averaged["n"] == 100  # the arithmetic mean would be 505
    assert averaged["rate"] == pytest.approx(1e-3)


def test_a_grid_point_is_the_float_optuna_gives_it():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = set()
    for _ in range(60):
        asked = study.ask()
        values.add(asked.suggest_float("q", 0.1, 0.9, step=0.1))
        study.tell(asked, 0.0)
    space = space_of(q=Float(0.1, 0.9, step=0.1))
    for value in values:  # the average of a set with itself is the very same float
        again = average_params([trial(0, 1.0, q=value), trial(1, 1.0, q=value)], space)["q"]
        assert again == value and again.hex() == value.hex()


def test_categoricals_take_the_most_frequent_value_ties_to_the_better_set():
    space = space_of(side=Categorical(["long", "short", "both"]), lag=Fixed(2))
    assert average_params([trial(0, 3.0, side="short", lag=2), trial(1, 2.0, side="both", lag=2)],
                          space) == {"side": "short", "lag": 2}
    assert average_params([trial(0, 3.0, side="short", lag=2), trial(1, 2.0, side="both", lag=2),
                           trial(2, 1.0, side="both", lag=2)], space)["side"] == "both"
    # booleans are categorical even in a define-by-run space; True is not 1
    dbr = {"define_by_run": "f", "constraints": []}
    assert average_params([trial(0, 1.0, on=True), trial(1, 1.0, on=False),
                           trial(2, 1.0, on=False)], dbr) == {"on": False}


def test_a_define_by_run_average_keeps_the_best_sets_branch():
    dbr = {"define_by_run": "f", "constraints": []}
    top = [trial(0, 3.0, model="a", x=10), trial(1, 2.0, model="b", y=1.5),
           trial(2, 1.0, model="a", x=13)]
    assert average_params(top, dbr) == {"model": "a", "x": 12}  # 11.5 -> 12


def test_top_k_mean_averages_k_sets_and_judges_top_k():
    space = space_of(x=Int(0, 100))
    trials = [trial(n, float(v), x=x) for n, (v, x) in enumerate(
        [(5, 10), (4, 20), (3, 30), (2, 40), (1, 90)])]
    choice = choose(trials, "maximize", 2, TopKMean(), space)
    assert choice.average == {"x": 15} and [t.number for t in choice.averaged] == [0, 1]
    assert [t.number for t in choice.ranked] == [0, 1]
    choice = choose(trials, "maximize", 2, TopKMean(k=4), space)
    assert choice.average == {"x": 25} and len(choice.ranked) == 2


# --- the rules themselves ------------------------------------------------------------------


def test_rules_by_name_object_and_json():
    assert as_rule("best") == Best()
    assert as_rule("plateau") == Plateau(radius=0.1, prior=1.0)
    assert as_rule(Plateau(radius=0.3)) == Plateau(0.3)
    assert as_rule("top_k_mean") == TopKMean()
    for rule in (Best(), Plateau(0.25, 0.5), TopKMean(), TopKMean(k=4)):
        stored = json.loads(json.dumps(rule.to_json()))
        assert rule_from_json(stored) == rule
    assert rule_from_json(None) == Best()
    assert foldwise.Plateau is Plateau and foldwise.TopKMean is TopKMean
    assert Plateau().label() == "plateau(radius=0.1, prior=1)"
    assert TopKMean().label(top_k=5) == "top_k_mean(k=5)"


@pytest.mark.parametrize(("value", "words"), [
    ("plateu", "unknown select rule 'plateu'. Did you mean 'plateau'? The rules are: 'best', "
               "'plateau', 'top_k_mean'"),
    ("median", "The rules are: 'best', 'plateau', 'top_k_mean'"),
    (3, "select must be a rule name ('best', 'plateau', 'top_k_mean')"),
    ({"rule": "plateau", "width": 2}, "has no setting 'width'; its settings are: prior, radius"),
])
def test_unknown_rules_name_the_valid_ones(value, words):
    with pytest.raises(OptimizationError) as info:
        as_rule(value)
    assert words in str(info.value)


@pytest.mark.parametrize(("build", "words"), [
    (lambda: Plateau(radius=0), "Plateau radius must be a finite number > 0, got 0"),
    (lambda: Plateau(prior=-1), "Plateau prior must be a finite number >= 0, got -1"),
    (lambda: Plateau(radius=math.inf), "radius must be a finite number"),
    (lambda: TopKMean(k=0), "TopKMean k must be None (the study's top_k) or an integer >= 1"),
])
def test_bad_rule_settings_are_refused(build, words):
    with pytest.raises(OptimizationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build()


# --- the rule in the records ----------------------------------------------------------------


def _study(select=None, selections=None, trials=()):
    manifest = StudyManifest(
        mode="walk_forward",
        data=DataSummary("ab" * 16, 100, 1, "2020-01-01T00:00:00", "2020-05-01T00:00:00"),
        splitter={"repr": "WalkForward(train=50, test=10)", "config": {}, "fold_set_id": "f"},
        folds=(FoldWindow(0, "c" * 32, ((0, 50),), ((50, 60),), "2020-01-01", "2020-02-19",
                          "2020-02-20", "2020-02-29"),),
        groups=None, strategy=StrategyIdentity("sma", "d" * 32, True, None), metric="sharpe",
        direction="maximize", space=space_of(x=Int(0, 100)), settings=BacktestSettings(),
        top_k=2, **({} if select is None else {"select": select}))
    return StudyRecord("s", manifest, {0: tuple(trials)}, selections=selections or {})


def _evaluated(number, value, x):
    evaluation = Evaluation(train={"sharpe": value}, test={"sharpe": -value},
                            runs={"full": f"{x:032d}"})
    return StoredTrial(number, TrialState.COMPLETE, value,
                       TrialRecord(params={"x": x}, evaluations={0: evaluation}))


def test_a_manifest_without_a_rule_reads_as_best():
    stored = _study().manifest.to_json()
    del stored["select"]  # as written before rules existed
    manifest = StudyManifest.from_json(stored)
    assert manifest.select == {"rule": "best"}
    record = fold_records(StudyRecord("s", manifest, {0: (_evaluated(0, 1.0, 5),)}))[0]
    assert (record.rule, record.rule_label, record.best.trial) == (Best(), "best", 0)


def test_the_fold_record_uses_a_stored_average_only_when_it_is_the_current_one():
    trials = [_evaluated(0, 2.0, 10), _evaluated(1, 1.0, 20), _evaluated(2, 0.5, 90)]
    average = Evaluation(train={"sharpe": 1.7}, test={"sharpe": 0.9}, runs={"full": "e" * 32})
    stored = SelectionRecord({"rule": "top_k_mean", "k": None}, {"x": 15}, (0, 1), average)
    rule = TopKMean().to_json()
    record = fold_records(_study(rule, {0: stored}, trials))[0]
    assert record.best.params == {"x": 15} and record.best.trial is None
    assert record.best.evaluation == average and record.best.averaged == (0, 1)
    assert [s.params["x"] for s in record.selected] == [15, 10, 20]
    assert [s.rank for s in record.selected] == [0, 1, 2] and record.note is None
    # after a new best trial the average is another set: the stored one is stale
    newer = [*trials, _evaluated(3, 3.0, 40)]
    record = fold_records(_study(rule, {0: stored}, newer))[0]
    assert record.best.params == {"x": 40}
    assert "has not been evaluated yet" in record.note
    # a failed average: the best set stands in, and the note says why
    failed = SelectionRecord(rule, {"x": 15}, (0, 1), None, "violates 'x != 15'")
    record = fold_records(_study(rule, {0: failed}, trials))[0]
    assert record.best.params == {"x": 10}
    assert "(x=15) is not used: violates 'x != 15'" in record.note
    # an average equal to an evaluated set is that trial's set, listed once
    same = SelectionRecord(rule, {"x": 20}, (0, 1), average)
    trials[1] = _evaluated(1, 1.0, 30)
    trials.append(_evaluated(5, 0.1, 20))
    record = fold_records(_study({"rule": "top_k_mean", "k": 2}, {0: same}, trials))[0]
    assert (record.best.params, record.best.trial) == ({"x": 20}, 5)
    assert [s.params["x"] for s in record.selected] == [20, 10, 30]


def test_plateau_fold_records_carry_the_smoothed_value():
    trials = [_evaluated(0, 5.0, 10), _evaluated(1, 2.0, 60), _evaluated(2, 2.1, 62),
              _evaluated(3, 0.0, 12), _evaluated(4, 0.0, 8)]
    record = fold_records(_study(Plateau(prior=0.0).to_json(), trials=trials))[0]
    assert record.rule_label == "plateau(radius=0.1, prior=0)"
    assert record.best.params == {"x": 62}  # the spike at 10 scores (5 + 0 + 0) / 2.92
    w = 1 - 0.2 ** 2
    assert record.best.smoothed == pytest.approx((2.1 + w * 2.0) / (1 + w))
    assert record.best.neighbours == 1
    assert record.best.train == {"sharpe": 2.1}


def _naive_scores(sets, radius, prior):
    """The plateau scores by the definition, pair by pair, for the space of the test
    below: n an Int(1, 60) (radius at least two steps), rate a log Float(1e-4, 1e-1),
    side a categorical."""
    r_n = max(radius * 59, 2.0)
    r_rate = radius * math.log(1e-1 / 1e-4)
    values = [t.value for t in sets]
    median = float(np.median(values))
    scores = []
    for a in sets:
        total, weighted, count = 0.0, 0.0, -1
        for b in sets:
            if a.params["side"] != b.params["side"]:
                continue
            d2 = (((a.params["n"] - b.params["n"]) / r_n) ** 2
                  + (math.log(a.params["rate"] / b.params["rate"]) / r_rate) ** 2)
            if d2 < 1:
                total += 1 - d2
                weighted += (1 - d2) * b.value
                count += 1
        scores.append(((weighted + prior * median) / (total + prior), count))
    return scores


@given(st.lists(st.tuples(st.integers(1, 60), st.sampled_from([1e-4, 3e-4, 1e-3, 2e-3, 5e-2]),
                          st.sampled_from(["long", "short"]), st.floats(-3, 3)),
                min_size=1, max_size=40, unique_by=lambda row: row[:3]),
       st.sampled_from([0.05, 0.1, 0.3]), st.sampled_from([0.0, 1.0, 2.5]))
def test_plateau_scores_equal_the_definition_pair_by_pair(rows, radius, prior):
    space = space_of(n=Int(1, 60), rate=Float(1e-4, 1e-1, log=True),
                     side=Categorical(["long", "short"]))
    sets = [trial(k, value, n=n, rate=rate, side=side)
            for k, (n, rate, side, value) in enumerate(rows)]
    found = plateau_scores(sets, space, radius=radius, prior=prior)
    for score, (expected, count) in zip(found, _naive_scores(sets, radius, prior),
                                        strict=True):
        assert score.smoothed == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert score.neighbours == count
