"""The fused row pass of a nonlinear formula against the autograd row pass and the memory floor, in one run.

Times a full-batch sgd step of ``a*exp(-b*x) + c`` (float32) at several sizes, by ``gradfit.fit`` with
``row_pass="autograd"`` (before) and ``row_pass="auto"`` (the fused formula pass), alternated so both see the same
machine load, median of ``--repeats``. The floor is the bytes of the used columns (x and y) divided by the best
read bandwidth of one ``sum`` over a large array, measured in the same run: absolute times depend on the machine and
its load, the ratios are the numbers to compare. Run with ``OMP_NUM_THREADS=1 python bench/bench_fused.py``.

With ``--compiled`` the compiled pass (:mod:`gradfit.train.compiled_pass`, which a fit takes by itself only when
rows x steps win its compile back) is timed too, after one fit per size that compiles (its time is printed).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import pandas as pd
import torch

import gradfit
from gradfit.train import compiled_pass

FORMULA = "a*exp(-b*x) + c"


def read_bandwidth(repeats: int = 7) -> float:
    """Bytes per second of the best of ``repeats`` float32 ``sum`` passes over 64 MB (well beyond the caches)."""
    big = torch.rand(16 * 2**20)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        big.sum()
        best = min(best, time.perf_counter() - start)
    return big.numel() * big.element_size() / best


def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 5.0, n, dtype=np.float32)
    y = 2.0 * np.exp(-0.7 * x) + 0.3 + rng.normal(0.0, 0.05, n).astype(np.float32)
    return pd.DataFrame({"x": x, "y": y})


def step_time(data: pd.DataFrame, steps: int, row_pass: str) -> tuple[float, list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gradfit.fit(
            FORMULA,
            data,
            y="y",
            optimizer="sgd",
            lr=0.01,
            steps=steps,
            dtype="float32",
            init={"a": 1.9, "b": 0.8, "c": 0.2},
            row_pass=row_pass,
        )
    return r.timings["loop"] / steps, r.diagnostics["row_pass"]


def compiled_time(data: pd.DataFrame, steps: int) -> float:
    """Seconds per step of the compiled pass (the compile made beforehand by :func:`compile_once`)."""
    saved = compiled_pass.SAVED_PER_ROW_STEP
    compiled_pass.SAVED_PER_ROW_STEP = 1.0  # take it whatever the size
    try:
        t, paths = step_time(data, steps, "auto")
    finally:
        compiled_pass.SAVED_PER_ROW_STEP = saved
    assert paths == ["compiled formula"], paths
    return t


def compile_once(data: pd.DataFrame) -> float:
    start = time.perf_counter()
    compiled_time(data, 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compiled", action="store_true", help="time the compiled pass too (compiles once per size)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, formula {FORMULA!r}, float32, full batch sgd")
    bandwidth = read_bandwidth()
    print(f"read bandwidth of one sum pass: {bandwidth / 1e9:.2f} GB/s")
    print(f"{'rows':>10} {'floor s':>10} {'autograd s/step':>16} {'fused s/step':>13} {'autograd/floor':>15} "
          f"{'fused/floor':>12} {'autograd/fused':>15}")  # fmt: skip
    for n in map(int, args.sizes.split(",")):
        data = frame(n)
        floor = n * 2 * 4 / bandwidth  # x and y, float32
        steps = max(5, min(200, 3 * 10**7 // n))
        before, after, compiled = [], [], []
        if args.compiled:
            print(f"{n:>10} compiling (full chunks and the remainder): {compile_once(data):.1f} s")
        for _ in range(args.repeats):
            t, paths = step_time(data, steps, "autograd")
            assert paths == ["autograd"], paths
            before.append(t)
            t, paths = step_time(data, steps, "auto")
            assert paths == ["fused formula"], paths
            after.append(t)
            if args.compiled:
                compiled.append(compiled_time(data, steps))
        b, a = statistics.median(before), statistics.median(after)
        print(f"{n:>10} {floor:>10.2e} {b:>16.3e} {a:>13.3e} {b / floor:>15.1f} {a / floor:>12.1f} {b / a:>15.2f}")
        if compiled:
            c = statistics.median(compiled)
            print(f"{'':>10} compiled {c:.3e} s/step: {c / floor:.1f} x floor, {a / c:.2f} x faster than fused eager")


if __name__ == "__main__":
    main()
