"""Typed study records: JSON round trips, format 1 studies still load, newer formats refused."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st
from optuna.trial import TrialState

import foldwise
from foldwise.backtest import BacktestSettings, Costs
from foldwise.errors import OptimizationError
from foldwise.examples import sma_crossover
from foldwise.records import (
    FORMAT,
    DataSummary,
    Evaluation,
    Failure,
    FailureKind,
    FoldWindow,
    StoredTrial,
    StrategyIdentity,
    StudyManifest,
    TrialRecord,
    trial_budget,
)
from foldwise.strategy import Strategy

FORMAT1 = Path(__file__).parent / "data" / "format1"

metric_values = st.dictionaries(st.sampled_from(["sharpe", "annual_return", "n_trades"]),
                                st.floats(allow_nan=False, allow_infinity=False), max_size=3)
evaluations = st.builds(
    Evaluation, train=st.none() | metric_values, test=st.none() | metric_values,
    runs=st.dictionaries(st.sampled_from(["full", "train", "test"]),
                         st.text("0123456789abcdef", min_size=32, max_size=32), max_size=2),
    offset=st.integers(0, 10_000), backtests=st.integers(0, 3))
failures = st.builds(Failure, kind=st.sampled_from(list(FailureKind)), type=st.text(max_size=20),
                     message=st.text(max_size=50), traceback=st.text(max_size=50))
records = st.builds(
    TrialRecord,
    params=st.dictionaries(st.sampled_from(["fast", "slow", "kind"]),
                           st.integers(-5, 500) | st.floats(allow_nan=False, allow_infinity=False)
                           | st.sampled_from(["a", "b"]) | st.booleans(), max_size=3),
    evaluations=st.dictionaries(st.integers(0, 30), evaluations, max_size=3),
    failure=st.none() | failures, infeasible=st.none() | st.text(max_size=20))


@given(records)
def test_a_trial_record_survives_its_json_round_trip(record):
    text = json.dumps(record.to_json(), allow_nan=False)  # what the storage keeps
    again = TrialRecord.from_json(json.loads(text))
    assert again == record
    assert again.backtests == sum(e.backtests for e in record.evaluations.values())


def _manifest(**changes) -> StudyManifest:
    fields = dict(
        mode="walk_forward",
        data=DataSummary("ab" * 16, 100, 2, "2020-01-01T00:00:00", "2020-05-01T00:00:00"),
        splitter={"repr": "WalkForward(train=50, test=10)", "config": {"train": 50},
                  "fold_set_id": "f" * 32},
        folds=(FoldWindow(0, "c" * 32, ((0, 50),), ((50, 60),), "2020-01-01", "2020-02-19",
                          "2020-02-20", "2020-02-29"),),
        groups=None, strategy=StrategyIdentity("sma", "d" * 32, True, "pkg.mod:sma"),
        metric="sharpe", direction="maximize", space={"fast": {"type": "int"}},
        settings=BacktestSettings(costs=Costs(1, 2), delay=1), top_k=3)
    fields.update(changes)
    return StudyManifest(**fields)


def test_a_manifest_survives_its_json_round_trip():
    manifest = _manifest(groups=((0, 50), (50, 100)), benchmark="e" * 32, warmup=20)
    assert StudyManifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest


@pytest.mark.parametrize(("change", "words"), [
    ({"metric": "sortino"}, "metric changed"),
    ({"settings": BacktestSettings(costs=5)}, "settings changed"),
    ({"strategy": StrategyIdentity("sma", "9" * 32, True)}, "code of strategy 'sma'"),
    ({"data": DataSummary("00" * 16, 100, 2, "2020-01-01", "2020-05-01")}, "data changed"),
])
def test_manifest_differences_name_each_change(change, words):
    assert any(words in text for text in _manifest().differences(_manifest(**change)))


def test_what_does_not_identify_a_study_is_no_difference():
    moved = StrategyIdentity("sma", "d" * 32, True, None)  # same code, no import path
    assert _manifest().differences(_manifest(top_k=9, benchmark="x", strategy=moved)) == []


def test_a_newer_format_is_refused_with_the_fix():
    stored = {**TrialRecord().to_json(), "format": FORMAT + 1}
    with pytest.raises(OptimizationError, match="upgrade foldwise"):
        TrialRecord.from_json(stored)
    with pytest.raises(OptimizationError, match="upgrade foldwise"):
        StudyManifest.from_json({**_manifest().to_json(), "format": FORMAT + 1})


def test_a_stored_trial_survives_its_json_round_trip():
    trial = StoredTrial(4, TrialState.COMPLETE, 1.5, TrialRecord(params={"fast": 5}))
    assert StoredTrial.from_json(json.loads(json.dumps(trial.to_json()))) == trial


@pytest.mark.parametrize(("kind", "counts"), [
    (FailureKind.STRATEGY, True), (FailureKind.NON_FINITE, True),
    (FailureKind.WORKER_DIED, False), (FailureKind.INTERRUPTED, False),
    (FailureKind.FAULT, False)])
def test_only_the_strategys_own_failures_use_the_budget(kind, counts):
    study = optuna.create_study()
    trial = study.ask()
    failure = Failure(kind, "E", "m")
    trial.set_user_attr("foldwise_trial", TrialRecord(failure=failure).to_json())
    study.tell(trial, state=TrialState.FAIL)
    assert trial_budget(study.trials[0]) is counts


def test_a_format_1_study_still_loads(tmp_path):
    """Studies written by foldwise 0.1 (tests/data/format1, made with that version) load
    with the same chosen parameters and metrics that version reported."""
    journal = tmp_path / "studies.journal"
    shutil.copy(FORMAT1 / "studies.journal", journal)
    expected = json.loads((FORMAT1 / "expected.json").read_text())
    result = foldwise.load_result("wf-v1", storage=f"journal:{journal}",
                                  cache=tmp_path / "cache")
    assert result.best_params == expected["wf-v1"]["params"]
    assert len(result.trials) == expected["wf-v1"]["n_trials"]
    for record, is_sharpe, oos_sharpe in zip(result.fold_records,
                                             expected["wf-v1"]["is_sharpe"],
                                             expected["wf-v1"]["oos_sharpe"], strict=True):
        assert record.best is not None
        assert math.isclose(record.best.train["sharpe"], is_sharpe)
        assert math.isclose(record.best.test["sharpe"], oos_sharpe)
    assert result.manifest.settings.costs.commission_bps == 2.0
    cv = foldwise.load_result("cv-v1", storage=f"journal:{journal}", cache=tmp_path / "cache")
    assert cv.best_params == expected["cv-v1"]["best_params"]
    assert cv.trials["cv_folds"].map(len).eq(3).all()
    # the runs were in the old cache, not this one. A format-1 study stored no import path,
    # and its run keys belong to the previous backtest engine: nothing is re-created from
    # other code; the fold table still shows what the records hold
    with pytest.raises(OptimizationError, match="cannot be imported again.*strategy="):
        _ = result.oos_result
    assert result.folds["dsr"].isna().all()
    assert list(result.folds["params"]) == expected["wf-v1"]["params"]
    # sma_crossover's code has changed since (it reads data.array("close")), so today's is
    # refused by its fingerprint; a strategy carrying the study's fingerprint is still
    # refused by the run key, which includes the engine version
    with pytest.raises(OptimizationError, match="not the code study 'wf-v1' ran"):
        foldwise.load_result("wf-v1", storage=f"journal:{journal}", cache=tmp_path / "cache",
                             strategy=sma_crossover)

    class AsStored(Strategy):
        fingerprint = result.manifest.strategy.fingerprint  # type: ignore[assignment]

    again = foldwise.load_result("wf-v1", storage=f"journal:{journal}", cache=tmp_path / "cache",
                                 strategy=AsStored(sma_crossover.func, name="sma_crossover"),
                                 data=foldwise.datasets.load_goog().islice(0, 800))
    with pytest.raises(OptimizationError, match="gives another key"):
        _ = again.oos_result
