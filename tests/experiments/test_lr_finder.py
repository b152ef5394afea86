"""The learning-rate finder against a brute-force lr sweep, a hand-written descent loop and a direct EMA."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.errors import ConfigError, DivergenceError
from gradfit.experiments.lr_finder import LRFinderResult, find_lr, smooth


@pytest.fixture(scope="module")
def seed_sweep() -> LRFinderResult:
    return find_lr("linear", "builtin:linear", y="y")


def test_suggestion_within_a_factor_10_of_the_best_constant_lr(seed_sweep):
    # The test: brute force = the constant lr (sgd, 100 steps) with the lowest final loss.
    grid = np.logspace(-4, np.log10(2), 30)
    finals = [
        gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=float(lr), steps=100).loss for lr in grid
    ]
    best = float(grid[int(np.nanargmin(finals))])
    assert best / 10 <= seed_sweep.suggestion <= best * 10
    assert best / 10 <= seed_sweep.suggestion_min10 <= best * 10
    # and a constant lr at the suggestion really descends: most of the way to the best final loss
    at_suggestion = gradfit.fit("linear", "builtin:linear", y="y", lr=seed_sweep.suggestion, steps=100).loss
    assert at_suggestion < finals[0] and at_suggestion < 2 * min(finals)


def test_losses_are_those_of_a_hand_written_descent_at_the_sweeps_rates(seed_sweep):
    df = gradfit.datasets.linear()
    X = torch.tensor(np.column_stack([df["x"].to_numpy(), np.ones(len(df))]), dtype=torch.float32)
    y = torch.tensor(df["y"].to_numpy(), dtype=torch.float32)
    a = torch.zeros(2, requires_grad=True)  # the linear model's documented start
    expected = []
    for lr in seed_sweep.lrs[:60]:
        loss = ((X @ a - y) ** 2).mean()
        (g,) = torch.autograd.grad(loss, a)
        with torch.no_grad():
            a -= float(lr) * g
            expected.append(float(((X @ a - y) ** 2).mean()))
    np.testing.assert_allclose(seed_sweep.losses[:60], expected, rtol=1e-5)
    ratios = seed_sweep.lrs[1:] / seed_sweep.lrs[:-1]
    np.testing.assert_allclose(ratios, (10.0 / 1e-7) ** (1 / 99), rtol=1e-9)
    assert seed_sweep.lrs[0] == pytest.approx(1e-7)


def test_stops_early_on_divergence(seed_sweep):
    r = seed_sweep
    assert r.stopped_early and r.steps_run < 100 and r.steps_run == len(r.lrs) == len(r.losses)
    finite = np.isfinite(r.smoothed)
    assert not finite[-1] or r.smoothed[-1] > 4.0 * r.smoothed[finite].min()
    assert np.all(r.smoothed[:-1] <= 4.0 * np.minimum.accumulate(r.smoothed[:-1]))  # not a step earlier
    # The stability limit is where plain GD diverges; the lowest loss of the sweep lies beyond it (few steps per rate).
    assert r.stability_limit is not None and r.stability_limit.limit == pytest.approx(1.0, rel=0.01)


def test_runs_to_lr_max_when_nothing_diverges():
    r = find_lr("linear", "builtin:linear", y="y", lr_min=1e-6, lr_max=1e-2, steps=30)
    assert not r.stopped_early and r.steps_run == 30
    assert r.lrs[-1] == pytest.approx(1e-2) and np.all(np.diff(r.losses) < 0)
    assert r.min_lr == pytest.approx(1e-2) and r.suggestion_min10 == pytest.approx(1e-3)


def test_deterministic_for_a_seed_with_mini_batches():
    kwargs = {
        "y": "y",
        "batch_size": 16,
        "optimizer": "adam",
        "lr_min": 1e-5,
        "lr_max": 1.0,
        "steps": 40,
        "seed": 3,
        "init": "random",
    }
    one = find_lr("linear", "builtin:linear", **kwargs)
    two = find_lr("linear", "builtin:linear", **kwargs)
    other = find_lr("linear", "builtin:linear", **{**kwargs, "seed": 4})
    for name in ("lrs", "losses", "smoothed"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert one.suggestion == two.suggestion and one.stability_limit is None and one.smoothing == 0.05
    assert not np.array_equal(one.losses, other.losses)


def test_nothing_of_the_callers_changes():
    df = gradfit.datasets.linear(n=40)
    df_before = df.copy(deep=True)
    init = {"weight": [[0.5]], "bias": [0.1]}
    init_before = copy.deepcopy(init)
    module = torch.nn.Linear(1, 1)
    state_before = {k: v.clone() for k, v in module.state_dict().items()}
    r = find_lr(module, df, y="y", x="x", init=init, steps=20, lr_max=100.0)
    assert r.steps_run > 0
    pd.testing.assert_frame_equal(df, df_before)
    assert init == init_before
    for k, v in module.state_dict().items():
        assert torch.equal(v, state_before[k])


def test_smoothing_starts_at_the_first_loss_and_is_a_weighted_mean():
    r = find_lr("linear", "builtin:linear", y="y", batch_size=10, steps=30, lr_max=0.5)
    assert r.smoothed[0] == r.losses[0]
    w = 0.05
    for k in range(len(r.losses)):
        weights = (1 - w) ** np.arange(k, -1, -1)  # oracle: the bias-corrected EMA is this weighted mean
        assert r.smoothed[k] == pytest.approx(np.average(r.losses[: k + 1], weights=weights), rel=1e-12)
    values = np.array([4.0, 2.0, np.inf, 1.0])
    out = smooth(values, 0.5)
    assert out[0] == 4.0 and out[1] == pytest.approx((0.5 * 4 + 2) / 1.5) and np.all(np.isinf(out[2:]))
    np.testing.assert_array_equal(smooth(values[:2], 1.0), values[:2])


def test_to_dict_is_json(seed_sweep):
    d = json.loads(json.dumps(seed_sweep.to_dict(), allow_nan=False))
    assert d["suggestion"] == seed_sweep.suggestion and len(d["lrs"]) == seed_sweep.steps_run
    assert d["stability_limit"]["lam_max"] == seed_sweep.stability_limit.lam_max


@pytest.mark.parametrize(
    "options, match",
    [
        ({"lr_min": 0.0}, "'lr_min' parameter must be a finite number > 0"),
        ({"lr_min": 1.0, "lr_max": 0.5}, "'lr_max' parameter must be larger than 'lr_min'"),
        ({"steps": 2}, "'steps' parameter must be a whole number >= 5"),
        ({"smoothing": 0.0}, "'smoothing' parameter must be in \\(0, 1\\]"),
        ({"diverge_factor": 1.0}, "'diverge_factor' parameter must be a number > 1"),
        ({"lr": 0.1}, "sets lr itself"),
        ({"optimizer": "lbfgs"}, "chooses its own step length"),
        ({"optimizer": "adamm"}, "Did you mean 'adam'"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        find_lr("linear", "builtin:linear", y="y", **options)


def test_a_start_without_a_finite_loss_is_refused():
    df = pd.DataFrame({"x": [-1.0, -2.0, -3.0], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(DivergenceError, match="learning-rate finder could not start: at the initial parameters"):
        find_lr("log(a*x)", df, y="y")
