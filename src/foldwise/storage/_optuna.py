"""The Optuna internals the rest of foldwise needs, behind small typed functions.

Optuna keeps a trial's storage id (``Trial._trial_id``, ``FrozenTrial._trial_id``), a
study's storage (``Study._storage``) and the heartbeat interface (``BaseHeartbeat``)
private. foldwise needs them to fail the trials of dead workers, to record heartbeats of
its running trials and to write a batching journal early, so it reads them here, in one
place that the storage contract tests (``tests/test_storage_contract.py``) and the tested
Optuna range in ``pyproject.toml`` cover. No other module of foldwise touches a private
attribute of an Optuna object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from foldwise.storage._batched import BatchedJournalStorage

try:  # private to Optuna: where it is missing, ``Study.tell`` is used
    from optuna.study._tell import _tell_with_warning
except ImportError:  # pragma: no cover - another Optuna layout
    _tell_with_warning = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "fail_trial",
    "flush_trial",
    "focus_replay",
    "heartbeat_interval",
    "record_heartbeat",
    "reseed_sampler",
    "storage_of",
    "tell",
    "trial_id",
]


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of ``trial`` (not its number within the study).

    Parameters
    ----------
    trial
        A running :class:`optuna.Trial` or a :class:`~optuna.trial.FrozenTrial` read from a
        storage.

    Returns
    -------
    int
        The id every ``BaseStorage.*_trial_*`` method takes.
    """
    return trial._trial_id


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage that holds ``study``.

    Parameters
    ----------
    study
        An Optuna study, created or loaded.

    Returns
    -------
    BaseStorage
        The storage object the study reads and writes (not a copy). Optuna wraps an
        ``RDBStorage`` in a caching layer that delegates to it (heartbeats included); this
        returns that layer.
    """
    return study._storage


def flush_trial(trial: optuna.Trial) -> None:
    """Write now what a batching storage keeps of ``trial``; a no-op on other storages.

    :class:`BatchedJournalStorage` keeps a running trial's parameters, attributes and
    intermediate values until the trial ends; after a flush other processes see them.

    Parameters
    ----------
    trial
        A running trial of this process.
    """
    storage = trial.storage
    if isinstance(storage, BatchedJournalStorage):
        storage.flush(trial._trial_id)


def focus_replay(study: optuna.Study) -> None:
    """Hold in this process's memory the trials of ``study`` in full, and of other studies
    of its journal only what the replay needs (:meth:`BatchedJournalStorage.keep_full`);
    a no-op on other storages.

    For a loop that reads one study over and over (a fold's trial loop): the memory of the
    other folds' finished trials is freed. Reading another study later replays the journal.
    """
    storage = study._storage
    if isinstance(storage, BatchedJournalStorage):
        storage.keep_full({study._study_id})


def tell(study: optuna.Study, trial: optuna.Trial, value: float | None = None,
         state: TrialState | None = None) -> None:
    """``study.tell(trial, value, state)`` without the copy of the finished trial it returns.

    ``Study.tell`` returns a deep copy of the trial it finished, user attributes included
    (a foldwise trial's record); the trial loop does not use it, and copying it cost about
    a quarter of a millisecond per trial. ``Study.optimize`` finishes its trials the same
    way (Optuna's internal ``_tell_with_warning``), with the same checks and warnings.

    Parameters
    ----------
    study
        The study that asked for ``trial``.
    trial
        A running trial of this process.
    value
        The objective value (``state`` None or COMPLETE).
    state
        The final state; None: COMPLETE, or FAIL for a value that is not finite.
    """
    if _tell_with_warning is None:  # pragma: no cover - another Optuna layout
        study.tell(trial, value, state=state)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=value, state=state)


def fail_trial(study: optuna.Study, trial: FrozenTrial, user_attrs: Mapping[str, Any]) -> bool:
    """Set ``user_attrs`` on ``trial`` and mark it FAIL, directly through the storage.

    For a trial this process does not run (e.g. one left RUNNING by a worker that died),
    where ``study.tell`` does not apply.

    Parameters
    ----------
    study
        The study of ``trial``.
    trial
        The trial to fail, as read from the storage.
    user_attrs
        User attributes written before the state (JSON-serializable values).

    Returns
    -------
    bool
        True if this call failed the trial; False when another process finished it first
        (Optuna raises :class:`~optuna.exceptions.UpdateFinishedTrialError`, or
        ``RuntimeError`` from older storages, for an update of a finished trial).
    """
    storage = study._storage
    tid = trial._trial_id
    try:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(tid, key, value)
        return storage.set_trial_state_values(tid, TrialState.FAIL)
    except (UpdateFinishedTrialError, RuntimeError):
        return False


def heartbeat_interval(storage: BaseStorage) -> int | None:
    """Seconds between heartbeats of a running trial, or None without heartbeats.

    Parameters
    ----------
    storage
        Any Optuna storage; only RDB storages opened with ``heartbeat_interval`` have
        heartbeats.

    Returns
    -------
    int or None
        The storage's heartbeat interval, None if it keeps no heartbeats.
    """
    if not isinstance(storage, BaseHeartbeat):
        return None
    return storage.get_heartbeat_interval()


def record_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    """Record that the running trial ``trial_id`` is alive; a no-op without heartbeats.

    Parameters
    ----------
    storage
        The trial's storage.
    trial_id
        The storage id of the trial (:func:`trial_id`).
    """
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial_id)


def reseed_sampler(sampler: optuna.samplers.BaseSampler, seed: int) -> bool:
    """Give a TPE or random sampler the randomness of a new one seeded with ``seed``, in
    place; False for any other sampler (build a new one).

    A TPE sampler's randomness is its own random state and its random sampler's (for the
    startup trials), both seeded with the one seed at construction (Optuna 4.7 - 5.0); the
    rest of its state is a function of the study's trials. Only these exact classes, and
    TPE subclasses that declare ``reseeds_like_tpe = True`` (they add no randomness of
    their own), are re-seeded.
    """
    kind = type(sampler)
    if kind is optuna.samplers.TPESampler or (
            isinstance(sampler, optuna.samplers.TPESampler)
            and kind.__dict__.get("reseeds_like_tpe") is True):
        tpe = cast("optuna.samplers.TPESampler", sampler)
        tpe._rng.rng.seed(seed)
        tpe._random_sampler._rng.rng.seed(seed)
        return True
    if kind is optuna.samplers.RandomSampler:
        cast("optuna.samplers.RandomSampler", sampler)._rng.rng.seed(seed)
        return True
    return False
