"""The lines of a journal file, each intact or damaged, and what a damaged one still tells.

The first step of :func:`foldwise.storage.repair_journal`. A line is **intact** when it is
JSON, its checksum (``"fw_crc"``, see :mod:`foldwise.storage._journal_file`) matches when
it has one, and it is an operation Optuna's replay can apply (an ``op_code`` it knows and
the fields that operation needs). Lines written by plain Optuna carry no checksum and are
intact when they parse. Anything else is **damaged**; its raw bytes are searched for what
is still legible — operation codes, a study name, study and trial ids, the writer's
``worker_id`` — as :class:`Hints` for :mod:`foldwise.storage._journal_ids`, which decides
what the line held. A last line without its newline is a write cut short (the journal's
readers skip it and the next writer removes it); it is counted, not treated as damage.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import TrialState

from foldwise.storage._journal_file import decode_line, split_lines

__all__ = [
    "CREATE_STUDY",
    "CREATE_TRIAL",
    "DELETE_STUDY",
    "SET_STATE",
    "SET_STUDY_SYSTEM_ATTR",
    "SET_STUDY_USER_ATTR",
    "SET_TRIAL_USER_ATTR",
    "STUDY_OPS",
    "TRIAL_OPS",
    "Hints",
    "Line",
    "fits",
    "operations",
    "scan",
]

# Optuna's journal operation codes (optuna.storages.journal JournalOperation), spelled out
# so that reading a damaged file needs no private Optuna name.
CREATE_STUDY, DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR = 0, 1, 2, 3
CREATE_TRIAL, SET_PARAM, SET_STATE, SET_INTERMEDIATE = 4, 5, 6, 7
SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR, DISCARD_TRIALS = 8, 9, 10
STUDY_OPS = (DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR)
TRIAL_OPS = (SET_PARAM, SET_STATE, SET_INTERMEDIATE, SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR)

# The fields each operation needs, with their types (bool is not an int here).
_INT, _STR, _DICT, _LIST = (int,), (str,), (dict,), (list,)
_NUMBER = (int, float)
_FIELDS: dict[int, dict[str, tuple[type, ...]]] = {
    CREATE_STUDY: {"study_name": _STR, "directions": _LIST},
    DELETE_STUDY: {"study_id": _INT},
    SET_STUDY_USER_ATTR: {"study_id": _INT, "user_attr": _DICT},
    SET_STUDY_SYSTEM_ATTR: {"study_id": _INT, "system_attr": _DICT},
    CREATE_TRIAL: {"study_id": _INT},
    SET_PARAM: {"trial_id": _INT, "param_name": _STR, "param_value_internal": _NUMBER,
                "distribution": _STR},
    SET_STATE: {"trial_id": _INT, "state": _INT},
    SET_INTERMEDIATE: {"trial_id": _INT, "step": _INT, "intermediate_value": _NUMBER},
    SET_TRIAL_USER_ATTR: {"trial_id": _INT, "user_attr": _DICT},
    SET_TRIAL_SYSTEM_ATTR: {"trial_id": _INT, "system_attr": _DICT},
    DISCARD_TRIALS: {},
}


# The keys that tell each operation apart, and keys it never has.
_SIGNATURES: dict[int, set[str]] = {
    CREATE_STUDY: {"study_name", "directions"},
    DELETE_STUDY: {"study_id"},
    SET_STUDY_USER_ATTR: {"study_id", "user_attr"},
    SET_STUDY_SYSTEM_ATTR: {"study_id", "system_attr"},
    CREATE_TRIAL: {"study_id", "datetime_start"},
    SET_PARAM: {"trial_id", "param_name"},
    SET_STATE: {"trial_id", "state"},
    SET_INTERMEDIATE: {"trial_id", "step"},
    SET_TRIAL_USER_ATTR: {"trial_id", "user_attr"},
    SET_TRIAL_SYSTEM_ATTR: {"trial_id", "system_attr"},
}
_NEVER: dict[int, set[str]] = {CREATE_STUDY: {"study_id", "trial_id"},
                               CREATE_TRIAL: {"trial_id"}}
_DELETE_ONLY = {"op_code", "worker_id", "study_id", "fw_crc"}


def fits(op: int, keys: frozenset[str]) -> bool:
    """Whether a line with these keys can be operation ``op``."""
    if op not in _SIGNATURES or not _SIGNATURES[op] <= keys:
        return False
    if op == DELETE_STUDY:
        return keys <= _DELETE_ONLY
    return not _NEVER.get(op, set()) & keys


def operations(ops: tuple[int, ...], keys: frozenset[str]) -> list[int]:
    """The operations a damaged line most likely held: the legible ``op_code`` values that
    fit its keys; else the one operation its keys fit; else the legible codes as they are."""
    fitting = [op for op in ops if fits(op, keys)]
    if fitting:
        return fitting
    by_keys = [op for op in _SIGNATURES if fits(op, keys)]
    return by_keys if len(by_keys) == 1 else list(ops)


@dataclass(frozen=True)
class Hints:
    """What is still legible in a damaged line (each value may itself be damaged)."""

    ops: tuple[int, ...] = ()
    study_names: tuple[str, ...] = ()
    study_ids: tuple[int, ...] = ()
    trial_ids: tuple[int, ...] = ()
    worker: str | None = None
    directions: tuple[int, ...] = ()
    keys: frozenset[str] = frozenset()  # every "key": seen


@dataclass(frozen=True)
class Line:
    """One line of the journal: its place, and its operation or why it is damaged."""

    number: int  # 1-based
    offset: int  # byte offset of its first byte
    log: dict[str, Any] | None  # the operation (checksum removed); None when damaged
    reason: str = ""  # why it is damaged
    hints: Hints = field(default_factory=Hints)

    @property
    def intact(self) -> bool:
        return self.log is not None

    @property
    def op(self) -> int | None:
        return None if self.log is None else self.log["op_code"]


@functools.lru_cache(maxsize=1024)
def _distribution(text: str) -> BaseDistribution:
    """A parameter's distribution from its JSON (a journal repeats the same few)."""
    return json_to_distribution(text)


def _problem(log: dict[str, Any]) -> str:
    """Why Optuna's replay could not apply ``log``, or ``""``."""
    op = log.get("op_code")
    if type(op) is not int or op not in _FIELDS:
        return f"it is not a journal operation (op_code {op!r})"
    if not isinstance(log.get("worker_id"), str):
        return "it names no writer (worker_id)"
    for name, types in _FIELDS[op].items():
        value = log.get(name)
        if type(value) not in types:
            return f"its field {name!r} is missing or has the wrong type ({value!r:.40})"
    try:
        if op in (SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR, SET_TRIAL_USER_ATTR,
                  SET_TRIAL_SYSTEM_ATTR):
            if len(log.get("user_attr", log.get("system_attr", {}))) != 1:
                return "it sets other than one attribute"
        elif op == SET_STATE:
            TrialState(log["state"])
        elif op == SET_PARAM:
            _distribution(log["distribution"])
        elif op == CREATE_STUDY:
            if not all(type(d) is int and d in (1, 2) for d in log["directions"]):
                return "its study directions are not 1 (minimize) or 2 (maximize)"
        elif op == CREATE_TRIAL:
            return _template_problem(log)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"Optuna cannot read it ({type(exc).__name__}: {exc})"
    return ""


def _template_problem(log: dict[str, Any]) -> str:
    """Why a trial creation with a template (a trial written whole) cannot be replayed."""
    start = log.get("datetime_start")
    if start is not None and not isinstance(start, str):
        return "its start time is not a text"
    distributions = {k: json_to_distribution(v) for k, v in log.get("distributions", {}).items()}
    for name, value in (log.get("params") or {}).items():
        distributions[name].to_external_repr(value)  # KeyError: a parameter without one
    if "state" in log:
        TrialState(log["state"])
    for key in ("user_attrs", "system_attrs", "intermediate_values"):
        if not isinstance(log.get(key, {}), dict):
            return f"its {key} are not a mapping"
    for key in ("intermediate_values",):
        for step in log.get(key, {}):
            int(step)
    return ""


_OP = re.compile(rb'"op_code"\s*:\s*(\d+)')
_NAME = re.compile(rb'"study_name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_STUDY_ID = re.compile(rb'"study_id"\s*:\s*(\d+)')
_TRIAL_ID = re.compile(rb'"trial_id"\s*:\s*(\d+)')
_WORKER = re.compile(rb'"worker_id"\s*:\s*"([^"\\]*)"')
_DIRECTIONS = re.compile(rb'"directions"\s*:\s*\[([0-9,\s]*)\]')
_KEY = re.compile(rb'"([A-Za-z_]{1,40})"\s*:')


def _hints(raw: bytes) -> Hints:
    """Read what is legible in a damaged line (its keys are matched, not parsed)."""
    names = []
    for match in _NAME.finditer(raw):
        try:
            names.append(json.loads(b'"' + match.group(1) + b'"'))
        except ValueError:
            continue
    worker = _WORKER.search(raw)
    directions = _DIRECTIONS.search(raw)
    return Hints(
        ops=tuple(int(m.group(1)) for m in _OP.finditer(raw) if len(m.group(1)) < 4),
        study_names=tuple(names),
        study_ids=tuple(int(m.group(1)) for m in _STUDY_ID.finditer(raw) if len(m.group(1)) < 10),
        trial_ids=tuple(int(m.group(1)) for m in _TRIAL_ID.finditer(raw) if len(m.group(1)) < 10),
        worker=None if worker is None else worker.group(1).decode("utf-8", "replace"),
        directions=tuple(int(d) for d in directions.group(1).split(b",") if d.strip())
        if directions else (),
        keys=frozenset(m.group(1).decode() for m in _KEY.finditer(raw)))


def scan(data: bytes) -> tuple[list[Line], int]:
    """The lines of a journal's bytes, and the length of an unterminated last line (0: none).

    Parameters
    ----------
    data
        The whole journal file.

    Returns
    -------
    lines, torn
        Every complete line, intact or damaged, in order; the bytes of a last line cut
        short (not included in ``lines``).
    """
    lines: list[Line] = []
    offset = 0
    for number, raw in enumerate(split_lines(data), start=1):
        if not raw.endswith(b"\n"):
            return lines, len(raw)
        log, why = decode_line(raw)
        if log is not None:
            why = _problem(log)
        if why:
            lines.append(Line(number, offset, None, why, _hints(raw)))
        else:
            lines.append(Line(number, offset, log))
        offset += len(raw)
    return lines, 0
