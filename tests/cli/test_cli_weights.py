"""``gradfit fit --sigma / --absolute-sigma / --weights``: curve_fit's answers, the report, and clean refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()
MODEL = ["--y", "y", "--model", "a*exp(-b*x) + c", "--optimizer", "lm", "--init", "a=1,b=1,c=0"]


def _f(x, a, b, c):
    return a * np.exp(-b * x) + c


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 4.0, 40)
    s = 0.2 * (0.05 + rng.random(40))
    return pd.DataFrame({"x": x, "y": _f(x, 2.0, 0.8, 0.3) + rng.normal(0, s), "err": s, "w": 1 / s**2})


@pytest.fixture
def csv(tmp_path, frame):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    return path


def _oracle(frame, absolute):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curve_fit(
            _f,
            frame["x"],
            frame["y"],
            p0=(1.0, 1.0, 0.0),
            sigma=frame["err"],
            absolute_sigma=absolute,
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
        )


@pytest.mark.parametrize("absolute", [False, True])
def test_sigma_column_gives_curve_fits_answer(tmp_path, csv, frame, absolute):
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["fit", str(csv), *MODEL, "--sigma", "err", "--out", str(out)] + (["--absolute-sigma"] if absolute else [])
    )
    assert res.exit_code == 0, res.output
    d = json.loads((out / "result.json").read_text())
    popt, pcov = _oracle(frame, absolute)
    np.testing.assert_allclose([d["params"][k] for k in "abc"], popt, rtol=1e-6)
    np.testing.assert_allclose(d["uncertainty"]["stderr"], np.sqrt(np.diag(pcov)), rtol=1e-4)
    assert d["data"]["weights"]["column"] == "err" and d["data"]["weights"]["absolute_sigma"] is absolute
    assert d["data"]["x"] == ["x"] and d["report"]["data"]["weights"]["kind"] == "sigma"
    assert "target y; sigma err" in res.stdout and "chi-square" in res.stdout


def test_weights_column_equals_sigma(tmp_path, csv):
    runs = {}
    for flag, col in (("--sigma", "err"), ("--weights", "w")):
        out = tmp_path / flag.strip("-")
        res = runner.invoke(app, ["fit", str(csv), *MODEL, "--x", "x", flag, col, "--out", str(out), "-q"])
        assert res.exit_code == 0, res.output
        runs[flag] = json.loads((out / "result.json").read_text())
    np.testing.assert_allclose(
        list(runs["--weights"]["params"].values()), list(runs["--sigma"]["params"].values()), rtol=1e-10
    )
    assert runs["--weights"]["data"]["weights"]["kind"] == "weights"


def test_drop_nan_drops_the_rows_with_a_missing_sigma(tmp_path, frame):
    path = tmp_path / "gaps.csv"
    frame.assign(err=frame["err"].where(frame.index != 5)).to_csv(path, index=False)
    out = tmp_path / "run"
    res = runner.invoke(app, ["fit", str(path), *MODEL, "--sigma", "err", "--drop-nan", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "dropped 1 row with missing values (line 7)" in res.stdout
    popt, _ = _oracle(frame.drop(index=5), False)
    np.testing.assert_allclose(list(json.loads((out / "result.json").read_text())["params"].values()), popt, rtol=1e-6)
    steps = runner.invoke(app, ["steps", str(out), "--rows", "3"])  # a later re-read finds the same rows and weights
    assert steps.exit_code == 0, steps.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--sigma", "er"], "Did you mean 'err'?"),
        (["--sigma", "err", "--weights", "w"], "not both"),
        (["--weights", "w", "--absolute-sigma"], "needs sigma"),
        (["--sigma", "err", "--loss", "mae"], "not a sum of squares"),
        (["--sigma", "x", "--x", "x"], "sigma value(s) <= 0"),
        (["--weights", "neg"], "negative weight(s)"),
    ],
)
def test_bad_weights_exit_2_and_write_nothing(tmp_path, frame, args, fragment):
    path = tmp_path / "d.csv"
    frame.assign(neg=-frame["w"]).to_csv(path, index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["fit", str(path), "--y", "y", "--model", "a*exp(-b*x) + c", *args, "--out", str(out)])
    assert res.exit_code == 2, (res.output, res.exception)
    assert fragment in res.stderr and "Traceback" not in res.output
    assert not out.exists()


def test_help_lists_the_options():
    res = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert all(flag in res.stdout for flag in ("--sigma", "--absolute-sigma", "--weights"))
