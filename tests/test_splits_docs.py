"""The splitters' documentation: leakage warnings in the docstrings, the README snippet runs.

Module doctests run with the rest under ``--doctest-modules``.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def test_purge_and_embargo_are_documented_with_the_leakage_warning():
    from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward

    for cls in (WalkForward, PurgedKFold, CombinatorialPurgedKFold):
        doc = cls.__doc__
        assert "{purge_embargo}" not in doc
        assert "purge : int, str, DateOffset, Timedelta or LabelEnds, default 0" in doc
        assert "execution delay" in doc
        assert "lookahead" in doc
        # the parameter list stays in numpy style (parameters at one indentation)
        assert "\n    embargo : int, float" in doc


def test_readme_splitters_snippet_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## Splitters"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLDWISE_DIR", raising=False)
    for _ in range(2):  # the second run reuses the stored folds
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "15 5" in out
    assert (tmp_path / ".foldwise" / "folds" / "goog-3y.json").is_file()
