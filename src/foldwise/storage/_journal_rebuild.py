"""Replay the intact lines of a damaged journal and write the journal they describe.

The intact lines are replayed in order by Optuna's own replay, with each damaged line
replaced by the placeholder creations its reading held
(:mod:`foldwise.storage._journal_ids`), so every id means what it meant when the line was
written. What the replay holds is then written as a new journal through Optuna's public
``JournalStorage`` API, one study creation (with its attributes) per study and one trial
creation (the whole trial) per trial, in the original order, so study names and trial
numbers stay what they were. Then:

* a **study whose creation line was damaged** is left out with all its trials (its name and
  direction may be the damaged part); the same ``optimize`` call creates it again;
* a **trial whose creation line or one of whose updates was damaged** — a lost parameter,
  attribute or final state — is written as FAIL with a
  :class:`~foldwise.records.Failure` of kind :attr:`~foldwise.records.FailureKind.FAULT`:
  it does not use the study's budget, so the same ``optimize`` call runs one trial in its
  place, and it keeps its number, so nothing that refers to later trial numbers (the test
  evaluations a fold study stores per trial number) moves. Its parameters, as far as the
  intact lines tell, stay on it for the record;
* a lost study attribute is reported; foldwise writes its attributes again on the next
  ``optimize`` call of that study (the manifest, the fold, the test evaluations).

The new journal has fewer lines than the old one (one per study attribute and per trial,
not one per operation) and the same content: Optuna, optuna-dashboard and foldwise read it
as they read the original.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from foldwise.errors import StorageError
from foldwise.records import TRIAL_ATTR, Failure, FailureKind, TrialRecord
from foldwise.storage._journal_file import encode_line
from foldwise.storage._journal_ids import LOST_STUDY_PREFIX, Event, Reading
from foldwise.storage._journal_lines import (
    CREATE_STUDY,
    CREATE_TRIAL,
    DELETE_STUDY,
    SET_STUDY_SYSTEM_ATTR,
    SET_STUDY_USER_ATTR,
    Line,
)
from foldwise.storage._journal_report import DamagedLine, LostStudy, LostTrial

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

try:  # private to Optuna, like the rest of the journal replay foldwise uses (_batched.py)
    from optuna.storages.journal._storage import JournalStorageReplayResult as _Replay
except ImportError:  # pragma: no cover - another Optuna layout
    _Replay = None  # type: ignore[assignment,misc]

__all__ = ["Rebuilt", "rebuild"]

logger = logging.getLogger(__name__)

#: Writer id of the placeholder operations (no real writer has it).
_REPAIR_WORKER = "foldwise-repair"
#: User attribute marking a placeholder trial with the line that created it (never written).
_MARK = "\x00foldwise_repair_line"


class _MemoryBackend(BaseJournalBackend):
    """A journal held in a list (what the rebuilt journal is written to before the file)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


@dataclass(frozen=True)
class Rebuilt:
    """The repaired journal's content and what it cost."""

    content: bytes
    damaged: tuple[DamagedLine, ...]
    lost_trials: tuple[LostTrial, ...]
    lost_studies: tuple[LostStudy, ...]
    notes: tuple[str, ...]


def _placeholder(event: Event, line: int) -> dict[str, Any]:
    base: dict[str, Any] = {"worker_id": _REPAIR_WORKER}
    if event.kind == "study":
        return {"op_code": CREATE_STUDY, **base, "study_name": event.name,
                "directions": list(event.directions)}
    if event.kind == "trial":
        return {"op_code": CREATE_TRIAL, **base, "study_id": event.study_id,
                "datetime_start": None, "user_attrs": {_MARK: line}}
    return {"op_code": DELETE_STUDY, **base, "study_id": event.study_id}


def _study_logs(study: FrozenStudy, new_id: int) -> list[dict[str, Any]]:
    """The creation of ``study`` under id ``new_id`` and one line per attribute."""
    base: dict[str, Any] = {"worker_id": _REPAIR_WORKER}
    logs = [{"op_code": CREATE_STUDY, **base, "study_name": study.study_name,
             "directions": [d.value for d in study.directions]}]
    logs += [{"op_code": SET_STUDY_USER_ATTR, **base, "study_id": new_id, "user_attr": {k: v}}
             for k, v in study.user_attrs.items()]
    logs += [{"op_code": SET_STUDY_SYSTEM_ATTR, **base, "study_id": new_id,
              "system_attr": {k: v}} for k, v in study.system_attrs.items()]
    return logs


def _replay(lines: list[Line], readings: dict[int, Reading]) -> tuple[Any, list[tuple[Line, str]]]:
    """Optuna's replay of the intact lines with the readings' placeholders; and the intact
    lines Optuna still could not apply, with why."""
    if _Replay is None:  # pragma: no cover
        raise StorageError("this Optuna has no journal replay foldwise knows; install the "
                           "Optuna version pyproject.toml names to repair a journal.")
    replay = _Replay("foldwise-repair-replay-")
    refused: list[tuple[Line, str]] = []
    for line in lines:
        if line.log is None:
            logs = [_placeholder(e, line.number) for e in readings[line.number].events]
        else:
            logs = [line.log]
        for log in logs:
            try:
                replay.apply_logs([log])
            except Exception as exc:  # Optuna's own errors of one log (KeyError, ...)
                refused.append((line, f"Optuna cannot apply it ({type(exc).__name__}: {exc})"))
    return replay, refused


def _failed(trial: FrozenTrial, line: int, reason: str) -> FrozenTrial:
    """``trial`` as a FAIL that does not use the budget (see the module docstring)."""
    stored = trial.user_attrs.get(TRIAL_ATTR)
    params = stored.get("params") if isinstance(stored, dict) else None
    failure = Failure(FailureKind.FAULT, "JournalDamaged",
                      f"line {line} of the study journal was damaged ({reason}); `foldwise "
                      "repair` marked this trial failed so that it runs again (it does not "
                      "count toward n_trials)")
    attrs = {k: v for k, v in trial.user_attrs.items() if k != _MARK}
    attrs[TRIAL_ATTR] = TrialRecord(params=dict(params or trial.params),
                                    failure=failure).to_json()
    return FrozenTrial(
        number=trial.number, state=TrialState.FAIL, value=None,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete or datetime.now(),
        params=trial.params, distributions=trial.distributions, user_attrs=attrs,
        system_attrs=trial.system_attrs, intermediate_values=trial.intermediate_values,
        trial_id=trial._trial_id)


def _clean(trial: FrozenTrial) -> FrozenTrial:
    if _MARK not in trial.user_attrs:
        return trial
    trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != _MARK}
    return trial


def rebuild(lines: list[Line], readings: list[Reading]) -> Rebuilt:
    """The repaired journal of ``lines`` (see the module docstring)."""
    replay, refused = _replay(lines, {r.line.number: r for r in readings})
    studies = {s._study_id: s for s in replay.get_all_studies()}
    trials = {sid: replay.get_all_trials(sid, None) for sid in studies}
    trial_at = {t._trial_id: (sid, t) for sid, ts in trials.items() for t in ts}
    name_of = {sid: s.study_name for sid, s in studies.items()}
    dropped = {sid: r for r in readings for sid in r.new_studies if sid in studies}

    lost: dict[int, tuple[int, str]] = {}  # trial id -> (damaged line, why)
    for reading in readings:
        for tid in (*reading.new_trials, *reading.trials):
            lost.setdefault(tid, (reading.line.number, reading.line.reason))
    damaged = [DamagedLine(r.line.number, r.line.offset, r.line.reason,
                           _describe(r, trial_at, name_of)) for r in readings]
    for line, why in refused:
        target = (line.log or {}).get("trial_id")
        damaged.append(DamagedLine(line.number, line.offset, why,
                                   _describe_refused(line, trial_at, name_of)))
        if isinstance(target, int) and target in trial_at:
            lost.setdefault(target, (line.number, why))

    content, lost_trials = _write(studies, trial_at, dropped, lost)
    lost_studies = tuple(
        LostStudy("" if name_of[sid].startswith(LOST_STUDY_PREFIX) else name_of[sid],
                  r.line.number, len(trials[sid])) for sid, r in sorted(dropped.items()))
    return Rebuilt(content, tuple(sorted(damaged, key=lambda d: d.number)), lost_trials,
                   lost_studies, tuple(_notes(readings, name_of)))


def _write(studies: dict[int, FrozenStudy], trial_at: dict[int, tuple[int, FrozenTrial]],
           dropped: dict[int, Reading], lost: dict[int, tuple[int, str]]
           ) -> tuple[bytes, tuple[LostTrial, ...]]:
    """The new journal's bytes, and the trials written as lost."""
    # Studies are written as log lines directly (Optuna's create_new_study would announce
    # each one as newly created); trials through Optuna's own writer of a whole trial.
    written = _MemoryBackend()
    new_id: dict[int, int] = {}
    for sid, study in sorted(studies.items()):
        if sid not in dropped:
            new_id[sid] = len(new_id)
            written.append_logs(_study_logs(study, new_id[sid]))
    out = JournalStorage(written)
    lost_trials = []
    for tid, (sid, trial) in sorted(trial_at.items()):
        if sid in dropped:
            continue
        if tid in lost:
            number, why = lost[tid]
            lost_trials.append(LostTrial(studies[sid].study_name, trial.number, number,
                                         trial.state.name))
            trial = _failed(trial, number, why)
        out.create_new_trial(new_id[sid], template_trial=_clean(trial))
    content = "".join(encode_line(log) for log in written.logs).encode("utf-8")
    return content, tuple(lost_trials)


def _trial_names(ids: tuple[int, ...], trial_at: dict[int, tuple[int, FrozenTrial]],
                 name_of: dict[int, str]) -> str:
    named = [f"trial {trial_at[t][1].number} of study {name_of[trial_at[t][0]]!r}"
             for t in ids if t in trial_at]
    return ", ".join(named) if named else "a trial that no longer exists"


def _describe(reading: Reading, trial_at: dict[int, tuple[int, FrozenTrial]],
              name_of: dict[int, str]) -> str:
    """What a damaged line held, for people."""
    parts = []
    for sid in reading.new_studies:
        name = name_of.get(sid, "")
        parts.append("the creation of a study whose name cannot be read"
                     if not name or name.startswith(LOST_STUDY_PREFIX)
                     else f"the creation of study {name!r}")
    parts += [f"a repeated creation of study {name!r} (it existed: nothing lost)"
              for name in reading.repeated]
    if reading.new_trials:
        parts.append("the creation of " + _trial_names(reading.new_trials, trial_at, name_of))
    if reading.trials:
        parts.append("an update of " + _trial_names(reading.trials, trial_at, name_of))
    deleted = {e.study_id for e in reading.events if e.kind == "delete"}
    for sid in reading.studies:
        if sid in deleted:
            parts.append(f"the deletion of study id {sid}")
        else:
            parts.append(f"an attribute of study {name_of.get(sid, sid)!r}")
    if not parts:
        parts.append("nothing that changes a study or a trial")
    return "; ".join(parts) + (" (guessed)" if reading.guessed else "")


def _describe_refused(line: Line, trial_at: dict[int, tuple[int, FrozenTrial]],
                      name_of: dict[int, str]) -> str:
    tid = (line.log or {}).get("trial_id")
    if isinstance(tid, int):
        return "an update of " + _trial_names((tid,), trial_at, name_of)
    return f"operation {(line.log or {}).get('op_code')}"


def _notes(readings: list[Reading], name_of: dict[int, str]) -> list[str]:
    notes = []
    for reading in readings:
        deleted = {e.study_id for e in reading.events if e.kind == "delete"}
        for sid in reading.studies:
            if sid in deleted:
                continue
            notes.append(f"study {name_of.get(sid, sid)!r} lost an attribute written at line "
                         f"{reading.line.number}; foldwise writes its attributes again when "
                         "the same optimize call runs")
        if reading.guessed:
            notes.append(f"line {reading.line.number} did not say enough of what it held; it "
                         "was read as what keeps the later lines consistent")
    return notes
