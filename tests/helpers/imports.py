"""Which modules a piece of code imports, seen from a fresh interpreter (not a timing: a ``sys.modules`` check)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

_REPORT = "\nimport json as _json, sys as _sys\nprint(_json.dumps({_m: _m in _sys.modules for _m in %r}))\n"


def imported_by(code: str, modules: Sequence[str], args: Sequence[str] = (), timeout: float = 300) -> tuple[dict, list]:
    """Run ``code`` (with ``args`` as ``sys.argv[1:]``) in a new Python process and return ``({module: whether it
    was imported}, the lines ``code`` printed)``; the child must succeed (its stderr is the failure message)."""
    child = code + _REPORT % (list(modules),)
    done = subprocess.run([sys.executable, "-c", child, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    *printed, report = done.stdout.strip().splitlines()
    return json.loads(report), printed
