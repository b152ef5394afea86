"""Every built-in loss with row weights: against torch's own weighted losses, and weighted fits against
scikit-learn (sample_weight), statsmodels (freq_weights), linear programming and scipy's minimize."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.optimize import linprog, minimize
from sklearn.linear_model import LogisticRegression

import gradfit
from gradfit.errors import ConfigError
from gradfit.losses import get_loss

RNG = np.random.default_rng(11)


def _pair(n=40, classes=None):
    pred = torch.as_tensor(RNG.normal(size=(n, classes) if classes else n))
    target = torch.as_tensor(RNG.integers(0, classes, n).astype(float) if classes else RNG.normal(size=n))
    return pred, target, torch.as_tensor(RNG.random(n) * 2)


@pytest.mark.parametrize(
    "name, torch_rows",
    [
        ("mse", lambda p, t: F.mse_loss(p, t, reduction="none")),
        ("mae", lambda p, t: F.l1_loss(p, t, reduction="none")),
        ("huber", lambda p, t: F.huber_loss(p, t, reduction="none", delta=1.0)),
    ],
)
def test_regression_losses_weight_torch_rows(name, torch_rows):
    pred, target, w = _pair()
    loss = get_loss(name)
    assert float(loss.total(pred, target, w)) == pytest.approx(float((w * torch_rows(pred, target)).sum()), rel=1e-14)
    assert float(loss(pred, target, w)) == pytest.approx(
        float((w * torch_rows(pred, target)).sum() / w.sum()), rel=1e-14
    )
    assert float(loss(pred, target, torch.ones_like(w))) == pytest.approx(float(loss(pred, target)), rel=1e-14)


def test_bce_total_is_torchs_weighted_sum():
    pred, _, w = _pair()
    target = (torch.rand(len(pred), generator=torch.Generator().manual_seed(0)) < 0.5).double()
    oracle = F.binary_cross_entropy_with_logits(pred, target, weight=w, reduction="sum")
    assert float(get_loss("bce").total(pred, target, w)) == pytest.approx(float(oracle), rel=1e-14)


def test_cross_entropy_mean_is_torchs_class_weighted_mean():
    # Weighting each row by its class's weight is torch's weight=: its "mean" divides by the weights' sum, as ours.
    pred, target, _ = _pair(classes=3)
    class_weight = torch.tensor([0.5, 2.0, 1.25], dtype=torch.float64)
    w = class_weight[target.long()]
    oracle = F.cross_entropy(pred, target.long(), weight=class_weight, reduction="mean")
    assert float(get_loss("cross_entropy")(pred, target, w)) == pytest.approx(float(oracle), rel=1e-14)


def _classes(n=300, seed=0):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.4 + 1.2 * u - 0.8 * v)))).astype(float)
    return {"u": u, "v": v, "y": y, "w": rng.integers(1, 5, n).astype(float)}


def test_bce_with_weights_matches_sklearn_and_statsmodels_freq_weights():
    d = _classes()
    r = gradfit.fit(
        "a*u + b*v + c", d, y="y", x="u,v", loss="bce", weights="w", optimizer="lbfgs", steps=100, dtype="float64"
    )
    got = np.array([r.flat_params[k] for k in "abc"])
    X = np.column_stack([d["u"], d["v"]])
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, d["y"], sample_weight=d["w"])
    np.testing.assert_allclose(got, np.r_[sk.coef_[0], sk.intercept_], rtol=1e-5)
    glm = sm.GLM(d["y"], sm.add_constant(X), family=sm.families.Binomial(), freq_weights=d["w"]).fit(tol=1e-14)
    np.testing.assert_allclose(got, np.roll(glm.params, -1), rtol=1e-7)
    # Weights that are counts: the covariance H⁻¹ of the weighted NLL is statsmodels' with freq_weights.
    order = [1, 2, 0]  # statsmodels puts the constant first
    np.testing.assert_allclose(np.array(r.uncertainty["cov"]), glm.cov_params()[np.ix_(order, order)], rtol=1e-6)
    assert r.report["statistics"]["nll"] == pytest.approx(-glm.llf, rel=1e-9)
    assert not any("whole numbers" in w for w in r.report["warnings"])
    half = gradfit.fit(
        "a*u + b*v + c",
        {**d, "w": d["w"] / 2.5},
        y="y",
        x="u,v",
        loss="bce",
        weights="w",
        optimizer="lbfgs",
        steps=100,
        dtype="float64",
    )
    assert any("not whole numbers" in w for w in half.report["warnings"])


def test_cross_entropy_with_weights_matches_sklearn_probabilities():
    rng = np.random.default_rng(2)
    n = 300
    X = rng.normal(size=(n, 2))
    logits = X @ np.array([[1.0, -0.5, 0.0], [0.3, 0.8, -1.0]]) + np.array([0.2, 0.0, -0.3])
    y = np.array([rng.choice(3, p=np.exp(z) / np.exp(z).sum()) for z in logits]).astype(float)
    w = rng.random(n) * 3
    d = {"x1": X[:, 0], "x2": X[:, 1], "y": y, "w": w}
    r = gradfit.fit(
        "logistic",
        d,
        y="y",
        x="x1,x2",
        loss="cross_entropy",
        weights="w",
        optimizer="lbfgs",
        steps=200,
        dtype="float64",
    )
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=w)
    # The softmax's parameters are identifiable only up to a shift per row; the probabilities are.
    prob = torch.softmax(torch.as_tensor(r.predict(X)), dim=1).numpy()
    np.testing.assert_allclose(prob, sk.predict_proba(X), atol=1e-5)
    unweighted = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y).predict_proba(X)
    assert np.abs(unweighted - sk.predict_proba(X)).max() > 1e-2  # the weights mattered


def test_mae_with_weights_is_weighted_least_absolute_deviations():
    rng = np.random.default_rng(4)
    n = 120
    x = rng.uniform(-1, 1, n)
    y = 1.0 + 2.0 * x + rng.laplace(0, 0.3, n)
    w = rng.random(n) * 4
    X = np.column_stack([x, np.ones(n)])
    # min Σ wᵢ(eᵢ⁺ + eᵢ⁻) subject to X b + e⁺ - e⁻ = y, e >= 0: the weighted LAD fit, exactly.
    A_eq = sparse.hstack([sparse.csr_matrix(X), sparse.eye(n), -sparse.eye(n)]).tocsr()
    lp = linprog(
        np.r_[0, 0, w, w], A_eq=A_eq, b_eq=y, bounds=[(None, None)] * 2 + [(0, None)] * (2 * n), method="highs"
    )
    r = gradfit.fit(
        "a*x + b",
        {"x": x, "y": y, "w": w},
        y="y",
        x="x",
        loss="mae",
        weights="w",
        optimizer="adam",
        lr=0.01,
        steps=4000,
        schedule="cosine",
        dtype="float64",
        init={"a": 1.0, "b": 0.0},
    )
    got = np.array([r.flat_params["a"], r.flat_params["b"]])
    best = float(np.sum(w * np.abs(X @ lp.x[:2] - y)) / w.sum())
    assert r.loss == pytest.approx(best, rel=1e-6)  # the weighted LAD objective's minimum value
    np.testing.assert_allclose(got, lp.x[:2], atol=2e-3)  # a kink: the minimiser is found to the step size


def test_huber_with_weights_matches_scipy_minimize():
    rng = np.random.default_rng(6)
    n = 150
    x = rng.uniform(0, 3, n)
    y = 1.0 + 2.0 * x + rng.standard_t(2, n) * 0.5
    w = rng.random(n) * 3

    def objective(b):
        r = b[0] * x + b[1] - y
        rows = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
        grad_rows = np.clip(r, -1, 1)
        return np.sum(w * rows) / w.sum(), np.array([np.sum(w * grad_rows * x), np.sum(w * grad_rows)]) / w.sum()

    oracle = minimize(objective, [1.0, 0.0], jac=True, method="BFGS", options={"gtol": 1e-13})
    r = gradfit.fit(
        "a*x + b",
        {"x": x, "y": y, "w": w},
        y="y",
        x="x",
        loss="huber",
        weights="w",
        optimizer="lbfgs",
        steps=200,
        dtype="float64",
    )
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["b"]], oracle.x, rtol=1e-7)
    assert r.loss == pytest.approx(oracle.fun, rel=1e-12)


def test_a_loss_function_refuses_weights():
    loss = get_loss(lambda p, t: ((p - t) ** 2).mean())
    with pytest.raises(ConfigError, match="cannot be weighted row by row"):
        loss.total(torch.zeros(3), torch.ones(3), torch.ones(3))
