"""One fit per group, the Gpufit benchmark: fits per second of gradfit's grouped Levenberg-Marquardt against a loop of
scipy's curve_fit, and their agreement.

10^5 groups of 25 points (a 5 x 5 pixel window, u, v in 0..4), each a 2-D Gaussian with 5 parameters: amplitude
500, centre (2, 2), width 1, background 10, each scaled by U(0.9, 1.1) per group; noise N(0, (amplitude/10)²)
(SNR 10); start = truth x U(0.9, 1.1); tolerance 1e-4 (ftol), at most 10 iterations. gradfit fits every group with
``gradfit.fit(formula, table, group="id", init=starts, tol=1e-4, steps=10)``; scipy fits a subset (``--scipy``
groups, default 2000) one by one with ``curve_fit(..., ftol=1e-4)``. Both in the same process, alternated (scipy,
gradfit, scipy, gradfit), under OMP_NUM_THREADS=1 unless ``--threads`` says otherwise.

    OMP_NUM_THREADS=1 python bench/bench_groups.py [--groups 100000] [--scipy 2000] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

FORMULA = "amp*exp(-((u - x0)**2 + (v - y0)**2)/(2*w**2)) + bg"
NAMES = ("amp", "x0", "y0", "w", "bg")
TRUTH = np.array([500.0, 2.0, 2.0, 1.0, 10.0])


def gaussian(uv, amp, x0, y0, w, bg):
    u, v = uv
    return amp * np.exp(-((u - x0) ** 2 + (v - y0) ** 2) / (2 * w**2)) + bg


def make(groups: int, seed: int = 0):
    """The table (id, u, v, z), the true parameters and the starts, one row of each per group."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    truth = TRUTH * rng.uniform(0.9, 1.1, (groups, 5))
    start = truth * rng.uniform(0.9, 1.1, (groups, 5))
    u, v = np.meshgrid(np.arange(5.0), np.arange(5.0), indexing="ij")
    u, v = u.ravel(), v.ravel()
    z = gaussian((u[None, :], v[None, :]), *(truth[:, j : j + 1] for j in range(5)))
    z = z + rng.normal(size=z.shape) * (truth[:, :1] / 10)
    table = pd.DataFrame({"id": np.repeat(np.arange(groups), 25), "u": np.tile(u, groups), "v": np.tile(v, groups)})
    table["z"] = z.ravel()
    return table, truth, start, (u, v), z


def run_gradfit(table, start, device: str):
    import gradfit

    t = time.perf_counter()
    result = gradfit.fit(
        FORMULA,
        table,
        y="z",
        group="id",
        init={n: start[:, j] for j, n in enumerate(NAMES)},
        tol=1e-4,
        steps=10,
        device=device,
    )
    return time.perf_counter() - t, result


def run_scipy(uv, z, start, n: int):
    from scipy.optimize import curve_fit

    out = np.empty((n, 5))
    t = time.perf_counter()
    for g in range(n):
        out[g] = curve_fit(gaussian, uv, z[g], p0=start[g], ftol=1e-4)[0]
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--scipy", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    table, truth, start, uv, z = make(args.groups)
    run_gradfit(table.iloc[: 25 * 100], start[:100], args.device)  # warm-up: imports, first calls
    times, scipy_times = [], []
    for _ in range(args.repeats):
        ts, ref = run_scipy(uv, z, start, args.scipy)
        scipy_times.append(ts)
        tg, result = run_gradfit(table, start, args.device)
        times.append(tg)
    fits_g = args.groups / min(times)
    fits_s = args.scipy / min(scipy_times)
    rel = np.abs(result.params[: args.scipy] - ref) / np.abs(ref)
    line = {
        "groups": args.groups,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": args.device,
        "gradfit_fits_per_s": round(fits_g),
        "scipy_fits_per_s": round(fits_s),
        "ratio": round(fits_g / fits_s, 1),
        "gradfit_seconds": min(times),
        "median_rel_diff_vs_scipy": float(np.median(rel)),
        "p99_rel_diff_vs_scipy": float(np.quantile(rel, 0.99)),
        "median_rel_err_vs_truth": float(np.median(np.abs(result.params - truth) / truth)),
        "counts": result.counts(),
        "jacobian": result.timings.get("jacobian"),
    }
    print(json.dumps(line))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(line, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
