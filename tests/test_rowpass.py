"""The row pass: sums over chunks of any size agree with one float64 pass, and with torch's own oracles."""

from __future__ import annotations

import pytest
import torch

from gradfit import rowpass
from gradfit.losses import get_loss
from gradfit.models.formula_model import FormulaModel
from gradfit.problem import ParamView
from gradfit.rowpass import CHUNK_ROWS, MemoryRows, RowSource, chunk_rows, concat, fold, jacobian_rows, reduce
from gradfit.train.config import FitConfig
from gradfit.train.objective import Objective

N = 53  # not a multiple of 7: the last chunk is short


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, generator=g, dtype=torch.float64) * 4
    y = 2.5 * torch.exp(-0.7 * x[:, 0]) + 0.3 + 0.05 * torch.randn(N, generator=g, dtype=torch.float64)
    w = torch.rand(N, generator=g, dtype=torch.float64) + 0.5
    return x, y, w


@pytest.fixture
def view():
    model = FormulaModel("a*exp(-b*t) + c", columns=["t"])
    params = {
        "a": torch.tensor(2.0, dtype=torch.float64),
        "b": torch.tensor(0.5, dtype=torch.float64),
        "c": torch.tensor(0.1, dtype=torch.float64),
    }
    return ParamView.of(model, params)


@pytest.mark.parametrize("size", [1, 7, N, 10 * N])
def test_loss_and_gradient_sums_do_not_depend_on_the_chunk_size(data, view, size):
    x, y, w = data
    loss = get_loss("mse")
    theta = view.theta

    def part(xc, yc, wc):
        t = theta.clone().requires_grad_(True)
        total = loss.total(view.predict(t, xc), yc, wc)
        (g,) = torch.autograd.grad(total, t)
        return {"loss": total, "grad": g}

    sums = reduce(part, MemoryRows(x, y, w, chunk_size=size))
    t = theta.clone().requires_grad_(True)
    oracle = (w * (y - view.predict(t, x)) ** 2).sum()  # the weighted sum, written out by hand
    (g,) = torch.autograd.grad(oracle, t)
    assert set(sums) == {"loss", "grad"} and sums["loss"].dtype == torch.float64
    assert float(sums["loss"]) == pytest.approx(float(oracle.detach()), rel=1e-13)
    torch.testing.assert_close(sums["grad"], g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("size", [1, 7, N])
def test_normal_equations_summed_in_chunks_solve_to_lstsq(data, view, size):
    x, y, _ = data

    def part(xc, yc, _w):
        J = view.jacobian(view.theta, xc)
        r = view.residuals(view.theta, xc, yc)
        return J.T @ J, J.T @ r

    jtj, jtr = reduce(part, MemoryRows(x, y, chunk_size=size))
    J = torch.autograd.functional.jacobian(lambda t: view.predict(t, x), view.theta)
    r = y - view.predict(view.theta, x)
    torch.testing.assert_close(jtj, J.T @ J, rtol=1e-12, atol=1e-12)
    step = torch.linalg.solve(jtj, jtr)  # the Gauss-Newton step
    torch.testing.assert_close(step, torch.linalg.lstsq(J, r[:, None]).solution[:, 0], rtol=1e-9, atol=1e-12)


def test_a_triangular_factor_folded_over_chunks_gives_jtj(data, view):
    x, y, _ = data

    def step(R, xc, _y, _w):
        J = view.jacobian(view.theta, xc)
        return torch.linalg.qr(J if R is None else torch.cat([R, J]), mode="r").R

    R = fold(step, MemoryRows(x, y, chunk_size=jacobian_rows(3, numbers=12)), None)
    J = torch.autograd.functional.jacobian(lambda t: view.predict(t, x), view.theta)
    assert R.shape == (3, 3)
    torch.testing.assert_close(R.T @ R, J.T @ J, rtol=1e-12, atol=1e-12)


def test_shards_combined_give_the_sum_of_all_rows(data):
    # What an all-reduce across processes does: each shard sums its rows, the partial sums are added.
    x, y, w = data
    fn = lambda xc, yc, wc: ((wc * yc).sum(), (wc[:, None] * xc).sum(0))  # noqa: E731
    whole = reduce(fn, MemoryRows(x, y, w, chunk_size=5))
    other = reduce(fn, MemoryRows(x[30:], y[30:], w[30:], chunk_size=5))
    calls = []

    def all_reduce(sums):
        calls.append(len(sums))
        for s, o in zip(sums, other):
            s += o

    mine = reduce(fn, MemoryRows(x[:30], y[:30], w[:30], chunk_size=5), combine=all_reduce)
    assert calls == [2]
    for a, b in zip(mine, whole):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_float32_chunks_are_accumulated_in_float64():
    # 2^24 + 1 is not a float32: a float32 running sum of these rows would stay at 2^24.
    x = torch.tensor([[2.0**24]] + [[1.0]] * 10, dtype=torch.float32)
    total = reduce(lambda xc, _y, _w: xc.sum(), MemoryRows(x, chunk_size=1))
    assert total.dtype == torch.float64
    assert float(total) == 2.0**24 + 10
    assert float(torch.tensor(2.0**24, dtype=torch.float32) + 1.0) == 2.0**24  # what float32 would have kept


def test_memory_rows_slice_weights_with_the_rows_and_convert_each_chunk(data):
    x, y, w = data
    source = MemoryRows(x.float(), y.float(), None, chunk_size=7, dtype=torch.float64)
    assert isinstance(source, RowSource) and len(source) == N
    chunks = list(source.chunks())
    assert [len(c[0]) for c in chunks] == [7] * 7 + [4]
    assert all(c[0].dtype == torch.float64 and c[1].dtype == torch.float64 and c[2] is None for c in chunks)
    weighted = list(MemoryRows(x, y, w, chunk_size=7).chunks())
    torch.testing.assert_close(torch.cat([c[2] for c in weighted]), w, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([c[1] for c in weighted]), y, rtol=0, atol=0)


def test_concat_joins_per_row_outputs(data, view):
    x, _, _ = data
    out = concat(lambda xc, _y, _w: view.predict(view.theta, xc), MemoryRows(x, chunk_size=7))
    torch.testing.assert_close(out, view.predict(view.theta, x), rtol=0, atol=0)


def test_no_rows_give_none():
    empty = MemoryRows(torch.zeros(0, 1))
    assert reduce(lambda xc, _y, _w: xc.sum(), empty) is None
    assert concat(lambda xc, _y, _w: xc, empty) is None
    assert fold(lambda s, *_: s + 1, empty, 0) == 0


def test_one_chunk_setting(monkeypatch):
    assert chunk_rows() == CHUNK_ROWS == FitConfig().chunk_size
    assert chunk_rows(7) == 7 and chunk_rows(0) == 1
    assert jacobian_rows(3) == CHUNK_ROWS and jacobian_rows(2**21) == 2**21 + 1  # square factor: p + 1 rows
    assert jacobian_rows(100, numbers=1000, square=False) == 10
    monkeypatch.setattr(rowpass, "CHUNK_ROWS", 11)
    assert chunk_rows() == 11 and MemoryRows(torch.zeros(30, 1)).chunk_size == 11
    assert Objective(None, None).chunk_size == 11


@pytest.mark.parametrize("size", [1, 7, None])
def test_objective_sums_through_the_row_pass(data, size):
    x, y, w = data
    model = FormulaModel("a*exp(-b*t) + c", columns=["t"])
    params = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in (("a", 2.0), ("b", 0.5), ("c", 0.1))
    }
    value, grads = Objective(model, get_loss("mse"), size).value_and_grad(params, ["a", "b"], x, y, w)
    mean = (w * (y - model(params, x)) ** 2).sum() / w.sum()
    oracle = torch.autograd.grad(mean, [params["a"], params["b"]])
    assert float(value) == pytest.approx(float(mean), rel=1e-13)
    for got, want in zip(grads, oracle):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
