"""Every optimizer and schedule name, checked against torch.optim driven by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradfit
from gradfit.data import synthetic
from gradfit.errors import ConfigError
from gradfit.optim.registry import OPTIMIZERS, make_optimizer
from gradfit.optim.schedules import SCHEDULES, make_schedule

FRAME = synthetic.linear(n=64, seed=2)
X = torch.stack([torch.tensor(FRAME["x"].to_numpy()), torch.ones(64)], dim=1)
Y = torch.tensor(FRAME["y"].to_numpy())


def hand_run(name, lr, steps, schedule=None, **options):
    """The same fit written directly against torch.optim."""
    a = torch.zeros(2, requires_grad=True)
    opt = make_optimizer(name, [a], lr=lr, **options)
    sched = make_schedule(schedule, opt, steps)
    losses, lrs = [], []

    def closure():
        opt.zero_grad()
        loss = ((X @ a - Y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        with torch.no_grad():
            losses.append(((X @ a - Y) ** 2).mean().item())
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(closure)
        if sched is not None:
            sched.step()
    return a.detach(), losses, lrs


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_matches_torch_optim_driven_by_hand(name):
    lr = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "lbfgs": 0.5}.get(name, 0.05)
    steps = 8 if name == "lbfgs" else 60
    r = gradfit.fit("linear", FRAME, y="y", optimizer=name, lr=lr, steps=steps)
    a, losses, _ = hand_run(name, lr, steps)
    np.testing.assert_allclose(r.history.loss[:steps], losses, rtol=2e-5)
    np.testing.assert_allclose(r.params["a"].numpy(), a.numpy(), rtol=2e-5, atol=1e-6)
    assert r.history.loss[-1] < r.history.loss[0]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_follow_torch_lr_scheduler(schedule):
    r = gradfit.fit("linear", FRAME, y="y", optimizer="sgd", lr=0.2, steps=30, schedule=schedule)
    _, _, lrs = hand_run("sgd", 0.2, 30, schedule=schedule)
    np.testing.assert_allclose(r.history["lr"][:30], lrs, rtol=1e-12)
    if schedule != "constant":
        assert len(set(np.round(lrs, 12))) > 1


def test_momentum_option_is_passed_through():
    r = gradfit.fit("linear", FRAME, y="y", optimizer="momentum", momentum=0.5, lr=0.05, steps=20)
    a, losses, _ = hand_run("momentum", 0.05, 20, momentum=0.5)
    np.testing.assert_allclose(r.params["a"].numpy(), a.numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(optimizer="adamm"), "Did you mean 'adam'"),
        (dict(lr=-1), "The 'lr' parameter must be a finite number > 0. Got -1"),
        (dict(lr=float("nan")), "'lr' parameter"),
        (dict(momentum=1.5, optimizer="momentum"), "'momentum' parameter must be in \\[0, 1\\)"),
        (dict(steps=10, epochs=2), "not both"),
        (dict(schedule="cosin"), "Did you mean 'cosine'"),
        (dict(optimizer="sgd", momentum=0.9), "use --optimizer momentum"),
        (dict(optimizer="adam", optimizer_options={"betaz": 1}), "does not take the option"),
        (dict(val_split=1.5), "'val_split' parameter must be a fraction"),
        (dict(patience=3), "also give 'val_split'"),
        (dict(batch_size=0), "'batch_size' parameter must be a whole number >= 1"),
        (dict(seed=-1), "'seed'"),
        (dict(dtype="float16"), "'dtype'"),
        (dict(learning_rate=0.1), "did you mean 'lr'"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(options, match):
    with pytest.raises(ConfigError, match=match):
        gradfit.fit("linear", FRAME, y="y", **options)
