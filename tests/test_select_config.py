"""[optimize] select in a config file: parsed, checked, stored with the study, passed to
optimize by `foldwise run`, read back by `foldwise resume` and shown by `foldwise show`."""

from __future__ import annotations

import json
import textwrap
import tomllib

import optuna
import pytest

from foldwise.aggregate import Best, Plateau, TopKMean
from foldwise.cli import main
from foldwise.cli_config import RunConfig, load_config, parse_config
from foldwise.errors import ConfigError
from foldwise.optimizer import load_result

SMALL = """\
study = "small-select"
strategy = "foldwise.examples:sma_crossover"

[data]
bundled = "goog"
start = 2009-01-01

[splitter]
type = "WalkForward"
train = 250
test = 250

[space]
fast = { int = [5, 30] }
slow = { int = [35, 120] }

[optimize]
constraints = ["fast < slow"]
n_trials = 4
seed = 0
top_k = 2
"""


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _parse(select_line: str) -> RunConfig:
    text = SMALL + (select_line + "\n" if select_line else "")
    return parse_config(tomllib.loads(textwrap.dedent(text)), folder="/project",
                        origin="study.toml", file="/project/study.toml")


@pytest.mark.parametrize(("line", "rule"), [
    ("", Best()),
    ('select = "best"', Best()),
    ('select = "plateau"', Plateau()),
    ('select = { rule = "plateau", radius = 0.25 }', Plateau(radius=0.25)),
    ('select = { rule = "plateau", radius = 0.2, prior = 0 }', Plateau(0.2, 0.0)),
    ('select = "top_k_mean"', TopKMean()),
    ('select = { rule = "top_k_mean", k = 4 }', TopKMean(k=4)),
])
def test_select_parses_into_a_rule_and_reads_back_from_the_stored_json(line, rule):
    config = _parse(line)
    assert config.select == rule
    stored = json.loads(json.dumps(config.to_json()))  # as the storage keeps it
    assert stored["optimize"]["select"] == rule.to_json()
    assert RunConfig.from_json(stored) == config
    assert config.optimize_arguments()["select"] == rule


@pytest.mark.parametrize(("line", "expected"), [
    ('select = "plateu"', 'study.toml: [optimize] select = "plateu": must be one of "best", '
                          '"plateau", "top_k_mean". Did you mean \'plateau\'?'),
    ('select = 3', 'study.toml: [optimize] select = 3: must be one of "best", "plateau", '
                   '"top_k_mean", or a table such as { rule = "plateau", radius = 0.2 }.'),
    ('select = { radius = 0.2 }', 'select = { radius = 0.2 }: needs rule = one of "best", '
                                  '"plateau", "top_k_mean"'),
    ('select = { rule = "plateau", radius = -1 }', "Plateau radius must be a finite number "
                                                   "> 0, got -1"),
    ('select = { rule = "plateau", width = 2 }', "rule 'plateau' has no setting 'width'; its "
                                                 "settings are: prior, radius"),
])
def test_bad_select_values_name_the_key_the_value_and_the_fix(line, expected):
    with pytest.raises(ConfigError) as info:
        _parse(line)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_the_example_config_names_the_rules():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "study.toml"
    assert load_config(example).select == Best()
    assert '"plateau", "top_k_mean"' in example.read_text()


def test_foldwise_run_passes_select_and_show_and_resume_use_it(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text(SMALL + 'select = { rule = "plateau", radius = 0.2 }\n')
    home = tmp_path / "home"
    where = ["--dir", str(home)]
    assert main(["run", str(path), "--quiet", *where]) == 0
    out = capsys.readouterr().out
    assert "select=plateau(radius=0.2, prior=1)" in out
    storage = f"journal:{home / 'studies.journal'}"
    result = load_result("small-select", storage=storage, cache=home)
    assert result.manifest.select == {"rule": "plateau", "radius": 0.2, "prior": 1.0}
    assert result.folds.attrs["select"] == "plateau(radius=0.2, prior=1)"
    assert main(["show", "small-select", "--no-overfitting", *where]) == 0
    assert "select=plateau(radius=0.2, prior=1)" in capsys.readouterr().out
    assert main(["resume", "small-select", "--quiet", *where]) == 0  # from the stored config
    assert "select=plateau(radius=0.2, prior=1)" in capsys.readouterr().out
    # the same file with another rule: the study is resumed, its rule replaced
    path.write_text(SMALL + 'select = "top_k_mean"\n')
    assert main(["run", str(path), "--quiet", *where]) == 0
    assert "select=top_k_mean(k=2)" in capsys.readouterr().out
    again = load_result("small-select", storage=storage, cache=home)
    assert again.manifest.select == {"rule": "top_k_mean", "k": None}
    assert len(again.trials) == len(result.trials)  # no trial ran again
