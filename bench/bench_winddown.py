"""How fast ``gradfit fit`` winds down after Ctrl-C with a full history (10^6 rows), and what a second Ctrl-C leaves.

A batch-size-1 fit needs 10^6 steps to fill its history; here the history is put into a
checkpoint instead (990,000 rows, so that the steps run before the signal do not thin it), and the fit is
resumed from it with the real CLI in a process of its own. Once it is stepping, SIGINT is sent and the script
reports the seconds until ``result.json`` (the last file of the run) is in place and until
the process has exited, the exit code and the files left. ``--second S`` sends a second SIGINT
S seconds after the first and checks that no temporary file is left.

Run with ``python bench/bench_winddown.py`` (add ``--rows 100000`` for a quicker look).
Absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = "builtin:linear?n=1000"
OPTIONS = [
    "--y",
    "y",
    "--model",
    "linear",
    "--batch-size",
    "1",
    "--optimizer",
    "sgd",
    "--lr",
    "0.001",
    "--no-uncertainty",
]


def gradfit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradfit", "fit", DATA, *OPTIONS, *args]


def full_checkpoint(folder: Path, rows: int) -> None:
    """A run in ``folder`` whose checkpoint holds ``rows`` history rows, as if it had run that many steps."""
    subprocess.run(gradfit("--steps", "10", "--checkpoint-every", "10", "--out", str(folder), "--quiet"), check=True)
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    steps = torch.arange(rows, dtype=torch.float64)
    table = torch.stack(
        [
            steps,
            steps / 1000,
            1 / (1 + steps),
            torch.full_like(steps, float("nan")),
            torch.full_like(steps, 0.001),
            1 / (1 + steps).sqrt(),
            steps * 1e-4,
        ],
        dim=1,
    )
    every = max(1, rows // 2000)
    snap_steps = torch.arange(0, rows, every, dtype=torch.int64)
    state["recorder"].update(
        rows=table,
        snap_steps=snap_steps,
        row_every=1,
        snapshot_every=every,
        snaps=state["params"]["a"].double().expand(len(snap_steps), -1).clone(),
    )
    state["step"] = rows
    torch.save(state, folder / "checkpoint.pt")


def interrupt(folder: Path, second: float | None) -> dict:
    result = folder / "result.json"
    before = result.stat().st_mtime_ns
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        gradfit("--steps", "100000000", "--resume", str(folder)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "Writing to DIR (continuing the run saved there)": said as the steps start
    assert line.startswith("Writing to"), line + proc.stderr.read()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    if second is not None:
        time.sleep(second)
        proc.send_signal(signal.SIGINT)
    saved = None
    while proc.poll() is None:
        if saved is None and result.exists() and result.stat().st_mtime_ns != before:
            saved = time.monotonic() - t0
        time.sleep(0.005)
    exited = time.monotonic() - t0
    _, err = proc.communicate()
    if saved is None and result.exists() and result.stat().st_mtime_ns != before:
        saved = exited
    return {
        "saved_s": saved,
        "exit_s": exited,
        "code": proc.returncode,
        "message": err.strip()[-400:],
        "files": sorted(p.name for p in folder.iterdir()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=990_000)  # room for the steps run before the signal
    parser.add_argument("--second", type=float, default=None, help="send a second SIGINT this many seconds later")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        full_checkpoint(folder, args.rows)
        size = {p.name: p.stat().st_size for p in folder.iterdir()}
        out = interrupt(folder, args.second)
        for name in ("history.csv", "checkpoint.pt"):
            size[name] = (folder / name).stat().st_size if (folder / name).exists() else None
    print(
        f"history rows: {args.rows:,}; checkpoint.pt {size['checkpoint.pt'] or 0:,} bytes, history.csv "
        f"{size['history.csv'] or 0:,} bytes"
    )
    print(
        f"SIGINT -> result.json written: {out['saved_s']} s; -> process exited: {out['exit_s']:.2f} s "
        f"(exit {out['code']})"
    )
    print(f"files: {', '.join(out['files'])}")
    print(f"message: {out['message']}")
    leftovers = [f for f in out["files"] if f.startswith(".tmp-")]
    print("temporary files left:", leftovers or "none")


if __name__ == "__main__":
    main()
