"""Numerical faults: overflow, NaN gradients, zero variance and runaway parameters, for each optimizer family.

Every fit must end with a stop reason from the documented list and a message that names the cause,
with finite parameters (the last finite ones when the descent broke down), and never a result that
silently holds NaN or inf.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import gradfit
from gradfit.errors import ConfigError
from gradfit.train.stopping import REASONS

X = np.linspace(0.0, 1.0, 20)
LABELS = (X > 0.5).astype(float)
WIDE = np.linspace(0.0, 10.0, 20)
GROWTH = {"x": WIDE, "y": 2 * np.exp(0.9 * WIDE)}  # up to 1.6e4: exp(b*x) overflows float32 once b > ~9
OPTIMIZERS = ["sgd", "adam", "lbfgs", "lm"]
NOT_FINITE = r"inf|nan|not finite|overflow"


def fit(model, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.fit(model, data, y="y", **options)


def check(result, could_not_start: bool = False):
    """What every fit owes its user, whatever went wrong."""
    assert result.stop_reason in REASONS
    flat = result.flat_params
    assert flat and all(math.isfinite(v) for v in flat.values()), flat
    if result.stop_reason == "diverged":
        assert not result.success
        assert re.search(NOT_FINITE, result.message), result.message
        assert re.search(r"Kept the parameters|could not start", result.message), result.message
    if could_not_start:
        assert result.stop_reason == "diverged" and result.steps == 0
        assert result.flat_params == pytest.approx(result.init_params)
    else:
        assert math.isfinite(result.loss), (result.loss, result.message)
    assert "{" not in result.message, result.message  # no unformatted placeholder


# -- overflow in the model ------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_overflow_at_the_start_cannot_start_and_keeps_the_start(optimizer):
    result = fit("a*exp(b*x)", {"x": X, "y": 2 * np.exp(0.5 * X)}, init={"b": 1000.0}, optimizer=optimizer, steps=50)
    check(result, could_not_start=True)
    assert re.search(
        r"could not start: at the initial parameters (the loss became inf|the residuals are not finite)", result.message
    )
    assert math.isinf(result.loss) and result.flat_params["b"] == 1000.0  # the reason says why the loss is inf


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.01), ("adam", 100.0), ("lbfgs", 1.0), ("lm", None)])
def test_overflow_during_the_descent_keeps_the_last_finite_parameters(optimizer, lr):
    result = fit("a*exp(b*x)", GROWTH, init={"a": 1.0, "b": 0.1}, optimizer=optimizer, lr=lr, steps=50)
    check(result)
    if optimizer in ("sgd", "adam"):  # the first step throws b past 9: exp(b*10) overflows float32
        assert result.stop_reason == "diverged" and result.steps == 0
        assert "The fit diverged at step 1: the loss became inf" in result.message
        assert result.flat_params == pytest.approx({"a": 1.0, "b": 0.1})
    else:  # a line search (lbfgs) and a trust region (lm) step back from the overflow and find the curve
        assert result.flat_params == pytest.approx({"a": 2.0, "b": 0.9}, rel=1e-3)


# -- a gradient that is NaN while the loss is finite ----------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_nan_gradient_at_a_finite_loss_stops_at_once(optimizer):
    # d/da sqrt(|a|) at a = 0 is inf * sign(0) = NaN, while the loss (a = 0 predicts 0) is finite.
    result = fit("sqrt(abs(a))*x", {"x": X, "y": X}, init={"a": 0.0}, optimizer=optimizer, steps=50)
    check(result)
    assert result.stop_reason == "diverged" and result.flat_params == {"a": 0.0}
    assert re.search(r"the gradient became nan|the Jacobian is not finite", result.message), result.message


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_nan_gradient_reached_during_the_descent(optimizer):
    # The bound projects a onto 0, where the gradient is NaN; the loss stays finite all along.
    result = fit(
        "sqrt(abs(a))*x",
        {"x": X, "y": -X},
        init={"a": 1.0},
        bounds={"a": (0, None)},
        optimizer=optimizer,
        lr=None if optimizer == "lm" else 0.5,
        steps=50,
    )
    check(result)
    assert result.flat_params["a"] >= 0.0


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_power_of_an_input_that_holds_zero(optimizer):
    # abs(x)**a: 0**a has gradient 0*log(0) (torch gives 0), and 0**a is inf once a < 0.
    result = fit("abs(x)**a", {"x": X, "y": 2 * np.exp(0.5 * X)}, init={"a": 0.5}, optimizer=optimizer, steps=100)
    check(result)


# -- zero variance --------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_zero_variance_column(optimizer):
    lr = {"adam": 0.05}.get(optimizer)  # adam's default 0.001 would not get there in 100 steps
    result = fit("linear", {"x": np.full(20, 3.0), "y": X}, optimizer=optimizer, lr=lr, steps=100)
    check(result)
    assert result.stop_reason != "diverged"
    assert 3 * result.flat_params["a[0]"] + result.flat_params["a[1]"] == pytest.approx(0.5, abs=0.05)
    assert result.uncertainty["ok"] is False and "not separately identifiable" in result.uncertainty["reason"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_zero_variance_target(optimizer):
    result = fit("linear", {"x": X, "y": np.ones(20)}, optimizer=optimizer, steps=100)
    check(result)
    assert result.report["statistics"]["r2"] is None  # 1 - rss/0 is not a number, so it is not reported as one


# -- parameters that run away --------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, model, data, options",
    [
        ("sgd", "linear", {"x": X, "y": 2 * X + 1}, {"lr": 10.0}),  # far above the stability limit: |params| double
        ("adam", "a*(x-0.5)", {"x": X, "y": LABELS}, {"lr": 1e37, "loss": "bce"}),  # separable: a grows without bound
        ("lbfgs", "a*(x-0.5)", {"x": X, "y": LABELS}, {"lr": 1e38, "loss": "bce"}),
        ("lm", "sigmoid(a*(x-0.5))", {"x": X, "y": LABELS}, {}),  # the optimum is at a = inf
    ],
    ids=OPTIMIZERS,
)
def test_parameters_that_run_away_end_finite(optimizer, model, data, options):
    with np.errstate(all="ignore"):
        result = fit(model, data, optimizer=optimizer, steps=200, **options)
    check(result)
    if optimizer in ("sgd", "lbfgs"):
        assert result.stop_reason == "diverged"
        assert re.search(r"the loss became (inf|nan) with learning rate", result.message)


# -- faults gradfit does not handle yet -------------------------------------------------------


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.01), ("adam", 100.0)])
def test_overflow_made_by_the_last_update(optimizer, lr):
    result = fit("a*exp(b*x)", GROWTH, init={"a": 1.0, "b": 0.1}, optimizer=optimizer, lr=lr, steps=1)
    check(result)
    assert result.stop_reason == "diverged" and result.steps == 0


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e38), ("sgd", 1e39)])
def test_a_learning_rate_beyond_float32_ends_cleanly(optimizer, lr):
    try:
        result = fit("a*(x-0.5)", {"x": X, "y": LABELS}, loss="bce", optimizer=optimizer, lr=lr, steps=20)
    except ConfigError as err:  # refusing such an lr up front is as good as stopping cleanly
        assert "'lr'" in str(err)
        return
    check(result)
    assert result.stop_reason == "diverged"


def test_lm_plateau_message_is_formatted():
    # exp(5*10) leaves a alone to fit: a shrinks to ~1e-20 and b's Jacobian column underflows.
    result = fit("a*exp(b*x)", {"x": 10 * X, "y": 20 * np.exp(0.5 * X)}, init={"b": 5.0}, optimizer="lm", steps=50)
    assert result.stop_reason == "stalled" and "plateau" in result.message
    check(result)
