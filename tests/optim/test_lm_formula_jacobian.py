"""Levenberg-Marquardt on a formula's one-pass Jacobian (gradfit.train.formula_jacobian) and on summed JᵀJ.

Oracles: torch.autograd (the old path, ``row_pass="autograd"``, and ``values_and_jacobian``), scipy's
``curve_fit`` (parameters and ``pcov``) and ``least_squares`` (bounds), and numpy's QR for the factor of
``[J | r]`` that several chunks now read from ``[J | r]ᵀ[J | r]``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit, least_squares

import gradfit
from gradfit.analysis.curvature import DatasetView
from gradfit.data.dataset import Dataset
from gradfit.jacobian import values_and_jacobian
from gradfit.models.formula_model import FormulaModel
from gradfit.optim.lm import GRAM_CONDITION, ChunkedResiduals, LevenbergMarquardt, gram_factor
from gradfit.train.formula_jacobian import formula_jacobian

FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}


def decay(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    x = np.linspace(0.0, 4.0, n)
    rng = np.random.default_rng(seed)
    return {
        "x": x,
        "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * rng.standard_normal(n),
        "s": 0.02 + 0.08 * rng.random(n),
    }


def model_np(x, a, b, c, d):
    return a * np.exp(-b * x) + c + d * x


def fit(data, **options):
    options.setdefault("init", START)
    return gradfit.fit(FORMULA, data, x="x", y="y", optimizer="lm", uncertainty=True, **options)


def values(r) -> np.ndarray:
    return np.array(list(r.flat_params.values()))


def stderr(r) -> np.ndarray:
    return np.array(r.uncertainty["stderr"], dtype=float)


FORMULAS = [
    ("a*exp(-b*x) + c + d*x", {"a": 2.0, "b": 1.3, "c": 0.5, "d": -0.2}),
    ("a*sin(b*x + c)/(1 + d*x**2)", {"a": 1.5, "b": 2.0, "c": 0.3, "d": 0.4}),
    ("sqrt(a + x)*log1p(b*x) + tanh(c*x)*d", {"a": 1.2, "b": 0.7, "c": -0.5, "d": 3.0}),
    ("a**x * b + sigmoid(c*x - d)", {"a": 1.1, "b": 0.9, "c": 2.0, "d": 1.0}),
]


@pytest.mark.parametrize("formula,point", FORMULAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_one_pass_jacobian_is_autograds(formula, point, dtype):
    model = FormulaModel(formula, inputs=["x"])
    x = torch.linspace(0.1, 3.0, 41, dtype=dtype)[:, None]
    params = {k: torch.tensor(v, dtype=dtype) for k, v in point.items()}
    free = ["d", "a", "c"]  # any subset, any order; b held
    fj = formula_jacobian(model, free)
    assert fj is not None
    pred, J = fj(params, x)

    def f(q):
        return model({**params, **dict(zip(free, q))}, x).reshape(-1)

    want_pred, want_J = values_and_jacobian(f, torch.stack([params[n] for n in free]))
    tol = dict(rtol=1e-13, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    assert pred.dtype == J.dtype == dtype and J.shape == (41, 3)
    torch.testing.assert_close(pred, want_pred, **tol)
    torch.testing.assert_close(J, want_J, **tol)


def test_a_parameter_without_effect_and_a_formula_without_columns():
    x = torch.linspace(0, 1, 7, dtype=torch.float64)[:, None]
    params = {"a": torch.tensor(0.3, dtype=torch.float64), "b": torch.tensor(2.0, dtype=torch.float64)}
    pred, J = formula_jacobian(FormulaModel("a + 0*b*t", inputs=["t"]), ["a", "b"])(params, x)
    assert torch.all(J[:, 0] == 1) and torch.all(J[:, 1] == 0)
    pred, J = formula_jacobian(FormulaModel("a*b", inputs=[]), ["a", "b"])(params, torch.zeros(5, 0).double())
    assert pred.shape == (5,) and torch.all(pred == 0.6)
    torch.testing.assert_close(J, torch.tensor([[2.0, 0.3]] * 5, dtype=torch.float64))


def test_models_it_cannot_serve_get_none():
    assert formula_jacobian(lambda x, a: a * x, ["a"]) is None
    assert formula_jacobian(torch.nn.Linear(1, 1), ["weight"]) is None
    assert formula_jacobian(FormulaModel("a*x", inputs=["x"]), ["zzz"]) is None


@pytest.mark.parametrize(
    "case,options",
    [
        ("plain", {}),
        ("bounds", {"bounds": {"b": (0.0, 1.1)}}),
        ("a fixed parameter", {"fix": ["c"], "init": {**START, "c": 0.45}}),
        ("weights", {"weights": "s"}),
        ("sigma", {"sigma": "s"}),
        ("absolute sigma", {"sigma": "s", "absolute_sigma": True}),
        ("float32", {"dtype": "float32"}),
        ("chunks of 64: JᵀJ summed", {"chunk_size": 64}),
        ("chunks of 64 with sigma and bounds", {"chunk_size": 64, "sigma": "s", "bounds": {"b": (0.0, 1.1)}}),
    ],
)
def test_the_fast_path_agrees_with_autograds(case, options):
    data = decay(300, seed=1)
    fast = fit(data, **options)
    slow = fit(data, row_pass="autograd", **options)
    assert fast.diagnostics["lm"]["jacobian"] == "formula derivative"
    assert slow.diagnostics["lm"]["jacobian"] == "autograd"
    assert fast.stop_reason == slow.stop_reason == "converged"
    tight = 1e-4 if "float32" in case else 1e-9
    np.testing.assert_allclose(values(fast), values(slow), rtol=tight, atol=tight)
    np.testing.assert_allclose(stderr(fast), stderr(slow), rtol=10 * tight, equal_nan=True)
    assert fast.diagnostics["lm"]["held"] == slow.diagnostics["lm"]["held"]


@pytest.mark.parametrize("sigma,absolute", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("rows,chunk", [(20, None), (3000, None), (3000, 256)])
def test_it_gives_curve_fits_parameters_and_covariance(sigma, absolute, rows, chunk):
    data = decay(rows, seed=2)
    kw = {"sigma": data["s"], "absolute_sigma": absolute} if sigma else {}
    p, pcov = curve_fit(model_np, data["x"], data["y"], p0=list(START.values()), **kw)
    chunking = {} if chunk is None else {"chunk_size": chunk}
    r = fit(data, **chunking, **({"sigma": "s", "absolute_sigma": absolute} if sigma else {}))
    assert r.diagnostics["lm"]["jacobian"] == "formula derivative"
    np.testing.assert_allclose(values(r), p, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.array(r.uncertainty["cov"], dtype=float), pcov, rtol=1e-4, atol=1e-12)


def test_bounds_agree_with_least_squares():
    data = decay(500, seed=3)

    def res(q):
        return model_np(data["x"], *q) - data["y"]

    start = {**START, "d": 0.3}
    want = least_squares(res, list(start.values()), bounds=([-np.inf, 0.0, -np.inf, 0.25], np.inf), xtol=1e-14)
    r = fit(data, init=start, bounds={"d": (0.25, None), "b": (0.0, None)}, chunk_size=128)
    np.testing.assert_allclose(values(r), want.x, rtol=1e-6, atol=1e-8)
    assert r.diagnostics["at_bounds"] == ["d"]


@pytest.mark.parametrize(
    "model",
    [
        lambda x, a, b, c, d: a * torch.exp(-b * x) + c + d * x,
        "module",
    ],
    ids=["callable", "nn.Module"],
)
def test_models_without_a_formula_keep_autograd_and_still_agree_with_curve_fit(model):
    data = decay(200, seed=4)
    if model == "module":

        class Decay(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q = torch.nn.Parameter(torch.tensor(list(START.values()), dtype=torch.float64))

            def forward(self, x):
                q = self.q
                return q[0] * torch.exp(-q[1] * x[:, 0]) + q[2] + q[3] * x[:, 0]

        model, init = Decay(), None
    else:
        init = START
    r = gradfit.fit(model, data, x="x", y="y", init=init, optimizer="lm", uncertainty=True, dtype="float64")
    assert r.diagnostics["lm"]["jacobian"] == "autograd"
    p, pcov = curve_fit(model_np, data["x"], data["y"], p0=list(START.values()))
    np.testing.assert_allclose(values(r), p, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stderr(r), np.sqrt(np.diag(pcov)), rtol=1e-4)


# -- the factor from JᵀJ ---------------------------------------------------------------------


def augmented(J: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.column_stack([J, r])


def test_the_factor_from_the_sums_is_the_qr_factor():
    rng = np.random.default_rng(5)
    J, r = rng.standard_normal((500, 4)) * [1.0, 30.0, 0.01, 2.0], rng.standard_normal(500)
    B = augmented(J, r)
    R, qtr, total = gram_factor(B.T @ B, 4)
    Rq = np.linalg.qr(B, mode="r")
    np.testing.assert_allclose(R.T @ R, J.T @ J, rtol=1e-12)
    np.testing.assert_allclose(R.T @ qtr, J.T @ r, rtol=1e-11)
    np.testing.assert_allclose(np.abs(qtr), np.abs(Rq[:4, 4]), rtol=1e-10)
    assert total == pytest.approx(float(r @ r), rel=1e-13)


def test_an_ill_conditioned_or_degenerate_jacobian_is_left_to_qr():
    rng = np.random.default_rng(6)
    J = rng.standard_normal((300, 3))
    near = J.copy()
    near[:, 2] = J[:, 0] + 1e-6 * rng.standard_normal(300)  # scaled condition number ~ 1e6
    assert np.linalg.cond(near / np.linalg.norm(near, axis=0)) > GRAM_CONDITION
    r = rng.standard_normal(300)
    assert gram_factor(augmented(near, r).T @ augmented(near, r), 3) is None
    dead = J.copy()
    dead[:, 1] = 0.0
    assert gram_factor(augmented(dead, r).T @ augmented(dead, r), 3) is None
    bad = augmented(J, r)
    bad[4, 0] = np.nan
    assert gram_factor(bad.T @ bad, 3) is None


@pytest.mark.parametrize("ill", [False, True])
def test_several_chunks_reach_one_chunks_answer(ill):
    """The summed JᵀJ (and, ill-conditioned, its QR fallback) takes LM to the point one chunk's QR takes it to."""
    x = torch.linspace(0.0, 4.0, 400, dtype=torch.float64)
    y = 2.5 * torch.exp(-1.3 * x) + 0.3 * x + 0.01 * torch.sin(9 * x)
    k = 1e-5 if ill else 1.0  # with k tiny, the columns of a and of e are nearly parallel

    def res(p, xs, ys):
        return p[0] * torch.exp(-p[1] * xs) + p[2] * xs + p[3] + p[4] * torch.exp(-(p[1] + k) * xs) - ys

    p0 = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    ends = []
    for size in (10**6, 64):
        lm = LevenbergMarquardt(ChunkedResiduals(res, x, y, chunk_size=size), p0)
        for _ in range(200):
            it = lm.iterate()
            lm.accept(it)
            if it.test:
                break
        ends.append((lm.p.copy(), lm.sum_squares))
    assert ends[1][1] == pytest.approx(ends[0][1], rel=1e-9)
    if not ill:
        np.testing.assert_allclose(ends[1][0], ends[0][0], rtol=1e-7, atol=1e-9)


def test_the_error_bars_view_takes_the_formulas_jacobian():
    model = FormulaModel(FORMULA, inputs=["x"])
    data = decay(100)
    x = torch.tensor(data["x"])[:, None]
    dataset = Dataset(x, torch.tensor(data["y"]), ("x",))
    view = DatasetView(model, dataset, np.array([2.4, 1.2, 0.5, 0.21]), [0, 1, 3])
    assert view.formula is not None
    pred, J = view.values_and_jacobian(view.theta, x)
    want = values_and_jacobian(lambda t: view.predict(t, x).reshape(-1), view.theta)
    torch.testing.assert_close(pred, want[0], rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(J, want[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("size", [10**6, 64])
def test_the_sums_kept_from_a_residual_pass_are_the_factor_taken_afresh(size):
    """sum_squares(p) keeps its pass's sums for factor(p); at another point factor computes its own."""
    model = FormulaModel(FORMULA, inputs=["x"])
    fj = formula_jacobian(model, ["a", "b", "c", "d"])
    data = decay(300, seed=7)
    x, y = torch.tensor(data["x"])[:, None], torch.tensor(data["y"])
    w = torch.tensor(data["s"]) ** -2

    def augmented(q, xc, yc):
        pred, block = fj(dict(zip("abcd", q.unbind())), xc, extra=1)
        block[:, -1] = pred - yc
        return block

    def residuals(q, xc, yc):
        return fj.predict(dict(zip("abcd", q.unbind())), xc) - yc

    def fresh():
        return ChunkedResiduals(residuals, x, y, chunk_size=size, w=w, augmented=augmented)

    p1 = torch.tensor([2.0, 1.1, 0.4, 0.3], dtype=torch.float64)
    p2 = torch.tensor([2.2, 1.3, 0.5, 0.2], dtype=torch.float64)
    res = fresh()
    ss = res.sum_squares(p1)
    kept = res.factor(p1)
    assert (res.n_fev, res.n_jev) == (1, 1)
    want = fresh().factor(p1)
    for got, expected in zip(kept, want):
        np.testing.assert_array_equal(got, expected)
    assert ss == pytest.approx(want[2], rel=1e-13)
    r = (residuals(p1, x, y) * w.sqrt()).numpy()
    assert ss == pytest.approx(float(r @ r), rel=1e-12)
    res.sum_squares(p2)
    for got, expected in zip(res.factor(p1), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ill", [False, True])
def test_error_bars_from_summed_chunks_equal_one_chunks(weighted, ill):
    """Several chunks (JᵀJ summed, or the QR fold when ill-conditioned) give one chunk's covariance, for a formula
    (one-pass Jacobian) and the same function as a callable (autograd)."""
    from gradfit.analysis.uncertainty import compute_uncertainty
    from gradfit.losses import get_loss
    from gradfit.models.builder import build_model

    data = decay(2000, seed=8)
    x, y = torch.tensor(data["x"])[:, None], torch.tensor(data["y"])
    dataset = Dataset(x, y, ("x",), w=torch.tensor(data["s"]) ** -2 if weighted else None)
    k = 1e-3 if ill else 1.0  # the columns of a and g nearly parallel when ill
    text = f"a*exp(-b*x) + c + d*x + g*exp(-(b + {k})*x)"
    point = {"a": 2.0, "b": 1.3, "c": 0.5, "d": 0.2, "g": 0.3}
    params = {n: torch.tensor(v, dtype=torch.float64) for n, v in point.items()}
    formula = build_model(text, ("x",))
    callable_ = build_model(
        lambda x, a, b, c, d, g: a * torch.exp(-b * x) + c + d * x + g * torch.exp(-(b + k) * x), ("x",)
    )
    mse = get_loss("mse")
    one = compute_uncertainty(formula, mse, dataset, params, chunk_size=10**6)
    for model in (formula, callable_):
        many = compute_uncertainty(model, mse, dataset, params, chunk_size=100)
        np.testing.assert_allclose(many.cov, one.cov, rtol=1e-7 if ill else 1e-10)
        np.testing.assert_allclose(many.stderr, one.stderr, rtol=1e-7 if ill else 1e-10)
