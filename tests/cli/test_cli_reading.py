"""The reading flags and --param on ``gradfit fit``, ``lr-find`` and ``race``: what they do equals the library's answer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.experiments.lr_finder import find_lr

runner = CliRunner()
DAYS = np.array([0.0, 1.0, 3.0, 10.0, 31.0, 45.0])
MASS = np.array([1234.5, 980.25, 1500.0, 2100.75, 1800.5, 990.0])
PRICE = 0.02 * MASS + 0.5 * DAYS + 3 + np.array([0.1, -0.2, 0.05, 0.0, -0.1, 0.15])
DATES = pd.Timestamp("2021-01-15") + pd.to_timedelta(DAYS, unit="D")


def _euro(value: float) -> str:
    """1234.5 -> '1.234,5': how a German spreadsheet saves it."""
    whole, frac = f"{value:.2f}".split(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    return f"{grouped},{frac}"


@pytest.fixture
def european(tmp_path):
    lines = ["Datum;Körper Masse;Preis (EUR)"]
    lines += [f"{d:%d.%m.%Y};{_euro(m)};{_euro(p)}" for d, m, p in zip(DATES, MASS, PRICE)]
    path = tmp_path / "preise.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


def invoke(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


MODEL = "a*`Körper Masse` + b*Datum + c"
LSQ = ("--optimizer", "lm", "--steps", 100)


def test_a_european_latin1_file_with_dates_and_a_spaced_column_in_the_formula(european, tmp_path):
    out = tmp_path / "run"
    res = invoke(
        "fit",
        european,
        "--y",
        "Preis (EUR)",
        "--model",
        MODEL,
        "--encoding",
        "latin-1",
        "--dates",
        "Datum",
        *LSQ,
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    d = json.loads((out / "result.json").read_text())
    written = [[float(f"{v:.2f}") for v in values] for values in (MASS, PRICE)]  # the numbers as the file has them
    X = np.column_stack([written[0], DAYS, np.ones(len(DAYS))])
    np.testing.assert_allclose(
        [d["params"][k] for k in "abc"], np.linalg.lstsq(X, written[1], rcond=None)[0], rtol=1e-6
    )
    assert d["data"]["read"] == {
        "sep": ";",
        "decimal": ",",
        "thousands": ".",
        "encoding": "latin-1",
        "header": True,
        "dates": {"Datum": {"dayfirst": True, "unit": "days", "origin": "2021-01-15"}},
    }
    assert d["data"]["x"] == ["Körper Masse", "Datum"]
    for text in (
        "note: read as ';'-separated with decimal commas and '.' between thousands (detected",
        "note: column 'Datum' (dates DD.MM.YYYY) converted to days since 2021-01-15",
    ):
        assert text in res.stdout
    # The run is redrawn from its file, read the same way.
    res = invoke("plot", out, "--kind", "fit")
    assert res.exit_code == 0, res.output
    assert (out / "fit.png").stat().st_size > 0


def test_no_header_and_param(tmp_path):
    path = tmp_path / "raw.csv"
    x = np.linspace(0, 1, 9)
    pd.DataFrame({"x": x, "y": 2 * x + 1}).to_csv(path, header=False, index=False)
    out = tmp_path / "run"
    res = invoke("fit", path, "--no-header", "--y", "c2", "--model", "a*c1 + c11", "--param", "c11", *LSQ, "--out", out)
    assert res.exit_code == 0, res.output
    d = json.loads((out / "result.json").read_text())
    assert d["params"] == pytest.approx({"a": 2.0, "c11": 1.0}) and d["data"]["x"] == ["c1"]
    res = invoke("fit", path, "--no-header", "--y", "c2", "--model", "a*c1 + c11", *LSQ, "--out", tmp_path / "no")
    assert res.exit_code == 2 and "Did you mean 'c1'?" in res.stderr and "--param c11" in res.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sep", "|"], r"the separator '\|' \(--sep\) splits nothing: .*it looks ';'-separated: use --sep ';'"),
        (["--dates", "Preis (EUR)"], r"column 'Preis \(EUR\)': '[\d,]+' at line 2 is not a date gradfit can read"),
        (
            ["--dates", "Datum", "--monthfirst"],
            r"column 'Datum': 5 values are not dates in the form MM\.DD\.YYYY \(the "
            r"first at line 2: '15\.01\.2021'\)\. Fix them, or leave 'Datum' out",
        ),
        (["--decimal", ";"], r"decimal mark \(decimal, --decimal\) must be '\.' or ','"),
        (["--date-unit", "fortnights", "--dates", "Datum"], r"date unit of column 'Datum' must be one of auto"),
    ],
)
def test_bad_reading_options_exit_2_and_write_nothing(european, tmp_path, args, message):
    out = tmp_path / "out"
    res = invoke("fit", european, "--y", "Preis (EUR)", "--model", MODEL, "--encoding", "latin-1", *args, "--out", out)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("Error: ") and "Traceback" not in res.output
    import re

    assert re.search(message, res.stderr), res.stderr
    assert not out.exists()


def test_lr_find_and_race_read_the_same_way(european, tmp_path):
    read = {"encoding": "latin-1", "dates": ["Datum"]}
    flags = ["--encoding", "latin-1", "--dates", "Datum"]
    res = invoke(
        "lr-find",
        european,
        "--y",
        "Preis (EUR)",
        "--model",
        "linear",
        "--x",
        "Körper Masse",
        *flags,
        "--steps",
        30,
        "--out",
        tmp_path / "lr",
    )
    assert res.exit_code == 0, res.output
    expected = find_lr("linear", european, y="Preis (EUR)", x="Körper Masse", read=read, steps=30)
    assert json.loads((tmp_path / "lr" / "lr_find.json").read_text())["suggestion"] == expected.suggestion
    res = invoke(
        "race",
        european,
        "--y",
        "Preis (EUR)",
        "--model",
        "a*Datum + b",
        *flags,
        "--optimizers",
        "adam:0.5,lbfgs",
        "--steps",
        40,
        "--out",
        tmp_path / "race",
    )
    assert res.exit_code == 0, res.output
    direct = gradfit.fit("a*Datum + b", european, y="Preis (EUR)", read=read, optimizer="lbfgs", steps=40)
    assert f"{direct.loss:.6g}" in res.stdout and (tmp_path / "race" / "race.png").exists()
