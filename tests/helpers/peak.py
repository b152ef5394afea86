"""The peak resident memory of a script run in a fresh interpreter, from a chosen point to its end (Linux).

A script passed to :func:`run_measured` calls ``reset_peak()`` where the measured part starts (after its imports
or a warm-up) and ``print_measured(**values)`` at its end, which prints one JSON line with ``peak``, the bytes of
the high-water mark (``VmHWM``) above the resident memory at the reset, beside its own values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

__all__ = ["PRELUDE", "run_measured", "needs_proc"]

#: What every measured script starts with.
PRELUDE = """
import json

def _status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

_base = 0

def reset_peak():
    global _base
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the resident memory now
    _base = _status("VmRSS")

def print_measured(**values):
    print(json.dumps({"peak": _status("VmHWM") - _base, **values}))
"""


def needs_proc() -> None:
    """Skip where the peak cannot be reset and read (not Linux's /proc)."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("the peak resident memory is read from /proc (Linux)")


def run_measured(script: str, *args: str, timeout: float = 900) -> dict:
    """Run ``PRELUDE + script`` with ``args`` in a fresh interpreter (one thread) and return its JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
