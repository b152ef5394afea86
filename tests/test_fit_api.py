"""gradfit.fit with every kind of model, init and fixed parameters, every loss and zoo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

import gradfit
from gradfit.data import synthetic

RNG = np.random.default_rng(0)
X = np.linspace(0.1, 4, 80)


def frame_of(y, x=X):
    import pandas as pd

    return pd.DataFrame({"x": x, "y": y})


@pytest.mark.parametrize(
    "name, truth, fn",
    [
        ("exponential", dict(a=2.0, b=-0.7, c=0.5), lambda x, a, b, c: a * np.exp(b * x) + c),
        ("sigmoid", dict(L=3.0, k=2.0, x0=2.0, c=0.2), lambda x, L, k, x0, c: L / (1 + np.exp(-k * (x - x0))) + c),
        (
            "gaussian",
            dict(a=2.0, mu=2.1, sigma=0.5, c=0.1),
            lambda x, a, mu, sigma, c: a * np.exp(-((x - mu) ** 2) / (2 * sigma**2)) + c,
        ),
        ("power", dict(a=1.5, b=0.7), lambda x, a, b: a * x**b),
        ("sine", dict(a=1.2, w=2.5, phi=0.3, c=0.4), lambda x, a, w, phi, c: a * np.sin(w * x + phi) + c),
    ],
)
def test_zoo_curves_fit_from_their_guesses_like_curve_fit(name, truth, fn):
    y = fn(X, **truth) + RNG.normal(0, 0.02, X.size)
    r = gradfit.fit(name, frame_of(y), y="y", optimizer="lbfgs", steps=100, dtype="float64")
    names = list(truth)
    popt, _ = curve_fit(fn, X, y, p0=[r.init_params[n] for n in names], ftol=1e-14, xtol=1e-14, gtol=1e-14)
    got = np.array([r.flat_params[n] for n in names])
    np.testing.assert_allclose(got, popt, rtol=1e-3, atol=1e-5)
    assert r.loss == pytest.approx(np.mean((fn(X, *popt) - y) ** 2), rel=1e-6)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_polyN_matches_numpy_polyfit(degree):
    y = np.polyval([0.3, -1.0, 2.0, 0.5][-degree - 1 :], X) + RNG.normal(0, 0.05, X.size)
    r = gradfit.fit(f"poly{degree}", frame_of(y), y="y", optimizer="lbfgs", steps=50, dtype="float64")
    coef = np.polyfit(X, y, degree)[::-1]
    np.testing.assert_allclose([r.flat_params[f"c{k}"] for k in range(degree + 1)], coef, rtol=1e-6, atol=1e-8)


def test_mlp_learns_a_smooth_curve():
    y = np.sin(2 * X)
    r = gradfit.fit("mlp", frame_of(y), y="y", optimizer="adam", lr=0.01, steps=2000, seed=3)
    assert r.loss < 0.01 * np.var(y)
    again = gradfit.fit("mlp", frame_of(y), y="y", optimizer="adam", lr=0.01, steps=5, seed=3)
    other = gradfit.fit("mlp", frame_of(y), y="y", optimizer="adam", lr=0.01, steps=5, seed=4)
    assert again.init_params != other.init_params


def test_callable_model_like_curve_fit():
    def decay(x, b1, b2=0.5):
        return b1 * (1 - torch.exp(-b2 * x))

    y = 3 * (1 - np.exp(-0.8 * X)) + RNG.normal(0, 0.01, X.size)
    r = gradfit.fit(decay, frame_of(y), y="y", init={"b1": 1.0}, optimizer="lbfgs", steps=100, dtype="float64")
    popt, _ = curve_fit(lambda x, b1, b2: b1 * (1 - np.exp(-b2 * x)), X, y, p0=[1.0, 0.5])
    np.testing.assert_allclose([r.flat_params["b1"], r.flat_params["b2"]], popt, rtol=1e-5)
    assert r.init_params == {"b1": 1.0, "b2": 0.5}


def test_nn_module_model_is_fitted_without_touching_the_module():
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    frame = synthetic.linear(seed=0)
    r = gradfit.fit(net, frame, x="x", y="y", lr=0.1, steps=1000)
    lin = gradfit.fit("linear", frame, y="y", lr=0.1, steps=1000)
    assert r.params["weight"].item() == pytest.approx(lin.flat_params["a[0]"], abs=1e-4)
    assert r.params["bias"].item() == pytest.approx(lin.flat_params["a[1]"], abs=1e-4)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_fixed_parameters_stay_at_their_initial_values():
    frame = synthetic.rollercoaster(seed=0)
    r = gradfit.fit(
        "a*t**2 + b*t + c", frame, y="speed", init={"c": 5.0}, fix=["c"], optimizer="lbfgs", steps=30, dtype="float64"
    )
    assert r.flat_params["c"] == 5.0 and r.fixed == ("c",)
    t, s = frame["t"].to_numpy(np.float64), frame["speed"].to_numpy(np.float64)
    A = np.stack([t**2, t], axis=1)
    expected = np.linalg.lstsq(A, s - 5.0, rcond=None)[0]
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["b"]], expected, rtol=1e-6)


def test_init_by_entry_and_random_init_is_seeded():
    frame = synthetic.linear(seed=0)
    r = gradfit.fit("linear", frame, y="y", init={"a[1]": 0.75}, steps=0)
    assert r.init_params == {"a[0]": 0.0, "a[1]": 0.75}
    a = gradfit.fit("a*x + b", frame, y="y", init="random", seed=5, steps=0)
    b = gradfit.fit("a*x + b", frame, y="y", init="random", seed=5, steps=0)
    assert a.init_params == b.init_params != {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize("loss, oracle", [("mae", "median"), ("huber", "huber"), ("mse", "mean")])
def test_losses_reach_their_own_optimum(loss, oracle):
    """A constant model c: mse finds the mean, mae the median, huber lies between (checked with scipy)."""
    from scipy.optimize import minimize_scalar

    y = np.array([0.0, 0.1, 0.2, 0.3, 10.0])
    frame = frame_of(y, x=np.zeros_like(y))
    r = gradfit.fit("c + 0*x", frame, y="y", loss=loss, optimizer="adam", lr=0.05, steps=3000, dtype="float64")
    if oracle == "huber":
        f = lambda c: np.mean(np.where(np.abs(y - c) < 1, 0.5 * (y - c) ** 2, np.abs(y - c) - 0.5))  # noqa: E731
        expected = minimize_scalar(f).x
    else:
        expected = getattr(np, oracle)(y)
    assert r.flat_params["c"] == pytest.approx(expected, abs=2e-2)


def test_custom_callable_loss():
    frame = synthetic.linear(seed=0)
    r = gradfit.fit("linear", frame, y="y", loss=lambda p, t: ((p - t) ** 2).mean(), lr=0.1, steps=200)
    s = gradfit.fit("linear", frame, y="y", loss="mse", lr=0.1, steps=200)
    np.testing.assert_allclose(r.params["a"].numpy(), s.params["a"].numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(model="linear", y="nope"), gradfit.DataError, "nope"),
        (dict(model="a*x + b", y="y", init={"q": 1}), gradfit.ModelError, "not a parameter"),
        (dict(model="a*x + b", y="y", fix=["a", "b"]), gradfit.ModelError, "leave at least one free"),
        (dict(model="a*x +", y="y"), gradfit.FormulaError, "(?i)syntax"),
        (dict(model="foo(x) * a", y="y"), gradfit.FormulaError, "unknown function 'foo'"),
        (dict(model="linearr", y="y"), gradfit.ModelError, "Did you mean the zoo model 'linear'"),
        (dict(model="linear", y="y", init={"a": [1, 2, 3]}), gradfit.ModelError, "shape"),
        (dict(model="linear", y="y", init={"a": float("nan")}), gradfit.ModelError, "finite"),
        (dict(model="linear", y="y", device="cuda"), gradfit.ConfigError, "no CUDA"),
    ],
)
def test_bad_input_raises_a_gradfit_error(kwargs, error, match):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    model = kwargs.pop("model")
    with pytest.raises(error, match=match):
        gradfit.fit(model, synthetic.linear(seed=0), steps=1, **kwargs)


def test_public_api_resolves_and_fit_stays_a_function():
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(gradfit.__path__, "gradfit."):
        if not info.name.startswith("gradfit.cli"):
            importlib.import_module(info.name)  # importing every submodule must not shadow a public name
    for name in gradfit.__all__:
        assert getattr(gradfit, name) is not None
    assert callable(gradfit.fit) and gradfit.fit.__name__ == "fit"


def test_bounds_are_honoured_by_projection():
    frame = synthetic.rollercoaster(seed=0)
    for optimizer, kw in [
        ("adam", dict(lr=0.5, steps=500)),
        ("lbfgs", dict(steps=30)),
        ("sgd", dict(lr=1e-5, steps=50)),
    ]:
        r = gradfit.fit(
            "a*t**2 + b*t + c",
            frame,
            y="speed",
            bounds={"c": (None, 10.0), "a": (0.0, 5.0)},
            optimizer=optimizer,
            dtype="float64",
            **kw,
        )
        snaps = r.history.snapshots[:, list(r.history.param_names).index("c")]
        assert snaps.max() <= 10.0 and r.flat_params["c"] <= 10.0 and r.flat_params["a"] >= 0.0
        assert r.bounds == {"c": [None, 10.0], "a": [0.0, 5.0]}
    assert "c" in r.diagnostics["at_bounds"] or optimizer == "sgd"
    lbfgs = gradfit.fit(
        "a*t**2 + b*t + c", frame, y="speed", bounds={"c": (None, 10.0)}, optimizer="lbfgs", steps=40, dtype="float64"
    )
    assert lbfgs.flat_params["c"] == 10.0 and lbfgs.diagnostics["at_bounds"] == ["c"]
    # the constrained optimum: least squares for a, b with c at its bound
    t, s = frame["t"].to_numpy(np.float64), frame["speed"].to_numpy(np.float64)
    ab = np.linalg.lstsq(np.stack([t**2, t], axis=1), s - 10.0, rcond=None)[0]
    np.testing.assert_allclose([lbfgs.flat_params["a"], lbfgs.flat_params["b"]], ab, rtol=1e-5)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ({"q": (0, 1)}, "names no parameter"),
        ({"a": (1, 0)}, "lo < hi"),
        ({"a": (2.0, 3.0)}, "outside"),
        ({"a": "0:1"}, "must be a pair"),
    ],
)
def test_bad_bounds_are_refused(bounds, match):
    with pytest.raises(gradfit.ModelError, match=match):
        gradfit.fit("a*x + b", synthetic.linear(seed=0), y="y", bounds=bounds, steps=1)
