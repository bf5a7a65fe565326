"""The command line: demo, show, studies, version."""

from __future__ import annotations

import subprocess
import sys

import pytest

import foldwise
from foldwise.cli import main


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
    assert capsys.readouterr().out.split() == ["mine"]
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
