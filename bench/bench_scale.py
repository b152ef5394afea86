"""Issue 13's figures: rows per second of a full-batch step on a streamed file against the same file in memory, and
of one fit over 1 and 2 processes (torchrun, gloo on 127.0.0.1), measured side by side in one run.

The problem is a decay on a slope, ``a*exp(-b*x) + c + d*x``, on ``--rows`` rows of a Parquet file written for the
run (row groups of 10^6 rows), full-batch sgd in float64. A step's rows per second is ``rows x steps / loop time``
(``result.timings["loop"]``: the steps alone, not the set-up or the analysis after them):

- **memory**: the file read whole first (``stream=False``), then each step one pass over tensors in memory;
- **streamed**: ``stream=True``, each step one pass over the file (pyarrow, only the used columns);
- **1 process / 2 processes**: the streamed fit, and ``torchrun --nproc-per-node 2`` of it, each process reading
  its own row groups and adding its sums to the other's by one all-reduce per step.

The fits alternate, ``--repeats`` times each, and the table gives the medians and the ratios to the in-memory pass.
Run ``OMP_NUM_THREADS=1 python bench/bench_scale.py`` (one thread per process); the default threads too.

``--batch-size B`` measures one epoch of Adam mini-batches instead (rows per second of the epoch's steps). Their
batches differ between the three (in memory: a random order of all the rows; streamed: blocks shuffled within
windows; 2 processes: each its share of every batch), so the parameters are not compared; the repeats of each must
agree bit for bit (a seed fixes the batches).
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
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}

FIT = r"""
import json, sys, warnings
import torch._dynamo  # torch.optim's first optimizer imports it (about 1.3 s, inside the loop): not a step's cost
import gradfit
from gradfit import distributed
warnings.simplefilter("ignore")
distributed.init_from_env(timeout_s=600)  # under torchrun: this process's row groups, its sums added to the other's
path, model, init, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
r = gradfit.fit(model, path, y="y", init=init, **options)
if distributed.is_writer():
    print(json.dumps({"loop": r.timings["loop"], "steps": r.steps, "n": r.data["n"], "params": r.flat_params}))
"""


def write_file(rows: int, folder: Path) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.linspace(0.0, 4.0, rows)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * np.random.default_rng(0).standard_normal(rows)
    path = folder / "rows.parquet"
    pq.write_table(pa.table({"x": x, "y": y}), path, row_group_size=min(rows, 10**6))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fit(path: Path, options: dict, processes: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(SRC)
    args = [str(path), FORMULA, json.dumps(START), json.dumps(options)]
    if processes == 1:
        command = [sys.executable, "-c", FIT, *args]
    else:
        script = path.parent / "fit.py"
        script.write_text(FIT)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
        command += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"a fit failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="one epoch of Adam mini-batches of this size instead")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    common = {"optimizer": "sgd", "lr": 0.05, "steps": args.steps, "dtype": "float64", "uncertainty": False}
    if args.batch_size:
        common = {"optimizer": "adam", "lr": 0.01, "batch_size": args.batch_size, "epochs": 1, "seed": 1}
        common.update(dtype="float64", uncertainty=False)
    kinds = {
        "memory": ({**common, "stream": False}, 1),
        "streamed": ({**common, "stream": True}, 1),
        "2 processes": ({**common, "stream": True}, 2),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(args.rows, Path(folder))
        rates: dict[str, list[float]] = {k: [] for k in kinds}
        params: dict[str, list[dict]] = {k: [] for k in kinds}
        for _ in range(args.repeats):
            for name, (options, processes) in kinds.items():
                out = run_fit(path, options, processes)
                rows_a_step = out["n"] if not args.batch_size else args.batch_size
                rates[name].append(rows_a_step * out["steps"] / out["loop"])
                params[name].append(out["params"])
    base = statistics.median(rates["memory"])
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    what = f"an epoch of adam batches of {args.batch_size:,}" if args.batch_size else "full-batch sgd step"
    print(f"{what}, {FORMULA}, {args.rows:,} rows, float64, OMP_NUM_THREADS={threads}")
    print(f"{'':14} {'rows/s':>14} {'x memory':>9}")
    table = {}
    for name in kinds:
        rate = statistics.median(rates[name])
        table[name] = {"rows_per_second": rate, "ratio_to_memory": rate / base, "runs": rates[name]}
        print(f"{name:14} {rate:14,.0f} {rate / base:9.2f}")
    if args.batch_size:
        same = all(run == params[k][0] for k in kinds for run in params[k])
        print(f"each kind's repeats bit-identical (a seed fixes the batches): {'yes' if same else 'NO'}")
    else:
        last, memory = {k: params[k][-1] for k in kinds}, params["memory"][-1]
        same = all(abs(last[k][p] - memory[p]) <= 1e-10 * abs(memory[p]) for k in kinds for p in START)
        print(f"same parameters as in memory (1e-10): {'yes' if same else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "threads": threads, "table": table}, indent=1))


if __name__ == "__main__":
    main()
