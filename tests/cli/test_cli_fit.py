"""``gradfit fit``: outputs checked against torch / numpy computed directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.cli.parsing import parse_init, parse_model_options, parse_names
from gradfit.data.io import read_table

runner = CliRunner()
RESULT_KEYS = {"params", "loss", "steps", "stop_reason", "model", "optimizer", "lr", "seed", "message", "timings"}


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def load(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    X = torch.as_tensor(np.column_stack([x, np.ones(len(y))]), dtype=torch.float64)
    return torch.linalg.lstsq(X, torch.as_tensor(y, dtype=torch.float64)[:, None]).solution[:, 0].numpy()


def test_builtin_linear_reaches_least_squares(tmp_path):
    out = tmp_path / "run"
    res = invoke("fit", "builtin:linear", "--y", "y", "--model", "linear", "--lr", 0.1, "--steps", 1000, "--out", out)
    assert res.exit_code == 0, res.output
    d = load(out)
    assert RESULT_KEYS <= set(d)
    df = read_table("builtin:linear")
    best = lstsq(df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64))
    assert list(d["params"]) == ["a[0]", "a[1]"]
    np.testing.assert_allclose([d["params"]["a[0]"], d["params"]["a[1]"]], best, atol=1e-4)
    mse = float(np.mean((best[0] * df["x"].to_numpy(np.float64) + best[1] - df["y"].to_numpy(np.float64)) ** 2))
    assert d["loss"] == pytest.approx(mse, rel=1e-4)
    assert (d["steps"], d["stop_reason"], d["optimizer"], d["lr"], d["seed"]) == (1000, "max_steps", "sgd", 0.1, 0)
    assert d["model"]["name"] == "linear"
    history = pd.read_csv(out / "history.csv")
    assert len(history) == d["steps"] + 1 and history["step"].tolist() == list(range(1001))
    # The report: parameters, loss, steps, reason and where the files went.
    for text in (
        "a[0]",
        "a[1]",
        f"{d['params']['a[0]']:.6g}",
        "final loss",
        "max_steps",
        "1000",
        str(out / "result.json"),
    ):
        assert text in res.stdout


def test_csv_in_tmp_path_with_init_and_log_every(tmp_path):
    x = np.linspace(-2, 2, 41)
    y = 2.0 * x - 1.0 + 0.1 * np.sin(7 * x)
    pd.DataFrame({"x": x, "y": y}).to_csv(tmp_path / "line.csv", index=False)
    out = tmp_path / "out"
    res = invoke(
        "fit",
        tmp_path / "line.csv",
        "--y",
        "y",
        "--model",
        "linear",
        "--init",
        "a=1",
        "--lr",
        0.2,
        "--steps",
        400,
        "--log-every",
        100,
        "--dtype",
        "float64",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    d = load(out)
    np.testing.assert_allclose(list(d["params"].values()), lstsq(x, y), atol=1e-8)
    assert d["init_params"] == {"a[0]": 1.0, "a[1]": 1.0}  # "a=1" is broadcast
    lines = [line for line in res.stdout.splitlines() if line.startswith("step ")]
    assert [int(line.split()[1]) for line in lines] == [0, 100, 200, 300]
    assert float(lines[0].split()[3]) == pytest.approx(np.mean((x + 1 - y) ** 2), rel=1e-5)  # loss at a = (1, 1)


def test_formula_init_fix_and_indexed_init(tmp_path):
    x = np.linspace(0, 1, 11)
    y = 3 * x + 0.5
    pd.DataFrame({"x": x, "y": y}).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    res = invoke(
        "fit",
        tmp_path / "d.csv",
        "--y",
        "y",
        "--model",
        "a*x + b",
        "--init",
        "a=2.5,b=0",
        "--fix",
        "a",
        "--optimizer",
        "lbfgs",
        "--dtype",
        "float64",
        "--steps",
        20,
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    d = load(out)
    assert d["params"]["a"] == 2.5 and d["fixed"] == ["a"]
    assert d["params"]["b"] == pytest.approx(np.mean(y - 2.5 * x), abs=1e-10)  # best b with a held at 2.5
    res = invoke(
        "fit",
        tmp_path / "d.csv",
        "--y",
        "y",
        "--model",
        "linear",
        "--init",
        "a[0]=0.5,a[1]=0.75",
        "--steps",
        0,
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    assert load(out)["params"] == {"a[0]": 0.5, "a[1]": 0.75}


def test_several_inputs_and_model_option(tmp_path):
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(-1, 1, 30), rng.uniform(-1, 1, 30)
    y = 1.5 * x1 - 2 * x2 + 0.3 + 0.5 * x1**2
    pd.DataFrame({"x1": x1, "x2": x2, "y": y}).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "out"
    res = invoke(
        "fit",
        tmp_path / "m.csv",
        "--y",
        "y",
        "--x",
        "x1,x2",
        "--model",
        "linear",
        "--optimizer",
        "lbfgs",
        "--dtype",
        "float64",
        "--steps",
        30,
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    X = np.column_stack([x1, x2, np.ones(30)])
    np.testing.assert_allclose(list(load(out)["params"].values()), np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-7)
    res = invoke(
        "fit",
        tmp_path / "m.csv",
        "--y",
        "y",
        "--x",
        "x1",
        "--model",
        "poly",
        "--option",
        "degree=2",
        "--optimizer",
        "lbfgs",
        "--dtype",
        "float64",
        "--steps",
        30,
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    params = load(out)["params"]
    assert list(params) == ["c0", "c1", "c2"]
    np.testing.assert_allclose([params["c2"], params["c1"], params["c0"]], np.polyfit(x1, y, 2), atol=1e-7)


def test_same_command_twice_gives_the_same_result(tmp_path):
    args = [
        "fit",
        "builtin:linear",
        "--y",
        "y",
        "--model",
        "linear",
        "--lr",
        0.05,
        "--steps",
        50,
        "--batch-size",
        16,
        "--quiet",
    ]
    runs = []
    for name in ("one", "two"):
        assert invoke(*args, "--out", tmp_path / name).exit_code == 0
        d = load(tmp_path / name)
        d.pop("timings")
        runs.append(d)
    # Apart from timings, only the run's own record differs: a new id, and timings.csv's digest.
    records = [d.pop("run") for d in runs]
    assert records[0]["id"] != records[1]["id"]
    assert records[0]["files"]["history.csv"] == records[1]["files"]["history.csv"]
    assert runs[0] == runs[1]


def test_quiet_prints_nothing_and_drop_nan(tmp_path):
    (tmp_path / "nan.csv").write_text("x,y\n0,1\n1,\n2,5\n3,7\n")
    out = tmp_path / "out"
    res = invoke(
        "fit",
        tmp_path / "nan.csv",
        "--y",
        "y",
        "--model",
        "linear",
        "--drop-nan",
        "--optimizer",
        "lbfgs",
        "--dtype",
        "float64",
        "--steps",
        20,
        "--out",
        out,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    assert res.output == ""
    d = load(out)
    assert d["data"]["n"] == 3
    np.testing.assert_allclose(list(d["params"].values()), [2.0, 1.0], atol=1e-8)  # through (0,1), (2,5), (3,7)


def test_divergence_exits_1_with_a_saved_result(tmp_path):
    out = tmp_path / "out"
    res = invoke("fit", "builtin:linear", "--y", "y", "--model", "linear", "--lr", 10, "--steps", 200, "--out", out)
    assert res.exit_code == 1
    assert "diverged" in res.stderr and "Traceback" not in res.output
    d = load(out)
    assert d["stop_reason"] == "diverged" and d["success"] is False and "smaller learning rate" in d["message"]
    assert all(np.isfinite(v) for v in d["params"].values())
    # The kept parameters are those of the last finite step: rerun the same number of steps by hand.
    df = read_table("builtin:linear")
    x, y = torch.tensor(df["x"].to_numpy()), torch.tensor(df["y"].to_numpy())
    a = torch.zeros(2, requires_grad=True)
    for _ in range(d["steps"]):
        loss = ((a[0] * x + a[1] - y) ** 2).mean()
        (g,) = torch.autograd.grad(loss, a)
        a = (a - 10 * g).detach().requires_grad_()
    np.testing.assert_allclose(list(d["params"].values()), a.detach().numpy(), rtol=1e-4)


def test_parsers():
    assert parse_init("a[0]=0.5, a[1]=0.75,b=2") == {"a[0]": 0.5, "a[1]": 0.75, "b": 2.0}
    assert parse_init(["W[0,1]=3", "b=-1e-3"]) == {"W[0,1]": 3.0, "b": -0.001}
    assert parse_init("random") == "random" and parse_init(None) is None
    assert parse_names("x1, x2", "--x") == ["x1", "x2"] and parse_names(["a", "b,c"], "--fix") == ["a", "b", "c"]
    assert parse_model_options(["degree=3", "hidden=32,32", "activation=tanh", "scale=0.5", "bias=false"]) == {
        "degree": 3,
        "hidden": (32, 32),
        "activation": "tanh",
        "scale": 0.5,
        "bias": False,
    }


def test_entry_point_runs_as_a_real_process(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradfit",
            "fit",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "linear",
            "--scale",
            "--lr",
            "0.5",
            "--steps",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "final loss" in proc.stdout and load(out)["steps"] == 20
    script = Path(sys.executable).with_name("gradfit")
    if script.exists():  # the console script declared in pyproject.toml
        proc = subprocess.run(
            [str(script), "fit", "builtin:nope", "--y", "y", "--model", "linear", "--out", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
        assert proc.returncode == 2 and "Unknown built-in dataset" in proc.stderr and "Traceback" not in proc.stderr
