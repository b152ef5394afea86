"""Batched predictions and Jacobians (gradfit.models.batched): the formula's derivative-graph path, vmap of jacfwd
and torch.autograd on each group alone give the same numbers."""

from __future__ import annotations

import pytest
import torch

from gradfit.models.batched import FormulaBatch, VmapJacobian, batched_jacobian, formula_batch
from gradfit.models.builder import build_model
from gradfit.models.formula_model import FormulaModel

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


@pytest.mark.parametrize("name", ["exponential", "logistic", "gaussian", "poly3"])
def test_zoo_models_take_vmap_and_equal_autograd(name):
    model = build_model(name, ["x"])
    jac = batched_jacobian(model)
    assert isinstance(jac, VmapJacobian)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 6, 1, generator=gen, dtype=torch.float64) * 2
    k = len(model.flat_names())
    p = torch.rand(3, k, generator=gen, dtype=torch.float64) + 0.5
    pred, J = jac(p, x)
    for g in range(3):
        flat = p[g].clone().requires_grad_(True)
        params, at = {}, 0
        for s in model.specs:
            params[s.name] = flat[at : at + s.size].reshape(s.shape)
            at += s.size
        out = model.forward(params, x[g]).reshape(-1)
        rows = [torch.autograd.grad(out[i], flat, retain_graph=True)[0] for i in range(out.shape[0])]
        torch.testing.assert_close(pred[g], out.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(J[g], torch.stack(rows).T, rtol=1e-12, atol=1e-12)


def test_a_formula_with_a_sum_over_rows_has_no_fast_path():
    # sum(x) over the whole table is not a group's sum: the general path evaluates the model as it is
    model = FormulaModel("a*x/sum(x)", inputs=["x"])
    assert formula_batch(model) is None
