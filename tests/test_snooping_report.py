"""``WalkForwardResult.snooping``: the data-snooping tests on a real study's windows, and
their place in the text and HTML reports.

Every number is checked against the public functions of :mod:`foldwise.snooping` called on
matrices built here from the result's public tables (``returns_matrix``, ``fold_records``,
``oos_returns``, ``benchmark``), with the window's seed: the wiring, not the statistics
(tests/test_snooping.py checks those).
"""

from __future__ import annotations

import html
import math

import numpy as np
import optuna
import pandas as pd
import pytest

import foldwise
from foldwise import WalkForwardResult
from foldwise._canonical import canonical_json
from foldwise.aggregate._snooping import REPORT_BOOTSTRAP
from foldwise.metrics import sharpe
from foldwise.snooping import SnoopingError, min_backtest_length, spa_test, stepm
from foldwise.splits import PurgedKFold, WalkForward, ranges_to_positions

from ._optimize_support import fitted_threshold, noisy_panel

REPS = 200


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def goog(tmp_path_factory) -> WalkForwardResult:
    """SMA crossover on GOOG, 4 folds x 8 trials."""
    tmp = tmp_path_factory.mktemp("snooping")
    return foldwise.optimize(
        foldwise.examples.sma_crossover, foldwise.datasets.load_goog(),
        {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 150)},
        WalkForward(train="2Y", test="1Y"), constraints="fast < slow", n_trials=8,
        study="s", storage=f"journal:{tmp}/s.journal", cache=tmp, seed=0,
        show_progress=False)


def _seed(seed: int, window: int) -> np.random.SeedSequence:
    """The seed of window number ``window`` (the report's documented scheme: the first
    child of the window's child of the seed, for SPA and StepM alike)."""
    child = np.random.SeedSequence(np.random.SeedSequence(seed).entropy, spawn_key=(window,))
    return child.spawn(1)[0]


def _check_window(row: pd.Series, returns: np.ndarray, bench: np.ndarray, window: int,
                  seed: int = 0) -> None:
    spa = spa_test(returns, bench, n_bootstrap=REPS, seed=_seed(seed, window))
    found = stepm(returns, bench, n_bootstrap=REPS, seed=_seed(seed, window),
                  block_length=spa.block_length)
    assert row["n_obs"] == returns.shape[0]
    assert row["n_sets"] == returns.shape[1]
    assert row["spa_pvalue"] == spa.pvalue
    assert row["spa_lower"] == spa.pvalue_lower
    assert row["spa_upper"] == spa.pvalue_upper
    assert row["superior"] == len(found.superior)
    assert row["block_length"] == spa.block_length
    assert row["best_excess"] == pytest.approx(spa.best_mean * 252)


def test_windows_equal_the_public_tests_on_the_public_tables(goog):
    report = goog.snooping("flat", n_bootstrap=REPS, seed=0)
    table = report.table
    folds = [r for r in goog.fold_records if r.trials]
    assert list(table["window"]) == (["full history"]
                                     + [f"fold {r.number} in sample" for r in folds]
                                     + ["out of sample"])
    matrix = goog.returns_matrix()
    _check_window(table.iloc[0], matrix.to_numpy(), np.zeros(len(matrix)), 0)
    assert table.iloc[0]["start"] == matrix.index[0]
    assert table.iloc[0]["end"] == matrix.index[-1]
    for number, record in enumerate(folds, start=1):
        keys = list(dict.fromkeys(canonical_json(t.params) for t in record.trials
                                  if t.state == optuna.trial.TrialState.COMPLETE))
        positions = ranges_to_positions(np.asarray(record.train))
        returns = matrix[keys].to_numpy()[positions]
        row = table.iloc[number]
        _check_window(row, returns, np.zeros(len(positions)), number)
        assert row["start"] == record.train_start and row["end"] == record.train_end
    oos = goog.oos_returns
    _check_window(table.iloc[-1], oos.to_numpy()[:, None], np.zeros(len(oos)), len(folds) + 1)
    assert table.iloc[-1]["best"] == "stitched curve"
    # the SPA and StepM results behind each row
    assert report.spa["full history"].n_sets == matrix.shape[1]
    assert set(report.stepm) == set(table["window"])


@pytest.mark.slow
def test_equal_weight_and_buy_and_hold_benchmarks(goog):
    auto = goog.snooping(n_bootstrap=REPS, seed=0)
    assert auto.benchmark == "equal_weight"  # the study recorded its universe run
    matrix = goog.returns_matrix()
    bench = goog.benchmark.returns.reindex(matrix.index).to_numpy()
    _check_window(auto.table.iloc[0], matrix.to_numpy(), bench, 0)
    # one asset held throughout: buy and hold is the equal-weight universe
    held = goog.snooping("buy_and_hold", n_bootstrap=REPS, seed=0)
    pd.testing.assert_frame_equal(held.table, auto.table)
    # a Series benchmark, matched by date
    series = goog.snooping(goog.benchmark.returns, n_bootstrap=REPS, seed=0)
    assert series.benchmark == "series"
    pd.testing.assert_frame_equal(series.table, auto.table)


def test_haircut_and_minimum_backtest_length_of_the_best_set(goog):
    report = goog.snooping("flat", n_bootstrap=REPS, seed=0)
    matrix = goog.returns_matrix()
    sharpes = np.array([sharpe(matrix[c]) for c in matrix])  # empyrical's definition
    assert report.n_sets == matrix.shape[1]
    assert report.best_sharpe == pytest.approx(float(np.nanmax(sharpes)), rel=1e-9)
    haircut = report.haircut
    assert haircut is not None
    assert haircut.n_trials == matrix.shape[1]
    assert haircut.others == "given"
    assert haircut.sharpe == pytest.approx(report.best_sharpe)
    assert 0 < haircut.haircut_sharpes["bhy"] < report.best_sharpe
    assert report.min_backtest_length == pytest.approx(
        min_backtest_length(matrix.shape[1], report.best_sharpe))
    assert report.backtest_years == pytest.approx(len(matrix) / 252)


@pytest.mark.slow
def test_same_seed_same_report_and_reports_are_kept(goog):
    first = goog.snooping("flat", n_bootstrap=REPS, seed=3)
    assert goog.snooping("flat", n_bootstrap=REPS, seed=3) is first
    fresh = WalkForwardResult(goog.record, goog.loader)
    pd.testing.assert_frame_equal(fresh.snooping("flat", n_bootstrap=REPS, seed=3).table,
                                  first.table)
    other = goog.snooping("flat", n_bootstrap=REPS, seed=4)
    assert not other.table["spa_pvalue"].equals(first.table["spa_pvalue"]) or \
        not other.table["spa_upper"].equals(first.table["spa_upper"])


def test_benchmark_errors_name_the_fix(goog):
    with pytest.raises(SnoopingError, match="'flat'"):
        goog.snooping("cash")
    with pytest.raises(SnoopingError, match="Series"):
        goog.snooping(np.zeros(10))  # type: ignore[arg-type]
    short = goog.benchmark.returns.iloc[:100]
    with pytest.raises(SnoopingError, match="no return on"):
        goog.snooping(short, n_bootstrap=REPS)
    with pytest.raises(SnoopingError, match="seed"):
        goog.snooping(seed=-1)


@pytest.mark.slow
def test_text_and_html_reports_show_the_numbers(goog, tmp_path):
    report = goog.snooping(n_bootstrap=REPORT_BOOTSTRAP)
    text = goog.text_report()
    assert ("data snooping: the parameter sets against the equal_weight benchmark "
            "(stationary bootstrap, 500 replications; result.snooping() runs 1000, seed 0)"
            in text)
    assert "1000 replications" in goog.snooping().summary()  # the API's default
    for window in report.table["window"]:
        assert window in text
    assert "SPA p-value (Hansen)" in text and "StepM (Romano-Wolf)" in text
    assert "haircut Sharpe ratio of the best set" in text
    assert "minimum backtest length" in text
    assert "data snooping" not in goog.text_report(overfitting=False)

    path = goog.report(tmp_path / "report.html")
    page = html.unescape(path.read_text(encoding="utf-8"))
    assert 'id="snooping"' in page and 'id="snooping-table"' in page
    body = page[page.index('id="snooping-table"'):]
    body = body[: body.index("</table>")]
    rows = body.split("<tr>")[2:]
    assert len(rows) == len(report.table)
    for row, expected in zip(rows, report.table.itertuples(index=False), strict=True):
        assert f"<td data-value=\"\" data-sort=\"\" class=\" \">{expected.window}</td>" in row
        assert f'data-value="{float(expected.spa_pvalue)!r}"' in row
    assert "SPA p-value (Hansen)" in page and "Minimum backtest length" in page
    assert "500 replications (result.snooping() runs 1,000 by default)" in page
    without = goog.report(tmp_path / "plain.html", overfitting=False)
    assert "written with overfitting=False" in without.read_text(encoding="utf-8")


@pytest.mark.slow
def test_per_fold_and_cross_validated_studies(tmp_path):
    data = noisy_panel(700, 2)
    common = {"storage": f"journal:{tmp_path}/s.journal", "cache": tmp_path, "seed": 0,
              "show_progress": False}
    per_fold = foldwise.optimize(fitted_threshold, data,
                                 {"quantile": foldwise.Float(0.1, 0.9, step=0.1)},
                                 WalkForward(train=300, test=100), n_trials=4, study="pf",
                                 **common)
    report = per_fold.snooping("flat", n_bootstrap=REPS, seed=0)
    assert "full history" not in set(report.table["window"])  # runs per fold only
    assert report.haircut is None and math.isnan(report.min_backtest_length)
    assert any("causal=False" in note for note in report.notes)
    # a fold window from the per-fold training runs
    record = per_fold.fold_records[0]
    complete = [t for t in record.trials if t.state == optuna.trial.TrialState.COMPLETE]
    first = {}
    for trial in complete:
        first.setdefault(canonical_json(trial.params), trial)
    positions = ranges_to_positions(np.asarray(record.train))
    columns = []
    for trial in first.values():
        evaluation = trial.record.evaluations[record.number]
        run = per_fold.loader.load(evaluation.run_key("train"))
        columns.append(run.arrays.net[positions - evaluation.offset])
    row = report.table.iloc[0]
    assert row["window"] == f"fold {record.number} in sample"
    _check_window(row, np.column_stack(columns), np.zeros(len(positions)), 0)
    with pytest.raises(SnoopingError, match="single-asset"):
        per_fold.snooping("buy_and_hold")

    cv = foldwise.optimize(foldwise.examples.sma_crossover, data,
                           {"fast": foldwise.Int(2, 10), "slow": foldwise.Int(11, 40)},
                           PurgedKFold(4, purge=5, embargo=10), n_trials=5, study="cv",
                           mode="cv", **common)
    report = cv.snooping("flat", n_bootstrap=REPS, seed=0)
    windows = list(report.table["window"])
    assert windows[0] == "full history" and "out of sample" not in windows
    assert windows[1:] == [f"fold {r.number} in sample" for r in cv.fold_records]
    n_distinct = cv.returns_matrix().shape[1]
    assert (report.table["n_sets"] == n_distinct).all()  # every trial reached every fold
