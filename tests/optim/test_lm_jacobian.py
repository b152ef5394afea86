"""The Levenberg-Marquardt solver's Jacobian and its one-chunk path, against torch.func and the chunked row pass.

``values_and_jacobian`` (reverse mode through ``g(v) = Jᵀv``, one scalar backward pass per parameter) replaces
``torch.func.jacrev``/``jacfwd``, which import torch._dynamo: torch.func is the oracle here. Problems whose
rows fit one chunk skip the row source: the same numbers as the chunked path must come out.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradfit.jacobian import row_jacobian, row_values_and_jacobian, values_and_jacobian
from gradfit.optim.lm import ChunkedResiduals, LevenbergMarquardt
from gradfit.rowpass import MemoryRows, reduce

X = torch.linspace(0.0, 4.0, 37, dtype=torch.float64)
Y = 2.5 * torch.exp(-1.3 * X) + 0.5 * X + 1.0 + 0.01 * torch.sin(7 * X)
P = torch.tensor([1.0, 0.8, 0.1, -0.2], dtype=torch.float64)


def residuals(p, x, y):
    return p[0] * torch.exp(-p[1] * x) + p[2] * x + p[3] - y


def test_values_and_jacobian_is_torch_funcs():
    r, J = values_and_jacobian(lambda q: residuals(q, X, Y), P)
    expected = torch.func.jacrev(lambda q: residuals(q, X, Y))(P)
    torch.testing.assert_close(J, expected, rtol=1e-14, atol=1e-15)
    assert torch.equal(r, residuals(P, X, Y))


def test_values_and_jacobian_of_matrix_parameters_and_a_parameter_without_effect():
    x = torch.randn(11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(q):  # q[3] has no effect: its column is zero
        return torch.tanh(x @ q[:3]) * q[4] + q[5] ** 2 * x[:, 0]

    q = torch.tensor([0.3, -0.2, 0.5, 7.0, 1.5, 0.7], dtype=torch.float64)
    _, J = values_and_jacobian(f, q)
    torch.testing.assert_close(J, torch.func.jacfwd(f)(q), rtol=1e-13, atol=1e-15)
    assert torch.all(J[:, 3] == 0)


def test_residuals_that_do_not_depend_on_the_parameters_give_a_zero_jacobian():
    r, J = values_and_jacobian(lambda q: Y * 2, P)
    assert J.shape == (37, 4) and torch.all(J == 0)
    assert torch.equal(r, Y * 2)


def test_row_jacobian_is_torch_funcs_for_vector_outputs():
    def f(t):
        return torch.stack([t[0] * torch.sin(t[1] * X), t[0] * X**2 + t[1]], dim=1)

    t = torch.tensor([1.3, 0.4], dtype=torch.float64)
    torch.testing.assert_close(row_jacobian(f, t), torch.func.jacrev(lambda s: f(s).reshape(-1))(t), rtol=1e-14, atol=0)


@pytest.mark.parametrize("weighted", [False, True])
def test_one_chunk_gives_the_chunked_row_passs_numbers(weighted):
    w = torch.linspace(0.5, 2.0, 37, dtype=torch.float64) if weighted else None
    one = ChunkedResiduals(residuals, X, Y, chunk_size=10**6, w=w)
    # The row pass's float64 sum over one chunk, as before the one-chunk path.
    root = None if w is None else w.sqrt()
    expected = reduce(
        lambda xc, yc, rc: ((residuals(P, xc, yc) * (1 if rc is None else rc)).double() ** 2).sum(),
        MemoryRows(X, Y, root, 10**6),
    )
    assert one.sum_squares(P) == float(expected)
    R, qtr, total = one.factor(P)
    r, J = values_and_jacobian(lambda q: residuals(q, X, Y) * (1 if root is None else root), P)
    np.testing.assert_allclose(R.T @ R, (J.T @ J).numpy(), rtol=1e-12)
    np.testing.assert_allclose(R.T @ qtr, (J.T @ r).numpy(), rtol=1e-12)
    assert total == pytest.approx(float(expected), rel=1e-15)


@pytest.mark.parametrize("weighted", [False, True])
def test_lm_in_one_chunk_and_in_many_reaches_the_same_fit(weighted):
    w = torch.linspace(0.5, 2.0, 37, dtype=torch.float64) if weighted else None
    ends = []
    for size in (10**6, 8):
        lm = LevenbergMarquardt(ChunkedResiduals(residuals, X, Y, chunk_size=size, w=w), P)
        while (it := lm.iterate()).test is None:
            lm.accept(it)
        lm.accept(it)
        ends.append(lm.p)
    np.testing.assert_allclose(ends[0], ends[1], rtol=1e-9)


class _OnceDifferentiable(torch.autograd.Function):
    """``exp`` whose backward cannot itself be differentiated: the double-backward path fails, the fallback runs."""

    @staticmethod
    def forward(ctx, t):
        out = t.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


@pytest.mark.parametrize("twice", [True, False], ids=["double backward", "fallback"])
def test_row_values_and_jacobian_give_the_values_and_row_jacobians_columns(twice):
    calls: list[bool] = []

    def f(q):
        calls.append(torch.is_grad_enabled())
        e = torch.exp(-q[1] * X) if twice else _OnceDifferentiable.apply(-q[1] * X)
        return q[0] * e + q[2] * X + q[3]

    values, J = row_values_and_jacobian(f, P)
    assert calls[0] and (len(calls) == 1 if twice else True)  # one forward pass when it can double-backward
    with torch.no_grad():
        assert torch.equal(values, f(P))
    torch.testing.assert_close(J, torch.func.jacrev(lambda q: residuals(q, X, Y) + Y)(P), rtol=1e-14, atol=1e-15)
    assert torch.equal(J, row_jacobian(f, P))
    assert not values.requires_grad and not J.requires_grad


def test_the_error_bars_view_of_a_model_without_a_formula_reads_its_rows_once_per_jacobian():
    from gradfit.analysis.curvature import DatasetView
    from gradfit.data.dataset import Dataset
    from gradfit.models.function import CallableModel

    calls: list[int] = []

    def f(x, a, b, c, d):
        calls.append(len(x))
        return a * torch.exp(-b * x) + c * x + d

    model = CallableModel(f, inputs=["x"])
    dataset = Dataset(X[:, None], Y, ("x",))
    view = DatasetView(model, dataset, P.numpy(), [0, 1, 2, 3])
    assert view.formula is None
    pred, J = view.values_and_jacobian(view.theta, X[:, None])
    assert calls == [37]  # the predictions come from the Jacobian's own forward pass
    with torch.no_grad():
        assert torch.equal(pred, view.predict(view.theta, X[:, None]).reshape(-1))
    assert torch.equal(J, row_jacobian(lambda t: view.predict(t, X[:, None]).reshape(-1), view.theta))


def test_lm_takes_a_true_jacobian_of_an_operation_whose_backward_is_not_differentiable():
    """Before the check, such an operation's column came out zero without an error: LM never moved its parameter."""

    def res(p, x, y):
        return p[0] * _OnceDifferentiable.apply(-p[1] * x) + p[2] * x + p[3] - y

    R, qtr, total = ChunkedResiduals(res, X, Y, chunk_size=10**6).factor(P)
    J = torch.func.jacrev(lambda q: residuals(q, X, Y))(P).numpy()
    np.testing.assert_allclose(R.T @ R, J.T @ J, rtol=1e-12)
    whole, _ = row_values_and_jacobian(lambda q: _OnceDifferentiable.apply(q), P)  # every path through the cut
    assert torch.equal(whole, P.exp())
    torch.testing.assert_close(row_jacobian(lambda q: _OnceDifferentiable.apply(q), P), torch.diag(P.exp()))
