"""The optimizer with real processes: SIGKILL and resume, and parallel workers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from joblib.externals.loky import get_reusable_executor
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

import foldwise
from foldwise.records import FailureKind, read_trial, trial_budget
from foldwise.space import Int
from foldwise.splits import WalkForward
from foldwise.storage import WORKER_ATTR, open_storage, parse_storage

from ._optimize_support import BLOCK_ENV, COUNT_ENV, SLEEP_ENV, counted_sma, executions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 8
N_FOLDS = 6

SCRIPT = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(ROOT)!r})
    import optuna
    import foldwise
    from foldwise.space import Int
    from foldwise.splits import WalkForward
    from tests._optimize_support import counted_sma

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    foldwise.optimize(counted_sma, foldwise.datasets.load_goog(),
                      {{"fast": Int(5, 30), "slow": Int(20, 80, step=5)}},
                      WalkForward(train=500, test=250), constraints="fast < slow",
                      n_trials={N_TRIALS}, study="killme", seed=0, costs=2.0,
                      show_progress=False, check_lookahead=False,
                      # every run keeps its arrays: "executed once" is then exact
                      cache=foldwise.BacktestCache(keep_arrays="always"))
    print("finished")
""")


def completed_trials(root: Path) -> dict[tuple[int, int], tuple[dict, float]]:
    storage = open_storage(parse_storage(str(root / "studies.journal")))
    found = {}
    for fold in range(N_FOLDS):
        try:
            study = optuna.load_study(study_name=f"killme/fold-{fold:02d}", storage=storage)
        except KeyError:
            continue
        for trial in study.get_trials(deepcopy=False):
            if trial.state == TrialState.COMPLETE:
                found[(fold, trial.number)] = (dict(trial.params), trial.value)
    return found


def interrupted_params(root: Path) -> list[dict]:
    """Parameters of the trials whose worker was killed while running them."""
    storage = open_storage(parse_storage(str(root / "studies.journal")))
    found = []
    for fold in range(N_FOLDS):
        study = optuna.load_study(study_name=f"killme/fold-{fold:02d}", storage=storage)
        for trial in study.get_trials(deepcopy=False):
            failure = read_trial(trial).record.failure
            if trial.state == TrialState.FAIL and failure is not None \
                    and failure.kind == FailureKind.WORKER_DIED:
                found.append(dict(trial.params))
    return found


def states(root: Path) -> Counter:
    storage = open_storage(parse_storage(str(root / "studies.journal")))
    counts: Counter = Counter()
    for fold in range(N_FOLDS):
        study = optuna.load_study(study_name=f"killme/fold-{fold:02d}", storage=storage)
        for trial in study.get_trials(deepcopy=False):
            counts[(fold, trial.state.name)] += 1
    return counts


@pytest.fixture
def env(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    variables = {**os.environ, "FOLDWISE_DIR": str(tmp_path / "home"),
                 COUNT_ENV: str(tmp_path / "executions.txt")}
    return tmp_path, script, variables


def start(script: Path, variables: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script)], env=variables,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never reached the blocking execution"
        time.sleep(0.05)


def wait_for_executions(path: str, process: subprocess.Popen, more: int,
                        timeout: float = 180) -> bool:
    """Wait until ``process`` has executed ``more`` backtests beyond those already recorded;
    False if it finished first."""
    target = len(executions(path)) + more
    deadline = time.monotonic() + timeout
    while len(executions(path)) < target:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run executed no new backtest"
        time.sleep(0.01)
    return True


def test_sigkill_mid_trial_then_resume_loses_nothing_and_runs_each_set_once(env):
    tmp_path, script, variables = env
    home = tmp_path / "home"
    marker = tmp_path / "blocked"
    first = start(script, {**variables, BLOCK_ENV: f"20:{marker}"})
    wait_for(marker, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = completed_trials(home)
    assert before, "the first run completed no trial before the kill"
    running = sum(v for (fold, state), v in states(home).items() if state == "RUNNING")
    assert running == 1  # the trial whose backtest was interrupted

    second = start(script, variables)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert "finished" in out

    after = completed_trials(home)
    for key, value in before.items():  # no completed trial lost or changed
        assert after[key] == value
    counts = states(home)
    for fold in range(N_FOLDS):
        assert counts[(fold, "COMPLETE")] == N_TRIALS
        assert counts[(fold, "RUNNING")] == 0
    assert sum(v for (fold, state), v in counts.items() if state == "FAIL") == 1  # worker died
    ran = Counter(executions(variables[COUNT_ENV]))
    assert max(ran.values()) == 1  # every distinct parameter set executed exactly once
    distinct = {(p["fast"], p["slow"]) for p, _ in after.values()}
    assert set(ran) == distinct
    cache = foldwise.BacktestCache(home)
    assert cache.verify().ok


def complete_sequences(root: Path) -> dict[int, list[tuple[dict, float]]]:
    """Per fold, the parameters and value of its COMPLETE trials in the order they ran."""
    found = completed_trials(root)
    return {fold: [found[key] for key in sorted(k for k in found if k[0] == fold)]
            for fold in range(N_FOLDS)}


def test_random_kills_then_resume_completes_the_same_study(env):
    """Killed at random points and resumed, a seeded study ends exactly where the same study
    never interrupted ends: the same trials in the same order, the same chosen parameters."""
    tmp_path, script, variables = env
    home = tmp_path / "home"
    variables = {**variables, SLEEP_ENV: "0.02"}
    rng = random.Random(7)
    kills = 0
    preserved: dict = {}
    for _ in range(3):
        process = start(script, variables)
        # Killed after a random number of new executions, then a random fraction of one:
        # a kill lands mid-study however fast the machine runs (a fixed delay did not).
        if not wait_for_executions(variables[COUNT_ENV], process, rng.randint(1, 8)):
            break
        time.sleep(rng.uniform(0.0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        preserved.update(completed_trials(home))
    final = start(script, variables)
    _out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    after = completed_trials(home)
    for key, value in preserved.items():
        assert after[key] == value
    counts = states(home)
    assert all(counts[(fold, "COMPLETE")] == N_TRIALS for fold in range(N_FOLDS))
    ran = Counter(executions(variables[COUNT_ENV]))
    distinct = {(p["fast"], p["slow"]) for p, _ in after.values()}
    # (a trial killed before its parameters were written has none)
    interrupted = {(p["fast"], p["slow"]) for p in interrupted_params(home) if p}
    assert distinct <= set(ran) <= distinct | interrupted  # a killed trial may have run
    # A kill can cost one execution at most: the set its worker was running (its result
    # not yet stored) is run again if suggested again, or stays an interrupted trial.
    assert sum(ran.values()) <= len(distinct) + kills
    assert foldwise.BacktestCache(home).verify().ok

    calm = tmp_path / "uninterrupted"
    never_killed = start(script, {**variables, "FOLDWISE_DIR": str(calm),
                                  COUNT_ENV: str(tmp_path / "calm.txt")})
    _out, err = never_killed.communicate(timeout=600)
    assert never_killed.returncode == 0, err
    assert kills > 0
    assert complete_sequences(home) == complete_sequences(calm)
    chosen = [foldwise.load_result("killme", storage=str(root / "studies.journal"),
                                   cache=root).best_params for root in (home, calm)]
    assert chosen[0] == chosen[1]


def test_two_worker_processes_share_the_storage_and_the_cache(store_dir, tmp_path, monkeypatch):
    count = tmp_path / "executions.txt"
    monkeypatch.setenv(COUNT_ENV, str(count))
    monkeypatch.setenv(SLEEP_ENV, "0.01")
    monkeypatch.syspath_prepend(str(ROOT))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # joblib reuses worker processes between calls; workers started by an earlier test
    # would not see this test's environment (the execution counter)
    get_reusable_executor().shutdown(wait=True)
    result = foldwise.optimize(
        counted_sma, foldwise.datasets.load_goog(),
        {"fast": Int(5, 30), "slow": Int(20, 80, step=5)}, WalkForward(train=500, test=250),
        constraints="fast < slow", n_trials=N_TRIALS, study="parallel", seed=0,
        costs=2.0, n_jobs=2, show_progress=False, check_lookahead=False,
        cache=foldwise.BacktestCache(keep_arrays="always"))  # "run once" is then exact
    folds = result.folds
    assert (folds["trials_complete"] == N_TRIALS).all()
    assert (folds["trials_failed"] == 0).all()
    ran = Counter(executions(count))
    assert max(ran.values()) == 1  # the run lock keeps simultaneous misses to one backtest
    sequential = foldwise.optimize(
        counted_sma, foldwise.datasets.load_goog(),
        {"fast": Int(5, 30), "slow": Int(20, 80, step=5)}, WalkForward(train=500, test=250),
        constraints="fast < slow", n_trials=N_TRIALS, study="sequential", seed=0,
        costs=2.0, n_jobs=1, show_progress=False, check_lookahead=False)
    # each fold is run whole by one worker with its sequential seed: the same result
    columns = ["fold", "trial", "state", "value"]
    assert result.trials[columns].equals(sequential.trials[columns])
    assert result.trials["params"].tolist() == sequential.trials["params"].tolist()
    pids = {t.user_attrs["foldwise_worker"]["pid"]
            for f in range(len(folds))
            for t in optuna.load_study(study_name=f"parallel/fold-{f:02d}",
                                       storage=open_storage(parse_storage(result.location))).trials}
    assert len(pids) == 2 and os.getpid() not in pids


def _in_pid_namespace() -> list[str] | None:
    """The command prefix that runs a process as PID 1 of a fresh pid namespace, or None."""
    prefix = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if done.returncode == 0 and done.stdout.strip() == "1" else None


def test_a_restart_as_pid_1_resumes_the_trial_of_a_killed_pid_1(env):
    """Both runs are PID 1 of their own pid namespace, as a container's entrypoint is on
    every start: the restart must see the dead worker's trial as dead, not as its own."""
    prefix = _in_pid_namespace()
    if prefix is None:
        pytest.skip("unshare cannot start a process in a new pid namespace here "
                    "(needs util-linux and the right to create namespaces)")
    tmp_path, script, variables = env
    marker = tmp_path / "blocked"
    first = subprocess.Popen([*prefix, sys.executable, str(script)],
                             env={**variables, BLOCK_ENV: f"5:{marker}"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(marker, first)
    first.send_signal(signal.SIGKILL)  # unshare --kill-child takes PID 1 down with it
    first.wait()
    assert sum(v for (_, state), v in states(tmp_path / "home").items()
               if state == "RUNNING") == 1
    second = subprocess.Popen([*prefix, sys.executable, str(script)], env=variables,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = second.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        second.kill()
        pytest.fail("the restart waited for the dead worker's trial instead of re-running it")
    assert second.returncode == 0, err
    assert "finished" in out
    counts = states(tmp_path / "home")
    assert all(counts[(fold, "COMPLETE")] == N_TRIALS for fold in range(N_FOLDS))


# --- four processes on one study -----------------------------------------------------------

SHARED_FOLDS, SHARED_TRIALS = 20, 3
SHARED_SCRIPT = textwrap.dedent(f"""
    import sys
    import time
    from pathlib import Path
    sys.path.insert(0, {str(ROOT)!r})
    import optuna
    import foldwise
    from foldwise.examples import sma_crossover
    from foldwise.space import Int
    from foldwise.splits import WalkForward

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = foldwise.datasets.load_goog().islice(0, 1200)
    Path(sys.argv[1]).write_text("ready")
    go = Path(sys.argv[2])
    while not go.exists():  # all four start the optimization at the same moment
        time.sleep(0.001)
    foldwise.optimize(sma_crossover, data, {{"fast": Int(5, 30), "slow": Int(40, 120)}},
                      WalkForward(train=200, test=50), n_trials={SHARED_TRIALS},
                      study="shared", show_progress=False, check_lookahead=False)
    print("finished")
""")


def budget_used(journal: Path, study: str) -> dict[int, Counter]:
    """Per fold study: the trials that used the budget, those that did not, and RUNNING ones,
    read with Optuna directly from the journal."""
    storage = open_storage(parse_storage(str(journal)))
    found = {}
    for fold in range(SHARED_FOLDS):
        trials = optuna.load_study(study_name=f"{study}/fold-{fold:02d}",
                                   storage=storage).get_trials(deepcopy=False)
        found[fold] = Counter("running" if not t.state.is_finished()
                              else "used" if trial_budget(t) else "not used" for t in trials)
    return found


def test_four_processes_on_one_study_keep_the_budget_exact(tmp_path):
    """Four processes started together on the same study, journal and cache: every fold
    ends with exactly n_trials finished evaluations, none more (workers that count the
    budget at the same moment and both ask must not both run)."""
    data = foldwise.datasets.load_goog().islice(0, 1200)
    assert len(WalkForward(train=200, test=50).folds(data)) == SHARED_FOLDS
    script = tmp_path / "shared.py"
    script.write_text(SHARED_SCRIPT)
    for round_ in range(3):  # fresh storage each round
        home = tmp_path / f"round-{round_}"
        home.mkdir()
        variables = {**os.environ, "FOLDWISE_DIR": str(home)}
        go = home / "go"
        ready = [home / f"ready-{i}" for i in range(4)]
        processes = [subprocess.Popen([sys.executable, str(script), str(r), str(go)],
                                      env=variables, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for r in ready]
        try:
            deadline = time.monotonic() + 120
            while not all(r.exists() for r in ready):
                assert all(p.poll() is None for p in processes), \
                    [p.communicate() for p in processes]
                assert time.monotonic() < deadline, "the processes never got ready"
                time.sleep(0.01)
            go.write_text("go")
            outputs = [p.communicate(timeout=300) for p in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        for process, (out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err
            assert "finished" in out
        used = budget_used(home / "studies.journal", "shared")
        assert {fold: counts["used"] for fold, counts in used.items()} == \
            dict.fromkeys(range(SHARED_FOLDS), SHARED_TRIALS), used
        assert not any(counts["running"] for counts in used.values())
        result = foldwise.load_result("shared", storage=str(home / "studies.journal"),
                                      cache=home)
        assert (result.folds["trials_complete"] == SHARED_TRIALS).all()


# --- workers exit when their parent dies ---------------------------------------------------

ORPHAN_TRIALS = 300
ORPHAN_SCRIPT = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(ROOT)!r})
    import optuna
    import foldwise
    from foldwise.space import Int
    from foldwise.splits import WalkForward
    from tests._optimize_support import counted_sma

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    foldwise.optimize(counted_sma, foldwise.datasets.load_goog(),
                      {{"fast": Int(5, 30), "slow": Int(20, 80, step=5)}},
                      WalkForward(train=1000, test=500), constraints="fast < slow",
                      n_trials={ORPHAN_TRIALS}, study="orphans", seed=0, sampler="random",
                      n_jobs=2, show_progress=False, check_lookahead=False)
    print("finished")
""")


def fold_trials(journal: Path, study: str) -> dict[int, list[optuna.trial.FrozenTrial]]:
    storage = open_storage(parse_storage(str(journal)))
    found = {}
    for name in optuna.get_all_study_names(storage):
        if name.startswith(f"{study}/fold-"):
            fold = int(name.rsplit("-", 1)[1])
            found[fold] = optuna.load_study(study_name=name,
                                            storage=storage).get_trials(deepcopy=False)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_exit_when_their_parent_is_killed_and_the_study_resumes_exactly(tmp_path):
    """kill -9 of the process that called optimize(n_jobs=2) takes its worker processes
    down within seconds (not after their folds, minutes later); their running trials are
    run again by the same call, which ends with the exact budget."""
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT)
    home = tmp_path / "home"
    journal = home / "studies.journal"
    variables = {**os.environ, "FOLDWISE_DIR": str(home),
                 COUNT_ENV: str(tmp_path / "executions.txt")}
    # each fold takes ORPHAN_TRIALS x 0.1 s = 30 s: far longer than the bound below
    parent = start(script, {**variables, SLEEP_ENV: "0.1"})
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2:  # both workers are running trials
            assert parent.poll() is None, parent.communicate()
            assert time.monotonic() < deadline, "the workers never started trials"
            time.sleep(0.2)
            if journal.exists():
                workers = {t.user_attrs[WORKER_ATTR]["pid"]
                           for trials in fold_trials(journal, "orphans").values()
                           for t in trials if t.state == TrialState.RUNNING}
        assert parent.pid not in workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers), \
            "worker processes kept running after their parent was killed"
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    left = fold_trials(journal, "orphans")
    assert sum(t.state == TrialState.RUNNING for trials in left.values() for t in trials) >= 2
    # the same call resumes (the strategy no longer sleeps: same code, same study)
    second = start(script, variables)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "finished" in out
    final = fold_trials(journal, "orphans")
    assert len(final) == 2
    for trials in final.values():
        assert sum(trial_budget(t) for t in trials) == ORPHAN_TRIALS
        assert not any(t.state == TrialState.RUNNING for t in trials)
    died = [read_trial(t).record.failure for trials in final.values() for t in trials
            if t.state == TrialState.FAIL]
    assert died and all(f is not None and f.kind == FailureKind.WORKER_DIED for f in died)


# --- twenty kills of a seeded two-worker study ---------------------------------------------

SEEDED_TRIALS = 20
SEEDED_SCRIPT = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(ROOT)!r})
    import optuna
    import foldwise
    from foldwise.space import Int
    from foldwise.splits import WalkForward
    from tests._optimize_support import counted_sma

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    foldwise.optimize(counted_sma, foldwise.datasets.load_goog(),
                      {{"fast": Int(5, 30), "slow": Int(20, 80, step=5)}},
                      WalkForward(train=500, test=250), constraints="fast < slow",
                      n_trials={SEEDED_TRIALS}, study="seeded", seed=0, costs=2.0, n_jobs=2,
                      show_progress=False, check_lookahead=False)
    print("finished")
""")


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2:].split()[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def journal_size(journal: Path) -> int:
    return journal.stat().st_size if journal.exists() else 0


def trials_created(journal: Path) -> int:
    """How many trials the journal's lines create (foldwise writes them compact)."""
    if not journal.exists():
        return 0
    return journal.read_bytes().count(b'{"op_code":%d,' % JournalOperation.CREATE_TRIAL)


def settled_sequences(journal: Path) -> dict[int, list[tuple[str, dict, float | None]]]:
    """Per fold, the trials the study holds for good (finished or infeasible; not those
    whose worker was killed), in the order of their numbers: state, parameters, value."""
    return {fold: [(t.state.name, dict(t.params), t.value)
                   for t in sorted(trials, key=lambda t: t.number)
                   if t.state == TrialState.COMPLETE or (t.state.is_finished() and (
                       trial_budget(t) or read_trial(t).record.infeasible is not None))]
            for fold, trials in fold_trials(journal, "seeded").items()}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_twenty_kills_of_a_seeded_two_worker_study_then_resume_equal_the_uninterrupted(
        tmp_path):
    """A seeded optimize(n_jobs=2) killed (-9) twenty times at random points and resumed
    ends exactly as the same study run once without interruption: per fold, the same
    settled trials in the same order (parameters, values; a killed trial is re-run, so the
    numbers after it shift by one), and the same chosen parameters."""
    script = tmp_path / "seeded.py"
    script.write_text(SEEDED_SCRIPT)
    home = tmp_path / "home"
    journal = home / "studies.journal"
    variables = {**os.environ, "FOLDWISE_DIR": str(home), SLEEP_ENV: "0.1",
                 COUNT_ENV: str(tmp_path / "executions.txt")}
    rng = random.Random(20)
    kills = 0
    preserved: dict[tuple[int, int], tuple] = {}
    spawned: set[int] = set()  # every child of a killed run: none is left behind
    try:
        while kills < 20:
            # kill at a random moment after the run starts writing: a quarter of the kills
            # soon after it plans (joining the studies, starting workers), the others soon
            # after its workers create a trial, so that kills land in the optimization
            # rather than in the interpreter's start
            progress = journal_size if rng.random() < 0.25 else trials_created
            before = progress(journal)
            process = start(script, variables)
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline and \
                    progress(journal) == before:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            kids = children(process.pid)
            if process.poll() is not None:
                break  # the study finished before this kill
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            spawned |= kids
            trials = fold_trials(journal, "seeded") if journal.exists() else {}
            # the workers that ran trials (a worker given no task yet runs none, and
            # waits for loky's idle timeout)
            workers = kids & {t.user_attrs[WORKER_ATTR]["pid"]
                              for fold in trials.values() for t in fold}
            deadline = time.monotonic() + 15
            while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not any(alive(pid) for pid in workers), f"workers outlived kill {kills}"
            for fold, held in trials.items():
                preserved.update({(fold, t.number): (dict(t.params), t.value) for t in held
                                  if t.state == TrialState.COMPLETE})
    finally:
        for pid in spawned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert kills == 20, "the study finished before twenty kills; give it more work"
    final = start(script, variables)
    _out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    interrupted = fold_trials(journal, "seeded")
    for (fold, number), value in preserved.items():  # no completed trial lost or changed
        trial = interrupted[fold][number]
        assert (dict(trial.params), trial.value) == value
    for trials in interrupted.values():
        assert sum(trial_budget(t) for t in trials) == SEEDED_TRIALS
        assert not any(t.state == TrialState.RUNNING for t in trials)
    killed = [t for trials in interrupted.values() for t in trials
              if t.state == TrialState.FAIL]
    assert all(read_trial(t).record.failure.kind == FailureKind.WORKER_DIED for t in killed)
    assert len(killed) >= 10  # most kills cut a trial short

    calm = tmp_path / "uninterrupted"
    never_killed = start(script, {**variables, "FOLDWISE_DIR": str(calm),
                                  COUNT_ENV: str(tmp_path / "calm.txt")})
    _out, err = never_killed.communicate(timeout=600)
    assert never_killed.returncode == 0, err
    assert settled_sequences(journal) == settled_sequences(calm / "studies.journal")
    chosen = [foldwise.load_result("seeded", storage=str(root / "studies.journal"),
                                   cache=root).best_params for root in (home, calm)]
    assert chosen[0] == chosen[1]
