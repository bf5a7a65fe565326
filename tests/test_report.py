"""The HTML report (``WalkForwardResult.report``): one self-contained file, every section,
numbers that are the result's own, and — in real headless Chromium — every figure drawn
with no script error.

The Chromium checks run ``chromium --headless`` on the written file (``--dump-dom`` to
count the figures plotly drew, ``--screenshot`` for a picture; the README's
``docs/report.png`` is such a screenshot of the GOOG study below, 1400 x 2200). Where no
Chromium can be found or started they skip, saying why.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pytest

import foldwise
from foldwise import WalkForwardResult
from foldwise._canonical import canonical_json
from foldwise.errors import ReportError
from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward

from ._optimize_support import fitted_threshold, noisy_panel

#: Measured 5.2 MB for the GOOG study below (13 folds, 15 trials each), of which 4.8 MB are
#: plotly.js itself (inlined once); the bound leaves room for longer studies' data.
MAX_BYTES = 8_000_000

SECTIONS = ("summary", "verdict", "equity", "folds", "is-oos", "stability", "layout",
            "overfitting", "matrix", "cpcv", "fold-details")


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def goog(tmp_path_factory) -> tuple[WalkForwardResult, Path]:
    """The README's walk-forward on GOOG, small, and its report."""
    tmp = tmp_path_factory.mktemp("report")
    result = foldwise.optimize(
        foldwise.examples.sma_crossover, foldwise.datasets.load_goog(),
        {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 150)},
        foldwise.WalkForward(train="2Y", test="6M"), constraints="fast < slow", n_trials=15,
        study="r", storage=f"journal:{tmp}/s.journal", cache=tmp, seed=0,
        show_progress=False)
    path = result.report(tmp / "out" / "report.html")
    return result, path


# --- reading the file back -------------------------------------------------------------------


class _Page(HTMLParser):
    """What the checks need from the HTML: tags with their attributes, the text of inline
    scripts, the ids, and the rows of each table (cells' data-value and text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: dict[str, str] = {}
        self.inline_scripts = 0
        self.ids: set[str] = set()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.notes: list[str] = []
        self._script: tuple[str, list[str]] | None = None
        self._table: str | None = None
        self._body = False
        self._cell: list[str] | None = None
        self._value = ""
        self._note: list[str] | None = None
        self.open_elements: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "script":
            self._script = (str(attributes.get("id") or ""), [])
        elif tag == "table":
            self._table = str(attributes.get("id") or f"table-{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._table is not None and self._body:
            self.tables[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell, self._value = [], str(attributes.get("data-value") or "")
        elif tag == "p" and "section-note" in str(attributes.get("class") or ""):
            self._note = []
        if tag not in ("meta", "br", "img", "link", "input"):
            self.open_elements.append(tag)

    def handle_endtag(self, tag):
        if self.open_elements and self.open_elements[-1] == tag:
            self.open_elements.pop()
        if tag == "script" and self._script is not None:
            name, parts = self._script
            if name:
                self.scripts[name] = "".join(parts)
            self.inline_scripts += 1
            self._script = None
        elif tag == "tbody":
            self._body = False
        elif tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append((self._value, "".join(self._cell).strip()))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note).strip())
            self._note = None

    def handle_data(self, data):
        if self._script is not None:
            self._script[1].append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)

    def figure(self, number: int) -> dict:
        return json.loads(self.scripts[f"figure-{number}-data"])

    def figures(self) -> list[dict]:
        return [json.loads(text) for name, text in self.scripts.items()
                if name.startswith("figure-")]


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _array(value) -> np.ndarray:
    """A plotly data array: a list, or a typed array ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(value, dict):
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape is not None:
            array = array.reshape([int(n) for n in str(shape).split(",")])
        return array
    return np.asarray(value)


def _same(cell: str, expected) -> bool:
    if isinstance(expected, float):
        return (math.isnan(expected) and cell == "nan") or float(cell) == expected
    return cell == str(expected)


# --- the file ------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_is_one_self_contained_html_file(goog):
    result, path = goog
    assert path.name == "report.html" and path.is_file()
    assert not [p for p in path.parent.iterdir() if p != path]  # written atomically, no leftovers
    size = path.stat().st_size
    assert size < MAX_BYTES, f"the report is {size:,} bytes"
    page = _parse(path)
    assert page.open_elements == [], f"unclosed elements: {page.open_elements}"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for tag, attributes in page.tags:
        assert not (tag == "script" and attributes.get("src")), attributes
        assert tag != "link", attributes  # every style inline
        for name in ("src", "href"):
            target = attributes.get(name) or ""
            assert not re.match(r"(https?:)?//", target), f"<{tag} {name}={target}>"
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", text)
    assert text.count("plotly.js v") == 1  # the library once, not once per figure
    n_figures = len(page.figures())
    assert n_figures == text.count('data-figure="')
    assert n_figures == 7 + 2 * len(result.fold_records)  # 7 sections, 2 per fold


@pytest.mark.slow
def test_report_has_every_section(goog):
    result, path = goog
    page = _parse(path)
    assert set(SECTIONS) <= page.ids
    text = path.read_text(encoding="utf-8")
    assert "incomplete" not in page.ids  # the study finished: no banner
    assert "sma_crossover" in text and "2004-08-19 to 2013-03-01" in text and "GOOG" in text
    assert result.manifest.splitter["repr"] in html.unescape(text)
    # the verdict is result.summary(), criterion by criterion
    summary = result.summary()
    rows = page.tables["criteria"]
    assert [r[0][0] for r in rows] == list(summary["criterion"])
    assert [r[3][1] for r in rows] == ["pass" if p else "FAIL" for p in summary["passed"]]
    assert ("PASS" if result.passed() else "FAIL") in text
    # sections that do not apply say so in one line
    assert any(n.startswith("No walk-forward matrix given") for n in page.notes)
    assert any(n.startswith("No CPCV paths") for n in page.notes)
    # one folded section per fold, each with its history, importances and top sets
    assert text.count('<details class="fold"') == len(result.fold_records)
    trials = {t.number: t for t in result.record.trials[0]}
    history = next(f for f in page.figures() if f["data"][0].get("name") == "trial")
    assert sorted(_array(history["data"][0]["x"]).tolist()) == sorted(trials)
    importances = next(f for f in page.figures()
                       if f["data"][0].get("type") == "bar" and
                       f["layout"].get("xaxis", {}).get("title", {}).get("text") == "importance")
    assert set(_array(importances["data"][0]["y"]).tolist()) == {"fast", "slow"}
    assert sum(_array(importances["data"][0]["x"])) == pytest.approx(1.0)


@pytest.mark.slow
def test_fold_table_rows_equal_result_folds(goog):
    result, path = goog
    rows = _parse(path).tables["fold-table"]
    folds = result.folds
    metric = result.metric
    assert len(rows) == len(folds)
    for row, (_, expected) in zip(rows, folds.iterrows(), strict=True):
        values = [value for value, _ in row]
        assert int(values[0]) == expected["fold"]
        assert values[1] == expected["train_start"].isoformat()
        assert values[2] == expected["test_start"].isoformat()
        assert values[3] == canonical_json(expected["params"])
        for value, column in zip(values[4:8], (f"is_{metric}", f"oos_{metric}", "wfe", "dsr"),
                                 strict=True):
            assert _same(value, float(expected[column])), (column, value, expected[column])
        assert int(values[8]) == expected["trials_complete"]
        assert int(values[9]) == expected["cache_hits"]
        shown = [text for _, text in row]
        assert shown[1] == (f"{expected['train_start']:%Y-%m-%d} – "
                            f"{expected['train_end']:%Y-%m-%d}")


@pytest.mark.slow
def test_figures_hold_the_results_numbers(goog):
    result, path = goog
    page = _parse(path)
    equity = page.figure(1)
    oos = next(t for t in equity["data"] if t.get("name") == "walk-forward (out of sample)")
    np.testing.assert_allclose(_array(oos["y"]), result.oos_equity.to_numpy(), rtol=1e-6)
    assert next(iter(oos["x"])) == f"{result.oos_equity.index[0]:%Y-%m-%d}"
    lines = [s for s in equity["layout"]["shapes"] if s["xref"] == "x"]
    assert [s["x0"] for s in lines] == [f"{r.test_start:%Y-%m-%d}"
                                        for r in result.fold_records[1:]]
    # the comparison table is result.comparison
    comparison = page.tables["comparison"]
    assert [r[0][0] for r in comparison] == list(result.comparison.index)
    assert float(comparison[0][1][0]) == pytest.approx(result.comparison.iloc[0]["sharpe"])
    # the overfitting numbers are result.overfitting()'s
    stats = result.overfitting()
    text = path.read_text(encoding="utf-8")
    assert f'<div class="stat-value">{stats["pbo"]:.0%}</div>' in text
    assert f'<div class="stat-value">{stats["oos_dsr"]:.0%}</div>' in text
    assert f"{int(stats['n_configurations'])} skill-less trials" in text
    histogram = next(f for f in page.figures()
                     if "logit" in f["layout"].get("xaxis", {}).get("title", {}).get("text", ""))
    bars = histogram["data"][0]
    assert _array(bars["customdata"])[:, 2].sum() == stats["pbo_n_combinations"]
    # the fold layout: one train and one test bar per fold, over the dates
    layout = next(f for f in page.figures() if any(t.get("name") == "train" for t in f["data"]))
    train = next(t for t in layout["data"] if t["name"] == "train")
    assert list(train["base"]) == [f"{r.train_start:%Y-%m-%d}" for r in result.fold_records]


@pytest.mark.slow
def test_an_incomplete_study_says_so_at_the_top(goog, tmp_path):
    result, _ = goog
    record = dataclasses.replace(
        result.record, manifest=dataclasses.replace(result.manifest, n_trials=20))
    unfinished = WalkForwardResult(record, result.loader)
    path = unfinished.report(tmp_path / "incomplete.html", overfitting=False)
    page = _parse(path)
    assert "incomplete" in page.ids
    text = path.read_text(encoding="utf-8")
    assert text.index("INCOMPLETE: fold(s) 0, 1") < text.index('id="verdict"')
    assert page.tables["criteria"][-1][3][1] == "FAIL"  # complete: an unfinished study fails
    assert "Left out: the report was written with overfitting=False." in page.notes


@pytest.mark.slow
def test_report_refuses_what_it_cannot_write(goog, tmp_path):
    result, _ = goog
    with pytest.raises(ReportError, match="is a directory"):
        result.report(tmp_path)
    with pytest.raises(ReportError, match="walk_forward_matrix"):
        result.report(tmp_path / "r.html", matrix=[[1, 2]])
    with pytest.raises(ReportError, match="train, test"):
        result.report(tmp_path / "r.html", matrix=result.folds)
    assert not (tmp_path / "r.html").exists()


# --- other kinds of study ------------------------------------------------------------------


@pytest.mark.slow
def test_cross_validated_cpcv_and_per_fold_studies(tmp_path):
    data = noisy_panel(700, 2)
    space = {"fast": foldwise.Int(2, 10), "slow": foldwise.Int(11, 40)}
    common = {"storage": f"journal:{tmp_path}/s.journal", "cache": tmp_path, "seed": 0,
              "show_progress": False}
    cv = foldwise.optimize(foldwise.examples.sma_crossover, data, space,
                           PurgedKFold(4, purge=5, embargo=10), n_trials=6, study="cv",
                           mode="cv", **common)
    page = _parse(cv.report(tmp_path / "cv.html"))
    assert any(n.startswith("No stitched out-of-sample curve") for n in page.notes)
    assert [float(r[4][0]) for r in page.tables["fold-table"]] == pytest.approx(
        cv.folds[f"oos_{cv.metric}"].tolist())
    layout = next(f for f in page.figures() if any(t.get("name") == "train" for t in f["data"]))
    kinds = {t["name"]: t for t in layout["data"]}
    assert {"train", "test", "purged", "embargoed"} <= set(kinds)
    # the splitter's own purge and embargo: 5 bars before each test window, 10 after
    folds = PurgedKFold(4, purge=5, embargo=10).folds(data)
    assert [int(b) for b in kinds["embargoed"]["customdata"][0][2:]] == [10]
    assert sum(int(c[2]) for c in kinds["purged"]["customdata"]) == sum(
        f.purged.size for f in folds)
    assert page.ids >= {"overfitting", "fold-details"}

    cpcv = foldwise.optimize(foldwise.examples.sma_crossover, data, space,
                             CombinatorialPurgedKFold(n_groups=6, n_test_groups=2), n_trials=4,
                             study="cpcv", **common)
    page = _parse(cpcv.report(tmp_path / "cpcv.html"))
    paths, _ = cpcv.cpcv_paths()
    assert [float(r[1][0]) for r in page.tables["cpcv-paths"]] == pytest.approx(
        paths["sharpe"].tolist())
    assert any("CPCV path" in n for n in page.notes)  # no single stitched curve

    per_fold = foldwise.optimize(fitted_threshold, data,
                                 {"quantile": foldwise.Float(0.1, 0.9, step=0.1)},
                                 WalkForward(train=300, test=100), n_trials=4, study="pf",
                                 top_k=2, **common)
    path = per_fold.report(tmp_path / "per-fold.html")
    page = _parse(path)
    text = path.read_text(encoding="utf-8")
    assert "per fold (causal=False)" in text
    assert "a per-fold (causal=False) strategy has runs per fold only" in text  # no PBO
    assert len(page.tables["fold-table"]) == len(per_fold.folds)
    assert not any(n.startswith("No stitched") for n in page.notes)  # its curve is drawn
    top_sets = [t for name, t in page.tables.items() if name.startswith("table-")]
    assert [len(t) for t in top_sets] == [2] * len(per_fold.fold_records)  # top_k=2


@pytest.mark.slow
def test_walk_forward_matrix_as_a_heatmap(tmp_path):
    data = noisy_panel(700, 2)
    common = {"storage": f"journal:{tmp_path}/s.journal", "cache": tmp_path, "seed": 0,
              "show_progress": False}
    space = {"fast": foldwise.Int(2, 10), "slow": foldwise.Int(11, 40)}
    matrix = foldwise.walk_forward_matrix(foldwise.examples.sma_crossover, data, space,
                                          trains=[200, 300], tests=[100, 150], n_trials=3,
                                          study="m", **common)
    result = foldwise.load_result("m-300-100", storage=common["storage"], cache=tmp_path)
    page = _parse(result.report(tmp_path / "m.html", matrix=matrix, overfitting=False))
    heatmap = next(f for f in page.figures() if f["data"][0]["type"] == "heatmap")["data"][0]
    assert heatmap["y"] == ["200", "300"] and heatmap["x"] == ["100", "150"]
    expected = matrix.pivot(index="train", columns="test", values="oos_sharpe").to_numpy()
    np.testing.assert_allclose(_array(heatmap["z"]).astype(float), expected)
    assert not any(n.startswith("No walk-forward matrix") for n in page.notes)


@foldwise.strategy(name="labelled_sma")
def labelled_sma(data, fast=5, slow=20, label="plain"):
    """An SMA crossover with a text parameter that does nothing (its value is shown)."""
    return foldwise.examples.sma_crossover(data, fast=fast, slow=slow)


@pytest.mark.slow
def test_text_from_the_study_cannot_break_out_of_the_page(tmp_path):
    hostile = "</script><script>alert(1)</script><b>"
    result = foldwise.optimize(
        labelled_sma, noisy_panel(500, 2),
        {"fast": foldwise.Int(2, 10), "slow": foldwise.Int(11, 40),
         "label": foldwise.Categorical([hostile, "plain"])},
        WalkForward(train=200, test=100), n_trials=6, storage=f"journal:{tmp_path}/s.journal",
        cache=tmp_path, study="<i>study</i>", seed=0, show_progress=False)
    path = result.report(tmp_path / "r.html", overfitting=False)
    page = _parse(path)
    scripts = [a for tag, a in page.tags if tag == "script"]
    n_figures = len(page.figures())
    assert len(scripts) == n_figures + 3  # the figures, the template, plotly.js, the page's own
    assert not [tag for tag, _ in page.tags if tag in ("b", "i")]
    text = path.read_text(encoding="utf-8")
    assert hostile not in text  # escaped in the HTML and in the figures' JSON
    labels = [v for rows in page.tables.values() for row in rows for v, _ in row
              if "alert" in v]
    assert labels and all(hostile in v for v in labels)


# --- in a real browser -----------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium found (chromium, chromium-browser or google-chrome on PATH); "
                "install it (Debian: apt-get install chromium) to render the report")


def _render(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--virtual-time-budget=15000",
               "--enable-logging=stderr", "--v=0", *extra]
    try:
        done = subprocess.run([*command, url], capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"Chromium could not be started or did not finish: {exc}")
    if done.returncode != 0 and "--dump-dom" in extra and "<html" not in done.stdout:
        pytest.skip(f"Chromium could not be started (exit {done.returncode}): "
                    f"{done.stderr.strip()[-600:]}")
    return done


def _script_errors(stderr: str) -> list[str]:
    """Console lines that report an error (Chromium logs the page's console to stderr)."""
    return [line for line in stderr.splitlines()
            if ("CONSOLE" in line and re.search(r"error|uncaught", line, re.I))
            or "Uncaught" in line]


@pytest.mark.slow
def test_chromium_draws_every_figure_without_a_script_error(goog, tmp_path):
    _, path = goog
    expected = path.read_text(encoding="utf-8").count('data-figure="')
    folded = sum(1 for _ in re.finditer(r'<details class="fold"', path.read_text()))

    # as opened: the figures outside the folded per-fold sections are drawn
    shown = _render(path.as_uri(), "--dump-dom")
    assert not _script_errors(shown.stderr), _script_errors(shown.stderr)
    drawn = shown.stdout.count('class="plot-container')
    assert drawn == expected - 2 * folded, (drawn, expected)
    assert shown.stdout.count('class="main-svg"') >= drawn

    # #all opens every fold: every figure is drawn
    everything = _render(path.as_uri() + "#all", "--dump-dom")
    assert not _script_errors(everything.stderr), _script_errors(everything.stderr)
    assert everything.stdout.count('class="plot-container') == expected
    assert everything.stdout.count('<details class="fold" data-fold=') == folded
    assert everything.stdout.count(" open=") >= folded

    screenshot = tmp_path / "report.png"
    _render(path.as_uri(), f"--screenshot={screenshot}", "--window-size=1400,2200",
            "--hide-scrollbars")
    assert screenshot.is_file() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000  # a page with figures, not a blank one


@pytest.mark.slow
def test_chromium_sorts_the_fold_table_by_a_clicked_header(goog, tmp_path):
    result, path = goog
    # the report with one more script: click the OOS header twice, then write the fold
    # numbers in their new order into the page, where --dump-dom shows them
    clicks = """<script>
      var th = document.querySelectorAll("#fold-table th")[5];
      th.click();
      var up = Array.from(document.querySelectorAll("#fold-table tbody tr"), r => r.cells[0].textContent);
      th.click();
      var down = Array.from(document.querySelectorAll("#fold-table tbody tr"), r => r.cells[0].textContent);
      document.body.setAttribute("data-sorted", JSON.stringify([up, down]));
    </script></body>"""
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text(encoding="utf-8").replace("</body>", clicks),
                     encoding="utf-8")
    done = _render(probe.as_uri(), "--dump-dom")
    assert not _script_errors(done.stderr), _script_errors(done.stderr)
    found = re.search(r'data-sorted="([^"]*)"', done.stdout)
    assert found, "the sorting script did not run"
    up, down = json.loads(found.group(1).replace("&quot;", '"'))
    oos = result.folds.set_index("fold")[f"oos_{result.metric}"]
    assert [int(n) for n in up] == list(oos.sort_values(kind="stable").index)
    assert [int(n) for n in down] == list(oos.sort_values(ascending=False, kind="stable").index)
