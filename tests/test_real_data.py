"""The default ``gradfit fit`` on real data nobody here wrote, against the textbook answers.

Data come from installed packages (scikit-learn's diabetes, statsmodels' Longley, Mauna Loa CO2 and
sunspots) and, for mtcars (R's ``datasets``, from the 1974 Motor Trend magazine), from the 32 rows
below. The oracles are closed-form least squares (torch.linalg.lstsq), scikit-learn's
LinearRegression and scipy's curve_fit. The command is the one a new user types: no --optimizer,
no --dtype. The default must reach the optimum and exit 0; anything else must exit 1 and say why.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import curve_fit
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.errors import GradfitWarning

runner = CliRunner()

MTCARS = """mpg,hp,wt
21.0,110,2.620
21.0,110,2.875
22.8,93,2.320
21.4,110,3.215
18.7,175,3.440
18.1,105,3.460
14.3,245,3.570
24.4,62,3.190
22.8,95,3.150
19.2,123,3.440
17.8,123,3.440
16.4,180,4.070
17.3,180,3.730
15.2,180,3.780
10.4,205,5.250
10.4,215,5.424
14.7,230,5.345
32.4,66,2.200
30.4,52,1.615
33.9,65,1.835
21.5,97,2.465
15.5,150,3.520
15.2,150,3.435
13.3,245,3.840
19.2,175,3.845
27.3,66,1.935
26.0,91,2.140
30.4,113,1.513
15.8,264,3.170
19.7,175,2.770
15.0,335,3.570
21.4,109,2.780
"""


def fit_cli(tmp_path: Path, frame: pd.DataFrame, *args) -> tuple[int, dict | None, str]:
    """Run ``gradfit fit`` on ``frame`` (as a CSV); returns the exit code, result.json and stderr."""
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["fit", str(data), *map(str, args), "--out", str(out), "--quiet"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else None
    return res.exit_code, result, res.stderr


def ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with an intercept column last (the zoo linear's order): coefficients and the mse."""
    A = torch.as_tensor(np.column_stack([X, np.ones(len(y))]), dtype=torch.float64)
    b = torch.as_tensor(y, dtype=torch.float64)
    coef = torch.linalg.lstsq(A, b[:, None], driver="gelsd").solution[:, 0]
    return coef.numpy(), float(((A @ coef - b) ** 2).mean())


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


@pytest.fixture(scope="module")
def longley() -> pd.DataFrame:
    sm = pytest.importorskip("statsmodels.api")
    return sm.datasets.longley.load_pandas().data


@pytest.fixture(scope="module")
def co2() -> pd.DataFrame:
    sm = pytest.importorskip("statsmodels.api")
    frame = sm.datasets.co2.load_pandas().data.dropna()
    return pd.DataFrame({"t": (frame.index - frame.index[0]).days / 365.25, "co2": frame["co2"].to_numpy()})


@pytest.fixture(scope="module")
def mtcars() -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(StringIO(MTCARS))


def test_diabetes_default_equals_ols(tmp_path, diabetes):
    code, result, err = fit_cli(tmp_path, diabetes, "--y", "target", "--model", "linear")
    assert code == 0, err
    X, y = diabetes.drop(columns="target").to_numpy(), diabetes["target"].to_numpy()
    coef, mse = ols(X, y)
    assert result["loss"] == pytest.approx(mse, rel=1e-6)
    from sklearn.linear_model import LinearRegression

    sk = LinearRegression().fit(X, y)
    np.testing.assert_allclose(list(result["params"].values()), [*sk.coef_, sk.intercept_], rtol=1e-6, atol=1e-6)
    assert result["config"]["optimizer"] == "lm" and result["config"]["dtype"] == "float64"
    assert result["diagnostics"]["choice"]["reason"].startswith("least squares")
    assert result["report"]["statistics"]["r2"] == pytest.approx(sk.score(X, y), rel=1e-9)


def test_longley_default_equals_ols(tmp_path, longley):
    code, result, err = fit_cli(tmp_path, longley, "--y", "TOTEMP", "--model", "linear")
    assert code == 0, err
    coef, mse = ols(longley.drop(columns="TOTEMP").to_numpy(), longley["TOTEMP"].to_numpy())
    assert result["loss"] == pytest.approx(mse, rel=1e-6)
    np.testing.assert_allclose(list(result["params"].values()), coef, rtol=1e-6)


def test_co2_trend_and_season_default_equals_lstsq(tmp_path, co2):
    formula = "a + b*t + c*t**2 + s*sin(2*pi*t) + k*cos(2*pi*t)"  # e would be Euler's number
    code, result, err = fit_cli(tmp_path, co2, "--y", "co2", "--model", formula)
    assert code == 0, err
    t = co2["t"].to_numpy()
    design = np.column_stack([t, t**2, np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)])
    coef, mse = ols(design, co2["co2"].to_numpy())
    assert result["loss"] == pytest.approx(mse, rel=1e-6)
    p = result["params"]
    np.testing.assert_allclose([p["b"], p["c"], p["s"], p["k"], p["a"]], coef, rtol=1e-6, atol=1e-9)


def test_cars_exponential_zoo_default_equals_curve_fit(tmp_path, mtcars):
    code, result, err = fit_cli(tmp_path, mtcars, "--y", "mpg", "--x", "hp", "--model", "exponential")
    assert code == 0, err
    x, y = mtcars["hp"].to_numpy(float), mtcars["mpg"].to_numpy(float)
    start = [result["init_params"][k] for k in ("a", "b", "c")]
    ref, _ = curve_fit(lambda x, a, b, c: a * np.exp(b * x) + c, x, y, p0=start, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose([result["params"][k] for k in ("a", "b", "c")], ref, rtol=1e-6)


def test_a_hopeless_start_exits_1_naming_the_start(tmp_path, mtcars):
    """exp(-b*hp) at the default b = 1 is ~1e-48 and below: a plateau. curve_fit stops there too."""
    code, result, err = fit_cli(tmp_path, mtcars, "--y", "mpg", "--model", "a*exp(-b*hp) + c")
    x, y = mtcars["hp"].to_numpy(float), mtcars["mpg"].to_numpy(float)
    ref, _ = curve_fit(
        lambda x, a, b, c: a * np.exp(-b * x) + c, x, y, p0=[1, 0.01, 1], ftol=1e-15, xtol=1e-15, gtol=1e-15
    )
    reached = result is not None and np.allclose([result["params"][k] for k in "abc"], ref, rtol=1e-5)
    if not reached:
        assert code == 1 and result["success"] is False and result["stop_reason"] == "stalled"
        assert "plateau" in err and "no visible effect" in err and "--init b=" in err
        assert "has no effect on the predictions: the data say nothing about it" not in err
        # The start it names does reach curve_fit's optimum.
        suggested = result["diagnostics"]["verdict"]["flat"]["remedy"]
        code, again, err = fit_cli(
            tmp_path,
            mtcars,
            "--y",
            "mpg",
            "--model",
            "a*exp(-b*hp) + c",
            *[f"--init={k}={v}" for k, v in suggested.items()],
        )
        assert code == 0, err
        np.testing.assert_allclose([again["params"][k] for k in "abc"], ref, rtol=1e-5)


def test_sunspots_sine_default_equals_curve_fit_from_its_guess(tmp_path):
    sm = pytest.importorskip("statsmodels.api")
    frame = sm.datasets.sunspots.load_pandas().data
    code, result, err = fit_cli(tmp_path, frame, "--y", "SUNACTIVITY", "--x", "YEAR", "--model", "sine")
    assert code == 0, err
    names = list(result["params"])
    start = [result["init_params"][k] for k in names]
    x, y = frame["YEAR"].to_numpy(float), frame["SUNACTIVITY"].to_numpy(float)
    model = gradfit.fit("sine", frame, x="YEAR", y="SUNACTIVITY", steps=0).model
    with torch.no_grad():

        def f(x, *p):
            params = {k: torch.tensor(v, dtype=torch.float64) for k, v in zip(names, p)}
            return model(params, torch.as_tensor(x, dtype=torch.float64)[:, None]).numpy()

    ref, _ = curve_fit(f, x, y, p0=start)
    assert result["loss"] == pytest.approx(np.mean((f(x, *ref) - y) ** 2), rel=1e-6)


# -- the other optimizers, asked for by name, say so when they do not get there ------------------


def test_sgd_on_diabetes_is_not_converged_and_exits_1(tmp_path, diabetes):
    code, result, err = fit_cli(tmp_path, diabetes, "--y", "target", "--model", "linear", "--optimizer", "sgd")
    assert code == 1 and result["success"] is False and result["converged"] is False
    assert result["stop_reason"] == "max_steps" and "Not converged" in err
    assert "--optimizer lm" in err and "more steps" in err
    # sgd's lr is half the stability limit measured at the start, not a fixed 0.01
    limit = result["diagnostics"]["stability_limit"]
    assert result["config"]["lr"] == pytest.approx(0.5 * limit["lr_limit"], rel=1e-12)


def test_sgd_that_makes_the_loss_worse_exits_1_with_its_own_reason(tmp_path, mtcars):
    code, result, err = fit_cli(
        tmp_path, mtcars, "--y", "mpg", "--x", "hp", "--model", "exponential", "--optimizer", "sgd", "--lr", "0.01"
    )
    assert code == 1 and result["stop_reason"] == "loss_increased" and result["success"] is False
    assert result["loss"] > result["diagnostics"]["start_loss"]
    assert "above its start" in err and "stability limit" in err and "--scale" in err


def test_sgd_divergence_on_badly_scaled_columns_names_the_limit_scale_and_lm(tmp_path, longley):
    code, result, err = fit_cli(
        tmp_path, longley, "--y", "TOTEMP", "--model", "linear", "--optimizer", "sgd", "--lr", "0.01"
    )
    assert code == 1 and result["stop_reason"] == "diverged"
    limit = result["diagnostics"]["stability_limit"]["lr_limit"]
    assert f"{limit:.3g}" in err and "--scale" in err and "--optimizer lm" in err
    assert "far from unit scale" in err and "GNP" in err


def test_lbfgs_in_float32_stalls_and_names_float64(mtcars):
    frame = mtcars[["hp", "mpg"]]
    with pytest.warns(GradfitWarning, match="float64"):
        r = gradfit.fit("exponential", frame, x="hp", y="mpg", optimizer="lbfgs", dtype="float32", steps=300)
    assert r.stop_reason == "stalled" and not r.success and "--dtype float64" in r.message
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradfitWarning)
        r64 = gradfit.fit("exponential", frame, x="hp", y="mpg", optimizer="lbfgs", steps=300)
    assert r64.config["dtype"] == "float64" and r64.success and r64.stop_reason == "converged"
    x, y = frame["hp"].to_numpy(float), frame["mpg"].to_numpy(float)
    ref, _ = curve_fit(
        lambda x, a, b, c: a * np.exp(b * x) + c,
        x,
        y,
        p0=list(r64.init_params.values()),
        ftol=1e-15,
        xtol=1e-15,
        gtol=1e-15,
    )
    np.testing.assert_allclose(list(r64.flat_params.values()), ref, rtol=1e-5)
