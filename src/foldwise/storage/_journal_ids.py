"""What each damaged journal line held, decided so that every later id stays right.

Optuna's journal gives ids implicitly: a study's id is the number of studies created
before it (a repeated creation of an existing name creates nothing), a trial's id the
number of trials created before it, and every later line refers to those numbers. Dropping
a damaged line that created a study or a trial would shift every later id by one and
silently attach the rest of the journal to the wrong trials; keeping a line that created
nothing as if it had would shift them the other way. So before anything is replayed, each
damaged line is given a **reading**: the creations it held, if any, which the repair
replays as placeholders so that every later id means what it meant when it was written.

The reading comes from what is still legible in the line (its operation codes, study name,
ids; :class:`~foldwise.storage._journal_lines.Hints`) and is checked against the lines
that follow: ids are counted the way Optuna's replay counts them, and a reading under
which later intact lines would refer to a study or trial that does not exist, or update a
trial that is already finished, is worse than one under which they do not. A handful of
readings is scored over the next :data:`WINDOW` lines — what the line says it held (its
legible ``op_code``, or the operation its keys fit), nothing, one trial, the study it
names, a study with no name — and the most consistent one wins; ties go to what the line
says. A reading that is not what the line says is marked ``guessed``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from foldwise.records import FOLD_ATTR, TRIAL_ATTR
from foldwise.storage._journal_lines import (
    CREATE_STUDY,
    CREATE_TRIAL,
    DELETE_STUDY,
    SET_STATE,
    SET_STUDY_USER_ATTR,
    SET_TRIAL_USER_ATTR,
    STUDY_OPS,
    TRIAL_OPS,
    Line,
    operations,
)

__all__ = ["LOST_STUDY_PREFIX", "WINDOW", "Event", "Reading", "read_damage"]

#: Lines after a damaged one over which its possible readings are compared.
WINDOW = 2000

#: Name given to a study whose creation line is damaged and whose name cannot be read (it
#: is dropped by the repair; no real study name starts with a NUL character).
LOST_STUDY_PREFIX = "\x00lost study of line "


@dataclass(frozen=True)
class Event:
    """A creation (or deletion) a damaged line is read to have held."""

    kind: str  # "study" | "trial" | "delete"
    study_id: int = -1  # "trial": its study; "delete": the study deleted
    name: str = ""  # "study": its name
    directions: tuple[int, ...] = (2,)


@dataclass(frozen=True)
class Reading:
    """What one damaged line is taken to have held, in the ids of the whole journal.

    Attributes
    ----------
    line
        The damaged line.
    events
        The creations replayed in its place (placeholders).
    new_studies, new_trials
        The ids of the studies and trials those events created.
    repeated
        Names of studies it created again (they existed already: nothing was lost).
    trials
        Trials it updated: their stored state is incomplete.
    studies
        Studies whose attributes it set, or that it deleted.
    guessed
        True when the reading is not what the line's legible content says, or that content
        was not enough to tell (chosen by consistency with the lines that follow).
    """

    line: Line
    events: tuple[Event, ...]
    new_studies: tuple[int, ...] = ()
    new_trials: tuple[int, ...] = ()
    repeated: tuple[str, ...] = ()
    trials: tuple[int, ...] = ()
    studies: tuple[int, ...] = ()
    guessed: bool = False


class _Ids:
    """The journal's ids counted as Optuna's replay counts them, and the surprises met."""

    def __init__(self, trial_folds: dict[int, set[int]] | None = None,
                 study_folds: dict[int, int] | None = None) -> None:
        # foldwise's own evidence of where a trial belongs (shared, never copied): the fold
        # numbers a trial's record evaluates, and the fold number of each fold study
        self.trial_folds = trial_folds or {}
        self.study_folds = study_folds or {}
        self.by_name: dict[str, int] = {}
        self.by_id: dict[int, str] = {}
        self.next_study = 0
        self.trial_study: list[int] = []
        self.finished: list[bool] = []
        self.last_study_of: dict[str | None, int] = {}  # worker -> study of its last trial
        self.problems = 0

    def copy(self) -> _Ids:
        other = copy.copy(self)
        other.by_name, other.by_id = dict(self.by_name), dict(self.by_id)
        other.trial_study, other.finished = list(self.trial_study), list(self.finished)
        other.last_study_of = dict(self.last_study_of)
        return other

    def create_study(self, name: str) -> int | None:
        if name in self.by_name:
            return None  # a repeated creation: Optuna's replay creates nothing
        sid = self.next_study
        self.next_study += 1
        self.by_name[name], self.by_id[sid] = sid, name
        return sid

    def delete_study(self, sid: int) -> None:
        if sid in self.by_id:
            del self.by_name[self.by_id.pop(sid)]
        else:
            self.problems += 1

    def refer_study(self, sid: int) -> None:
        if sid not in self.by_id:
            self.problems += 1

    def create_trial(self, sid: int, worker: str | None, finished: bool = False) -> int | None:
        if sid not in self.by_id:
            self.problems += 1
            return None
        self.trial_study.append(sid)
        self.finished.append(finished)
        self.last_study_of[worker] = self.last_study_of[None] = sid
        return len(self.trial_study) - 1

    def refer_trial(self, tid: int, finishes: bool) -> None:
        if tid >= len(self.finished) or self.finished[tid]:
            self.problems += 1
        elif finishes:
            self.finished[tid] = True

    def apply(self, log: dict[str, Any]) -> None:
        """Count an intact line (one validated by ``_journal_lines``)."""
        op = log["op_code"]
        if op == CREATE_STUDY:
            self.create_study(log["study_name"])
        elif op == DELETE_STUDY:
            self.delete_study(log["study_id"])
        elif op in STUDY_OPS:
            self.refer_study(log["study_id"])
        elif op == CREATE_TRIAL:
            state = log.get("state")
            self.create_trial(log["study_id"], log["worker_id"],
                              state is not None and TrialState(state).is_finished())
        elif op in TRIAL_OPS:
            self.refer_trial(log["trial_id"], op == SET_STATE
                             and TrialState(log["state"]).is_finished())

    def play(self, events: tuple[Event, ...], worker: str | None
             ) -> tuple[list[int], list[int], list[str]]:
        """Apply a reading's events: (new study ids, new trial ids, repeated names)."""
        studies: list[int] = []
        trials: list[int] = []
        repeated: list[str] = []
        for event in events:
            if event.kind == "study":
                sid = self.create_study(event.name)
                if sid is None:
                    repeated.append(event.name)
                else:
                    studies.append(sid)
            elif event.kind == "trial":
                tid = self.create_trial(event.study_id, worker)
                if tid is not None:
                    trials.append(tid)
            else:
                self.delete_study(event.study_id)
        return studies, trials, repeated

    def guess_study(self, line: Line) -> int | None:
        """The study a trial created by ``line`` most likely belongs to: the one the line
        names; else the fold study of the fold the trial's own record evaluates (foldwise);
        else the study of its writer's last trial, of the last trial, the newest study."""
        for sid in line.hints.study_ids:
            if sid in self.by_id:
                return sid
        recent = [self.last_study_of.get(w) for w in (line.hints.worker, None)]
        folds = self.trial_folds.get(len(self.trial_study), set())
        matching = [sid for sid in self.by_id if self.study_folds.get(sid) in folds]
        for candidate in [*(s for s in recent if s in matching), *reversed(matching), *recent]:
            if candidate is not None and candidate in self.by_id:
                return candidate
        return max(self.by_id, default=None)


def _said(line: Line, ids: _Ids) -> tuple[Event, ...]:
    """The events the legible content of ``line`` names (may be empty)."""
    hints = line.hints
    names = list(hints.study_names)
    directions = tuple(d for d in hints.directions if d in (1, 2)) or (2,)
    placeholder = f"{LOST_STUDY_PREFIX}{line.number}"
    events: list[Event] = []
    for op in operations(hints.ops, hints.keys):
        if op == CREATE_STUDY:
            events.append(Event("study", name=names.pop(0) if names else placeholder,
                                directions=directions))
        elif op == CREATE_TRIAL:
            sid = ids.guess_study(line)
            if sid is not None:
                events.append(Event("trial", study_id=sid))
        elif op == DELETE_STUDY:
            known = [sid for sid in hints.study_ids if sid in ids.by_id]
            if known:
                events.append(Event("delete", study_id=known[0]))
    return tuple(events)


def _alternatives(line: Line, ids: _Ids) -> list[tuple[Event, ...]]:
    found: list[tuple[Event, ...]] = [_said(line, ids), ()]
    sid = ids.guess_study(line)
    if sid is not None:
        found.append((Event("trial", study_id=sid),))
    found += [(Event("study", name=name),) for name in line.hints.study_names[:1]]
    found.append((Event("study", name=f"{LOST_STUDY_PREFIX}{line.number}"),))
    unique: list[tuple[Event, ...]] = []
    for events in found:
        if events not in unique:
            unique.append(events)
    return unique


def _score(ids: _Ids, events: tuple[Event, ...], lines: list[Line], start: int) -> int:
    """Surprises met in the lines after ``start`` if the line there held ``events``."""
    trying = ids.copy()
    trying.problems = 0
    trying.play(events, lines[start].hints.worker)
    for line in lines[start + 1:start + 1 + WINDOW]:
        if line.log is not None:
            trying.apply(line.log)
        else:  # a later damaged line: taken as what it says
            trying.play(_said(line, trying), line.hints.worker)
    return trying.problems


def _neighbours(lines: list[Line], index: int, created: dict[int, int]) -> list[tuple[int, str]]:
    """(trial id, writer) of the trial operations right before and after line ``index``."""
    found = []
    for other in (index - 1, index + 1):
        if not 0 <= other < len(lines) or lines[other].log is None:
            continue
        log = lines[other].log
        assert log is not None
        if log["op_code"] in TRIAL_OPS:
            found.append((log["trial_id"], log["worker_id"]))
        elif log["op_code"] == CREATE_TRIAL and other < index and other in created:
            found.append((created[other], log["worker_id"]))
    return found


def _updated_trials(line: Line, lines: list[Line], index: int, n_trials: int,
                    created: dict[int, int]) -> tuple[tuple[int, ...], bool]:
    """Trials a damaged update line most likely changed, and whether that is a guess."""
    hints = line.hints
    named = {t for t in hints.trial_ids if t < n_trials}
    around = _neighbours(lines, index, created)
    beside = {t for t, _ in around}
    if named and (named & beside or not beside):
        return tuple(sorted(named)), False  # what it names, confirmed by a neighbour
    same_writer = {t for t, worker in around if hints.worker in (None, worker)}
    # a named id no neighbour confirms may be the damaged part: take the neighbours too
    chosen = named | same_writer or beside
    return tuple(sorted(chosen)), True


def _fold_evidence(lines: list[Line]) -> tuple[dict[int, set[int]], dict[int, int]]:
    """From intact lines: the folds each trial's foldwise record evaluates, and the fold
    number of each fold study (both empty for journals foldwise did not write)."""
    trial_folds: dict[int, set[int]] = {}
    study_folds: dict[int, int] = {}
    for line in lines:
        log = line.log
        if log is None or log["op_code"] not in (SET_STUDY_USER_ATTR, SET_TRIAL_USER_ATTR):
            continue
        record = log["user_attr"].get(TRIAL_ATTR if "trial_id" in log else FOLD_ATTR)
        if not isinstance(record, dict):
            continue
        if "trial_id" in log and isinstance(record.get("evaluations"), dict):
            trial_folds[log["trial_id"]] = {
                int(k) for k in record["evaluations"] if str(k).isdigit()}
        elif "study_id" in log and isinstance(record.get("number"), int):
            study_folds[log["study_id"]] = record["number"]
    return trial_folds, study_folds


def read_damage(lines: list[Line]) -> list[Reading]:
    """A :class:`Reading` for every damaged line of ``lines`` (in order)."""
    ids = _Ids(*_fold_evidence(lines))
    readings: list[Reading] = []
    created: dict[int, int] = {}  # line index -> id of the trial that intact line created
    for index, line in enumerate(lines):
        if line.log is not None:
            before = len(ids.trial_study)
            ids.apply(line.log)
            if len(ids.trial_study) > before:
                created[index] = before
            continue
        said = _said(line, ids)
        options = _alternatives(line, ids)
        scores = [_score(ids, events, lines, index) for events in options]
        events = options[scores.index(min(scores))]
        studies, trials, repeated = ids.play(events, line.hints.worker)
        hints = line.hints
        ops = operations(hints.ops, hints.keys)
        updates = set(ops) & set(TRIAL_OPS) or (not ops and "trial_id" in hints.keys)
        legible = bool(ops) or bool(events)
        touched: tuple[int, ...] = ()
        guessed = events != said
        if updates or not legible:
            touched, unsure = _updated_trials(line, lines, index, len(ids.trial_study), created)
            guessed = guessed or unsure
        study_ops = set(ops) & {op for op in STUDY_OPS if op != DELETE_STUDY}
        attrs = [sid for sid in hints.study_ids if sid in ids.by_id] if study_ops else []
        deleted = [e.study_id for e in events if e.kind == "delete"]
        readings.append(Reading(line, events, tuple(studies), tuple(trials), tuple(repeated),
                                touched, tuple(attrs[:1] + deleted), guessed))
    return readings
