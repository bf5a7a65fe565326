"""foldwise on a real cluster: a dask.distributed LocalCluster of two worker processes on
loopback runs optimize's folds and trials (joblib's "dask" backend), the studies in Optuna's
RDB storage on a real PostgreSQL server, the cache index on the same server
(PostgresIndex) and the artifacts in a directory the workers share."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import joblib
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import foldwise
from foldwise.cache import PostgresIndex
from foldwise.errors import StorageNotFoundError
from foldwise.records import FailureKind, read_trial, trial_budget
from foldwise.storage import WORKER_ATTR, open_storage, parse_storage

from ._cluster_support import local_cluster, set_worker_env, worker_pids
from ._object_store import CREDENTIALS
from ._optimize_support import COUNT_ENV, SLEEP_ENV, counted_sma, executions
from ._postgres import PostgresServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# The demo study (foldwise demo: SMA crossover on GOOG), smaller: 1-year test windows.
SPACE = {"fast": foldwise.Int(5, 50), "slow": foldwise.Int(20, 200)}
COSTS = foldwise.Costs(commission_bps=1.0, slippage_bps=2.0)
SPLITTER = foldwise.WalkForward(train="2Y", test="1Y")
N_TRIALS = 6


@pytest.fixture(scope="module")
def client():
    with local_cluster(2) as connected:
        yield connected


@pytest.fixture
def counted(client, tmp_path, monkeypatch):
    """The execution log of counted_sma, seen by this process and every worker (also one
    the nanny restarts: it takes this process's environment)."""
    count = tmp_path / "executions.txt"
    variables = {COUNT_ENV: str(count), SLEEP_ENV: None}
    monkeypatch.setenv(COUNT_ENV, str(count))
    monkeypatch.delenv(SLEEP_ENV, raising=False)
    set_worker_env(client, variables)
    yield count
    set_worker_env(client, {COUNT_ENV: None, SLEEP_ENV: None})


def _shared_cache(tmp_path: Path, url: str, artifacts: str | None = None
                  ) -> foldwise.BacktestCache:
    # every run keeps its arrays: reading the result back executes nothing, so the
    # execution log holds exactly what the workers ran
    return foldwise.BacktestCache(tmp_path / "shared", backend=PostgresIndex(url),
                                  keep_arrays="always", artifact_location=artifacts)


def _trials(url: str, study: str) -> dict[int, list[optuna.trial.FrozenTrial]]:
    try:
        storage = open_storage(parse_storage(url), read_only=True)
    except StorageNotFoundError:  # no study there yet
        return {}
    found = {}
    for name in optuna.get_all_study_names(storage):
        if name.startswith(f"{study}/fold-"):
            found[int(name.rsplit("-", 1)[1])] = optuna.load_study(
                study_name=name, storage=storage).get_trials(deepcopy=False)
    return found


@pytest.mark.parametrize("artifacts", ["directory", "s3"])
def test_the_demo_study_on_the_cluster_equals_the_local_run_and_runs_each_set_once(
        client, counted, postgres_server: PostgresServer, tmp_path, artifacts, request):
    """The arrays in the directory the workers share, or in an S3 bucket (moto on
    loopback) by URL: the same code either way."""
    url = postgres_server.create_database(f"demo_cluster_{artifacts}")
    location = (request.getfixturevalue("s3_server").url(f"cluster-{os.getpid()}")
                if artifacts == "s3" else None)
    if location is not None:  # the workers started before the fixture set the credentials
        set_worker_env(client, {name: os.environ[name] for name in CREDENTIALS})
    local = foldwise.optimize(
        counted_sma, foldwise.datasets.load_goog(), SPACE, SPLITTER, constraints="fast < slow",
        n_trials=N_TRIALS, study="demo", storage=str(tmp_path / "local.journal"),
        cache=tmp_path / "local", seed=0, costs=COSTS, show_progress=False,
        check_lookahead=False)
    counted.unlink()
    with joblib.parallel_config(backend="dask"):
        remote = foldwise.optimize(
            counted_sma, foldwise.datasets.load_goog(), SPACE, SPLITTER,
            constraints="fast < slow", n_trials=N_TRIALS, study="demo", storage=url,
            cache=(cache := _shared_cache(tmp_path, url, location)), seed=0, costs=COSTS,
            n_jobs=2, show_progress=False, check_lookahead=False)
    cache.close()
    # the same fold table: each fold runs whole on one worker with its sequential seed
    compared = [c for c in local.folds.columns if c != "cache_hits"]
    pd.testing.assert_frame_equal(remote.folds[compared], local.folds[compared])
    assert (remote.folds["trials_complete"] == N_TRIALS).all()
    # every distinct parameter set executed once across the workers (none in this process:
    # the caller only plans and reads)
    ran = Counter(executions(counted))
    evaluated = {(t["params"]["fast"], t["params"]["slow"])
                 for _, t in remote.trials.iterrows() if t["state"] == "COMPLETE"}
    assert set(ran) == evaluated and max(ran.values()) == 1
    # run by the cluster's two worker processes, not here
    workers = {t.user_attrs[WORKER_ATTR]["pid"] for trials in _trials(url, "demo").values()
               for t in trials}
    assert workers <= set(worker_pids(client).values()) and len(workers) == 2
    assert os.getpid() not in workers
    # the shared cache index holds each run once, and this process reads it back
    cache = _shared_cache(tmp_path, url, location)
    stats = cache.stats()
    assert stats.full_runs == len(evaluated) + 1  # and the equal-weight benchmark
    assert cache.verify().ok
    if location is not None:  # every array went to the bucket, none to a local directory
        assert all(r.artifact.startswith("artifacts/") for r in cache.index.rows() if r.artifact)
        assert not (tmp_path / "shared" / "cache" / "packs").exists()
    again = foldwise.load_result("demo", storage=url, cache=cache)
    pd.testing.assert_frame_equal(again.folds[compared], local.folds[compared])
    assert again.runs_rebuilt == 0
    assert Counter(executions(counted)) == ran  # reading ran nothing
    cache.close()


def test_one_fold_on_two_workers_keeps_the_budget_exact_and_runs_each_set_once(
        client, counted, postgres_server: PostgresServer, tmp_path, monkeypatch):
    """Fewer folds than workers: the trials of one fold run on both workers at once."""
    url = postgres_server.create_database("one_fold")
    set_worker_env(client, {SLEEP_ENV: "0.05"})  # backtests long enough to overlap
    monkeypatch.setenv(SLEEP_ENV, "0.05")
    splitter = foldwise.WalkForward(train=1500, test=500)
    data = foldwise.datasets.load_goog()
    assert len(splitter.folds(data)) == 1
    n_trials = 16
    cache = _shared_cache(tmp_path, url)
    with joblib.parallel_config(backend="dask"):
        result = foldwise.optimize(
            counted_sma, data, {"fast": foldwise.Int(5, 12), "slow": foldwise.Int(20, 24)},
            splitter, n_trials=n_trials, study="one-fold", storage=url, cache=cache, seed=0, costs=COSTS, n_jobs=2,
            sampler="random", show_progress=False, check_lookahead=False)
    [trials] = _trials(url, "one-fold").values()
    assert sum(trial_budget(t) for t in trials) == n_trials
    assert not any(t.state == TrialState.RUNNING for t in trials)
    assert result.folds["trials_complete"].tolist() == [n_trials]
    workers = {t.user_attrs[WORKER_ATTR]["pid"] for t in trials if trial_budget(t)}
    assert len(workers) == 2  # both workers ran trials of the one fold
    # a 40-set space and 16 random trials: repeats are cache hits, each set ran once
    ran = Counter(executions(counted))
    complete = {(t.params["fast"], t.params["slow"]) for t in trials
                if t.state == TrialState.COMPLETE}
    assert set(ran) == complete and max(ran.values()) == 1
    cache.close()


def test_a_worker_killed_mid_study_costs_no_completed_trial_and_the_budget_stays_exact(
        client, counted, postgres_server: PostgresServer, tmp_path):
    url = postgres_server.create_database("killed_worker")
    cache = _shared_cache(tmp_path, url)
    pids = worker_pids(client)
    victim_address, victim = sorted(pids.items())[0]
    killed: dict[str, object] = {}
    errors: list[BaseException] = []

    def kill_when_stuck() -> None:
        """After a few trials, make the victim's next backtest hang; once its trial has run
        for a second, kill -9 the victim and note what was complete then."""
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = [t for ts in _trials(url, "killed").values() for t in ts
                        if t.state == TrialState.COMPLETE]
                if len(done) >= 4:
                    break
                time.sleep(0.2)
            set_worker_env(client, {SLEEP_ENV: "600"}, workers=[victim_address])
            while time.monotonic() < deadline:
                stuck = [(fold, t) for fold, ts in _trials(url, "killed").items() for t in ts
                         if t.state == TrialState.RUNNING
                         and (t.user_attrs.get(WORKER_ATTR) or {}).get("pid") == victim
                         and time.time() - t.datetime_start.timestamp() > 1.0]
                if stuck:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the victim's trial never hung")
            os.kill(victim, signal.SIGKILL)
            killed["trial"] = (stuck[0][0], stuck[0][1].number)
            killed["complete"] = {(fold, t.number): (t.params, t.value)
                                  for fold, ts in _trials(url, "killed").items() for t in ts
                                  if t.state == TrialState.COMPLETE}
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    killer = threading.Thread(target=kill_when_stuck)
    killer.start()
    try:
        with joblib.parallel_config(backend="dask"):
            result = foldwise.optimize(
                counted_sma, foldwise.datasets.load_goog(), SPACE, SPLITTER,
                constraints="fast < slow", n_trials=8, study="killed", storage=url,
                cache=cache, seed=0, costs=COSTS, n_jobs=2,
                show_progress=False, check_lookahead=False)
    finally:
        killer.join()
    assert errors == []
    after = _trials(url, "killed")
    assert len(after) == len(SPLITTER.folds(foldwise.datasets.load_goog()))
    for trials in after.values():  # exactly n_trials per fold, nothing left running
        assert sum(trial_budget(t) for t in trials) == 8
        assert not any(t.state == TrialState.RUNNING for t in trials)
    now = {(fold, t.number): (t.params, t.value) for fold, ts in after.items() for t in ts
           if t.state == TrialState.COMPLETE}
    lost = {k: v for k, v in killed["complete"].items() if now.get(k) != v}
    assert not lost, lost
    # the victim's hung trial failed as a dead worker's, its place run again
    died = [read_trial(t).record.failure for fold, ts in after.items() for t in ts
            if (fold, t.number) == killed["trial"]]
    assert died and died[0] is not None and died[0].kind == FailureKind.WORKER_DIED
    assert f"'pid': {victim}" in died[0].message
    assert result.folds["trials_rerun"].sum() >= 1
    assert (result.folds["trials_complete"] == 8).all()
    assert victim not in worker_pids(client).values()  # the nanny started a new worker
    cache.close()
