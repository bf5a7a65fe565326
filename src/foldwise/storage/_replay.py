"""Optuna's journal replay, holding in full only the studies a process works on.

Optuna's ``JournalStorage`` replays the whole journal into memory and keeps every trial of
every study as a :class:`~optuna.trial.FrozenTrial` with its parameters, distributions and
attributes (a foldwise trial's record): about 4.4 KB per trial, which a 20-fold x
1,000-trial study made the largest part of the trial loop's memory growth. The trial loop
of a walk-forward fold reads only its own study; the other folds' finished trials are
never read while it runs.

:class:`CompactReplay` keeps, for a finished trial of a study outside
:attr:`CompactReplay.keep_full`, only what the replay itself reads of it: its number and
state and the distributions of its parameters (a :class:`Settled`: an update of a finished
trial is refused on its state, a new parameter of its study is checked against its
distributions, and the trial still counts towards the ids of later trials). A read of such
a study raises :class:`CompactedStudyError` inside the storage, which replays the journal
again and reads then (:meth:`foldwise.storage.BatchedJournalStorage.keep_full` decides what
to keep), so no reader ever sees a compacted trial: the journal stays the one source of
every trial, as before.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.exceptions import OptunaError
from optuna.storages.journal._storage import JournalStorageReplayResult
from optuna.trial import FrozenTrial, TrialState

__all__ = ["COMPACT_ABOVE", "CompactReplay", "CompactedStudyError", "Settled"]

#: Trials the replay holds before it compacts any: below this a study's memory is a few
#: MB, and compacting would only cost replays of the journal when other studies are read.
COMPACT_ABOVE = 2000


class CompactedStudyError(RuntimeError):
    """A read of a study whose trials this replay compacted (the storage replays the
    journal again and reads it then)."""


class Settled:
    """What the replay keeps of a finished trial of a study it does not keep in full.

    Optuna's replay reads three things of a trial it already holds: its ``state`` (a
    finished trial is not updated), its ``number`` (for that error's message) and, when
    another trial of its study gets a parameter, which parameters it has and their
    distributions (the first earlier trial holding that parameter is the one whose
    distribution the new one must be compatible with). The distributions are kept as a
    mapping shared by every settled trial of the same space (:meth:`CompactReplay._settle`
    interns them), so a settled trial costs about 100 bytes whatever its attributes.
    """

    __slots__ = ("distributions", "number", "state")

    def __init__(self, number: int, state: TrialState,
                 distributions: Mapping[str, BaseDistribution]) -> None:
        self.number = number
        self.state = state
        self.distributions = distributions

    @property
    def params(self) -> Mapping[str, BaseDistribution]:
        """Only its keys are read: the names of the trial's parameters."""
        return self.distributions


class CompactReplay(JournalStorageReplayResult):
    """Optuna's journal replay that compacts the finished trials of studies it is not
    told to keep in full.

    Parameters
    ----------
    worker_id_prefix
        As Optuna's ``JournalStorageReplayResult``.
    keep_full
        Ids of the studies whose trials are kept in full; None: every study (Optuna's
        replay exactly).
    compact_above
        Compact only while the replay holds at least this many trials.
    """

    def __init__(self, worker_id_prefix: str, keep_full: Collection[int] | None = None,
                 compact_above: int = COMPACT_ABOVE) -> None:
        super().__init__(worker_id_prefix)
        self.keep_full = None if keep_full is None else frozenset(keep_full)
        self.compact_above = compact_above
        self.compacted: set[int] = set()  # studies with at least one Settled trial
        # one read-only mapping per distinct set of distributions, shared by Settled trials
        self._spaces: dict[tuple[tuple[str, BaseDistribution], ...],
                           Mapping[str, BaseDistribution]] = {}

    # --- what is kept --------------------------------------------------------------------

    def _settle(self, trial_id: int) -> None:
        """Compact ``trial_id`` if it is finished and its study is not kept in full."""
        if self.keep_full is None or len(self._trials) < self.compact_above:
            return
        study_id = self._trial_id_to_study_id[trial_id]
        trial = self._trials[trial_id]
        if (study_id not in self.keep_full and isinstance(trial, FrozenTrial)
                and trial.state.is_finished()):
            space = tuple(trial.distributions.items())
            shared = self._spaces.get(space)
            if shared is None:
                shared = self._spaces[space] = MappingProxyType(dict(space))
            self._trials[trial_id] = Settled(  # type: ignore[assignment]
                trial.number, trial.state, shared)
            self.compacted.add(study_id)

    def compact(self, keep_full: Collection[int] | None) -> None:
        """Keep in full only the studies ``keep_full`` (and their new trials) from now on;
        compact the finished trials of the others. None: compact nothing more.

        Raises
        ------
        ValueError
            If a study of ``keep_full`` is compacted already: only a new replay of the
            journal gives its trials back (the storage does that).
        """
        if keep_full is None:
            self.keep_full = None
            return
        keep = frozenset(keep_full)
        if keep & self.compacted:
            raise ValueError(f"studies {sorted(keep & self.compacted)} are compacted; replay "
                             "the journal again to keep them in full")
        self.keep_full = keep
        for trial_id in list(self._trials):
            self._settle(trial_id)

    def holds_in_full(self, study_id: int) -> bool:
        """True when every trial of ``study_id`` is held in full (none compacted)."""
        return study_id not in self.compacted

    def replay_quietly(self, logs: Iterable[dict[str, Any]]) -> None:
        """Apply ``logs`` read before, ignoring the errors Optuna raised for them then.

        A log this process wrote and that Optuna refused when it was first applied (a
        duplicated study name, an update of a trial another process finished) raises
        again on a second replay; it was reported to its caller the first time.
        """
        for log in logs:
            try:
                self.apply_logs([log])
            except (KeyError, ValueError, OptunaError):
                continue

    # --- Optuna's replay, compacting as trials finish ------------------------------------------

    def _apply_create_trial(self, log: dict[str, Any]) -> None:
        created = len(self._trials)
        super()._apply_create_trial(log)
        if len(self._trials) > created:
            self._settle(created)

    def _apply_set_trial_state_values(self, log: dict[str, Any]) -> None:
        super()._apply_set_trial_state_values(log)
        if log["trial_id"] in self._trials:
            self._settle(log["trial_id"])

    # --- reads: never a compacted trial -------------------------------------------------------

    def _check_full(self, study_id: int) -> None:
        if study_id in self.compacted:
            raise CompactedStudyError(f"study {study_id} is compacted in this replay; the "
                                      "storage replays the journal again to read it")

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if trial_id in self._trial_id_to_study_id:
            self._check_full(self._trial_id_to_study_id[trial_id])
        return super().get_trial(trial_id)

    def get_all_trials(self, study_id: int, states: Container[TrialState] | None
                       ) -> list[FrozenTrial]:
        self._check_full(study_id)
        return super().get_all_trials(study_id, states)
