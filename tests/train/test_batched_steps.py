"""The batched updates and row passes of many members, against torch.optim and torch.autograd member by member."""

from __future__ import annotations

import pytest
import torch

from gradfit.errors import ConfigError
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.train.batched_loop import DIVERGED, Rules, run_members
from gradfit.train.batched_pass import MemberRows
from gradfit.train.batched_steps import BatchedUpdates
from gradfit.train.fused_pass import fused_pass

OPTIMIZERS = {
    "sgd": lambda p, lr, mu: torch.optim.SGD(p, lr=lr),
    "momentum": lambda p, lr, mu: torch.optim.SGD(p, lr=lr, momentum=mu),
    "nesterov": lambda p, lr, mu: torch.optim.SGD(p, lr=lr, momentum=mu, nesterov=True),
    "adam": lambda p, lr, mu: torch.optim.Adam(p, lr=lr),
}


def _gradient_field(ps: list[torch.Tensor]) -> list[torch.Tensor]:
    """A gradient that depends on the parameters (so the trajectories differ by member)."""
    return [torch.sin(3 * p) + 0.5 * p - 0.3 for p in ps]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_optimizer_follows_torch_optim_member_by_member(dtype):
    kinds = ["sgd", "sgd", "momentum", "nesterov", "adam", "adam", "momentum"]
    lrs = [0.01, 0.3, 0.05, 0.02, 0.1, 0.003, 0.2]
    mus = [0.0, 0.0, 0.9, 0.5, 0.0, 0.0, 0.3]
    gen = torch.Generator().manual_seed(1)
    starts = [torch.randn(7, 3, generator=gen, dtype=torch.float64).to(dtype), torch.randn(7, generator=gen).to(dtype)]
    batched = [s.clone() for s in starts]
    updates = BatchedUpdates(kinds, lrs, mus, [s.shape for s in starts], dtype)
    active = torch.ones(7, dtype=torch.bool)
    for _ in range(25):
        updates.step(batched, _gradient_field(batched), active)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for k, kind in enumerate(kinds):
        ps = [s[k].clone().requires_grad_(True) for s in starts]
        opt = OPTIMIZERS[kind](ps, lrs[k], mus[k])
        for _ in range(25):
            for p, g in zip(ps, _gradient_field([p.detach() for p in ps])):
                p.grad = g
            opt.step()
        for p, b in zip(ps, batched):
            torch.testing.assert_close(b[k], p.detach(), rtol=tol, atol=tol)


def test_inactive_members_keep_their_parameters_and_state_bit_for_bit():
    kinds = ["momentum", "momentum", "adam", "adam"]
    p = [torch.linspace(-1, 1, 4, dtype=torch.float64)]
    updates = BatchedUpdates(kinds, [0.1] * 4, [0.9] * 4, [p[0].shape], torch.float64)
    updates.step(p, _gradient_field(p), torch.ones(4, dtype=torch.bool))
    frozen = torch.tensor([False, True, False, True])
    before = (p[0].clone(), updates.buffers[0].clone(), updates.second[0].clone(), updates.count.clone())
    updates.step(p, [torch.full((4,), float("nan"), dtype=torch.float64)], ~frozen)
    assert torch.equal(p[0][frozen], before[0][frozen])
    assert torch.equal(updates.buffers[0][frozen], before[1][frozen])
    assert torch.equal(updates.second[0][frozen], before[2][frozen])
    assert updates.count.tolist() == [2.0, 1.0, 2.0, 1.0]
    assert torch.isnan(p[0][~frozen]).all()  # the others did take the (NaN) step


def test_an_unknown_optimizer_is_refused():
    with pytest.raises(ConfigError, match="lbfgs"):
        BatchedUpdates(["sgd", "lbfgs"], [0.1, 0.1], [0, 0], [(2,)], torch.float64)


def _problem(formula="a*exp(-b*x) + c", K=5, n=300, weighted=False):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 3
    y = 2.5 * torch.exp(-1.3 * x[:, 0]) + 0.5 + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    w = torch.rand(n, generator=gen, dtype=torch.float64) if weighted else None
    model = build_model(formula, ["x"], n_outputs=1).with_data(x)
    params = {s.name: 1 + 0.3 * torch.randn(K, *s.shape, generator=gen, dtype=torch.float64) for s in model.specs}
    return model, get_loss("mse"), x, y, w, params


def _autograd(model, loss, x, y, w, params, names):
    """Each member's mean loss and gradient by plain autograd over all rows: the oracle."""
    K = next(iter(params.values())).shape[0]
    values, grads = [], []
    for k in range(K):
        mine = {n: v[k].clone().requires_grad_(True) for n, v in params.items()}
        pred = model(mine, x)
        mean = loss.total(pred, y, w) / (w.sum() if w is not None else x.shape[0])
        values.append(mean.detach())
        grads.append(torch.autograd.grad(mean, [mine[n] for n in names]))
    return torch.stack(values), [torch.stack([g[i] for g in grads]) for i in range(len(names))]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("path", ["fused formula", "vmap", "members"])
def test_each_row_pass_equals_autograd_member_by_member(path, weighted):
    model, loss, x, y, w, params = _problem(weighted=weighted)
    names = ["a", "b", "c"]
    fused = fused_pass(model, loss, {n: v[0] for n, v in params.items()}) if path == "fused formula" else None
    rows = MemberRows(model, loss, x, y, w, names, chunk_size=70, fused=fused, members=5)
    rows.path = path
    rows.batched_rows = 70  # several chunks, added in float64
    values, grads = rows.value_and_grad(params)
    assert rows.path == path
    want_values, want_grads = _autograd(model, loss, x, y, w, params, names)
    torch.testing.assert_close(values, want_values, rtol=1e-12, atol=0)
    for g, want in zip(grads, want_grads):
        torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-14)


def test_a_forward_vmap_cannot_batch_falls_back_to_members_one_by_one():
    # Python control flow on a value: vmap refuses it
    model = build_model(lambda x, a: a * x if float(a.detach()) > 0 else -a * x, ["x"], n_outputs=1)
    x = torch.linspace(0, 1, 50, dtype=torch.float64)[:, None]
    y = 2 * x[:, 0]
    params = {"a": torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)}
    rows = MemberRows(model, get_loss("mse"), x, y, None, ["a"], members=3)
    values, grads = rows.value_and_grad(params)
    assert rows.path == "members"
    want_values, want_grads = _autograd(model, get_loss("mse"), x, y, None, params, ["a"])
    torch.testing.assert_close(values, want_values, rtol=1e-13, atol=0)
    torch.testing.assert_close(grads[0], want_grads[0], rtol=1e-12, atol=0)


def test_a_diverging_member_is_rolled_back_and_does_not_touch_the_others():
    model, loss, x, y, w, params = _problem(K=3)
    names = ["a", "b", "c"]
    lrs = [0.05, 50.0, 0.2]

    def run(which):
        p = {n: v[which].clone() for n, v in params.items()}
        updates = BatchedUpdates(["sgd"] * len(which), [lrs[i] for i in which], [0.0] * len(which),
                                 [p[n].shape for n in names], torch.float64)  # fmt: skip
        rows = MemberRows(model, loss, x, y, w, names, members=len(which))
        return run_members(rows, p, names, updates, Rules(total=200))

    together = run([0, 1, 2])
    assert together.codes.tolist()[1] == DIVERGED
    assert together.codes.tolist()[0] != DIVERGED and together.codes.tolist()[2] != DIVERGED
    alone = run([0, 2])
    for n in names:
        assert torch.equal(together.params[n][[0, 2]], alone.params[n])
    assert torch.isfinite(together.params["a"]).all()  # the diverged member kept its last finite step
