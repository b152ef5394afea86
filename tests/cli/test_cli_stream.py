"""``gradfit fit FILE --stream``: the file read batch by batch gives the run of the file read whole, and its
pictures draw evenly spaced rows of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()
FORMULA = "a*exp(-b*x) + c + d*x"


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    x = np.linspace(0.0, 4.0, 30_000)
    noise = 0.05 * np.random.default_rng(1).standard_normal(x.size)
    path = tmp_path_factory.mktemp("stream") / "decay.parquet"
    pd.DataFrame({"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + noise}).to_parquet(path, row_group_size=4_000)
    return path


def run(*args):
    out = runner.invoke(app, [str(a) for a in args])
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    return out


def test_a_streamed_run_equals_the_run_of_the_file_read_whole(parquet, tmp_path):
    whole = run("fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "whole", "-q")
    streamed = run("fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "s", "--stream", "--plot")
    assert whole.exit_code == streamed.exit_code == 0, streamed.output
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("whole", "s"))
    assert b["data"]["stream"] is True and "stream" not in a["data"]
    for name, value in a["params"].items():
        assert b["params"][name] == pytest.approx(value, rel=1e-10)
    assert b["uncertainty"]["stderr"] == pytest.approx(a["uncertainty"]["stderr"], rel=1e-8)
    assert "read from the file at every pass" in streamed.output
    for picture in ("fit.png", "loss.png", "params.png"):
        assert (tmp_path / "s" / picture).stat().st_size > 1000


def test_a_bad_option_for_a_streamed_file_exits_2_and_writes_nothing(parquet, tmp_path):
    out = run("fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "o", "--stream", "--sep", ";")
    assert out.exit_code == 2
    assert "not built for streaming" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "o").exists()


def test_streamed_mini_batches_with_a_validation_split_run_from_the_command_line(parquet, tmp_path):
    args = ("fit", parquet, "--model", "linear", "--y", "y", "--stream", "--optimizer", "adam", "--batch-size", 256)
    args += ("--epochs", 2, "--val-split", 0.2, "--seed", 5, "-q")
    a, b = (run(*args, "--out", tmp_path / d) for d in ("a", "b"))
    assert a.exit_code == b.exit_code == 0, a.output
    ra, rb = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("a", "b"))
    assert ra["params"] == rb["params"] and ra["data"]["stream"] is True  # the same seed, the same batches
    assert ra["data"]["n_train"] + ra["data"]["n_val"] == 30_000 and ra["steps"] == 2 * -(-ra["data"]["n_train"] // 256)


def test_a_file_over_the_memory_budget_is_streamed_with_a_note(parquet, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADFIT_MEMORY", "80%")  # restored after the test: --memory-budget sets it for the process
    out = run("fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "o", "--memory-budget", "200KB")
    assert out.exit_code == 0, out.output
    assert "above the memory budget" in out.output and "read batch by batch" in out.output
    assert json.loads((tmp_path / "o" / "result.json").read_text())["data"]["stream"] is True
    refused = run(
        "fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "n", "--memory-budget", "2 apples"
    )
    assert refused.exit_code == 2 and "--memory-budget must be a size" in refused.output
    assert not (tmp_path / "n").exists()


def test_no_stream_keeps_the_file_read_whole(parquet, tmp_path):
    out = run("fit", parquet, "--model", FORMULA, "--y", "y", "--out", tmp_path / "o", "--no-stream", "-q")
    assert out.exit_code == 0 and "stream" not in json.loads((tmp_path / "o" / "result.json").read_text())["data"]


def test_a_job_torchrun_restarted_takes_up_the_checkpoint_of_its_out_folder(tmp_path, monkeypatch):
    from gradfit.cli.processes import restarted_from

    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert restarted_from(out, None) is None  # nothing saved yet: a fresh start
    (out / "checkpoint.pt").write_bytes(b"saved")
    assert restarted_from(out, None) == out
    assert restarted_from(out, tmp_path / "other") == tmp_path / "other"  # a --resume given wins
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert restarted_from(out, None) is None  # the first attempt never resumes by itself


def test_a_streamed_run_s_picture_counts_the_file_s_rows(parquet, tmp_path):
    import gradfit
    from gradfit.analysis import fitted_data
    from gradfit.plots.fit import FitDisplay

    r = gradfit.fit(FORMULA, parquet, y="y", stream=True)
    sample = fitted_data.streamed_sample
    with pytest.MonkeyPatch.context() as mp:  # pictures draw 10,000 evenly spaced rows of the 30,000
        mp.setattr(fitted_data, "streamed_sample", lambda result: sample(result, 10_000))
        shown = FitDisplay(r)
    assert shown.n == 10_000 and shown.n_fitted == 30_000
    assert shown.data_label == "data (10,000 of 30,000 rows)"
