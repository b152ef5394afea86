"""Batched predictions and Jacobians (gradfit.models.batched): the formula's derivative-graph path, vmap of jacfwd
and torch.autograd on each group alone give the same numbers."""

from __future__ import annotations

import pytest
import torch

from gradfit.models.batched import (
    FormulaBatch,
    RowwiseJacobian,
    VmapJacobian,
    _broadcast,
    batched_jacobian,
    formula_batch,
)
from gradfit.models.builder import build_model
from gradfit.models.formula_model import FormulaModel
from gradfit.models.function import CallableModel

FORMULAS = [
    ("amp*exp(-((u - x0)**2 + (v - y0)**2)/(2*w**2)) + bg", ["u", "v"]),
    ("a*exp(-b*x) + c", ["x"]),
    ("a*sin(b*x + c) + sqrt(d**2 + x**2)", ["x"]),
    ("a*x**b + log(1 + c*x) - 3", ["x"]),
    ("a + 0*b*x + 2", ["x"]),  # a parameter without effect: a zero column
]


def _autograd(model, p, x):
    """Per group: predictions and the Jacobian (k, m) by torch.autograd.functional.jacobian."""
    names = model.param_names
    preds, jacs = [], []
    for g in range(p.shape[0]):

        def f(flat, g=g):
            return model.forward({n: flat[j] for j, n in enumerate(names)}, x[g]).reshape(-1)

        preds.append(f(p[g]))
        jacs.append(torch.autograd.functional.jacobian(f, p[g]).T)
    return torch.stack(preds), torch.stack(jacs)


@pytest.mark.parametrize("formula,inputs", FORMULAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_formula_path_equals_vmap_and_autograd(formula, inputs, dtype):
    model = FormulaModel(formula, inputs=inputs)
    gen = torch.Generator().manual_seed(0)
    G, m = 4, 7
    x = (torch.rand(G, m, len(inputs), generator=gen, dtype=torch.float64) * 3 + 0.1).to(dtype)
    p = (torch.rand(G, len(model.param_names), generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    fast = batched_jacobian(model)
    assert isinstance(fast, FormulaBatch)
    general = batched_jacobian(model, general=True)
    assert isinstance(general, VmapJacobian)
    pred, J = fast(p, x)
    pred_v, J_v = general(p, x)
    pred_a, J_a = _autograd(model, p, x)
    assert pred.shape == (G, m) and J.shape == (G, len(model.param_names), m)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred, pred_v, **tol)
    torch.testing.assert_close(J, J_v, **tol)
    torch.testing.assert_close(pred, pred_a, **tol)
    torch.testing.assert_close(J, J_a, **tol)


def test_one_group_or_one_row_per_group():
    model = FormulaModel("a*exp(-b*x) + c", inputs=["x"])
    for G, m in ((1, 5), (3, 1)):
        x = torch.rand(G, m, 1, dtype=torch.float64)
        p = torch.rand(G, 3, dtype=torch.float64)
        torch.testing.assert_close(batched_jacobian(model)(p, x), batched_jacobian(model, general=True)(p, x))


def _autograd_flat(model, p, x):
    """Per group, by torch.autograd.grad row by row: predictions (G, m) and Jacobian columns (G, k, m)."""
    preds, jacs = [], []
    for g in range(p.shape[0]):
        flat = p[g].clone().requires_grad_(True)
        params, at = {}, 0
        for s in model.specs:
            params[s.name] = flat[at : at + s.size].reshape(s.shape)
            at += s.size
        out = model.forward(params, x[g]).reshape(-1)
        rows = [torch.autograd.grad(out[i], flat, retain_graph=True, allow_unused=True)[0] for i in range(len(out))]
        jacs.append(torch.stack([torch.zeros_like(flat) if r is None else r for r in rows]).T)
        preds.append(out.detach())
    return torch.stack(preds), torch.stack(jacs)


@pytest.mark.parametrize("name", ["exponential", "logistic", "gaussian", "sine", "poly3"])
def test_zoo_models_equal_autograd_by_both_general_paths(name):
    model = build_model(name, ["x"])
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 6, 1, generator=gen, dtype=torch.float64) * 2
    k = len(model.flat_names())
    p = torch.rand(3, k, generator=gen, dtype=torch.float64) + 0.5
    want = _autograd_flat(model, p, x)
    chosen = batched_jacobian(model)
    scalar = all(s.shape == () for s in model.specs)
    assert isinstance(chosen, RowwiseJacobian if scalar else VmapJacobian)
    for jac in (chosen, batched_jacobian(model, general=True)):
        got = jac(p, x)
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    if scalar:
        assert chosen.path == "row-wise autograd"  # the check passed: row by row


@pytest.mark.parametrize("groups", [1, 3])
def test_a_forward_that_mixes_rows_falls_back_to_vmap(groups):
    # x - mean(x) over the rows it is given: row by row on (G·m) rows it would take the mean of every group at once
    mixing = CallableModel(lambda x, a, b: a * (x - x.mean()) + b, inputs=["x"])
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(groups, 5, 1, generator=gen, dtype=torch.float64)
    p = torch.rand(groups, 2, generator=gen, dtype=torch.float64)
    jac = batched_jacobian(mixing)
    got = jac(p, x)
    assert jac.path == "vmap of jacfwd"
    want = _autograd_flat(mixing, p, x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)


def test_a_formula_with_a_sum_over_rows_has_no_fast_path():
    # sum(x) over the whole table is not a group's sum: the general path evaluates the model as it is
    model = FormulaModel("a*x/sum(x)", inputs=["x"])
    assert formula_batch(model) is None


def test_a_forward_that_needs_scalar_parameters_falls_back_to_vmap():
    scalar_only = CallableModel(lambda x, a, b: a.reshape(()) * x + b, inputs=["x"])  # fails on per-row copies
    x = torch.rand(2, 4, 1, dtype=torch.float64)
    p = torch.tensor([[2.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    jac = batched_jacobian(scalar_only)
    pred, J = jac(p, x)
    assert jac.path == "vmap of jacfwd"
    torch.testing.assert_close(pred, p[:, :1] * x[..., 0] + p[:, 1:])
    torch.testing.assert_close(J, torch.stack([x[..., 0], torch.ones_like(x[..., 0])], dim=1))


@pytest.mark.parametrize(
    "a,b",
    [((3, 1), (1, 4)), ((5,), (2, 5)), ((), (3,)), ((2, 3), (3, 2)), ((1,), (1,)), ((0, 3), (1, 3)),
     ((4, 1, 3), (2, 1)), ((7, 1), (7, 25)), ((2,), (3,))],
)  # fmt: skip
def test_the_products_shape_rule_is_torchs(a, b):
    try:
        want = tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        want = None
    assert _broadcast(a, b) == want
