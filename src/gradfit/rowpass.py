"""The row pass: every sum over rows (loss, gradient, JᵀJ and Jᵀr, sufficient statistics) in one place.

A fit's data can be larger than what one autograd graph, one Jacobian or one device holds, so every
quantity that is a sum over rows is computed chunk by chunk and the chunks' partial sums are added in
float64. That keeps float32 fits on millions of rows as accurate as float64 ones and bounds memory by
one chunk. Two pieces, and one setting:

- a **row source** yields ``(x, y, w)`` chunks (``w`` None when the rows are unweighted).
  :class:`MemoryRows` slices tensors already in memory. A **row set** (:class:`RowSet`) is all the rows of a fit
  wherever they are, which makes sources of any chunk size: a file read batch by batch
  (:class:`gradfit.data.streamed.StreamedRows`) is one. :func:`rows_of` is the one way from "tensors or a row
  set" to a source, so a function written for tensors serves a row set too.
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

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "CHUNK_ROWS",
    "JACOBIAN_NUMBERS",
    "Chunk",
    "RowSource",
    "MemoryRows",
    "RowSet",
    "rows_of",
    "across",
    "add_across",
    "row_count",
    "rows_triple",
    "is_row_set",
    "evenly_spaced",
    "counted_rows",
    "rows_device",
    "rows_dtype",
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


@runtime_checkable
class RowSet(Protocol):
    """All the rows of a fit, wherever they are (a file read batch by batch, a process's shard of one), as sources
    of any chunk size. Unlike a tensor it has no ``shape`` to slice: whoever needs a sum over its rows takes
    :func:`rows_of` it.

    A fit takes one as its data (``gradfit.fit(model, rows, ...)``), so it also says what its columns are
    (``x_names``, ``y_name``, ``weighting``: as a :class:`gradfit.data.dataset.Dataset`'s), where it came from
    (``source``), its chunks' ``dtype`` and ``device``, and gives ``weight_total``, ``Σ wᵢ`` in float64 (None when
    the rows are unweighted), ``sample(m)``, at most ``m`` evenly spaced rows (:func:`evenly_spaced`) as a Dataset in
    memory (for guesses, shape checks and the probes that read a few rows), and the same rows with other
    ``columns`` or another dtype (``with_dtype``).
    """

    x_names: tuple[str, ...]
    y_name: str | None
    source: str
    weighting: Any
    dtype: torch.dtype
    device: torch.device

    def __len__(self) -> int: ...

    def chunks(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> Iterator[Chunk]: ...

    def weight_total(self) -> float | None: ...

    def sample(self, rows: int) -> Any: ...

    # One process's shard of the rows of a fit spread over processes also has ``combine(sums)``, which adds a
    # pass's float64 sums across the processes in place, and ``gather(obj)``, every process's ``obj`` in rank order
    # (for what is not a sum: a triangular factor, a metric's running state). A source made of it carries both.

    def columns(self, names: Sequence[str]) -> RowSet: ...

    def with_dtype(self, dtype: torch.dtype) -> RowSet: ...


def is_row_set(obj: object) -> TypeGuard[RowSet]:
    """Whether ``obj`` is a :class:`RowSet` (rows read chunk by chunk), not rows in memory: the protocol's own check
    after a look for ``chunks``, which settles most objects at once (a fit asks this of its Dataset a dozen times,
    and the protocol's check looks up every member: ~10 us a call on Python 3.11)."""
    return hasattr(obj, "chunks") and isinstance(obj, RowSet)


def evenly_spaced(n: int, m: int, device: torch.device | str | None = None) -> Tensor:
    """The positions of at most ``m`` evenly spaced rows of ``n`` (all of them when ``m >= n``): the subsample every
    probe that reads a few rows takes, so a row set's :meth:`RowSet.sample` gives the same rows."""
    if m >= n:
        return torch.arange(n, device=device)
    return torch.linspace(0, n - 1, m, device=device).round().long()


class _SetRows:
    """A :class:`RowSet`'s chunks of one size and dtype, as a :class:`RowSource` (with the set's ``combine`` and
    ``gather`` when it is one process's shard)."""

    def __init__(self, rows: RowSet, chunk_size: int | None, dtype: torch.dtype | None):
        self.set, self.chunk_size, self.dtype = rows, chunk_rows(chunk_size), dtype
        self.combine = getattr(rows, "combine", None)
        self.gather = getattr(rows, "gather", None)

    def __len__(self) -> int:
        return len(self.set)

    def chunks(self) -> Iterator[Chunk]:
        return self.set.chunks(self.chunk_size, self.dtype)


def rows_of(
    x: Tensor | RowSet,
    y: Tensor | None = None,
    w: Tensor | None = None,
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> RowSource:
    """The rows ``(x, y, w)`` as a source of ``chunk_size`` rows in ``dtype``: :class:`MemoryRows` of tensors, or
    the chunks of a :class:`RowSet` given as ``x`` (its own targets and weights; ``y`` and ``w`` must be None)."""
    if isinstance(x, Tensor):
        return MemoryRows(x, y, w, chunk_size, dtype=dtype, device=device)
    if y is not None or w is not None:
        raise TypeError("a RowSet carries its own targets and weights: give it alone")
    return _SetRows(x, chunk_size, dtype)


def rows_triple(data) -> tuple[Tensor | RowSet, Tensor | None, Tensor | None]:
    """``(x, y, w)`` of rows held in memory (a :class:`gradfit.data.dataset.Dataset`), or ``(the set, None, None)``
    of a :class:`RowSet`: the arguments every sum over rows takes."""
    if is_row_set(data):
        return data, None, None
    return data.x, data.y, data.w


def counted_rows(data) -> int:
    """The rows that count: all of them, or those of positive weight (one pass over a weighted row set)."""
    x, _, w = rows_triple(data)
    if isinstance(x, Tensor):
        return len(x) if w is None else int((w > 0).sum())
    if x.weight_total() is None:
        return len(x)
    total = reduce(lambda _x, _y, wc: (wc > 0).sum(), rows_of(x))
    return 0 if total is None else int(total)


def rows_device(data) -> torch.device:
    """Where the chunks of ``data`` (a Dataset, a tensor or a row set) live."""
    x = rows_triple(data)[0] if not isinstance(data, Tensor) else data
    return x.device


def rows_dtype(data) -> torch.dtype:
    """The dtype of the inputs of ``data`` (a Dataset, a tensor or a row set)."""
    x = rows_triple(data)[0] if not isinstance(data, Tensor) else data
    return x.dtype


def row_count(x: Tensor | RowSet, w: Tensor | None = None) -> float:
    """What a mean over the rows divides by: their number, or the sum of their weights (1 when that is 0: rows of
    weight 0 carry no information, and their mean loss is 0, not NaN)."""
    if isinstance(x, Tensor):
        if w is None:
            return x.shape[0]
        total = float(w.sum(dtype=torch.float64))  # no float64 copy of the weights
    else:
        weights = x.weight_total()
        if weights is None:
            return len(x)
        total = weights
    return total if total > 0 else 1.0


def across(source, obj: Any) -> list[Any]:
    """``obj`` of every process that holds a shard of ``source``'s rows, in rank order (``[obj]`` when the rows are
    all in this process): to join what a pass gives that is not a sum (a triangular factor, a running state)."""
    gather = getattr(source, "gather", None)
    return [obj] if gather is None else gather(obj)


def add_across(source, sums: list[Tensor]) -> None:
    """Add the float64 ``sums`` of a pass over ``source``'s rows across the processes holding its shards, in place
    (nothing when the rows are all in this process): for a pass written as a loop rather than :func:`reduce`."""
    combine = getattr(source, "combine", None)
    if combine is not None:
        combine(sums)


def reduce(
    fn: Callable[[Tensor, Any, Any], Any], source: RowSource, combine: Callable[[list[Tensor]], object] | None = None
) -> Any:
    """The float64 sum over chunks of ``fn(x, y, w)``, which returns a tensor, a tuple/list or a dict of tensors.

    The sums keep ``fn``'s structure (a tuple stays a tuple, a dict a dict) and each entry's shape; they
    are added in the order the source yields its chunks. ``combine``, when given (else the source's own, when it
    is a process's shard), is called once with the list of sums (in place: an all-reduce across process shards)
    before they are returned. A source with no rows gives None.
    """
    combine = combine if combine is not None else getattr(source, "combine", None)
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
