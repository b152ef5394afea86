"""Sufficient statistics (train/linear_stats.py): the same fits as the autograd row pass, in O(p²) per step.

The oracle is the autograd row pass itself (``row_pass="autograd"``) on the same data, and torch.autograd and
torch.linalg.lstsq for the statistics alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.data import synthetic
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.train.linear_stats import LinearStats
from helpers.checkpoints import COMPARED, assert_same_fit, fit_stopped_at

STATS = "sufficient_statistics"
WAVE = "a*sin(x) + b*x**2 + c"


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 2_000)
    y = 1.5 * np.sin(x) - 0.7 * x**2 + 0.4 + 0.1 * rng.normal(size=x.size)
    return pd.DataFrame({"x": x, "y": y, "w": rng.uniform(0.2, 3.0, x.size)})


def both(model, data, **options):
    """The fit by the statistics and by the autograd row pass; the first must have used the statistics."""
    fast = gradfit.fit(model, data, y="y", **options)
    slow = gradfit.fit(model, data, y="y", row_pass="autograd", **options)
    assert STATS in fast.diagnostics["row_pass"], fast.diagnostics["row_pass"]
    assert slow.diagnostics["row_pass"] == ["autograd"]
    return fast, slow


def assert_agree(fast, slow, rtol=1e-10, columns=("loss", "grad_norm")):
    assert fast.steps == slow.steps and fast.stop_reason == slow.stop_reason
    for name in slow.params:
        np.testing.assert_allclose(fast.params[name].double(), slow.params[name].double(), rtol=rtol, err_msg=name)
    for column in columns:
        # Gradients near the optimum are rounding of terms as large as the first gradient: both paths round.
        atol = 1e-12 * np.nanmax(slow.history[column]) if column == "grad_norm" else 0.0
        np.testing.assert_allclose(fast.history[column], slow.history[column], rtol=rtol, atol=atol, err_msg=column)


def test_sgd_1000_steps_float64_equals_the_row_pass(frame):
    fast, slow = both("linear", frame, x="x", optimizer="sgd", lr=0.1, steps=1000, dtype="float64")
    assert fast.diagnostics["row_pass"] == [STATS]
    assert len(fast.history["loss"]) >= 1000
    assert_agree(fast, slow)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_momentum_and_adam_on_a_formula_linear_in_its_parameters(frame, optimizer):
    fast, slow = both(WAVE, frame, optimizer=optimizer, lr=0.01, steps=1000, dtype="float64")
    assert_agree(fast, slow)


def test_weighted_rows(frame):
    fast, slow = both(WAVE, frame, weights="w", optimizer="sgd", lr=0.05, steps=300, dtype="float64")
    assert_agree(fast, slow)


def test_fixed_parameters_stay_and_the_rest_agree(frame):
    fast, slow = both(WAVE, frame, init={"b": -0.5}, fix="b", optimizer="sgd", lr=0.05, steps=300, dtype="float64")
    assert float(fast.params["b"]) == -0.5
    assert_agree(fast, slow)


def test_bounds(frame):
    bounds = {"a": (None, 1.0), "c": (0.5, None)}
    fast, slow = both(WAVE, frame, bounds=bounds, optimizer="sgd", lr=0.05, steps=300, dtype="float64")
    assert float(fast.params["a"]) == 1.0  # held at the bound, as the row pass holds it
    assert_agree(fast, slow)


def test_validation_split_and_early_stopping(frame):
    options = dict(val_split=0.3, patience=5, min_delta=1e-3, optimizer="sgd", lr=0.05, steps=2000, dtype="float64")
    fast, slow = both(WAVE, frame, **options)
    assert fast.diagnostics["row_pass"] == [STATS]  # the validation loss too: no row pass at all
    assert fast.stop_reason == "early_stopped" and fast.steps < 2000
    assert fast.best_step == slow.best_step
    assert_agree(fast, slow, columns=("loss", "grad_norm", "val_loss"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lr", [1.2, 50.0])
def test_divergence_is_caught_at_the_same_step_with_the_same_rollback(dtype, lr):
    """A float32 row pass overflows where its float32 sums do: the statistics' loss is inf from there too."""
    data = synthetic.linear(n=5_000, seed=0)
    fast, slow = both("linear", data, x="x", optimizer="sgd", lr=lr, steps=3000, dtype=dtype)
    assert fast.stop_reason == slow.stop_reason == "diverged" and fast.steps == slow.steps
    assert fast.message == slow.message
    np.testing.assert_allclose(fast.params["a"], slow.params["a"], rtol=1e-10 if dtype == "float64" else 1e-4)


def test_lbfgs_line_search_goes_through_the_statistics(frame):
    fast, slow = both(WAVE, frame, optimizer="lbfgs", steps=20, dtype="float64")
    assert_agree(fast, slow, rtol=1e-8)


def test_scaled_descent_is_served_too():
    data = synthetic.rollercoaster().rename(columns={"speed": "y"})
    fast, slow = both("a*t**2 + b*t + c", data, scale=True, optimizer="sgd", lr=0.3, steps=200, dtype="float64")
    assert_agree(fast, slow, rtol=1e-9)


def test_ill_conditioned_poly3_on_0_to_100_agrees():
    """x up to 10^6 beside a column of ones: A's condition number is ~1e13, yet the centred statistics hold."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 100, 3_000)
    data = pd.DataFrame({"x": x, "y": 1e-4 * x**3 - 0.01 * x**2 + 0.5 * x + 3 + rng.normal(size=x.size)})
    fast, slow = both("poly3", data, x="x", optimizer="adam", lr=1e-3, steps=500, dtype="float64")
    assert_agree(fast, slow, rtol=1e-9)


def test_a_nonlinear_formula_and_mini_batches_keep_the_row_pass(frame):
    curved = gradfit.fit("a*exp(-b*x) + c", frame, y="y", optimizer="sgd", lr=0.01, steps=50, dtype="float64")
    batched = gradfit.fit(WAVE, frame, y="y", optimizer="sgd", lr=0.01, batch_size=100, epochs=2, dtype="float64")
    huber = gradfit.fit(WAVE, frame, y="y", loss="huber", optimizer="sgd", lr=0.01, steps=50, dtype="float64")
    for r in (curved, batched, huber):
        assert STATS not in r.diagnostics["row_pass"] and r.diagnostics["row_pass"]


def test_a_budget_too_small_to_pay_for_the_build_keeps_the_row_pass(frame):
    r = gradfit.fit("poly9", frame, x="x", y="y", optimizer="sgd", lr=1e-4, steps=2, dtype="float64")
    assert r.diagnostics["row_pass"] == ["autograd"]


def test_float32_agrees_to_float32_accuracy(frame):
    fast, slow = both(WAVE, frame, optimizer="adam", lr=0.01, steps=300, dtype="float32")
    assert all(p.dtype == torch.float32 for p in fast.params.values())
    assert_agree(fast, slow, rtol=2e-5)


def test_resume_with_the_statistics_is_bit_exact(tmp_path, frame):
    common = dict(y="y", optimizer="adam", lr=0.01, steps=60, dtype="float64", val_split=0.25, seed=4)
    full = gradfit.fit(WAVE, frame, **common)
    assert full.diagnostics["row_pass"] == [STATS]
    stopped = fit_stopped_at(23, tmp_path, WAVE, frame, **common)
    assert stopped.stop_reason == "interrupted"
    resumed = gradfit.fit(WAVE, frame, resume=tmp_path, **common)
    assert resumed.diagnostics["row_pass"] == [STATS]
    assert_same_fit(resumed, full)


def test_a_million_rows(frame):
    data = synthetic.linear(n=1_000_000, seed=1)
    fast, slow = both("linear", data, init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=20, dtype="float64")
    assert_agree(fast, slow, columns=COMPARED[2:3])


# -- the statistics alone -------------------------------------------------------------------------------------


def _rows(n=500, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 4 - 2
    y = 1.5 * torch.sin(x[:, 0]) - 0.7 * x[:, 0] ** 2 + 0.4 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    w = torch.rand(n, generator=gen, dtype=torch.float64) + 0.1
    return x, y, w


def _start(model, value=0.0):
    return {s.name: torch.full(s.shape, value, dtype=torch.float64) for s in model.specs}


@pytest.mark.parametrize("weighted", [False, True])
def test_value_and_gradient_equal_autograd_anywhere(weighted):
    model = build_model(WAVE, ("x",))
    x, y, w = _rows()
    w = w if weighted else None
    stats = LinearStats.build(model, x, y, w, _start(model), frozenset(), chunk_size=64)
    assert stats is not None
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        params = {s.name: (torch.randn(s.shape, generator=gen, dtype=torch.float64) * 3) for s in model.specs}
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        loss = get_loss("mse")(model(leaves, x), y, w)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        value, mine = stats.value_and_grad(params, list(params))
        torch.testing.assert_close(value, loss.detach(), rtol=1e-12, atol=0)
        for g, m in zip(grads, mine):
            torch.testing.assert_close(m, g, rtol=1e-10, atol=1e-13)


def test_the_centre_is_the_least_squares_optimum():
    model = build_model(WAVE, ("x",))
    x, y, w = _rows()
    stats = LinearStats.build(model, x, y, w, _start(model, 1.0), frozenset())
    root = w.sqrt()[:, None]
    design = torch.stack([torch.sin(x[:, 0]), x[:, 0] ** 2, torch.ones_like(y)], 1)  # a, b, c in specs order
    names = [s.name for s in model.specs]
    order = [names.index(n) for n in "abc"]
    solution = torch.linalg.lstsq(root * design, root[:, 0] * y).solution
    torch.testing.assert_close(stats.theta[order], solution, rtol=1e-10, atol=1e-12)
    assert float(stats.g.abs().max()) < 1e-9 * float(stats.A.abs().max())  # centred: g ~ 0


def test_a_model_nonlinear_past_the_probe_rows_is_not_built():
    """Linear on the first 512 rows (those the Jacobian probe sees), quadratic in b after: the check on every row
    of the first pass finds it."""

    def kinked(x, a, b):
        return a * x + b * torch.where(x > 600, b, torch.ones_like(x))

    model = build_model(kinked, ("x",))
    x = torch.arange(1_000, dtype=torch.float64)[:, None]
    y = 2 * x[:, 0] + 1
    assert LinearStats.build(model, x, y, None, _start(model, 1.0), frozenset()) is None
    r = gradfit.fit(kinked, pd.DataFrame({"x": x[:, 0], "y": y}), y="y", optimizer="sgd", lr=1e-7, steps=50)
    assert STATS not in r.diagnostics["row_pass"]


def test_a_model_that_refuses_the_point_zero_keeps_the_row_pass():
    def guarded(x, a, b):
        if float(a) == 0.0:
            raise ValueError("a must not be 0")
        return a * x + b

    model = build_model(guarded, ("x",))
    x, y, _ = _rows()
    assert LinearStats.build(model, x, y, None, _start(model, 1.0), frozenset()) is None


def test_the_statistics_serve_only_their_own_unchanged_rows():
    model = build_model("linear", ("x",))
    x, y, _ = _rows()
    stats = LinearStats.build(model, x, y, None, _start(model), frozenset())
    assert stats.serves(x, y, None)
    assert not stats.serves(x.clone(), y, None) and not stats.serves(x, y, torch.ones_like(y))
    y[0] += 1.0  # changed in place: the statistics no longer describe these rows
    assert not stats.serves(x, y, None)


# -- the landscape ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "w"])
def test_the_landscape_from_the_statistics_equals_the_grid_over_the_rows(frame, weights, monkeypatch):
    from gradfit.analysis import landscape

    r = gradfit.fit(WAVE, frame, y="y", weights=weights, optimizer="adam", lr=0.05, steps=100, dtype="float64")
    built = []
    monkeypatch.setattr(landscape.LinearStats, "build", _spy(landscape.LinearStats.build, built), raising=True)
    fast = landscape.compute_landscape(r, frame, params=("a", "c"), n=(31, 21))
    assert built and built[0] is not None  # the grid came from the statistics
    monkeypatch.setattr(landscape, "_grid_loss_by_statistics", lambda *args: None)
    slow = landscape.compute_landscape(r, frame, params=("a", "c"), n=(31, 21))
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-10)


def test_the_landscape_of_a_nonlinear_model_takes_the_rows(frame):
    from gradfit.analysis import landscape

    r = gradfit.fit("a*exp(-b*x) + c", frame, y="y", optimizer="adam", lr=0.01, steps=20, dtype="float64")
    base = torch.tensor([r.flat_params[k] for k in r.model.flat_names()], dtype=torch.float64)
    x = torch.tensor(frame[["x"]].to_numpy())
    y = torch.tensor(frame["y"].to_numpy())
    points = torch.zeros(50, 2, dtype=torch.float64)
    assert landscape._grid_loss_by_statistics(r.model, get_loss("mse"), base, [0, 1], points, x, y, 1000, None) is None


def _spy(build, built):
    def spy(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    return staticmethod(spy)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_host_arithmetic_of_a_few_parameters_equals_the_tensor_arithmetic(dtype):
    model = build_model(WAVE, ("x",))
    x, y, w = _rows()
    stats = LinearStats.build(model, x.to(dtype), y.to(dtype), w.to(dtype), _start(model), frozenset(), chunk_size=64)
    assert stats is not None and stats.host  # three free entries: Python floats
    gen = torch.Generator().manual_seed(2)
    for scale in (0.1, 3.0, 1e19):  # the last overflows a float32 fit's sums: inf on both
        params = {
            s.name: (torch.randn(s.shape, generator=gen, dtype=torch.float64) * scale).to(dtype) for s in model.specs
        }
        names = list(params)
        value, grads = stats.value_and_grad(params, names)
        host_value = stats.value(params)
        stats.host = False
        try:
            tensor_value, tensor_grads = stats.value_and_grad(params, names)
        finally:
            stats.host = True
        assert value.dtype == torch.float64 and value.shape == ()
        torch.testing.assert_close(value, tensor_value, rtol=1e-13, atol=0)
        torch.testing.assert_close(host_value, tensor_value, rtol=1e-13, atol=0)
        for g, t, name in zip(grads, tensor_grads, names):
            assert g.dtype == params[name].dtype and g.shape == params[name].shape
            torch.testing.assert_close(g, t, rtol=1e-12, atol=1e-300)
    assert dtype == torch.float64 or not torch.isfinite(value)  # the float32 overflow case ended at inf
