"""A full-batch step on a GPU against its memory bandwidth (issue 11, item 5), in one run.

Times a full-batch sgd step of ``a*exp(-b*x) + c`` and of ``a*x + b`` (float32) by ``gradfit.fit(device=...)`` for
each row pass (``auto``: the fused formula pass; ``compiled``; ``autograd``), the data moved to the device once. The
floor is the bytes of the used columns (x and y, read once a step) divided by the device's read bandwidth, the
best of a few ``sum`` passes over 1 GiB in the same run; a step at 70% of the bandwidth is 1.43x the floor. Each
path is also run on the first 10^6 rows and its parameters compared with the autograd pass's on the CPU in
float64 (``max_rel_diff_vs_cpu_float64``, about 1e-6 expected in float32), so a fast wrong step shows.

    python bench/bench_gpu.py --device cuda [--rows 100000000] [--json out.json]
    python bench/bench_gpu.py --device cpu --rows 100000   # a smoke run anywhere
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import torch

import gradfit

MODELS = {"a*exp(-b*x) + c": {"a": 1.9, "b": 0.8, "c": 0.2}, "a*x + b": {"a": 0.5, "b": 0.1}}
PASSES = ("auto", "compiled", "autograd")
TARGET = 1 / 0.7  # a step at 70% of the read bandwidth


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def read_bandwidth(device: str, numbers: int, repeats: int = 7) -> float:
    """Bytes per second of the best of ``repeats`` float32 ``sum`` passes over ``numbers`` numbers on ``device``."""
    big = torch.rand(numbers, device=device)
    big.sum()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        big.sum()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return numbers * big.element_size() / best


def data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 5.0, rows, dtype=np.float32)
    y = (2.0 * np.exp(-0.7 * x) + 0.3 + rng.normal(0.0, 0.05, rows)).astype(np.float32)
    return x, y


def fit(model: str, table: dict, device: str, row_pass: str, steps: int, dtype: str = "float32"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.fit(
            model, table, y="y", optimizer="sgd", lr=0.01, steps=steps, dtype=dtype, init=MODELS[model],
            device=device, row_pass=row_pass, uncertainty=False,
        )  # fmt: skip


def agreement(model: str, table: dict, device: str, row_pass: str, steps: int) -> float:
    """The largest relative difference between the parameters of this path on ``device`` (float32) and of the
    autograd pass on the CPU in float64, the same fit on up to 10^6 of the rows: a fast wrong step shows here."""
    got = fit(model, table, device, row_pass, steps).flat_params
    want = fit(model, table, "cpu", "autograd", steps, "float64").flat_params
    return max(abs(got[k] - v) / max(abs(v), 1e-12) for k, v in want.items())


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bandwidth-numbers", type=int, default=2**28, help="float32 numbers the floor reads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    bandwidth = read_bandwidth(device, args.bandwidth_numbers)
    x, y = data(args.rows)
    table = {"x": x, "y": y}
    floor = 2 * 4 * args.rows / bandwidth  # x and y, float32, read once a step
    print(f"{name}: read bandwidth {bandwidth / 1e9:.0f} GB/s; {args.rows:,} rows; floor {floor * 1e3:.3f} ms/step")
    lines = []
    for model in MODELS:
        small = {"x": x[: min(args.rows, 10**6)], "y": y[: min(args.rows, 10**6)]}
        for row_pass in PASSES:
            try:
                fit(model, table, device, row_pass, 2)  # warm-up: the data's first move, a compile
                r = fit(model, table, device, row_pass, args.steps)
            except Exception as exc:  # a path that fails on this device is a line of the table, not the end of it
                lines.append({"model": model, "row_pass": row_pass, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{model:<18} {row_pass:<9} failed: {type(exc).__name__}: {exc}")
                continue
            step = r.timings["loop"] / args.steps
            agree = agreement(model, small, device, row_pass, args.steps)
            line = {
                "model": model, "row_pass": r.diagnostics.get("row_pass"), "asked": row_pass, "device": name,
                "rows": args.rows, "step_ms": step * 1e3, "floor_ms": floor * 1e3, "x_floor": step / floor,
                "bandwidth_share": floor / step, "target_met": step / floor <= TARGET, "loss": r.loss,
                "max_rel_diff_vs_cpu_float64": agree,
            }  # fmt: skip
            lines.append(line)
            print(f"{model:<18} {row_pass:<9} {step * 1e3:9.3f} ms/step  {step / floor:6.2f}x floor "
                  f"({floor / step:5.1%} of bandwidth)  path {line['row_pass']}")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": name, "bandwidth_bytes_per_s": bandwidth, "lines": lines}, f, indent=2)
    return lines


if __name__ == "__main__":
    main()
    sys.exit(0)
