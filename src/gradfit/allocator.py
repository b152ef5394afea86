"""Keep the memory that a batched pass's temporaries free, for the next ones, instead of handing it back.

PyTorch takes CPU memory from the C library's ``malloc``. glibc gives a block of over 128 KiB its own mapping, or
(after the first such block is freed) takes it from the heap and gives the heap's free top back to the kernel as
soon as it passes twice the block's size. A batched pass over K members makes a few ``(K, rows)`` temporaries per
chunk (1 MiB each for 256 members x 512 rows in float64) and frees them at once, so every chunk maps its memory
afresh and the kernel zeroes every page again. On the virtual machines this project runs on, that page work cost
6-8 times the arithmetic: 23 ns per member and row for ``a*exp(-b*x) + c``, against 3 ns with the memory kept
(``bench/bench_sweep.py``).

:func:`keep_freed_memory` sets glibc's two thresholds once per process (``mallopt``): blocks up to 32 MiB come
from the heap, and up to 64 MiB of free heap top is kept. The process then holds on to at most that much memory it
no longer uses, which the batched paths reuse at every chunk. It does nothing off glibc, or when the environment
variable ``GRADFIT_KEEP_FREED_MEMORY`` is ``0``. The same settings can be made before Python starts with
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap (glibc's largest allowed value on 64-bit systems).
MMAP_THRESHOLD = 32 * 2**20
#: Free heap top kept for reuse, beyond which glibc gives memory back to the kernel.
TRIM_THRESHOLD = 64 * 2**20
#: The environment variable that turns it off (``0``).
SWITCH = "GRADFIT_KEEP_FREED_MEMORY"

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (once per process); whether they are set."""
    if "set" not in _state:
        _state["set"] = _set()
    return _state["set"]


def _set() -> bool:
    if os.environ.get(SWITCH, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
