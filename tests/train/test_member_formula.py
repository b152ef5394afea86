"""The broadcast fused pass of many members (gradfit.train.member_formula), against torch.autograd member by member,
and the allocator setting that keeps its temporaries' memory (gradfit.allocator)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from gradfit import allocator
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.train.batched_pass import MemberRows
from gradfit.train.fused_pass import fused_pass
from gradfit.train.member_formula import MemberFormula, member_formula

FORMULAS = [
    "a*exp(-b*x) + c",  # a shared member-and-row node, reused by two gradients
    "a*x**2 + b*sin(x) + c",  # slopes of the data alone: matrix-vector products
    "a/(1 + exp(-b*(x - c)))",
    "a*b*x + c",  # a node of the parameters alone, a factor taken out of the sum
    "minimum(a*x, b) + c*log(1 + x)",
    "a*x1 + b*x2*exp(-c*x1)",  # two columns
    "a + 0*x",  # a prediction of the parameters alone
]


def _problem(formula: str, loss: str = "mse", K: int = 6, n: int = 257, weighted: bool = False):
    gen = torch.Generator().manual_seed(3)
    inputs = ["x1", "x2"] if "x1" in formula else ["x"]
    x = torch.rand(n, len(inputs), generator=gen, dtype=torch.float64) * 3
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    if loss == "bce":
        y = (y > y.median()).double()
    w = torch.rand(n, generator=gen, dtype=torch.float64) if weighted else None
    model = build_model(formula, inputs, n_outputs=1).with_data(x)
    params = {s.name: 0.5 + 0.5 * torch.rand(K, generator=gen, dtype=torch.float64) for s in model.specs}
    return model, get_loss(loss), x, y, w, params


def _autograd_totals(model, loss, x, y, w, params, names):
    """Each member's summed loss over the rows and its gradient, by plain autograd: the oracle."""
    K = next(iter(params.values())).shape[0]
    totals, grads = [], []
    for k in range(K):
        mine = {n: v[k].clone().requires_grad_(n in names) for n, v in params.items()}
        total = loss.total(model(mine, x), y, w)
        totals.append(total.detach())
        grads.append(torch.autograd.grad(total, [mine[n] for n in names], allow_unused=True))
    stacked = [torch.stack([g[i] if g[i] is not None else torch.zeros(()) for g in grads]) for i in range(len(names))]
    return torch.stack(totals), stacked


def _members(formula, loss, **kw):
    model, loss_fn, x, y, w, params = _problem(formula, loss, **kw)
    fused = fused_pass(model, loss_fn, {n: v[0] for n, v in params.items()})
    return model, loss_fn, x, y, w, params, member_formula(fused, loss_fn)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("weighted", [False, True])
def test_each_member_equals_autograd(formula, weighted):
    model, loss, x, y, w, params, members = _members(formula, "mse", weighted=weighted)
    assert isinstance(members, MemberFormula)
    names = [s.name for s in model.specs]
    totals, grads = members({n: params[n] for n in names}, {}, x, y, w)
    want_totals, want_grads = _autograd_totals(model, loss, x, y, w, params, names)
    torch.testing.assert_close(totals, want_totals, rtol=1e-12, atol=0)
    for got, want in zip(grads, want_grads):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["mae", "huber", "bce"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_other_losses_with_a_simple_slope_equal_autograd(loss, weighted):
    model, loss_fn, x, y, w, params, members = _members("a*exp(-b*x) + c", loss, weighted=weighted)
    assert members is not None
    totals, grads = members(params, {}, x, y, w)
    want_totals, want_grads = _autograd_totals(model, loss_fn, x, y, w, params, ["a", "b", "c"])
    torch.testing.assert_close(totals, want_totals, rtol=1e-12, atol=0)
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_fixed_parameters_are_each_members_own_value_and_get_no_gradient():
    model, loss, x, y, w, params, members = _members("a*exp(-b*x) + c", "mse")
    free, rest = {"a": params["a"], "c": params["c"]}, {"b": params["b"]}
    totals, grads = members(free, rest, x, y, w)
    want_totals, want_grads = _autograd_totals(model, loss, x, y, w, params, ["a", "c"])
    torch.testing.assert_close(totals, want_totals, rtol=1e-12, atol=0)
    assert len(grads) == 2
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_a_loss_without_a_member_slope_has_no_broadcast_pass():
    model, loss, x, y, w, params = _problem("a*exp(-b*x) + c")
    fused = fused_pass(model, loss, {n: v[0] for n, v in params.items()})
    assert member_formula(fused, get_loss("cross_entropy")) is None
    assert member_formula(None, loss) is None


def test_the_member_rows_take_it_and_fall_back_to_the_vmapped_pass_when_it_fails():
    model, loss, x, y, w, params = _problem("a*exp(-b*x) + c", K=4)
    fused = fused_pass(model, loss, {n: v[0] for n, v in params.items()})
    rows = MemberRows(model, loss, x, y, w, ["a", "b", "c"], chunk_size=100, fused=fused, members=4)
    rows.batched_rows = 100  # three chunks, added in float64
    assert isinstance(rows.broadcast, MemberFormula)
    values, grads = rows.value_and_grad(params)

    def refuse(*args):
        raise RuntimeError("does not broadcast")

    rows.broadcast = refuse
    again, again_grads = rows.value_and_grad(params)
    assert rows.broadcast is None and rows.path == "fused formula"  # the vmapped fused pass served
    torch.testing.assert_close(again, values, rtol=1e-13, atol=0)
    for a, b in zip(again_grads, grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


_FAULTS = """
import resource, torch
from gradfit.allocator import keep_freed_memory
print(keep_freed_memory())
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rounds(n):  # a chunk's four 1 MiB temporaries, made and freed n times
    for _ in range(n):
        a = [torch.ones(2**17, dtype=torch.float64) for _ in range(4)]
        del a
rounds(3)
before = faults()
rounds(50)
middle = faults()
rounds(50)
print(middle - before, faults() - middle)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_kept_memory_is_reused_not_faulted_in_afresh():
    def run(switch: str) -> tuple[str, int, int]:
        env = {**os.environ, allocator.SWITCH: switch}
        out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        setting, first, second = out.stdout.split()
        return setting, int(first), int(second)

    kept, _, later = run("1")
    assert kept == "True"
    # Kept, the blocks' memory is reused: fifty more rounds fault in less than one 1 MiB block's 256 pages. Given
    # back (glibc's default), each round usually faults its four blocks in again (about 50 x 1000 here), though
    # not in every process: how much glibc gives back depends on where its thresholds have drifted, so that side is
    # only checked to run.
    assert later < 256
    assert run("0")[0] == "False"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_keeping_freed_memory_is_set_once_and_can_be_turned_off(monkeypatch):
    assert allocator.keep_freed_memory() is True
    assert allocator._state == {"set": True}  # once per process
    monkeypatch.setenv(allocator.SWITCH, "0")
    assert allocator._set() is False
