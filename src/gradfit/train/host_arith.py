"""torch's CPU arithmetic of one optimizer update, entry by entry, in Python floats.

A small fit's block of steps (:mod:`gradfit.train.host_steps`) updates its parameters without tensors, so each
update must round exactly as torch's would. For ``p.add_(g, alpha=a)`` that depends on the build and the CPU:
where torch's kernel is compiled for FMA it computes ``fma(a, g, p)`` (one rounding), elsewhere ``p + a * g``
(two). Which one is not assumed: :func:`arithmetic` asks torch on probe values where the two differ, and returns
None (no host updates) when torch does neither, or does FMA and the C library's ``fma`` cannot be reached.

float64 numbers are Python floats; float32 numbers are Python floats that hold float32 values, rounded after each
operation as torch rounds its float32 result (a float32 product is exact in a double, so rounding it once is
torch's product; ``fmaf`` from the C library gives the fused float32 update).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

__all__ = ["Arith", "arithmetic"]

_F32 = struct.Struct("f")
PROBES = 16  # probe triples on which fused and unfused updates differ


def round32(x: float) -> float:
    """``x`` rounded to the nearest float32 (OverflowError beyond float32's range, as torch refuses such a scalar)."""
    return _F32.unpack(_F32.pack(x))[0]


def _same(x: float) -> float:
    return x


@dataclass(frozen=True)
class Arith:
    """One dtype's arithmetic: ``rnd(x)`` a double to the dtype, ``mul(a, b)`` and ``axpy(p, a, g) = p + a*g`` as
    torch rounds them (``a`` and the other operands already values of the dtype)."""

    dtype: torch.dtype
    rnd: Callable[[float], float]
    mul: Callable[[float, float], float]
    axpy: Callable[[float, float, float], float]
    adam: bool = False  # whether Adam's other operations (lerp, addcmul, addcdiv, sqrt) were found to agree too


_cache: dict[torch.dtype, Arith | None] = {}


def arithmetic(dtype: torch.dtype) -> Arith | None:
    """The host arithmetic that equals torch's for ``dtype`` (float32 or float64) on this machine, or None."""
    if dtype not in _cache:
        _cache[dtype] = _probe(dtype) if dtype in (torch.float32, torch.float64) else None
    return _cache[dtype]


def _libm_fma(dtype: torch.dtype) -> Callable[[float, float, float], float] | None:
    """The C library's ``fma`` (float64) or ``fmaf`` (float32) as ``f(a, g, p) = a*g + p``, or None."""
    import ctypes  # here: only a fit that steps in blocks pays for the import

    c_type = ctypes.c_double if dtype == torch.float64 else ctypes.c_float
    symbol = "fma" if dtype == torch.float64 else "fmaf"
    for library in (None, "m"):  # the process's own symbols (Python links the C math library), then libm
        try:
            if library is None:
                lib = ctypes.CDLL(None)
            else:
                import ctypes.util

                name = ctypes.util.find_library(library)  # runs ldconfig: only where the first way failed
                if name is None:
                    continue
                lib = ctypes.CDLL(name)
            fn = getattr(lib, symbol)
        except (OSError, AttributeError, TypeError):
            continue
        fn.restype, fn.argtypes = c_type, [c_type, c_type, c_type]
        return fn
    return None


def _candidates(dtype: torch.dtype) -> tuple[Arith, Arith | None]:
    """The unfused arithmetic and, where the C library has one, the fused."""
    if dtype == torch.float64:
        rnd = _same

        def mul(a: float, b: float) -> float:
            return a * b

        def plain(p: float, a: float, g: float) -> float:
            return p + a * g

    else:
        rnd = round32

        def mul(a: float, b: float) -> float:
            return round32(a * b)  # the float32 product is exact in a double: one rounding, as torch's

        def plain(p: float, a: float, g: float) -> float:
            return round32(p + round32(a * g))  # a float32 sum of float32 values is exact in a double too

    fma = _libm_fma(dtype)
    unfused = Arith(dtype, rnd, mul, plain)
    if fma is None:
        return unfused, None

    def fused(p: float, a: float, g: float) -> float:
        return fma(a, g, p)

    return unfused, Arith(dtype, rnd, mul, fused)


def _probe(dtype: torch.dtype) -> Arith | None:
    """Ask torch which candidate it computes, on values where they differ, for tensors of 0, 1 and 2 entries."""
    unfused, fused = _candidates(dtype)
    rng = random.Random(0)
    triples: list[tuple[float, float, float]] = []
    for _ in range(10_000):
        p, a, g = (unfused.rnd(rng.uniform(-3.0, 3.0)) for _ in range(3))
        if fused is None or fused.axpy(p, a, g) != unfused.axpy(p, a, g):
            triples.append((p, a, g))
        if len(triples) == PROBES:
            break
    torch_says = []
    for shape, n in (((), 1), ((1,), 1), ((2,), 2)):
        for i in range(0, len(triples) - n + 1, n):
            group = triples[i : i + n]
            alpha = group[0][1]  # one scalar alpha per call, as the optimizer passes it
            out = torch.tensor([t[0] for t in group], dtype=dtype).reshape(shape)
            out.add_(torch.tensor([t[2] for t in group], dtype=dtype).reshape(shape), alpha=alpha)
            torch_says.append((group, alpha, out.reshape(-1).tolist()))
    for candidate in (fused, unfused):
        if candidate is not None and all(
            out == [candidate.axpy(t[0], alpha, t[2]) for t in group] for group, alpha, out in torch_says
        ):
            return replace(candidate, adam=_adam_agrees(candidate, rng))
    return None


def _adam_agrees(arith: Arith, rng: random.Random) -> bool:
    """Whether torch's ``lerp_``, ``mul_``/``addcmul_``, ``sqrt``, division, ``add_`` and ``addcdiv_`` (Adam's
    update) round as :class:`gradfit.train.host_updates.AdamUpdate` computes them with ``arith``, on tensors of 1
    and 2 entries (torch's square root is taken by torch: here only its agreement across shapes is asked)."""
    r, dtype = arith.rnd, arith.dtype
    w, b2, c2, step_size, root2, eps = 1 - 0.9, 0.999, 1 - 0.999, -0.01 / 0.19, 0.3**0.5, 1e-8
    for n in (1, 2, 1, 2, 1, 2, 1, 2):
        m, g, v, p = ([r(rng.uniform(lo, 2.0)) for _ in range(n)] for lo in (-2.0, -2.0, 0.0, -2.0))

        def t(values):
            return torch.tensor(values, dtype=dtype)

        m2 = t(m).lerp_(t(g), w).tolist()
        v2 = t(v).mul_(b2).addcmul_(t(g), t(g), value=c2).tolist()
        roots = t(v2).sqrt().tolist()
        one_by_one = [t([x]).sqrt().item() for x in v2]
        denom = (t(roots) / root2).add_(eps)
        p2 = t(p).addcdiv_(t(m2), denom, value=step_size).tolist()
        want_m = [arith.axpy(mi, r(w), r(gi - mi)) for mi, gi in zip(m, g)]
        want_v = [arith.axpy(arith.mul(vi, r(b2)), arith.mul(r(c2), gi), gi) for vi, gi in zip(v, g)]
        denoms = [r(r(x / r(root2)) + r(eps)) for x in roots]
        want_p = [r(pi + r(arith.mul(r(step_size), mi) / d)) for pi, mi, d in zip(p, m2, denoms)]
        if (m2, v2, roots, p2) != (want_m, want_v, one_by_one, want_p):
            return False
    return True
