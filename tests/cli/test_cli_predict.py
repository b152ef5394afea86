"""``gradfit predict RUN DATA``: CSV on stdout or an atomic --out file; exit 2 and nothing written on bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data.io import read_table
from gradfit.outputs import load_run

runner = CliRunner()


def _fit(out, *args) -> None:
    res = runner.invoke(app, ["fit", *args, "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reg")
    _fit(
        folder / "run",
        "builtin:linear",
        "--y",
        "y",
        "--model",
        "a*x + b",
        "--optimizer",
        "lbfgs",
        "--steps",
        "20",
        "--dtype",
        "float64",
    )
    frame = pd.DataFrame({"id": ["p", "q", "r", "s"], "x": [0.0, 0.25, -1.0, 2.0], "y": [1.0, 2.0, 3.0, 4.0]})
    frame.to_csv(folder / "new.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls")
    _fit(
        folder / "run",
        "builtin:blobs",
        "--y",
        "label",
        "--model",
        "logistic",
        "--loss",
        "cross_entropy",
        "--optimizer",
        "lbfgs",
        "--steps",
        "10",
        "--dtype",
        "float64",
    )
    return folder


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_regression_to_stdout_is_csv_with_the_inputs(regression):
    res = runner.invoke(app, ["predict", str(regression / "run"), str(regression / "new.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(io.StringIO(res.stdout))
    p = load_run(regression / "run").flat_params
    assert list(table.columns) == ["x", "prediction"]
    np.testing.assert_allclose(table["prediction"], p["a"] * table["x"] + p["b"], rtol=1e-12)


def test_classifier_writes_class_and_probabilities_to_a_file(classifier, tmp_path):
    out = tmp_path / "deep" / "pred.csv"
    res = runner.invoke(app, ["predict", str(classifier / "run"), "builtin:blobs", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote 200 rows (x1, x2, class, prob_0, prob_1) to {out}" in res.stdout
    table = pd.read_csv(out)
    result = load_run(classifier / "run")
    data = read_table("builtin:blobs")
    np.testing.assert_array_equal(table["class"], result.predict(data, kind="class"))
    np.testing.assert_allclose(table[["prob_0", "prob_1"]], result.predict_proba(data), rtol=1e-12)
    assert (table["class"] == data["label"]).mean() == result.metrics["train"]["accuracy"]
    assert [p.name for p in out.parent.iterdir()] == ["pred.csv"]  # no temporary file left behind


def test_bce_writes_the_probability_of_class_1(tmp_path):
    _fit(
        tmp_path / "run",
        "builtin:blobs",
        "--y",
        "label",
        "--model",
        "logistic",
        "--loss",
        "bce",
        "--optimizer",
        "lbfgs",
        "--steps",
        "3",
    )
    res = runner.invoke(app, ["predict", str(tmp_path / "run"), "builtin:blobs", "--columns", "all"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(io.StringIO(res.stdout))
    assert list(table.columns) == ["x1", "x2", "label", "class", "prob_1"]
    z = load_run(tmp_path / "run").predict(read_table("builtin:blobs"))
    np.testing.assert_allclose(table["prob_1"], 1 / (1 + np.exp(-z)), rtol=1e-6)
    np.testing.assert_array_equal(table["class"], (z > 0).astype(int))


@pytest.mark.parametrize("name", ["pred.parquet", "pred.tsv", "pred.csv.gz"])
def test_output_format_follows_the_extension(regression, tmp_path, name):
    out = tmp_path / name
    res = runner.invoke(
        app,
        [
            "predict",
            str(regression / "run"),
            str(regression / "new.csv"),
            "--out",
            str(out),
            "--columns",
            "none",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    table = pd.read_parquet(out) if name.endswith("parquet") else pd.read_csv(out, sep="\t" if "tsv" in name else ",")
    assert list(table.columns) == ["prediction"] and len(table) == 4


def test_missing_inputs_give_empty_predictions_and_a_note(regression, tmp_path):
    (tmp_path / "gaps.csv").write_text("x,w\n1,0\n,0\n2,0\n")
    res = runner.invoke(app, ["predict", str(regression / "run"), str(tmp_path / "gaps.csv")])
    assert res.exit_code == 0, res.output
    assert "1 of 3 rows have a missing input" in res.stderr
    assert res.stdout.splitlines()[2] == ","  # the empty input and its empty prediction, in place


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing-column", "lacks the column(s) x that the model reads as inputs (x). Columns found: t, y"),
        ("text", "column 'x': text in a number column"),
        ("no-run", "result.json is missing"),
        ("no-data", "no such file"),
        ("overwrite-data", "is the data file itself"),
        ("overwrite-run", "is a file of the run"),
        ("bad-extension", "must end in .csv, .tsv or .parquet"),
        ("folder", "is a folder"),
        ("bad-columns", "--columns must be one of inputs, all, none"),
        ("clash", "already has the column(s) prediction"),
    ],
)
def test_bad_input_exits_2_naming_it_and_writes_nothing(regression, tmp_path, case, match):
    run, data = str(regression / "run"), str(tmp_path / "data.csv")
    pd.DataFrame({"x": [1.0, 2.0], "prediction": [0.0, 0.0]}).to_csv(data, index=False)
    args = {
        "missing-column": [run, str(tmp_path / "t.csv")],
        "text": [run, str(tmp_path / "text.csv"), "--out", str(tmp_path / "o.csv")],
        "no-run": [str(tmp_path), data],
        "no-data": [run, str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")],
        "overwrite-data": [run, data, "--out", data],
        "overwrite-run": [run, data, "--out", str(regression / "run" / "history.csv")],
        "bad-extension": [run, data, "--out", str(tmp_path / "o.xlsx")],
        "folder": [run, data, "--out", str(tmp_path)],
        "bad-columns": [run, data, "--columns", "some"],
        "clash": [run, data, "--columns", "all", "--out", str(tmp_path / "o.csv")],
    }[case]
    (tmp_path / "t.csv").write_text("t,y\n1,2\n")
    (tmp_path / "text.csv").write_text("x\n1\nabc\n")
    before, run_before = _files(tmp_path), (regression / "run" / "history.csv").read_bytes()
    res = runner.invoke(app, ["predict", *args])
    assert res.exit_code == 2, res.output
    assert match in res.stderr and "Traceback" not in res.output and res.stdout == ""
    assert _files(tmp_path) == before and (regression / "run" / "history.csv").read_bytes() == run_before


def test_a_failed_run_is_refused_unless_allowed(tmp_path):
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizer",
            "sgd",
            "--lr",
            "50",
            "--steps",
            "100",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert res.exit_code == 1
    assert json.loads((tmp_path / "run" / "result.json").read_text())["stop_reason"] == "diverged"
    res = runner.invoke(app, ["predict", str(tmp_path / "run"), "builtin:linear"])
    assert res.exit_code == 2 and "did not succeed (diverged" in res.stderr and "--allow-failed" in res.stderr
    assert res.stdout == ""
    res = runner.invoke(app, ["predict", str(tmp_path / "run"), "builtin:linear", "--allow-failed"])
    assert res.exit_code == 0 and "warning: the fit did not succeed (diverged)" in res.stderr
    assert len(pd.read_csv(io.StringIO(res.stdout))) == 100


def test_a_reader_that_stops_early_ends_it_quietly(regression):
    """`gradfit predict RUN DATA | head -1`: a closed pipe is SIGPIPE's exit 141, not an internal error."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradfit", "predict", str(regression / "run"), "builtin:linear?n=200000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert first == b"x,prediction\n" and err == ""
