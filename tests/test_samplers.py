"""A sampler re-seeded in place suggests exactly what a new sampler of that seed suggests."""

from __future__ import annotations

import optuna
import pytest

from foldwise.optimizer._samplers import make_sampler, reseed, trial_seed


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


@pytest.mark.parametrize("spec", [None, "tpe", "random", "TPE"])
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
