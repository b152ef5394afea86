"""The stability limit against closed-form Hessians (numpy eigvalsh), torch's Hessian and gradient descent itself."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit import rowpass
from gradfit.analysis.stability import (
    check_lr,
    lr_limit,
    stability_limit,
    stability_limit_of,
)
from gradfit.errors import ConfigError
from gradfit.losses import get_loss
from gradfit.models.builder import build_model


def _least_squares_eigs(J: np.ndarray) -> np.ndarray:
    """Eigenvalues of the Hessian of mean((J theta - y)^2): 2/n J^T J, whatever theta and y."""
    return np.linalg.eigvalsh(2.0 / len(J) * J.T @ J)


def _hessian_eigs(model, params: dict, names: list[str], x: torch.Tensor, y: torch.Tensor, loss="mse") -> np.ndarray:
    """Oracle: the full Hessian by torch.autograd.functional.hessian, then eigvalsh."""
    loss = get_loss(loss)
    sizes = [params[n].numel() for n in names]

    def f(theta):
        values = dict(params)
        for n, part in zip(names, theta.split(sizes)):
            values[n] = part.reshape(params[n].shape)
        return loss(model(values, x), y)

    theta = torch.cat([params[n].reshape(-1) for n in names]).double()
    return np.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta).numpy())


@pytest.fixture(scope="module")
def linear_seed():
    df = gradfit.datasets.linear()
    x = df["x"].to_numpy(np.float64)
    return df, np.column_stack([x, np.ones_like(x)])


def test_linear_seed_matches_eigvalsh(linear_seed):
    df, J = linear_seed
    r = gradfit.fit("linear", df, y="y", lr=0.1, steps=1)
    eigs = _least_squares_eigs(J)
    s = stability_limit_of(r, df)
    assert s.lam_max == pytest.approx(eigs[-1], rel=1e-4)
    assert s.limit == pytest.approx(2 / eigs[-1], rel=1e-4)
    assert (s.rows_used, s.converged) == (100, True) and 1 <= s.iterations <= 50
    tight = stability_limit_of(r, df, tol=1e-13, iters=200)
    assert tight.lam_max == pytest.approx(eigs[-1], rel=1e-10)


def test_rollercoaster_condition_number_and_limit_are_the_issues():
    d = gradfit.datasets.rollercoaster()
    t = d["t"].to_numpy(np.float64)
    eigs = _least_squares_eigs(np.column_stack([t**2, t, np.ones_like(t)]))
    r = gradfit.fit("a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", lr=1e-5, steps=1)
    s = stability_limit_of(r)
    assert s.lam_max == pytest.approx(eigs[-1], rel=1e-6)
    # The issue: "the condition number is about 2e5, plain GD diverges above lr of about 3.5e-5".
    assert 1.5e5 < eigs[-1] / eigs[0] < 2.5e5
    assert s.limit == pytest.approx(3.5e-5, rel=0.02)


@pytest.mark.parametrize("factor, converges", [(0.9, True), (1.1, False)])
def test_gradient_descent_converges_below_the_limit_and_diverges_above(linear_seed, factor, converges):
    df, J = linear_seed
    limit = stability_limit_of(gradfit.fit("linear", df, y="y", lr=0.1, steps=1), df).limit
    r = gradfit.fit("linear", df, y="y", optimizer="sgd", lr=factor * limit, steps=400)
    best = np.linalg.lstsq(J, df["y"].to_numpy(np.float64), rcond=None)[0]
    if converges:
        assert r.stop_reason == "max_steps"
        np.testing.assert_allclose(list(r.flat_params.values()), best, atol=1e-4)
    else:
        losses = r.history.loss
        assert r.stop_reason == "diverged" or losses[-1] > losses[0]


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_momentum_limits_separate_convergence_from_divergence(linear_seed, optimizer):
    df, _ = linear_seed
    s = stability_limit_of(gradfit.fit("linear", df, y="y", lr=0.1, steps=1), df)
    bound = lr_limit(s, optimizer)
    assert bound == pytest.approx(s.limit * (1.9 if optimizer == "momentum" else 1.9 / 2.8))
    below = gradfit.fit("linear", df, y="y", optimizer=optimizer, lr=0.9 * bound, steps=1000)
    above = gradfit.fit("linear", df, y="y", optimizer=optimizer, lr=1.1 * bound, steps=1000)
    assert below.stop_reason == "max_steps" and below.loss < 0.0784
    assert above.stop_reason == "diverged"
    assert lr_limit(s, "adam") is None


def test_nonlinear_model_matches_torch_hessian_and_fixed_parameters_drop_out():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.uniform(0, 3, 60))[:, None]
    y = 2.0 * torch.exp(-0.7 * x[:, 0]) + 0.05 * torch.tensor(rng.normal(size=60))
    model = build_model("a*exp(-k*x) + c", ("x",))
    params = {
        "a": torch.tensor(0.5, dtype=torch.float64),
        "k": torch.tensor(2.0, dtype=torch.float64),
        "c": torch.tensor(0.3, dtype=torch.float64),
    }
    full = _hessian_eigs(model, params, ["a", "k", "c"], x, y)
    assert stability_limit(model, "mse", x, y, params, tol=1e-12, iters=500).lam_max == pytest.approx(
        full[-1], rel=1e-8
    )
    part = _hessian_eigs(model, params, ["a", "k"], x, y)
    s = stability_limit(model, "mse", x, y, params, fixed=["c"], tol=1e-12, iters=500)
    assert s.lam_max == pytest.approx(part[-1], rel=1e-8)
    assert params["a"].item() == 0.5  # the point looked at is not touched


def test_largest_algebraic_eigenvalue_when_a_negative_one_dominates():
    # sin(w x) far from the fit: the Hessian of the mse has a large negative eigenvalue.
    x = torch.linspace(0, 6, 80, dtype=torch.float64)[:, None]
    y = torch.sin(1.0 * x[:, 0])
    model = build_model("A*sin(w*x)", ("x",))
    params = {"A": torch.tensor(3.0, dtype=torch.float64), "w": torch.tensor(1.3, dtype=torch.float64)}
    eigs = _hessian_eigs(model, params, ["A", "w"], x, y)
    assert eigs[0] < 0 < eigs[-1] and abs(eigs[0]) > abs(eigs[-1])
    s = stability_limit(model, "mse", x, y, params, tol=1e-12, iters=500)
    assert s.lam_max == pytest.approx(eigs[-1], rel=1e-6)
    assert s.limit == pytest.approx(2 / eigs[-1], rel=1e-6)


def test_concave_everywhere_gives_an_infinite_limit():
    x = torch.linspace(-1, 1, 20, dtype=torch.float64)[:, None]
    model = build_model("-a**2 * x**2", ("x",))  # residual 50 - a^2 x^2 times its curvature -2x^2: concave near a=0.1
    y = torch.full((20,), -50.0, dtype=torch.float64)
    params = {"a": torch.tensor(0.1, dtype=torch.float64)}
    assert _hessian_eigs(model, params, ["a"], x, y)[-1] < 0
    s = stability_limit(model, "mse", x, y, params)
    assert s.lam_max < 0 and s.limit == math.inf
    assert json.loads(json.dumps(s.to_dict()))["limit"] == "inf"


def test_chunks_and_subsample_agree_with_the_rows_they_use(monkeypatch):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(1.0, 3.0, size=(1000, 1)))  # well-separated eigenvalues: few iterations
    y = torch.tensor(rng.normal(size=1000))
    model = build_model("linear", ("x",))
    params = {"a": torch.zeros(2, dtype=torch.float64)}
    whole = stability_limit(model, "mse", x, y, params, tol=1e-13, iters=300)
    monkeypatch.setattr(rowpass, "CHUNK_ROWS", 97)  # every row pass reads its chunk size there
    chunked = stability_limit(model, "mse", x, y, params, tol=1e-13, iters=300)
    assert chunked.lam_max == pytest.approx(whole.lam_max, rel=1e-10)
    sub = stability_limit(model, "mse", x, y, params, max_rows=101, tol=1e-13, iters=300)
    rows = np.round(np.linspace(0, 999, 101)).astype(int)
    J = np.column_stack([x[rows, 0].numpy(), np.ones(101)])
    assert sub.rows_used == 101
    assert sub.lam_max == pytest.approx(_least_squares_eigs(J)[-1], rel=1e-9)


def test_deterministic_and_float32_data_computed_in_float64(linear_seed):
    df, J = linear_seed
    model = build_model("linear", ("x",))
    x32 = torch.tensor(df[["x"]].to_numpy())
    y32 = torch.tensor(df["y"].to_numpy())
    assert x32.dtype == torch.float32
    params = {"a": torch.zeros(2)}
    one, two = (stability_limit(model, "mse", x32, y32, params, seed=5) for _ in range(2))
    assert one == two
    tight = stability_limit(model, "mse", x32, y32, params, tol=1e-13, iters=200)
    assert tight.lam_max == pytest.approx(_least_squares_eigs(J)[-1], rel=1e-12)


def test_initial_parameters_not_the_fitted_ones():
    df = gradfit.datasets.linear(n=50)
    r = gradfit.fit("a*exp(b*x)", df, y="y", init={"a": 1.0, "b": 0.1}, lr=0.05, steps=200)
    x = torch.tensor(df[["x"]].to_numpy(np.float64))
    y = torch.tensor(df["y"].to_numpy(np.float64))
    start = {"a": torch.tensor(1.0, dtype=torch.float64), "b": torch.tensor(0.1, dtype=torch.float64)}
    at_start = _hessian_eigs(r.model, start, ["a", "b"], x, y)[-1]
    at_end = _hessian_eigs(r.model, {k: v.double() for k, v in r.params.items()}, ["a", "b"], x, y)[-1]
    assert abs(at_start - at_end) > 0.05 * at_start
    assert stability_limit_of(r, df, tol=1e-12, iters=300).lam_max == pytest.approx(at_start, rel=1e-6)


def test_check_lr_warns_only_above_the_limit(linear_seed):
    df, J = linear_seed
    model = build_model("linear", ("x",))
    x = torch.tensor(df[["x"]].to_numpy())
    y = torch.tensor(df["y"].to_numpy())
    params = {"a": torch.zeros(2)}
    limit = 2 / _least_squares_eigs(J)[-1]
    s, text = check_lr(model, get_loss("mse"), x, y, params, (), 0.5, "sgd")
    assert s.limit == pytest.approx(limit, rel=1e-4) and text is None
    s, text = check_lr(model, "mse", x, y, params, (), 1.5, "sgd")
    assert "1.5" in text and f"{limit:.4g}" in text and "stability limit" in text
    _, text = check_lr(model, "mse", x, y, params, (), 1.5, "momentum")  # heavy ball allows 2(1+0.9)/lam = 1.9
    assert text is None
    _, text = check_lr(model, "mse", x, y, params, (), 1.5, "nesterov", momentum=0.9)  # 2*1.9/2.8/lam = 0.68
    assert text is not None and "nesterov" in text
    assert check_lr(model, "mse", x, y, params, (), 100.0, "adam") == (None, None)
    assert check_lr(model, "mse", x, y, params, (), 100.0, "sgd", max_params=1) == (None, None)


def test_bad_options_and_a_result_without_a_rebuildable_loss(linear_seed):
    df, _ = linear_seed
    model = build_model("linear", ("x",))
    x, y = torch.tensor(df[["x"]].to_numpy()), torch.tensor(df["y"].to_numpy())
    with pytest.raises(ConfigError, match="'max_rows' parameter must be a whole number >= 1"):
        stability_limit(model, "mse", x, y, {"a": torch.zeros(2)}, max_rows=0)
    r = gradfit.fit("linear", df, y="y", loss=lambda p, t: ((p - t) ** 2).mean(), lr=0.1, steps=1)
    with pytest.raises(ConfigError, match="cannot be rebuilt"):
        stability_limit_of(r, df)
    frame = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 2.0]})
    only_b = gradfit.fit("a*x + b", frame, y="y", fix="a", steps=1)
    assert stability_limit_of(only_b, frame).lam_max == pytest.approx(2.0, rel=1e-9)  # d2/db2 mean((ax+b-y)^2) = 2
