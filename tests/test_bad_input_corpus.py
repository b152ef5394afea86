"""The bad-input corpus: every kind of broken data gets its own clear message, from the library and the CLI.

The files are made here, in a temporary folder, from the table ``CORPUS`` (name -> contents, fit
options, the message expected). Each message must say what is wrong and where (file, column, line)
and is checked with ``match=``: through :func:`gradfit.fit` (a ``DataError``) and through
``gradfit fit`` (exit code 2, the message on stderr, no traceback, no output folder).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.errors import DataError

runner = CliRunner()
OK = "x,y\n1,2\n2,4.1\n3,5.9\n4,8.2\n"


def _truncated_parquet(path):
    pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0)}).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name -> (file name, contents (str, bytes or a writer), fit options, the expected message as a regex)
CORPUS = {
    "empty file": ("empty.csv", "", {}, r"empty\.csv'.*the file is empty \(0 bytes\)"),
    "header only": ("header.csv", "x,y\n", {}, r"header\.csv' has columns \(x, y\) but no data rows"),
    "missing y column": (
        "ok.csv",
        OK,
        {"y": "v"},
        r"ok\.csv: target \(y\) column 'v' not found\. Available columns: x, y",
    ),
    "unknown x column": (
        "ok.csv",
        OK,
        {"x": "z"},
        r"ok\.csv: input \(x\) column 'z' not found\. Available columns: x, y",
    ),
    "text in a number column": (
        "text.csv",
        "x,y\n1,2\n2,abc\n3,4\n",
        {},
        r"text\.csv, column 'y': text in a number column \(1 value, the first at line 3: 'abc'\)",
    ),
    "NaN values": (
        "nan.csv",
        "x,y\n1,2\n2,\n3,4\n4,nan\n5,6\n",
        {},
        r"nan\.csv, column 'y': 2 missing values \(NaN or empty\) at lines 3, 5\. .*drop_nan=True \(--drop-nan",
    ),
    "inf values": (
        "inf.csv",
        "x,y\n1,2\n2,inf\n3,-inf\n4,5\n",
        {},
        r"inf\.csv, column 'y': 2 values infinite \(inf or -inf\) at lines 3, 4\. Replace or remove them",
    ),
    "ragged rows (too many)": (
        "ragged.csv",
        "x,y\n1,2\n2,3,4\n3,4\n",
        {},
        r"ragged\.csv' line 3 has 3 fields but the header has 2\. Fix that row",
    ),
    "ragged rows (too few)": (
        "short.csv",
        "x,y,z\n1,2,3\n2,3\n3,4,5\n",
        {},
        r"short\.csv' line 3 has 2 fields but the header has 3\. .*missing value",
    ),
    "wrong delimiter": (
        "semi.csv",
        "x;y\n1;2\n2;3\n3;5\n",
        {"read": {"sep": ","}},
        r"semi\.csv': the separator comma \(--sep\) splits nothing: no line of the first 4 holds it "
        r"\(the first line is 'x;y'\); it looks ';'-separated: use --sep ';'",
    ),
    "dates that do not parse": (
        "dates.csv",
        "when,y\n2020-01-01,2\n2020-01-02,3\n2020-02-30,4\n",
        {"x": "when", "read": {"dates": ["when"]}},
        r"dates\.csv', column 'when': 1 value is not a date in the form YYYY-MM-DD "
        r"\[HH:MM\[:SS\]\] \(the first at line 4: '2020-02-30'\)\. Fix it",
    ),
    "ambiguous day order": (
        "days.csv",
        "when,y\n01/02/2020,2\n03/04/2020,3\n05/06/2020,4\n",
        {"x": "when", "read": {"dates": ["when"]}},
        r"days\.csv', column 'when': every date could be day-first or month-first.*--dayfirst or "
        r"--monthfirst",
    ),
    "latin-1 read as UTF-8": (
        "latin.csv",
        "x,y,note\n1,2,a\n2,3,b\n3,5,c\n4,7,caf\xe9\n".encode("latin-1"),
        {"x": "x"},
        r"latin\.csv' is not valid UTF-8: byte 0xe9 .*\(line 5\).*--encoding latin-1",
    ),
    "truncated Parquet": (
        "cut.parquet",
        _truncated_parquet,
        {},
        r"Cannot read '.*cut\.parquet' as Parquet: .*truncated or corrupt; export it again",
    ),
    "binary CSV": ("blob.csv", bytes(range(256)) * 8, {}, r"blob\.csv' looks like a binary file \(it has NUL bytes"),
    "Parquet named .csv": (
        "pq.csv",
        lambda p: pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}).to_parquet(p),
        {},
        r"pq\.csv' is a Parquet file, not text\. Rename it to end in \.parquet",
    ),
    "one row": ("one.csv", "x,y\n1,2\n", {}, r"one\.csv: 1 row, but at least 2 are needed"),
    "a million-character text field": (
        "long.csv",
        "x,y\n1,2\n3," + "a" * 1_000_000 + "\n4,5\n",
        {},
        (
            r"long\.csv, column 'y': text in a number column \(1 value, the first at line "
            r"3: 'a{40}\.\.\.'\)"
        ),
    ),
    "a million-digit number": (
        "digits.csv",
        "x,y\n1,2\n3," + "9" * 1_000_000 + "\n4,5\n",
        {},
        (
            r"digits\.csv, column 'y': 1 number too large for float64 \(the first at line 3: "
            r"'9{40}\.\.\.', 1,000,000 characters\)"
        ),
    ),
    "non-UTF-8 bytes": (
        "latin1.csv",
        "x,name,y\n1,caf\xe9,2\n2,th\xe9,3\n".encode("latin-1"),
        {"x": "x"},
        r"latin1\.csv' is not valid UTF-8: byte 0xe9 at offset 14 \(line 2\), perhaps 'é'",
    ),
}


def _make(folder, name):
    file, contents, options, message = CORPUS[name]
    path = folder / file
    if callable(contents):
        contents(path)
    elif isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        path.write_text(contents, encoding="utf-8")
    return path, {"y": "y", **options}, message


@pytest.mark.parametrize("name", list(CORPUS))
def test_library_refuses_with_a_clear_message(tmp_path, name):
    path, options, message = _make(tmp_path, name)
    with pytest.raises(DataError, match=message) as info:
        gradfit.fit("linear", path, steps=3, **options)
    assert len(str(info.value)) < 1000  # a million-character field is not echoed whole


@pytest.mark.parametrize("name", list(CORPUS))
def test_cli_exits_2_with_the_message_and_writes_nothing(tmp_path, name):
    path, options, message = _make(tmp_path, name)
    out = tmp_path / "out"
    args = ["fit", str(path), "--y", options["y"], "--model", "linear", "--steps", "3", "--out", str(out)]
    if "x" in options:
        args += ["--x", options["x"]]
    for key, value in options.get("read", {}).items():  # the library's read= as the CLI's flags
        args += [f"--{key}", ",".join(value) if isinstance(value, list) else value]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert re.search(message, res.stderr), res.stderr
    assert res.stderr.startswith("Error: ")
    assert "Traceback" not in res.output and res.stdout == ""
    assert not out.exists()


# -- arrays: mismatched lengths -------------------------------------------------------------


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        (
            (np.arange(5.0), np.arange(4.0)),
            {},
            r"\(X, y\) tuple: columns have different lengths \('x0' has 5, 'y' has 4 rows\)",
        ),
        (
            {"x": np.arange(5.0), "y": np.arange(4.0)},
            {"y": "y"},
            r"dict: columns have different lengths \('x' has 5, 'y' has 4",
        ),
        (
            np.arange(6.0)[:, None],
            {"x": ["x0"], "y": np.arange(3.0)},
            r"array: columns have different lengths \('x0' has 6, 'y' has 3 rows\)",
        ),
    ],
)
def test_mismatched_lengths_are_refused(data, kwargs, message):
    with pytest.raises(DataError, match=message):
        gradfit.fit("linear", data, steps=3, **kwargs)


@pytest.mark.parametrize("X", [np.arange(6.0), np.arange(6.0)[:, None]], ids=["1-D", "2-D"])
def test_array_and_target_array_without_x_names(X):
    with pytest.raises(DataError, match=r"array: columns have different lengths \('x0?' has 6, 'y' has 3 rows\)"):
        gradfit.fit("linear", X, y=np.arange(3.0), steps=3)
    assert gradfit.fit("linear", X, y=2 * np.arange(6.0), steps=3).data["n"] == 6


# -- NaN rows: refused by default, dropped and counted on request ---------------------------


def test_drop_nan_drops_the_rows_and_reports_the_count(tmp_path):
    path, options, _ = _make(tmp_path, "NaN values")
    result = gradfit.fit("linear", path, steps=3, drop_nan=True, **options)
    assert result.data["notes"] == ["dropped 2 rows with missing values (lines 3, 5)"]
    assert result.data["n"] == 3
    with pytest.raises(DataError, match=r"2 values infinite"):  # drop_nan drops NaN, never inf
        gradfit.fit("linear", _make(tmp_path, "inf values")[0], y="y", steps=3, drop_nan=True)


def test_cli_drop_nan_fits_the_other_rows(tmp_path):
    path, _, _ = _make(tmp_path, "NaN values")
    res = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--y",
            "y",
            "--model",
            "linear",
            "--steps",
            "3",
            "--drop-nan",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "(3 rows;" in res.stdout


def test_cli_drop_nan_prints_the_count(tmp_path):
    path, _, _ = _make(tmp_path, "NaN values")
    res = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--y",
            "y",
            "--model",
            "linear",
            "--steps",
            "3",
            "--drop-nan",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert "dropped 2 rows with missing values (lines 3, 5)" in res.stdout + res.stderr


# -- constant x: the fit runs, the report says what the data cannot tell -------------------


CONSTANT = {"x": np.full(12, 2.0), "y": np.linspace(0.0, 1.0, 12)}


@pytest.mark.parametrize("optimizer", ["sgd", "lm"])
def test_constant_x_linear_fit_says_the_slope_is_not_identifiable(optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gradfit.fit("linear", CONSTANT, y="y", steps=200, optimizer=optimizer)
    assert all(math.isfinite(v) for v in result.flat_params.values())
    a0, a1 = result.flat_params["a[0]"], result.flat_params["a[1]"]
    assert 2 * a0 + a1 == pytest.approx(0.5, abs=0.02)  # only the combination at x=2 is fitted
    assert result.uncertainty["ok"] is False
    assert re.search(r"a\[0\] and a\[1\] are not separately identifiable", result.uncertainty["reason"])
    assert all(s is None for s in result.uncertainty["stderr"])  # no number pretends to be an error bar
    assert any("not separately identifiable" in w for w in result.report["warnings"])


@pytest.mark.parametrize("model", ["exponential", "sigmoid", "gaussian", "sine", "power", "poly3"])
def test_constant_x_zoo_models_fit_and_say_what_is_not_determined(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gradfit.fit(model, CONSTANT, y="y", steps=30)
    assert all(math.isfinite(v) for v in result.flat_params.values()) and math.isfinite(result.loss)
    assert result.uncertainty["ok"] is False
    assert re.search(r"not separately identifiable|has no effect on the loss", result.uncertainty["reason"])


def test_cli_constant_x_warns_that_the_slope_is_not_identifiable(tmp_path):
    path = tmp_path / "const.csv"
    pd.DataFrame(CONSTANT).to_csv(path, index=False)
    res = runner.invoke(
        app, ["fit", str(path), "--y", "y", "--model", "linear", "--steps", "20", "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"a\[0\] and a\[1\] are not separately identifiable", res.stdout)
