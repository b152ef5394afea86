"""A saved run is checked when it is read back (gradfit.run_schema, gradfit.analysis.fitted_data, gradfit.folder_lock).

Issue 9's examples: ``gradfit plot`` drew a half-cut ``history.csv`` and a CSV edited since the fit
without a word (exit 0), and a deeply nested ``result.json`` was an internal error. Now each is
refused with exit 2 and a message naming the file, nothing drawn; data passed with ``--data`` that
are not the fit's get a warning. Every file of a run carries (or is sealed by) the run's id, and a
folder another command is writing to is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.analysis.fitted_data import run_data
from gradfit.cli.app import app
from gradfit.errors import ConfigError, DataError, GradfitWarning
from gradfit.folder_lock import lock_folder, locks_released
from gradfit.outputs import load_run

runner = CliRunner()
PICTURES = ("fit.png", "loss.png", "params.png")


@pytest.fixture
def table(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 200)
    path = tmp_path / "line.csv"
    pd.DataFrame({"x": x, "y": 2 * x + 1 + 0.1 * rng.standard_normal(200)}).to_csv(path, index=False)
    return path


def fit_run(table: Path, out: Path, *options: str) -> Path:
    done = runner.invoke(
        app,
        [
            "fit",
            str(table),
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizer",
            "lm",
            *options,
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert done.exit_code == 0, done.output
    return out


def plot(*args: str):
    return runner.invoke(app, ["plot", *map(str, args)])


def assert_refused(res, folder: Path, *expected: str) -> None:
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "internal error" not in text and "Traceback" not in text
    for part in expected:
        assert part in text, (part, text)
    assert not any((folder / p).exists() for p in PICTURES)


# -- the history no longer the run's ------------------------------------------------------------------


def test_a_half_cut_history_is_refused_by_plot(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    history = (out / "history.csv").read_bytes()
    (out / "history.csv").write_bytes(history[: len(history) // 2])
    assert_refused(
        plot(out), out, "history.csv' is not the file run", f"where the run wrote {len(history):,}", "(cut short)"
    )


def test_an_edited_history_of_the_same_size_is_refused(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    text = (out / "history.csv").read_text()
    (out / "history.csv").write_text(text.replace("0", "1", 1))
    assert_refused(plot(out, "--kind", "loss"), out, "its content differs from what the run wrote (same size)")
    with pytest.raises(DataError, match="history.csv' is not the file run"):
        load_run(out)


def test_another_runs_history_is_refused(table, tmp_path):
    one = fit_run(table, tmp_path / "one")
    two = fit_run(table, tmp_path / "two", "--steps", "2")
    (one / "timings.csv").write_bytes((two / "timings.csv").read_bytes())
    assert_refused(plot(one), one, "timings.csv' is not the file run")


def test_every_file_names_the_run(table, tmp_path):
    out = fit_run(table, tmp_path / "run", "--checkpoint-every", "1", "--steps", "3", "--plot")
    run_id = json.loads((out / "result.json").read_text())["run"]["id"]
    assert len(run_id) == 16 and int(run_id, 16) >= 0
    assert json.loads((out / ".gradfit-run.json").read_text())["run"] == run_id
    assert torch.load(out / "checkpoint.pt", weights_only=True)["run"] == run_id
    assert load_run(out).run_id == run_id
    again = fit_run(table, tmp_path / "again", "--checkpoint-every", "1", "--steps", "3")
    assert json.loads((again / "result.json").read_text())["run"]["id"] != run_id  # each run its own
    assert plot(out, "--kind", "grid").exit_code == 0  # the pictures join the run, which keeps its id
    assert json.loads((out / ".gradfit-run.json").read_text())["run"] == run_id


# -- result.json damaged ---------------------------------------------------------------------------------


def test_a_deeply_nested_result_is_refused_not_an_internal_error(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    text = (out / "result.json").read_text()
    (out / "result.json").write_text(
        text.replace('"diagnostics": {', '"diagnostics": {"deep": ' + "[" * 100_000 + "]" * 100_000 + ",", 1)
    )
    assert_refused(plot(out), out, "result.json' is not a gradfit result: its JSON is nested too deeply to read")


DAMAGED_FIELDS = {
    "not JSON": (lambda d: "{", "it is not valid JSON"),
    "an array": (lambda d: [d], "it holds list instead of an object"),
    "another schema": (lambda d: {**d, "schema": "gradfit.result/9"}, "its schema is 'gradfit.result/9'"),
    "params missing": (lambda d: {k: v for k, v in d.items() if k != "params"}, "the field 'params' is missing"),
    "params a list": (lambda d: {**d, "params": [1, 2]}, "the field 'params' is an array"),
    "a parameter as an object": (
        lambda d: {**d, "params": {**d["params"], "a[0]": {}}},
        "the parameter 'a[0]' is an object, not a number",
    ),
    "steps as text": (lambda d: {**d, "steps": "7"}, "the field 'steps' is '7'"),
    "steps as true": (lambda d: {**d, "steps": True}, "the field 'steps' is True"),
    "data a string": (lambda d: {**d, "data": "x"}, "the field 'data' is 'x'"),
    "inputs not names": (lambda d: {**d, "data": {**d["data"], "x": [1]}}, "the field 'data.x' is an array"),
    "model of another kind": (lambda d: {**d, "model": {"kind": "nonsense"}}, "This result has no model to draw"),
}


@pytest.mark.parametrize("change, message", DAMAGED_FIELDS.values(), ids=DAMAGED_FIELDS)
def test_a_damaged_result_is_refused_naming_the_field(table, tmp_path, change, message):
    out = fit_run(table, tmp_path / "run")
    changed = change(json.loads((out / "result.json").read_text()))
    (out / "result.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    assert_refused(plot(out), out, message)


# -- the data no longer the run's -------------------------------------------------------------------------


def test_data_edited_since_the_fit_are_refused_by_plot(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    frame = pd.read_csv(table)
    frame.loc[[3, 150], "y"] = frame.loc[[150, 3], "y"].to_numpy()  # two values swapped: same sums, same ends
    frame.to_csv(table, index=False)
    assert_refused(
        plot(out),
        out,
        f"The data in {str(table)!r} are no longer the data this run was fitted on",
        "the same 200 rows, but values that differ",
        "Restore the file, fit again",
    )
    # The loss and the parameters' paths need only the history: still drawn.
    assert plot(out, "--kind", "loss").exit_code == 0


def test_a_row_added_is_named(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    frame = pd.read_csv(table)
    pd.concat([frame, frame.tail(1)]).to_csv(table, index=False)
    assert_refused(plot(out), out, "201 rows where the fit had 200")


def test_other_data_given_explicitly_are_drawn_with_a_warning(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    other = tmp_path / "other.csv"
    pd.read_csv(table).assign(y=lambda f: f.y + 1).to_csv(other, index=False)
    res = plot(out, "--data", other)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert text.count("Warning: The data given are not the data this run was fitted on") == 1  # said once
    assert all((out / p).is_file() for p in PICTURES)
    same = plot(out, "--data", table)
    assert same.exit_code == 0 and "Warning" not in same.output


SAME_DATA = {
    "float32 sgd": dict(optimizer="sgd", lr=0.1, steps=5),
    "float64 lm, dropped rows": dict(optimizer="lm", drop_nan=True),
    "sigma column": dict(optimizer="lm", sigma="err"),
    "weights column, validation split": dict(optimizer="adam", lr=0.1, steps=5, weights="w", val_split=0.25),
}


@pytest.mark.parametrize("options", SAME_DATA.values(), ids=SAME_DATA)
def test_the_same_data_read_again_pass_without_a_word(tmp_path, options):
    """No false alarm: the data a run reads again (dtype, dropped rows, weights) have the fit's fingerprint."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 60)
    frame = pd.DataFrame(
        {"x": x, "y": 1.5 * x - 2 + 0.1 * rng.standard_normal(60), "err": 0.1 + 0.05 * x, "w": rng.uniform(0.5, 2, 60)}
    )
    frame.loc[7, "y"] = np.nan
    if not options.get("drop_nan"):
        frame = frame.dropna()
    frame.to_csv(tmp_path / "d.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradfitWarning)  # a short fit's verdict
        result = gradfit.fit("a*x + b", str(tmp_path / "d.csv"), y="y", uncertainty=False, **options)
    gradfit.outputs.save_run(result, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert isinstance(loaded.data["fingerprint"], str) and len(loaded.data["fingerprint"]) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradfitWarning)
        assert len(run_data(loaded)) == loaded.data["n"]
        run_data(loaded, pd.read_csv(tmp_path / "d.csv"))  # the same data passed in: no warning either


def test_the_library_warns_for_other_data(table, tmp_path):
    out = fit_run(table, tmp_path / "run")
    with pytest.warns(GradfitWarning, match="not the data this run was fitted on: 100 rows where the fit had 200"):
        run_data(load_run(out), pd.read_csv(table).head(100))


# -- the folder lock -------------------------------------------------------------------------------------

HOLD = (
    "import sys, time\nfrom gradfit.folder_lock import lock_folder\nlock_folder(sys.argv[1])\n"
    "print('locked', flush=True)\ntime.sleep(120)\n"
)


@pytest.fixture
def held(tmp_path):
    """A folder another process holds the lock of (the holder is killed with SIGKILL at the end)."""
    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert holder.stdout.readline().strip() == "locked"
    yield folder, holder
    if holder.poll() is None:
        holder.kill()
        holder.wait()


def test_a_folder_another_command_is_writing_to_is_refused(held, table):
    folder, holder = held
    res = runner.invoke(
        app, ["fit", str(table), "--y", "y", "--model", "linear", "--optimizer", "lm", "--out", str(folder)]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and f"The folder {str(folder)!r} is in use: another gradfit command" in text, text
    assert list(folder.iterdir()) == []  # nothing written
    assert plot(folder).exit_code == 2
    with pytest.raises(ConfigError, match="is in use"):
        lock_folder(folder)
    holder.send_signal(signal.SIGKILL)  # however the holder ends, its lock goes with it
    holder.wait()
    fit_run(table, folder)
    assert (folder / "result.json").is_file()


def test_a_lock_is_shared_within_a_process_and_released_with_its_block(tmp_path):
    target = tmp_path / "new" / "deeper"
    with locks_released():
        first = lock_folder(target)
        assert lock_folder(target) is first and target.is_dir()  # a command inside a command: no deadlock
    assert not (tmp_path / "new").exists()  # created to be locked, nothing written: removed again
    with locks_released():
        lock_folder(target)
        (target / "kept.txt").write_text("x")
    assert (target / "kept.txt").is_file()
    check = subprocess.run(
        [sys.executable, "-c", HOLD.replace("time.sleep(120)", ""), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and "locked" in check.stdout  # given back: another process takes it


def test_a_refused_fit_into_a_new_folder_leaves_nothing(table, tmp_path):
    res = runner.invoke(
        app, ["fit", str(table), "--y", "nope", "--model", "linear", "--out", str(tmp_path / "a" / "b")]
    )
    assert res.exit_code == 2 and not (tmp_path / "a").exists()
