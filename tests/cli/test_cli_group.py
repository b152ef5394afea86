"""``gradfit fit DATA --group COL``: groups.csv (and groups.parquet) with curve_fit's answers per group, result.json
with the counts by status, exit 1 only when no group converged, clean refusals (exit 2, nothing written)."""

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
MODEL = ["--y", "y", "--model", "a*exp(-b*x) + c", "--init", "a=1,b=1,c=0", "--tol", "1e-14"]


def _f(x, a, b, c):
    return a * np.exp(-b * x) + c


@pytest.fixture
def frame():
    rng = np.random.default_rng(2)
    parts = []
    for g, n in enumerate([12, 20, 16]):
        x = np.linspace(0, 4, n)
        y = _f(x, 1 + g, 0.5 + 0.3 * g, 0.1 * g) + rng.normal(0, 0.05, n)
        parts.append(pd.DataFrame({"site": f"s{g}", "x": x, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _write(tmp_path, frame, name="d.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_groups_csv_parquet_and_summary(tmp_path, frame):
    data, out = _write(tmp_path, frame), tmp_path / "out"
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "site", "--out", str(out), "--parquet"])
    assert got.exit_code == 0, got.output
    assert "3 groups (3 converged)" in got.output
    table = pd.read_csv(out / "groups.csv")
    assert list(table.site) == ["s0", "s1", "s2"] and list(table.status) == ["converged"] * 3
    pd.testing.assert_frame_equal(pd.read_parquet(out / "groups.parquet"), table, check_dtype=False)
    for _, row in table.iterrows():
        sub = frame[frame.site == row.site]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, cov = curve_fit(_f, sub.x, sub.y, p0=[1, 1, 0], ftol=1e-15, xtol=1e-15, gtol=1e-15)
        np.testing.assert_allclose(row[["a", "b", "c"]].to_numpy(float), p, rtol=1e-6)
        se = row[["a_stderr", "b_stderr", "c_stderr"]].to_numpy(float)
        np.testing.assert_allclose(se, np.sqrt(np.diag(cov)), rtol=1e-6)
    summary = json.loads((out / "result.json").read_text())
    assert summary["counts"] == {"converged": 3} and summary["groups"] == 3 and summary["group"] == "site"


def test_some_groups_failing_exits_0_and_says_where_to_look(tmp_path, frame):
    few = pd.DataFrame({"site": "tiny", "x": [0.0, 1.0], "y": [1.0, 0.5]})
    data, out = _write(tmp_path, pd.concat([frame, few])), tmp_path / "out"
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "site", "--out", str(out)])
    assert got.exit_code == 0, got.output
    assert "1 of 4 groups did not converge (1 too_few_rows)" in got.output and "groups.csv" in got.output
    assert json.loads((out / "result.json").read_text())["counts"] == {"converged": 3, "too_few_rows": 1}


def test_no_group_converging_exits_1(tmp_path):
    frame = pd.DataFrame({"site": ["a", "a", "b", "b"], "x": [0.0, 1.0, 0.0, 1.0], "y": [1.0, 2.0, 3.0, 4.0]})
    data, out = _write(tmp_path, frame), tmp_path / "out"
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "site", "--out", str(out)])
    assert got.exit_code == 1, got.output
    assert "2 of 2 groups did not converge" in got.output
    assert (out / "groups.csv").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--optimizer", "lbfgs"], "'lm' (the default) or gradient descent"),
        (["--optimizer", "sgd"], "needs a learning rate"),
        (["--plot"], "--group does not take --plot"),
        (["--optimizer", "lm", "--lr", "0.1"], "does not take 'lr'"),
    ],
)
def test_refusals_exit_2_and_write_nothing(tmp_path, frame, extra, message):
    data, out = _write(tmp_path, frame), tmp_path / "out"
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "site", "--out", str(out), *extra])
    assert got.exit_code == 2, got.output
    assert message in " ".join(got.output.split())
    assert not (out / "groups.csv").exists()


def test_a_missing_group_column_and_parquet_without_group(tmp_path, frame):
    data = _write(tmp_path, frame)
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "sit", "--out", str(tmp_path / "o")])
    assert got.exit_code == 2 and "did you mean 'site'" in got.output
    got = runner.invoke(app, ["fit", data, *MODEL, "--parquet", "--out", str(tmp_path / "p")])
    assert got.exit_code == 2 and "--parquet writes the groups' table" in " ".join(got.output.split())


@pytest.mark.usefixtures("fallback_handlers")  # a signal the command misses fails the test, not pytest
def test_a_signal_stops_at_once_with_exit_130_and_writes_nothing(tmp_path, frame, monkeypatch):
    import os
    import signal

    import gradfit.train.grouped as grouped

    fit_chunk = grouped._fit_chunk

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as Ctrl-C (SIGINT may be ignored under a backgrounded pytest)
        return fit_chunk(*args, **kwargs)

    monkeypatch.setattr(grouped, "_fit_chunk", interrupted)
    data, out = _write(tmp_path, frame), tmp_path / "out"
    got = runner.invoke(app, ["fit", data, *MODEL, "--group", "site", "--out", str(out)])
    assert got.exit_code == 130, got.output
    assert not out.exists() or not any(out.iterdir())
