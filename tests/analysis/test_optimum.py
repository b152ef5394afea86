"""least_squares_optimum against numpy.polyfit and torch.linalg.lstsq, None where no closed form exists."""

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.analysis.optimum import least_squares_optimum
from gradfit.errors import DataError


def test_line_matches_polyfit():
    df = gradfit.datasets.linear(n=100, seed=0)
    r = gradfit.fit("linear", df, y="y", lr=0.1, steps=5)  # far from converged: the optimum does not care
    opt = least_squares_optimum(r, df)
    slope, intercept = np.polyfit(df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64), 1)
    assert opt == pytest.approx({"a[0]": slope, "a[1]": intercept}, rel=1e-9)


def test_quadratic_formula_matches_polyfit_on_the_seed_data():
    r = gradfit.fit("a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", lr=1e-5, steps=3)
    d = gradfit.datasets.rollercoaster()
    a, b, c = np.polyfit(d["t"].to_numpy(np.float64), d["speed"].to_numpy(np.float64), 2)
    assert least_squares_optimum(r) == pytest.approx({"a": a, "b": b, "c": c}, rel=1e-8)


def test_fixed_parameters_stay_and_several_inputs_match_lstsq():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2)).astype(np.float32)  # float32, as the fit (and so the optimum) reads them
    z = (1.5 * X[:, 0] - 0.5 * X[:, 1] + 2 + rng.normal(size=80)).astype(np.float32)
    df = pd.DataFrame({"u": X[:, 0], "v": X[:, 1], "z": z})
    r = gradfit.fit("p*u + q*v + c", df, y="z", fix="c", init={"c": 1.0}, lr=0.1, steps=3)
    opt = least_squares_optimum(r, df)
    A = torch.tensor(X, dtype=torch.float64)
    target = torch.tensor(z, dtype=torch.float64) - 1.0
    p, q = torch.linalg.lstsq(A, target[:, None]).solution[:, 0].tolist()
    assert opt == pytest.approx({"p": p, "q": q, "c": 1.0}, rel=1e-9)


def test_none_without_a_closed_form():
    df = gradfit.datasets.linear(n=40)
    assert least_squares_optimum(gradfit.fit("exponential", df, y="y", lr=1e-3, steps=3), df) is None
    assert least_squares_optimum(gradfit.fit("a*exp(b*x)", df, y="y", lr=1e-3, steps=3), df) is None
    assert least_squares_optimum(gradfit.fit("mlp", df, y="y", lr=1e-3, steps=2), df) is None
    assert least_squares_optimum(gradfit.fit("linear", df, y="y", loss="mae", steps=2), df) is None
    with pytest.raises(DataError):
        least_squares_optimum(gradfit.fit("linear", df, y="y", steps=2))
