"""Issue 9, items 4, 6 and 8: every option checked at the door (exit 2, the option named, nothing written),
and honest outcomes for runs that never move or diverge under early stopping (exit 1, never 0)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()
LIN = ["fit", "builtin:linear?n=50", "--y", "y", "--model", "linear"]


def _fit(tmp_path, *args, data=None):
    out = tmp_path / "out"
    res = runner.invoke(app, [*(data or LIN), *args, "--out", str(out)])
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return res, out


def _refused(tmp_path, *args, data=None):
    res, out = _fit(tmp_path, *args, data=data)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("Error: ") and res.stdout == ""
    assert not out.exists(), sorted(os.listdir(out))
    return res.stderr


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--seed", str(2**64)], ["'seed' parameter must be a whole number from 0 to 2**64 - 1", str(2**64)]),
        (["--seed", "-1"], ["'seed' parameter must be a whole number from 0"]),
        (["--device", "cpu:abc"], ["'device' parameter must be", "'cpu:abc'"]),
        (
            ["--optimizer", "lbfgs", "--schedule", "onecycle"],
            ["L-BFGS ('lbfgs')", "schedule ('onecycle') does not apply"],
        ),
        (
            ["--init", "a[0]=1e39", "--dtype", "float32", "--optimizer", "adam"],
            ["1e+39, overflows to inf in float32", "--dtype float64"],
        ),
        (["--val-split", "0.99"], ["val_split=0.99 of the 50 rows", "leaves no row to fit on", "(--val-split)"]),
        (["--val-split", "0.99", "--optimizer", "adam"], ["leaves no row to fit on", "(--val-split)"]),
        (["--val-split", "0.99", "--drop-nan"], ["leaves no row to fit on"]),
        (["--landscape", "zz"], ["'--landscape' option takes two different parameter names", "'zz'"]),
        (["--landscape", "a,zz"], ["--landscape option (a,zz)", "no parameter 'a'", "a[0], a[1]"]),
    ],
)
def test_a_bad_option_is_refused_before_the_fit(tmp_path, args, fragments):
    err = _refused(tmp_path, *args)
    for f in fragments:
        assert f in err, err


def test_the_largest_seed_is_accepted(tmp_path):
    res, out = _fit(tmp_path, "--seed", str(2**64 - 1), "--optimizer", "lm")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "result.json").read_text())["config"]["seed"] == 2**64 - 1


def test_a_huge_seed_of_the_synthetic_data_is_refused(tmp_path):
    err = _refused(tmp_path, data=["fit", "builtin:linear?n=50&seed=1e30", "--y", "y", "--model", "linear"])
    assert "'seed' parameter must be a whole number from 0 to 2**64 - 1" in err and "1e+30" in err


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's Metal GPUs")
def test_mps_without_apple_gpus_is_refused(tmp_path):
    err = _refused(tmp_path, "--device", "mps")
    assert "The device 'mps' (Apple's Metal GPUs) is not available here. Use --device cpu or auto." in err


@pytest.mark.parametrize(
    "target,why",
    [
        ("/proc/x.gif", "the folder '/proc' does not accept new files"),
        ("{tmp}/folder.gif", "folder.gif"),
    ],
)
def test_an_animation_target_that_cannot_be_written_is_refused_before_the_fit(tmp_path, target, why):
    (tmp_path / "folder.gif").mkdir()
    err = _refused(tmp_path, "--animate", target.format(tmp=tmp_path))
    assert "--animate" in err or "animation" in err
    assert why in err, err


def test_data_too_large_for_float32_advises_an_option_the_cli_accepts(tmp_path):
    (tmp_path / "big.csv").write_text("x,y\n1e300,1\n2,2\n3,3\n")
    err = _refused(
        tmp_path,
        "--dtype",
        "float32",
        "--optimizer",
        "adam",
        data=["fit", str(tmp_path / "big.csv"), "--y", "y", "--model", "linear"],
    )
    assert "--dtype float64" in err and "torch.float64" not in err


@pytest.mark.parametrize(
    "column,formula,fragment",
    [
        ("pi", "a*pi+b", "'pi' is a column of the data, but in a formula pi is the constant pi = 3.14159"),
        ("exp", "a*exp+b", "'exp' is a column of the data, but in a formula exp is the function exp(...)"),
        ("x", "a*y+b", "'y' is the target column (y), the values the model predicts"),
    ],
)
def test_formula_names_get_a_clear_message(tmp_path, column, formula, fragment):
    (tmp_path / "d.csv").write_text(f"{column},y\n1,3\n2,5\n3,7\n")
    err = _refused(tmp_path, data=["fit", str(tmp_path / "d.csv"), "--y", "y", "--model", formula])
    assert fragment in err, err


def test_early_stopping_on_a_diverging_run_is_divergence_not_success(tmp_path):
    # issue 9: '--lr 3 --val-split 0.3 --patience 5' reported early_stopped with the start parameters, exit 0
    res, out = _fit(tmp_path, "--optimizer", "sgd", "--lr", "3", "--val-split", "0.3", "--patience", "5")
    assert res.exit_code == 1, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "diverged" and result["success"] is False
    assert "The fit diverged by step" in res.stderr and "stability limit" in res.stderr


def test_lbfgs_with_a_huge_lr_is_not_called_a_success_and_gets_lbfgs_advice(tmp_path):
    res, out = _fit(
        tmp_path,
        "--optimizer",
        "lbfgs",
        "--lr",
        "1e10",
        "--dtype",
        "float32",
        data=["fit", "builtin:linear?n=200", "--y", "y", "--model", "exp"],
    )
    assert res.exit_code == 1, res.output
    assert json.loads((out / "result.json").read_text())["success"] is False
    assert "L-BFGS" in res.stderr and "first trial step" in res.stderr


def test_lbfgs_that_never_moves_is_stalled_not_a_full_budget(tmp_path):
    # issue 9: '--optimizer lbfgs --lr 1e10' never moved and reported "Ran the full budget", exit 0
    res, out = _fit(
        tmp_path,
        "--optimizer",
        "lbfgs",
        "--lr",
        "1e10",
        "--steps",
        "50",
        data=["fit", "builtin:rollercoaster", "--y", "speed", "--model", "sine"],
    )
    assert res.exit_code == 1, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "stalled" and result["success"] is False
    assert "Stalled: the parameters stopped changing" in res.stderr and "short of the minimum" in res.stderr
    assert "L-BFGS's own first step" in res.stderr and "Ran the full budget" not in res.output
