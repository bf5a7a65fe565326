"""The README's Cache section runs (docstring examples run under ``--doctest-modules``)."""

from __future__ import annotations

import re
import runpy
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Examples write under tmp_path only (their mkdtemp() calls and ./.foldwise)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLDWISE_DIR", raising=False)
    return tmp_path


def test_readme_cache_example(scratch, capsys):
    section = README.read_text().split("## Cache", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = scratch / "readme_cache.py"  # a file, as a user would run it: its source is read
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    # one rerun and one slice of a run; then the window pair: one known slice, one new
    assert "this process 4 hits, 4 misses, 4 stored" in out
    assert (scratch / ".foldwise" / "cache" / "index.sqlite").exists()
