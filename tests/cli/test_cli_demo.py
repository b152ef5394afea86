"""``gradfit demo``: the seed tutorials, checked against their loops written directly in torch."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data.io import read_table

runner = CliRunner()


def load(folder):
    return json.loads((folder / "result.json").read_text())


def printed_folder(stdout: str) -> str:
    """The folder a command without --out chose, from its line "Writing to FOLDER/ (a new folder)"."""
    match = re.search(r"^Writing to (.+)[/\\] \(a new folder\)$", stdout, flags=re.M)
    assert match, stdout
    return match.group(1)


def seed_loop(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, lr: float, steps: int, f):
    """The seeds' update(): loss, backward, a -= lr * grad; returns the losses and the final a."""
    a = a.clone().requires_grad_()
    losses = []
    for _ in range(steps):
        loss = ((f(x, a) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a.sub_(lr * a.grad)
            a.grad.zero_()
    return losses, a.detach()


def test_demo_linear_reproduces_seeds_000_001(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder is relative
    res = runner.invoke(app, ["demo", "linear"])
    assert res.exit_code == 0, res.output
    out = tmp_path / printed_folder(res.stdout)
    assert out.parent == tmp_path / "gradfit-out"  # a new folder there, named on the first line
    d = load(out)
    assert (d["steps"], d["optimizer"], d["lr"], d["init_params"]) == (100, "sgd", 0.1, {"a[0]": 1.0, "a[1]": 1.0})
    assert len(pd.read_csv(out / "history.csv")) == 101

    df = read_table("builtin:linear")
    x, y = torch.tensor(df["x"].to_numpy()), torch.tensor(df["y"].to_numpy())
    X = torch.stack([x, torch.ones_like(x)], dim=1)
    losses, a = seed_loop(X, y, torch.tensor([1.0, 1.0]), 0.1, 100, lambda X, a: X @ a)
    np.testing.assert_allclose([d["params"]["a[0]"], d["params"]["a[1]"]], a.numpy(), rtol=1e-5)

    printed = re.findall(r"^step\s+(\d+)\s+loss ([0-9.]+)$", res.stdout, flags=re.M)
    assert [int(s) for s, _ in printed] == list(range(0, 100, 10))
    np.testing.assert_allclose([float(v) for _, v in printed], losses[::10], atol=6e-5)  # printed with 4 decimals

    best = torch.linalg.lstsq(X.double(), y.double()[:, None]).solution[:, 0]
    assert f"{best[0]:.4f}" in res.stdout and f"{best[1]:.4f}" in res.stdout
    assert "3.0000" in res.stdout and "2.5" in res.stdout


def test_demo_rollercoaster_stalls_then_converges(tmp_path):
    out = tmp_path / "rc"
    res = runner.invoke(app, ["demo", "rollercoaster", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = read_table("builtin:rollercoaster")
    t, speed = df["t"].to_numpy(np.float64), df["speed"].to_numpy(np.float64)

    stalled = load(out)
    assert (stalled["steps"], stalled["optimizer"], stalled["lr"]) == (10, "sgd", 1e-5)
    start = torch.tensor([stalled["init_params"][k] for k in ("a", "b", "c")], dtype=torch.float32)
    tt, ss = torch.tensor(df["t"].to_numpy()), torch.tensor(df["speed"].to_numpy())
    losses, p = seed_loop(tt, ss, start, 1e-5, 10, lambda t, p: p[0] * t**2 + p[1] * t + p[2])
    np.testing.assert_allclose([stalled["params"][k] for k in ("a", "b", "c")], p.numpy(), rtol=1e-4, atol=1e-6)

    lines = re.findall(r"^step (\d) : current params: \[(.*)\]  loss: ([0-9.]+)$", res.stdout, flags=re.M)
    assert [int(s) for s, _, _ in lines] == list(range(10))
    np.testing.assert_allclose([float(v) for _, _, v in lines], losses, rtol=1e-5)
    assert "badly conditioned" in res.stdout and "361" in res.stdout

    converged = load(out / "converged")
    assert converged["success"] and converged["optimizer"] == "sgd" and converged["config"]["scale"]
    reference = np.polyfit(t, speed, 2)
    fitted = np.array([converged["params"][k] for k in ("a", "b", "c")])
    np.testing.assert_allclose(fitted, reference, rtol=1e-3)
    assert len(pd.read_csv(out / "converged" / "history.csv")) == converged["steps"] + 1


@pytest.mark.parametrize("name", ["linear", "rollercoaster"])
def test_demo_quiet(tmp_path, name):
    res = runner.invoke(app, ["demo", name, "--quiet", "--out", str(tmp_path / name)])
    assert res.exit_code == 0 and res.output == ""
    assert (tmp_path / name / "result.json").exists()
