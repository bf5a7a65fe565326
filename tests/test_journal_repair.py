"""Repairing a damaged study journal: told, mended, and the lost trials run again.

One real walk-forward study (GOOG, two folds, N_TRIALS trials each) is written once per
module; every test damages a copy of its journal the way a disk does — a line that is no
longer JSON, one changed digit, a line of zeros, a ``\\r`` — and checks against facts read
from the undamaged journal independently of the repair: which line held which operation of
which trial, the parameters and values of every trial, the budget.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import foldwise
from foldwise.cli import main
from foldwise.errors import JournalCorruptedError, StorageError
from foldwise.records import FailureKind, read_trial, trial_budget
from foldwise.storage import (
    FileJournalBackend,
    LostTrial,
    open_storage,
    parse_storage,
    repair_journal,
)

STUDY = "wf"
N_TRIALS = 4
SPACE = {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)}
# Optuna's journal operation codes
CREATE_STUDY, CREATE_TRIAL, SET_PARAM, SET_STATE = 0, 4, 5, 6


def _data():
    return foldwise.datasets.load_goog().slice("2006-01-01", "2009-06-30")


def _splitter():
    return foldwise.WalkForward(train="2Y", test="6M")


def _optimize(journal, cache):
    return foldwise.optimize(foldwise.examples.sma_crossover, _data(), SPACE, _splitter(),
                             n_trials=N_TRIALS, study=STUDY, storage=f"journal:{journal}",
                             cache=cache, seed=7, show_progress=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(journal, cache) of one finished study; tests damage copies of the journal."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = tmp_path_factory.mktemp("written")
    _optimize(root / "studies.journal", root / "cache")
    return root / "studies.journal", root / "cache"


@pytest.fixture
def journal(written, tmp_path):
    copy = tmp_path / "studies.journal"
    shutil.copyfile(written[0], copy)
    return copy


def _folds() -> list[str]:
    return [f"{STUDY}/fold-{n:02d}" for n in range(len(_splitter().folds(_data())))]


def _layout(path):
    """Per line of an undamaged journal: (op_code, study name, trial number or None).

    Counted by hand for a journal a single fresh run wrote (every study created once, no
    deletion): study ids and trial ids in the order of their creation lines.
    """
    studies, trials, out = [], [], []
    for raw in path.read_bytes().splitlines():
        log = json.loads(raw)
        op = log["op_code"]
        if op == CREATE_STUDY:
            studies.append(log["study_name"])
            out.append((op, log["study_name"], None))
        elif op == CREATE_TRIAL:
            name = studies[log["study_id"]]
            trials.append((name, sum(1 for s, _ in trials if s == name)))
            out.append((op, *trials[-1]))
        elif "trial_id" in log:
            out.append((op, *trials[log["trial_id"]]))
        else:
            out.append((op, studies[log["study_id"]], None))
    return out


def _line_of(path, op, study, number=None, nth=0):
    """Index of the ``nth`` line with operation ``op`` on ``study`` (trial ``number``)."""
    found = [i for i, entry in enumerate(_layout(path)) if entry == (op, study, number)]
    return found[nth]


def _damage(path, index, change):
    """Replace line ``index`` by ``change(line)``; returns (line number, byte offset)."""
    lines = path.read_bytes().splitlines(keepends=True)
    offset = sum(len(line) for line in lines[:index])
    lines[index] = change(lines[index])
    path.write_bytes(b"".join(lines))
    return index + 1, offset


def _change_a_digit(line: bytes, after: bytes) -> bytes:
    """``line`` with the first digit after ``after`` changed (the line stays valid JSON)."""
    at = line.index(after) + len(after)
    while not chr(line[at]).isdigit():
        at += 1
    return line[:at] + str((int(chr(line[at])) + 1) % 10).encode() + line[at + 1:]


def _optuna_trials(path):
    """{study name: [(number, state, value, params)]} read by Optuna's own journal storage."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    return {name: [(t.number, t.state, t.value, t.params)
                   for t in optuna.load_study(study_name=name, storage=storage).trials]
            for name in optuna.get_all_study_names(storage)}


def _assert_complete_after_rerun(journal, cache):
    result = _optimize(journal, cache)
    assert result.complete
    trials = _optuna_trials(journal)
    for fold in _folds():
        states = [state for _, state, _, _ in trials[fold]]
        assert states.count(TrialState.COMPLETE) == N_TRIALS, (fold, states)


# --- (a) a line that is not JSON ----------------------------------------------------------


def test_a_bad_json_line_is_told_repaired_and_its_trial_runs_again(journal, written):
    fold = _folds()[0]
    index = _line_of(journal, SET_STATE, fold, 1)  # the final state of trial 1 of fold 0
    before = _optuna_trials(written[0])
    number, offset = _damage(journal, index, lambda line: line.replace(b'"state":', b'"state"'))
    with pytest.raises(JournalCorruptedError,
                       match=rf"line {number} \(byte offset {offset}\): it is not valid JSON"
                             r".*foldwise repair STUDY") as told:
        foldwise.load_result(STUDY, storage=f"journal:{journal}", cache=written[1])
    assert "repair_journal(" in str(told.value)
    damaged = journal.read_bytes()

    report = repair_journal(f"journal:{journal}")

    assert [(d.number, d.offset) for d in report.damaged] == [(number, offset)]
    assert "not valid JSON" in report.damaged[0].reason
    assert report.lost_trials == (LostTrial(fold, 1, number, "RUNNING"),)
    assert report.lost_studies == () and report.to_rerun == 1
    assert report.backup is not None and report.backup.read_bytes() == damaged
    assert report.backup.name.startswith("studies.journal.damaged-")

    result = foldwise.load_result(STUDY, storage=f"journal:{journal}", cache=written[1])
    assert not result.complete  # the lost trial no longer counts
    storage = JournalStorage(FileJournalBackend(journal))
    lost = optuna.load_study(study_name=fold, storage=storage).trials[1]
    assert lost.state == TrialState.FAIL and not trial_budget(lost)
    record = read_trial(lost).record
    assert record.failure is not None and record.failure.kind == FailureKind.FAULT
    assert f"line {number}" in record.failure.message
    assert record.params == before[fold][1][3]  # what it ran is still on record
    # every other trial is exactly what it was
    after = _optuna_trials(journal)
    for name, trials in before.items():
        for old, new in zip(trials, after[name], strict=True):
            if (name, old[0]) != (fold, 1):
                assert new == old

    _assert_complete_after_rerun(journal, written[1])
    assert len(_optuna_trials(journal)[fold]) == N_TRIALS + 1  # the lost one, and its re-run


# --- (b) one changed digit: a checksum that does not match -------------------------------


def test_a_changed_digit_is_told_and_repaired_the_same_way(journal, written):
    fold = _folds()[1]
    index = _line_of(journal, SET_PARAM, fold, 2, nth=1)  # trial 2's second parameter
    number, offset = _damage(journal, index,
                             lambda line: _change_a_digit(line, b'"param_value_internal":'))
    assert json.loads(journal.read_bytes().splitlines()[index])  # still JSON
    with pytest.raises(JournalCorruptedError,
                       match=rf"line {number} \(byte offset {offset}\): its checksum"):
        foldwise.load_result(STUDY, storage=f"journal:{journal}", cache=written[1])

    report = repair_journal(f"journal:{journal}")

    assert [d.number for d in report.damaged] == [number]
    assert "checksum" in report.damaged[0].reason
    assert [(t.study, t.number) for t in report.lost_trials] == [(fold, 2)]
    _assert_complete_after_rerun(journal, written[1])


def test_a_lost_trial_creation_shifts_no_later_trial(journal, written):
    """Dropping the line that created a trial would hand every later line to the trial
    before it; the repair keeps a placeholder so each later trial keeps its own data."""
    fold = _folds()[0]
    before = _optuna_trials(written[0])
    index = _line_of(journal, CREATE_TRIAL, fold, 2)
    number, _ = _damage(journal, index, lambda line: _change_a_digit(line, b'"datetime_start":'))

    report = repair_journal(f"journal:{journal}")

    assert [(t.study, t.number, t.line) for t in report.lost_trials] == [(fold, 2, number)]
    after = _optuna_trials(journal)
    assert sorted(after) == sorted(before)
    for name, trials in before.items():
        assert [t[0] for t in after[name]] == [t[0] for t in trials]  # numbers unchanged
        for old, new in zip(trials, after[name], strict=True):
            if (name, old[0]) == (fold, 2):
                assert new[1] == TrialState.FAIL and new[3] == old[3]
            else:
                assert new == old
    _assert_complete_after_rerun(journal, written[1])


def test_a_line_of_zeros_is_read_by_what_keeps_the_rest_consistent(journal, written):
    """Nothing legible is left of the line (it created trial 1 of the second fold): the
    reading that keeps the later lines consistent is the creation of a trial."""
    fold = _folds()[1]
    before = _optuna_trials(written[0])
    index = _line_of(journal, CREATE_TRIAL, fold, 1)
    _damage(journal, index, lambda line: b"\0" * (len(line) - 1) + b"\n")

    report = repair_journal(f"journal:{journal}")

    assert "not valid JSON" in report.damaged[0].reason
    assert "(guessed)" in report.damaged[0].held
    assert [(t.study, t.number) for t in report.lost_trials] == [(fold, 1)]
    after = _optuna_trials(journal)
    for old, new in zip(before[fold], after[fold], strict=True):
        assert new == old or old[0] == 1


def test_a_lost_study_creation_drops_that_study_only(journal, written):
    lost, kept = _folds()[1], _folds()[0]
    before = _optuna_trials(written[0])
    index = _line_of(journal, CREATE_STUDY, lost)
    _damage(journal, index, lambda line: line[:20] + b"\xff" + line[21:])

    report = repair_journal(f"journal:{journal}")

    assert [(s.name, s.trials) for s in report.lost_studies] == [(lost, N_TRIALS)]
    assert report.lost_trials == () and report.to_rerun == N_TRIALS
    after = _optuna_trials(journal)
    assert lost not in after and after[kept] == before[kept]
    _assert_complete_after_rerun(journal, written[1])


_DAMAGES = {
    "not JSON": lambda line: b"{#" + line[1:],
    "another op_code": lambda line: _change_a_digit(line, b'"op_code":'),
    "zeros": lambda line: b"\0" * (len(line) - 1) + b"\n",
}


@pytest.mark.parametrize("damage", sorted(_DAMAGES))  # each: every line (under a second)
def test_any_one_damaged_line_costs_its_own_trial_or_study_and_nothing_else(
        written, tmp_path, damage):
    """Damage each line in turn; compare with what that line held (read from the intact
    journal by hand): only that trial is lost, or that study, and every other trial is
    exactly what it was. A line with nothing legible left may cost its neighbours' trials
    too (they are re-run to be safe), never a wrong value."""
    before = _optuna_trials(written[0])
    layout = _layout(written[0])
    for index, (op, study, number) in enumerate(layout):
        path = tmp_path / f"line-{index}.journal"
        shutil.copyfile(written[0], path)
        _damage(path, index, _DAMAGES[damage])
        report = repair_journal(f"journal:{path}")
        lost = {(t.study, t.number) for t in report.lost_trials}
        gone = {s.name or study for s in report.lost_studies}  # "": its name was unreadable
        after = _optuna_trials(path)
        for name, trials in before.items():
            if name in gone:
                assert name not in after
                continue
            for old, new in zip(trials, after[name], strict=True):
                if (name, old[0]) in lost:
                    assert new[1] == TrialState.FAIL and new[0] == old[0]
                else:
                    assert new == old, (damage, index, name, old[0])
        where = f"{damage}, line {index + 1}: {report}"
        if op == CREATE_STUDY:
            assert [(s.name, s.trials) for s in report.lost_studies] in (
                [(study, len(before[study]))], [("", len(before[study]))]), where
            assert not lost, where
        elif number is None:  # a study attribute
            assert not gone and (damage == "zeros" or not lost), where
        else:
            assert not gone, where
            assert lost == {(study, number)} if damage != "zeros" else (study, number) in lost, \
                where


def test_a_carriage_return_in_a_line_is_damage_not_the_end_of_the_journal(journal):
    """Regression: readers split lines at ``\\r`` too and took the rest of the journal for
    an unfinished tail, silently reading only the lines before it."""
    index = _line_of(journal, SET_PARAM, _folds()[0], 1)
    number, _ = _damage(journal, index, lambda line: line[:30] + b"\r" + line[31:])
    with pytest.raises(JournalCorruptedError, match=rf"line {number} "):
        list(FileJournalBackend(journal).read_logs(0))
    assert [d.number for d in repair_journal(f"journal:{journal}").damaged] == [number]


# --- (c) Optuna's own storage reads the repaired journal ---------------------------------


def test_optunas_own_journal_storage_reads_the_repaired_journal(journal, written):
    before = _optuna_trials(written[0])
    index = _line_of(journal, SET_STATE, _folds()[1], 3)
    _damage(journal, index, lambda line: line[: len(line) // 2] + b"\n")  # cut in half
    repair_journal(f"journal:{journal}")
    theirs = _optuna_trials(journal)  # Optuna's JournalFileBackend, not foldwise's
    assert sorted(theirs) == sorted(before)
    assert sum(len(t) for t in theirs.values()) == sum(len(t) for t in before.values())
    states = [t[1] for trials in theirs.values() for t in trials]
    assert states.count(TrialState.FAIL) == 1
    assert states.count(TrialState.COMPLETE) == len(_folds()) * N_TRIALS - 1


# --- (d) the command line -----------------------------------------------------------------


def test_the_cli_repairs_and_says_what_to_do_next(journal, written, capsys):
    fold = _folds()[0]
    index = _line_of(journal, SET_STATE, fold, 3)
    number, offset = _damage(journal, index, lambda line: b"{" + line)
    assert main(["repair", STUDY, "--storage", f"journal:{journal}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"dropped line {number} (byte offset {offset}): it is not valid")
    assert f"lost trial 3 of study '{fold}' (was RUNNING; line {number})  [{STUDY}]" in out
    assert out[-1] == f"next: run the same optimize call of '{STUDY}' to re-run its 1 lost " \
                      "trial(s)"
    assert any(line.startswith("repaired ") and ".damaged-" in line for line in out)
    assert main(["repair", STUDY, "--storage", f"journal:{journal}"]) == 0
    assert "nothing to repair" in capsys.readouterr().out
    _assert_complete_after_rerun(journal, written[1])


def test_the_cli_finds_the_journal_of_dir_and_marks_only_its_studies(journal, capsys):
    home = journal.parent
    _damage(journal, _line_of(journal, SET_PARAM, _folds()[1], 0), lambda line: line[5:])
    assert main(["repair", "other", "--dir", str(home)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not any(line.endswith("]") for line in out)  # no lost trial is of 'other'
    assert out[-1] == "next: 'other' lost no trial; 1 lost trial(s) belong to other studies: " \
                      "re-run their optimize calls"


def test_a_lost_manifest_study_is_created_again_by_the_same_call(journal, written, capsys):
    before = _optuna_trials(written[0])
    number, _ = _damage(journal, _line_of(journal, CREATE_STUDY, STUDY),
                        lambda line: line.replace(b'"directions":[', b'"directions":'))
    assert main(["repair", STUDY, "--storage", f"journal:{journal}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"lost study '{STUDY}' with its 0 trial(s) (line {number})  [{STUDY}]" in out
    assert out[-1] == f"next: run the same optimize call of '{STUDY}' to re-run its 0 lost " \
                      "trial(s) and create its 1 lost study(ies) again"
    with pytest.raises(foldwise.FoldwiseError, match=f"no study named '{STUDY}'"):
        foldwise.load_result(STUDY, storage=f"journal:{journal}", cache=written[1])
    _assert_complete_after_rerun(journal, written[1])
    after = _optuna_trials(journal)
    assert all(after[fold] == before[fold] for fold in _folds())  # nothing ran again


def test_the_cli_errors_in_one_line(tmp_path, capsys):
    assert main(["repair", STUDY, "--storage", f"sqlite:///{tmp_path}/s.db"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("foldwise: error: ") and "database's own tools" in err
    assert main(["repair", STUDY, "--dir", str(tmp_path / "none")]) == 1
    assert "there is no journal file" in capsys.readouterr().err


# --- (e) a dry run changes nothing ---------------------------------------------------------


def test_a_dry_run_changes_nothing_and_tells_what_a_repair_would_do(journal, capsys):
    _damage(journal, _line_of(journal, SET_STATE, _folds()[0], 0),
            lambda line: _change_a_digit(line, b'"values":'))
    damaged = journal.read_bytes()
    files = sorted(journal.parent.iterdir())

    dry = repair_journal(f"journal:{journal}", dry_run=True)
    assert main(["repair", STUDY, "--storage", f"journal:{journal}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert journal.read_bytes() == damaged and sorted(journal.parent.iterdir()) == files
    assert dry.dry_run and dry.backup is None and not dry.repaired
    assert "would drop line" in out and "dry run: nothing was changed" in out
    assert "then run the same optimize call" in out

    real = repair_journal(f"journal:{journal}")
    assert real.damaged == dry.damaged and real.lost_trials == dry.lost_trials


def test_an_intact_journal_is_left_untouched(journal):
    content = journal.read_bytes()
    report = repair_journal(f"journal:{journal}")
    assert report.ok and not report.repaired and report.lines == len(content.splitlines())
    assert journal.read_bytes() == content and len(list(journal.parent.iterdir())) == 1
    opened = open_storage(parse_storage(f"journal:{journal}"))  # a storage object names it
    assert repair_journal(opened, dry_run=True).path == journal.resolve()


def test_a_torn_last_line_is_not_damage(journal):
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 6, "trial_')  # a writer killed mid-line
    content = journal.read_bytes()
    report = repair_journal(f"journal:{journal}")
    assert report.ok and report.torn_tail == len(b'{"op_code": 6, "trial_')
    assert journal.read_bytes() == content


def test_a_plain_optuna_journal_without_checksums_is_repaired(tmp_path):
    path = tmp_path / "optuna.log"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="plain", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    values = [t.value for t in study.trials]
    lines = path.read_bytes().splitlines(keepends=True)
    assert b"fw_crc" not in lines[0]
    target = next(i for i, line in enumerate(lines) if b'"trial_id": 2' in line
                  or b'"trial_id":2' in line)
    path.write_bytes(b"".join([*lines[:target], b"{oops\n", *lines[target + 1:]]))
    report = repair_journal(f"journal:{path}")
    assert [(t.study, t.number) for t in report.lost_trials] == [("plain", 2)]
    again = optuna.load_study(study_name="plain", storage=JournalStorage(
        JournalFileBackend(str(path))))
    assert [t.value for t in again.trials if t.number != 2] == values[:2] + values[3:]


# --- (f) only a journal can be repaired ----------------------------------------------------


@pytest.mark.parametrize(("storage", "message"), [
    ("sqlite:///studies.db", r"SQL database.*database's own tools.*sqlite3"),
    ("postgresql://user@host/db", r"SQL database.*PostgreSQL"),
    ("memory", r"in-memory storage has no file"),
    (optuna.storages.InMemoryStorage(), r"journal files only, not a InMemoryStorage"),
])
def test_only_a_journal_can_be_repaired(storage, message):
    with pytest.raises(StorageError, match=message):
        repair_journal(storage)


def test_a_missing_journal_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="there is no journal file"):
        repair_journal(f"journal:{tmp_path}/none.journal")
    assert not (tmp_path / "none.journal").exists()


# --- other processes --------------------------------------------------------------------


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
if sys.argv[2] == "lock":
    fcntl.flock(fd, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(("how", "message"), [("lock", "is writing the journal"),
                                                ("open", "is open in other processes")])
def test_no_repair_while_another_process_uses_the_journal(journal, how, message):
    if how == "open" and not sys.platform.startswith("linux"):
        pytest.skip("only /proc tells which processes have a file open")
    _damage(journal, _line_of(journal, SET_STATE, _folds()[0], 0), lambda line: line[1:])
    damaged = journal.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(journal), how],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match=message):
            repair_journal(f"journal:{journal}")
        assert journal.read_bytes() == damaged
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the holder's lock and descriptor at its exit
        try:
            assert not repair_journal(f"journal:{journal}").ok
            break
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
