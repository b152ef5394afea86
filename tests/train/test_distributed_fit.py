"""One fit over two processes (torchrun, gloo on 127.0.0.1): each holds half the rows, every pass's sums are added
across them, and the fit equals the one-process fit on all the rows (float64: 1e-10), the same on both ranks.

The shards are :class:`tests.helpers.row_sets.HiddenRows` over each rank's half of one dataset, wrapped in
:class:`gradfit.data.shard_rows.ShardRows`: the fit sees rows it cannot hold, as it would a file's row groups.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import gradfit
from gradfit import distributed

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Ran the full budget")]

CASES = {
    "lm": ("a*exp(-b*x) + c + d*x", {"optimizer": "lm", "chunk_size": 700}),
    "lm-one-chunk": ("a*exp(-b*x) + c + d*x", {"optimizer": "lm"}),
    "sgd": ("a*exp(-b*x) + c + d*x", {"optimizer": "sgd", "lr": 0.05, "steps": 30, "dtype": "float64"}),
    "adam": ("a*exp(-b*x) + c + d*x", {"optimizer": "adam", "steps": 30, "dtype": "float64", "chunk_size": 900}),
    "linear": ("poly2", {"optimizer": "momentum", "lr": 0.01, "momentum": 0.9, "steps": 200, "dtype": "float64"}),
    "lbfgs": ("a*exp(-b*x) + c + d*x", {"optimizer": "lbfgs", "scale": True, "steps": 15, "dtype": "float64"}),
    # Columns 1, X and X² of X near 1000 are nearly parallel: LM and the error bars fold QR factors, not JᵀJ.
    "lm-ill-conditioned": ("a + b*(x + 1000) + c*(x + 1000)**2", {"optimizer": "lm", "chunk_size": 800}),
}

WORKER = """
import json, sys, warnings
import numpy as np, torch
import gradfit
from gradfit import distributed
from gradfit.data.convert import as_dataset
from gradfit.data.shard_rows import ShardRows
from tests.helpers.row_sets import HiddenRows
from tests.train.test_distributed_fit import CASES, START, decay

warnings.simplefilter("ignore")
out = sys.argv[1]
group = distributed.init_from_env(timeout_s=60)
dataset = decay()
start, stop = distributed.shard(len(dataset), group)
mine = ShardRows(HiddenRows(dataset.rows(torch.arange(start, stop))), group)
results = {}
for name, (model, options) in CASES.items():
    init = START if "exp" in model else None
    r = gradfit.fit(model, mine, y="y", init=init, **options)
    results[name] = {"params": r.flat_params, "stderr": r.uncertainty["stderr"], "loss": r.loss, "steps": r.steps,
                     "metrics": r.metrics["train"], "n": r.data["n"], "row_pass": r.diagnostics.get("row_pass")}

# A stop asked on rank 1 alone (SIGINT at step 7, the loop's on_step) stops both ranks at the same step, its vote
# carried by the passes' all-reduce: one collective per step, none of its own (counted around torch's).
import os, signal
counted = []
plain = torch.distributed.all_reduce
def counting(tensor, *args, **kwargs):
    counted.append(tensor.numel())
    return plain(tensor, *args, **kwargs)
class Watch:  # a callback that asks nothing: the loop goes step by step (no blocks of closed-form steps)
    def on_step(self, state):
        pass
class SignalAt:
    def on_step(self, state):
        if state.step == 7 and group.rank == 1:
            os.kill(os.getpid(), signal.SIGINT)
torch.distributed.all_reduce = counting
for name in ("sgd", "linear"):
    model, options = ("poly2", {"optimizer": "sgd", "lr": 0.01}) if name == "linear" else CASES["sgd"]
    init = None if name == "linear" else START
    counts = []
    for steps in (10, 20):
        counted.clear()
        gradfit.fit(model, mine, y="y", init=init, callbacks=[Watch()], **{**options, "steps": steps})
        counts.append(len(counted))
    counted.clear()
    r = gradfit.fit(model, mine, y="y", init=init, callbacks=[SignalAt()], **{**options, "steps": 30})
    results[f"interrupted-{name}"] = {"steps": r.steps, "stop_reason": r.stop_reason, "message": r.message,
                                      "per_step": (counts[1] - counts[0]) / 10, "params": r.flat_params}
torch.distributed.all_reduce = plain
with open(f"{out}/rank{group.rank}.json", "w") as f:
    json.dump(results, f)
"""

START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}


def decay(n: int = 6001):
    import numpy as np
    import torch

    from gradfit.data.convert import as_dataset

    rng = np.random.default_rng(5)
    x = np.linspace(0.0, 4.0, n)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * rng.standard_normal(n)
    return as_dataset({"x": x, "y": y}, y="y", dtype=torch.float64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-ranks")
    script = folder / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS and not k.startswith("TORCHELASTIC")}
    env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1", TMPDIR=str(folder))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", "0"]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), str(folder)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((folder / f"rank{k}.json").read_text()) for k in (0, 1)]


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_fit_as_one(ranks, name):
    model, options = CASES[name]
    one = gradfit.fit(model, decay(), y="y", init=START if "exp" in model else None, **options)
    zero, first = ranks[0][name], ranks[1][name]
    assert zero == first  # every rank took the same steps to the same numbers
    assert zero["n"] == 6001 and zero["steps"] == one.steps
    # An ill-conditioned fit's optimum is known only to about cond(J)·eps: two orders of rounding (one QR fold, or
    # two shards' folds stacked) end at parameters that differ there, its error bars not.
    rel = 1e-7 if "ill" in name else 1e-10
    for key, value in one.flat_params.items():
        assert zero["params"][key] == pytest.approx(value, rel=rel)
    assert zero["stderr"] == pytest.approx(one.uncertainty["stderr"], rel=1e-8)
    assert zero["loss"] == pytest.approx(one.loss, rel=1e-10)
    assert zero["metrics"]["r2"] == pytest.approx(one.metrics["train"]["r2"], rel=1e-10)
    assert zero["row_pass"] == one.diagnostics.get("row_pass")


@pytest.mark.parametrize("name", ["interrupted-sgd", "interrupted-linear"])
def test_a_stop_asked_on_one_rank_stops_both_at_the_same_step(ranks, name):
    zero, first = ranks[0][name], ranks[1][name]
    assert zero["params"] == first["params"] and zero["steps"] == first["steps"]  # the same step, the same numbers
    assert zero["stop_reason"] == first["stop_reason"] == "interrupted"
    assert "(a stop asked of another process)" in zero["message"] and "(SIGINT)" in first["message"]
    # rank 1 asks after step 7; the next pass carries its vote, so both stop within a step of it
    assert 8 <= zero["steps"] <= 9
    # one all-reduce a step: the sgd fit's vote rides on its pass's sums; the linear model's steps read only its
    # statistics, so there the vote is the step's one all-reduce
    assert zero["per_step"] == first["per_step"] == 1.0
