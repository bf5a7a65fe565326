"""The command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import foldwise
from foldwise.cli import main


def test_demo_prints_the_metrics_of_both_examples(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "sma_crossover(fast=10, slow=50) on GOOG" in out
    assert "mean_reversion" in out
    for metric in ("sharpe", "max_drawdown", "probabilistic_sharpe_ratio"):
        assert metric in out


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert foldwise.__version__ in capsys.readouterr().out
    assert main([]) == 2


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "foldwise.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("foldwise ")
