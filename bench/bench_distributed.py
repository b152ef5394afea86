"""What many processes cost before any row is read: a 2-rank torchrun launch, and one all-reduce of a pass's sums.

Three figures, on the loopback address with gloo and one thread per process:

- **launch**: seconds from starting ``torchrun --nproc-per-node 2`` of a script that only joins the group
  (``gradfit.distributed.init_from_env``) and leaves, to its exit; beside it, a plain ``python -c "import torch"``
  (what any fit pays in one process), alternated run by run.
- **all-reduce**: the median over ``--reps`` calls of ``all_reduce_sums`` on 10 float64 numbers (a
  gradient-descent step of an 8-parameter model: p+2), alternated call by call with torch's bare
  ``dist.all_reduce`` of one 10-number buffer (the floor gradfit's flatten-and-split adds to), and the same for
  the p(p+1)/2+p+2 = 46 numbers of an 8-parameter Levenberg-Marquardt step split in three sums.

Run with ``python bench/bench_distributed.py`` (``--launches 5 --reps 1000`` by default). Absolute times depend
on the machine and its load; the ratios are taken between alternated measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

WORKER = r"""
import json, statistics, sys, time
import torch
import torch.distributed as dist
from gradfit import distributed

mode, reps = sys.argv[1], int(sys.argv[2])
group = distributed.init_from_env(timeout_s=60)
if mode == "allreduce":
    def timed(call, make):
        tensors = make()
        t = time.perf_counter()
        call(tensors)
        return time.perf_counter() - t
    zeros = lambda *sizes: [torch.zeros(n, dtype=torch.float64) for n in sizes]
    gd, flat10 = (lambda: zeros(8, 1, 1)), (lambda: zeros(10))
    lm, flat46 = (lambda: zeros(36, 8, 2)), (lambda: zeros(46))
    bare = lambda ts: dist.all_reduce(ts[0])
    times = {"gradfit 10": [], "bare 10": [], "gradfit 46": [], "bare 46": []}
    for i in range(reps + 50):
        pairs = (("gradfit 10", distributed.all_reduce_sums, gd), ("bare 10", bare, flat10),
                 ("gradfit 46", distributed.all_reduce_sums, lm), ("bare 46", bare, flat46))
        for name, call, make in (pairs if i % 2 == 0 else pairs[::-1]):
            seconds = timed(call, make)
            if i >= 50:
                times[name].append(seconds)
    if distributed.is_writer():
        print("RESULT " + json.dumps({k: statistics.median(v) for k, v in times.items()}), flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    names = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    out = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("TORCHELASTIC")}
    out.update(PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return out


def torchrun(script: Path, *args: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    command += ["--master-port", str(free_port()), str(script), *args]
    started = time.perf_counter()
    done = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"torchrun failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def plain_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], env=env(), check=True, timeout=300)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--reps", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "worker.py"
        script.write_text(WORKER)
        launch, plain = [], []
        for _ in range(args.launches):
            launch.append(torchrun(script, "join", "0")[0])
            plain.append(plain_python())
        _, out = torchrun(script, "allreduce", str(args.reps))
    medians = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    launch_s, plain_s = statistics.median(launch), statistics.median(plain)
    print(
        f"2-rank torchrun launch (join, leave): {launch_s:.2f} s; python -c 'import torch': {plain_s:.2f} s; "
        f"ratio {launch_s / plain_s:.1f}"
    )
    for n in ("10", "46"):
        ours, bare = medians[f"gradfit {n}"], medians[f"bare {n}"]
        print(
            f"all_reduce_sums of {n} float64 (median of {args.reps}): {ours * 1e6:.0f} us; bare dist.all_reduce: "
            f"{bare * 1e6:.0f} us; ratio {ours / bare:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
