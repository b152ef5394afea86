"""``torchrun --nproc-per-node 2 -m gradfit fit ...``: two processes on 127.0.0.1 (gloo), each reading its own row
groups of a Parquet file, write one run equal to the one-process fit; a rank that dies ends the job with an error
naming it and no result; a job restarted by torchrun takes up its checkpoint and ends as one never stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit import distributed

ROOT = Path(__file__).resolve().parents[2]
FORMULA = "a*exp(-b*x) + c + d*x"
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Ran the full budget")]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    n = 200_000
    x = np.linspace(0.0, 4.0, n)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * np.random.default_rng(2).standard_normal(n)
    path = tmp_path_factory.mktemp("torchrun") / "decay.parquet"
    pd.DataFrame({"x": x, "y": y}).to_parquet(path, row_group_size=25_000)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(folder: Path, *args, restarts: int = 0) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS and not k.startswith("TORCHELASTIC")}
    logs = folder.parent / f"{folder.name}-torchrun"  # torchrun's log folder, beside the run's (checked clean)
    logs.mkdir(exist_ok=True)
    env.update(PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", TMPDIR=str(logs))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    # torchrun's c10d rendezvous (as for a job that may restart): each attempt meets afresh
    command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "test"]
    command += ["--max-restarts", str(restarts)]
    command += ["-m", "gradfit", "fit", *map(str, args)]
    return subprocess.Popen(
        command, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def finish(proc: subprocess.Popen, limit_s: float = 300) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the job ran past {limit_s} s (a hang):\n{out}\n{err}")
    return proc.returncode, out + err


def workers(proc: subprocess.Popen) -> dict[int, int]:
    """The pids of the job's workers by rank: children of torchrun's agent with a RANK in their environment (the
    agent starts each in a session of its own)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != proc.pid:
                continue
            env = dict(v.split("=", 1) for v in (entry / "environ").read_text().split("\0") if "=" in v)
        except (OSError, ValueError, IndexError):
            continue
        if "RANK" in env:
            found[int(env["RANK"])] = int(entry.name)
    return found


def test_two_processes_write_one_run_equal_to_the_one_process_fit(parquet, tmp_path):
    code, output = finish(launch(tmp_path, parquet, "--model", FORMULA, "--y", "y", "--out", "run", "--plot"))
    assert code == 0, output[-3000:]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    one = gradfit.fit(FORMULA, parquet, y="y")
    assert saved["data"]["n"] == 200_000 and saved["optimizer"] == "lm"
    for name, value in one.flat_params.items():
        assert saved["params"][name] == pytest.approx(value, rel=1e-10)
    assert saved["uncertainty"]["stderr"] == pytest.approx(one.uncertainty["stderr"], rel=1e-8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # rank 1 made no folder of its own
    assert (tmp_path / "run" / "fit.png").stat().st_size > 1000
    assert output.count("Fitted ") == 1  # rank 0 alone printed the report


def long_fit(folder: Path, parquet: Path, resume: str | None = None) -> subprocess.Popen:
    args = [
        parquet,
        *(["--resume", resume] if resume else []),
        "--model",
        FORMULA,
        "--y",
        "y",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--steps",
        "600",
        "--dtype",
    ]
    return launch(folder, *args, "float64", "--out", "run", "--checkpoint-every", "25", "--dist-timeout", "60")


def kill_rank_one_after_a_checkpoint(proc: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 120
    while not (folder / "run" / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    os.kill(workers(proc)[1], signal.SIGKILL)


def test_a_rank_that_dies_ends_the_job_naming_it_and_writes_no_result(parquet, tmp_path):
    proc = long_fit(tmp_path, parquet)
    kill_rank_one_after_a_checkpoint(proc, tmp_path)
    started = time.monotonic()
    code, output = finish(proc, limit_s=120)
    assert code != 0 and time.monotonic() - started < 90  # the peer sees the connection close at once
    assert re.search(r"Root Cause.*?rank\s*:\s*1\b", output, re.S), output[-2000:]  # torchrun names the rank
    assert not (tmp_path / "run" / "result.json").exists()


def test_a_job_started_again_from_its_checkpoint_ends_as_one_never_stopped(parquet, tmp_path):
    # The command torchrun's --max-restarts would run again, given --resume: torchrun's own restart of a gloo job
    # re-meets unreliably on this machine (pytorch/pytorch#167288, "Connection refused" in the new rendezvous), so
    # the test starts the job again itself; under torchrun's restart the CLI takes up --out's checkpoint by itself.
    whole = tmp_path / "whole"
    whole.mkdir()
    code, output = finish(long_fit(whole, parquet))
    assert code == 1 and "did not converge (max_steps)" in output, output[-3000:]  # 600 sgd steps: short of it
    assert "GradfitWarning" not in output  # rank 1's warnings are not printed: rank 0 reports
    again = tmp_path / "again"
    again.mkdir()
    proc = long_fit(again, parquet)
    kill_rank_one_after_a_checkpoint(proc, again)
    code, output = finish(proc)
    assert code != 0 and not (again / "run" / "result.json").exists()
    code, output = finish(long_fit(again, parquet, resume="run"))
    assert code == 1 and "did not converge (max_steps)" in output, output[-3000:]
    a, b = (json.loads((d / "run" / "result.json").read_text()) for d in (whole, again))
    assert b["params"] == a["params"] and b["steps"] == a["steps"] == 600
    assert "resumed_at_step" not in a["diagnostics"]
    assert b["diagnostics"]["resumed_at_step"] > 0  # the job took up the checkpoint, not step 0
