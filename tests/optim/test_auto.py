"""``optimizer="auto"``: the rules, the learning rates it sets, and what the result and the CLI say."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.analysis.stability import adam_lr
from gradfit.cli.app import app
from gradfit.data.io import read_table
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.optim.auto import LM_COST, choose_optimizer, plan_optimizer

LS = dict(loss_name="mse", least_squares=True)
CE = dict(loss_name="cross_entropy", least_squares=False)


@pytest.mark.parametrize(
    "facts, optimizer, dtype, scale",
    [
        (dict(**LS, rows=442, free=11), "lm", "float64", False),
        (dict(**LS, rows=10**7, free=4), "lm", "float64", False),
        (dict(**LS, rows=10**7, free=40), "lbfgs", "float32", True),  # above lm's budget, large: float32
        (dict(**LS, rows=10**5, free=300), "lbfgs", "float64", True),  # above lm's budget, small: float64
        (dict(**CE, rows=300, free=9), "lbfgs", "float64", True),
        (dict(loss_name="mae", least_squares=False, rows=100, free=2), "lbfgs", "float64", True),
        (dict(**LS, rows=10**5, free=2, batch_size=64), "adam", "float32", False),
        (dict(**LS, rows=100, free=400, network=True), "adam", "float32", False),
        (dict(**LS, rows=100, free=2, lr_given=True), "sgd", "float32", False),
        (dict(**LS, rows=100, free=2, momentum_given=True), "momentum", "float32", False),
        (dict(**LS, rows=100, free=2, scale=True), "lbfgs", "float64", True),  # lm scales its own steps
        (dict(**LS, rows=100, free=2, dtype="float32"), "lm", "float32", False),  # the user's dtype wins
    ],
)
def test_choose_optimizer_rules(facts, optimizer, dtype, scale):
    c = choose_optimizer(**facts)
    assert (c.optimizer, c.dtype, c.scale) == (optimizer, dtype, scale)
    assert c.reason


def test_lm_budget_is_rows_times_params_squared():
    free = 20
    rows = int(LM_COST / free**2)
    assert choose_optimizer(**LS, rows=rows, free=free).optimizer == "lm"
    assert choose_optimizer(**LS, rows=rows + 1, free=free).optimizer == "lbfgs"


def test_named_optimizers_keep_their_own_rules():
    assert plan_optimizer("sgd", rows=100, free=2).dtype == "float32"
    assert plan_optimizer("sgd", rows=100, free=2).lr_rule == "stability"
    assert plan_optimizer("sgd", rows=100, free=2, lr_given=True).lr_rule is None
    assert plan_optimizer("lbfgs", rows=100, free=2).dtype == "float64"
    assert plan_optimizer("lbfgs", rows=10**8, free=4).dtype == "float32"
    assert plan_optimizer("adam", rows=100, free=2).lr_rule is None  # torch's default, as before
    assert plan_optimizer("marquardt", rows=100, free=2).optimizer == "lm"


def test_fit_records_the_choice_and_reaches_lstsq():
    r = gradfit.fit("linear", "builtin:linear", y="y")
    assert r.config["optimizer"] == "lm" and r.config["optimizer_requested"] == "auto"
    assert r.diagnostics["choice"]["optimizer"] == "lm" and "Levenberg-Marquardt" in r.diagnostics["choice"]["reason"]
    x = torch.as_tensor(read_table("builtin:linear")["x"].to_numpy(), dtype=torch.float64)
    y = torch.as_tensor(read_table("builtin:linear")["y"].to_numpy(), dtype=torch.float64)
    best = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), y[:, None]).solution[:, 0]
    np.testing.assert_allclose(list(r.flat_params.values()), best.numpy(), rtol=1e-9)
    assert r.success and r.converged


def test_an_lr_without_an_optimizer_means_the_seeds_gradient_descent():
    r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=100)
    assert r.config["optimizer"] == "sgd" and r.config["lr"] == 0.1 and r.steps == 100
    assert "a learning rate given" in r.diagnostics["choice"]["reason"]


def test_lm_refuses_a_learning_rate_and_a_schedule_alone_means_gradient_descent():
    with pytest.raises(gradfit.errors.ConfigError, match="no learning rate"):
        gradfit.fit("linear", "builtin:linear", y="y", optimizer="lm", lr=0.1)
    r = gradfit.fit("linear", "builtin:linear", y="y", schedule="cosine", steps=300)
    assert r.config["optimizer"] == "sgd" and r.diagnostics["choice"]["lr_rule"] == "stability"


def test_sgd_default_lr_is_half_the_stability_limit():
    """For the linear model the mse Hessian is 2 XᵀX / n, so the limit is 2 / its largest eigenvalue."""
    r = gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", steps=5)
    frame = read_table("builtin:linear")
    X = torch.as_tensor(np.column_stack([frame["x"], np.ones(len(frame))]), dtype=torch.float64)
    lam = float(torch.linalg.eigvalsh(2 * X.T @ X / len(X))[-1])
    assert r.config["lr"] == pytest.approx(1 / lam, rel=1e-3)
    assert r.diagnostics["stability_limit"]["suggested_lr"] == r.config["lr"]


def test_adam_lr_is_a_tenth_of_the_newton_step_along_the_sign_of_the_gradient():
    model = build_model("a*exp(-b*x) + c", ("x",))
    x = torch.linspace(0, 3, 40, dtype=torch.float64)[:, None]
    y = 2 * torch.exp(-1.3 * x[:, 0]) + 0.5
    params = {
        "a": torch.tensor(1.0, dtype=torch.float64),
        "b": torch.tensor(0.5, dtype=torch.float64),
        "c": torch.tensor(0.0, dtype=torch.float64),
    }
    lr = adam_lr(model, get_loss("mse"), x, y, params)

    def mean_loss(theta):
        p = dict(zip("abc", theta))
        return ((model(p, x) - y) ** 2).mean()

    theta = torch.stack([params[k] for k in "abc"])
    g = torch.autograd.functional.jacobian(mean_loss, theta)
    H = torch.autograd.functional.hessian(mean_loss, theta)
    s = torch.sign(g)
    assert lr == pytest.approx(0.1 * float(g.abs().sum() / (s @ H @ s)), rel=1e-10)


def test_auto_gives_networks_adam_with_the_curvature_lr():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gradfit.fit("mlp", "builtin:linear", y="y", steps=50, model_options={"hidden": (4,)})
    assert r.config["optimizer"] == "adam" and r.diagnostics["choice"]["lr_rule"] == "curvature"
    assert 0 < r.config["lr"] < 1
    assert r.converged is None  # a network's budget is not judged against an optimum


def test_auto_gives_cross_entropy_lbfgs_on_scaled_parameters_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    labels = (X @ [1.5, -2.0] + 0.3 + rng.logistic(size=300) > 0).astype(float)
    frame = {"x1": X[:, 0], "x2": X[:, 1], "label": labels}
    r = gradfit.fit("logistic", frame, y="label", loss="bce")
    assert r.config["optimizer"] == "lbfgs" and r.config["scale"] is True and r.success
    sk = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(X, labels)
    np.testing.assert_allclose(list(r.flat_params.values()), [*sk.coef_[0], sk.intercept_[0]], rtol=1e-4)


def test_cli_prints_the_choice_and_help_lists_every_optimizer(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["fit", "builtin:linear", "--y", "y", "--model", "linear", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "optimizer: lm (least squares" in res.stdout
    assert json.loads((tmp_path / "o" / "result.json").read_text())["config"]["optimizer"] == "lm"
    text = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "200"}).stdout
    for name in ("auto", "lm", "lbfgs", "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"):
        assert name in text
