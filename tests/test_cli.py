"""The command line: demo, show, studies, version."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import optuna
import pytest

import foldwise
from foldwise.cli import main
from foldwise.records import read_trial
from foldwise.storage import open_storage, parse_storage


@pytest.fixture
def where(tmp_path):
    return ["--dir", str(tmp_path / "home")]


def test_demo_runs_a_walk_forward_and_resumes(where, capsys):
    assert main(["demo", "--trials", "6", "--quiet", *where]) == 0
    out = capsys.readouterr().out
    for section in ("walk-forward optimization of an SMA crossover on GOOG", "folds",
                    "out of sample (re-optimization costs included)", "verdict:",
                    "parameter stability", "overfitting: PBO", "foldwise show demo"):
        assert section in out
    assert main(["demo", "--trials", "6", "--quiet", *where]) == 0  # resumes: nothing to run
    again = capsys.readouterr().out
    assert again.split("folds\n", 1)[1] == out.split("folds\n", 1)[1]


def test_show_and_studies_read_the_storage(where, capsys):
    main(["demo", "--trials", "4", "--quiet", "--study", "mine", *where])
    capsys.readouterr()
    assert main(["studies", *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["study", "folds", "trials/fold", "status"]
    assert lines[1].split()[:4] == ["mine", "13", "4/4", "complete"]
    assert lines[1].split()[-1] == "python" and lines[-1].startswith("1 study in ")
    assert main(["show", "mine", "--no-overfitting", *where]) == 0
    out = capsys.readouterr().out
    assert "study 'mine'" in out and "verdict:" in out and "overfitting" not in out
    assert main(["show", "nope", *where]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert foldwise.__version__ in capsys.readouterr().out
    assert main([]) == 2


@pytest.mark.slow  # a fresh interpreter through the installed entry point (seconds)
def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "foldwise.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("foldwise ")


@pytest.mark.slow  # a real interpreter interrupted mid-study
def test_ctrl_c_exits_130_with_one_line(tmp_path):
    """Regression: Ctrl-C printed a 47-line traceback and stored the running trial as
    WorkerDied with an empty message."""
    command = [sys.executable, "-m", "foldwise.cli", "demo", "--quiet", "--trials", "300",
               "--dir", str(tmp_path)]
    # A shell that starts the tests in the background (`pytest &` in a script) makes them
    # ignore SIGINT, and the child would inherit that (as nohup intends): give it the
    # default disposition a terminal gives, under which Python raises KeyboardInterrupt.
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = tmp_path / "studies.journal"
    deadline = time.monotonic() + 120
    while (not journal.exists() or journal.stat().st_size < 50_000) and \
            time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == [
        "foldwise: interrupted; the finished trials are stored. Run the same command to resume."]
    storage = open_storage(parse_storage(str(journal)))
    failures = [read_trial(t).record.failure for name in optuna.get_all_study_names(storage)
                for t in optuna.load_study(study_name=name, storage=storage).trials
                if t.state.name == "FAIL"]
    # the trial running at the interrupt (if one was: it may land between two trials) is
    # stored as interrupted, to run again
    assert len(failures) <= 1
    assert all(f.kind == "interrupted" for f in failures)
    assert all(f.message.startswith("interrupted before it finished") for f in failures)
