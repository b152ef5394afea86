"""The memory budget: every large allocation is estimated from the shapes first, and refused past it.

Before gradfit builds anything whose size grows with the data or the model (the data's tensors,
a validation split, a shuffling order, a model's parameters and its optimizer's state, a chunk's
activations, a Jacobian, a covariance matrix, a landscape grid), it adds up what that will take,
from the shapes alone, and compares it with the budget. Past the budget it raises
:class:`~gradfit.errors.MemoryBudgetError` (the CLI's exit 2) with the items that need the
memory, largest first, and what to change; nothing has been allocated yet.

The budget is, in this order:

- the environment variable ``GRADFIT_MEMORY``: a size (``8GB``, ``512MB``, ``1.5TiB``, a
  number of bytes) or a share of this machine's memory (``50%``);
- otherwise :data:`DEFAULT_SHARE` (80%) of the machine's memory: the physical memory, or a
  container's limit (cgroup) when that is lower.

A hard limit on the address space (``ulimit -v``) lowers it further to what is left under that
limit. Estimates count what gradfit allocates for the task at hand, not the interpreter and
libraries already loaded (a few hundred MB).

Examples
--------
>>> format_bytes(8_000_000_000)
'8 GB'
>>> parse_size("512MB"), parse_size("1.5KiB")
(512000000, 1536)
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from gradfit.errors import ConfigError, MemoryBudgetError

__all__ = [
    "Budget",
    "budget",
    "device_budget",
    "require",
    "fits",
    "format_bytes",
    "parse_size",
    "set_budget",
    "given_budget",
    "ENV",
    "DEFAULT_SHARE",
]

ENV = "GRADFIT_MEMORY"
DEFAULT_SHARE = 0.8

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*|%)\s*$")


@dataclass(frozen=True)
class Budget:
    """How many bytes one task may plan for, and where that number comes from (for messages)."""

    nbytes: float
    source: str

    def __str__(self) -> str:
        return f"{format_bytes(self.nbytes)} ({self.source})"


def format_bytes(n: float) -> str:
    """``8_000_000_000`` -> ``'8 GB'`` (decimal units, 3 significant digits)."""
    if not math.isfinite(n):
        return "unlimited"
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def set_budget(text: str, where: str = ENV) -> None:
    """Make ``text`` (a size or a share, as :func:`parse_size` reads them) this process's budget, as ``GRADFIT_MEMORY``
    would; ConfigError, naming ``where`` it was given, when it is not one."""
    try:
        parse_size(text, machine_memory())
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(ENV, where, 1)) from None
    os.environ[ENV] = str(text)


@contextlib.contextmanager
def given_budget(text: str | None, where: str) -> Iterator[None]:
    """:func:`set_budget` for the time of a command (``--memory-budget``; nothing for None): its messages name
    ``where``, and the budget before it is back afterwards, so a command run in-process leaves none behind."""
    if text is None:
        yield
        return
    before = os.environ.get(ENV)
    set_budget(text, where)
    _GIVEN[str(text)] = where
    try:
        yield
    finally:
        _GIVEN.pop(str(text), None)
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


#: The budgets given by given_budget, by text, and where ("--memory-budget"): the messages name that option rather
#: than the environment variable it is passed on by.
_GIVEN: dict[str, str] = {}


def _naming(text: str) -> str:
    """How a message writes the budget ``text``: ``GRADFIT_MEMORY=1GB``, or ``--memory-budget 1GB`` where given so."""
    where = _GIVEN.get(text, ENV)
    return f"{ENV}={text}" if where == ENV else f"{where} {text}"


def parse_size(text: str, machine: float | None = None) -> int:
    """Bytes in ``"8GB"``, ``"512MB"``, ``"1.5GiB"``, ``"2e9"`` or ``"50%"`` (of ``machine`` bytes).

    K, M, G, T (and KB, MB, GB, TB) are powers of 1000; KiB, MiB, GiB, TiB powers of 1024.
    """
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else None
    if m is None or (unit != "%" and unit not in _UNITS):
        raise ConfigError(
            f"{ENV} must be a size such as 8GB, 512MB, 1.5GiB or a share such as 50%. Got {text!r} instead."
        )
    value = float(m.group(1))
    if unit == "%":
        if not 0 < value <= 100:
            raise ConfigError(f"{ENV} as a share must be in (0%, 100%]. Got {text!r} instead.")
        if machine is None:
            raise ConfigError(
                f"{ENV}={text!r} is a share of this machine's memory, which cannot be read here; "
                "give a size such as 8GB instead."
            )
        return int(machine * value / 100)
    nbytes = value * _UNITS[unit]
    if not nbytes >= 1:
        raise ConfigError(f"{ENV} must be a positive size such as 8GB. Got {text!r} instead.")
    return int(nbytes)


# The machine's memory, as last read: (time.monotonic() then, value). The files behind it (the physical memory, the
# container's limit) do not change within a call, and a fit asks for the budget several times (data, model, error
# bars): it is read again only after HOLD_SECONDS. A wrapper scoped to the call would add a frame between the
# caller and the warnings of gradfit.fit, which name the caller's line.
HOLD_SECONDS = 1.0
_held: list[tuple[float, float | None]] = []


def machine_memory() -> float | None:
    """This machine's memory in bytes (the container's limit when lower), or None when it cannot be read."""
    now = time.monotonic()
    if _held and 0 <= now - _held[0][0] < HOLD_SECONDS:
        return _held[0][1]
    value = _machine_memory()
    _held[:] = [(now, value)]
    return value


def _machine_memory() -> float | None:
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:  # "max", or v1's huge number, means no limit
            sizes.append(int(text))
    return float(min(sizes)) if sizes else None


def _address_space_left() -> float | None:
    """Bytes left under ``ulimit -v`` (RLIMIT_AS), or None when there is no such limit."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if limit in (resource.RLIM_INFINITY, -1) or limit <= 0:
        return None
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return float(max(0, limit - used))


def budget() -> Budget:
    """The memory budget now: ``GRADFIT_MEMORY``, else :data:`DEFAULT_SHARE` of the machine (see the module)."""
    machine = machine_memory()
    text = os.environ.get(ENV, "").strip()
    if text:
        result = Budget(float(parse_size(text, machine)), _naming(text))
    elif machine is not None:
        result = Budget(
            DEFAULT_SHARE * machine,
            f"{DEFAULT_SHARE:.0%} of this machine's {format_bytes(machine)}; set {ENV} to change it",
        )
    else:
        result = Budget(math.inf, f"this machine's memory cannot be read; set {ENV} to set one")
    left = _address_space_left()
    if left is not None and left < result.nbytes:
        result = Budget(left, f"what is left under this process's address-space limit (ulimit -v); {result.source}")
    return result


def device_budget(device) -> Budget | None:
    """The memory a GPU has free now (90% of it), or None for the CPU (whose budget is :func:`budget`)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(device)
    return Budget(0.9 * free, f"90% of the {format_bytes(free)} free on {device} of its {format_bytes(total)}")


def fits(nbytes: float) -> bool:
    """True when ``nbytes`` is within the budget."""
    return nbytes <= budget().nbytes


def require(
    items: float | Iterable[tuple[str, float]], task: str, advice: str | Sequence[str] = "", limit: Budget | None = None
) -> None:
    """Raise :class:`~gradfit.errors.MemoryBudgetError` when ``items`` need more than the budget.

    Parameters
    ----------
    items : float or iterable of (str, float)
        The bytes needed, or ``(what, bytes)`` pairs (listed largest first in the message).
    task : str
        What needs them, for the message: ``"the data of 'builtin:linear'"``.
    advice : str or sequence of str
        What to change, e.g. ``"Use fewer rows (n=...)."``
    limit : Budget, optional
        The budget to hold them to (a GPU's, from :func:`device_budget`); default :func:`budget`.

    Examples
    --------
    >>> require([("x", 8e6)], "a small table")
    """
    pairs = [("", float(items))] if isinstance(items, (int, float)) else [(w, float(b)) for w, b in items]
    total = sum(b for _, b in pairs)
    on_device = limit is not None
    limit = limit or budget()
    if total <= limit.nbytes:
        return
    listed = [p for p in sorted(pairs, key=lambda p: -p[1]) if p[0] and p[1] >= 0.01 * total]
    if len(pairs) == 1 and listed:
        detail = f" ({listed[0][0]})"
    else:
        detail = f" ({'; '.join(f'{w}: {format_bytes(b)}' for w, b in listed)})" if listed else ""
    tips = [advice] if isinstance(advice, str) else list(advice)
    tips = [t for t in tips if t]
    machine = machine_memory()
    if on_device:
        tips.append("Or fit on the CPU (--device cpu).")
    elif machine is not None and total > machine:
        tips.append(f"(This machine has {format_bytes(machine)} in all.)")
    else:
        given = _GIVEN.get(os.environ.get(ENV, "").strip(), ENV)
        raise_to = f"{ENV}={_round_up(total)}" if given == ENV else f"{given} {_round_up(total)}"
        tips.append(f"If that much memory is free, raise the budget: {raise_to}.")
    raise MemoryBudgetError(
        f"Not enough memory for {task}: it needs about {format_bytes(total)}{detail}, and the "
        f"memory budget is {limit}. {' '.join(tips)}"
    )


def _round_up(nbytes: float) -> str:
    """A budget a little above ``nbytes``, as people write it: ``'3GB'``, ``'250MB'``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= size or unit == "MB":
            return f"{math.ceil(nbytes * 1.1 / size)}{unit}"
    return ""  # unreachable
