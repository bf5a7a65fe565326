"""Optuna's ``JournalStorage``, writing each trial of this process in few appends.

Optuna's journal storage appends one log line per operation — the trial's creation, each
parameter, each attribute, each intermediate value, the final state — and takes the file
lock and re-reads the journal after every one. A foldwise trial made six to eight such
appends, which together cost about as much as a sub-millisecond backtest.

:class:`BatchedJournalStorage` appends a trial that this process creates twice:

* **at creation**, at once, with the worker running it in its user attributes
  (:data:`foldwise.storage.WORKER_ATTR`), so every process sees the trial RUNNING and
  can tell, should the worker die, that it is dead;
* **at its end**: its parameters, attributes and intermediate values, kept in memory
  while it ran, then its final state, in one write.

While the trial runs, its updates are applied at once to this process's in-memory replay
of the journal, so every read in this process (the trial, the sampler, the pruner) sees
them exactly as with Optuna's storage; :meth:`BatchedJournalStorage.flush` writes them
early. The file is an ordinary Optuna journal: Optuna's own ``JournalStorage`` and tools
(optuna-dashboard) read it.

What differs, only while a trial runs: other processes see its updates when it finishes
or is flushed, not one by one. foldwise's trial loop flushes a trial's parameters as soon
as they are suggested (a third append), so a trial whose worker dies shows which set it
was running, and samplers that read other workers' running trials (TPE's
``constant_liar``) see them. A worker killed mid-trial loses only its trial's later,
unwritten updates: the trial stays RUNNING under a dead worker and is failed and re-run
(:mod:`foldwise.optimizer._trials`).

Measured and not kept: writing a trial's end with the next trial's creation, one append per
trial. In a 1,000-trial study the journal's share did not move (0.69, 0.51, 0.49 s against
0.70, 0.50, 0.58 s, runs alternated with the code without it), while a loop waiting for
other processes' trials had to write its held ends first or wait on theirs. A warm
micro-benchmark puts the append's own file work (lock, write, tail check) at a tenth of a
trial's journal cost; the rest is encoding the lines and Optuna's replay of them (each
update copies the trial, each parameter decodes its distribution's JSON).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Collection, Container, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.exceptions import OptunaError
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

try:  # private to Optuna: where they are missing, Optuna's JournalStorage is used as is
    from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult

    _APPLY = {
        JournalOperation.SET_TRIAL_PARAM: JournalStorageReplayResult._apply_set_trial_param,
        JournalOperation.SET_TRIAL_USER_ATTR: JournalStorageReplayResult._apply_set_trial_user_attr,
        JournalOperation.SET_TRIAL_SYSTEM_ATTR:
            JournalStorageReplayResult._apply_set_trial_system_attr,
        JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE:
            JournalStorageReplayResult._apply_set_trial_intermediate_value,
    }
    # The number of a kept update that reads back from the journal's JSON as it was
    # applied when it is a plain float or int (the rest of such a log is an id, a name
    # and a distribution's JSON text).
    _NUMBER_OF = {JournalOperation.SET_TRIAL_PARAM: "param_value_internal",
                  JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE: "intermediate_value"}
    from foldwise.storage import _replay
    from foldwise.storage._replay import CompactedStudyError, CompactReplay

    SUPPORTED = True
except (ImportError, AttributeError):  # pragma: no cover - another Optuna layout
    SUPPORTED = False

__all__ = ["SUPPORTED", "BatchedJournalStorage"]

#: Optuna 5 writes a journal's trial times in UTC with their offset and reads them back as
#: local times; Optuna 4 writes and reads naive local times, and would hand a UTC time with
#: an offset to callers as an aware datetime that cannot be compared with its naive ones.
#: Times are written as the installed Optuna writes them.
_UTC_TIMES = int(optuna.__version__.split(".")[0]) >= 5


def _now() -> str:
    """The current time as the installed Optuna's journal storage writes it."""
    now = datetime.now(tz=UTC) if _UTC_TIMES else datetime.now()
    return now.isoformat(timespec="microseconds")


def _same_from_json(log: dict[str, Any]) -> bool:
    """True when ``log``, applied as it is, leaves the replay as its JSON read back would."""
    name = _NUMBER_OF.get(log["op_code"])
    return name is not None and type(log[name]) in (float, int)


class BatchedJournalStorage(JournalStorage):
    """A journal storage that writes each trial of this process in few appends.

    Use it only where :data:`SUPPORTED` (it relies on Optuna's journal internals).

    Parameters
    ----------
    backend
        The journal backend (e.g. :class:`foldwise.storage.FileJournalBackend`).
    creation_user_attrs
        Called for every trial this process creates; the user attributes written with its
        creation (foldwise: the worker running it).
    compact_above
        The replay compacts the finished trials of studies outside :meth:`keep_full` only
        while it holds at least this many trials; None:
        :data:`foldwise.storage._replay.COMPACT_ABOVE`, read when the storage is made.
    """

    _replay_result: CompactReplay

    def __init__(self, backend: BaseJournalBackend, *,
                 creation_user_attrs: Callable[[], dict[str, Any]] | None = None,
                 compact_above: int | None = None) -> None:
        # Optuna's JournalStorage.__init__, with foldwise's replay (it has no snapshot to
        # restore: FileJournalBackend is not a BaseJournalSnapshot)
        self._worker_id_prefix = str(uuid.uuid4()) + "-"
        self._backend = backend
        self._thread_lock = threading.Lock()
        self._compact_above = _replay.COMPACT_ABOVE if compact_above is None else compact_above
        self._replay_result = CompactReplay(self._worker_id_prefix,
                                            compact_above=self._compact_above)
        self._creation_user_attrs = creation_user_attrs
        self._init_buffers()
        with self._thread_lock:
            self._sync_with_backend()

    def _init_buffers(self) -> None:
        # Trials this process created and has not finished, with their unwritten logs.
        self._pending: dict[int, list[dict[str, Any]]] = {}
        self._pid = os.getpid()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._replay_result = CompactReplay(self._worker_id_prefix,
                                            compact_above=self._compact_above)
        self._init_buffers()  # a copy in another process owns no trial

    # --- creation: one append, with the worker ----------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        if template_trial is not None:
            return super().create_new_trial(study_id, template_trial)
        log: dict[str, Any] = {
            "study_id": study_id,
            "datetime_start": _now(),
        }
        if self._creation_user_attrs is not None:
            log["user_attrs"] = self._creation_user_attrs()
        with self._thread_lock:
            self._write_log(JournalOperation.CREATE_TRIAL, log)
            self._sync_with_backend()
            trial_id = self._replay_result._last_created_trial_id_by_this_process
            self._pending_of(trial_id)  # drops a forked parent's trials
            self._pending[trial_id] = []
        return trial_id

    def _pending_of(self, trial_id: int) -> list[dict[str, Any]] | None:
        """The kept logs of a running trial of this process, or None (caller holds the lock)."""
        if os.getpid() != self._pid:
            self._init_buffers()  # forked: the parent's trials are not this process's
        return self._pending.get(trial_id)

    # --- updates of a running trial: kept, applied to the replay --------------------------

    def _buffer(self, op_code: Any, fields: dict[str, Any]) -> bool:
        """Keep the update if its trial is one of this process's; False to write it now."""
        trial_id = fields["trial_id"]
        apply = _APPLY[op_code]
        with self._thread_lock:
            pending = self._pending_of(trial_id)
            if pending is None:
                return False
            log = {"op_code": op_code, "worker_id": self._replay_result.worker_id, **fields}
            apply(self._replay_result, log)  # raises as Optuna would (finished trial, ...)
            pending.append(log)
        return True

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        fields = {"trial_id": trial_id, "param_name": param_name,
                  "param_value_internal": param_value_internal,
                  "distribution": distribution_to_json(distribution)}
        if not self._buffer(JournalOperation.SET_TRIAL_PARAM, fields):
            super().set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        fields = {"trial_id": trial_id, "user_attr": {key: value}}
        if not self._buffer(JournalOperation.SET_TRIAL_USER_ATTR, fields):
            super().set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        fields = {"trial_id": trial_id, "system_attr": {key: value}}
        if not self._buffer(JournalOperation.SET_TRIAL_SYSTEM_ATTR, fields):
            super().set_trial_system_attr(trial_id, key, value)

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        fields = {"trial_id": trial_id, "step": step, "intermediate_value": intermediate_value}
        if not self._buffer(JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, fields):
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    # --- reading --------------------------------------------------------------------------

    def keep_full(self, study_ids: Collection[int] | None) -> None:
        """Hold in memory only the trials of ``study_ids`` in full (None: every study).

        The finished trials of the other studies are compacted to their number, state and
        distributions (:class:`foldwise.storage._replay.Settled`) once the replay holds
        ``compact_above`` trials; reading such a study later replays the journal again
        (3-4 s per 100,000 journal lines on a 2-core machine), so a process keeps in full
        what it reads repeatedly: the trial loop, the study it runs.
        """
        with self._thread_lock:
            self._sync_with_backend()
            replay = self._replay_result
            wanted = replay.compacted if study_ids is None else set(study_ids)
            if any(not replay.holds_in_full(s) for s in wanted):
                self._replay_again(study_ids)
            else:
                replay.compact(study_ids)

    def _replay_again(self, keep_full: Collection[int] | None) -> None:
        """Replay the whole journal into a new replay that keeps ``keep_full`` in full;
        the kept updates of this process's running trials are applied again (caller holds
        the lock). Errors Optuna raised for a log when it was first applied are not
        raised again (:meth:`CompactReplay.replay_quietly`)."""
        replay = CompactReplay(self._worker_id_prefix, keep_full,
                               compact_above=self._compact_above)
        replay.replay_quietly(self._backend.read_logs(0))
        for log in (log for logs in self._pending.values() for log in logs):
            with contextlib.suppress(KeyError, ValueError, OptunaError):
                _APPLY[log["op_code"]](replay, log)
        self._replay_result = replay

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        try:
            return super().get_all_trials(study_id, deepcopy, states)
        except CompactedStudyError:  # read in full once the journal is replayed again
            self.keep_full(None)
            return super().get_all_trials(study_id, deepcopy, states)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        try:
            return super().get_trial(trial_id)
        except CompactedStudyError:
            self.keep_full(None)
            return super().get_trial(trial_id)

    def _sync_with_backend(self) -> None:
        """Replay what was appended since the last sync, every log of it.

        Optuna's replay raises at the first log of this process that it cannot apply (an
        update of a trial another process finished) and leaves the rest of the read for the
        next sync. Optuna writes one log per call, so that is the call's own error; a batch
        of kept updates would instead raise once more at each later, unrelated call. So the
        logs are applied one by one and the first error is raised after all of them.
        """
        self._apply(self._backend.read_logs(self._replay_result.log_number_read))

    def _apply(self, logs: Iterable[dict[str, Any]]) -> None:
        """Apply ``logs`` to the replay one by one; raise the first error after all."""
        error: Exception | None = None
        for log in logs:
            try:
                self._replay_result.apply_logs([log])  # counts the log read, then applies it
            except Exception as exc:  # Optuna's own errors of the log (KeyError, ...)
                error = error or exc
        if error is not None:
            raise error

    # --- writing ---------------------------------------------------------------------------

    def _append(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Append ``logs`` (caller holds the lock); then :meth:`_catch_up` with the return.

        A backend that tells when nothing else was appended since this process last read
        (:meth:`FileJournalBackend.append_logs_read`) returns the logs as a reader decodes
        them, to be applied without reading the file back; None: read it.
        """
        append_read = getattr(self._backend, "append_logs_read", None)
        if append_read is None:
            self._backend.append_logs(logs)
            return None
        return append_read(logs, self._replay_result.log_number_read)

    def _catch_up(self, appended: list[dict[str, Any]] | None,
                  kept: Sequence[dict[str, Any]] = ()) -> None:
        """Bring the replay up to date after :meth:`_append`. ``kept``: the logs at the
        start of ``appended`` as they were kept and applied (:meth:`_buffer`); those that
        read back from JSON exactly as they were applied (a parameter or intermediate
        value that is a plain float or int) are only counted read, the others applied
        again as read back, so the replay holds what any reader decodes (a tuple becomes a
        list, a numpy float a float)."""
        if appended is None:
            self._sync_with_backend()
            return
        skip = [number < len(kept) and _same_from_json(kept[number])
                for number in range(len(appended))]
        self._replay_result.log_number_read += sum(skip)
        self._apply(log for log, skipped in zip(appended, skip, strict=True) if not skipped)

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        """Optuna's single-log append; the sync that Optuna runs after it finds the log
        applied already when the backend could tell that nothing else was appended."""
        self._catch_up(self._append([{"op_code": op_code,
                                      "worker_id": self._replay_result.worker_id,
                                      **extra_fields}]))

    def flush(self, trial_id: int) -> None:
        """Write the kept updates of a running trial now, in one append."""
        with self._thread_lock:
            pending = self._pending_of(trial_id)
            if pending:
                appended = self._append(pending)
                self._pending[trial_id] = []
                self._catch_up(appended, pending)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        with self._thread_lock:
            pending = self._pending_of(trial_id)
            if pending is not None and state.is_finished():
                end = {"op_code": JournalOperation.SET_TRIAL_STATE_VALUES,
                       "worker_id": self._replay_result.worker_id, "trial_id": trial_id,
                       "state": state, "values": values,
                       "datetime_complete": _now()}
                appended = self._append([*pending, end])
                del self._pending[trial_id]
                self._catch_up(appended, pending)
                return True
        return super().set_trial_state_values(trial_id, state, values)
