"""Typed, versioned records of what an optimization stores — written and read only here.

An optimization keeps everything it needs in its Optuna storage as JSON user attributes.
This module owns their shape; the optimizer writes them and the aggregator reads them, and
neither builds or parses the JSON itself:

* :class:`StudyManifest` — what identifies an optimization (data, splitter and folds,
  strategy and its import path, search space, metric, backtest settings, mode), stored on
  the manifest study under ``"foldwise"``. Resuming compares manifests field by field
  (:meth:`StudyManifest.differences`).
* :class:`TrialRecord` — what one trial stored: the parameters the strategy ran with, per
  fold its :class:`Evaluation` (metrics of the train and test windows, the cache keys of
  the runs they were cut from, the backtests executed), or why it failed
  (:class:`Failure`, with a :class:`FailureKind`) or was infeasible. Stored under
  ``"foldwise_trial"`` in one write at the end of the trial.
* :class:`StoredTrial` — a trial as read back: Optuna's own fields (number, state, value,
  times) and its :class:`TrialRecord`.
* :class:`SelectionRecord` — a set a fold's selection rule made up rather than picked
  (``"top_k_mean"``: the average of its best sets) and its evaluation on the fold, stored
  on the fold study under ``"foldwise_selection"`` after the trials.
* :class:`StudyRecord` — a whole optimization as read back: its manifest and the stored
  trials of each fold; what :class:`foldwise.WalkForwardResult` is built from.
* The **run config** — for a study started from a config file (``foldwise run``), the
  parsed config as canonical JSON, stored on the manifest study under
  ``"foldwise_config"`` (:func:`write_run_config` / :func:`read_run_config`), so that
  ``foldwise resume`` runs it again without the file. Its content is the command line's
  to define; this module only versions and stores it.

Every record has ``to_json``/``from_json`` and carries a ``format`` number. The current
format is :data:`FORMAT`; studies written by foldwise 0.1 (format 1: the trial's metrics,
error and infeasibility in three separate attributes) are read and converted on the fly, so
they load unchanged. A newer format than this version knows is refused with a message that
says to upgrade.
"""

from __future__ import annotations

import json
import traceback as _traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from foldwise._hashing import hash_text
from foldwise._version import __version__
from foldwise.backtest import BacktestSettings
from foldwise.errors import OptimizationError

__all__ = [
    "FOLD_ATTR",
    "FORMAT",
    "MANIFEST_ATTR",
    "RUN_CONFIG_ATTR",
    "SELECTION_ATTR",
    "TESTS_ATTR",
    "TRIAL_ATTR",
    "DataSummary",
    "Evaluation",
    "Failure",
    "FailureKind",
    "FoldWindow",
    "SelectionRecord",
    "StoredTrial",
    "StrategyIdentity",
    "StudyManifest",
    "StudyRecord",
    "TrialRecord",
    "failure_attrs",
    "read_fold_tests",
    "read_manifest",
    "read_run_config",
    "read_selection",
    "read_trial",
    "trial_budget",
    "write_fold_tests",
    "write_manifest",
    "write_run_config",
    "write_selection",
    "write_trial_record",
]

#: The format this version writes. 1: foldwise 0.1 (read and converted); 2: these records.
FORMAT = 2

#: User attribute of the manifest study holding the :class:`StudyManifest`.
MANIFEST_ATTR = "foldwise"
#: User attribute of the manifest study holding the config file it was started from.
RUN_CONFIG_ATTR = "foldwise_config"
#: User attribute of a trial holding its :class:`TrialRecord`.
TRIAL_ATTR = "foldwise_trial"
#: User attribute of a fold study naming its fold (``{"number", "fold_id", "study"}``).
FOLD_ATTR = "foldwise_fold"
#: User attribute of a fold study: test-window evaluations of its selected trials, for
#: strategies run per fold (``causal=False``), whose trials evaluate the training window only.
TESTS_ATTR = "foldwise_test"
#: User attribute of a fold study: the set its selection rule made up (a ``"top_k_mean"``
#: average) and its evaluation (:class:`SelectionRecord`).
SELECTION_ATTR = "foldwise_selection"

# Format 1 kept a trial's parts in three attributes.
_V1_METRICS, _V1_ERROR, _V1_INFEASIBLE = "foldwise_metrics", "foldwise_error", "foldwise_infeasible"


def _check_format(found: Any, what: str) -> int:
    if not isinstance(found, int) or found < 1:
        raise OptimizationError(
            f"the stored {what} has no valid format number ({found!r}); it was not written "
            "by foldwise. Start a new study.")
    if found > FORMAT:
        raise OptimizationError(
            f"the stored {what} has format {found}, newer than this foldwise {__version__} "
            f"reads (format {FORMAT}); upgrade foldwise (pip install -U foldwise) to open it.")
    return found


def _metrics(values: Mapping[str, Any] | None) -> dict[str, float] | None:
    return None if values is None else {str(k): float(v) for k, v in values.items()}


# --- trials --------------------------------------------------------------------------------


class FailureKind(StrEnum):
    """Why a trial failed, which decides whether it used the study's budget.

    ``STRATEGY`` and ``NON_FINITE`` are the strategy's own: the trial counts as evaluated.
    ``WORKER_DIED`` (the process running it was killed), ``INTERRUPTED`` (stopped by the
    user), ``FAULT`` (a fault outside the strategy stopped the run: a full disk, a
    read-only directory, a damaged cache index or storage) and ``RELEASED`` (given back
    unevaluated right after it was asked for, because trials numbered before it already
    filled the budget: another worker asked at the same moment) are not: the trial is run
    again.
    """

    STRATEGY = "strategy"
    NON_FINITE = "non_finite"
    WORKER_DIED = "worker_died"
    INTERRUPTED = "interrupted"
    FAULT = "fault"
    RELEASED = "released"

    @property
    def uses_budget(self) -> bool:
        return self in (FailureKind.STRATEGY, FailureKind.NON_FINITE)


@dataclass(frozen=True)
class Failure:
    """Why a trial failed: its kind, the exception's type and message, the traceback."""

    kind: FailureKind
    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, kind: FailureKind) -> Failure:
        message = str(exc) or {
            FailureKind.INTERRUPTED: "interrupted before it finished; it runs again on resume",
        }.get(kind, "(no message)")
        return cls(kind, type(exc).__name__, message, "".join(_traceback.format_exception(exc)))

    def describe(self) -> str:
        """``"Type: message"``."""
        return f"{self.type}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "type": self.type, "message": self.message,
                "traceback": self.traceback}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Failure:
        return cls(FailureKind(value["kind"]), str(value["type"]), str(value["message"]),
                   str(value.get("traceback", "")))


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one parameter set on one fold, and where they were cut from.

    Attributes
    ----------
    train, test
        Every metric of the training / test window (None: that window was not evaluated).
    runs
        Cache keys (digests) of the backtests the metrics come from: ``"full"`` for a causal
        strategy's full-history run, ``"train"`` / ``"test"`` for per-fold runs.
    offset
        Bar position (in the study's data) of the first bar of the per-fold runs; 0 for a
        full-history run.
    backtests
        Backtests executed for this evaluation (0: everything came from the cache).
    """

    train: Mapping[str, float] | None = None
    test: Mapping[str, float] | None = None
    runs: Mapping[str, str] = field(default_factory=dict)
    offset: int = 0
    backtests: int = 0

    def run_key(self, window: str) -> str:
        """Cache key of the run that ``window`` (``"train"`` or ``"test"``) was cut from."""
        key = self.runs.get("full") or self.runs.get(window)
        if key is None:
            raise OptimizationError(
                f"this evaluation stored no run for its {window} window; the study was made "
                "by a foldwise that did not record run keys. Run it again under a new study "
                "name.")
        return key

    def to_json(self) -> dict[str, Any]:
        return {"train": _metrics(self.train), "test": _metrics(self.test),
                "runs": dict(self.runs), "offset": self.offset, "backtests": self.backtests}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Evaluation:
        return cls(train=_metrics(value.get("train")), test=_metrics(value.get("test")),
                   runs={str(k): str(v) for k, v in (value.get("runs") or {}).items()},
                   offset=int(value.get("offset") or 0),
                   backtests=int(value.get("backtests") or 0))


@dataclass(frozen=True)
class TrialRecord:
    """What one trial stored (see the module docstring).

    Attributes
    ----------
    params
        The parameters the strategy ran with (fixed ones included).
    evaluations
        Per fold number, the :class:`Evaluation` of ``params`` (one fold in walk-forward
        mode, every fold reached in cross-validated mode).
    failure
        Why the trial failed, or None.
    infeasible
        The constraint the parameters violated (never backtested), or None.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    evaluations: Mapping[int, Evaluation] = field(default_factory=dict)
    failure: Failure | None = None
    infeasible: str | None = None

    @property
    def backtests(self) -> int:
        """Backtests this trial executed (0: a repeat served by the cache)."""
        return sum(e.backtests for e in self.evaluations.values())

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "params": dict(self.params),
                "evaluations": {str(k): e.to_json() for k, e in self.evaluations.items()},
                "failure": None if self.failure is None else self.failure.to_json(),
                "infeasible": self.infeasible}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TrialRecord:
        _check_format(value.get("format"), "trial record")
        failure = value.get("failure")
        return cls(params=dict(value.get("params") or {}),
                   evaluations={int(k): Evaluation.from_json(e)
                                for k, e in (value.get("evaluations") or {}).items()},
                   failure=None if failure is None else Failure.from_json(failure),
                   infeasible=value.get("infeasible"))


def _v1_trial_record(trial: FrozenTrial, fold: int | None) -> TrialRecord:
    """A format-1 trial (three attributes) as a :class:`TrialRecord`."""
    attrs = trial.user_attrs
    stored = attrs.get(_V1_METRICS) or {}
    if "evaluations" in stored:  # cross-validated: one evaluation per fold reached
        evaluations = {int(k): Evaluation.from_json(v) for k, v in stored["evaluations"].items()}
    elif stored:
        evaluations = {fold if fold is not None else 0: Evaluation.from_json(stored)}
    else:
        evaluations = {}
    error = attrs.get(_V1_ERROR)
    failure = None
    if isinstance(error, Mapping):
        kind = (FailureKind.WORKER_DIED if error.get("type") == "WorkerDied" else
                FailureKind.NON_FINITE if error.get("type") == "NonFiniteMetric" else
                FailureKind.STRATEGY)
        failure = Failure(kind, str(error.get("type")), str(error.get("message")),
                          str(error.get("traceback", "")))
    return TrialRecord(params=dict(trial.params), evaluations=evaluations, failure=failure,
                       infeasible=attrs.get(_V1_INFEASIBLE))


@dataclass(frozen=True)
class StoredTrial:
    """A trial as read back from the storage: Optuna's fields and its :class:`TrialRecord`."""

    number: int
    state: TrialState
    value: float | None
    record: TrialRecord
    started: datetime | None = None
    completed: datetime | None = None

    @property
    def params(self) -> Mapping[str, Any]:
        return self.record.params

    @property
    def uses_budget(self) -> bool:
        """Whether the trial counts toward its study's ``n_trials`` (see :func:`trial_budget`)."""
        failure = self.record.failure
        return _uses_budget(self.state, None if failure is None else failure.kind,
                            self.record.infeasible)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "state": self.state.name,
                "value": self.value, "record": self.record.to_json(),
                "started": None if self.started is None else self.started.isoformat(),
                "completed": None if self.completed is None else self.completed.isoformat()}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StoredTrial:
        def when(text: str | None) -> datetime | None:
            return None if text is None else datetime.fromisoformat(text)

        return cls(int(value["number"]), TrialState[value["state"]], value.get("value"),
                   TrialRecord.from_json(value["record"]), when(value.get("started")),
                   when(value.get("completed")))


def read_trial(trial: FrozenTrial, fold: int | None = None) -> StoredTrial:
    """The :class:`StoredTrial` of an Optuna trial (format 2, or format 1 converted).

    ``fold`` is the fold number of a walk-forward fold study (format 1 did not record it).
    A trial without a record (still running, or failed before foldwise wrote one) gets an
    empty record with Optuna's parameters.
    """
    stored = trial.user_attrs.get(TRIAL_ATTR)
    if stored is not None:
        record = TrialRecord.from_json(stored)
    elif any(k in trial.user_attrs for k in (_V1_METRICS, _V1_ERROR, _V1_INFEASIBLE)):
        record = _v1_trial_record(trial, fold)
    else:
        record = TrialRecord(params=dict(trial.params))
    value = trial.value if trial.state == TrialState.COMPLETE else None
    return StoredTrial(trial.number, trial.state, value, record, trial.datetime_start,
                       trial.datetime_complete)


def trial_budget(trial: FrozenTrial) -> bool:
    """Whether a finished trial used its study's budget (read without parsing its metrics).

    COMPLETE trials do, and FAIL trials whose failure was the strategy's own
    (:attr:`FailureKind.uses_budget`), and PRUNED ones a pruner stopped. Infeasible sets
    (never backtested), trials of dead or interrupted workers, trials failed without a
    foldwise record and RUNNING ones do not.
    """
    attrs = trial.user_attrs
    stored = attrs.get(TRIAL_ATTR)
    if stored is not None:
        failure, infeasible = stored.get("failure"), stored.get("infeasible")
        kind = None if failure is None else FailureKind(failure["kind"])
    else:  # format 1
        error, infeasible = attrs.get(_V1_ERROR), attrs.get(_V1_INFEASIBLE)
        kind = (None if not isinstance(error, Mapping) else FailureKind.WORKER_DIED
                if error.get("type") == "WorkerDied" else FailureKind.STRATEGY)
    return _uses_budget(trial.state, kind, infeasible)


def _uses_budget(state: TrialState, kind: FailureKind | None, infeasible: str | None) -> bool:
    """The budget rule of :func:`trial_budget`, on a trial's state and record."""
    if state == TrialState.COMPLETE:
        return True
    if state == TrialState.FAIL:
        return kind is not None and kind.uses_budget
    if state == TrialState.PRUNED:
        return infeasible is None
    return False


def write_trial_record(trial: optuna.Trial, record: TrialRecord) -> None:
    """Store ``record`` on the running ``trial`` (one user attribute, before it is told)."""
    trial.set_user_attr(TRIAL_ATTR, record.to_json())


def failure_attrs(failure: Failure, params: Mapping[str, Any]) -> dict[str, Any]:
    """User attributes recording ``failure`` on a trial failed from outside its worker."""
    return {TRIAL_ATTR: TrialRecord(params=dict(params), failure=failure).to_json()}


def read_fold_tests(study: optuna.Study) -> dict[int, Evaluation]:
    """Per trial number, the test evaluation stored on a fold study (see :data:`TESTS_ATTR`)."""
    stored = study.user_attrs.get(TESTS_ATTR) or {}
    return {int(k): Evaluation.from_json(v) for k, v in stored.items()}


def write_fold_tests(study: optuna.Study, tests: Mapping[int, Evaluation]) -> None:
    """Store the test evaluations of a fold study's selected trials."""
    study.set_user_attr(TESTS_ATTR, {str(k): e.to_json() for k, e in sorted(tests.items())})


@dataclass(frozen=True)
class SelectionRecord:
    """A parameter set a fold's selection rule made up, and how it did on the fold.

    Attributes
    ----------
    rule
        The rule's JSON (``{"rule": "top_k_mean", "k": ...}``), for the record.
    params
        The set (e.g. the average of the fold's best sets).
    sources
        Numbers of the trials it was made from, best first.
    evaluation
        Its :class:`Evaluation` on the fold's training and test windows (None: not
        evaluated, see ``failure``).
    failure
        Why the set cannot be the fold's choice (it violates a constraint, the strategy
        raised, its metric is not finite), or None.
    """

    rule: Mapping[str, Any]
    params: Mapping[str, Any]
    sources: tuple[int, ...] = ()
    evaluation: Evaluation | None = None
    failure: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "rule": dict(self.rule), "params": dict(self.params),
                "sources": list(self.sources),
                "evaluation": None if self.evaluation is None else self.evaluation.to_json(),
                "failure": self.failure}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SelectionRecord:
        _check_format(value.get("format"), "selection record")
        evaluation = value.get("evaluation")
        return cls(rule=dict(value.get("rule") or {}), params=dict(value.get("params") or {}),
                   sources=tuple(int(n) for n in value.get("sources") or ()),
                   evaluation=None if evaluation is None else Evaluation.from_json(evaluation),
                   failure=value.get("failure"))


def read_selection(study: optuna.Study) -> SelectionRecord | None:
    """The :class:`SelectionRecord` stored on a fold study, or None."""
    stored = study.user_attrs.get(SELECTION_ATTR)
    return None if stored is None else SelectionRecord.from_json(stored)


def write_selection(study: optuna.Study, record: SelectionRecord) -> None:
    """Store ``record`` on a fold study (replacing the one stored before)."""
    study.set_user_attr(SELECTION_ATTR, record.to_json())


# --- the manifest --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSummary:
    """The data an optimization ran on: its content hash, size and span."""

    content_hash: str
    n_dates: int
    n_assets: int
    first: str  # ISO date-time of the first bar
    last: str

    def to_json(self) -> dict[str, Any]:
        return {"content_hash": self.content_hash, "n_dates": self.n_dates,
                "n_assets": self.n_assets, "first": self.first, "last": self.last}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DataSummary:
        return cls(str(value["content_hash"]), int(value["n_dates"]), int(value["n_assets"]),
                   str(value["first"]), str(value["last"]))

    def describe(self) -> str:
        return (f"{self.n_dates} dates {self.first[:10]}..{self.last[:10]} x {self.n_assets} "
                f"asset(s) (content hash {self.content_hash[:12]}...)")


@dataclass(frozen=True)
class FoldWindow:
    """One fold of an optimization: its id, its bar ranges and their dates."""

    number: int
    fold_id: str
    train: tuple[tuple[int, int], ...]  # [start, stop) bar ranges
    test: tuple[tuple[int, int], ...]
    train_start: str  # ISO date-times of the first and last bar of each window
    train_end: str
    test_start: str
    test_end: str
    test_groups: tuple[int, ...] = ()  # CPCV: the groups of its test set

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "fold_id": self.fold_id,
                "train": [list(r) for r in self.train], "test": [list(r) for r in self.test],
                "train_start": self.train_start, "train_end": self.train_end,
                "test_start": self.test_start, "test_end": self.test_end,
                "test_groups": list(self.test_groups)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> FoldWindow:
        def ranges(items: Iterable[Iterable[int]]) -> tuple[tuple[int, int], ...]:
            return tuple((int(a), int(b)) for a, b in items)

        return cls(int(value["number"]), str(value["fold_id"]), ranges(value["train"]),
                   ranges(value["test"]), str(value["train_start"]), str(value["train_end"]),
                   str(value["test_start"]), str(value["test_end"]),
                   tuple(int(g) for g in value.get("test_groups") or ()))


@dataclass(frozen=True)
class StrategyIdentity:
    """The strategy of an optimization: name, code fingerprint, causality, import path.

    ``import_path`` (``"module:qualname"``) says where the strategy can be imported from to
    re-create a run from its key; None for a strategy defined where it cannot be imported
    (a notebook cell, a lambda, a nested function).
    """

    name: str
    fingerprint: str
    causal: bool
    import_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint, "causal": self.causal,
                "import_path": self.import_path}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StrategyIdentity:
        return cls(str(value["name"]), str(value["fingerprint"]), bool(value["causal"]),
                   value.get("import_path"))


# Fields compared on resume, in the order they are reported. The folds follow from the data
# and the splitter; version, top_k, select and benchmark do not identify the optimization
# (they steer what is read from its trials).
_IDENTITY = ("mode", "data", "splitter", "strategy", "metric", "direction", "space",
             "settings", "cv_aggregate", "warmup")


@dataclass(frozen=True)
class StudyManifest:
    """What identifies an optimization (stored on its manifest study).

    Attributes
    ----------
    mode
        ``"walk_forward"`` or ``"cv"``.
    data
        The data's :class:`DataSummary`.
    splitter
        ``{"repr", "config", "fold_set_id"}`` of the splitter.
    folds
        Every :class:`FoldWindow`.
    groups
        CPCV: the ``[start, stop)`` bars of each group; else None.
    strategy
        The :class:`StrategyIdentity`.
    metric, direction
        The optimized metric and ``"maximize"`` / ``"minimize"``.
    space
        The search space's description (:meth:`foldwise.SearchSpace.describe`).
    settings
        The :class:`~foldwise.BacktestSettings`.
    top_k
        Distinct sets per fold judged out of sample.
    cv_aggregate
        Cross-validated mode: how fold metrics are combined.
    warmup
        Per-fold strategies: bars of history before each training window.
    benchmark
        Cache key of the equal-weight universe over the same data and settings.
    lookahead_checked
        Whether the strategy passed foldwise's lookahead check (False: not checked, e.g.
        ``check_lookahead=False`` or a per-fold strategy).
    n_trials
        The budget of each study asked for by the latest call (None: not recorded).
    select
        How each fold chooses its parameter set: the selection rule's JSON
        (``{"rule": "best"}``, ``{"rule": "plateau", "radius": ..., "prior": ...}``,
        ``{"rule": "top_k_mean", "k": ...}``), set by the latest call. A study stored
        before rules existed reads as ``{"rule": "best"}``.
    """

    mode: str
    data: DataSummary
    splitter: Mapping[str, Any]
    folds: tuple[FoldWindow, ...]
    groups: tuple[tuple[int, int], ...] | None
    strategy: StrategyIdentity
    metric: str
    direction: str
    space: Mapping[str, Any]
    settings: BacktestSettings
    top_k: int
    cv_aggregate: str | None = None
    warmup: int | None = None
    benchmark: str | None = None
    lookahead_checked: bool = False
    n_trials: int | None = None
    select: Mapping[str, Any] = field(default_factory=lambda: {"rule": "best"})
    foldwise_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "foldwise_version": self.foldwise_version, "mode": self.mode,
            "data": self.data.to_json(), "splitter": dict(self.splitter),
            "folds": [f.to_json() for f in self.folds],
            "groups": None if self.groups is None else [list(g) for g in self.groups],
            "strategy": self.strategy.to_json(), "metric": self.metric,
            "direction": self.direction, "space": dict(self.space),
            "settings": self.settings.to_dict(), "top_k": self.top_k,
            "cv_aggregate": self.cv_aggregate, "warmup": self.warmup,
            "benchmark": self.benchmark, "lookahead_checked": self.lookahead_checked,
            "n_trials": self.n_trials, "select": dict(self.select),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StudyManifest:
        _check_format(value.get("format"), "study manifest")  # format 1 has the same fields
        groups = value.get("groups")
        return cls(
            mode=str(value["mode"]), data=DataSummary.from_json(value["data"]),
            splitter=dict(value["splitter"]),
            folds=tuple(FoldWindow.from_json(f) for f in value["folds"]),
            groups=None if groups is None else tuple((int(a), int(b)) for a, b in groups),
            strategy=StrategyIdentity.from_json(value["strategy"]),
            metric=str(value["metric"]), direction=str(value["direction"]),
            space=dict(value["space"]), settings=BacktestSettings.from_dict(value["settings"]),
            top_k=int(value.get("top_k") or 1), cv_aggregate=value.get("cv_aggregate"),
            warmup=value.get("warmup"), benchmark=value.get("benchmark"),
            lookahead_checked=bool(value.get("lookahead_checked", False)),
            n_trials=value.get("n_trials"),
            select=dict(value.get("select") or {"rule": "best"}),
            foldwise_version=str(value.get("foldwise_version", "")))

    def differences(self, new: StudyManifest) -> list[str]:
        """What ``new`` changes of what identifies this optimization, one sentence each."""
        changes = []
        for name in _IDENTITY:
            old_value, new_value = _comparable(self, name), _comparable(new, name)
            if old_value != new_value:
                changes.append(_describe_change(name, self, new))
        return changes


def _comparable(manifest: StudyManifest, name: str) -> Any:
    value = getattr(manifest, name)
    if name == "strategy":  # the import path locates the code; the fingerprint identifies it
        return (value.name, value.fingerprint, value.causal)
    if name in ("data", "settings"):
        return value.to_json() if name == "data" else value.to_dict()
    return value


def _describe_change(name: str, old: StudyManifest, new: StudyManifest) -> str:
    if name == "data":
        return f"the data changed: stored {old.data.describe()}, now {new.data.describe()}"
    if name == "splitter":
        return f"the splitter changed: stored {old.splitter['repr']}, now {new.splitter['repr']}"
    if name == "strategy":
        if old.strategy.name != new.strategy.name:
            return (f"the strategy changed: stored {old.strategy.name!r}, now "
                    f"{new.strategy.name!r}")
        return (f"the code of strategy {new.strategy.name!r} (or of a helper it calls) "
                f"changed: fingerprint {old.strategy.fingerprint[:12]}... -> "
                f"{new.strategy.fingerprint[:12]}...")
    if name == "settings":
        return f"the settings changed: stored {old.settings}, now {new.settings}"
    if name == "space":
        return f"the space changed: stored {old.space}, now {new.space}"
    return f"{name} changed: stored {getattr(old, name)!r}, now {getattr(new, name)!r}"


def read_manifest(study: optuna.Study) -> StudyManifest | None:
    """The manifest stored on ``study``, or None when it has none (not a foldwise study)."""
    stored = study.user_attrs.get(MANIFEST_ATTR)
    return None if stored is None else StudyManifest.from_json(stored)


def write_manifest(study: optuna.Study, manifest: StudyManifest) -> None:
    """Store ``manifest`` on the manifest study."""
    study.set_user_attr(MANIFEST_ATTR, manifest.to_json())


# --- the run config ------------------------------------------------------------------------


def write_run_config(study: optuna.Study, config: Mapping[str, Any]) -> None:
    """Store ``config`` (the canonical JSON of a parsed config file) on the manifest study.

    It is kept as ``{"format", "foldwise_version", "config"}`` under
    :data:`RUN_CONFIG_ATTR`; a later write replaces it (a config run again with a larger
    ``n_trials``).
    """
    study.set_user_attr(RUN_CONFIG_ATTR, {"format": FORMAT, "foldwise_version": __version__,
                                          "config": dict(config)})


def read_run_config(study: optuna.Study) -> dict[str, Any] | None:
    """The config stored on ``study`` by :func:`write_run_config`, or None when the study
    was not started from a config file (it was started from Python)."""
    stored = study.user_attrs.get(RUN_CONFIG_ATTR)
    if stored is None:
        return None
    if not isinstance(stored, Mapping) or not isinstance(stored.get("config"), Mapping):
        raise OptimizationError(
            f"the run config stored on study {study.study_name!r} is not one foldwise wrote "
            f"({type(stored).__name__}); run the study from its config file again "
            "(foldwise run FILE).")
    _check_format(stored.get("format"), "run config")
    return dict(stored["config"])


# --- a study as read back ------------------------------------------------------------------


@dataclass(frozen=True)
class StudyRecord:
    """A whole optimization as read back from its storage.

    Attributes
    ----------
    name
        The optimization's name.
    manifest
        Its :class:`StudyManifest`.
    trials
        Walk-forward: per fold number, the trials of its study. Cross-validated: the trials
        of the one study under the key ``None``.
    fold_tests
        Per-fold strategies: per fold number, the test evaluation of each selected trial.
    location
        Where it was read from (the storage, for messages).
    selections
        Per fold number, the set its selection rule made up (:class:`SelectionRecord`).
    content_digest
        The xxh3-128 of :meth:`to_text` when the reader computed it already (a snapshot
        stores it), else ``""`` (:meth:`digest` computes it).
    """

    name: str
    manifest: StudyManifest
    trials: Mapping[int | None, tuple[StoredTrial, ...]]
    fold_tests: Mapping[int, Mapping[int, Evaluation]] = field(default_factory=dict)
    location: str = ""
    selections: Mapping[int, SelectionRecord] = field(default_factory=dict)
    content_digest: str = field(default="", compare=False, repr=False)

    def to_text(self) -> str:
        """:meth:`to_json` as compact JSON text: what :meth:`digest` hashes."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=True)

    def digest(self) -> str:
        """A content address of the study's records (everything but ``location``): equal
        for equal records, whichever storage they were read from."""
        return self.content_digest or hash_text(self.to_text())

    def to_json(self) -> dict[str, Any]:
        """Everything but ``location`` (where it was read from), as JSON."""
        return {"format": FORMAT, "name": self.name, "manifest": self.manifest.to_json(),
                "trials": [[number, [t.to_json() for t in trials]]
                           for number, trials in self.trials.items()],
                "fold_tests": [[number, {str(k): e.to_json() for k, e in tests.items()}]
                               for number, tests in self.fold_tests.items()],
                "selections": [[number, s.to_json()] for number, s in self.selections.items()]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any], location: str = "",
                  content_digest: str = "") -> StudyRecord:
        _check_format(value.get("format"), "study record")
        return cls(
            name=str(value["name"]), manifest=StudyManifest.from_json(value["manifest"]),
            trials={number: tuple(StoredTrial.from_json(t) for t in trials)
                    for number, trials in value["trials"]},
            fold_tests={int(number): {int(k): Evaluation.from_json(e) for k, e in tests.items()}
                        for number, tests in value["fold_tests"]},
            location=location,
            selections={int(number): SelectionRecord.from_json(s)
                        for number, s in value["selections"]},
            content_digest=content_digest)
