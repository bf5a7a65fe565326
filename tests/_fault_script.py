"""Run one small study for the fault-injection tests, in a fresh interpreter.

``python tests/_fault_script.py ROOT STORAGE N_TRIALS`` runs the study (cache in ROOT,
journal at STORAGE) and prints one JSON line: ``{"status": "ok" | "fault" | "error",
"type": ..., "message": ..., "finished": [per fold], "failed": [per fold]}``. Faults of the
machine must surface as ``MachineFaultError`` ("fault"); anything else is "error".
"""

from __future__ import annotations

import json
import logging
import sys

import optuna

import foldwise
from foldwise.errors import MachineFaultError
from foldwise.records import trial_budget

SPACE = {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(35, 120)}


def data() -> foldwise.MarketData:
    return foldwise.datasets.load_goog().slice(None, "2009-12-31")


def splitter() -> foldwise.WalkForward:
    return foldwise.WalkForward(train=400, test=200)


def counts(storage: str, name: str) -> tuple[list[int], list[int]]:
    opened = foldwise.storage.open_storage(foldwise.storage.parse_storage(storage))
    finished, failed = [], []
    for fold in range(len(splitter().folds(data()))):
        trials = optuna.load_study(study_name=f"{name}/fold-{fold:02d}",
                                   storage=opened).get_trials(deepcopy=False)
        used = [t for t in trials if t.state.is_finished() and trial_budget(t)]
        finished.append(len(used))
        failed.append(sum(t.state == optuna.trial.TrialState.FAIL for t in used))
    return finished, failed


def main_optimize(root: str, storage: str, n_trials: int, *, files: bool = True
                  ) -> foldwise.WalkForwardResult:
    """The study: SMA crossover on GOOG 2004-2009, 4 folds, cache in ``root``. ``files``:
    every run keeps its arrays in a file of its own (so that artifact writes meet the
    faults, and a test can delete or damage one); else the cache as a user gets it
    (``cache=root``, opened by ``optimize`` itself)."""
    cache = foldwise.BacktestCache(root, keep_arrays="always", artifacts="files") \
        if files else root
    return foldwise.optimize(foldwise.examples.sma_crossover, data(), SPACE, splitter(),
                             n_trials=n_trials, study="faults", storage=storage, cache=cache,
                             seed=7, show_progress=False)


def main(root: str, storage: str, n_trials: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out: dict[str, object] = {}
    try:
        main_optimize(root, storage, n_trials, files=False)
        out["status"] = "ok"
    except MachineFaultError as exc:
        out.update(status="fault", type=type(exc.__cause__).__name__, message=str(exc))
    except Exception as exc:  # reported, so the test shows what leaked
        out.update(status="error", type=type(exc).__name__, message=str(exc))
    try:
        out["finished"], out["failed"] = counts(storage, "faults")
    except KeyError:  # stopped before the fold studies were created
        out["finished"], out["failed"] = None, None
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
