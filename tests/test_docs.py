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


def _python_blocks() -> list[tuple[str, str]]:
    """``(section title, code)`` of every python block of the README, in order."""
    blocks = []
    for section in re.split(r"^## ", README, flags=re.M)[1:]:
        title = section.split("\n", 1)[0].strip()
        blocks += [(title, code) for code in re.findall(r"```python\n(.*?)```", section, re.S)]
    return blocks


# README sections whose example a dedicated test also runs in-process and checks the output
# of, in the quick loop (test_every_readme_example_and_script_runs_once keeps the pairing);
# the whole README runs once more, top to bottom, in the slow suite.
_SECTIONS_TESTED_ELSEWHERE = {
    "Splitters": "test_splits_docs.py",
    "Cache": "test_cache_docs.py",
    "Pipeline": "test_pipeline_docs.py",
    "Cluster": "test_cluster_docs.py",
}
# Sections whose example needs servers (a Dask scheduler, PostgreSQL): their dedicated test
# starts them and runs the example against them; the top-to-bottom run leaves them out.
_SECTIONS_NEEDING_SERVERS = {"Cluster"}
# Example scripts likewise run (and their output checked) by a dedicated test.
_SCRIPTS_TESTED_ELSEWHERE = {"factor_reversion.py": "test_pipeline_docs.py"}
_SCRIPTS = sorted((ROOT / "examples").glob("*.py"))


def test_every_readme_section_tested_elsewhere_has_its_test():
    titles = [title for title, _ in _python_blocks()]
    for title, test_file in _SECTIONS_TESTED_ELSEWHERE.items():
        # the dedicated test runs the first python block of the section: the only one
        assert titles.count(title) == 1, f"README section {title!r} has {titles.count(title)} " \
            "python blocks; its dedicated test runs one"
        assert f"## {title}" in (ROOT / "tests" / test_file).read_text()
    for name, test_file in _SCRIPTS_TESTED_ELSEWHERE.items():
        assert (ROOT / "examples" / name).is_file()
        assert f'"{name}"' in (ROOT / "tests" / test_file).read_text()


@pytest.mark.slow  # tens of seconds: a fresh interpreter, real backtests and studies
def test_the_readme_runs_top_to_bottom_in_one_folder(tmp_path):
    """Every python block, in order, in one interpreter and one folder, as a reader would
    paste them: blocks that share ./.foldwise must not trip over each other (a fold set
    stored by the optimization once clashed with the Splitters example's)."""
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(code for title, code in _python_blocks()
                                   if title not in _SECTIONS_NEEDING_SERVERS))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_metric_is_documented():
    for name in metrics.METRICS:
        assert f"`{name}`" in README, f"{name} missing from the README"
        assert name in metrics.__doc__, f"{name} missing from the metrics module docstring"


@pytest.mark.slow  # seconds each: a fresh interpreter and a real study on bundled data
@pytest.mark.parametrize(
    "script", [p for p in _SCRIPTS if p.name not in _SCRIPTS_TESTED_ELSEWHERE],
    ids=lambda p: p.name)
def test_example_scripts_run(script, tmp_path):
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=600)
