"""gradfit's loop against the seeds' hand-written PyTorch loop, side by side in one run.

Reports time per step for both and the ratio (gradfit / hand loop), on the seeds' linear data
at several sizes, full batch sgd. Run with ``make bench`` or ``python bench/bench_loop.py``.
Absolute times depend on the machine; the ratio is the number to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gradfit
from gradfit.data import synthetic


def hand_loop(x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    X = torch.stack([x, torch.ones_like(x)], dim=1)
    a = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    start = time.perf_counter()
    for _ in range(steps):
        loss = ((X @ a - y) ** 2).mean()
        loss.item()  # the seeds print it; gradfit records it
        loss.backward()
        with torch.no_grad():
            a.sub_(0.1 * a.grad)
            a.grad.zero_()
    return (time.perf_counter() - start) / steps


def gradfit_loop(frame, steps: int) -> float:
    r = gradfit.fit("linear", frame, y="y", init={"a": [1.0, 1.0]}, lr=0.1, steps=steps)
    return r.timings["loop"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,10000,1000000,10000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'rows':>10} {'steps':>6} {'hand s/step':>12} {'gradfit s/step':>15} {'ratio':>7}")
    for n in map(int, args.sizes.split(",")):
        frame = synthetic.linear(n=n, seed=0)
        x = torch.tensor(frame["x"].to_numpy())
        y = torch.tensor(frame["y"].to_numpy())
        steps = max(5, min(2000, 2 * 10**7 // n))
        hand, ours = [], []
        for _ in range(args.repeats):  # interleaved so both see the same machine load
            hand.append(hand_loop(x, y, steps))
            ours.append(gradfit_loop(frame, steps))
        h, g = statistics.median(hand), statistics.median(ours)
        print(f"{n:>10} {steps:>6} {h:>12.3e} {g:>15.3e} {g / h:>7.2f}")


if __name__ == "__main__":
    main()
