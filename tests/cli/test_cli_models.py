"""``gradfit models``: the zoo as a table, one model in detail, JSON; every zoo model listed."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.models import zoo
from gradfit.models.catalog import zoo_entry

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # one table row per line


def test_the_table_lists_every_zoo_model_with_its_formula_parameters_options_and_start():
    res = runner.invoke(app, ["models"], env=WIDE)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert [c.strip() for c in header.split("┃")] == ["model", "formula", "parameters", "options", "start"]
    for name in zoo.ZOO_NAMES:
        entry = zoo_entry(name)
        row = next((line for line in lines if line.split("│")[0].strip() == entry.names), None)
        assert row is not None, f"{name} missing from:\n{res.stdout}"
        cells = [c.strip() for c in row.split("│")]
        assert cells[1] == entry.formula
        assert re.findall(r"(?:^|, )([A-Za-z_]\w*)", cells[2]) == [p.name for p in entry.params]
        assert cells[4] == entry.start
        for option in entry.options:
            assert f"{option}=" in cells[3]


def test_one_model_in_detail():
    res = runner.invoke(app, ["models", "gaussian"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("gaussian: y = a * exp(-(x - mu)**2 / (2 * sigma**2)) + c")
    assert "Guess: a grid of centres mu" in res.stdout  # the starting-value rule, from the docstring
    for name, doc in (("a", "height"), ("mu", "centre"), ("sigma", "width"), ("c", "offset")):
        assert any(line.split("│")[0].strip() == name and doc in line for line in res.stdout.splitlines())
    assert "guessed from the data" in res.stdout and "gauss" in res.stdout

    res = runner.invoke(app, ["models", "poly3"], env=WIDE)
    assert res.exit_code == 0 and "c3" in res.stdout and "--model poly3" in res.stdout
    res = runner.invoke(app, ["models", "mlp", "-o", "hidden=4", "-o", "activation=relu"], env=WIDE)
    assert res.exit_code == 0 and "(1, 4)" in res.stdout and "W2" not in res.stdout
    assert "--model mlp -o hidden=4 -o activation=relu" in res.stdout


def test_json():
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [d["name"] for d in data] == list(zoo.ZOO_NAMES)
    assert data[2]["params"][0] == {"name": "a", "shape": [], "default": 1.0, "scale": 1.0, "doc": "scale"}
    one = json.loads(runner.invoke(app, ["models", "sine", "--json"]).stdout)
    assert one["guesses"] is True and one["formula"] == "y = a * sin(w * x + phi) + c"


@pytest.mark.parametrize(
    "args, message",
    [
        (["models", "expo"], "Did you mean 'exp'"),
        (["models", "-o", "degree=3"], "give its NAME too"),
        (["models", "mlp", "-o", "hidden=x"], "'hidden' option of 'mlp'"),
        (["models", "linear", "-o", "degree=3"], "unknown option"),
    ],
)
def test_bad_names_and_options_exit_2(args, message):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output and res.stdout == ""
