"""Uncertainties against their oracles: curve_fit's pcov, the closed-form logistic Hessian, numpy sandwiches."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.optimize import curve_fit, linprog

import gradfit
from gradfit.analysis.uncertainty import Uncertainty, compute_uncertainty, uncertainty_of
from gradfit.data.convert import as_dataset
from gradfit.losses import get_loss
from helpers.imports import imported_by

sys.path.insert(0, str(Path(__file__).parents[1] / "optim"))
from problems import PROBLEMS  # noqa: E402


def _curve_fit(pr):
    # Complex-step derivatives: the oracle's Jacobian is exact to rounding, as autograd's is (MINPACK's
    # forward differences alone differ by 2e-4 on the ill-conditioned lanczos3).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curve_fit(
            pr.f,
            pr.x,
            pr.y,
            p0=pr.starts[1],
            method="trf",
            jac="cs",
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=10_000,
        )


@pytest.mark.parametrize("pr", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_covariance_matches_curve_fit_pcov(pr):
    popt, pcov = _curve_fit(pr)
    r = gradfit.fit(pr.formula, pr.data, y="y", init=dict(zip(pr.params, popt)), steps=0, dtype="float64")
    u = uncertainty_of(r, pr.data)
    assert u.ok and u.method == "jacobian" and u.dof == len(pr.x) - len(pr.params)
    order = [u.names.index(n) for n in pr.params]
    scale = np.sqrt(np.outer(np.diag(pcov), np.diag(pcov)))
    assert np.abs(u.cov[np.ix_(order, order)] - pcov).max() / 1 <= 1e-4 * scale.max()
    np.testing.assert_allclose(u.cov[np.ix_(order, order)] / scale, pcov / scale, atol=1e-4)
    np.testing.assert_allclose(u.stderr[order], np.sqrt(np.diag(pcov)), rtol=1e-4)


def test_default_curve_fit_agrees_and_intervals_use_student_t():
    pr = next(p for p in PROBLEMS if p.name == "misra1a")
    popt, pcov = curve_fit(pr.f, pr.x, pr.y, p0=pr.starts[1])  # scipy's defaults: MINPACK, forward differences
    r = gradfit.fit(pr.formula, pr.data, y="y", init=dict(zip(pr.params, popt)), steps=0, dtype="float64")
    u = uncertainty_of(r, pr.data, level=0.9)
    se = np.sqrt(np.diag(pcov))
    np.testing.assert_allclose(u.stderr, se, rtol=1e-4)
    from scipy import stats

    q = stats.t.ppf(0.95, len(pr.x) - 2)
    np.testing.assert_allclose(u.ci_high - u.ci_low, 2 * q * se, rtol=1e-4)
    np.testing.assert_allclose(u.corr[0, 1], pcov[0, 1] / (se[0] * se[1]), rtol=1e-4)


def test_fitted_with_lbfgs_matches_curve_fit():
    pr = next(p for p in PROBLEMS if p.name == "gauss_peak")
    popt, pcov = _curve_fit(pr)
    r = gradfit.fit(pr.formula, pr.data, y="y", init=pr.init(1), optimizer="lbfgs", steps=200, dtype="float64")
    u = uncertainty_of(r, pr.data)
    assert not u.warnings
    np.testing.assert_allclose(u.stderr, np.sqrt(np.diag(pcov)), rtol=1e-4)


def _logistic_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.5 + 1.5 * u - v)))).astype(float)
    return {"u": u, "v": v, "y": y}


def test_logistic_regression_covariance_is_the_inverse_of_xtwx():
    d = _logistic_data()
    r = gradfit.fit("a*u + b*v + c", d, y="y", loss="bce", optimizer="lbfgs", steps=30, dtype="float64")
    u = uncertainty_of(r, d)
    X = np.column_stack([d["u"], d["v"], np.ones(len(d["u"]))])
    beta = np.array([r.flat_params[k] for k in "abc"])
    p = 1 / (1 + np.exp(-X @ beta))
    cov = np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))
    assert u.ok and u.method == "hessian"
    np.testing.assert_allclose(u.cov, cov, rtol=1e-8)
    from scipy import stats

    np.testing.assert_allclose(u.ci_high - u.values, stats.norm.ppf(0.975) * np.sqrt(np.diag(cov)), rtol=1e-8)


def test_huber_sandwich_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, 200)
    y = 1.0 + 2.0 * x + rng.standard_t(2, 200) * 0.5
    d = {"x": x, "y": y}
    r = gradfit.fit("a*x + b", d, y="y", loss="huber", optimizer="lbfgs", steps=200, dtype="float64")
    u = uncertainty_of(r, d)
    X = np.column_stack([x, np.ones_like(x)])
    res = X @ np.array([r.flat_params["a"], r.flat_params["b"]]) - y
    A = X.T @ (X * (np.abs(res) <= 1.0)[:, None])
    psi = np.clip(res, -1.0, 1.0)
    B = X.T @ (X * (psi**2)[:, None])
    cov = len(x) / (len(x) - 2) * np.linalg.inv(A) @ B @ np.linalg.inv(A)
    assert u.method == "sandwich" and u.ok
    np.testing.assert_allclose(u.cov, cov, rtol=1e-8)


def test_mae_covariance_is_close_to_the_laplace_theory():
    rng = np.random.default_rng(4)
    n, scale = 4000, 0.5
    x = rng.uniform(-1, 1, n)
    y = 1.0 + 2.0 * x + rng.laplace(0, scale, n)
    X = np.column_stack([x, np.ones(n)])
    # The least-absolute-deviations fit, exactly, by linear programming: min sum(e+ + e-) with X b + e+ - e- = y.
    A_eq = sparse.hstack([sparse.csr_matrix(X), sparse.eye(n), -sparse.eye(n)]).tocsr()
    lp = linprog(
        np.r_[0, 0, np.ones(2 * n)],
        A_eq=A_eq,
        b_eq=y,
        bounds=[(None, None)] * 2 + [(0, None)] * (2 * n),
        method="highs",
    )
    dataset = as_dataset({"x": x, "y": y}, x=["x"], y="y", dtype=torch.float64)
    model = gradfit.fit("a*x + b", {"x": x, "y": y}, y="y", steps=0).model
    u = compute_uncertainty(model, get_loss("mae"), dataset, {"a": torch.tensor(lp.x[0]), "b": torch.tensor(lp.x[1])})
    theory = np.sqrt(np.diag(scale**2 * np.linalg.inv(X.T @ X)))  # (1/(2 f(0)))² (XᵀX)⁻¹ with f(0) = 1/(2 scale)
    assert u.method == "sandwich-lad" and u.ok
    np.testing.assert_allclose(u.stderr, theory, rtol=0.15)


def _line(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n)
    return {"x": x, "y": -2 * x + 1 + 0.1 * rng.normal(size=n)}


def test_singular_product_names_the_unidentifiable_pair_and_keeps_the_rest():
    d = _line()
    r = gradfit.fit("a*b*x + c", d, y="y", init={"a": 1.0, "b": -2.0}, optimizer="lbfgs", steps=50, dtype="float64")
    u = uncertainty_of(r, d)
    assert not u.ok and "a and b are not separately identifiable" in u.reason
    assert np.isnan(u["a"]) and np.isnan(u["b"])
    slope, intercept = np.polyfit(d["x"], d["y"], 1)
    resid = d["y"] - (slope * d["x"] + intercept)
    X = np.column_stack([d["x"], np.ones(20)])
    se_c = np.sqrt(resid @ resid / 17 * np.linalg.inv(X.T @ X)[1, 1])  # c is estimable: same as in the line fit...
    assert u["c"] == pytest.approx(se_c, rel=1e-6)  # ...with dof n - 3, since a, b and c are all free


def test_a_parameter_without_effect_is_named():
    d = _line()
    r = gradfit.fit("a*x + c + 0*k", d, y="y", optimizer="lbfgs", steps=50, dtype="float64")
    u = uncertainty_of(r, d)
    assert not u.ok and u.no_effect == ("k",) and "k has no effect" in u.reason
    assert np.isfinite(u["a"]) and np.isnan(u["k"])


def test_a_parameter_at_a_bound_is_held_and_named():
    d = _line()
    r = gradfit.fit(
        "a*x + c", d, y="y", bounds={"c": (1.5, None)}, init={"c": 2.0}, optimizer="lbfgs", steps=50, dtype="float64"
    )
    assert r.diagnostics["at_bounds"] == ["c"]
    u = uncertainty_of(r, d)
    assert not u.ok and u.at_bound == ("c",) and "c is at a bound" in u.reason
    assert any("held at the bound" in w for w in u.warnings)
    # a with c held at 1.5: a one-parameter least-squares fit of y - 1.5 on x, dof n - 1.
    _, pcov = curve_fit(lambda x, a: a * x + 1.5, d["x"], d["y"])
    assert u["a"] == pytest.approx(np.sqrt(pcov[0, 0]), rel=1e-6) and u.dof == 19 and np.isnan(u["c"])


def test_diverged_fit_has_no_uncertainty():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=50, steps=200)
    assert r.stop_reason == "diverged"
    u = uncertainty_of(r, d)
    assert not u.ok and "diverged" in u.reason and np.isnan(u.stderr).all() and u.cov is None


def test_no_degrees_of_freedom():
    d = {"x": np.array([0.0, 1.0]), "y": np.array([1.0, 3.0])}
    r = gradfit.fit("a*x + c", d, y="y", steps=5)
    u = uncertainty_of(r, d)
    assert not u.ok and "No degrees of freedom: 2 data point(s) for 2 free parameter(s)" in u.reason


def test_too_many_parameters_says_how_to_raise_the_limit():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", steps=5)
    u = uncertainty_of(r, d, max_params=1)
    assert not u.ok and "max_params=1" in u.reason and "max_params=2" in u.reason


def test_stopped_early_warns_that_the_point_is_not_a_minimum():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=0.01, steps=30)
    u = uncertainty_of(r, d)
    assert u.ok and any("still falling" in w for w in u.warnings) and any("not at a minimum" in w for w in u.warnings)


def test_fixed_parameters_are_held():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", fix="c", init={"c": 1.0}, optimizer="lbfgs", steps=50, dtype="float64")
    u = uncertainty_of(r, d)
    _, pcov = curve_fit(lambda x, a: a * x + 1.0, d["x"], d["y"])
    assert u.ok and u.held == ("c",) and u["a"] == pytest.approx(np.sqrt(pcov[0, 0]), rel=1e-6)


def test_to_dict_is_json_and_round_trips():
    d = _line()
    r = gradfit.fit("a*b*x + c", d, y="y", init={"a": 1.0, "b": -2.0}, optimizer="lbfgs", steps=50, dtype="float64")
    u = uncertainty_of(r, d)
    text = json.dumps(u.to_dict(), allow_nan=False)
    back = Uncertainty.from_dict(json.loads(text))
    assert back.names == u.names and back.reason == u.reason and back.ok == u.ok
    np.testing.assert_array_equal(back.stderr, u.stderr)  # NaN -> None -> NaN
    np.testing.assert_array_equal(back.cov, u.cov)


def test_unavailable_record_carries_its_reason():
    u = Uncertainty.unavailable({"a": 1.0, "b": 2.0}, "skipped: too big")
    d = u.to_dict()
    assert d["ok"] is False and d["reason"] == "skipped: too big" and d["stderr"] == [None, None]


def test_quantiles_are_scipy_stats():
    """The intervals' quantile is computed in pure Python (gradfit.analysis.quantiles): not scipy's bits, but its
    value to 1e-12 relative wherever scipy itself is that accurate (within ~1e-3 of p = 1/2 scipy's t.ppf keeps
    only absolute precision; tests/analysis/test_quantiles.py checks that region against mpmath instead)."""
    from scipy import stats

    from gradfit.analysis.uncertainty import _quantile

    for level in (0.5, 0.6827, 0.9, 0.95, 0.99, 0.9999999):
        p = (1 + level) / 2
        assert _quantile(p, None) == pytest.approx(stats.norm.ppf(p), rel=1e-14)
        for dof in (*range(1, 60), 1.5, 1000, 10**7):
            assert _quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-12)
        for dof in (0, -3):
            assert np.isnan(_quantile(p, dof)) and np.isnan(stats.t.ppf(p, dof))


def test_a_fit_with_intervals_does_not_import_scipy_stats():
    """scipy.stats loads every distribution (about a second of a CLI fit); the intervals need two functions."""
    code = (
        "import warnings; warnings.simplefilter('ignore'); import gradfit; "
        "r = gradfit.fit('a*x + b', 'builtin:linear', y='y', optimizer='lm', uncertainty=True); "
        "assert r.uncertainty['ok'] and len(r.uncertainty['ci_low']) == 2"
    )
    imported, _ = imported_by(code, ["scipy.stats"])
    assert imported == {"scipy.stats": False}
