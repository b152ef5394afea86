"""The error bars after a Levenberg-Marquardt fit reuse the solver's float64 sums of ``[J | r]`` at the fitted point
(:func:`gradfit.analysis.curvature._least_squares_kept`) instead of a second pass over the rows: they must equal the
re-pass's to rounding, match curve_fit, and be left unused wherever they are not the sums at those parameters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

import gradfit
from gradfit.analysis import curvature as cv
from gradfit.analysis.uncertainty import compute_uncertainty
from gradfit.losses import get_loss
from gradfit.optim.lm import GRAM_CONDITION, ChunkedResiduals

FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 2.0, "b": 1.0, "c": 0.0, "d": 0.0}


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    x = np.linspace(0.0, 4.0, n)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * np.random.default_rng(seed).standard_normal(n)}


def model(x, a, b, c, d):
    return a * np.exp(-b * x) + c + d * x


@pytest.fixture
def spy(monkeypatch):
    """Every call of _least_squares_kept: (the problem, what it returned)."""
    calls: list = []
    original = cv._least_squares_kept

    def recording(problem, n, p):
        out = original(problem, n, p)
        calls.append((problem, out))
        return out

    monkeypatch.setattr(cv, "_least_squares_kept", recording)
    return calls


def fit(d, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options.setdefault("init", START)
        return gradfit.fit(FORMULA, d, y="y", optimizer="lm", uncertainty=True, **options)


def fresh(result, d, chunk_size=None, fixed=()):
    """The error bars by the passes over the rows (no sums given)."""
    ds = gradfit.as_dataset(d, y="y", dtype=torch.float64)
    return compute_uncertainty(result.model, get_loss("mse"), ds, result.params, fixed=fixed, chunk_size=chunk_size)


@pytest.mark.parametrize(("n", "chunk_size"), [(20, None), (3000, None), (3000, 400)])
def test_reused_sums_give_the_error_bars_of_a_fresh_pass_and_curve_fits(spy, n, chunk_size):
    d = data(n)
    options = {} if chunk_size is None else {"chunk_size": chunk_size}
    r = fit(d, **options)
    assert [out is not None for _, out in spy] == [True]  # reused: one chunk ([J | r] itself) or several (the Gram)
    again = fresh(r, d, chunk_size)
    np.testing.assert_allclose(np.array(r.uncertainty["cov"], dtype=float), again.cov, rtol=1e-12, atol=0)
    np.testing.assert_allclose(r.uncertainty["stderr"], again.stderr, rtol=1e-12)
    p, pcov = curve_fit(model, d["x"], d["y"], p0=list(START.values()), ftol=1e-15, xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(list(r.flat_params.values()), p, rtol=1e-6)
    np.testing.assert_allclose(r.uncertainty["stderr"], np.sqrt(np.diag(pcov)), rtol=1e-6)


@pytest.mark.parametrize(("n", "chunk_size"), [(20, None), (3000, 400)])
def test_the_reused_factor_equals_a_fresh_one(spy, n, chunk_size):
    d = data(n)
    fit(d, **({} if chunk_size is None else {"chunk_size": chunk_size}))
    problem, kept = spy[-1]
    assert kept is not None
    n_rows, k = len(problem.dataset), len(problem.theta)
    if chunk_size is None:  # one chunk: the QR fold over the rows
        problem.sums = None
        other = cv._from_jacobian(problem, get_loss("mse"), "jacobian", n_rows, k)
    else:
        other = cv._least_squares_by_sums(problem, n_rows, k)
    assert other is not None
    np.testing.assert_allclose(kept.matrix.T @ kept.matrix, other.matrix.T @ other.matrix, rtol=1e-12)
    np.testing.assert_allclose(kept.gradient, other.gradient, rtol=1e-6, atol=1e-12 * np.abs(kept.matrix).max())
    assert kept.rss == pytest.approx(other.rss, rel=1e-12)
    assert kept.scale == pytest.approx(other.scale, rel=1e-12)


def test_a_fixed_parameter_is_left_out_of_both_and_the_sums_are_reused(spy):
    d = data(500)
    r = fit(d, fix=["d"], init={**START, "d": 0.2})
    assert spy[-1][1] is not None
    again = fresh(r, d, fixed=("d",))
    np.testing.assert_allclose(np.array(r.uncertainty["cov"], dtype=float), again.cov, rtol=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        {"bounds": {"d": (None, 0.1)}},  # d ends on its bound: held there, not a column of the error bars
        {"dtype": "float32"},  # sums in float32: the error bars are float64
        {"sigma": np.full(200, 0.05)},  # weighted rows
    ],
    ids=["bound", "float32", "weights"],
)
def test_sums_that_are_not_those_of_the_error_bars_are_not_used(spy, options):
    d = data(200)
    r = fit(d, **options)
    assert spy and all(out is None for _, out in spy)
    assert r.uncertainty["stderr"] is not None


def test_sums_at_a_point_other_than_the_fitted_one_are_not_used(spy):
    r = fit(data(50))
    problem, kept = spy[-1]
    assert kept is not None
    moved = problem.values.copy()
    moved[0] = np.nextafter(moved[0], np.inf)  # one bit away
    free = problem.free_index.tolist()
    view = cv.DatasetView(problem.model, problem.dataset, moved, free, sums=problem.sums)
    assert view.kept_sums() is None
    same = cv.DatasetView(problem.model, problem.dataset, problem.values, free, sums=problem.sums)
    assert same.kept_sums() is problem.sums
    assert r.diagnostics["lm"]["test"] is not None


def test_residuals_keep_the_sums_of_the_last_jacobian_and_of_the_last_trial():
    x = torch.linspace(0, 3, 300, dtype=torch.float64)
    y = 2 * torch.exp(-0.5 * x)

    def fn(p, xs, ys):
        return p[0] * torch.exp(-p[1] * xs) - ys

    def augmented(p, xs, ys):
        e = torch.exp(-p[1] * xs)
        return torch.stack([e, -p[0] * xs * e, p[0] * e - ys], dim=1)

    res = ChunkedResiduals(fn, x, y, chunk_size=64, augmented=augmented)
    p1, p2 = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([1.5, 0.7], dtype=torch.float64)
    res.factor(p1)  # the Jacobian at p1
    res.sum_squares(p2)  # a trial at p2 (rejected or not)
    for p in (p1, p2):
        kept = res.sums_at(p)
        assert kept is not None and kept[0] is None  # several chunks: the Gram
        _, gram, total = res._sums(p)
        assert gram is not None
        assert torch.equal(kept[1], gram) and kept[2] == total
    assert res.sums_at(torch.tensor([1.5, 0.7000001], dtype=torch.float64)) is None
    assert res.sums_at(p2.float()) is None  # the dtype is part of the point


def test_kept_sums_the_gram_refuses_go_straight_to_the_qr_fold(spy, monkeypatch):
    """An ill-conditioned quadratic on x in [50, 51] over several chunks: LM's kept Gram fails the condition test, and
    the error bars then fold QR in one pass instead of first summing a fresh Gram the same test would refuse."""
    x = np.linspace(50.0, 51.0, 900)
    d = {"x": x, "y": 1.0 + 0.5 * x - 0.01 * x**2 + 0.01 * np.sin(40 * x)}
    X = np.vander(x, 3, increasing=True)
    assert np.linalg.cond(X / np.linalg.norm(X, axis=0)) > GRAM_CONDITION
    fresh_gram: list = []
    original = cv._least_squares_by_sums
    monkeypatch.setattr(cv, "_least_squares_by_sums", lambda *a: fresh_gram.append(a) or original(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gradfit.fit("a + b*x + c*x**2", d, y="y", optimizer="lm", chunk_size=200, uncertainty=True)
    problem, kept = spy[-1]
    assert kept is None and problem.kept_sums() is not None  # kept, but refused by the Gram's condition test
    assert fresh_gram == []
    again = fresh(r, d, chunk_size=200)  # no sums: the fresh Gram (refused), then the fold
    assert len(fresh_gram) == 1
    np.testing.assert_allclose(np.array(r.uncertainty["cov"], dtype=float), again.cov, rtol=1e-9)
    Q, R = np.linalg.qr(X)  # the oracle: least squares by Householder QR
    coef = np.linalg.solve(R, Q.T @ d["y"])
    resid = d["y"] - X @ coef
    Rinv = np.linalg.inv(R)
    stderr = np.sqrt(np.diag(Rinv @ Rinv.T) * (resid @ resid) / (900 - 3))
    np.testing.assert_allclose(list(r.flat_params.values()), coef, rtol=1e-6)
    np.testing.assert_allclose(r.uncertainty["stderr"], stderr, rtol=1e-6)
