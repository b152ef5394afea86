"""``gradfit lr-find``: what it prints and writes is what the library's find_lr computes."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.experiments.lr_finder import find_lr

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_prints_and_writes_the_library_answer(tmp_path):
    out = tmp_path / "lr"
    res = invoke("lr-find", "builtin:linear", "--y", "y", "--model", "linear", "--out", out)
    assert res.exit_code == 0, res.output
    expected = find_lr("linear", "builtin:linear", y="y")
    d = json.loads((out / "lr_find.json").read_text())
    assert d["suggestion"] == expected.suggestion and d["min_lr"] == expected.min_lr
    assert d["stability_limit"]["limit"] == expected.stability_limit.limit
    for text in (
        f"{expected.suggestion:.3g}",
        f"{expected.suggestion_min10:.3g}",
        f"{expected.stability_limit.limit:.3g}",
        "stability limit",
        str(out / "lr_find.png"),
    ):
        assert text in res.stdout
    with Image.open(out / "lr_find.png") as img:
        assert img.size == (640, 440)


def test_options_reach_the_finder(tmp_path):
    out = tmp_path / "lr"
    res = invoke(
        "lr-find",
        "builtin:linear",
        "--y",
        "y",
        "--model",
        "linear",
        "--optimizer",
        "adam",
        "--lr-min",
        1e-4,
        "--lr-max",
        1.0,
        "--steps",
        20,
        "--batch-size",
        25,
        "--seed",
        2,
        "--init",
        "a[0]=1,a[1]=-1",
        "--dtype",
        "float64",
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0 and res.stdout == ""
    expected = find_lr(
        "linear",
        "builtin:linear",
        y="y",
        optimizer="adam",
        lr_min=1e-4,
        lr_max=1.0,
        steps=20,
        batch_size=25,
        seed=2,
        init={"a[0]": 1.0, "a[1]": -1.0},
        dtype="float64",
    )
    d = json.loads((out / "lr_find.json").read_text())
    assert d["losses"] == expected.to_dict()["losses"] and d["stability_limit"] is None and d["optimizer"] == "adam"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--lr-min", "-1"), "'lr_min' parameter must be a finite number > 0"),
        (("--steps", "2"), "'steps' parameter must be a whole number >= 5"),
        (("--optimizer", "lbfgs"), "chooses its own step length"),
        (("--init", "a[0]"), "--init option must be NAME=VALUE"),
        (("--fix", "zz"), "zz"),
    ],
)
def test_bad_input_exits_2_without_traceback_or_output(tmp_path, args, message):
    out = tmp_path / "never"
    res = invoke("lr-find", "builtin:linear", "--y", "y", "--model", "linear", *args, "--out", out)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output + res.stderr
    assert not out.exists()


def test_unknown_column_exits_2(tmp_path):
    res = invoke("lr-find", "builtin:linear", "--y", "speed", "--model", "linear", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "speed" in res.stderr and "Traceback" not in res.stderr
