"""Grouped fits by gradient descent (``group=`` with sgd, momentum, nesterov, adam): each group's result is the one
``gradfit.fit`` gives on that group's rows alone (float64), a group that diverges leaves the others bit-identical,
and the standard errors at the optimum are Levenberg-Marquardt's."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.errors import ConfigError

LINE = "a*x + b"
DECAY = "a*exp(-b*x)"


def table(sizes=(12, 15, 18, 21), seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate(sizes):
        x = np.linspace(0.0, 2.0, n)
        y = (1.0 + g) * np.exp(-(0.5 + 0.2 * g) * x) + 0.02 * rng.standard_normal(n)
        parts.append(pd.DataFrame({"g": g, "x": x, "y": y, "w": rng.uniform(0.5, 2.0, n)}))
    return pd.concat(parts, ignore_index=True)


def one_by_one(model, frame, **options):
    """gradfit.fit on each group's rows alone, in float64."""
    out = {}
    for key, rows in frame.groupby("g"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[key] = gradfit.fit(model, rows.drop(columns="g"), y="y", dtype="float64", **options)
    return out


@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="sgd", lr=0.05, steps=200),
        dict(optimizer="momentum", lr=0.02, steps=150),
        dict(optimizer="nesterov", lr=0.02, momentum=0.8, steps=150),
        dict(optimizer="adam", lr=0.05, steps=150),
        dict(optimizer="adam", steps=50),  # torch's default learning rate, as one fit keeps it
        dict(optimizer="sgd", lr=0.05, steps=2000, tol=1e-9),  # each group stops at its own step
        dict(lr=0.05, steps=100),  # a learning rate alone means sgd, as for one fit
        dict(optimizer="sgd", lr=0.05, steps=200, weights="w"),
    ],
)
def test_each_group_is_its_own_fit(options):
    frame = table()
    init = {"a": 1.0, "b": 0.3}
    grouped = gradfit.fit(DECAY, frame, y="y", group="g", init=init, **options).to_pandas()
    alone = one_by_one(DECAY, frame, init=init, **options)
    for key, fit in alone.items():
        row = grouped[grouped.g == key].iloc[0]
        assert row["a"] == pytest.approx(fit.flat_params["a"], rel=1e-10, abs=1e-12)
        assert row["b"] == pytest.approx(fit.flat_params["b"], rel=1e-10, abs=1e-12)
        assert row["loss"] == pytest.approx(fit.loss, rel=1e-10)
        assert row["steps"] == fit.steps
        expected = "converged" if fit.stop_reason == "converged" else "max_iterations"
        assert row["status"] == expected, (row["message"], fit.stop_reason)
    if options.get("tol"):
        assert grouped.steps.nunique() > 1  # the groups stopped at steps of their own


def test_a_diverging_group_stops_alone_and_leaves_the_others_bit_identical():
    frame = table()
    steep = table(sizes=(10,), seed=9).assign(g=99, x=lambda f: f.x * 30)  # curvature 900x: lr 0.05 blows up
    options = dict(optimizer="sgd", lr=0.05, steps=200, init={"a": 1.0, "b": 0.3})
    alone = gradfit.fit(LINE, frame, y="y", group="g", **options).to_pandas()
    both = gradfit.fit(LINE, pd.concat([frame, steep]), y="y", group="g", **options).to_pandas()
    bad = both[both.g == 99].iloc[0]
    assert bad["status"] == "diverged" and "stopped being finite" in bad["message"]
    fit = one_by_one(LINE, steep, **options)[99]
    assert fit.stop_reason == "diverged"
    assert bad["steps"] == fit.steps
    assert bad["a"] == pytest.approx(fit.flat_params["a"], rel=1e-10)  # the last finite step's parameters
    rest = both[both.g != 99].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, alone, check_exact=True)


def test_standard_errors_at_the_optimum_are_levenberg_marquardts():
    frame = table()
    descent = gradfit.fit(LINE, frame, y="y", group="g", optimizer="adam", lr=0.05, steps=4000, tol=1e-15)
    lm = gradfit.fit(LINE, frame, y="y", group="g", optimizer_options={"ftol": 1e-15, "xtol": 1e-15})
    np.testing.assert_allclose(descent.params, lm.params, rtol=1e-6)
    np.testing.assert_allclose(descent.stderr, lm.stderr, rtol=1e-5)


def test_fixed_parameters_stay_at_their_start():
    frame = table()
    options = dict(optimizer="sgd", lr=0.05, steps=100, init={"a": 1.5, "b": 0.3}, fix="a")
    grouped = gradfit.fit(DECAY, frame, y="y", group="g", **options).to_pandas()
    assert (grouped["a"] == 1.5).all()
    alone = one_by_one(DECAY, frame, **options)
    for key, fit in alone.items():
        assert grouped[grouped.g == key].iloc[0]["b"] == pytest.approx(fit.flat_params["b"], rel=1e-10)


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(optimizer="sgd"), "needs a learning rate"),
        (dict(optimizer="lbfgs", lr=0.1), "gradient descent .* got 'lbfgs'"),
        (dict(optimizer="sgd", lr=0.1, bounds={"a": (0, 2)}), "does not take bounds yet"),
        (dict(optimizer="adam", optimizer_options={"betas": (0.8, 0.9)}), "takes no optimizer_options"),
        (dict(optimizer="sgd", lr=0.1, batch_size=4), "does not take 'batch_size'"),
    ],
)
def test_what_grouped_descent_cannot_take_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        gradfit.fit(LINE, table(), y="y", group="g", **options)


def test_the_cli_fits_groups_by_descent(tmp_path):
    data = tmp_path / "groups.csv"
    table().to_csv(data, index=False)
    out = tmp_path / "out"
    got = CliRunner().invoke(
        app,
        ["fit", str(data), "--model", LINE, "--y", "y", "--x", "x", "--group", "g", "--optimizer", "sgd"]
        + ["--lr", "0.05", "--steps", "5000", "--tol", "1e-10", "--out", str(out)],
    )
    assert got.exit_code == 0, got.output
    written = pd.read_csv(out / "groups.csv")
    options = dict(optimizer="sgd", lr=0.05, steps=5000, tol=1e-10)
    expected = gradfit.fit(LINE, table(), y="y", x="x", group="g", **options).to_pandas()
    np.testing.assert_allclose(written[["a", "b"]].to_numpy(), expected[["a", "b"]].to_numpy(), rtol=1e-12)
    assert set(written.status) == {"converged"}
    np.testing.assert_array_equal(written.steps, expected.steps)


def test_the_cli_exits_1_when_no_group_converged_within_its_budget(tmp_path):
    data = tmp_path / "groups.csv"
    table().to_csv(data, index=False)
    got = CliRunner().invoke(
        app,
        ["fit", str(data), "--model", LINE, "--y", "y", "--x", "x", "--group", "g", "--optimizer", "sgd"]
        + ["--lr", "0.05", "--steps", "20", "--out", str(tmp_path / "out")],
    )
    assert got.exit_code == 1, got.output
    assert "4 of 4 groups did not converge (4 max_iterations)" in " ".join(got.output.split())
