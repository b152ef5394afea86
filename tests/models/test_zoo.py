"""The zoo against its formulas written directly in torch, numpy.polyfit and the seeds' hand loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradfit.errors import ModelError
from gradfit.models.zoo import ZOO_NAMES, make_zoo_model

DT = torch.float64

# name -> (options, params, the formula written directly in torch)
CURVES = {
    "exponential": ({}, {"a": 2.0, "b": 0.7, "c": 1.0}, lambda p, t: p["a"] * torch.exp(p["b"] * t) + p["c"]),
    "sigmoid": (
        {},
        {"L": 3.0, "k": 2.5, "x0": 2.0, "c": 0.5},
        lambda p, t: p["L"] / (1 + torch.exp(-p["k"] * (t - p["x0"]))) + p["c"],
    ),
    "gaussian": (
        {},
        {"a": -2.0, "mu": 1.3, "sigma": 0.4, "c": 4.0},
        lambda p, t: p["a"] * torch.exp(-((t - p["mu"]) ** 2) / (2 * p["sigma"] ** 2)) + p["c"],
    ),
    "power": ({}, {"a": 1.5, "b": 2.3}, lambda p, t: p["a"] * t ** p["b"]),
    "power_offset": ({"offset": True}, {"a": 1.5, "b": -1.2, "c": 0.3}, lambda p, t: p["a"] * t ** p["b"] + p["c"]),
    "sine": (
        {},
        {"a": 1.7, "w": 9.0, "phi": 0.4, "c": -1.0},
        lambda p, t: p["a"] * torch.sin(p["w"] * t + p["phi"]) + p["c"],
    ),
    "poly3": (
        {},
        {"c0": 0.5, "c1": -1.0, "c2": 2.0, "c3": 0.25},
        lambda p, t: p["c0"] + p["c1"] * t + p["c2"] * t**2 + p["c3"] * t**3,
    ),
}


def _model(key):
    options = CURVES[key][0]
    return make_zoo_model(key.split("_")[0], ["t"], **options)


def _leaf(values):
    return {k: torch.tensor(v, dtype=DT, requires_grad=True) for k, v in values.items()}


@pytest.mark.parametrize("key", list(CURVES))
def test_curve_forward_and_gradient_equal_the_formula(key):
    _, values, formula = CURVES[key]
    model = _model(key)
    t = torch.linspace(0.1, 4.0, 50, dtype=DT)
    weights = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=DT)
    p1, p2 = _leaf(values), _leaf(values)
    out = model(p1, t[:, None])
    expected = formula(p2, t)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    for name in values:
        torch.testing.assert_close(p1[name].grad, p2[name].grad, rtol=1e-10, atol=1e-10)


def test_linear_is_the_seeds_matmul_with_ones_column_last():
    # seeds 000/001: x = ones(n, 2); x[:, 0].uniform_(-1, 1); y = x @ a with a = (3, 2)
    torch.manual_seed(42)
    x_seed = torch.ones(100, 2)
    x_seed[:, 0].uniform_(-1.0, 1)
    a = torch.tensor([3.0, 2.0])
    model = make_zoo_model("linear", ["x"])
    assert model.param_names == ("a",) and model.spec("a").shape == (2,)
    assert torch.equal(model({"a": a}, x_seed[:, :1]), x_seed @ a)
    assert torch.equal(model.init_params()["a"], torch.zeros(2))


def test_linear_several_inputs_and_outputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, generator=g, dtype=DT)
    ones = torch.ones(30, 1, dtype=DT)
    model = make_zoo_model("linear", ["p", "q", "r"])
    a = torch.randn(4, generator=g, dtype=DT)
    torch.testing.assert_close(model({"a": a}, x), x @ a[:3] + a[3], rtol=0, atol=1e-12)
    multi = make_zoo_model("linear", ["p", "q", "r"], n_outputs=2)
    assert multi.spec("a").shape == (4, 2)
    a2 = torch.randn(4, 2, generator=g, dtype=DT)
    assert torch.equal(multi({"a": a2}, x), torch.cat([x, ones], dim=1) @ a2)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_logistic_logits(n_outputs):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 2, generator=g, dtype=DT)
    model = make_zoo_model("logistic", ["u", "v"], n_outputs=n_outputs)
    shape = (3,) if n_outputs == 1 else (3, n_outputs)
    assert model.spec("w").shape == shape and model.spec("w").default == 0.0
    w = torch.randn(shape, generator=g, dtype=DT)
    out = model({"w": w}, x)
    expected = x @ w[:2] + w[2]
    assert out.shape == ((20,) if n_outputs == 1 else (20, n_outputs))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("degree", [1, 2, 3, 5])
def test_poly_least_squares_on_jacobian_matches_numpy_polyfit(degree):
    rng = np.random.default_rng(degree)
    t = np.linspace(-2, 2, 80)
    y = np.polyval(rng.normal(size=degree + 1), t) + 0.1 * rng.normal(size=t.size)
    model = make_zoo_model(f"poly{degree}", ["t"])
    assert model.param_names == tuple(f"c{k}" for k in range(degree + 1))
    x = torch.tensor(t)[:, None]
    params = {k: v.double() for k, v in model.init_params().items()}
    jac = torch.func.jacrev(lambda p: model(p, x))(params)
    J = torch.stack([jac[name] for name in model.param_names], dim=1)  # (n, degree + 1)
    coef = torch.linalg.lstsq(J, torch.tensor(y)[:, None]).solution[:, 0]
    np.testing.assert_allclose(coef.numpy(), np.polyfit(t, y, degree)[::-1], rtol=1e-8, atol=1e-10)


def test_poly_spellings_agree_and_degree_is_checked():
    assert make_zoo_model("poly", ["t"], degree=4).describe() == make_zoo_model("POLY4", ["t"]).describe()
    assert make_zoo_model("poly", ["t"]).param_names == ("c0", "c1", "c2")
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(ModelError, match="degree"):
            make_zoo_model("poly", ["t"], degree=bad)
    with pytest.raises(ModelError, match="disagree"):
        make_zoo_model("poly3", ["t"], degree=2)


# name, options, true values, noiseless data's x range
GUESS_CASES = [
    ("exponential", {}, {"a": 2.0, "b": 0.7, "c": 1.0}, (0.0, 4.0)),
    ("exponential", {}, {"a": -1.0, "b": -1.5, "c": 3.0}, (10.0, 13.0)),
    ("sigmoid", {}, {"L": 3.0, "k": 2.5, "x0": 2.0, "c": 0.5}, (0.0, 4.0)),
    ("gaussian", {}, {"a": -2.0, "mu": 1.3, "sigma": 0.3, "c": 4.0}, (0.0, 4.0)),
    ("gaussian", {}, {"a": 5.0, "mu": 40.0, "sigma": 1.0, "c": 0.0}, (0.0, 100.0)),
    ("power", {}, {"a": 1.5, "b": 2.3}, (0.1, 4.0)),
    ("power", {"offset": True}, {"a": 2.0, "b": -1.0, "c": 0.5}, (0.5, 5.0)),
    ("sine", {}, {"a": 1.7, "w": 9.0, "phi": 0.4, "c": -1.0}, (0.0, 4.0)),
    ("sine", {}, {"a": 0.5, "w": 0.8, "phi": -2.0, "c": 2.0}, (0.0, 20.0)),
]


@pytest.mark.parametrize(("name", "options", "true", "span"), GUESS_CASES)
def test_guess_is_finite_close_and_a_fit_from_it_converges(name, options, true, span):
    model = make_zoo_model(name, ["x"], **options)
    g = torch.Generator().manual_seed(3)
    x = (span[0] + (span[1] - span[0]) * torch.rand(400, generator=g, dtype=DT))[:, None]
    y = model({k: torch.tensor(v, dtype=DT) for k, v in true.items()}, x)
    guess = model.guess(x, y)
    assert set(guess) == set(model.param_names)
    assert all(math.isfinite(v) for v in guess.values())
    pred = model({k: torch.tensor(v, dtype=DT) for k, v in guess.items()}, x)
    assert float(((pred - y) ** 2).mean().sqrt()) < 0.25 * float(y.std())
    # the oracle: least squares started from the guess reaches the true curve
    params = model.init_params(dtype=DT, x=x, y=y)
    leaves = [p.requires_grad_() for p in params.values()]
    opt = torch.optim.LBFGS(
        leaves, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = ((model(params, x) - y) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(model(params, x).detach(), y, rtol=1e-4, atol=1e-4 * float(y.abs().max()))


def test_guess_without_targets_or_on_degenerate_data_falls_back_to_defaults():
    model = make_zoo_model("gaussian", ["x"])
    x = torch.ones(10, 1)
    assert model.guess(x, None) == {}
    assert model.guess(x, torch.arange(10.0)) == {}  # a single x value
    params = model.init_params(x=x, y=None)
    assert {k: float(v) for k, v in params.items()} == {"a": 1.0, "mu": 0.0, "sigma": 1.0, "c": 0.0}


def test_guess_on_many_float32_rows_uses_a_subsample():
    model = make_zoo_model("sigmoid", ["x"])
    x = torch.linspace(-5, 5, 1_000_000)[:, None]
    y = 2 / (1 + torch.exp(-3 * (x[:, 0] - 1)))
    guess = model.guess(x, y)
    assert abs(guess["x0"] - 1) < 0.3 and abs(guess["L"] - 2) < 0.3
    assert model.init_params(x=x, y=y)["x0"].dtype == torch.float32


def test_mlp_forward_shapes_and_formula():
    model = make_zoo_model("mlp", ["a", "b"], n_outputs=1, hidden="8, 4", activation="relu")
    assert model.param_names == ("W0", "b0", "W1", "b1", "W2", "b2")
    assert [model.spec(n).shape for n in model.param_names] == [(2, 8), (8,), (8, 4), (4,), (4, 1), (1,)]
    assert model.spec("W1").scale == pytest.approx(1 / math.sqrt(8))
    p = model.init_params(torch.Generator().manual_seed(0), dtype=DT)
    x = torch.randn(16, 2, dtype=DT)
    h = torch.relu(x @ p["W0"] + p["b0"])
    h = torch.relu(h @ p["W1"] + p["b1"])
    torch.testing.assert_close(model(p, x), (h @ p["W2"] + p["b2"])[:, 0], rtol=0, atol=1e-12)
    multi = make_zoo_model("mlp", ["a", "b"], n_outputs=3, hidden=5)
    assert multi(multi.init_params(torch.Generator().manual_seed(0)), x.float()).shape == (16, 3)


def test_mlp_init_is_fixed_by_the_seed():
    model = make_zoo_model("mlp", ["a"])
    same = [model.init_params(torch.Generator().manual_seed(7)) for _ in range(2)]
    other = model.init_params(torch.Generator().manual_seed(8))
    for name in model.param_names:
        assert torch.equal(same[0][name], same[1][name])
        assert not torch.equal(same[0][name], other[name])
    spread = same[0]["W1"].std().item()
    assert 0.5 / 4 < spread < 2 / 4  # scale 1/sqrt(16)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"hidden": "16,x"}, "hidden"),
        ({"hidden": (0,)}, "hidden"),
        ({"hidden": (True,)}, "hidden"),
        ({"activation": "swish"}, "activation"),
    ],
)
def test_mlp_bad_options(options, match):
    with pytest.raises(ModelError, match=match):
        make_zoo_model("mlp", ["x"], **options)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_model_keeps_dtype_works_with_jacrev_and_rebuilds_from_describe(name):
    model = make_zoo_model(name, ["x"])
    params = model.init_params(torch.Generator().manual_seed(0), dtype=torch.float32)
    x = torch.linspace(0.5, 2.0, 7)[:, None]
    out = model(params, x)
    assert out.shape == (7,) and out.dtype == torch.float32
    jac = torch.func.jacrev(lambda p: model(p, x))(params)
    assert all(torch.isfinite(j).all() for j in jac.values())
    described = model.describe()
    assert described["kind"] == "zoo"
    rebuilt = make_zoo_model(**{k: v for k, v in described.items() if k != "kind"})
    assert rebuilt.describe() == described
    assert torch.equal(rebuilt(params, x), out)
    doc = type(model).__doc__.lower()
    assert "default" in doc and all(name.lower() in doc for name in model.param_names[:2])


def test_unknown_name_lists_the_zoo_and_the_closest_match():
    with pytest.raises(ModelError, match=r"Did you mean 'gaussian'\?.*linear, poly, exponential"):
        make_zoo_model("gausian", ["x"])


@pytest.mark.parametrize(
    ("name", "inputs", "kwargs", "match"),
    [
        ("gaussian", ["x", "y"], {}, "exactly one input"),
        ("linear", [], {}, "at least one input"),
        ("linear", ["x", "x"], {}, "distinct"),
        ("sine", ["x"], {"n_outputs": 2}, "one output"),
        ("linear", ["x"], {"n_outputs": 0}, "n_outputs"),
        ("linear", ["x"], {"degree": 2}, "unknown option"),
        ("exponential", ["x"], {"offset": True}, "unknown option"),
        ("power", ["x"], {"offset": "yes"}, "offset"),
    ],
)
def test_bad_inputs_and_options(name, inputs, kwargs, match):
    with pytest.raises(ModelError, match=match):
        make_zoo_model(name, inputs, **kwargs)
