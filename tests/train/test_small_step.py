"""The small-problem fast path of the loop (issue 11, item 3): the same numbers as before, with less per step.

Oracles: torch.optim's own ``optimizer.step`` (the direct step must leave parameters and optimizer state bit for
bit where the public step leaves them), and a plain recorder / snapshot per step (what the loop did before).
"""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import gradfit
from gradfit.data import synthetic
from gradfit.optim.registry import OPTIMIZERS, make_optimizer
from gradfit.optim.schedules import make_schedule
from gradfit.train.history import HistoryRecorder
from gradfit.train.steppers.gradient import _direct_step, _norm

DIRECT = sorted(n for n in OPTIMIZERS if n != "lbfgs")


def _pair(name: str, schedule: str | None = None, dtype=torch.float32, **options):
    """Two identical optimizers over two identical parameter sets (a vector and a matrix), with a schedule."""
    made = []
    for _ in range(2):
        params = [
            torch.tensor([1.0, -2.0, 0.5], dtype=dtype, requires_grad=True),
            torch.tensor([[0.3, 0.1], [-0.7, 2.0]], dtype=dtype, requires_grad=True),
        ]
        opt = make_optimizer(name, params, lr=0.5 if name == "lbfgs" else 0.05, **options)
        made.append((params, opt, make_schedule(schedule, opt, 40) if schedule else None))
    return made


def _grads(params, k: int):
    """A gradient that changes sign and scale from step to step (so momentum and Adam's moments matter)."""
    return [torch.sin(p.detach() * (k + 1) + 0.3) * (1.5 ** (k % 5)) for p in params]


def _drive(params, opt, sched, step, steps=25):
    for k in range(steps):

        def closure(k=k):
            for p, g in zip(params, _grads(params, k)):
                p.grad = g
            return torch.tensor(float(k))

        step(closure)
        if sched is not None:
            sched.step()


OPTIONS = [
    ("sgd", {"weight_decay": 0.1}),
    ("sgd", {"maximize": True}),
    ("momentum", {"momentum": 0.5, "dampening": 0.2}),
]
OPTIONS += [("adam", {"amsgrad": True, "weight_decay": 0.01}), ("sgd", {"dtype": torch.float64})]


@pytest.mark.parametrize("schedule", [None, "cosine", "onecycle"])
@pytest.mark.parametrize("name, options", [(n, {}) for n in DIRECT] + OPTIONS)
def test_direct_step_is_torch_optims_step_bit_for_bit(name, options, schedule):
    (p1, o1, s1), (p2, o2, s2) = _pair(name, schedule, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the schedule must not warn that the optimizer never stepped
        _drive(p1, o1, s1, o1.step)
        _drive(p2, o2, s2, _direct_step(o2))
    for a, b in zip(p1, p2):
        assert torch.equal(a, b)
    st1, st2 = o1.state_dict(), o2.state_dict()
    assert st1["param_groups"] == st2["param_groups"]
    assert st1["state"].keys() == st2["state"].keys()
    for key in st1["state"]:
        for field, value in st1["state"][key].items():
            other = st2["state"][key][field]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


@pytest.mark.parametrize("name", DIRECT)
def test_direct_step_skips_the_wrapper_only_for_the_decorated_torch_optim_steps(name):
    (params, opt, _), _ = _pair(name)
    assert _direct_step(opt) != opt.step
    lbfgs = make_optimizer("lbfgs", [torch.zeros(2, requires_grad=True)], lr=1.0)
    assert _direct_step(lbfgs) == lbfgs.step  # its step is not torch.optim's usual decorator: the public call


def test_step_hooks_still_run_through_the_direct_step():
    (params, opt, _), _ = _pair("adam")
    seen = []
    handle = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    glob = register_optimizer_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    try:
        _drive(params, opt, None, _direct_step(opt), steps=3)
    finally:
        handle.remove()
        glob.remove()
    assert seen == ["pre", "post"] * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gradient_norm_is_torchs_float64_sum_of_squares_bit_for_bit(dtype):
    """The oracle is the norm as the loop took it before: torch's float64 sum of each tensor's squares."""
    gen = torch.Generator().manual_seed(0)

    def oracle(grads):
        return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))

    shapes = [[()], [(2,)], [(), ()], [(1, 2), (), (2, 1)], [(3,)], [(2,), (5, 4)], [(0,), ()]]
    for shapes_ in shapes:
        for scale in (1e-30, 1.0, 1e15):
            grads = [(torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(dtype) for s in shapes_]
            assert _norm(grads).hex() == oracle(grads).hex(), (shapes_, scale)
    # A sum of squares whose square root torch rounded other than math.sqrt does on one machine (found in a
    # mini-batch fit); the digits torch gives depend on the CPU's sqrt kernel, so the oracle is torch's own.
    grads = [torch.tensor(-0.7170453667640686), torch.tensor(-0.36185169219970703)]
    assert _norm(grads).hex() == oracle(grads).hex()
    assert _norm([torch.tensor([3.0, -4.0])]) == 5.0
    assert math.isinf(_norm([torch.tensor(1e200, dtype=torch.float64), torch.tensor(2.0)]))
    assert math.isnan(_norm([torch.tensor([math.nan, 1.0])])) and math.isnan(_norm([torch.randn(5).div(0.0) * 0]))
    assert _norm([]) == 0.0


# -- the history's snapshots -------------------------------------------------------------------------


def _tensors(k: int):
    """Parameters of mixed shapes and dtypes at step ``k`` (a float32 scalar, a float32 matrix, a float64 vector)."""
    return [
        torch.tensor(0.1 * k + 1 / 3, dtype=torch.float32),
        torch.tensor([[k, -k], [1 / (k + 1), 2.5]], dtype=torch.float32).requires_grad_(True),
        torch.tensor([math.pi * k, -1e-300], dtype=torch.float64),
    ]


@pytest.mark.parametrize("max_snapshots", [3, 16, 2000])
def test_snapshots_written_in_place_equal_the_flattened_vectors(max_snapshots):
    names = ["s", "m[0,0]", "m[0,1]", "m[1,0]", "m[1,1]", "v[0]", "v[1]"]
    by_vector = HistoryRecorder(names, max_snapshots=max_snapshots)
    in_place = HistoryRecorder(names, max_snapshots=max_snapshots)
    kept = {}
    for k in range(150):
        tensors = _tensors(k)
        flat = torch.cat([t.detach().reshape(-1).double() for t in tensors])  # gradfit.problem.flatten's vector
        kept[k] = flat.numpy()
        if by_vector.wants_snapshot(k):
            by_vector.add_snapshot(k, flat)
        if in_place.wants_snapshot(k):
            in_place.add_snapshot_of(k, tensors)
    in_place.add_final(150, 1.0, 0.5, math.nan, 0.0, torch.zeros(7, dtype=torch.float64))
    by_vector.add_final(150, 1.0, 0.5, math.nan, 0.0, torch.zeros(7, dtype=torch.float64))
    kept[150] = np.zeros(7)
    a, b = in_place.freeze(), by_vector.freeze()
    assert a.snapshot_steps.tolist() == b.snapshot_steps.tolist()
    assert np.array_equal(a.snapshots, b.snapshots)
    # The oracle: each kept row is the vector of its step, the steps evenly spaced, the start and the end kept.
    steps = a.snapshot_steps.tolist()
    assert np.array_equal(a.snapshots, np.stack([kept[s] for s in steps]))
    assert steps[0] == 0 and steps[-1] == 150 and len(steps) <= min(max_snapshots, 151)
    assert all(s % in_place.snapshot_every == 0 for s in steps[:-1])
    if max_snapshots < 150:
        assert in_place.snapshot_every > 1
    again = HistoryRecorder(names, max_snapshots=max_snapshots)
    again.load_state_dict(in_place.state_dict())
    assert again.snap_steps == in_place.snap_steps and np.array_equal(again.snaps, in_place.snaps)


# -- the loop without observers ----------------------------------------------------------------------


def test_callbacks_and_rules_see_each_step_as_the_history_records_it():
    frame = synthetic.linear(n=100, seed=0)
    seen = []

    class Watch:
        def on_step(self, s):
            seen.append((s.step, s.loss, s.grad_norm, s.lr))

    options = dict(optimizer="sgd", lr=0.1, steps=40)
    bare = gradfit.fit("a*x + b", frame, y="y", **options)
    watched = gradfit.fit("a*x + b", frame, y="y", callbacks=[Watch()], **options)
    for column in ("step", "loss", "val_loss", "lr", "grad_norm"):
        assert np.array_equal(bare.history[column], watched.history[column], equal_nan=True)
    assert np.array_equal(bare.history.snapshots, watched.history.snapshots)
    rows = np.stack([watched.history[c][:40] for c in ("step", "loss", "grad_norm", "lr")], axis=1)
    assert np.array_equal(np.array(seen), rows)
    # A rule alone (no callback) stops at the first step its oracle, the recorded loss, says it should.
    target = float(bare.history.loss[25])
    stopped = gradfit.fit("a*x + b", frame, y="y", target_loss=target, **options)
    first = int(np.argmax(bare.history.loss <= target))
    assert stopped.stop_reason == "target_loss" and stopped.steps == first


@pytest.mark.parametrize("options, through_torch", [({}, 0), ({"weight_decay": 0.1}, 6), ({"maximize": True}, 6)])
def test_plain_sgd_updates_in_place_and_every_other_sgd_goes_through_torch_optim(monkeypatch, options, through_torch):
    """Plain sgd (the seeds' ``p -= lr * grad``) is updated directly; any option that changes the update is not."""
    calls = []
    module = importlib.import_module("torch.optim.sgd")
    functional = module.sgd
    monkeypatch.setattr(module, "sgd", lambda *a, **k: calls.append(1) or functional(*a, **k))
    (p1, o1, _), (p2, o2, _) = _pair("sgd", **options)
    _drive(p2, o2, None, _direct_step(o2), steps=6)
    assert len(calls) == through_torch
    _drive(p1, o1, None, o1.step, steps=6)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2)) and o1.state_dict() == o2.state_dict()
