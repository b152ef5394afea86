"""Models from a curve_fit-style function and from a torch.nn.Module."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

from gradfit.errors import ModelError
from gradfit.models.function import CallableModel, ModuleModel

DT = torch.float64


def quadratic(x, a, b=0.5, c=1.0):
    # numpy and torch alike, so scipy's curve_fit can be the oracle
    return a * x**2 + b * x + c


def test_callable_parameters_and_defaults_follow_the_signature():
    model = CallableModel(quadratic, ["t"])
    assert model.name == "quadratic" and model.inputs == ("t",) and model.n_outputs == 1
    assert model.param_names == ("a", "b", "c")
    init = model.init_params(dtype=DT)
    assert {k: float(v) for k, v in init.items()} == {"a": 1.0, "b": 0.5, "c": 1.0}
    x = torch.linspace(-1, 1, 9, dtype=DT)[:, None]
    torch.testing.assert_close(model(init, x), quadratic(x[:, 0], 1.0, 0.5, 1.0), rtol=0, atol=0)
    assert model.describe() == {"kind": "callable", "name": "quadratic", "inputs": ["t"]}


def test_callable_least_squares_matches_scipy_curve_fit():
    rng = np.random.default_rng(0)
    t = np.linspace(-2, 2, 60)
    y = quadratic(t, 1.3, -0.7, 0.2) + 0.05 * rng.normal(size=t.size)
    expected, _ = curve_fit(quadratic, t, y)
    model = CallableModel(quadratic, ["t"])
    x = torch.tensor(t)[:, None]
    params = model.init_params(dtype=DT)
    jac = torch.func.jacrev(lambda p: model(p, x))(params)
    J = torch.stack([jac[n] for n in model.param_names], dim=1)
    residual = torch.tensor(y) - model(params, x)
    step = torch.linalg.lstsq(J, residual[:, None]).solution[:, 0]  # exact: the model is linear in a, b, c
    fitted = torch.stack([params[n] for n in model.param_names]) + step
    np.testing.assert_allclose(fitted.numpy(), expected, rtol=1e-6)


def test_callable_with_several_inputs_receives_the_matrix():
    seen = {}

    def plane(x, a, b):
        seen["shape"] = tuple(x.shape)
        return a * x[:, 0] + b * x[:, 1]

    model = CallableModel(plane, ["u", "v"])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = model({"a": torch.tensor(2.0), "b": torch.tensor(-1.0)}, x)
    assert seen["shape"] == (2, 2)
    assert torch.equal(out, torch.tensor([0.0, 2.0]))


def test_callable_scalar_output_is_broadcast_and_keyword_only_defaults_stay_fixed():
    def const(x, a, *, scale=2.0):
        return a * scale

    model = CallableModel(const, ["x"])
    assert model.param_names == ("a",)
    assert torch.equal(model({"a": torch.tensor(1.5)}, torch.zeros(4, 1)), torch.full((4,), 3.0))


def test_callable_gradients_flow():
    model = CallableModel(lambda x, k: torch.exp(-k * x), ["x"])
    k = torch.tensor(0.5, dtype=DT, requires_grad=True)
    x = torch.linspace(0, 2, 5, dtype=DT)[:, None]
    model({"k": k}, x).sum().backward()
    torch.testing.assert_close(k.grad, (-x[:, 0] * torch.exp(-0.5 * x[:, 0])).sum())


@pytest.mark.parametrize(
    "f",
    [
        lambda x, a, *rest: a * x,
        lambda x, a, **kw: a * x,
        lambda x: x,
        lambda: 1.0,
    ],
)
def test_callable_bad_signatures_explain_the_form(f):
    with pytest.raises(ModelError, match=r"f\(x, a, b, \.\.\.\)"):
        CallableModel(f, ["x"])


def test_callable_bad_defaults_and_keyword_only_without_default():
    def f(x, a="one"):
        return a * x

    with pytest.raises(ModelError, match="must be a number"):
        CallableModel(f, ["x"])

    def g(x, a, *, b):
        return a * x + b

    with pytest.raises(ModelError, match="keyword-only parameter 'b'"):
        CallableModel(g, ["x"])
    with pytest.raises(ModelError, match="callable"):
        CallableModel("a*x", ["x"])


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_callable_numpy_or_math_functions_ask_for_torch():
    x = torch.linspace(0, 1, 3)[:, None]
    a = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(ModelError, match="torch.exp"):  # numpy on a tensor that needs grad
        CallableModel(lambda x, a: np.exp(a * x), ["x"])({"a": a}, x)
    with pytest.raises(ModelError, match="ndarray.*torch.exp"):  # numpy silently leaving torch
        CallableModel(lambda x, a: np.exp(x.numpy()) * float(a), ["x"])({"a": torch.tensor(1.0)}, x)
    with pytest.raises(ModelError, match="torch.exp"):
        CallableModel(lambda x, a: math.exp(a * x), ["x"])({"a": a}, x)
    with pytest.raises(ModelError, match="returned float"):
        CallableModel(lambda x, a: 1.0, ["x"])({"a": a}, x)
    with pytest.raises(ModelError, match=r"shape \(3,\)"):
        CallableModel(lambda x, a: a * x[:, None], ["x"])({"a": a}, x)


def _net(n_out=1):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, n_out))


def test_module_model_matches_the_module_and_never_mutates_it():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    model = ModuleModel(net, ["u", "v"])
    assert model.param_names == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert model.spec("0.weight").shape == (8, 2) and model.n_outputs == 1
    params = model.init_params()
    for name, p in net.named_parameters():
        assert torch.equal(params[name], p) and params[name].data_ptr() != p.data_ptr()
    x = torch.randn(10, 2)
    torch.testing.assert_close(model(params, x), net(x)[:, 0], rtol=0, atol=0)
    # train a step through the model: only our tensors change
    leaves = {k: v.requires_grad_() for k, v in params.items()}
    model(leaves, x).pow(2).sum().backward()
    with torch.no_grad():
        for v in leaves.values():
            v -= 0.1 * v.grad
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name])
    assert all(p.grad is None for p in net.parameters())
    assert not torch.equal(model(leaves, x), net(x)[:, 0])
    assert model.describe() == {"kind": "module", "name": "Sequential", "inputs": ["u", "v"], "n_outputs": 1}


def test_module_model_several_outputs_and_float64():
    model = ModuleModel(_net(3), ["u", "v"])
    assert model.n_outputs == 3
    params = model.init_params(dtype=DT)
    assert model(params, torch.randn(5, 2, dtype=DT)).shape == (5, 3)
    assert ModuleModel(_net(3), ["u", "v"], n_outputs=3).n_outputs == 3


def test_module_buffers_and_frozen_parameters_pass_through_unchanged():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.norm = torch.nn.BatchNorm1d(1)  # train mode: updates its running stats
            self.frozen = torch.nn.Parameter(torch.tensor(3.0), requires_grad=False)
            self.register_buffer("shift", torch.tensor(0.5))

        def forward(self, x):
            return self.frozen * self.norm(self.lin(x)) + self.shift

    module = Scaled()
    before = copy.deepcopy(module.state_dict())
    model = ModuleModel(module, ["x"])
    assert model.param_names == ("lin.weight", "lin.bias", "norm.weight", "norm.bias")
    x = torch.randn(20, 1)
    expected = copy.deepcopy(module)(x)[:, 0]
    torch.testing.assert_close(model(model.init_params(), x), expected)
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_module_errors():
    with pytest.raises(ModelError, match="torch.nn.Module"):
        ModuleModel(lambda x: x, ["x"])
    with pytest.raises(ModelError, match=r"failed on a \(2, 3\) input"):
        ModuleModel(_net(), ["a", "b", "c"])
    frozen = _net().requires_grad_(False)
    with pytest.raises(ModelError, match="no trainable parameters"):
        ModuleModel(frozen, ["u", "v"])

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * x.sum()

    with pytest.raises(ModelError, match=r"\(n,\) or \(n, c\)"):
        ModuleModel(Flat(), ["x"])
