"""The pipeline's documentation runs: the README section and the example (module doctests
run under ``--doctest-modules``)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
