"""Every stopping rule, divergence, and what the history records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradfit
from gradfit.data import synthetic
from gradfit.train.objective import Objective

FRAME = synthetic.linear(n=200, seed=4)


def test_budget_in_steps_and_in_epochs():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=7)
    assert (r.stop_reason, r.steps, r.epochs) == ("max_steps", 7, 7.0)
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, epochs=3, batch_size=50)
    assert (r.stop_reason, r.steps, r.epochs) == ("max_epochs", 12, 3.0)
    assert len(r.history) == 13  # the start, 12 updates


def test_target_loss_stops_at_the_first_step_below_it():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=1000, target_loss=0.2)
    assert r.stop_reason == "target_loss"
    losses = r.history.loss
    assert losses[-1] <= 0.2 and np.all(losses[:-1] > 0.2)
    assert r.loss == pytest.approx(losses[-1])


def test_tolerance_detects_convergence():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=10_000, tol=1e-7, dtype="float64")
    assert r.stop_reason == "converged" and r.steps < 10_000
    prev, last = r.history.loss[-2], r.history.loss[-1]  # the stop happens before any further update
    assert abs(prev - last) <= 1e-7 * last


def test_max_time_stops_the_fit():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=10**7, max_time=0.2)
    assert r.stop_reason == "max_time"
    assert 0 < r.steps < 10**7


def test_early_stopping_restores_the_best_parameters():
    torch.manual_seed(0)
    # An MLP on few noisy points overfits: the validation loss turns up and early stopping fires.
    frame = synthetic.linear(n=40, seed=7)
    r = gradfit.fit(
        "mlp",
        frame,
        y="y",
        optimizer="adam",
        lr=0.05,
        steps=3000,
        val_split=0.5,
        patience=20,
        model_options={"hidden": (64, 64)},
    )
    assert r.stop_reason == "early_stopped"
    val = r.history["val_loss"]
    best = int(np.nanargmin(val[:-1]))
    assert r.best_step == int(r.history["step"][best])
    assert r.val_loss == pytest.approx(val[best], rel=1e-5)


def test_divergence_keeps_the_last_finite_parameters():
    r = gradfit.fit("linear", FRAME, y="y", lr=10.0, steps=500)
    assert r.stop_reason == "diverged" and not r.success
    assert "smaller learning rate" in r.message and "lr=1" in r.message
    assert all(math.isfinite(v) for v in r.flat_params.values())
    assert math.isfinite(r.loss)
    assert not math.isfinite(r.history.loss[-1])  # the blow-up is the last row...
    assert np.all(np.diff(r.history["step"]) == 1)  # ...and the rows stay in step order, one per step
    kept = r.history.params_at(r.steps)
    np.testing.assert_allclose(list(kept.values()), r.params["a"].double().numpy())


def test_a_fit_that_cannot_start_says_so():
    frame = FRAME.assign(y=FRAME["y"] - 10)
    r = gradfit.fit("log(b*x + c)", frame, y="y", init={"b": 1.0, "c": -5.0}, steps=10)
    assert r.stop_reason == "diverged" and "could not start" in r.message


def test_history_rows_are_the_loss_at_the_snapshot_parameters():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=20)
    model = r.model
    objective = Objective(model, gradfit.get_loss("mse"))
    x = torch.tensor(FRAME[["x"]].to_numpy())
    y = torch.tensor(FRAME["y"].to_numpy())
    for k in (0, 5, 20):
        a = torch.tensor([r.history.params_at(k)["a[0]"], r.history.params_at(k)["a[1]"]], dtype=torch.float32)
        assert float(objective.value({"a": a}, x, y)) == pytest.approx(r.history.loss[k], rel=1e-6)
    assert math.isnan(r.history["grad_norm"][-1]) and r.history["grad_norm"][0] > 0


def test_snapshots_are_bounded_and_keep_the_start():
    r = gradfit.fit("linear", FRAME, y="y", lr=0.1, steps=5000, max_snapshots=100)
    steps = r.history.snapshot_steps
    assert len(steps) <= 101 and steps[0] == 0 and steps[-1] == 5000
    assert len(set(np.diff(steps[:-1]))) == 1  # evenly spaced
    assert len(r.history) == 5001


def test_same_seed_same_result_and_different_seed_different_batches():
    kw = dict(y="y", lr=0.05, batch_size=16, epochs=3)
    a = gradfit.fit("linear", FRAME, seed=1, **kw)
    b = gradfit.fit("linear", FRAME, seed=1, **kw)
    c = gradfit.fit("linear", FRAME, seed=2, **kw)
    assert torch.equal(a.params["a"], b.params["a"])
    np.testing.assert_array_equal(a.history.loss, b.history.loss)
    assert not torch.equal(a.params["a"], c.params["a"])


def test_batch_size_one_runs_one_row_per_step():
    r = gradfit.fit("linear", FRAME.iloc[:20], y="y", lr=0.05, batch_size=1, epochs=2)
    assert r.steps == 40 and r.stop_reason == "max_epochs"
