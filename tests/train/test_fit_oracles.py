"""The fits the core issue promises, each against an independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradfit
from gradfit.data import synthetic


def lstsq_line(frame) -> np.ndarray:
    x = torch.tensor(frame["x"].to_numpy(), dtype=torch.float64)
    X = torch.stack([x, torch.ones_like(x)], dim=1)
    y = torch.tensor(frame["y"].to_numpy(), dtype=torch.float64)
    return torch.linalg.lstsq(X, y[:, None]).solution[:, 0].numpy()


def test_linear_seed_sgd_reaches_least_squares():
    frame = synthetic.linear(seed=0)
    r = gradfit.fit("linear", frame, y="y", optimizer="sgd", lr=0.1, steps=1000)
    assert r.stop_reason == "max_steps" and r.steps == 1000
    np.testing.assert_allclose(r.params["a"].numpy(), lstsq_line(frame), rtol=0, atol=1e-4)


def test_sgd_equals_the_seeds_hand_written_loop_step_by_step():
    frame = synthetic.linear(seed=3)
    x = torch.ones(len(frame), 2)
    x[:, 0] = torch.tensor(frame["x"].to_numpy())
    y = torch.tensor(frame["y"].to_numpy())
    a = nn.Parameter(torch.tensor([-1.0, 1.0]))
    lr, hand = 0.1, []
    for _ in range(100):  # seed 001's update(), verbatim
        y_hat = x @ a
        loss = ((y - y_hat) ** 2).mean()
        hand.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a.sub_(lr * a.grad)
            a.grad.zero_()
    r = gradfit.fit("linear", frame, y="y", init={"a": [-1.0, 1.0]}, lr=0.1, steps=100)
    np.testing.assert_allclose(r.history.loss[:100], hand, rtol=1e-6)
    np.testing.assert_allclose(r.params["a"].numpy(), a.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "optimizer, options",
    [("lbfgs", dict(steps=50, dtype="float64")), ("adam", dict(lr=0.5, steps=3000, dtype="float64"))],
)
def test_rollercoaster_reaches_polyfit(optimizer, options):
    frame = synthetic.rollercoaster(seed=0)
    expected = np.polyfit(frame["t"].to_numpy(np.float64), frame["speed"].to_numpy(np.float64), 2)
    r = gradfit.fit("a*t**2 + b*t + c", frame, y="speed", optimizer=optimizer, **options)
    got = np.array([r.flat_params[k] for k in "abc"])
    np.testing.assert_allclose(got, expected, rtol=1e-3)


@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_classifies_separable_blobs(classes):
    frame = synthetic.blobs(n=300, n_classes=classes, seed=1)
    loss = "bce" if classes == 2 else "cross_entropy"
    r = gradfit.fit("logistic", frame, x="x1,x2", y="label", loss=loss, optimizer="adam", lr=0.1, steps=300)
    logits = r.predict(frame)
    pred = (logits > 0).astype(int) if classes == 2 else logits.argmax(axis=1)
    assert (pred == frame["label"].to_numpy()).mean() > 0.95


def test_minibatch_sgd_on_1e5_rows_is_within_one_percent_of_least_squares():
    frame = synthetic.linear(n=100_000, seed=5)
    best = lstsq_line(frame)
    X = np.stack([frame["x"].to_numpy(np.float64), np.ones(len(frame))], axis=1)
    best_loss = np.mean((X @ best - frame["y"].to_numpy(np.float64)) ** 2)
    r = gradfit.fit("linear", frame, y="y", optimizer="sgd", lr=0.05, batch_size=256, epochs=2, seed=1)
    assert r.stop_reason == "max_epochs"
    assert r.loss <= best_loss * 1.01


def test_float32_at_scale_matches_float64():
    """10^7 rows, ten full-batch steps: float32 ends within 1e-5 of float64 thanks to chunked float64 accumulation."""
    frame = synthetic.linear(n=10_000_000, seed=0)
    kw = dict(y="y", init={"a": [-1.0, 1.0]}, lr=0.1, steps=10)
    r32 = gradfit.fit("linear", frame, dtype="float32", **kw)
    r64 = gradfit.fit("linear", frame, dtype="float64", **kw)
    a32, a64 = r32.params["a"].double().numpy(), r64.params["a"].numpy()
    np.testing.assert_allclose(a32, a64, rtol=1e-5)
    # The same ten steps as a plain float32 loop drift well past that: the test can tell the difference.
    x = torch.ones(len(frame), 2)
    x[:, 0] = torch.tensor(frame["x"].to_numpy())
    y = torch.tensor(frame["y"].to_numpy())
    a = torch.tensor([-1.0, 1.0], requires_grad=True)
    for _ in range(10):
        ((x @ a - y) ** 2).mean().backward()
        with torch.no_grad():
            a -= 0.1 * a.grad
            a.grad = None
    assert np.abs(a.detach().double().numpy() - a64).max() / np.abs(a64).max() > 1e-4
