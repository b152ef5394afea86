"""Bad input: exit 2, one readable message on stderr, no traceback, nothing written."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "ok.csv").write_text("t,v\n1,2\n2,3\n3,5\n")
    (tmp_path / "text.csv").write_text("t,v\n1,2\n2,abc\n3,4\n")
    (tmp_path / "nan.csv").write_text("t,v\n1,2\n2,\n3,4\n")
    return tmp_path


BASE = ["--y", "v", "--model", "linear"]
CASES = {
    "missing file": (["fit", "{d}/nope.csv", *BASE], "no such file"),
    "missing y column": (["fit", "{d}/ok.csv", "--y", "w", "--model", "linear"], "'w' not found"),
    "text in a number column": (["fit", "{d}/text.csv", *BASE], "text in a number column"),
    "NaN in data": (["fit", "{d}/nan.csv", *BASE], "--drop-nan"),
    "formula syntax error": (["fit", "{d}/ok.csv", "--y", "v", "--model", "a*t**"], "not a valid expression"),
    "formula unknown function": (["fit", "{d}/ok.csv", "--y", "v", "--model", "foo(t)*a"], "unknown function 'foo'"),
    "unknown optimizer": (["fit", "{d}/ok.csv", *BASE, "--optimizer", "sgdd"], "Did you mean 'sgd'?"),
    "lr zero": (["fit", "{d}/ok.csv", *BASE, "--lr", "0"], "The 'lr' parameter must be"),
    "lr negative": (["fit", "{d}/ok.csv", *BASE, "--lr", "-1"], "Got -1.0 instead"),
    "steps and epochs": (["fit", "{d}/ok.csv", *BASE, "--steps", "3", "--epochs", "2"], "not both"),
    "bad init syntax": (["fit", "{d}/ok.csv", *BASE, "--init", "a[0]:1"], "NAME=VALUE"),
    "init not a number": (["fit", "{d}/ok.csv", *BASE, "--init", "a=one"], "must be a finite number"),
    "init unknown parameter": (["fit", "{d}/ok.csv", *BASE, "--init", "z=1"], "'z', which is not a parameter"),
    "fix unknown parameter": (["fit", "{d}/ok.csv", "--y", "v", "--model", "a*t+b", "--fix", "q"], "not a parameter"),
    "val split 1.5": (["fit", "{d}/ok.csv", *BASE, "--val-split", "1.5"], "'val_split' parameter"),
    "patience without val split": (["fit", "{d}/ok.csv", *BASE, "--patience", "3"], "val_split"),
    "bad model option": (["fit", "{d}/ok.csv", *BASE, "--option", "degree"], "KEY=VALUE"),
    "log every zero": (["fit", "{d}/ok.csv", *BASE, "--log-every", "0"], "'log_every' parameter"),
    "unknown builtin": (["fit", "builtin:nope", *BASE], "Unknown built-in dataset"),
    # Usage errors caught by typer itself
    "missing --y option": (["fit", "{d}/ok.csv", "--model", "linear"], "Missing option '--y'"),
    "lr not a number": (["fit", "{d}/ok.csv", *BASE, "--lr", "abc"], "--lr"),
    "unknown demo": (["demo", "pendulum"], "pendulum"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_and_writes_nothing(files, name):
    args, fragment = CASES[name]
    out = files / "out"
    res = runner.invoke(app, [a.format(d=files) for a in args] + ["--out", str(out)])
    assert res.exit_code == 2, (res.output, res.exception)
    assert fragment in res.stderr
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(files):
    out = files / "out"
    res = runner.invoke(app, ["fit", str(files / "ok.csv"), *BASE, "--device", "cuda", "--out", str(out)])
    assert res.exit_code == 2 and "no CUDA GPU" in res.stderr and "--device cpu" in res.stderr
    assert not out.exists()


def test_out_is_an_existing_file(files):
    res = runner.invoke(app, ["fit", str(files / "ok.csv"), *BASE, "--out", str(files / "ok.csv")])
    assert res.exit_code == 2 and "is an existing file" in res.stderr
    assert (files / "ok.csv").read_text() == "t,v\n1,2\n2,3\n3,5\n"


def test_message_is_one_paragraph_without_markup_loss(files):
    res = runner.invoke(app, ["fit", str(files / "ok.csv"), *BASE, "--init", "a[5]=1", "--out", str(files / "o")])
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: ") and "'a[5]'" in res.stderr  # brackets survive rich
    assert "\n\n" not in res.stderr.strip()


def _boom(*args, **kwargs):
    raise RuntimeError("something odd\nsecond line")


def test_unexpected_error_is_one_line_pointing_to_debug(files, monkeypatch):
    monkeypatch.setattr(sys.modules["gradfit.api"], "fit", _boom)
    args = ["fit", str(files / "ok.csv"), *BASE, "--out", str(files / "out")]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert "internal error: RuntimeError: something odd" in res.stderr and "--debug" in res.stderr
    assert "Traceback" not in res.output and not (files / "out").exists()
    res = runner.invoke(app, args + ["--debug"])
    assert res.exit_code == 1 and "Traceback" in res.stderr and "something odd" in res.stderr


def test_debug_shows_the_traceback_of_bad_input(files):
    res = runner.invoke(app, ["fit", str(files / "ok.csv"), *BASE, "--lr", "0", "--debug", "--out", str(files / "o")])
    assert res.exit_code == 2 and "Traceback" in res.stderr and "The 'lr' parameter must be" in res.stderr


def test_ctrl_c_exits_130(files, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["gradfit.api"], "fit", interrupt)
    res = runner.invoke(app, ["fit", str(files / "ok.csv"), *BASE, "--out", str(files / "out")])
    assert res.exit_code == 130 and "Interrupted" in res.stderr and "Traceback" not in res.output
