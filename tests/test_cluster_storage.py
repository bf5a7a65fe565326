"""Optuna's RDB storage on a real PostgreSQL server as foldwise opens it: URLs, passwords,
heartbeats of workers on other hosts, and a database server restarted mid-study."""

from __future__ import annotations

import gc
import threading
import time

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import foldwise
from foldwise.cache import PostgresIndex
from foldwise.errors import MachineFaultError
from foldwise.records import FailureKind, read_trial, trial_budget
from foldwise.storage import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    WORKER_ATTR,
    fail_stale_trials,
    heartbeat_interval,
    open_storage,
    parse_storage,
    record_heartbeat,
    trial_id,
)

from ._optimize_support import SLEEP_ENV, counted_sma
from ._postgres import PostgresServer, ServerUnavailable, start_server

pytestmark = pytest.mark.cluster


def test_both_spellings_of_the_url_open_and_the_password_is_never_shown(
        postgres_server: PostgresServer):
    url = postgres_server.create_database("spellings").replace(
        "foldwise@", "foldwise:hunter2@")
    for given in (url, url.replace("postgresql+psycopg://", "postgresql://")):
        spec = parse_storage(given)
        assert spec.kind == "rdb" and "hunter2" not in str(spec) and "***" in str(spec)
        storage = open_storage(spec)
        optuna.create_study(study_name=given[:20], storage=storage)
        assert given[:20] in optuna.get_all_study_names(storage)
        # trials record heartbeats; a reader records none
        assert heartbeat_interval(storage) == HEARTBEAT_INTERVAL
        assert storage.grace_period == GRACE_PERIOD == 2 * HEARTBEAT_INTERVAL
        assert heartbeat_interval(open_storage(spec, read_only=True)) is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with")
def test_a_worker_of_another_host_whose_heartbeat_stops_is_failed_as_dead(
        postgres_server: PostgresServer):
    url = postgres_server.create_database("heartbeats")
    storage = RDBStorage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="beats")
    beating, stale = study.ask(), study.ask()
    for trial, pid in ((beating, 11), (stale, 12)):
        trial.suggest_int("x", 0, 9)
        trial.set_user_attr(WORKER_ATTR, {"host": "another-host", "pid": pid})
    record_heartbeat(storage, trial_id(stale))
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        record_heartbeat(storage, trial_id(beating))
        time.sleep(0.2)
    assert fail_stale_trials(study) == 1
    assert fail_stale_trials(study) == 0  # already failed
    first, second = study.get_trials(deepcopy=False)
    assert first.state == TrialState.RUNNING and second.state == TrialState.FAIL
    failure = read_trial(second).record.failure
    assert failure is not None and failure.kind == FailureKind.WORKER_DIED
    assert "another-host" in failure.message and not trial_budget(second)


@pytest.fixture
def own_server():
    """A server of this test's own, to be restarted under a running study."""
    try:
        server = start_server()
    except ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL server can start here: {exc}")
    try:
        yield server
    finally:
        gc.collect()  # the test's caches write their last-used times while it runs
        server.remove()


@pytest.mark.slow
def test_a_database_restart_stops_the_run_as_a_fault_and_the_same_call_resumes(
        own_server: PostgresServer, tmp_path, monkeypatch):
    url = own_server.create_database("restart", durable=True)  # its commits survive
    monkeypatch.setenv(SLEEP_ENV, "0.3")  # the study lasts long enough to be interrupted
    data = foldwise.datasets.load_goog()
    splitter = foldwise.WalkForward(train="3Y", test="2Y")
    n_trials = 10

    def run() -> foldwise.WalkForwardResult:
        cache = foldwise.BacktestCache(tmp_path / "fw", backend=PostgresIndex(url))
        try:
            return foldwise.optimize(
                counted_sma, data, {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)},
                splitter, n_trials=n_trials, study="restart", storage=url, cache=cache, seed=0,
                show_progress=False, check_lookahead=False)
        finally:
            cache.close()

    def complete() -> dict[tuple[str, int], object]:
        storage = open_storage(parse_storage(url), read_only=True)
        return {(name, t.number): t.value for name in optuna.get_all_study_names(storage)
                if "/fold-" in name
                for t in optuna.load_study(study_name=name, storage=storage).get_trials(
                    deepcopy=False) if t.state == TrialState.COMPLETE}

    complete_when_stopped: dict[tuple[str, int], object] = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                found = complete()
            except Exception:  # no study yet, or one being created
                found = {}
            if len(found) >= 4:
                complete_when_stopped.update(found)
                own_server.stop("immediate")
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=watch)
    stopper.start()
    with pytest.raises(MachineFaultError, match="fault of the machine"):
        run()
    stopper.join()
    assert complete_when_stopped, "the server was never stopped"
    own_server.start()
    result = run()  # the same call
    assert (result.folds["trials_complete"] == n_trials).all()
    after = complete()
    assert all(after.get(key) == value for key, value in complete_when_stopped.items())
    storage = open_storage(parse_storage(url), read_only=True)
    folds = [name for name in optuna.get_all_study_names(storage) if "/fold-" in name]
    assert len(folds) == len(splitter.folds(data))
    for name in folds:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        assert sum(trial_budget(t) for t in trials) == n_trials
        assert not any(t.state == TrialState.RUNNING for t in trials)
