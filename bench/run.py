"""Issue 11's ratio table: gradfit against its peers, measured side by side in one run.

Run with ``make bench`` (one thread, then the default threads) or ``python bench/run.py``. Each ratio is gradfit's
time over its peer's, both measured in this run, alternated repeat by repeat, medians taken; absolute times depend
on the machine and its load, the ratios much less. The memory floor of a step is the bytes of the columns it uses
(x and y, float32) over the best read bandwidth of one ``sum`` pass over a large float32 array, measured at the
start and at the end of the run (the best of both: other processes only ever lower it). Every line also says
whether what it timed computed the right numbers (``same result``: equal to a float64 reference of the same steps,
to curve_fit's parameters and standard errors, or a CLI run that finished).

Options: ``--quick`` (fewer sizes and repeats, a smoke run), ``--rows 1,5`` (some rows; see ``peers.ROWS``),
``--json FILE`` (the table as JSON), ``--repeats N`` (more repeats on a noisy machine), ``--max-rows N`` and
``--floor-mb M`` (tiny sizes, for the smoke test).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from peers import ROWS, Line, Plan, warm_up
from timing import floor_seconds, read_bandwidth

import gradfit

NOTES = """\
measured: gradfit (the row passes its fit ran, result.diagnostics["row_pass"]) or a peer timed against the floor.
time: rows 1-4 per step (gradfit: the loop's steady step, from its history's clock; a one-time set-up before the
  first step is named under "measured"), rows 5-6 the whole call or process; medians.
memory floor: one read of x and y (8 bytes a row, float32) at the measured bandwidth; a step on sufficient
  statistics (models linear in their parameters, mse) reads no rows, so its ratio can fall below 1.
same result: the parameters equal a float64 reference of the same steps (1e-5), or curve_fit's parameters (1e-5)
  and standard errors (1e-3), or the CLI run exited 0 and wrote result.json; '-': nothing compared."""


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats: a smoke run")
    parser.add_argument("--rows", default=",".join(ROWS), help="rows of the table to run, e.g. 1,5 (default: all)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON to this file")
    parser.add_argument("--max-rows", type=positive, help="cap every dataset at this many rows (for a smoke run)")
    parser.add_argument("--repeats", type=positive, help="repeats of every measurement (default: each row's own, 3-15)")
    parser.add_argument("--floor-mb", type=positive, default=256, help="size of the array the floor is read from (MB)")
    args = parser.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}: choose among {', '.join(ROWS)}")
    return args


def seconds_text(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def ratio_text(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def yes_no(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "NO")


def markdown(lines: list[Line]) -> str:
    """The table as Markdown, ready for the README."""
    out = [
        "| row | work | measured | time | peer | peer time | ratio | target | met | same result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        target = "-" if line.target is None else f"<= {ratio_text(line.target)}"
        out.append(
            f"| {line.row} | {line.work} | {line.subject} | {seconds_text(line.seconds)} | {line.peer} | "
            f"{seconds_text(line.peer_seconds)} | {ratio_text(line.ratio)} | {target} | {yes_no(line.met)} | "
            f"{yes_no(line.agree)} |"
        )
    return "\n".join(out)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def machine() -> dict[str, Any]:
    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "gradfit": gradfit.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the floor, then each chosen row; print the table and return it as a JSON-able dict."""
    began = time.perf_counter()
    about = machine()
    bandwidth = read_bandwidth(args.floor_mb)
    plan = Plan(bandwidth=bandwidth, quick=args.quick, max_rows=args.max_rows, repeats_given=args.repeats)
    print(
        f"torch {about['torch']}, gradfit {about['gradfit']}, {about['threads']} threads "
        f"(OMP_NUM_THREADS={about['OMP_NUM_THREADS']}), {about['cpus']} CPUs, {about['date']}"
    )
    print(
        f"memory floor: read bandwidth {bandwidth / 1e9:.2f} GB/s (best sum pass over {args.floor_mb} MB float32; "
        "measured again at the end, the best kept); floor of a step = 8 bytes a row (x and y, float32) / that "
        f"bandwidth = {seconds_text(plan.floor(10**6))} per 10^6 rows",
        flush=True,
    )
    warm_up()
    lines: list[Line] = []
    for row in args.rows:
        title, measure = ROWS[row]
        print(f"row {row}: {title} ...", flush=True)
        lines += measure(plan)
    at_start, at_end = bandwidth, read_bandwidth(args.floor_mb)
    bandwidth = max(at_start, at_end)
    for line in lines:
        if line.floor_rows is not None:
            line.peer_seconds = floor_seconds(line.floor_rows, 2, bandwidth)
    table = markdown(lines)
    print(table)
    print(NOTES)
    print(f"memory floor: read bandwidth {at_start / 1e9:.2f} GB/s at the start, {at_end / 1e9:.2f} at the end")
    seconds = time.perf_counter() - began
    print(f"peak RSS {peak_rss_mb():.0f} MB, {seconds:.0f} s in all")
    return {
        **about,
        "bandwidth_bytes_per_s": bandwidth,
        "bandwidth_at_start_and_end": [at_start, at_end],
        "floor_mb": args.floor_mb,
        "quick": args.quick,
        "max_rows": args.max_rows,
        "peak_rss_mb": peak_rss_mb(),
        "seconds": seconds,
        "lines": [line.as_dict() for line in lines],
        "markdown": table,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("interrupted: no table", file=sys.stderr)
        return 130
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
