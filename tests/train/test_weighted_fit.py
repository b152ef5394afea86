"""Weighted fits against their oracles: curve_fit with sigma (absolute_sigma both ways), statsmodels' WLS,
and the weights following the rows through batches, chunks, validation splits, scaling and checkpoints."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from scipy.optimize import curve_fit

import gradfit
from gradfit.errors import ConfigError
from gradfit.train.objective import Objective

sys.path.insert(0, str(Path(__file__).parents[1] / "optim"))
from problems import by_name  # noqa: E402


def _sigma(n: int, scale: float, seed: int) -> np.ndarray:
    """Unequal standard deviations, a factor of 20 apart, so a weighted fit differs from an unweighted one."""
    return scale * (0.05 + np.random.default_rng(seed).random(n))


def _line(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 5.0, n)
    s = _sigma(n, 1.0, seed + 1)
    return pd.DataFrame({"x": x, "y": 1.5 * x - 2.0 + rng.normal(0, s), "err": s})


def _decay(n=50, seed=2):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 4.0, n)
    s = _sigma(n, 0.2, seed + 1)
    return pd.DataFrame({"x": x, "y": 2.0 * np.exp(-0.8 * x) + 0.3 + rng.normal(0, s), "err": s})


def _nist(name: str):
    """The problem's data with sigmas around its residuals' size (0.5 to 1.5 of it), as a real error column is."""
    pr = by_name(name)
    sd = float(np.std(pr.y - pr.f(pr.x, *pr.certified)))
    err = sd * (0.5 + np.random.default_rng(7).random(len(pr.x)))
    return pd.DataFrame({"x": pr.x, "y": pr.y, "err": err}), pr


def _cases():
    line, decay = _line(), _decay()
    yield "linear", "linear", line, lambda x, a, b: a * x + b, ("a[0]", "a[1]"), (1.0, 0.0)
    yield (
        "exponential",
        "a*exp(-b*x) + c",
        decay,
        lambda x, a, b, c: a * np.exp(-b * x) + c,
        ("a", "b", "c"),
        (1.0, 1.0, 0.0),
    )
    for name in ("misra1a", "eckerle4", "thurber"):
        frame, pr = _nist(name)
        yield name, pr.formula, frame, pr.f, pr.params, pr.starts[1]


CASES = list(_cases())


def _oracle(f, frame, p0, absolute):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curve_fit(
            f,
            frame["x"].to_numpy(),
            frame["y"].to_numpy(),
            p0=p0,
            sigma=frame["err"].to_numpy(),
            absolute_sigma=absolute,
            method="trf",
            jac="cs",
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=20_000,
        )


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_curve_fit_with_sigma(case, absolute):
    _, model, frame, f, names, start = case
    popt, pcov = _oracle(f, frame, start, absolute)
    r = gradfit.fit(
        model,
        frame,
        y="y",
        sigma="err",
        absolute_sigma=absolute,
        optimizer="lm",
        dtype="float64",
        init=dict(zip(names, start)),
        steps=500,
    )
    assert r.success and r.data["x"] == ["x"]  # the sigma column is not an input
    got = np.array([r.flat_params[n] for n in names])
    np.testing.assert_allclose(got, popt, rtol=1e-6, atol=1e-9 * np.abs(popt).max())
    u = r.uncertainty
    assert u["ok"] and u["method"] == "jacobian" and u["dof"] == len(frame) - len(names)
    order = [u["names"].index(n) for n in names]
    cov = np.array(u["cov"])[np.ix_(order, order)]
    scale = np.sqrt(np.outer(np.diag(pcov), np.diag(pcov)))
    np.testing.assert_allclose(cov / scale, pcov / scale, atol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), np.sqrt(np.diag(pcov)), rtol=1e-4)


def test_gradient_descent_reaches_the_weighted_answer_too():
    frame = _decay()
    popt, pcov = _oracle(lambda x, a, b, c: a * np.exp(-b * x) + c, frame, (1.0, 1.0, 0.0), False)
    r = gradfit.fit(
        "a*exp(-b*x) + c",
        frame,
        y="y",
        sigma="err",
        optimizer="lbfgs",
        steps=300,
        dtype="float64",
        init={"a": 1.0, "b": 1.0, "c": 0.0},
    )
    np.testing.assert_allclose([r.flat_params[n] for n in "abc"], popt, rtol=1e-6)
    np.testing.assert_allclose(np.array(r.uncertainty["cov"]), pcov, rtol=1e-4, atol=1e-4 * np.abs(pcov).max())


def _wls(frame, weights):
    return sm.WLS(frame["y"].to_numpy(), sm.add_constant(frame["x"].to_numpy()), weights=weights).fit()


@pytest.mark.parametrize("how", ["sigma", "weights"])
def test_linear_matches_statsmodels_wls(how):
    frame = _line().assign(w=lambda d: 3.0 / d["err"] ** 2)  # weights are relative: a factor changes nothing
    wls = _wls(frame, frame["w"].to_numpy())
    given = {"sigma": "err"} if how == "sigma" else {"weights": "w"}
    r = gradfit.fit("linear", frame, x="x", y="y", optimizer="lm", dtype="float64", **given)
    np.testing.assert_allclose([r.flat_params["a[1]"], r.flat_params["a[0]"]], wls.params, rtol=1e-9)
    np.testing.assert_allclose([r.uncertainty["stderr"][1], r.uncertainty["stderr"][0]], wls.bse, rtol=1e-6)
    st = r.report["statistics"]
    chisqr = float(np.sum(frame["w"] * (frame["y"] - wls.fittedvalues) ** 2))
    assert st["chisqr"] == pytest.approx(chisqr * (1 / 3 if how == "sigma" else 1), rel=1e-9)
    assert st["r2"] == pytest.approx(wls.rsquared, rel=1e-9) and st["n"] == wls.nobs
    assert st["redchi"] == pytest.approx(st["chisqr"] / wls.df_resid, rel=1e-12)


def test_the_loss_is_the_weighted_mean_and_the_chi_square_is_recoverable():
    frame = _decay()
    r = gradfit.fit("a*exp(-b*x) + c", frame, y="y", sigma="err", optimizer="lm", dtype="float64")
    p = r.flat_params
    res = frame["y"] - (p["a"] * np.exp(-p["b"] * frame["x"]) + p["c"])
    w = 1 / frame["err"] ** 2
    assert r.loss == pytest.approx(float(np.sum(w * res**2) / np.sum(w)), rel=1e-12)
    assert r.history["loss"][-1] == pytest.approx(r.loss, rel=1e-12)
    assert r.data["weights"] == {
        "kind": "sigma",
        "column": "err",
        "from": "column",
        "absolute_sigma": False,
        "sum": pytest.approx(float(w.sum()), rel=1e-12),
    }
    chisqr = r.loss * r.data["weights"]["sum"]
    assert chisqr == pytest.approx(float(np.sum((res / frame["err"]) ** 2)), rel=1e-10)
    assert r.report["statistics"]["chisqr"] == pytest.approx(chisqr, rel=1e-10)
    # Weights times a constant: the same fit and loss (a weighted mean), a chi-square times that constant.
    scaled = gradfit.fit(
        "a*exp(-b*x) + c", frame.assign(w=10 * w), y="y", weights="w", x="x", optimizer="lm", dtype="float64"
    )
    np.testing.assert_allclose(list(scaled.flat_params.values()), list(p.values()), rtol=1e-9)
    assert scaled.loss == pytest.approx(r.loss, rel=1e-9)
    assert scaled.report["statistics"]["chisqr"] == pytest.approx(10 * chisqr, rel=1e-9)
    np.testing.assert_allclose(scaled.uncertainty["cov"], r.uncertainty["cov"], rtol=1e-7)


def test_integer_weights_equal_repeated_rows_and_zero_weights_leave_rows_out():
    frame = _line(n=30)
    counts = np.random.default_rng(5).integers(0, 4, len(frame))
    counts[:2] = (0, 3)
    repeated = frame.loc[frame.index.repeat(counts)]
    common = dict(x="x", y="y", optimizer="lm", dtype="float64")
    r = gradfit.fit("linear", frame.assign(w=counts), weights="w", **common)
    plain = gradfit.fit("linear", repeated, **common)
    np.testing.assert_allclose(list(r.flat_params.values()), list(plain.flat_params.values()), rtol=1e-10)
    assert r.loss == pytest.approx(plain.loss, rel=1e-10)
    # 0/1 weights: exactly the fit without the rows of weight 0, covariance and degrees of freedom included.
    keep = (counts > 0).astype(float)
    masked = gradfit.fit("linear", frame.assign(w=keep), weights="w", **common)
    dropped = gradfit.fit("linear", frame[keep > 0], **common)
    np.testing.assert_allclose(list(masked.flat_params.values()), list(dropped.flat_params.values()), rtol=1e-10)
    assert masked.uncertainty["dof"] == dropped.uncertainty["dof"] == int(keep.sum()) - 2
    np.testing.assert_allclose(masked.uncertainty["cov"], dropped.uncertainty["cov"], rtol=1e-9)
    assert masked.report["statistics"]["n"] == int(keep.sum())


def test_weights_of_inverse_variances_equal_sigma():
    frame = _decay().assign(w=lambda d: 1 / d["err"] ** 2)
    a = gradfit.fit("a*exp(-b*x) + c", frame, y="y", sigma="err", optimizer="lm", dtype="float64")
    b = gradfit.fit("a*exp(-b*x) + c", frame, y="y", x="x", weights="w", optimizer="lm", dtype="float64")
    np.testing.assert_allclose(list(a.flat_params.values()), list(b.flat_params.values()), rtol=1e-10)
    np.testing.assert_allclose(a.uncertainty["cov"], b.uncertainty["cov"], rtol=1e-8)


def test_minibatches_carry_their_rows_weights():
    # Precise points on the left, noisy and biased ones on the right: the weighted line differs from the plain one.
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 5.0, 200)
    s = np.where(x < 2.5, 0.05, 1.0)
    frame = pd.DataFrame({"x": x, "y": 1.5 * x - 2.0 + rng.normal(0, s) + (x >= 2.5), "err": s})
    w = 1 / frame["err"].to_numpy() ** 2
    wls, ols = _wls(frame, w).params, _wls(frame, np.ones(len(frame))).params
    assert np.abs(wls - ols).max() > 0.3  # the weights matter here
    r = gradfit.fit(
        "linear",
        frame,
        y="y",
        sigma="err",
        optimizer="adam",
        lr=0.02,
        batch_size=20,
        epochs=300,
        schedule="cosine",
        seed=1,
        dtype="float64",
    )
    got = np.array([r.flat_params["a[1]"], r.flat_params["a[0]"]])
    assert np.abs(got - wls).max() < 0.1 * np.abs(wls - ols).max()
    exact = Objective(r.model, gradfit.losses.get_loss("mse"))
    ds = gradfit.data.as_dataset(frame, x="x", y="y", sigma="err", dtype=torch.float64)
    assert r.loss == pytest.approx(float(exact.value(r.params, ds.x, ds.y, ds.w)), rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "bce"])
def test_objective_sums_weighted_chunks_as_autograd_does(loss):
    rng = np.random.default_rng(0)
    n = 1000
    x = torch.as_tensor(rng.normal(size=(n, 1)))
    y = torch.as_tensor((rng.random(n) < 0.5).astype(float) if loss == "bce" else rng.normal(size=n))
    w = torch.as_tensor(rng.random(n) * 3)
    model = gradfit.fit("a*x + b", {"x": x[:, 0].numpy(), "y": y.numpy()}, y="y", steps=0).model
    params = {
        "a": torch.tensor(0.7, dtype=torch.float64, requires_grad=True),
        "b": torch.tensor(-0.2, dtype=torch.float64, requires_grad=True),
    }
    fn = gradfit.losses.get_loss(loss)
    pred = params["a"] * x[:, 0] + params["b"]
    per_row = {
        "mse": (pred - y) ** 2,
        "mae": (pred - y).abs(),
        "huber": torch.nn.functional.huber_loss(pred, y, reduction="none"),
        "bce": torch.nn.functional.binary_cross_entropy_with_logits(pred, y, reduction="none"),
    }[loss]
    oracle = (w * per_row).sum() / w.sum()
    grads = torch.autograd.grad(oracle, [params["a"], params["b"]])
    for chunk in (n, 64):
        value, got = Objective(model, fn, chunk_size=chunk).value_and_grad(params, ["a", "b"], x, y, w)
        oracle = oracle.detach()
        assert float(value) == pytest.approx(float(oracle), rel=1e-12)
        for g, o in zip(got, grads):
            assert float(g) == pytest.approx(float(o), rel=1e-10)
        assert float(Objective(model, fn, chunk_size=chunk).value(params, x, y, w)) == pytest.approx(
            float(oracle), rel=1e-12
        )
    zero = torch.zeros(n, dtype=torch.float64)  # a batch whose rows all weigh 0 has loss 0, not NaN
    assert float(Objective(model, fn).value(params, x, y, zero)) == 0.0


def test_the_validation_rows_keep_their_weights():
    frame = _decay(n=80)
    r = gradfit.fit(
        "a*exp(-b*x) + c",
        frame,
        y="y",
        sigma="err",
        optimizer="lbfgs",
        steps=50,
        val_split=0.25,
        seed=4,
        dtype="float64",
    )
    ds = gradfit.data.as_dataset(frame, x="x", y="y", sigma="err", dtype=torch.float64)
    train, val = ds.split(0.25, torch.Generator().manual_seed(4))
    p = r.params
    for part, got in ((val, r.val_loss), (train, r.loss)):
        pred = p["a"] * torch.exp(-p["b"] * part.x[:, 0]) + p["c"]
        assert got == pytest.approx(float((part.w * (pred - part.y) ** 2).sum() / part.w.sum()), rel=1e-10)
    assert r.data["weights"]["sum"] == pytest.approx(float(train.w.sum()), rel=1e-12)


def test_scaling_whitens_the_weighted_problem():
    # Weights spanning 1e4 and a badly placed x: plain sgd on the scaled parameters reaches WLS only if the map
    # whitens the weighted Hessian (2 JᵀWJ/Σw), not the unweighted one.
    rng = np.random.default_rng(8)
    x = np.linspace(10.0, 20.0, 100)
    s = np.where(x < 12, 0.01, 1.0)
    frame = pd.DataFrame({"x": x, "y": 0.5 * x + 3 + rng.normal(0, s), "err": s})
    wls = _wls(frame, 1 / s**2).params
    r = gradfit.fit(
        "a*x + b", frame, y="y", sigma="err", optimizer="sgd", lr=0.5, steps=60, scale=True, dtype="float64"
    )
    assert r.diagnostics["scaling"]["kind"] == "whitened"
    assert r.diagnostics["scaling"]["condition_after"] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose([r.flat_params["b"], r.flat_params["a"]], wls, rtol=1e-7)


def test_lm_in_chunks_equals_lm_in_one_pass():
    frame, pr = _nist("eckerle4")
    common = dict(y="y", sigma="err", optimizer="lm", dtype="float64", init=pr.init(1))
    one = gradfit.fit(pr.formula, frame, **common)
    chunked = gradfit.fit(pr.formula, frame, chunk_size=4, **common)
    np.testing.assert_allclose(list(chunked.flat_params.values()), list(one.flat_params.values()), rtol=1e-9)
    assert chunked.loss == pytest.approx(one.loss, rel=1e-9)


def test_a_checkpoint_remembers_the_weights(tmp_path):
    frame = _decay(n=120).assign(w=lambda d: 1 / d["err"] ** 2, v=1.0)
    common = dict(
        y="y", x="x", optimizer="adam", lr=0.05, batch_size=16, epochs=4, seed=3, init={"a": 1.0, "b": 0.5, "c": 0.0}
    )
    full = gradfit.fit("a*exp(-b*x) + c", frame, weights="w", **common)
    gradfit.fit(
        "a*exp(-b*x) + c", frame, weights="w", checkpoint_every=5, checkpoint_dir=tmp_path, **{**common, "epochs": 2}
    )
    with pytest.raises(ConfigError, match="data 'fingerprint'"):
        gradfit.fit("a*exp(-b*x) + c", frame, weights="v", resume=tmp_path, **common)
    with pytest.raises(ConfigError, match="data 'weights'"):
        gradfit.fit("a*exp(-b*x) + c", frame, resume=tmp_path, **common)
    resumed = gradfit.fit("a*exp(-b*x) + c", frame, weights="w", resume=tmp_path, **common)
    assert resumed.diagnostics["resumed_at_step"] == 16
    for name in full.params:
        assert torch.equal(resumed.params[name], full.params[name])


def test_refusals_name_the_problem():
    frame = _decay()
    with pytest.raises(ConfigError, match="'mae' loss is not a sum of squares"):
        gradfit.fit("a*exp(-b*x) + c", frame, y="y", sigma="err", loss="mae", optimizer="lbfgs")
    with pytest.raises(ConfigError, match="cannot be weighted row by row"):
        gradfit.fit(
            "a*exp(-b*x) + c",
            frame,
            y="y",
            x="x",
            weights="err",
            optimizer="lbfgs",
            loss=lambda p, t: ((p - t) ** 2).mean(),
        )
    with pytest.raises(gradfit.errors.DataError, match="did you mean|Did you mean 'err'"):
        gradfit.fit("a*exp(-b*x) + c", frame, y="y", sigma="eer", optimizer="lbfgs")


def test_result_json_round_trips_the_weighting():
    r = gradfit.fit("a*exp(-b*x) + c", _decay(), y="y", sigma="err", absolute_sigma=True, optimizer="lm")
    back = gradfit.FitResult.from_json(r.to_json())
    assert back.data["weights"] == r.data["weights"] and back.data["weights"]["absolute_sigma"] is True
    assert r.report["data"]["weights"]["column"] == "err"
    assert "weighted           1/sigma² (sigma: column 'err', absolute sigma)" in gradfit.analysis.report.render_text(
        r.report
    )
    plain = gradfit.fit("a*exp(-b*x) + c", _decay(), y="y", x="x", optimizer="lm")
    assert plain.data["weights"] is None and "chisqr" not in plain.report["statistics"]


def test_a_formula_may_read_its_sigma_column_a_zoo_model_does_not():
    frame = _line().assign(z=lambda d: d["x"] ** 2)
    r = gradfit.fit("a*x + b*err + c", frame, y="y", sigma="err", optimizer="lm", dtype="float64")
    assert r.data["x"] == ["x", "err"]  # a formula names its inputs itself
    z = gradfit.fit("linear", frame, y="y", weights="err", optimizer="lm", dtype="float64")
    assert z.data["x"] == ["x", "z"]  # every column but the target and the weights


def test_a_split_that_leaves_no_weighted_training_row_is_refused():
    frame = _line(n=10).assign(w=[0.0] * 9 + [1.0])
    with pytest.raises(gradfit.errors.DataError, match="Every training row has weight 0"):
        gradfit.fit("linear", frame, x="x", y="y", weights="w", optimizer="lbfgs", val_split=0.5, seed=4)
