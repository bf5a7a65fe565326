"""Docs that cannot rot: the README's commands and example, metric names, example scripts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from foldwise import metrics

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_demo_command_names_the_demo():
    assert 'python -m pip install -e ".[dev]" && foldwise demo' in README


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, re.S))
def test_readme_python_examples_run(block, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block)
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=300)


def test_every_metric_is_documented():
    for name in metrics.METRICS:
        assert f"`{name}`" in README, f"{name} missing from the README"
        assert name in metrics.__doc__, f"{name} missing from the metrics module docstring"


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_scripts_run(script, tmp_path):
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=600)
