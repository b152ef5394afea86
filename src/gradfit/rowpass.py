"""The row pass: every sum over rows (loss, gradient, JᵀJ and Jᵀr, sufficient statistics) in one place.

A fit's data can be larger than what one autograd graph, one Jacobian or one device holds, so every
quantity that is a sum over rows is computed chunk by chunk and the chunks' partial sums are added in
float64. That keeps float32 fits on millions of rows as accurate as float64 ones and bounds memory by
one chunk. Two pieces, and one setting:

- a **row source** yields ``(x, y, w)`` chunks (``w`` None when the rows are unweighted).
  :class:`MemoryRows` slices tensors already in memory; it is the only source today.
- :func:`reduce` applies ``fn(x, y, w)`` to each chunk and adds what it returns (a tensor, a tuple
  or a dict of tensors) in float64, in the order the chunks arrive; :func:`fold` carries any other
  running state (a triangular factor updated by QR, say) across the chunks; :func:`concat` joins
  per-row outputs (predictions) without a sum.
- :data:`CHUNK_ROWS` is the default chunk size; ``FitConfig.chunk_size`` overrides it, and
  :func:`chunk_rows` is the one place either is read.

Where the next pieces plug in
-----------------------------
- **Streamed files**: a source whose ``chunks()`` reads the next block of a CSV or Parquet file
  (and converts it) instead of slicing a tensor; ``reduce`` does not change.
- **Process shards**: each process iterates its own shard of the rows and passes
  ``combine=lambda sums: [torch.distributed.all_reduce(s) for s in sums]`` (or the like) to
  :func:`reduce`; the sums are float64 tensors, so one all-reduce per step finishes the pass.
- **GPUs**: a source that moves each chunk to the device (pinned, non-blocking); the sums stay on
  the device of the first chunk.
- **Fused kernels and sufficient statistics**: ``fn`` may be a compiled function of a chunk
  (``torch.compile``), or return ``XᵀX`` and ``Xᵀy`` once so later steps never touch the rows.

Examples
--------
>>> x = torch.arange(10.0)
>>> reduce(lambda xc, yc, wc: (xc.sum(), (xc * xc).sum()), MemoryRows(x, x, chunk_size=3))
(tensor(45., dtype=torch.float64), tensor(285., dtype=torch.float64))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "CHUNK_ROWS",
    "JACOBIAN_NUMBERS",
    "Chunk",
    "RowSource",
    "MemoryRows",
    "chunk_rows",
    "jacobian_rows",
    "reduce",
    "fold",
    "concat",
]

#: Rows per chunk by default: float32 sums of this many terms stay accurate to ~1e-7, and a pass in chunks
#: of this size is faster than one pass over 10^7 rows (the autograd graph of a chunk fits in cache-friendly
#: memory).
CHUNK_ROWS = 65_536

#: Numbers of a Jacobian chunk (rows x parameters) held at once: 32 MB in float64.
JACOBIAN_NUMBERS = 2**22

Chunk = tuple[Tensor, "Tensor | None", "Tensor | None"]
S = TypeVar("S")


def chunk_rows(chunk_size: int | None = None) -> int:
    """The rows per chunk: ``chunk_size`` (``FitConfig.chunk_size``) when given, else :data:`CHUNK_ROWS`."""
    return CHUNK_ROWS if chunk_size is None else max(1, int(chunk_size))


def jacobian_rows(p: int, numbers: int = JACOBIAN_NUMBERS, chunk_size: int | None = None, square: bool = True) -> int:
    """Rows per chunk when each row brings ``p`` numbers (a Jacobian's row): at most ``numbers`` at once, yet
    at least ``p + 1`` rows when ``square`` (a triangular factor folded over the chunks is then square from the
    first), else at least 1."""
    p = max(1, int(p))
    return max(p + 1 if square else 1, min(chunk_rows(chunk_size), numbers // p))


@runtime_checkable
class RowSource(Protocol):
    """Anything that yields the rows as ``(x, y, w)`` chunks, in a fixed order (sums are then reproducible)."""

    def chunks(self) -> Iterator[Chunk]: ...


class MemoryRows:
    """Rows held in memory as tensors, sliced ``chunk_size`` at a time (views: no copy unless ``dtype`` asks).

    Parameters
    ----------
    x : Tensor
        The inputs, rows first.
    y, w : Tensor, optional
        Targets and row weights, sliced with ``x``; None passes through as None.
    chunk_size : int, optional
        Rows per chunk (default :data:`CHUNK_ROWS`).
    dtype, device : optional
        Convert each chunk (not the whole data) to this dtype and device, e.g. float64 on the CPU.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None = None,
        w: Tensor | None = None,
        chunk_size: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        self.x, self.y, self.w = x, y, w
        self.chunk_size = chunk_rows(chunk_size)
        self.dtype, self.device = dtype, device

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _cast(self, t: Tensor) -> Tensor:
        if self.dtype is None and self.device is None:
            return t
        return t.to(self.device if self.device is not None else t.device, self.dtype or t.dtype)

    def chunks(self) -> Iterator[Chunk]:
        size = self.chunk_size
        for start in range(0, len(self), size):
            stop = start + size
            yield (
                self._cast(self.x[start:stop]),
                None if self.y is None else self._cast(self.y[start:stop]),
                None if self.w is None else self._cast(self.w[start:stop]),
            )


def reduce(
    fn: Callable[[Tensor, Any, Any], Any], source: RowSource, combine: Callable[[list[Tensor]], object] | None = None
) -> Any:
    """The float64 sum over chunks of ``fn(x, y, w)``, which returns a tensor, a tuple/list or a dict of tensors.

    The sums keep ``fn``'s structure (a tuple stays a tuple, a dict a dict) and each entry's shape; they
    are added in the order the source yields its chunks. ``combine``, when given, is called once with the
    list of sums (in place: an all-reduce across process shards) before they are returned. A source with
    no rows gives None.
    """
    sums: list[Tensor] | None = None
    shape = None
    for x, y, w in source.chunks():
        part = fn(x, y, w)
        flat, shape = _leaves(part)
        if sums is None:
            sums = [torch.zeros(t.shape, dtype=torch.float64, device=t.device) for t in flat]
        for acc, t in zip(sums, flat):
            acc += t.detach().double()
    if sums is None:
        return None
    if combine is not None:
        combine(sums)
    return _rebuild(shape, sums)


def fold(fn: Callable[[S, Tensor, Any, Any], S], source: RowSource, state: S) -> S:
    """Carry ``state`` across the chunks: ``state = fn(state, x, y, w)`` for each, in order (for running
    quantities that are not sums, such as a triangular factor updated by QR)."""
    for x, y, w in source.chunks():
        state = fn(state, x, y, w)
    return state


def concat(fn: Callable[[Tensor, Any, Any], Tensor], source: RowSource) -> Tensor | None:
    """``fn(x, y, w)`` of each chunk joined along the rows (predictions: a per-row output, not a sum)."""
    parts = [fn(x, y, w) for x, y, w in source.chunks()]
    return torch.cat(parts) if parts else None


def _leaves(part) -> tuple[list[Tensor], object]:
    if isinstance(part, Tensor):
        return [part], None
    if isinstance(part, dict):
        return list(part.values()), tuple(part)
    return list(part), len(part)


def _rebuild(shape, sums: list[Tensor]):
    if shape is None:
        return sums[0]
    if isinstance(shape, tuple):
        return dict(zip(shape, sums))
    return tuple(sums)
