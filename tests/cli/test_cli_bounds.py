"""--bound on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.cli.parsing import parse_bounds

runner = CliRunner()
FIT = [
    "fit",
    "builtin:rollercoaster",
    "--y",
    "speed",
    "--model",
    "a*t**2 + b*t + c",
    "--optimizer",
    "lbfgs",
    "--steps",
    "40",
    "--dtype",
    "float64",
    "--quiet",
]


def test_bound_pins_a_parameter_and_is_recorded(tmp_path):
    res = runner.invoke(app, [*FIT, "--bound", "c=:10", "--bound", "a=0:5", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["params"]["c"] == 10.0
    assert saved["bounds"] == {"c": [None, 10.0], "a": [0.0, 5.0]}
    assert saved["diagnostics"]["at_bounds"] == ["c"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("c=x:10", "must be numbers"),
        ("c=10", "NAME=LO:HI"),
        ("c=:", "NAME=LO:HI"),
        ("q=0:1", "names no parameter"),
        ("c=5:1", "lo < hi"),
    ],
)
def test_bad_bounds_exit_2(tmp_path, text, match):
    res = runner.invoke(app, [*FIT, "--bound", text, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and match in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_parse_bounds():
    assert parse_bounds(["W[0,1]=-1:1,b=0:"]) == {"W[0,1]": (-1.0, 1.0), "b": (0.0, None)}
    assert parse_bounds(None) is None
