"""Ctrl-C and SIGTERM on a real ``gradfit fit`` process, and ``--resume`` to the same parameters bit for bit."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app

DATA = "builtin:linear?n=20000"
# --no-uncertainty: the error bars are beside the point here and cost each process a second.
OPTIONS = [
    "--y",
    "y",
    "--model",
    "linear",
    "--batch-size",
    "64",
    "--optimizer",
    "momentum",
    "--lr",
    "0.01",
    "--no-uncertainty",
]
runner = CliRunner()


def gradfit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradfit", "fit", DATA, *OPTIONS, *args]


def run_until_checkpoint(out, signum, sigint_ignored: bool = False) -> subprocess.CompletedProcess:
    """Start a long fit, wait for its first checkpoint (so the loop is running), then send ``signum``.

    The child inherits this process's SIGINT disposition (ignored when pytest was started with
    ``&`` by a script), or has it ignored explicitly with ``sigint_ignored``: either way the CLI
    must answer SIGINT.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen(
        gradfit_cmd("--steps", "100000", "--checkpoint-every", "50", "--out", str(out), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=ignore,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def check_interrupted(out, stopped, name: str) -> dict:
    """Exit 130, a one-paragraph message, and the run so far saved with its final checkpoint."""
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert f"Interrupted ({name}) at step" in stopped.stderr and "--resume" in stopped.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["stop_reason"] == "interrupted" and saved["success"] is False
    assert 50 <= saved["steps"] < 100000 and all(math.isfinite(v) for v in saved["params"].values())
    assert (out / "history.csv").read_text().count("\n") >= 2
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == saved["steps"]  # saved where it stopped, not at the last multiple of 50
    assert checkpoint["params"]["a"].tolist() == list(saved["params"].values())
    return saved


def test_sigint_stops_the_fit_at_a_step_and_resume_finishes_it_exactly(tmp_path):
    out = tmp_path / "run"
    k = check_interrupted(out, run_until_checkpoint(out, signal.SIGINT), "SIGINT")["steps"]

    m = k + 137
    resumed = subprocess.run(
        gradfit_cmd("--steps", str(m), "--resume", str(out), "--quiet"), capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((out / "result.json").read_text())  # --out defaults to the --resume folder
    assert result["steps"] == m and result["stop_reason"] == "max_steps"

    full = gradfit.fit("linear", DATA, y="y", batch_size=64, optimizer="momentum", lr=0.01, steps=m, uncertainty=False)
    # JSON holds each float32 exactly (as a float64), so equality here is equality bit for bit.
    assert result["params"] == full.flat_params
    assert torch.equal(torch.tensor(list(result["params"].values()), dtype=torch.float32), full.params["a"])


def test_sigterm_stops_the_fit_the_same_way(tmp_path):
    out = tmp_path / "run"
    check_interrupted(out, run_until_checkpoint(out, signal.SIGTERM), "SIGTERM")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_sigint_stops_the_cli_even_when_started_with_sigint_ignored(tmp_path):
    """A script's `gradfit fit ... &` starts it with SIGINT ignored; `kill -INT` must still stop and save it."""
    out = tmp_path / "run"
    check_interrupted(out, run_until_checkpoint(out, signal.SIGINT, sigint_ignored=True), "SIGINT")


def test_the_library_keeps_an_ignored_sigint_ignored():
    """Only the CLI (a process of its own) takes SIGINT back; gradfit.fit in someone's program leaves it ignored."""

    class SigintAt:
        def on_step(self, state):
            if state.step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = gradfit.fit(
            "linear",
            "builtin:linear",
            y="y",
            optimizer="sgd",
            lr=0.1,
            steps=10,
            uncertainty=False,
            callbacks=[SigintAt()],
        )
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.stop_reason == "max_steps" and result.steps == 10


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved")
    r = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear?n=500",
            *OPTIONS,
            "--steps",
            "20",
            "--checkpoint-every",
            "10",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    return out


def test_resume_with_other_options_is_refused_listing_them(saved_run):
    r = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear?n=500",
            *OPTIONS,
            "--lr",
            "0.02",
            "--seed",
            "3",
            "--steps",
            "40",
            "--resume",
            str(saved_run),
        ],
    )
    assert r.exit_code == 2
    assert "belongs to a different fit" in r.stderr
    assert "option 'lr': the checkpoint has 0.01, this fit has 0.02" in r.stderr
    assert "option 'seed': the checkpoint has 0, this fit has 3" in r.stderr
    assert "Traceback" not in r.stderr


def test_resume_on_other_data_is_refused(saved_run):
    r = runner.invoke(app, ["fit", "builtin:linear?n=400", *OPTIONS, "--steps", "40", "--resume", str(saved_run)])
    assert r.exit_code == 2 and "data 'rows': the checkpoint has 500, this fit has 400" in r.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "there is no checkpoint at"),
        (b"PK\x03\x04 cut short", "is damaged"),
        (b"not a checkpoint at all", "is damaged"),
    ],
)
def test_a_missing_or_corrupt_checkpoint_exits_2(tmp_path, content, message):
    if content is not None:
        (tmp_path / "checkpoint.pt").write_bytes(content)
    r = runner.invoke(app, ["fit", "builtin:linear?n=500", *OPTIONS, "--resume", str(tmp_path)])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "result.json").exists()
