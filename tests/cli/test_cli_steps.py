"""``gradfit steps``: seed 002's walk-through of a saved run, on the terminal and as CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.analysis.walkthrough import step_table
from gradfit.cli.app import app
from gradfit.data.io import read_table
from gradfit.outputs import save_run

runner = CliRunner()
QUADRATIC = "a*t**2 + b*t + c"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    result = gradfit.fit(
        QUADRATIC, "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=10
    )
    save_run(result, folder)
    return result, folder


def printed_rows(stdout: str) -> dict[tuple[int, str], list[float]]:
    """{(step, param): [value, grad, lr*grad]} read back from the printed table."""
    rows, step = {}, None
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) != 7:
            continue
        if cells[0]:
            step = int(cells[0])
        rows[(step, cells[3])] = [float("nan") if c == "-" else float(c) for c in cells[4:]]
    return rows


def hand_grad(values):
    df = read_table("builtin:rollercoaster")
    t, speed = (
        torch.tensor(df["t"].to_numpy(), dtype=torch.float32),
        torch.tensor(df["speed"].to_numpy(), dtype=torch.float32),
    )
    params = torch.tensor(values, dtype=torch.float32).requires_grad_()
    a, b, c = params
    ((a * t**2 + b * t + c - speed) ** 2).mean().backward()
    return params.grad.double().numpy()


def test_prints_every_step_with_grad_matching_the_seed_code(saved):
    result, folder = saved
    res = runner.invoke(app, ["steps", str(folder)])
    assert res.exit_code == 0, res.output
    rows = printed_rows(res.stdout)
    assert sorted({s for s, _ in rows}) == list(range(11))
    for step in range(11):
        values = list(result.history.params_at(step).values())
        shown = np.array([rows[(step, n)] for n in "abc"])
        np.testing.assert_allclose(shown[:, 0], values, rtol=1e-5)
        np.testing.assert_allclose(shown[:, 1], hand_grad(values), rtol=1e-5)  # 6 significant digits
        if step < 10:
            np.testing.assert_allclose(shown[:, 2], 1e-5 * shown[:, 1], rtol=1e-5)
        else:
            assert np.isnan(shown[:, 2]).all()  # no update leaves the final step
    assert "lr 1e-05" in res.stdout and "speed = a*t**2 + b*t + c" in res.stdout


def test_rows_limits_the_steps(saved):
    _, folder = saved
    res = runner.invoke(app, ["steps", str(folder), "--rows", "3"])
    assert res.exit_code == 0, res.output
    assert sorted({s for s, _ in printed_rows(res.stdout)}) == [0, 5, 10]


def test_csv_writes_the_step_table(saved, tmp_path):
    result, folder = saved
    target = tmp_path / "steps.csv"
    res = runner.invoke(app, ["steps", str(folder), "--csv", str(target)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout and "│" not in res.stdout
    written = pd.read_csv(target)
    pd.testing.assert_frame_equal(written, step_table(result), rtol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["steps.csv"]  # no temporary left behind


def test_data_option_for_a_fit_on_data_in_memory(tmp_path):
    df = gradfit.datasets.linear(n=20, seed=0)
    save_run(
        gradfit.fit("linear", df, y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=2), tmp_path / "run"
    )
    res = runner.invoke(app, ["steps", str(tmp_path / "run")])
    assert res.exit_code == 2 and "--data FILE" in res.stderr and "Traceback" not in res.output
    df.to_csv(tmp_path / "d.csv", index=False)
    res = runner.invoke(app, ["steps", str(tmp_path / "run"), "--data", str(tmp_path / "d.csv")])
    assert res.exit_code == 0, res.output
    assert sorted({s for s, _ in printed_rows(res.stdout)}) == [0, 1, 2]


@pytest.mark.parametrize(
    "args, match",
    [
        (["{d}/empty"], "holds no saved run: result.json is missing"),
        (["{run}", "--rows", "0"], "--rows must be a whole number >= 1"),
        (["{run}", "--csv", "{d}/nowhere/t.csv"], "does not exist"),
    ],
)
def test_bad_input_exits_2(saved, tmp_path, args, match):
    (tmp_path / "empty").mkdir()
    args = [a.format(d=tmp_path, run=saved[1]) for a in args]
    res = runner.invoke(app, ["steps", *args])
    assert res.exit_code == 2, res.output
    assert match in res.stderr.replace("\n", " ") and "Traceback" not in res.output


def test_an_lm_run_shows_iterations_damping_and_the_update_taken(tmp_path):
    result = gradfit.fit(QUADRATIC, "builtin:rollercoaster", y="speed", optimizer="lm", steps=20)
    save_run(result, tmp_path / "run")
    res = runner.invoke(app, ["steps", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "Levenberg-Marquardt" in out and "(JᵀJ + damping·DᵀD) step = -Jᵀr" in out
    header = next(line for line in res.stdout.splitlines() if "param" in line and "value" in line)
    assert [c.strip() for c in header.replace("┃", "│").split("│")] == [
        "iteration",
        "loss",
        "damping",
        "param",
        "value",
        "grad",
        "update",
    ]
    assert "lr*grad" not in res.stdout
    rows = printed_rows(res.stdout)
    table = step_table(result)
    for step in table["step"]:
        for name in "abc":
            value, grad, update = rows[(step, name)]
            expected = table.loc[table["step"] == step, f"update {name}"].item()
            assert value == pytest.approx(result.history.params_at(step)[name], rel=1e-5)
            assert (np.isnan(update) and np.isnan(expected)) or update == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_a_scaled_run_says_its_step_is_not_lr_times_grad(tmp_path):
    out_dir = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:rollercoaster",
            "--y",
            "speed",
            "--model",
            QUADRATIC,
            "--optimizer",
            "sgd",
            "--lr",
            "0.3",
            "--steps",
            "30",
            "--scale",
            "--out",
            str(out_dir),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["steps", str(out_dir), "--rows", "3"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "sgd lr 0.3 on scaled parameters (whitened)" in out
    assert "params -= lr / " in out and "· A·Aᵀ·grad, not lr*grad" in out
    rows = printed_rows(res.stdout)
    assert sorted({s for s, _ in rows}) == [0, 15, 30]
