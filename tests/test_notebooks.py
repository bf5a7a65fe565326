"""The notebooks in notebooks/ run top to bottom in a real kernel, so they never rot.

Each notebook is executed by nbclient with an ipykernel ``python3`` kernel (the Python
running the tests) in a temporary working directory; a cell that raises fails the test.
Cells whose output is checked carry a tag in their metadata (``fold-table``,
``interrupted``, ...), so the checks do not depend on cell positions. The notebooks are
stored without outputs, which the quick loop checks.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 300  # seconds per cell; each notebook takes about 30 s in all


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_notebooks_are_stored_without_outputs():
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["factor_study.ipynb", "tutorial.ipynb"]
    for name in names:
        notebook = _read(name)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3"
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code, name
        for cell in code:
            assert cell.outputs == [], f"{name}: a cell has outputs; clear them before committing"
            assert cell.execution_count is None, f"{name}: a cell has an execution count"
        # foldwise's files go to a fresh directory, set before anything else runs
        assert 'os.environ["FOLDWISE_DIR"] = tempfile.mkdtemp(' in code[0].source, name


def test_readme_links_both_notebooks():
    readme = (ROOT / "README.md").read_text()
    for name in ("tutorial.ipynb", "factor_study.ipynb"):
        assert f"(notebooks/{name})" in readme


# --- executing the notebooks -------------------------------------------------------------


def _execute(name: str, workdir: Path) -> tuple[nbformat.NotebookNode, float]:
    from nbclient import NotebookClient

    notebook = _read(name)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    elapsed = time.perf_counter() - start
    for cell in notebook.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    return notebook, elapsed


def _text(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed as text: streams and the text of results and displays."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _tagged(notebook: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    cells = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    assert cells, f"no cell tagged {tag!r}"
    return cells


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


def _fold_rows(text: str) -> list[int]:
    """Fold numbers of the rows of a printed fold table: the number before the first date
    (after the index, when the table shows one)."""
    pattern = r"^\s*(?:\d+\s+)?(\d+)\s+\d{4}-\d\d-\d\d"
    return [int(m.group(1)) for m in re.finditer(pattern, text, re.M)]


@pytest.mark.slow
def test_tutorial_notebook_runs(tmp_path):
    notebook, elapsed = _execute("tutorial.ipynb", tmp_path)
    print(f"tutorial.ipynb: {elapsed:.1f} s")

    # 13 folds of 2 years + 6 months on GOOG, 25 finished trials each
    table = _text(_tagged(notebook, "fold-table")[0])
    assert _fold_rows(table) == list(range(13))
    assert len(re.findall(r"\b25\s+\d+\s*$", table, re.M)) == 13   # trials_complete, cache_hits
    assert "INCOMPLETE" not in _text(_tagged(notebook, "optimize")[0])
    assert _images(notebook) == 3

    # the report, written in the working directory
    report = tmp_path / "report.html"
    assert report.is_file() and report.stat().st_size > 1_000_000
    assert "<iframe" in str([o.data for o in _tagged(notebook, "report")[0].outputs
                             if o.output_type in ("execute_result", "display_data")])

    # interrupted by the timeout, then resumed to completion running only what was missing
    interrupted = _text(_tagged(notebook, "interrupted")[0])
    assert "complete: False" in interrupted
    assert re.search(r"^INCOMPLETE: fold\(s\) .* hold fewer than 25 finished trials", interrupted,
                     re.M)
    resumed = _text(_tagged(notebook, "resumed")[0])
    assert "complete: True" in resumed
    kept = _text(_tagged(notebook, "kept")[0])
    assert "trials kept as they were: True" in kept
    assert "no fold short of 25: True" in kept

    # foldwise wrote nothing in the working directory but the report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.mark.slow
def test_factor_study_notebook_runs(tmp_path):
    notebook, elapsed = _execute("factor_study.ipynb", tmp_path)
    print(f"factor_study.ipynb: {elapsed:.1f} s")

    # 28 folds of 4 years + 1 year over 1990-2022; both legs hold the same number of names
    table = _text(_tagged(notebook, "fold-table")[0])
    assert _fold_rows(table) == list(range(28))
    legs = re.findall(r"'n_long': (\d), 'n_short': (\d)", table)
    assert len(legs) == 28 and all(a == b and 2 <= int(a) <= 5 for a, b in legs)
    assert _images(notebook) == 1

    statistics = _text(_tagged(notebook, "overfitting")[0])
    values = dict(re.findall(r"'(\w+)': ([\d.]+)", statistics))
    assert set(values) == {"pbo", "oos_psr", "oos_dsr", "n_configurations"}
    assert all(0 <= float(values[k]) <= 1 for k in ("pbo", "oos_psr", "oos_dsr"))
    assert 2 <= float(values["n_configurations"]) <= 48   # distinct sets of a 48-set space
    assert list(tmp_path.iterdir()) == []
