"""Side-by-side timing for the benchmark table: interleaved repeats, medians, and the memory floor.

Every ratio of the table is taken between two measurements of the same run, alternated repeat by repeat so that
both see the same machine load (other processes, frequency scaling), and summarised by their medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

#: A measurement: run the work once, return (seconds it took, what it computed, for the agreement check).
Measure = Callable[[], tuple[float, Any]]


def interleaved(measures: Mapping[str, Measure], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Run each measurement ``repeats`` times, alternating them, and return their median seconds and last outputs.

    Parameters
    ----------
    measures : mapping
        Name -> a function returning ``(seconds, output)``; it times its own work (so set-up is left out).
    repeats : int
        Rounds; in each round every measurement runs once, in the order given.

    Returns
    -------
    medians, outputs : dict, dict
        The median seconds of each, and the output of its last run.
    """
    times: dict[str, list[float]] = {name: [] for name in measures}
    outputs: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for name, measure in measures.items():
            seconds, outputs[name] = measure()
            times[name].append(seconds)
    return {name: statistics.median(ts) for name, ts in times.items()}, outputs


def read_bandwidth(megabytes: int = 256, repeats: int = 15) -> float:
    """The best read bandwidth (bytes per second) of one ``sum`` pass over a large float32 array.

    The array is allocated and written once before timing, so the pass reads memory the process already owns;
    the best of ``repeats`` passes is taken, as the floor is what the machine can do at its best moment.
    """
    values = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        values.sum().item()
        best = min(best, time.perf_counter() - start)
    nbytes = values.numel() * values.element_size()
    del values
    return nbytes / best


def floor_seconds(rows: int, columns: int, bandwidth: float, itemsize: int = 4) -> float:
    """Seconds to read ``columns`` float32 columns of ``rows`` rows once at ``bandwidth`` bytes per second."""
    return rows * columns * itemsize / bandwidth


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall-clock seconds of one call of ``work`` and what it returned."""
    start = time.perf_counter()
    out = work()
    return time.perf_counter() - start, out
