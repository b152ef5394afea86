"""What is computed after a weighted fit: sandwich covariances by hand, the weighted stability limit, optimum,
landscape and step table, and a saved run that reads its weights again (or says why it cannot)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from scipy import sparse
from scipy.optimize import linprog

import gradfit
from gradfit.analysis.fitted_data import run_data
from gradfit.analysis.landscape import compute_landscape
from gradfit.analysis.optimum import least_squares_optimum
from gradfit.analysis.report import fit_report, statistics
from gradfit.analysis.stability import stability_limit, stability_limit_of
from gradfit.analysis.uncertainty import compute_uncertainty, uncertainty_of
from gradfit.analysis.walkthrough import gradient_at
from gradfit.data.convert import as_dataset
from gradfit.errors import DataError
from gradfit.losses import get_loss


def _line(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 5.0, n)
    s = 0.2 * (0.05 + rng.random(n))
    return pd.DataFrame({"x": x, "y": 1.5 * x - 2.0 + rng.normal(0, s), "err": s})


def test_weighted_huber_sandwich_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, 200)
    y = 1.0 + 2.0 * x + rng.standard_t(2, 200) * 0.5
    w = rng.random(200) * 3
    d = {"x": x, "y": y, "w": w}
    r = gradfit.fit(
        "a*x + b", d, y="y", x="x", loss="huber", weights="w", optimizer="lbfgs", steps=200, dtype="float64"
    )
    u = uncertainty_of(r, d)
    X = np.column_stack([x, np.ones_like(x)])
    res = X @ np.array([r.flat_params["a"], r.flat_params["b"]]) - y
    A = X.T @ (X * (w * (np.abs(res) <= 1.0))[:, None])  # the Hessian of Σ wᵢ huber(rᵢ)
    B = X.T @ (X * (w**2 * np.clip(res, -1.0, 1.0) ** 2)[:, None])  # Σ wᵢ² gᵢgᵢᵀ
    cov = len(x) / (len(x) - 2) * np.linalg.inv(A) @ B @ np.linalg.inv(A)
    assert u.method == "sandwich" and u.ok
    np.testing.assert_allclose(u.cov, cov, rtol=1e-8)


def test_weighted_mae_covariance_is_close_to_the_laplace_theory():
    rng = np.random.default_rng(4)
    n, scale = 4000, 0.5
    x = rng.uniform(-1, 1, n)
    y = 1.0 + 2.0 * x + rng.laplace(0, scale, n)
    w = 0.2 + rng.random(n) * 3
    X = np.column_stack([x, np.ones(n)])
    A_eq = sparse.hstack([sparse.csr_matrix(X), sparse.eye(n), -sparse.eye(n)]).tocsr()
    lp = linprog(
        np.r_[0, 0, w, w], A_eq=A_eq, b_eq=y, bounds=[(None, None)] * 2 + [(0, None)] * (2 * n), method="highs"
    )
    dataset = as_dataset({"x": x, "y": y, "w": w}, x=["x"], y="y", weights="w", dtype=torch.float64)
    model = gradfit.fit("a*x + b", {"x": x, "y": y}, y="y", steps=0).model
    u = compute_uncertainty(model, get_loss("mae"), dataset, {"a": torch.tensor(lp.x[0]), "b": torch.tensor(lp.x[1])})
    # Weighted LAD with i.i.d. errors of density f: cov = (XᵀWX)⁻¹ XᵀW²X (XᵀWX)⁻¹ / (4 f(0)²), f(0) = 1/(2 scale).
    bread = np.linalg.inv(X.T @ (X * w[:, None]))
    theory = scale**2 * bread @ (X.T @ (X * (w**2)[:, None])) @ bread
    assert u.method == "sandwich-lad" and u.ok
    np.testing.assert_allclose(u.stderr, np.sqrt(np.diag(theory)), rtol=0.15)
    unweighted = np.sqrt(np.diag(scale**2 * np.linalg.inv(X.T @ X)))
    assert np.abs(u.stderr / unweighted - 1).max() > 0.15  # the weights changed the answer


def test_equal_weights_change_no_uncertainty():
    d = _line()
    for loss in ("mse", "mae", "huber"):
        plain = gradfit.fit("a*x + b", d, y="y", x="x", loss=loss, optimizer="lbfgs", steps=100, dtype="float64")
        ones = gradfit.fit(
            "a*x + b",
            d.assign(w=2.0),
            y="y",
            x="x",
            loss=loss,
            weights="w",
            optimizer="lbfgs",
            steps=100,
            dtype="float64",
        )
        np.testing.assert_allclose(ones.uncertainty["cov"], plain.uncertainty["cov"], rtol=1e-6, err_msg=loss)


def test_stability_limit_is_that_of_the_weighted_loss():
    d = _line()
    w = 1 / d["err"].to_numpy() ** 2
    ds = as_dataset(d, x=["x"], y="y", sigma="err", dtype=torch.float64)
    model = gradfit.fit("a*x + b", d, y="y", x="x", steps=0).model
    params = {"a": torch.tensor(0.0, dtype=torch.float64), "b": torch.tensor(0.0, dtype=torch.float64)}
    got = stability_limit(model, "mse", ds.x, ds.y, params, w=ds.w, tol=1e-10, iters=200)
    X = np.column_stack([d["x"], np.ones(len(d))])
    lam = np.linalg.eigvalsh(2 * X.T @ (X * w[:, None]) / w.sum()).max()
    assert got.lam_max == pytest.approx(lam, rel=1e-8)
    r = gradfit.fit(
        "a*x + b", d, y="y", sigma="err", optimizer="sgd", lr=1e-3, steps=2, init={"a": 0.0, "b": 0.0}, dtype="float64"
    )
    assert r.diagnostics["stability_limit"]["lam_max"] == pytest.approx(lam, rel=1e-2)
    assert stability_limit_of(r, d, tol=1e-10, iters=200).lam_max == pytest.approx(lam, rel=1e-8)


def test_optimum_landscape_and_steps_of_a_weighted_fit():
    d = _line()
    w = 1 / d["err"].to_numpy() ** 2
    wls = sm.WLS(d["y"].to_numpy(), sm.add_constant(d["x"].to_numpy()), weights=w).fit().params
    r = gradfit.fit("linear", d, x="x", y="y", sigma="err", optimizer="sgd", lr=1e-3, steps=5, dtype="float64")
    best = least_squares_optimum(r, d)
    np.testing.assert_allclose([best["a[1]"], best["a[0]"]], wls, rtol=1e-9)
    land = compute_landscape(r, data=d, n=5, span=((1.0, 2.0), (-3.0, -1.0)))
    X = np.column_stack([d["x"], np.ones(len(d))])
    for i, b in enumerate(land.b):
        for j, a in enumerate(land.a):
            res = X @ np.array([a, b]) - d["y"].to_numpy()
            assert land.loss[i, j] == pytest.approx(np.sum(w * res**2) / w.sum(), rel=1e-10)
    value, grad = gradient_at(r, r.history.params_at(0), d)
    assert value == pytest.approx(r.history["loss"][0], rel=1e-12)
    p = r.history.params_at(0)
    res = X @ np.array([p["a[0]"], p["a[1]"]]) - d["y"].to_numpy()
    np.testing.assert_allclose([grad["a[0]"], grad["a[1]"]], 2 * X.T @ (w * res) / w.sum(), rtol=1e-10)


def test_a_saved_run_reads_its_weights_again(tmp_path):
    path = tmp_path / "d.csv"
    _line().to_csv(path, index=False)
    r = gradfit.fit("a*x + b", path, y="y", sigma="err", optimizer="lm", val_split=0.2, seed=2)
    saved = gradfit.FitResult.from_json(r.to_json())  # no data in memory: the file is read again
    ds = run_data(saved)
    assert ds.weighting.column == "err" and ds.x_names == ("x",)
    u = uncertainty_of(saved)
    np.testing.assert_allclose(u.cov, np.array(r.uncertainty["cov"], dtype=float), rtol=1e-9)
    st = statistics(saved)
    for key in ("n", "chisqr", "rss", "tss", "r2", "redchi", "aic", "bic"):
        assert st[key] == pytest.approx(r.report["statistics"][key], rel=1e-9), key
    assert st["n"] == r.data["n_train"]
    assert "weighted           1/sigma² (sigma: column 'err')" in fit_report(saved)


def test_a_run_weighted_by_an_array_says_what_it_cannot_recompute(tmp_path):
    path = tmp_path / "d.csv"
    d = _line()
    d[["x", "y"]].to_csv(path, index=False)
    r = gradfit.fit("a*x + b", path, y="y", sigma=d["err"].to_numpy(), optimizer="lm")
    assert r.data["weights"]["from"] == "array" and r.report["statistics"]["r2"] is not None
    with pytest.raises(DataError, match="weighted by sigma given as an array, which is not saved"):
        uncertainty_of(r)
    st = statistics(r)  # from the loss alone: the chi-square is loss x Σw
    assert st["chisqr"] == pytest.approx(r.report["statistics"]["chisqr"], rel=1e-6)
    assert st["r2"] is None and st["rss"] is None
    assert least_squares_optimum(r) is None
    assert run_data(r).w is None  # enough to draw the data
    weighted = as_dataset(d, x=["x"], y="y", sigma="err")
    np.testing.assert_allclose(uncertainty_of(r, weighted).cov, np.array(r.uncertainty["cov"], dtype=float), rtol=1e-5)
