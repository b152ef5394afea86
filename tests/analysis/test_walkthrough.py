"""The step table and gradient(): checked against seed 002's own autograd code as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.analysis.formula_gradient import gradient
from gradfit.analysis.walkthrough import grad_column, gradient_at, lr_grad_column, step_table
from gradfit.data.io import read_table
from gradfit.errors import ConfigError, DataError, FormulaError, ModelError
from gradfit.outputs import load_run, save_run

QUADRATIC = "a*t**2 + b*t + c"


def mse(preds, targets):
    return ((preds - targets) ** 2).mean()


def f(t, params):
    a, b, c = params
    return a * (t**2) + (b * t) + c


def seed_grad(values, dtype=torch.float32):
    """Seed 002: params.requires_grad_(), mse, backward -> (loss, params.grad)."""
    df = read_table("builtin:rollercoaster")
    t = torch.tensor(df["t"].to_numpy(), dtype=dtype)
    speed = torch.tensor(df["speed"].to_numpy(), dtype=dtype)
    params = torch.tensor(values, dtype=dtype).requires_grad_()
    loss = mse(f(t, params), speed)
    loss.backward()
    return loss.item(), params.grad.double().numpy()


@pytest.fixture(scope="module")
def coaster():
    return gradfit.fit(QUADRATIC, "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=10)


def test_columns_are_step_loss_lr_then_value_grad_lr_grad_per_parameter(coaster):
    table = step_table(coaster)
    assert list(table.columns) == [
        "step",
        "loss",
        "lr",
        "a",
        "grad a",
        "lr*grad a",
        "b",
        "grad b",
        "lr*grad b",
        "c",
        "grad c",
        "lr*grad c",
    ]
    assert (grad_column("a[0]"), lr_grad_column("a[0]")) == ("grad a[0]", "lr*grad a[0]")
    assert table["step"].tolist() == list(range(11))
    assert table["step"].dtype == np.int64


def test_seed_002_grad_and_loss_equal_hand_autograd_at_every_snapshot(coaster):
    table = step_table(coaster)
    for _, row in table.iterrows():
        values = [row["a"], row["b"], row["c"]]
        np.testing.assert_array_equal(values, list(coaster.history.params_at(int(row["step"])).values()))
        loss, grad = seed_grad(values)
        np.testing.assert_allclose([row["grad a"], row["grad b"], row["grad c"]], grad, rtol=1e-6)
        assert row["loss"] == pytest.approx(loss, rel=1e-6)


def test_sgd_steps_are_params_minus_lr_times_grad(coaster):
    table = step_table(coaster)
    assert np.all(table["lr"].iloc[:-1] == 1e-5) and math.isnan(table["lr"].iloc[-1])  # no update leaves the end
    for name in "abc":
        np.testing.assert_allclose(table[f"lr*grad {name}"], table["lr"] * table[f"grad {name}"], rtol=1e-15)
        p = table[name].to_numpy(np.float32)
        expected = p[:-1] - table[f"lr*grad {name}"].to_numpy(np.float32)[:-1]
        np.testing.assert_allclose(p[1:], expected, rtol=2e-7, atol=1e-7)
    # The first step of seed 002: the descent really moved a by lr * grad (not a tautology of the table).
    assert table["a"][1] != table["a"][0]


def test_float64_fit_matches_the_oracle_in_float64():
    r = gradfit.fit(
        QUADRATIC, "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=3, dtype="float64"
    )
    table = step_table(r)
    for _, row in table.iterrows():
        _, grad = seed_grad([row["a"], row["b"], row["c"]], torch.float64)
        np.testing.assert_allclose([row["grad a"], row["grad b"], row["grad c"]], grad, rtol=1e-12)


def test_max_rows_samples_evenly_with_first_and_last():
    r = gradfit.fit("linear", "builtin:linear", y="y", init={"a": [1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=100)
    table = step_table(r, max_rows=5)
    assert table["step"].tolist() == [0, 25, 50, 75, 100]
    assert step_table(r, max_rows=1)["step"].tolist() == [0]
    assert len(step_table(r)) == 50 and step_table(r)["step"].iloc[[0, -1]].tolist() == [0, 100]
    assert step_table(r, steps=[3, 7])["step"].tolist() == [3, 7]
    with pytest.raises(ConfigError, match="No parameter snapshot at step"):
        step_table(r, steps=[1000])
    with pytest.raises(ConfigError, match="'max_rows' parameter must be a whole number >= 1. Got 0"):
        step_table(r, max_rows=0)


def test_lr_comes_from_the_history_with_a_schedule():
    r = gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=0.1, steps=6, schedule="cosine")
    table = step_table(r)
    history = dict(zip(r.history.step.tolist(), r.history["lr"].tolist()))
    np.testing.assert_array_equal(table["lr"].iloc[:-1], [history[s] for s in table["step"].iloc[:-1]])
    assert len(set(table["lr"].iloc[:-1])) > 1


def test_fixed_parameters_have_nan_grad_and_the_rest_match_the_oracle():
    r = gradfit.fit(
        QUADRATIC, "builtin:rollercoaster", y="speed", init={"a": 0.1, "b": 0.2, "c": 0.3}, fix="c", lr=1e-5, steps=2
    )
    table = step_table(r)
    assert table["grad c"].isna().all() and table["lr*grad c"].isna().all()
    assert (table["c"] == np.float32(0.3)).all()
    for _, row in table.iterrows():
        _, grad = seed_grad([row["a"], row["b"], row["c"]])
        np.testing.assert_allclose([row["grad a"], row["grad b"]], grad[:2], rtol=1e-6)


def test_minibatch_fit_shows_the_full_data_gradient():
    r = gradfit.fit(
        QUADRATIC, "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=4, batch_size=5
    )
    table = step_table(r)
    for _, row in table.iterrows():
        loss, grad = seed_grad([row["a"], row["b"], row["c"]])
        np.testing.assert_allclose([row["grad a"], row["grad b"], row["grad c"]], grad, rtol=1e-6)
        assert row["loss"] == pytest.approx(loss, rel=1e-6)


def test_gradient_at_and_in_memory_data():
    df = gradfit.datasets.linear(n=30, seed=0)
    r = gradfit.fit("linear", df, y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=2)
    with pytest.raises(DataError, match="held in memory"):
        step_table(r)
    loss, grad = gradient_at(r, {"a[0]": 2.0, "a[1]": 0.5}, data=df)
    x, y = torch.tensor(df["x"].to_numpy(), dtype=torch.float32), torch.tensor(df["y"].to_numpy(), dtype=torch.float32)
    a = torch.tensor([2.0, 0.5]).requires_grad_()
    hand = mse(x * a[0] + a[1], y)
    hand.backward()
    assert loss == pytest.approx(hand.item(), rel=1e-6)
    np.testing.assert_allclose([grad["a[0]"], grad["a[1]"]], a.grad.numpy(), rtol=1e-6)
    assert len(step_table(r, data=df)) == 3
    with pytest.raises(ModelError, match="No value for the parameter"):
        gradient_at(r, {"a[0]": 2.0}, data=df)


def test_saved_run_gives_the_same_table(coaster, tmp_path):
    save_run(coaster, tmp_path)
    loaded = step_table(load_run(tmp_path))
    pd.testing.assert_frame_equal(loaded, step_table(coaster), rtol=1e-12)


def test_gradient_seed_002_examples():
    assert gradient("x**2", {"x": 3}) == (9.0, {"x": 6.0})
    assert gradient("sum(x**2)", {"x": [3, 4, 10]}) == (125.0, {"x": [6.0, 8.0, 20.0]})


def test_gradient_several_names_equals_hand_autograd():
    x = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.25, dtype=torch.float64, requires_grad=True)
    out = torch.sum(torch.exp(-y * x) * torch.sin(x)) + y**3
    out.backward()
    value, grad = gradient("sum(exp(-y*x) * sin(x)) + y**3", {"x": [0.5, -1.5, 2.0], "y": 1.25})
    assert value == pytest.approx(out.item(), rel=1e-15)
    np.testing.assert_allclose(grad["x"], x.grad.numpy(), rtol=1e-14)
    assert grad["y"] == pytest.approx(y.grad.item(), rel=1e-14)
    assert list(grad) == ["y", "x"]  # the formula's order of names


@pytest.mark.parametrize(
    "formula, values, error, match",
    [
        ("x**2", {"x": [3, 4, 10]}, ModelError, r"gives 3 values .* backward\(\) starts from a scalar.*sum\(x\*\*2\)"),
        ("x**2", {}, ModelError, "needs a value for 'x'"),
        ("x**2", {"x": 1, "z": 2}, ModelError, "has no name 'z'; its names are: x"),
        ("x**2", {"x": "three"}, ModelError, "must be a number or a list of numbers. Got 'three'"),
        ("x**2", {"x": []}, ModelError, "is empty"),
        ("foo(x)", {"x": 1}, FormulaError, "unknown function 'foo'"),
        ("x = 2", {"x": 1}, FormulaError, "assignments"),
    ],
)
def test_gradient_errors(formula, values, error, match):
    with pytest.raises(error, match=match):
        gradient(formula, values)


# -- runs that do not step by lr * grad ------------------------------------------------------------

SEASONAL = "a + b*t + c*sin(2*pi*t/365.25) + d*cos(2*pi*t/365.25)"


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory):
    """Weekly data with a trend and a yearly cycle (co2-like), saved as a CSV so the run can read it again."""
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 2000.0, 7.0)
    co2 = 315 + 0.004 * t + 3 * np.sin(2 * np.pi * t / 365.25) + rng.normal(0, 0.5, t.size)
    df = pd.DataFrame({"t": t, "co2": co2})
    path = tmp_path_factory.mktemp("seasonal") / "seasonal.csv"
    df.to_csv(path, index=False)
    return df, str(path)


def test_lm_table_shows_the_damping_and_the_gauss_newton_step(seasonal):
    df, path = seasonal
    r = gradfit.fit(SEASONAL, path, y="co2", optimizer="lm", steps=20)
    table = step_table(r)
    names = ["a", "b", "c", "d"]
    per_param = [c for n in names for c in (n, f"grad {n}", f"update {n}")]
    assert list(table.columns) == ["step", "loss", "damping"] + per_param
    np.testing.assert_array_equal(table["damping"], r.history["lr"])  # the history's lr column is LM's λ
    # The model is linear in its parameters and λ = 0: the first step is the Gauss-Newton step, straight to the
    # least-squares answer (numpy.linalg.lstsq is the oracle).
    assert table["damping"][0] == 0.0
    t = df["t"].to_numpy()
    X = np.column_stack([np.ones_like(t), t, np.sin(2 * np.pi * t / 365.25), np.cos(2 * np.pi * t / 365.25)])
    best = np.linalg.lstsq(X, df["co2"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose([table[f"update {n}"][0] for n in names], best - 1.0, rtol=1e-6)
    assert table[[f"update {n}" for n in names]].iloc[-1].isna().all()  # no iteration leaves the last one
    # The gradient is the mse's, in the data's units (hand autograd at the start, every parameter 1).
    p = torch.ones(4, dtype=torch.float64, requires_grad=True)
    ((torch.from_numpy(X) @ p - torch.from_numpy(df["co2"].to_numpy())) ** 2).mean().backward()
    np.testing.assert_allclose([table[f"grad {n}"][0] for n in names], p.grad.numpy(), rtol=1e-9)


def test_scaled_sgd_table_shows_the_step_taken_in_the_units_shown():
    from gradfit.losses import get_loss
    from gradfit.train.scaling import Scaling

    r = gradfit.fit(
        QUADRATIC, "builtin:rollercoaster", y="speed", optimizer="sgd", lr=0.3, steps=20, scale=True, dtype="float64"
    )
    table = step_table(r)
    assert not [c for c in table.columns if c.startswith("lr*grad")]
    # The oracle: the map p = p0 + A q rebuilt from the start, and the step sgd takes on q, seen in p.
    df = read_table("builtin:rollercoaster")
    t = torch.tensor(df["t"].to_numpy(), dtype=torch.float64)[:, None]
    speed = torch.tensor(df["speed"].to_numpy(), dtype=torch.float64)
    start = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.history.params_at(0).items()}
    scaling = Scaling.prepare(r.model, get_loss("mse"), t, speed, start, frozenset())
    A = scaling.A.numpy()
    assert scaling.loss_factor == pytest.approx(r.diagnostics["scaling"]["loss_factor"])
    for k in (0, 1, 5):
        row = table.iloc[k]
        _, grad = seed_grad([row["a"], row["b"], row["c"]], torch.float64)
        step = -(0.3 / scaling.loss_factor) * A @ A.T @ grad
        np.testing.assert_allclose([row["update a"], row["update b"], row["update c"]], step, rtol=1e-6)
        # lr * grad, what the table used to show, is nowhere near it.
        assert abs(0.3 * grad[0]) > 1e3 * abs(step[0])
