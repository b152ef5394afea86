"""A learning-rate sweep as one batched fit (``gradfit.sweep``) against a loop of ``gradfit.fit`` calls.

256 learning rates (log-spaced 1e-4 .. 1) x 100 sgd steps on 10^4 rows, for the zoo ``linear`` model and for the
formula ``a*exp(-b*x) + c``. The baseline is the loop of fits: ``--sample`` of the 256 fits (evenly spaced over the
learning rates, so diverging ones are in it) are timed and the time scaled to 256; the sweep runs all 256. The two
are alternated, repeat by repeat, so both see the same machine load, and the medians compared. Each sampled fit's
parameters are checked against its sweep member. Run with ``OMP_NUM_THREADS=1 python bench/bench_sweep.py`` and
without OMP_NUM_THREADS (torch's default threads); the ratios are the numbers to compare.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from timing import interleaved  # bench/ is a folder of scripts that import each other by name

import gradfit

MODELS = ("linear", "a*exp(-b*x) + c")
TARGETS = {"linear": 100.0, "a*exp(-b*x) + c": 20.0}


def data(rows: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, rows)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.05 * rng.normal(size=rows)}


def measure(model: str, table: dict, lrs: np.ndarray, steps: int, sample: int, dtype: str, device: str = "cpu"):
    picked = lrs[np.linspace(0, len(lrs) - 1, sample).round().astype(int)]

    def loop():
        start = time.perf_counter()
        results = [gradfit.fit(model, table, y="y", optimizer="sgd", lr=float(lr), steps=steps, dtype=dtype,
                               device=device) for lr in picked]  # fmt: skip
        return (time.perf_counter() - start) * len(lrs) / sample, results

    def batched():
        start = time.perf_counter()
        rates = [float(v) for v in lrs]
        out = gradfit.sweep(model, table, y="y", optimizer="sgd", lr=rates, steps=steps, dtype=dtype, device=device)
        return time.perf_counter() - start, out

    return loop, batched, picked


def agreement(results, out, picked) -> float:
    """The largest relative difference of a sampled fit's parameters from its sweep member's."""
    by_lr = {r["lr"]: r for r in out.rows}
    worst = 0.0
    for lr, fit in zip(picked, results):
        row = by_lr[float(lr)]
        for name, value in fit.flat_params.items():
            if np.isfinite(value):
                worst = max(worst, abs(value - row[name]) / max(1.0, abs(value)))
    return worst


def main(argv: list[str] | None = None) -> list[dict]:
    """Print the table; returns its lines (model, seconds, ratio, agreement) for tests/test_bench.py."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--lrs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sample", type=int, default=16, help="fits of the loop timed, scaled to --lrs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also the formula's sweep with row_pass='compiled' (first call timed apart)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    table = data(args.rows)
    lrs = np.logspace(-4, 0, args.lrs)
    print(f"torch threads {torch.get_num_threads()}; {args.lrs} lrs x {args.steps} sgd steps, {args.rows} rows, "
          f"{args.dtype} on {args.device}; loop of fits: {args.sample} timed, scaled to {args.lrs}")  # fmt: skip
    lines = []
    print(f"{'model':<18} {'loop of fits (s)':>17} {'sweep (s)':>10} {'ratio':>8} {'target':>7} {'max |dp|':>9}  path")
    for model in MODELS:
        loop, batched, picked = measure(model, table, lrs, args.steps, args.sample, args.dtype, args.device)
        medians, outputs = interleaved({"loop": loop, "sweep": batched}, args.repeats)
        ratio = medians["loop"] / medians["sweep"]
        worst = agreement(outputs["loop"], outputs["sweep"], picked)
        print(f"{model:<18} {medians['loop']:>17.3f} {medians['sweep']:>10.4f} {ratio:>7.1f}x {TARGETS[model]:>6.0f}x "
              f"{worst:>9.1e}  {outputs['sweep'].row_pass}")  # fmt: skip
        lines.append({"model": model, **medians, "ratio": ratio, "agreement": worst})
        if args.compiled and model != "linear":
            lines.append(compiled_line(model, table, lrs, args, medians["loop"]))
    return lines


def compiled_line(model: str, table: dict, lrs: np.ndarray, args, loop: float) -> dict:
    """The sweep through torch.compile: its first call (the compile in it) and the median of later calls."""
    rates = [float(v) for v in lrs]

    def once() -> float:
        start = time.perf_counter()
        out = gradfit.sweep(
            model, table, y="y", lr=rates, steps=args.steps, dtype=args.dtype, row_pass="compiled", device=args.device
        )
        assert out.row_pass == "compiled fused formula", out.row_pass
        return time.perf_counter() - start

    first = once()
    warm = sorted(once() for _ in range(max(1, args.repeats)))[max(1, args.repeats) // 2]
    print(f"{'  compiled':<18} {loop:>17.3f} {warm:>10.4f} {loop / warm:>7.1f}x {TARGETS[model]:>6.0f}x "
          f"{'':>9}  first call {first:.1f} s (compile included)")  # fmt: skip
    return {"model": f"{model} (compiled)", "loop": loop, "sweep": warm, "ratio": loop / warm, "first": first}


if __name__ == "__main__":
    main()
