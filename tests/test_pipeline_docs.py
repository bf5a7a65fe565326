"""The pipeline's documentation runs: module doctests, the README section, the example."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import runpy
from pathlib import Path

import pytest

import foldwise.pipeline

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(foldwise.pipeline.__path__, "foldwise.pipeline."))


@pytest.mark.parametrize("name", ["foldwise.pipeline", *MODULES])
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_pipeline_section_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pipeline", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert "score" in capsys.readouterr().out
    assert "python benchmarks/bench_pipeline.py" in section


def test_factor_reversion_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "factor_reversion.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "sharpe" in out
    assert "TermCache" in out
