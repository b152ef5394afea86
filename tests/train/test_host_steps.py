"""Blocks of steps in Python floats (train/host_steps.py, train/host_arith.py): the step-at-a-time fit, bit for bit.

The oracle is the loop's own step-at-a-time path on the same fit (blocks turned off with ``host_steps.ENABLED``),
compared for equality of every history column, snapshot and parameter, and a float64 numpy loop with the
closed-form gradient of the mean squared error. torch's own ``add_`` is the oracle of the host arithmetic.
"""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.train import host_steps
from gradfit.train.history import HistoryRecorder
from gradfit.train.host_arith import arithmetic, round32
from gradfit.train.interrupt import request_stop
from helpers.checkpoints import COMPARED

STATS = "sufficient_statistics"


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, 100)
    return pd.DataFrame({"x": x, "y": 1.7 * x - 0.4 + 0.1 * rng.normal(size=x.size), "w": rng.uniform(0.2, 3, x.size)})


def fit(model, data, blocks: bool, **options):
    host_steps.ENABLED = blocks
    try:
        return gradfit.fit(model, data, y="y", **options)
    finally:
        host_steps.ENABLED = True


def both(model, data, **options):
    """The fit in blocks and one step at a time; the first must have run its steps in blocks."""
    fast, slow = fit(model, data, True, **options), fit(model, data, False, **options)
    assert fast.diagnostics.get("host_steps", 0) > 0, fast.diagnostics
    assert "host_steps" not in slow.diagnostics
    assert fast.diagnostics["row_pass"] == slow.diagnostics["row_pass"] == [STATS]
    return fast, slow


def assert_identical(fast, slow):
    assert (fast.steps, fast.stop_reason, fast.message) == (slow.steps, slow.stop_reason, slow.message)
    for name in slow.params:
        assert fast.params[name].dtype == slow.params[name].dtype
        assert torch.equal(fast.params[name], slow.params[name]), name
    for column in COMPARED:
        np.testing.assert_array_equal(fast.history[column], slow.history[column], err_msg=column)
    np.testing.assert_array_equal(fast.history.snapshot_steps, slow.history.snapshot_steps)
    np.testing.assert_array_equal(fast.history.snapshots, slow.history.snapshots)
    assert fast.loss == slow.loss


def numpy_descent(x, y, a, b, lr, steps, momentum=0.0, nesterov=False):
    """float64 gradient descent on mean((y - a x - b)²) with the closed-form gradient (torch.optim.SGD's update)."""
    theta, buf = np.array([a, b], dtype=np.float64), None
    for _ in range(steps):
        r = y - theta[0] * x - theta[1]
        grad = np.array([-2 * np.mean(r * x), -2 * np.mean(r)])
        if momentum:
            buf = grad.copy() if buf is None else momentum * buf + grad
            grad = grad + momentum * buf if nesterov else buf
        theta = theta - lr * grad
    return theta


@pytest.mark.parametrize(
    "optimizer, momentum, nesterov", [("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)]
)
def test_1000_steps_float64_equal_the_step_at_a_time_fit_and_numpy(frame, optimizer, momentum, nesterov):
    common = dict(x="x", optimizer=optimizer, lr=0.05, steps=1000, dtype="float64", init={"a": 0.3, "b": -1.0})
    fast, slow = both("a*x + b", frame, **common)
    assert_identical(fast, slow)
    want = numpy_descent(frame["x"].to_numpy(), frame["y"].to_numpy(), 0.3, -1.0, 0.05, 1000, momentum, nesterov)
    got = np.array([float(fast.params["a"]), float(fast.params["b"])])
    np.testing.assert_allclose(got, want, rtol=1e-10)


def numpy_adam(x, y, a, b, lr, steps, beta1=0.9, beta2=0.999, eps=1e-8):
    """float64 Adam (Kingma & Ba, torch.optim.Adam's form) on mean((y - a x - b)²) with the closed-form gradient."""
    theta, m, v = np.array([a, b], dtype=np.float64), np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        r = y - theta[0] * x - theta[1]
        grad = np.array([-2 * np.mean(r * x), -2 * np.mean(r)])
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + eps
        theta = theta - lr / (1 - beta1**t) * m / denom
    return theta


def test_adam_1000_steps_float64_equal_the_step_at_a_time_fit_and_numpy(frame):
    common = dict(x="x", optimizer="adam", lr=0.05, steps=1000, dtype="float64", init={"a": 0.3, "b": -1.0})
    fast, slow = both("a*x + b", frame, **common)
    assert fast.diagnostics["host_steps"] == 999  # the loop's own first step makes the optimizer's state
    assert_identical(fast, slow)
    want = numpy_adam(frame["x"].to_numpy(), frame["y"].to_numpy(), 0.3, -1.0, 0.05, 1000)
    got = np.array([float(fast.params["a"]), float(fast.params["b"])])
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_float32_is_bit_for_bit_the_step_at_a_time_fit(frame, optimizer):
    fast, slow = both("linear", frame, x="x", optimizer=optimizer, lr=0.05, steps=700, dtype="float32")
    assert all(p.dtype == torch.float32 for p in fast.params.values())
    assert_identical(fast, slow)


def test_weights_and_fixed_parameters(frame):
    common = dict(x="x", weights="w", optimizer="momentum", lr=0.02, steps=400, init={"c": 0.25}, fix="c")
    fast, slow = both("a*x + b + c", frame, **common)
    assert float(fast.params["c"]) == 0.25
    assert_identical(fast, slow)


@pytest.mark.parametrize(
    "options",
    [
        {"tol": 1e-9, "steps": 5000},  # converged
        {"target_loss": 0.02, "steps": 5000},
        {"lr": 3.0, "steps": 500},  # diverges: rollback to the last finite step
        {"lr": 1e38, "steps": 50, "dtype": "float32"},  # the update overflows float32
        {"schedule": "cosine", "steps": 600},
        {"schedule": "step", "steps": 600},
        {"schedule": "onecycle", "steps": 600, "optimizer": "momentum"},
        {"schedule": "cosine", "steps": 600, "optimizer": "adam"},
        {"tol": 1e-10, "steps": 5000, "optimizer": "adam", "dtype": "float32"},
    ],
)
def test_stops_and_schedules_are_the_same(frame, options):
    common = dict(x="x", optimizer="sgd", lr=0.1, init={"a": 3.0, "b": 2.0}) | options
    fast = fit("a*x + b", frame, True, **common)
    slow = fit("a*x + b", frame, False, **common)
    # An update that overflows at the very first step leaves it to the loop's own step: no block at all.
    assert ("host_steps" in fast.diagnostics) == (options["lr"] != 1e38 if "lr" in options else True)
    assert_identical(fast, slow)


def test_long_fits_thin_rows_and_snapshots_the_same(frame):
    fast, slow = both("linear", frame, x="x", optimizer="sgd", lr=0.01, steps=5000, max_snapshots=100)
    assert len(fast.history.snapshot_steps) <= 100
    assert_identical(fast, slow)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_fit(tmp_path, frame, optimizer):
    common = dict(x="x", optimizer=optimizer, lr=0.05, dtype="float32", init={"a": 3.0, "b": 2.0})
    full = fit("a*x + b", frame, True, steps=900, **common)
    first = fit("a*x + b", frame, True, steps=500, checkpoint_every=100, checkpoint_dir=tmp_path, **common)
    assert first.diagnostics["host_steps"] >= 499
    resumed = fit("a*x + b", frame, True, steps=900, resume=tmp_path, **common)
    assert resumed.diagnostics["resumed_at_step"] == 500 and resumed.diagnostics["host_steps"] == 400
    assert_identical(resumed, full)


def test_an_interrupt_stops_the_fit_at_a_whole_step(frame):
    """A stop request lands between blocks: the result is the step-at-a-time fit of that many steps."""
    common = dict(x="x", optimizer="momentum", lr=0.001, dtype="float64")

    def stop_soon():
        time.sleep(0.3)
        request_stop()

    thread = threading.Thread(target=stop_soon)
    thread.start()
    stopped = fit("a*x + b", frame, True, steps=5_000_000, **common)
    thread.join()
    assert stopped.stop_reason == "interrupted" and 0 < stopped.steps < 5_000_000
    again = fit("a*x + b", frame, False, steps=stopped.steps, **common)
    for name in again.params:
        assert torch.equal(stopped.params[name], again.params[name])
    for column in ("loss", "grad_norm", "lr"):
        np.testing.assert_array_equal(stopped.history[column][:-1], again.history[column][:-1])


@pytest.mark.parametrize("restore_best", [True, False])
def test_validation_and_early_stopping(frame, restore_best):
    common = dict(x="x", optimizer="momentum", lr=0.01, steps=3000, val_split=0.25, seed=2)
    options = dict(patience=5, min_delta=1e-4, restore_best=restore_best)
    fast, slow = both("a*x + b", frame, **common, **options)
    assert fast.stop_reason == "early_stopped" and fast.steps < 3000
    assert fast.best_step == slow.best_step and fast.val_loss == slow.val_loss
    assert_identical(fast, slow)
    fast, slow = both("a*x + b", frame, **common)  # validation losses recorded, no early stopping
    assert np.isfinite(fast.history["val_loss"][:-1]).all()
    assert_identical(fast, slow)


def test_a_time_limit_stops_at_a_whole_step(frame):
    """max_time is asked at every step of a block: the fit stopped is the step-at-a-time fit of as many steps."""
    common = dict(x="x", optimizer="sgd", lr=0.001, dtype="float32")
    stopped = fit("a*x + b", frame, True, steps=10_000_000, max_time=0.2, **common)
    assert stopped.stop_reason == "max_time" and stopped.diagnostics["host_steps"] == stopped.steps > 0
    again = fit("a*x + b", frame, False, steps=stopped.steps, **common)
    for name in again.params:
        assert torch.equal(stopped.params[name], again.params[name])
    for column in ("loss", "grad_norm", "lr"):
        np.testing.assert_array_equal(stopped.history[column][:-1], again.history[column][:-1])
    assert stopped.history["time"][-1] >= 0.2 > stopped.history["time"][-2]  # the last row is the stop's


class Watch:
    def __init__(self):
        self.steps = 0

    def on_step(self, state):
        self.steps += 1


@pytest.mark.parametrize(
    "options",
    [
        {"callbacks": [Watch()]},
        {"bounds": {"a": (0.0, 1.0)}},
        {"optimizer": "adam", "optimizer_options": {"amsgrad": True}},
        {"optimizer": "adagrad"},
        {"batch_size": 20},
    ],
)
def test_what_blocks_do_not_cover_is_stepped_one_at_a_time(frame, options):
    common = dict(x="x", optimizer="sgd", lr=0.05, steps=300, init={"a": 0.5, "b": 0.0}) | options
    fast = fit("a*x + b", frame, True, **common)
    assert "host_steps" not in fast.diagnostics
    slow = fit("a*x + b", frame, False, **common)
    assert_identical(fast, slow)


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "adam", "optimizer_options": {"amsgrad": True}},
        {"optimizer": "sgd", "optimizer_options": {"weight_decay": 0.01}},
    ],
)
def test_an_update_no_block_computes_is_not_asked_for_a_block_at_every_step(frame, options, monkeypatch):
    """Settings that keep every step out of blocks are found before the first step, not asked again per step."""
    calls = []
    advance = host_steps.HostBlocks.advance
    monkeypatch.setattr(host_steps.HostBlocks, "advance", lambda self, f: calls.append(1) or advance(self, f))
    common = dict(x="x", lr=0.05, steps=50, init={"a": 0.5, "b": 0.0}) | options
    fast, slow = fit("a*x + b", frame, True, **common), fit("a*x + b", frame, False, **common)
    assert calls == [] and "host_steps" not in fast.diagnostics
    assert_identical(fast, slow)
    assert fit("a*x + b", frame, True, **(common | {"optimizer_options": {}})).diagnostics["host_steps"] > 0
    assert calls  # the same fit without those settings steps in blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_host_update_rounds_as_torch_add(dtype):
    arith = arithmetic(dtype)
    assert arith is not None  # torch on the CPU computes one of the two forms
    rng = random.Random(1)
    for _ in range(3000):
        p, g, a = (arith.rnd(rng.uniform(-5, 5) * 10 ** rng.randint(-8, 8)) for _ in range(3))
        t = torch.tensor([p], dtype=dtype)
        t.add_(torch.tensor([g], dtype=dtype), alpha=a)
        assert t.item() == arith.axpy(p, a, g)
        m = torch.tensor([p], dtype=dtype).mul_(a)
        assert m.item() == arith.mul(p, a)


def test_round32_is_torchs_float32():
    rng = random.Random(2)
    values = [rng.uniform(-1e3, 1e3) for _ in range(1000)] + [1 / 3, 2.0**-140, 3.4e38]
    values += [1 + 2.0**-24, 1 + 3 * 2.0**-24, 2.0**-150, 3 * 2.0**-150, -(2.0**-150)]  # ties: to even
    assert [round32(v) for v in values] == torch.tensor(values, dtype=torch.float32).tolist()


@pytest.mark.parametrize(
    "max_rows, max_snapshots, n, size",
    [(50, 8, 300, 37), (5000, 3000, 4000, 256)],  # thinned from the start; tables grown by blocks, then thinned
)
def test_recorder_blocks_equal_rows_and_snapshots_added_one_at_a_time(max_rows, max_snapshots, n, size):
    rng = np.random.default_rng(0)
    one, block = (HistoryRecorder(["a", "b"], max_rows=max_rows, max_snapshots=max_snapshots) for _ in range(2))
    rows = [[k, float(k), *rng.normal(size=4).tolist(), 0.1 * k] for k in range(n)]
    snaps = rng.normal(size=(n, 2))
    for row, snap in zip(rows, snaps):
        one.add_row(*row)
        if one.wants_snapshot(row[0]):
            one.add_snapshot(row[0], snap)
    for start in range(0, n, size):
        block.add_rows(rows[start : start + size])
        block.add_snapshots([r[0] for r in rows[start : start + size]], snaps[start : start + size])
    np.testing.assert_array_equal(block.table(), one.table())
    assert block.snap_steps == one.snap_steps
    np.testing.assert_array_equal(block.snaps, one.snaps)
