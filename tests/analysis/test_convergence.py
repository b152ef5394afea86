"""The verdict after a fit: converged, or the honest reason it is not, with the remedy that fits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import gradfit
from gradfit.analysis.flatness import flatness
from gradfit.errors import GradfitWarning
from gradfit.models.builder import build_model

X = np.linspace(0.0, 1.0, 50)
LINE = {"x": X, "y": 3 * X + 2 + 0.1 * np.sin(40 * X)}


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.fit(*args, **kwargs)


def test_a_budget_that_ends_short_of_the_minimum_is_a_failure_with_a_warning():
    with pytest.warns(GradfitWarning, match="Not converged"):
        r = gradfit.fit("linear", LINE, y="y", lr=0.1, steps=20)
    assert r.stop_reason == "max_steps" and r.converged is False and not r.success
    assert "more steps" in r.message and r.to_dict()["success"] is False
    assert r.diagnostics["verdict"]["remedies"]


def test_the_same_descent_run_long_enough_converges_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradfitWarning)
        r = gradfit.fit("linear", LINE, y="y", lr=0.5, steps=2000)
    assert r.success and r.converged is True and r.stop_reason == "max_steps"
    A = torch.as_tensor(np.column_stack([X, np.ones_like(X)]))
    best = torch.linalg.lstsq(A, torch.as_tensor(LINE["y"])[:, None]).solution[:, 0].numpy()
    np.testing.assert_allclose(list(r.flat_params.values()), best, rtol=1e-4)


def test_updates_that_no_longer_move_the_parameters_at_the_minimum_are_reported_as_such():
    r = quiet_fit("linear", LINE, y="y", optimizer="sgd", steps=3000)
    assert r.success and r.converged is True
    still = r.diagnostics["still"]
    assert 0 < still["since"] < 3000 and "stopped changing at step" in r.message and "at the minimum" in r.message
    rows = r.history.loss[still["since"] : -1]  # the last row is the final loss, summed another way
    assert np.all(rows == rows[0])  # the history agrees: nothing changed after


def test_a_loss_that_ends_above_its_start_has_its_own_stop_reason():
    """From near the optimum, lr 1.2x the stability limit grows the error 1.4x a step: worse, still finite."""
    limit = quiet_fit("linear", LINE, y="y", optimizer="sgd", steps=0).diagnostics["stability_limit"]["lr_limit"]
    best = quiet_fit("linear", LINE, y="y", optimizer="lm").params["a"]
    with pytest.warns(GradfitWarning, match="above its start"):
        r = gradfit.fit(
            "linear", LINE, y="y", optimizer="sgd", lr=1.2 * limit, steps=15, init={"a": (best + 0.01).tolist()}
        )
    assert r.stop_reason == "loss_increased" and not r.success and r.loss > r.diagnostics["start_loss"]
    assert "stability limit" in r.message and f"lr={0.5 * limit:.2g}" in r.message


def test_advice_for_a_classifier_never_proposes_levenberg_marquardt():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    data = {"x": x, "label": (2 * x + rng.logistic(size=200) > 0).astype(float)}
    r = quiet_fit("logistic", data, y="label", loss="bce", optimizer="sgd", lr=0.01, steps=10)
    assert r.converged is False and not r.success
    assert "Levenberg" not in r.message and "--optimizer lm" not in r.message
    assert "L-BFGS" in r.message
    assert all("optimizer='lm'" not in w for w in r.report["warnings"])


def test_mini_batch_budgets_are_not_failures():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=2000)
    r = quiet_fit("linear", {"x": x, "y": 3 * x + 2 + rng.normal(0, 0.1, 2000)}, y="y", batch_size=32, steps=30)
    assert r.config["optimizer"] == "adam" and r.converged is None and r.success


def test_a_plateau_from_underflow_names_the_start_not_no_effect():
    hp = np.linspace(50, 335, 32)
    data = {"hp": hp, "mpg": 30 * np.exp(-0.012 * hp) + 10 + 0.3 * np.sin(hp)}
    with pytest.warns(GradfitWarning, match="plateau"):
        r = gradfit.fit("a*exp(-b*hp) + c", data, y="mpg")
    assert r.stop_reason == "stalled" and not r.success
    assert "no visible effect" in r.message and "--init b=0.01" in r.message
    assert r.diagnostics["verdict"]["flat"] == {"vanishing": ["a", "b"], "overflow": False, "remedy": {"b": 0.01}}
    again = gradfit.fit("a*exp(-b*hp) + c", data, y="mpg", init={"b": 0.01})
    assert again.success and again.flat_params["b"] == pytest.approx(0.012, rel=0.05)


def test_a_start_that_overflows_is_diagnosed_with_a_start_that_does_not():
    x = np.linspace(500, 1000, 30)
    data = {"x": x, "y": 2 * np.exp(0.003 * x)}
    r = quiet_fit("a*exp(b*x)", data, y="y", optimizer="sgd")
    assert r.stop_reason == "diverged" and r.steps == 0
    assert "overflow" in r.message and "--init b=" in r.message


def test_divergence_on_badly_scaled_columns_names_the_limit_and_the_fixes():
    rng = np.random.default_rng(3)
    big = rng.uniform(1e4, 2e4, 40)
    data = {"big": big, "y": 1e-3 * big + rng.normal(size=40)}
    r = quiet_fit("linear", data, y="y", optimizer="sgd", lr=0.01, steps=100)
    limit = r.diagnostics["stability_limit"]["lr_limit"]
    assert r.stop_reason == "diverged"
    assert f"{limit:.3g}" in r.message and "far from unit scale" in r.message and "big: rms" in r.message
    assert "--scale" in r.message and "--optimizer lm" in r.message


def test_flatness_finds_nothing_where_every_parameter_matters():
    model = build_model("a*exp(-b*x) + c", ("x",))
    x = torch.linspace(0, 3, 30, dtype=torch.float64)[:, None]
    f = flatness(model, x, torch.exp(-x[:, 0]), {"a": 1.0, "b": 1.0, "c": 0.0}, ["a", "b", "c"])
    assert not f.flat and f.vanishing == () and f.remedy is None


def test_a_parameter_with_no_effect_anywhere_is_not_blamed_on_the_start():
    model = build_model("b + 0*a*x", ("x",))
    x = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None]
    f = flatness(model, x, x[:, 0], {"a": 1.0, "b": 0.0}, ["a", "b"])
    assert f.vanishing == ("a",) and f.remedy is None
    r = quiet_fit("b + 0*a*x", {"x": X, "y": 2 + 0 * X + 0.1 * np.sin(9 * X)}, y="y")
    assert "--init" not in r.message and "may not depend on it at all" in r.message and "--fix" in r.message
    assert any("a has no effect" in w for w in r.report["warnings"])


def test_a_stall_without_error_bars_is_not_guessed_a_failure():
    r = quiet_fit("linear", LINE, y="y", optimizer="sgd", steps=3000, uncertainty=False)
    assert r.success and r.converged is None and "was not checked" in r.message
