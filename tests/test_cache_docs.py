"""The cache's documented examples run: its docstrings and the README's Cache section."""

from __future__ import annotations

import doctest
import importlib
import re
import runpy
import tempfile
from pathlib import Path

import pytest

MODULES = ["foldwise.cache", "foldwise.cache._cache", "foldwise.cache._decorator",
           "foldwise.cache._index", "foldwise.cache._maintenance", "foldwise._canonical"]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Examples write under tmp_path only (their mkdtemp() calls and ./.foldwise)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLDWISE_DIR", raising=False)
    return tmp_path


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, scratch):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_cache_example(scratch, capsys):
    section = README.read_text().split("## Cache", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = scratch / "readme_cache.py"  # a file, as a user would run it: its source is read
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "this process 2 hits, 3 misses, 3 stored" in out  # one rerun, one slice of a run
    assert (scratch / ".foldwise" / "cache" / "index.sqlite").exists()
