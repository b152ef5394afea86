"""Interruption and resume in the library: a fit stopped at step k and resumed equals, bit for bit, one never stopped."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch

import gradfit
from gradfit.errors import ConfigError, DataError
from gradfit.train.checkpoint import CHECKPOINT_NAME, FORMAT, load_checkpoint
from gradfit.train.interrupt import catch_interrupts, request_stop
from helpers.checkpoints import StopAt, assert_same_fit, decay_curve, fit_stopped_at


@pytest.fixture(autouse=True)
def sigint_default():
    """Python's own SIGINT handler while a test runs, as in a terminal.

    These tests signal this very process. A shell that starts pytest in the background
    (``pytest &``) hands it SIGINT ignored, and a fit rightly leaves an ignored signal ignored,
    so without this the SIGINT tests would fail only when the suite runs in the background.
    """
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class SignalAt:
    """Send ``signum`` to this very process from inside the loop at step ``k`` (``times`` times)."""

    def __init__(self, k: int, signum=signal.SIGINT, times: int = 1):
        self.k, self.signum, self.times = k, signum, times

    def on_step(self, state):
        if state.step == self.k:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def curve():
    return decay_curve(120)


MINIBATCH = {  # options, the signal, the step it is sent at
    "momentum, step schedule, SIGINT": (dict(optimizer="momentum", lr=0.05, schedule="step"), signal.SIGINT, 11),
    "adam, cosine, SIGTERM": (dict(optimizer="adam", lr=0.05, schedule="cosine"), signal.SIGTERM, 11),
    # Stops early at step 30 (best 12): only if the resumed fit remembers the best loss and the count since.
    "adam, early stopping and tol": (
        dict(optimizer="adam", lr=0.2, val_split=0.25, patience=3, tol=1e-12, epochs=30),
        signal.SIGINT,
        19,
    ),
}


@pytest.mark.parametrize("case", MINIBATCH.values(), ids=MINIBATCH)
def test_minibatch_resume_equals_the_uninterrupted_fit(tmp_path, curve, case):
    options, signum, k = case
    common = dict(y="y", batch_size=16, epochs=6, seed=7, init={"a": 1.0, "b": 0.2, "c": 0.0})
    common.update(options)
    full = gradfit.fit("a*exp(-b*t) + c", curve, **common)
    assert full.steps > k + 5

    before = signal.getsignal(signum)
    stopped = gradfit.fit(
        "a*exp(-b*t) + c", curve, callbacks=[SignalAt(k, signum)], checkpoint_every=4, checkpoint_dir=tmp_path, **common
    )
    assert signal.getsignal(signum) is before  # handlers put back
    # The signal arrives inside step k; the loop finishes that update and stops at the next boundary.
    assert stopped.stop_reason == "interrupted" and stopped.steps == k + 1 and not stopped.success
    assert stopped.diagnostics["interrupted_by"] == signal.Signals(signum).name
    assert "--resume" in stopped.message and all(np.isfinite(v) for v in stopped.flat_params.values())
    assert load_checkpoint(tmp_path)["step"] == k + 1  # the final checkpoint, not the last periodic one
    # The interrupted fit's parameters are those the uninterrupted one had at that step, exactly.
    assert stopped.flat_params == full.history.params_at(k + 1)

    resumed = gradfit.fit("a*exp(-b*t) + c", curve, resume=tmp_path, **common)
    assert resumed.diagnostics["resumed_at_step"] == k + 1
    assert_same_fit(resumed, full)
    assert resumed.best_step == full.best_step


def test_resume_from_a_periodic_checkpoint_after_a_crash(tmp_path, curve):
    """A fit that died without a final checkpoint (simulated: an exception) resumes from the last periodic one."""
    common = dict(y="y", optimizer="adam", lr=0.05, batch_size=16, steps=40, seed=1)

    class Crash:
        def on_step(self, state):
            if state.step == 23:
                raise RuntimeError("power cut")

    full = gradfit.fit("a*exp(-b*t) + c", curve, **common)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="power cut"):
        gradfit.fit(
            "a*exp(-b*t) + c", curve, callbacks=[Crash()], checkpoint_every=10, checkpoint_dir=tmp_path, **common
        )
    assert signal.getsignal(signal.SIGINT) is before  # restored on the way out of an exception too
    assert load_checkpoint(tmp_path)["step"] == 20
    assert_same_fit(gradfit.fit("a*exp(-b*t) + c", curve, resume=tmp_path, **common), full)


def test_lbfgs_full_batch(tmp_path, curve):
    common = dict(y="y", optimizer="lbfgs", lr=0.5, steps=25, init={"a": 1.0, "b": 0.2, "c": 0.0})
    full = gradfit.fit("a*exp(-b*t) + c", curve, **common)
    stopped = fit_stopped_at(6, tmp_path, "a*exp(-b*t) + c", curve, **common)
    assert (stopped.stop_reason, stopped.steps) == ("interrupted", 7)
    assert stopped.diagnostics["interrupted_by"] == "request"
    assert_same_fit(gradfit.fit("a*exp(-b*t) + c", curve, resume=tmp_path, **common), full)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "momentum"])
def test_resume_from_the_default_start_of_all_ones(tmp_path, optimizer):
    """Every parameter starting at 1.0 (the default start) is resumed: the checkpoint's check steps a toy problem
    whose minimum must not sit at the start (L-BFGS at a minimum keeps no directions; this was refused as damaged)."""
    common = dict(y="speed", optimizer=optimizer, steps=12, lr=0.01 if optimizer != "lbfgs" else 1.0)
    full = gradfit.fit("a*t**2 + b*t + c", "builtin:rollercoaster", **common)
    assert full.history.snapshots[0].tolist() == [1.0, 1.0, 1.0]
    fit_stopped_at(2, tmp_path, "a*t**2 + b*t + c", "builtin:rollercoaster", **common)
    assert_same_fit(gradfit.fit("a*t**2 + b*t + c", "builtin:rollercoaster", resume=tmp_path, **common), full)


def test_levenberg_marquardt(tmp_path, curve):
    common = dict(y="y", optimizer="lm", steps=50, init={"a": 5.0, "b": 3.0, "c": -1.0})
    full = gradfit.fit("a*exp(-b*t) + c", curve, **common)
    assert full.steps > 5
    stopped = gradfit.fit(
        "a*exp(-b*t) + c", curve, callbacks=[SignalAt(3)], checkpoint_every=2, checkpoint_dir=tmp_path, **common
    )
    assert (stopped.stop_reason, stopped.steps) == ("interrupted", 4)
    resumed = gradfit.fit("a*exp(-b*t) + c", curve, resume=tmp_path, **common)
    assert_same_fit(resumed, full)
    assert resumed.diagnostics["lm"] == full.diagnostics["lm"]  # Jacobian counts, lambda, the test that fired


def test_a_finished_fit_can_be_extended(tmp_path, curve):
    common = dict(y="y", optimizer="momentum", lr=0.05, batch_size=32, seed=2)
    gradfit.fit("a*exp(-b*t) + c", curve, steps=30, checkpoint_every=1000, checkpoint_dir=tmp_path, **common)
    assert load_checkpoint(tmp_path)["step"] == 30  # the end of the budget is saved too
    longer = gradfit.fit("a*exp(-b*t) + c", curve, steps=70, resume=tmp_path, **common)
    assert_same_fit(longer, gradfit.fit("a*exp(-b*t) + c", curve, steps=70, **common))


def test_a_second_signal_is_not_caught(tmp_path, curve):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.01, steps=50, callbacks=[SignalAt(5, times=2)])
    assert signal.getsignal(signal.SIGINT) is before


def test_signals_are_left_alone_when_asked_or_outside_the_main_thread(curve):
    before = signal.getsignal(signal.SIGINT)
    seen = []

    class Look:
        def on_step(self, state):
            seen.append(signal.getsignal(signal.SIGINT) is before)
            return state.step == 2

    gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.01, steps=50, callbacks=[Look()], catch_signals=False)
    assert seen and all(seen)

    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.01, steps=50, callbacks=[StopAt(3)])
        )
    )
    thread.start()
    thread.join()
    assert results[0].stop_reason == "interrupted" and results[0].steps == 4
    assert signal.getsignal(signal.SIGINT) is before


def test_request_stop_outside_a_fit_says_so():
    assert request_stop() is False
    with catch_interrupts(enabled=False) as stop:
        assert not stop and request_stop() and stop.reason == "request"


# -- refusals ------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, curve):
    gradfit.fit(
        "a*exp(-b*t) + c", curve, y="y", lr=0.05, steps=10, batch_size=16, checkpoint_every=5, checkpoint_dir=tmp_path
    )
    return tmp_path


def test_a_different_fit_is_refused_with_every_difference(saved, curve):
    with pytest.raises(ConfigError, match=r"(?s)different fit.*option 'lr'.*0\.05.*0\.1.*option 'optimizer'"):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.1, optimizer="adam", steps=20, batch_size=16, resume=saved)
    other = curve.assign(y=curve["y"] + 1e-3)
    with pytest.raises(ConfigError, match="data 'fingerprint'"):
        gradfit.fit("a*exp(-b*t) + c", other, y="y", lr=0.05, steps=20, batch_size=16, resume=saved)
    with pytest.raises(ConfigError, match=r"data 'rows': the checkpoint has 120, this fit has 119"):
        gradfit.fit("a*exp(-b*t) + c", curve.iloc[:-1], y="y", lr=0.05, steps=20, batch_size=16, resume=saved)
    with pytest.raises(ConfigError, match="model 'formula'"):
        gradfit.fit("a*exp(-b*t) + c*t", curve, y="y", lr=0.05, steps=20, batch_size=16, resume=saved)
    with pytest.raises(ConfigError, match=r"initial value 'a': the checkpoint has 1\.0, this fit has 3\.0"):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.05, steps=20, batch_size=16, init={"a": 3.0}, resume=saved)
    # What may change: the budget, the time limit, printing and checkpointing.
    r = gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.05, epochs=4, max_time=100.0, batch_size=16, resume=saved)
    assert r.steps == 32


def test_a_budget_already_spent_is_refused(saved, curve):
    with pytest.raises(ConfigError, match="checkpoint is at step 10, past this fit's budget of 5 steps"):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.05, steps=5, batch_size=16, resume=saved)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: p.unlink(), "there is no checkpoint at"),
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), "is damaged"),
        (lambda p: p.write_bytes(b"\x00garbage"), "is damaged"),
        (lambda p: torch.save({"format": "gradfit.checkpoint/0"}, p), "not a checkpoint this gradfit can read"),
        (lambda p: torch.save({"format": "gradfit.checkpoint/1", "step": 3}, p), "written by an earlier gradfit"),
        (lambda p: torch.save({"format": FORMAT, "step": 3}, p), r"field 'identity' is missing \(and 'params'"),
    ],
)
def test_a_missing_or_damaged_checkpoint_is_a_data_error(saved, curve, damage, match):
    damage(saved / CHECKPOINT_NAME)
    with pytest.raises(DataError, match=match):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", lr=0.05, steps=20, batch_size=16, resume=saved)


def test_checkpoint_options_are_checked(curve):
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", steps=5, checkpoint_every=2)
    with pytest.raises(ConfigError, match="'checkpoint_every' parameter must be a whole number >= 1"):
        gradfit.fit("a*exp(-b*t) + c", curve, y="y", steps=5, checkpoint_every=0, checkpoint_dir=".")


def test_a_checkpoint_holds_no_code(saved):
    """It loads with weights_only=True: tensors and plain data only, so loading runs nothing from the file."""
    state = torch.load(saved / CHECKPOINT_NAME, weights_only=True)
    assert state["format"] == FORMAT and state["step"] == 10
    assert not list(saved.glob(".tmp-*"))  # written atomically: no temporary left behind
