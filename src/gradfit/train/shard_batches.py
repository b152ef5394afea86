"""Mini-batches of a fit spread over processes: each process takes its share of every batch from its own rows.

Every process of the fit (:class:`gradfit.data.shard_rows.ShardRows`) holds a shard of ``n_r`` rows; the fit's
``batch_size`` is the batch of all of them together, so an epoch is ``P = ceil(rows / batch_size)`` steps, the same
everywhere. Each process goes through its own rows once an epoch, as a streamed file's mini-batches do
(:class:`gradfit.train.stream_batches.StreamBatches`: blocks, windows, seeded shuffles), in ``P`` even parts: step
``k`` of an epoch takes its rows ``[floor(k n_r / P), floor((k+1) n_r / P))``, so a batch holds each shard in
proportion to its rows and every row once an epoch. The step's loss and gradient are the sums of all the parts
added across the processes (:class:`gradfit.data.shard_rows.BatchShard`), divided by the batch's rows (or weights):
the mean over the whole batch, the step one process would take on those rows, which every process then takes.

Each process draws its epoch's block order and window seeds from a generator of its own, seeded at the epoch's start
by one number drawn from the fit's generator and the process's rank. The fit's generator is then drawn from alike
on every process, so the state a checkpoint keeps (rank 0's) is every process's, and a resumed fit takes the same
batches everywhere.
"""

from __future__ import annotations

import math

import torch

from gradfit.data.shard_rows import BatchShard
from gradfit.errors import ConfigError
from gradfit.rowpass import rows_triple
from gradfit.train.batches import Batches
from gradfit.train.stream_batches import StreamBatches

__all__ = ["ShardBatches"]

#: Mixes the rank into an epoch's seed (the golden ratio's 64-bit constant, kept to 62 bits).
_MIX = 0x9E3779B97F4A7C15 & ((1 << 62) - 1)


class ShardBatches(StreamBatches):
    """The mini-batch schedule of one process of a fit spread over processes (``shard``: its
    :class:`gradfit.data.shard_rows.ShardRows`): ``rows``, ``batch`` and ``per_epoch`` are those of all the rows,
    read from this process's own."""

    def __init__(
        self, shard, batch_size: int | None, shuffle: bool, generator: torch.Generator | None, buffer_rows=None
    ):
        Batches.__init__(self, shard, batch_size, shuffle, generator)  # rows, batch, per_epoch of all the rows
        self.shard, self.rank = shard, shard.group.rank
        mini = self.batch < self.rows
        if mini:
            _check_shares(shard.sizes, self.batch, self.per_epoch)
        self._plan(shard.local, buffer_rows, mini)
        self.local_rows = len(shard.local)
        # What a checkpoint holds of every process's windows (state_dict runs on every process; no gather there).
        counts = shard.gather(len(self.blocks)) if mini else []
        self._layout = {"window_rows": self.buffer_rows, "blocks": [int(n) for n in counts]}

    def take(self, step: int) -> tuple:
        """``(a BatchShard, None, None)``: this process's part of step ``step``'s batch (all the rows in full batch)."""
        self.position = step + 1
        if self.batch >= self.rows:
            return rows_triple(self.data)
        k = step % self.per_epoch
        x, y, w = self._read(k)
        sizes = [_part(n, k + 1, self.per_epoch) - _part(n, k, self.per_epoch) for n in self.shard.sizes]
        return BatchShard(self.shard, x, y, w, sizes), None, None

    def _span(self, k: int) -> tuple[int, int]:
        return _part(self.local_rows, k, self.per_epoch), _part(self.local_rows, k + 1, self.per_epoch)

    def _epoch_generator(self) -> torch.Generator | None:
        """This process's generator for the epoch: one draw from the fit's generator (the same draw on every
        process) mixed with the rank."""
        if self.generator is None:
            return None
        seed = int(torch.randint(0, 1 << 62, (1,), generator=self.generator))
        return torch.Generator().manual_seed(seed ^ (self.rank * _MIX))

    def layout(self) -> dict:
        """The checkpoint's ``windows`` field: the rows of a shuffle window and every process's count of blocks."""
        return {} if self.batch >= self.rows else {"windows": self._layout}

    def check_layout(self, saved: dict) -> None:
        mine, theirs = self.layout().get("windows"), saved.get("windows")
        if mine is not None and theirs != mine:
            raise ConfigError(
                f"Cannot resume: the checkpoint's mini-batches were drawn over other shuffle windows ({theirs}) than "
                f"this fit's ({mine}: the rows of a window, and each process's blocks), so it would take other "
                f"batches. Resume with the processes and the memory budget (GRADFIT_MEMORY, --memory-budget) of the "
                f"interrupted run."
            )


def _part(rows: int, k: int, parts: int) -> int:
    """Where part ``k`` of ``parts`` even parts of ``rows`` rows starts."""
    return (k * rows) // parts


def _check_shares(sizes: list[int], batch: int, per_epoch: int) -> None:
    """ConfigError, on every process alike, when a process holds fewer rows than an epoch has steps (it would have
    no rows for some steps)."""
    fewest = min(sizes)
    if fewest >= per_epoch:
        return
    rank = sizes.index(fewest)
    least = math.ceil(sum(sizes) / fewest)
    raise ConfigError(
        f"Mini-batches of {batch:,} rows over {len(sizes)} processes: each process takes a share of every batch in "
        f"proportion to its rows, and rank {rank} holds {fewest:,} rows, fewer than the {per_epoch:,} steps of an "
        f"epoch. Give a batch_size of at least {least:,}, or start fewer processes."
    )
