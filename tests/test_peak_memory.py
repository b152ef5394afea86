"""Peak memory of real ``gradfit fit`` processes on 10^5 rows (10^6 under the slow marker).

Each command runs in a child process whose peak resident memory is read from ``wait4`` when it
ends. The children run under an address-space limit (``ulimit -v``) of 12 GB, so a rows x rows
array (40 GB in float32 at 10^5 rows, as the least-squares reference line in params.png and the
scaling's Jacobian once built) fails at once instead of swapping the machine, and the test fails
on its exit status or on its peak.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

resource = pytest.importorskip("resource")
if not hasattr(os, "wait4") or not sys.platform.startswith("linux"):
    pytest.skip("peak memory is read with wait4 on Linux", allow_module_level=True)

ADDRESS_SPACE = 12 * 10**9
# The interpreter with torch, numpy, pandas, scipy and matplotlib loaded is 300-500 MB; the data of 10^5 rows
# is a few MB. A bound of 1.5 GB leaves room for other builds of those libraries, none for anything that grows
# with rows x rows (or with rows x steps).
BOUND = 1.5e9


def peak_rss(args: list[str], tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``gradfit ARGS`` in a child; its completed process and peak resident memory in bytes."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    # Few threads and malloc arenas: each arena reserves 64 MB of address space, which the limit counts.
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "2"}
    env.pop("GRADFIT_MEMORY", None)
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradfit", *args], stdout=out, stderr=err, env=env, cwd=tmp_path, preexec_fn=limit
        )
        timer = threading.Timer(900, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (Popen.wait would discard it)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    done = subprocess.CompletedProcess(
        args, proc.returncode, (tmp_path / "stdout.txt").read_text(), (tmp_path / "stderr.txt").read_text()
    )
    return done, usage.ru_maxrss * 1024.0  # kilobytes on Linux


def _fit(rows: int, *options: str) -> list[str]:
    return ["fit", f"builtin:linear?n={rows}", "--y", "y", "--model", "linear", "--quiet", *options]


CASES = {
    # params.png's least-squares line once built a rows x rows basis: 3.6 GB at 20,000 rows, 80 GB at 10^5.
    "lm --plot": ["--optimizer", "lm", "--plot", "--landscape", "a[0],a[1]"],
    # The split copies, the shuffled order, the batches and the validation checks: all linear in rows.
    "adam --batch-size --val-split --plot": [
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--batch-size",
        "1000",
        "--epochs",
        "2",
        "--val-split",
        "0.2",
        "--plot",
    ],
    # The scaling's Jacobian at the start once batched over a rows x rows identity (80 GB at 10^5 rows).
    "sgd --scale --uncertainty": ["--scale", "--lr", "0.5", "--steps", "200", "--uncertainty"],
}


def _check(case: str, rows: int, tmp_path) -> None:
    done, peak = peak_rss(_fit(rows, *CASES[case], "--out", str(tmp_path / "out")), tmp_path)
    assert done.returncode in (0, 1), done.stderr  # 1: a fit short of the optimum is still a run
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "out" / "result.json").exists()
    if "--plot" in CASES[case]:
        assert (tmp_path / "out" / "params.png").exists()
    assert peak < BOUND, f"{case} on {rows:,} rows peaked at {peak / 1e9:.2f} GB"


@pytest.mark.parametrize("case", list(CASES))
def test_peak_memory_on_a_hundred_thousand_rows(case, tmp_path):
    _check(case, 100_000, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_peak_memory_on_a_million_rows(case, tmp_path):
    _check(case, 1_000_000, tmp_path)
