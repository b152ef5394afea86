"""Mini-batches of one fit over two processes (torchrun, gloo on 127.0.0.1), each reading its own row groups of a
Parquet file (:class:`gradfit.train.shard_batches.ShardBatches`).

The oracle: without shuffling, step ``k`` of an epoch takes rows ``[floor(k n_r / P), floor((k+1) n_r / P))`` of
each rank's ``n_r`` rows; torch.optim.SGD on the mean loss of exactly those rows, in one process, must give the
fit's every loss and its parameters. With shuffling, a seed fixes the batches: two launches agree bit for bit, and a
fit stopped and resumed from its checkpoint ends where the uninterrupted one does.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.train.test_distributed_fit import free_port

from gradfit import distributed
from gradfit.errors import ConfigError
from gradfit.train.shard_batches import _check_shares, _part

ROOT = Path(__file__).resolve().parents[2]

#: Rank 0 reads 3 row groups of 1000 rows, rank 1 four (the split falls on the lower group boundary of a tie).
ROWS, GROUP_ROWS = 7000, 1000

WORKER = """
import json, sys, warnings
import torch
import gradfit
from gradfit import distributed
from gradfit.data.shard_rows import open_shard
from gradfit.errors import ConfigError
from gradfit.train import stream_batches

warnings.simplefilter("ignore")
folder, name = sys.argv[1], sys.argv[2]
group = distributed.init_from_env(timeout_s=60)
path = f"{folder}/data.parquet"
plain = open_shard(path, ["x"], "y", group, dtype=torch.float64)
weighted = open_shard(path, ["x"], "y", group, weights="w", dtype=torch.float64)
out = {"offset": plain.offset, "n": len(plain.local)}


def run(rows, **options):
    r = gradfit.fit("a*x + b", rows, y="y", init={"a": 0.0, "b": 0.0}, dtype="float64", **options)
    return {"params": r.flat_params, "losses": [float(v) for v in r.history.loss], "steps": r.steps,
            "stop": r.stop_reason}


class StopAt:
    def __init__(self, step):
        self.step = step

    def on_step(self, state):
        return state.step == self.step


sgd = dict(optimizer="sgd", lr=0.1, batch_size=256, epochs=2, shuffle=False)
out["sgd"] = run(plain, **sgd)
out["sgd-weighted"] = run(weighted, **sgd)
line = torch.nn.Linear(1, 1).double()
torch.nn.init.zeros_(line.weight), torch.nn.init.zeros_(line.bias)
r = gradfit.fit(line, plain, y="y", dtype="float64", **sgd)
out["sgd-module"] = {"params": dict(zip("ab", r.flat_params.values())), "losses": [float(v) for v in r.history.loss],
                     "steps": r.steps, "stop": r.stop_reason}
adam = dict(optimizer="adam", lr=0.05, batch_size=300, epochs=3, seed=7)
out["adam"] = run(plain, **adam)
out["adam-seed-8"] = run(plain, **{**adam, "seed": 8})
keep = f"{folder}/checkpoints-{name}"
out["stopped"] = run(plain, **adam, checkpoint_dir=keep, checkpoint_every=10, callbacks=[StopAt(37)])
out["resumed"] = run(plain, **adam, checkpoint_dir=keep, checkpoint_every=10, resume=keep)
# Windows of at most 1500 rows: one row group each, three or four a process, read one after another.
stream_batches.BUFFER_ROWS = 1500
out["sgd-windows"] = run(plain, **sgd)
out["adam-windows"] = run(plain, **adam)
keep = f"{folder}/checkpoints-windows-{name}"
out["stopped-windows"] = run(plain, **adam, checkpoint_dir=keep, checkpoint_every=10, callbacks=[StopAt(37)])
out["resumed-windows"] = run(plain, **adam, checkpoint_dir=keep, checkpoint_every=10, resume=keep)
try:
    run(plain, optimizer="sgd", lr=0.1, batch_size=2, steps=3)
except ConfigError as exc:
    out["too-small"] = str(exc)
with open(f"{folder}/{name}-rank{group.rank}.json", "w") as f:
    json.dump(out, f)
"""


def table(folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    x = np.linspace(-2.0, 2.0, ROWS)
    y = 1.5 * x - 0.7 + 0.3 * rng.standard_normal(ROWS)
    w = rng.uniform(0.5, 2.0, ROWS)
    path = folder / "data.parquet"
    pq.write_table(pa.table({"x": x, "y": y, "w": w}), path, row_group_size=GROUP_ROWS)
    return path


def launch(folder: Path, name: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS and not k.startswith("TORCHELASTIC")}
    env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1", TMPDIR=str(folder))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", "0"]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(folder / "worker.py")]
    done = subprocess.run([*command, str(folder), name], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((folder / f"{name}-rank{k}.json").read_text()) for k in (0, 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-ranks-batches")
    table(folder)
    (folder / "worker.py").write_text(WORKER)
    return launch(folder, "first"), launch(folder, "second"), folder


def oracle(folder: Path, shards: list[tuple[int, int]], weighted: bool, batch: int, epochs: int, lr: float):
    """torch.optim.SGD on the mean loss of each step's rows (each rank's even part of its own rows, in file order)."""
    import pyarrow.parquet as pq

    data = pq.read_table(folder / "data.parquet").to_pandas()
    x, y, w = (torch.tensor(data[c].to_numpy(), dtype=torch.float64) for c in ("x", "y", "w"))
    per_epoch = math.ceil(ROWS / batch)
    a, b = (
        torch.zeros((), dtype=torch.float64, requires_grad=True),
        torch.zeros((), dtype=torch.float64, requires_grad=True),
    )
    opt = torch.optim.SGD([a, b], lr=lr)
    losses = []
    for step in range(epochs * per_epoch):
        k = step % per_epoch
        rows = torch.cat([torch.arange(o + (k * n) // per_epoch, o + ((k + 1) * n) // per_epoch) for o, n in shards])
        squared = (a * x[rows] + b - y[rows]) ** 2
        loss = (w[rows] * squared).sum() / w[rows].sum() if weighted else squared.mean()
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"a": float(a.detach()), "b": float(b.detach())}, losses


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgd", "sgd-weighted", "sgd-module", "sgd-windows"])
def test_batches_of_two_processes_are_each_ranks_even_parts(runs, name):
    (zero, first), _, folder = runs
    assert (zero["offset"], zero["n"], first["offset"], first["n"]) == (0, 3000, 3000, 4000)  # uneven shards
    assert zero[name] == first[name]  # every rank took the same steps to the same numbers
    params, losses = oracle(folder, [(0, 3000), (3000, 4000)], name.endswith("weighted"), 256, 2, 0.1)
    fit = zero[name]
    assert fit["steps"] == len(losses) == 2 * 28
    assert fit["losses"][: len(losses)] == pytest.approx(losses, rel=1e-10)
    assert fit["params"] == pytest.approx(params, rel=1e-10)


@pytest.mark.slow
def test_a_seed_fixes_the_batches_of_two_processes(runs):
    (zero, first), (again, _), _ = runs
    assert zero["adam"] == first["adam"] == again["adam"]  # bit for bit, across ranks and launches
    assert zero["adam"]["steps"] == 3 * math.ceil(ROWS / 300)
    assert zero["adam-seed-8"]["params"] != zero["adam"]["params"]  # the seed does draw the batches
    assert zero["adam"]["params"]["a"] == pytest.approx(1.5, abs=0.05)


@pytest.mark.slow
def test_windows_shuffle_within_each_process(runs):
    (zero, first), (again, _), _ = runs
    assert zero["adam-windows"] == first["adam-windows"] == again["adam-windows"]
    assert zero["adam-windows"]["params"] != zero["adam"]["params"]  # other windows, other batches
    assert zero["adam-windows"]["params"]["a"] == pytest.approx(1.5, abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["", "-windows"])
def test_a_stopped_fit_of_two_processes_resumes_to_the_same_end(runs, suffix):
    (zero, first), _, _ = runs
    whole, resumed = zero["adam" + suffix], zero["resumed" + suffix]
    assert zero["stopped" + suffix]["steps"] < whole["steps"]  # stopped mid-epoch (24 steps an epoch), saved at 30
    assert resumed == first["resumed" + suffix]
    assert resumed["params"] == whole["params"]
    assert resumed["losses"] == whole["losses"]


@pytest.mark.slow
def test_a_batch_too_small_for_a_process_is_refused_on_every_rank(runs):
    (zero, first), _, _ = runs
    assert zero["too-small"] == first["too-small"]
    assert "rank 0 holds 3,000 rows, fewer than the 3,500 steps" in zero["too-small"]
    assert "batch_size of at least 3" in zero["too-small"]


def test_even_parts_cover_every_row_once():
    for rows, parts in [(3000, 28), (4000, 28), (7, 7), (10, 3), (1001, 1000)]:
        edges = [_part(rows, k, parts) for k in range(parts + 1)]
        assert edges[0] == 0 and edges[-1] == rows
        sizes = np.diff(edges)
        assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def test_shares_are_checked_against_the_steps_of_an_epoch():
    _check_shares([3000, 4000], 256, 28)  # every rank has rows for every step
    with pytest.raises(ConfigError, match=r"rank 1 holds 5 rows, fewer than the 6 steps .* at least 3,"):
        _check_shares([10, 5], 3, 6)
