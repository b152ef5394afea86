"""Batches: which rows each step of a fit sees, and the shuffling generator's state between steps.

Full batch (no ``batch_size``, or one of at least the number of rows) every step sees every row
and the generator is never drawn from. With mini-batches an epoch is ``ceil(rows / batch)`` steps;
at the start of each epoch the rows are put in a new random order (``shuffle``), drawn from the
fit's generator, and step ``k`` takes the ``k % per_epoch``-th slice of it.
"""

from __future__ import annotations

import math

import torch

from gradfit.rowpass import rows_triple


class Batches:
    """The mini-batch schedule of one fit over ``data`` (an object with ``x``, ``y``, ``w`` and a length).

    Parameters
    ----------
    data : Dataset-like
        The training rows.
    batch_size : int or None
        Rows per step; None for full batch.
    shuffle : bool
        Draw a new order at each epoch's start (else the rows' own order).
    generator : torch.Generator or None
        The source of the orders.
    """

    def __init__(self, data, batch_size: int | None, shuffle: bool, generator: torch.Generator | None):
        self.data, self.shuffle, self.generator = data, shuffle, generator
        self.rows = len(data)
        self.batch = self.rows if batch_size is None else min(batch_size, self.rows)
        self.per_epoch = math.ceil(self.rows / self.batch)
        self.order: torch.Tensor | None = None
        self.position = 0  # the step whose batch comes next
        self.epoch_rng = generator.get_state() if generator is not None else None  # where this epoch's order came from

    def take(self, step: int) -> tuple:
        """``(x, y, w)`` of step ``step`` (``w`` None when the fit is unweighted)."""
        data = self.data
        self.position = step + 1
        if self.batch >= self.rows:
            return rows_triple(data)
        if self.order is None or (step % self.per_epoch == 0 and self.shuffle):
            # Drawn afresh after a resume mid-epoch too, from the generator state of the epoch's start.
            self.epoch_rng = self.generator.get_state() if self.generator is not None else None
            device = data.x.device
            self.order = (
                torch.randperm(self.rows, generator=self.generator).to(device)
                if self.shuffle
                else torch.arange(self.rows, device=device)
            )
        k = step % self.per_epoch
        idx = self.order[k * self.batch : (k + 1) * self.batch]
        return data.x[idx], data.y[idx], None if data.w is None else data.w[idx]

    def state_dict(self) -> torch.Tensor | None:
        """The generator's state from which the rest of the fit's orders follow (None without a generator).

        Mid-epoch that is the state at the epoch's start, so a resumed fit draws the same order again;
        before any batch is taken, or after a resume, the generator itself is still there.
        """
        if self.generator is None:
            return None
        mid_epoch = self.drawn and self.shuffle and self.batch < self.rows and self.position % self.per_epoch != 0
        return self.epoch_rng if mid_epoch else self.generator.get_state()

    @property
    def drawn(self) -> bool:
        """Whether an epoch's order has been drawn (its generator state kept in ``epoch_rng``)."""
        return self.order is not None

    def layout(self) -> dict:
        """What a checkpoint must hold beyond the generator to take the same batches again: nothing here."""
        return {}

    def check_layout(self, saved: dict) -> None:
        """Nothing to check: the order of the rows follows from the generator alone."""

    def load_state_dict(self, state: torch.Tensor | None) -> None:
        if self.generator is not None and state is not None:
            self.generator.set_state(state)
