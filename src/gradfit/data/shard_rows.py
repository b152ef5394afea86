"""One process's shard of a fit spread over processes: its own rows, and the sums of every pass added across all.

Under ``torchrun`` each process reads only its share of the rows (:func:`gradfit.distributed.shard_row_groups`) and
takes the same steps as the others: every sum over rows is its shard's partial sum, added across the processes by
one float64 all-reduce (:meth:`ShardRows.combine`, which :func:`gradfit.rowpass.reduce` calls), so every process
holds the sums of all the rows. What is not a sum (a triangular factor, a metric's running state) is gathered in
rank order (:meth:`ShardRows.gather`) and joined the same way on every process. Counts, weights and samples are
those of all the rows, so every decision a fit takes from them is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from gradfit.data.dataset import Dataset
from gradfit.distributed import Group, StopVote, all_reduce_sums, gather_objects, shard_row_groups
from gradfit.errors import ConfigError, DataError, DistributedError
from gradfit.rowpass import Chunk, MemoryRows, evenly_spaced

__all__ = ["BatchShard", "ShardRows", "open_shard"]


def open_shard(
    path,
    x: Sequence[str],
    y: str | None,
    group: Group,
    *,
    sigma: str | None = None,
    weights: str | None = None,
    absolute_sigma: bool = False,
    dtype: torch.dtype = torch.float32,
    drop_nan: bool = False,
) -> ShardRows:
    """This process's whole row groups of the Parquet file at ``path`` (:func:`gradfit.distributed.shard_row_groups`),
    checked in one pass over them alone, as its shard of all the rows. Bad data in any shard stops every process
    with that shard's message."""
    from gradfit.data.file_rows import open_file_rows

    local = open_file_rows(
        path,
        x,
        y,
        sigma=sigma,
        weights=weights,
        absolute_sigma=absolute_sigma,
        dtype=dtype,
        drop_nan=drop_nan,
        scan=False,
    )
    stream = local.stream
    if stream.file.kind != "parquet":
        raise ConfigError(
            f"A fit spread over processes reads a Parquet file, each process its own row groups; {path!s} is "
            f"CSV, which every process would have to read through. Convert it (e.g. pandas: "
            f"read_csv(...).to_parquet(...)), or fit in one process."
        )
    stream.file.span = shard_row_groups(stream.file.group_rows(), group)
    problem = None
    try:
        stream.scan()
    except DataError as exc:  # told to every process, so none waits for the others in a pass
        problem = str(exc)
    problems = [(rank, p) for rank, p in enumerate(gather_objects(problem, group)) if p is not None]
    if problems:
        rank, text = problems[0]
        raise DataError(text if rank == group.rank else f"rank {rank} found bad data in its rows: {text}")
    return ShardRows(local, group)


class ShardRows:
    """The rows ``local`` of this process (a row set with ``take(positions)``), one of ``group``'s shards in rank
    order: a :class:`gradfit.rowpass.RowSet` of all the shards' rows."""

    def __init__(self, local, group: Group, _sizes: Sequence[int] | None = None, _vote: StopVote | None = None):
        self.local, self.group = local, group
        self.vote = _vote if _vote is not None else StopVote(group)  # a stop asked on any process, seen by all
        self.x_names, self.y_name, self.source = local.x_names, local.y_name, local.source
        self.weighting, self.dtype, self.device = local.weighting, local.dtype, local.device
        self.sizes = list(_sizes) if _sizes is not None else [int(n) for n in self.gather(len(local))]
        empty = [rank for rank, n in enumerate(self.sizes) if n == 0]
        if empty:  # every process refuses together: one without rows would skip the all-reduces the others wait in
            raise DistributedError(
                f"rank{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} of {group.world} hold no rows of "
                f"{self.source} ({sum(self.sizes):,} rows in all): start fewer processes, or give the file more row "
                f"groups (each process reads whole row groups)."
            )
        self.offset = sum(self.sizes[: group.rank])  # this shard's first row among all the rows
        self._weights: list[float | None] | None = None
        self._samples: dict[int, Dataset] = {}

    def __len__(self) -> int:
        return sum(self.sizes)

    @property
    def note(self) -> str | None:
        """What the shards' checks dropped (``"dropped 3 rows with missing values (rows 4, 9, 12)"``), each shard's in
        rank order; None when nothing was. Every process asks at once (a gather)."""
        notes = [n for n in self.gather(getattr(self.local, "note", None)) if n]
        return "; ".join(notes) if notes else None

    def chunks(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> Iterator[Chunk]:
        return self.local.chunks(chunk_size, dtype)

    def combine(self, sums: list[Tensor]) -> None:
        """Add a pass's float64 sums across the processes, in place (the stop vote with them)."""
        all_reduce_sums(sums, self.group, self.vote)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        return gather_objects(obj, self.group)

    def weight_total(self) -> float | None:
        if self._weights is None:
            self._weights = self.gather(self.local.weight_total())
        if self._weights[0] is None:
            return None
        return float(sum(w for w in self._weights if w is not None))

    def columns(self, names: Sequence[str]) -> ShardRows:
        return ShardRows(self.local.columns(names), self.group, self.sizes, self.vote)

    def with_dtype(self, dtype: torch.dtype) -> ShardRows:
        return ShardRows(self.local.with_dtype(dtype), self.group, self.sizes, self.vote)

    def sample(self, rows: int) -> Dataset:
        """At most ``rows`` evenly spaced rows of all the shards (:func:`gradfit.rowpass.evenly_spaced`), the same
        on every process: each reads its own, and the pieces are gathered in rank order."""
        if rows not in self._samples:
            positions = evenly_spaced(len(self), rows)
            mine = positions[(positions >= self.offset) & (positions < self.offset + len(self.local))] - self.offset
            pieces = [p for p in self.gather(self.local.take(mine) if len(mine) else None) if p is not None]
            first = pieces[0]
            y = None if first.y is None else torch.cat([p.y for p in pieces])
            w = None if first.w is None else torch.cat([p.w for p in pieces])
            source = f"{self.source} ({len(positions):,} evenly spaced rows of {len(self):,})"
            self._samples[rows] = Dataset(
                torch.cat([p.x for p in pieces]), y, self.x_names, self.y_name, source, w, self.weighting
            )
        return self._samples[rows]


class BatchShard:
    """This process's rows ``(x, y, w)`` (in memory) of one mini-batch of a fit spread over processes, whose other
    rows the other processes hold: a :class:`gradfit.rowpass.RowSet` of the whole batch, ``sizes[r]`` rows on rank
    ``r``. Its sums (a batch's loss and gradient) are added across the processes as :class:`ShardRows`' are, so every
    process takes the step of the whole batch."""

    def __init__(self, shard: ShardRows, x: Tensor, y: Tensor | None, w: Tensor | None, sizes: Sequence[int]):
        self.shard, self.x, self.y, self.w, self.sizes = shard, x, y, w, list(sizes)
        self.x_names, self.y_name, self.weighting = shard.x_names, shard.y_name, shard.weighting
        self.source = f"a mini-batch of {shard.source}"
        self.dtype, self.device = x.dtype, x.device
        self.group = shard.group
        self._weight_total: float | None = None

    def __len__(self) -> int:
        return sum(self.sizes)

    def chunks(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> Iterator[Chunk]:
        return MemoryRows(self.x, self.y, self.w, chunk_size, dtype=dtype).chunks()

    def combine(self, sums: list[Tensor]) -> None:
        """Add a pass's float64 sums across the processes, in place, as the shard does (its stop vote with them)."""
        self.shard.combine(sums)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        return self.shard.gather(obj)

    def weight_total(self) -> float | None:
        """The batch's ``Σ wᵢ`` over every process (one all-reduce, the first time), None when unweighted."""
        if self.w is None:
            return None
        if self._weight_total is None:
            total = [self.w.sum(dtype=torch.float64)]
            self.combine(total)
            self._weight_total = float(total[0])
        return self._weight_total

    def columns(self, names: Sequence[str]) -> BatchShard:
        at = [self.x_names.index(n) for n in names]
        return BatchShard(self.shard.columns(names), self.x[:, at], self.y, self.w, self.sizes)

    def with_dtype(self, dtype: torch.dtype) -> BatchShard:
        y = None if self.y is None else self.y.to(dtype)
        w = None if self.w is None else self.w.to(dtype)
        return BatchShard(self.shard.with_dtype(dtype), self.x.to(dtype), y, w, self.sizes)

    def sample(self, rows: int) -> Dataset:
        """At most ``rows`` evenly spaced rows of the whole batch, the same on every process (a gather)."""
        positions = evenly_spaced(len(self), rows)
        offset = sum(self.sizes[: self.group.rank])
        mine = positions[(positions >= offset) & (positions < offset + len(self.x))] - offset
        piece = (self.x[mine], None if self.y is None else self.y[mine], None if self.w is None else self.w[mine])
        pieces = [p for p in self.gather(piece) if len(p[0])]
        y = None if self.y is None else torch.cat([p[1] for p in pieces])
        w = None if self.w is None else torch.cat([p[2] for p in pieces])
        source = f"{self.source} ({len(positions):,} evenly spaced rows of {len(self):,})"
        return Dataset(torch.cat([p[0] for p in pieces]), y, self.x_names, self.y_name, source, w, self.weighting)
