"""Determinism: the same ``gradfit fit`` command twice writes the same bytes.

``result.json`` is byte-identical apart from its ``timings`` field and its ``run`` field (the run's
own id, and the digests of its files, one of which is ``timings.csv``), and ``history.csv`` is
byte-identical (wall-clock times live in ``timings.csv``). Floats in the CSV read back bit for
bit. The oracle is the first run: any byte that differs in the second is a failure.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.outputs import load_run, save_run
from gradfit.train.history import History

runner = CliRunner()

CASES = {
    "sgd-full-batch": ["-m", "linear", "--lr", "0.1", "--steps", "100"],
    "sgd-minibatch-shuffled": ["-m", "linear", "--lr", "0.05", "--batch-size", "16", "--epochs", "4"],
    "adam-validation-random-init": [
        "-m",
        "poly2",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--steps",
        "300",
        "--val-split",
        "0.25",
        "--init",
        "random",
        "--seed",
        "3",
    ],
    "lbfgs": ["-m", "poly2", "--optimizer", "lbfgs", "--steps", "15"],
    "lm": ["-m", "a*x + b", "--optimizer", "lm", "--steps", "15"],
    "mlp-minibatch": [
        "-m",
        "mlp",
        "-o",
        "hidden=8",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "32",
        "--steps",
        "30",
        "--val-split",
        "0.2",
        "--seed",
        "7",
    ],
}


def _fit(out: Path, options: list[str]) -> None:
    done = runner.invoke(app, ["fit", "builtin:linear", "--y", "y", *options, "--out", str(out), "--quiet"])
    assert done.exit_code in (0, 1), (done.output, done.exception)
    assert (out / "result.json").is_file()


def _without_timings(path: Path) -> tuple[bytes, dict]:
    """The file's bytes with the values of the ``timings`` and ``run`` fields blanked, and the timings."""
    text = path.read_text()
    data = json.loads(text)
    timings = data.pop("timings")
    run = data.pop("run")
    assert set(run) == {"id", "files"} and set(run["files"]) >= {"history.csv", "timings.csv"}
    blanked = json.dumps({**data, "timings": None, "run": None}, indent=2)
    return blanked.encode(), timings


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_command_twice_writes_the_same_bytes(case, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _fit(first, CASES[case])
    _fit(second, CASES[case])
    a, timings_a = _without_timings(first / "result.json")
    b, timings_b = _without_timings(second / "result.json")
    assert a == b
    # Only the timings field differs: the rest of the file is the JSON above, field for field, in order.
    text = (first / "result.json").read_text()
    assert text.endswith("\n") and '"timings": {' in text and set(timings_a) == set(timings_b)
    assert (first / "history.csv").read_bytes() == (second / "history.csv").read_bytes()
    assert (first / "timings.csv").is_file() and "time" not in pd.read_csv(first / "history.csv").columns
    # Two runs, two ids; the same history, the same digest.
    run_a, run_b = (json.loads((f / "result.json").read_text())["run"] for f in (first, second))
    assert run_a["id"] != run_b["id"] and run_a["files"]["history.csv"] == run_b["files"]["history.csv"]
    # The run loaded back is the run written: same parameters, bit for bit.
    loaded = load_run(first)
    assert loaded.flat_params == json.loads(text)["params"]


def test_result_json_differs_only_in_timings_and_run(tmp_path):
    _fit(tmp_path / "a", CASES["sgd-minibatch-shuffled"])
    _fit(tmp_path / "b", CASES["sgd-minibatch-shuffled"])
    la = (tmp_path / "a" / "result.json").read_text().splitlines()
    lb = (tmp_path / "b" / "result.json").read_text().splitlines()
    assert len(la) == len(lb)
    start = la.index('  "timings": {')
    assert la[:start] == lb[:start]  # timings and run are the last fields: everything before is equal line for line
    run = la.index('  "run": {')
    assert all(line.startswith('    "') or line in ("  },",) for line in la[start + 1 : run])
    assert la[-1] == "}" and all(line.startswith("    ") or line == "  }" for line in la[run + 1 : -1])


def test_a_different_seed_changes_the_bytes(tmp_path):
    """The comparison can fail: a shuffled fit with another seed writes other bytes."""
    _fit(tmp_path / "a", CASES["sgd-minibatch-shuffled"])
    _fit(tmp_path / "b", CASES["sgd-minibatch-shuffled"] + ["--seed", "1"])
    assert (tmp_path / "a" / "history.csv").read_bytes() != (tmp_path / "b" / "history.csv").read_bytes()


def test_two_processes_with_different_hash_seeds_write_the_same_bytes(tmp_path):
    """A fresh interpreter each, with PYTHONHASHSEED varied: no set or dict order leaks into the files."""
    args = ["builtin:linear", "--y", "y", *CASES["adam-validation-random-init"], "--quiet"]
    procs = []
    for name, hash_seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = "import sys; from gradfit.cli.app import app; sys.argv = ['gradfit', 'fit'] + sys.argv[1:]; app()"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, *args, "--out", str(tmp_path / name)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()
    assert _without_timings(tmp_path / "a" / "result.json")[0] == _without_timings(tmp_path / "b" / "result.json")[0]
    assert (tmp_path / "a" / "history.csv").read_bytes() == (tmp_path / "b" / "history.csv").read_bytes()


# -- exact floats in the CSV ----------------------------------------------------------------------


def _awkward_floats(n: int, seed: int) -> np.ndarray:
    """Floats whose decimal text is hard: random bit patterns, subnormals, extremes, signed zero, NaN, inf."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**63 - 1, n, dtype=np.int64) * rng.choice([1, -1], n)
    values = bits.view(np.float64).copy()
    special = [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        0.1,
        1 / 3,
        np.nextafter(1.0, 2.0),
        math.pi,
        math.nan,
        math.inf,
        -math.inf,
    ]
    values[: len(special)] = special
    return values


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b) and np.array_equal(a[~nan_a].view(np.int64), b[~nan_b].view(np.int64)))


def test_history_floats_round_trip_bit_for_bit(tmp_path):
    n = 2000
    values = _awkward_floats(7 * n, seed=0).reshape(7, n)
    steps = np.arange(n, dtype=np.float64)
    columns = {
        "step": steps,
        "epoch": values[0],
        "loss": values[1],
        "val_loss": values[2],
        "lr": values[3],
        "grad_norm": values[4],
        "time": values[5],
    }
    snapshots = np.stack([values[6], values[6][::-1]], axis=1)
    snapshots[np.isnan(snapshots)] = 0.0  # a snapshot row with NaN would read as "no snapshot kept"
    history = History(columns, ("a[0]", "b"), np.arange(n, dtype=np.int64), snapshots)
    result = gradfit.fit("a*x + b", "builtin:linear", y="y", lr=0.1, steps=2)
    save_run(_with_history(result, history), tmp_path)
    back = load_run(tmp_path).history
    for name, column in columns.items():
        assert _same_bits(back[name], column), name
    assert _same_bits(back.snapshots.ravel(), snapshots.ravel())
    np.testing.assert_array_equal(back.snapshot_steps, history.snapshot_steps)
    # Written again, the history gives the same bytes: the text is a fixed function of the values.
    save_run(_with_history(result, back), tmp_path / "again")
    assert (tmp_path / "history.csv").read_bytes() == (tmp_path / "again" / "history.csv").read_bytes()
    assert b"\r" not in (tmp_path / "history.csv").read_bytes()


def test_old_history_files_with_a_time_column_still_load(tmp_path):
    result = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=5)
    save_run(result, tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    del saved["run"]  # runs that old did not record their files' digests
    (tmp_path / "result.json").write_text(json.dumps(saved))
    (tmp_path / "timings.csv").unlink()
    result.history.to_frame(include_time=True).to_csv(tmp_path / "history.csv", index=False)
    back = load_run(tmp_path).history
    np.testing.assert_array_equal(back["time"], result.history["time"])
    np.testing.assert_array_equal(back.loss, result.history.loss)
    # Without either, the times are unknown (NaN) and everything else loads.
    result.history.to_frame().to_csv(tmp_path / "history.csv", index=False)
    back = load_run(tmp_path).history
    assert np.isnan(back["time"]).all() and len(back) == len(result.history)


def _with_history(result, history):
    from dataclasses import replace

    return replace(result, history=history)
