"""Winding down after Ctrl-C/SIGTERM in the library: the analysis is skipped (and said so), the fit is never lost,
and the history is written fast, exactly and in bounded memory."""

from __future__ import annotations

import json
import math
import os
import signal
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit import outputs
from gradfit.outputs import WriteLog, atomic_path, load_run, save_run, write_numbers_csv
from gradfit.train.history import History, HistoryRecorder
from helpers.signals import Fallback

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="POSIX signals"),
    pytest.mark.usefixtures("fallback_handlers"),
]  # tests/conftest.py: a missed signal fails the test
COMMON = dict(y="y", optimizer="sgd", lr=0.1, steps=30)


def spin(seconds: float = 5.0) -> None:
    """Stands for a long computation in Python: a signal cuts it short at the next bytecode."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.005)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_error_bars_skips_the_analysis_and_keeps_the_fit(monkeypatch, signum):
    import gradfit.analysis.uncertainty as uncertainty

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signum)
        spin()
        pytest.fail("the error bars went on after the signal")

    full = gradfit.fit("linear", "builtin:linear", uncertainty=False, **COMMON)
    monkeypatch.setattr(uncertainty, "compute_uncertainty", interrupted)
    started = time.monotonic()
    r = gradfit.fit("linear", "builtin:linear", uncertainty=True, **COMMON)
    assert time.monotonic() - started < 4  # not the 5 s of the spin: cut short (a guard against a hang, not a timing)
    name = signal.Signals(signum).name
    assert r.stop_reason == "interrupted" and r.success is False and r.converged is None
    assert r.diagnostics["loop_stop_reason"] == "max_steps" and r.diagnostics["interrupted_by"] == name
    assert r.diagnostics["skipped"] == ["metrics", "uncertainty", "verdict", "report"]
    assert r.metrics is None and r.report is None and "interrupted" in r.uncertainty["reason"]
    assert r.message.startswith(f"Interrupted ({name}) while analysing the fit, after the fit's last step.")
    assert "Ran the full budget of 30 steps" in r.message and "was not checked" in r.message
    # Nothing of the fit is lost: the same parameters and history as the fit never interrupted, bit for bit.
    assert r.flat_params == full.flat_params and r.steps == full.steps == 30
    np.testing.assert_array_equal(r.history.loss, full.history.loss)
    json.loads(r.to_json())
    assert signal.getsignal(signal.SIGINT).__name__ == "fallback"  # the window closed behind it


def test_a_signal_during_the_loop_skips_the_analysis(monkeypatch, tmp_path):
    import gradfit.analysis.metrics as metrics
    import gradfit.analysis.uncertainty as uncertainty

    called = []
    monkeypatch.setattr(metrics, "fit_metrics", lambda *a, **k: called.append("metrics"))
    monkeypatch.setattr(uncertainty, "compute_uncertainty", lambda *a, **k: called.append("uncertainty"))

    class SignalAt:
        def on_step(self, state):
            if state.step == 5:
                os.kill(os.getpid(), signal.SIGTERM)

    r = gradfit.fit(
        "linear", "builtin:linear", uncertainty=True, callbacks=[SignalAt()], checkpoint_dir=tmp_path, **COMMON
    )
    assert called == []
    assert (r.stop_reason, r.steps, r.diagnostics["interrupted_by"]) == ("interrupted", 6, "SIGTERM")
    assert "loop_stop_reason" not in r.diagnostics and r.metrics is None and r.report is None
    assert r.message.startswith("Interrupted (SIGTERM) at step 6") and "--resume" in r.message
    assert r.message.endswith("The analysis after the fit (metrics, error bars, verdict and report) was skipped.")


def test_a_fit_that_had_diverged_keeps_its_reason_when_the_analysis_is_interrupted(monkeypatch):
    import gradfit.analysis.metrics as metrics

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        spin()

    monkeypatch.setattr(metrics, "fit_metrics", interrupted)
    r = gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=10.0, steps=50)
    assert r.stop_reason == "diverged" and r.diagnostics["loop_stop_reason"] == "diverged" and not r.success


# -- the history, written fast and exactly ----------------------------------------------------------------------


def merged_by_pandas(history: History) -> pd.DataFrame:
    """The oracle: what ``History.to_frame`` was before it merged with NumPy (a pandas outer merge on step)."""
    frame = pd.DataFrame({c: history.columns[c] for c in ("step", "epoch", "loss", "val_loss", "lr", "grad_norm")})
    frame["step"] = frame["step"].astype(np.int64)
    snaps = pd.DataFrame(history.snapshots, columns=list(history.param_names))
    snaps.insert(0, "step", history.snapshot_steps)
    return frame.merge(snaps, on="step", how="outer").sort_values("step", kind="stable").reset_index(drop=True)


def recorded(steps, snapshot_steps, n_params=2, seed=0) -> History:
    rng = np.random.default_rng(seed)
    rec = HistoryRecorder([f"p{i}" for i in range(n_params)])
    for s in steps:
        rec.add_row(
            int(s),
            s / 7,
            float(rng.standard_normal()),
            float(rng.random()) if s % 3 else math.nan,
            0.01,
            float(rng.random()),
            s * 1e-3,
        )
    for s in snapshot_steps:
        rec.add_snapshot(int(s), rng.standard_normal(n_params))
    return rec.freeze()


@pytest.mark.parametrize(
    "steps, snapshot_steps",
    [
        (range(10), range(10)),  # every step both
        (range(0, 20, 2), [0, 3, 4, 17, 18]),  # snapshots at steps without a row, and rows without one
        (range(5), []),  # no snapshots at all
        ([0, 1, 2, 5, 4], [0, 4, 6]),  # rows out of order (a blow-up row before the final state)
        ([0, 1, 1, 2], [1]),  # a step recorded twice
    ],
)
def test_the_merged_history_equals_the_pandas_merge(steps, snapshot_steps):
    h = recorded(steps, snapshot_steps)
    expected = merged_by_pandas(h) if len(h.snapshot_steps) else h.to_frame()
    pd.testing.assert_frame_equal(h.to_frame(), expected)
    table = h.table()
    pieces = [table.rows(a, min(a + 3, len(table))) for a in range(0, len(table), 3)]  # any batching, same table
    glued = pd.DataFrame({n: np.concatenate([p[i] for p in pieces]) for i, n in enumerate(table.names)})
    pd.testing.assert_frame_equal(glued, expected)


def test_history_csv_reads_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(1)
    awkward = np.array(
        [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-7,
            1e-5,
            2.5e-7,
            1e16,
            1e21,
            1e22,
            3e15,
            2.0**53,
            5e-324,
            2.2250738585072014e-308,
            1.7976931348623157e308,
            math.inf,
            -math.inf,
            1 / 3,
            0.30000000000000004,
        ]
    )
    random = rng.standard_normal(3000) * 10.0 ** rng.integers(-300, 300, 3000)
    bits = np.frombuffer(rng.bytes(8 * 3000), dtype=np.float64)
    values = np.concatenate([awkward, random, bits[np.isfinite(bits)]])
    n = len(values)
    cols = {
        "step": np.arange(n, dtype=np.float64),
        "epoch": values,
        "loss": values[::-1].copy(),
        "val_loss": np.where(np.arange(n) % 2, values, np.nan),
        "lr": np.full(n, 0.01),
        "grad_norm": values,
        "time": np.zeros(n),
    }
    names = ("a[0]", "w,b", 'q"x')  # a header needing quotes is quoted as pandas would
    h = History(cols, names, np.arange(0, n, 5), rng.standard_normal((len(range(0, n, 5)), 3)))
    path = tmp_path / "history.csv"
    write_numbers_csv(h.table(), path, batch_rows=1000)
    back = outputs._read_csv(path)
    expected = h.to_frame()
    assert path.read_text().splitlines()[0] == expected.head(0).to_csv(index=False, lineterminator="\n").strip()
    assert list(back.columns) == list(expected.columns)
    for c in expected.columns:
        a, b = back[c].to_numpy(np.float64), expected[c].to_numpy(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b)), c
        assert np.array_equal(a[~np.isnan(a)].view(np.int64), b[~np.isnan(b)].view(np.int64)), c  # -0.0 included
    lines = path.read_text().splitlines()
    assert lines[1].startswith("0,0,") and ",," in lines[2]  # integer steps, NaN as an empty field
    pd.testing.assert_frame_equal(pd.read_csv(path), expected, check_dtype=False, rtol=1e-15)  # any CSV reader


def test_saving_a_wide_history_never_builds_the_rows_by_parameters_block(tmp_path):
    rows, params = 120_000, 40
    steps = np.arange(rows, dtype=np.float64)
    cols = {
        c: steps if c == "step" else steps / 3 for c in ("step", "epoch", "loss", "val_loss", "lr", "grad_norm", "time")
    }
    snap_steps = np.arange(0, rows, 60)
    h = History(cols, tuple(f"p{i}" for i in range(params)), snap_steps, np.ones((len(snap_steps), params)))
    tracemalloc.start()
    try:
        write_numbers_csv(h.table(), tmp_path / "history.csv")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block = rows * params * 8  # 38 MB: what a merged frame of every row and parameter holds
    assert peak < block / 2, f"peak {peak / 1e6:.1f} MB"
    back = outputs._read_csv(tmp_path / "history.csv")
    assert back.shape == (rows, 6 + params) and back["p3"].notna().sum() == len(snap_steps)


class Columns:
    """A table of numbers as write_numbers_csv reads it, counting the batches asked for."""

    def __init__(self, names, columns):
        self.names, self.columns, self.asked = list(names), columns, []

    def __len__(self):
        return len(self.columns[0])

    def rows(self, start, stop):
        self.asked.append(start)
        return [c[start:stop] for c in self.columns]


def test_the_history_written_by_several_threads_is_the_one_written_by_one_byte_for_byte(tmp_path):
    rng = np.random.default_rng(7)
    n = 20_011  # batches of 997 rows: the last one short
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    values[::13] = np.nan
    cols = [np.arange(n, dtype=np.int64), values, values[::-1].copy(), np.full(n, -0.0), rng.random(n)]
    names = ["step", "a", "b", "c", "d"]
    write_numbers_csv(Columns(names, cols), tmp_path / "one.csv", batch_rows=997, workers=1)
    table = Columns(names, cols)
    write_numbers_csv(table, tmp_path / "four.csv", batch_rows=997, workers=4)
    assert (tmp_path / "four.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert sorted(table.asked) == list(range(0, n, 997))  # every batch once
    back = pd.read_csv(tmp_path / "four.csv")
    np.testing.assert_array_equal(back["a"].to_numpy(), values)  # in order, NaN where it was


def test_a_second_signal_during_a_threaded_write_stops_the_threads_and_leaves_no_temporary_file(tmp_path):
    import threading

    n = 50_000
    cols = [np.arange(n, dtype=np.int64), np.linspace(0, 1, n)]

    class CutShort(Columns):
        def rows(self, start, stop):
            if start == 10 * 100 and threading.current_thread() is threading.main_thread():
                raise AssertionError("batches are converted by the writer threads")
            if start == 10 * 100:
                os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, waiting on a batch
                time.sleep(0.2)
            return super().rows(start, stop)

    table = CutShort(["step", "x"], cols)
    with pytest.raises(Fallback):  # what the handler in place raises (the CLI's: Interrupted)
        with WriteLog() as log:
            with atomic_path(tmp_path / "history.csv") as tmp:
                write_numbers_csv(table, tmp, batch_rows=100, workers=3)
    assert os.listdir(tmp_path) == [] and log.written == []
    assert not [t for t in threading.enumerate() if t.name.startswith("gradfit-csv")]  # the pool was shut down
    assert max(table.asked) <= 100 * 20  # of 500 batches, those not yet started were never converted


# -- no temporary file left, whatever cuts a write short ------------------------------------------------------------


def test_a_write_cut_short_during_its_own_clean_up_leaves_no_temporary_file(tmp_path, monkeypatch):
    real_unlink = Path.unlink
    cut = []

    def unlink_interrupted_once(self, *args, **kwargs):
        if not cut and self.name.startswith(".tmp-"):
            cut.append(self)
            raise KeyboardInterrupt  # a further Ctrl-C inside atomic_path's own clean-up
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        with WriteLog() as log:
            with atomic_path(tmp_path / "history.csv") as tmp:
                tmp.write_text("step\n0\n")
                raise KeyboardInterrupt  # the second Ctrl-C, mid-write
    assert cut and os.listdir(tmp_path) == [] and log.written == []


def test_the_write_log_lists_what_was_written_whole(tmp_path, result_for_log):
    with WriteLog() as log:
        paths = save_run(result_for_log, tmp_path)
    assert log.written[-1] == paths["result"] and set(log.written) == set(paths.values()) and not log.pending
    assert load_run(tmp_path).steps == result_for_log.steps


@pytest.fixture
def result_for_log():
    return gradfit.fit("linear", "builtin:linear", y="y", optimizer="lm", uncertainty=False)


def test_checkpoint_and_history_of_an_interrupted_fit_agree(tmp_path):
    class SignalAt:
        def on_step(self, state):
            if state.step == 7:
                os.kill(os.getpid(), signal.SIGINT)

    r = gradfit.fit(
        "linear", "builtin:linear", callbacks=[SignalAt()], checkpoint_dir=tmp_path, batch_size=10, **COMMON
    )
    save_run(r, tmp_path)
    back = load_run(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == back.steps == 8 and back.stop_reason == "interrupted"
    np.testing.assert_array_equal(back.history.loss, r.history.loss)
