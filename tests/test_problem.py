"""The parameter view: flatten/unflatten, and its derivatives against torch.autograd.functional."""

from __future__ import annotations

import pytest
import torch

from gradfit.losses import get_loss
from gradfit.models.base import Model, ParamSpec
from gradfit.models.builder import build_model
from gradfit.problem import ParamView, Problem, flatten, gradient, hessian, hvp, pack, positions, unflatten
from gradfit.rowpass import MemoryRows, reduce

F64 = torch.float64


class Decay(Model):
    """``a exp(-(w0 t + w1 t²)) + c``: a vector parameter between two scalars (flat order a, w[0], w[1], c)."""

    name, inputs, n_outputs = "decay", ("t",), 1

    @property
    def specs(self):
        return (ParamSpec("a"), ParamSpec("w", (2,)), ParamSpec("c"))

    def forward(self, params, x):
        t = x[:, 0]
        return params["a"] * torch.exp(-(params["w"][0] * t + params["w"][1] * t**2)) + params["c"]


@pytest.fixture
def model():
    return Decay()


@pytest.fixture
def params():
    return {
        "a": torch.tensor(2.0, dtype=F64),
        "w": torch.tensor([0.5, -0.1], dtype=F64),
        "c": torch.tensor(0.1, dtype=F64),
    }


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, generator=g, dtype=F64) * 3
    return x, 1.7 * torch.exp(-0.4 * x[:, 0]) + 0.2


def test_flatten_and_unflatten_round_trip(model, params):
    view = ParamView.of(model, params)
    names = [n for s in model.specs for n in s.flat_names()]
    assert view.names == names
    full = flatten(model.specs, params)
    assert full.tolist() == [float(params[s.name].reshape(-1)[i]) for s in model.specs for i in range(s.size)]
    back = view.unflatten(full)
    assert set(back) == set(params)
    for k in params:
        assert back[k].shape == params[k].shape and torch.equal(back[k], params[k])


def test_pack_takes_the_names_in_the_order_given_and_keeps_dtype_device_and_graph(model, params):
    order = ["c", "w"]  # a subset, out of specs order (LM packs the trainable names, bounds by the same names)
    packed = pack(params, order)
    assert packed.tolist() == [0.1, 0.5, -0.1] and packed.dtype == F64
    assert pack({"m": torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)}, ["m"]).tolist() == [1, 2, 3, 4]  # row-major
    assert pack(params, order, torch.float32).dtype == torch.float32
    assert pack(params, [], F64).dtype == F64 and pack(params, []).numel() == 0
    w = params["w"].clone().requires_grad_(True)
    (pack({"c": params["c"], "w": w}, order) ** 2).sum().backward()  # differentiable by default, as a forward needs
    assert torch.equal(w.grad, 2 * params["w"])
    assert not pack({"w": w}, ["w"], detach=True).requires_grad
    assert torch.equal(pack(params, [s.name for s in model.specs]), flatten(model.specs, params))


def test_unflatten_inverts_pack_over_any_subset_with_views(model, params):
    specs = [model.spec("w"), model.spec("a")]
    flat = pack(params, ["w", "a"]).requires_grad_(True)
    back = unflatten(specs, flat)
    assert list(back) == ["w", "a"] and back["w"].shape == (2,) and back["a"].shape == ()
    assert all(torch.equal(back[k], params[k]) for k in back)
    (3 * back["a"] + back["w"].sum()).backward()
    assert flat.grad.tolist() == [1.0, 1.0, 3.0]


def test_positions_are_those_of_the_names_in_the_full_vector(model, params):
    full = flatten(model.specs, params)
    for names in (["w"], ["c", "a"], ["a", "w", "c"], []):
        index = positions(model.specs, names)
        kept = [s.name for s in model.specs if s.name in names]  # specs order, whatever the order asked
        assert full[index].tolist() == pack(params, kept).tolist()
    assert positions(model.specs, ["c", "a"]) == [0, 3]
    assert ParamView.of(model, params, fixed={"a"}).free_index.tolist() == positions(model.specs, ["w", "c"])


def test_fixed_names_keep_their_values(model, params):
    view = ParamView.of(model, params, fixed={"w"})
    assert view.names == ["a", "c"] and view.theta.tolist() == [2.0, 0.1]
    moved = view.params(torch.tensor([5.0, -1.0], dtype=F64))
    assert float(moved["a"]) == 5.0 and float(moved["c"]) == -1.0 and torch.equal(moved["w"], params["w"])


def test_jacobian_matches_autograd(model, params, rows):
    x, _ = rows
    view = ParamView.of(model, params, fixed={"c"})

    def oracle(a, w):
        return model({"a": a, "w": w, "c": params["c"]}, x)

    ja, jw = torch.autograd.functional.jacobian(oracle, (params["a"], params["w"]))
    J = view.jacobian(view.theta, x)
    assert J.shape == (40, 3)
    torch.testing.assert_close(J, torch.cat([ja[:, None], jw], dim=1), rtol=1e-12, atol=1e-14)


def test_jacobian_of_many_rows_is_rows_by_parameters():
    # 200,000 rows: a reverse-mode Jacobian batched over an identity of rows x rows would need 320 GB.
    model = build_model("linear", ("x",))
    x = torch.linspace(0, 1, 200_000, dtype=F64)[:, None]
    view = ParamView.of(model, {"a": torch.tensor([3.0, 2.0], dtype=F64)})
    J = view.jacobian(view.theta, x)
    assert J.shape == (200_000, 2)
    torch.testing.assert_close(J, torch.cat([x, torch.ones_like(x)], dim=1), rtol=0, atol=0)


def test_gradient_hessian_and_hvp_match_autograd(model, params, rows):
    x, y = rows
    view = ParamView.of(model, params)
    loss = get_loss("mse")
    f = lambda t: loss.total(view.predict(t, x), y)  # noqa: E731
    theta = view.theta
    v = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    _, hv_oracle = torch.autograd.functional.hvp(f, theta, v)
    H_oracle = torch.autograd.functional.hessian(f, theta)
    torch.testing.assert_close(hvp(f, theta, v), hv_oracle, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(hessian(f, theta), H_oracle, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(hessian(f, theta) @ v, hv_oracle, rtol=1e-10, atol=1e-11)
    t = theta.clone().requires_grad_(True)
    (g_oracle,) = torch.autograd.grad(f(t), t)
    torch.testing.assert_close(gradient(f, theta), g_oracle, rtol=1e-12, atol=1e-14)


def test_hvp_of_a_loss_without_curvature_is_none(rows):
    x, y = rows
    model = build_model("linear", ("x",))
    view = ParamView.of(model, {"a": torch.tensor([1.0, 0.0], dtype=F64)})
    linear = lambda t: view.predict(t, x).sum()  # noqa: E731
    assert hvp(linear, view.theta, torch.ones(2, dtype=F64)) is None
    assert hvp(lambda t: y.sum(), view.theta, torch.ones(2, dtype=F64)) is None


def test_residuals(model, params, rows):
    x, y = rows
    view = ParamView.of(model, params)
    torch.testing.assert_close(view.residuals(view.theta, x, y), y - model(params, x), rtol=0, atol=0)


def test_problem_record_reads_rows_through_the_row_pass(model, params, rows):
    x, y = rows
    w = torch.linspace(0.5, 2.0, len(x), dtype=F64)
    problem = Problem(model, get_loss("mse"), x.float(), y.float(), w, fixed={"c"}, chunk_size=6)
    assert problem.trainable == ("a", "w")
    source = problem.rows(dtype=F64)
    assert isinstance(source, MemoryRows) and source.chunk_size == 6
    view = problem.view(params)
    assert view.names == ["a", "w[0]", "w[1]"]
    total = reduce(lambda xc, yc, wc: problem.loss.total(view.predict(view.theta, xc), yc, wc), source)
    oracle = (w * (y.float().double() - model(params, x.float().double())) ** 2).sum()
    assert float(total) == pytest.approx(float(oracle), rel=1e-13)


@pytest.mark.parametrize("size", [1, 7, None])
def test_row_sums_of_the_problem_match_autograd_on_all_rows(model, params, rows, size):
    x, y = rows
    w = torch.linspace(0.5, 2.0, len(x), dtype=F64)
    problem = Problem(model, get_loss("mse"), x, y, w, fixed={"c"}, chunk_size=size)
    view = problem.view(params)
    theta, v = view.theta, torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    whole = lambda t: (w * (y - view.predict(t, x)) ** 2).sum()  # noqa: E731
    _, hv = torch.autograd.functional.hvp(whole, theta, v)
    torch.testing.assert_close(problem.hvp(view, theta, v), hv, rtol=1e-11, atol=1e-12)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(whole(t), t)
    torch.testing.assert_close(problem.gradient(view, theta), g, rtol=1e-12, atol=1e-14)
    jtwj, jtwr = problem.normal_equations(view, theta, None if size is None else problem.rows(size))
    root = w.sqrt()
    J = torch.autograd.functional.jacobian(lambda t: view.predict(t, x), theta) * root[:, None]
    r = (y - view.predict(theta, x)) * root
    torch.testing.assert_close(jtwj, J.T @ J, rtol=1e-12, atol=1e-12)
    # The Gauss-Newton step from the summed normal equations is the weighted least-squares solution.
    step = torch.linalg.solve(jtwj, jtwr)
    torch.testing.assert_close(step, torch.linalg.lstsq(J, r[:, None]).solution[:, 0], rtol=1e-9, atol=1e-12)
    assert torch.equal(problem.hvp(view, theta, v), problem.hvp(view, theta, v))  # deterministic
