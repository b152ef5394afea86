"""``gradfit sweep``: what it writes is what the library's sweep computes; bad specs exit 2 with a message."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.cli.sweep_cmd import parse_lrs
from gradfit.errors import ConfigError

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _number(text: str) -> float:
    return math.nan if text == "" else float(text)


def test_writes_the_library_sweep(tmp_path):
    out = tmp_path / "sw"
    res = invoke("sweep", "builtin:linear", "--y", "y", "--model", "linear", "--lr", "1e-3:1e3:7",
                 "--optimizer", "sgd,adam", "--steps", "60", "--dtype", "float64", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    want = gradfit.sweep("linear", "builtin:linear", y="y", lr=parse_lrs("1e-3:1e3:7"), optimizer=["sgd", "adam"],
                         steps=60, dtype="float64")  # fmt: skip
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(want) == 14
    for got, row in zip(rows, want.rows):
        assert (got["optimizer"], got["stop_reason"], int(got["steps"])) == (
            row["optimizer"],
            row["stop_reason"],
            row["steps"],
        )
        for name in ("lr", "loss", "a[0]", "a[1]"):
            assert _number(got[name]) == pytest.approx(row[name], rel=1e-15, nan_ok=True)
    assert any(r["stop_reason"] == "diverged" for r in rows)  # lr 1000 overflows
    with open(out / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    first = [float(h["loss"]) for h in history if h["member"] == "0"]
    np.testing.assert_array_equal(first, want.histories()[0])
    for name in ("sweep.png", "race.png"):
        with Image.open(out / name) as img:
            assert img.size[0] > 400
    assert "diverged" in res.stdout and str(out / "sweep.csv") in res.stdout


def test_log_spaced_learning_rates():
    lrs = parse_lrs("1e-4:1:50")
    assert len(lrs) == 50 and lrs[0] == 1e-4 and lrs[-1] == 1.0
    np.testing.assert_allclose(lrs, np.logspace(-4, 0, 50), rtol=1e-13)
    assert parse_lrs("0.01, 0.1,0.5") == [0.01, 0.1, 0.5]
    assert parse_lrs("0.2:0.3:1") == [0.2]


@pytest.mark.parametrize("spec", ["1e-4:x:30", "1:1e-4:5", "0:1:5", "1e-4:1", "1e-4:1:0", "1e-4:1:2.5", "a,b", ","])
def test_a_bad_spec_is_exit_2_with_a_message(tmp_path, spec):
    with pytest.raises(ConfigError, match="--lr takes LOW:HIGH:N"):
        parse_lrs(spec)
    res = invoke("sweep", "builtin:linear", "--y", "y", "--model", "linear", "--lr", spec, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "--lr takes LOW:HIGH:N" in res.output and repr(spec) in res.output
    assert not (tmp_path / "o" / "sweep.csv").exists()


def test_a_refused_optimizer_is_exit_2(tmp_path):
    res = invoke("sweep", "builtin:linear", "--y", "y", "--model", "linear", "--lr", "0.1", "--optimizer", "lbfgs",
                 "--out", tmp_path / "o")  # fmt: skip
    assert res.exit_code == 2 and "sweep runs the optimizers" in res.output


def test_a_folder_of_its_own_and_the_data_kept(tmp_path, monkeypatch):
    from gradfit.run_folder import MANIFEST_NAME

    monkeypatch.chdir(tmp_path)
    args = ["sweep", "builtin:linear", "--y", "y", "--model", "linear", "--lr", "0.01,0.1", "--steps", "10"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    folder = tmp_path / "gradfit-out" / "sweep-001"
    assert {p.name for p in folder.iterdir()} == {"sweep.csv", "history.csv", "sweep.png", "race.png", MANIFEST_NAME}
    res = invoke(*args, "--best", "0", "--out", folder)  # the earlier sweep's files replaced, race.png gone
    assert res.exit_code == 0, res.output
    assert {p.name for p in folder.iterdir()} == {"sweep.csv", "history.csv", "sweep.png", MANIFEST_NAME}
    data = tmp_path / "out" / "sweep.csv"  # a data file with an output's name is never overwritten
    data.parent.mkdir()
    data.write_text("x,y\n0,1\n1,3\n2,5\n3,7\n")
    res = invoke("sweep", data, "--y", "y", "--model", "linear", "--lr", "0.1", "--out", data.parent)
    assert res.exit_code == 2 and data.read_text() == "x,y\n0,1\n1,3\n2,5\n3,7\n"


@pytest.mark.slow
def test_compiled_takes_the_compiled_pass_and_writes_the_eager_numbers(tmp_path):
    args = ["sweep", "builtin:rollercoaster", "--y", "speed", "--model", "a*exp(-b*t) + c", "--lr", "1e-3:0.1:4",
            "--steps", "30", "--dtype", "float64", "--best", "0"]  # fmt: skip
    res = invoke(*args, "--compiled", "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    assert "compiled fused formula pass" in res.stdout
    assert invoke(*args, "--out", tmp_path / "e").exit_code == 0
    with open(tmp_path / "c" / "sweep.csv", newline="") as f, open(tmp_path / "e" / "sweep.csv", newline="") as g:
        for got, want in zip(csv.DictReader(f), csv.DictReader(g)):
            assert got["stop_reason"] == want["stop_reason"]
            for name in ("loss", "a", "b", "c"):
                assert _number(got[name]) == pytest.approx(_number(want[name]), rel=1e-10)


def test_a_sweep_where_no_member_descends_exits_1_and_says_what_to_try(tmp_path):
    out = tmp_path / "sw"
    res = invoke("sweep", "builtin:linear", "--y", "y", "--model", "linear", "--lr", "1e3:1e5:3",
                 "--steps", "20", "--dtype", "float64", "--out", out)  # fmt: skip
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "none descended; 0 diverged, 3 ended above their starting loss" in text
    assert "No member of the sweep descended" in text and "Try smaller learning rates" in text
    with open(out / "sweep.csv", newline="") as f:
        assert [row["stop_reason"] for row in csv.DictReader(f)] == ["loss_increased"] * 3
    assert (out / "sweep.png").exists()
