"""History: what happened at every step, in bounded memory.

Row ``k`` describes the state after ``k`` updates: the loss at those parameters, the norm of
the gradient taken there and the learning rate used to leave them. The last row is the final
state (no gradient taken, so ``grad_norm`` and ``lr`` are NaN there).

Parameter snapshots are kept every ``snapshot_every`` steps; when more than ``max_snapshots``
pile up, every other one is dropped and the interval doubles, so a fit of any length keeps at
most ``max_snapshots`` vectors (step 0, the start, is always kept). Scalar rows are decimated
the same way past ``max_rows``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

COLUMNS = ("step", "epoch", "loss", "val_loss", "lr", "grad_norm", "time")


class HistoryRecorder:
    """Collects rows and snapshots during a fit; ``freeze()`` returns the :class:`History`."""

    def __init__(self, param_names: list[str], max_rows: int = 1_000_000, max_snapshots: int = 2_000, snapshot_every: int = 1):
        self.param_names = list(param_names)
        self.max_rows = max_rows
        self.max_snapshots = max_snapshots
        self.row_every = 1
        self.snapshot_every = max(1, int(snapshot_every))
        self.rows: list[tuple] = []
        self.snap_steps: list[int] = []
        self.snaps: list[np.ndarray] = []

    def wants_snapshot(self, step: int) -> bool:
        return step % self.snapshot_every == 0

    def add_row(self, step: int, epoch: float, loss: float, val_loss: float, lr: float, grad_norm: float, t: float) -> None:
        if step % self.row_every:
            return
        self.rows.append((step, epoch, loss, val_loss, lr, grad_norm, t))
        if len(self.rows) > self.max_rows:
            self.row_every *= 2
            self.rows = [r for r in self.rows if r[0] % self.row_every == 0]

    def set_last_val(self, val_loss: float) -> None:
        """Fill in a validation loss computed after the row was added."""
        if self.rows:
            self.rows[-1] = self.rows[-1][:3] + (val_loss,) + self.rows[-1][4:]

    def add_snapshot(self, step: int, flat: torch.Tensor | np.ndarray) -> None:
        self.snap_steps.append(step)
        self.snaps.append(np.asarray(flat, dtype=np.float64))
        if len(self.snaps) > self.max_snapshots:
            self.snapshot_every *= 2
            keep = [i for i, s in enumerate(self.snap_steps) if s % self.snapshot_every == 0]
            self.snap_steps = [self.snap_steps[i] for i in keep]
            self.snaps = [self.snaps[i] for i in keep]

    def add_final(self, step: int, epoch: float, loss: float, val_loss: float, t: float, flat) -> None:
        """The final state is always recorded, whatever the decimation."""
        if not self.rows or self.rows[-1][0] != step:
            self.rows.append((step, epoch, loss, val_loss, math.nan, math.nan, t))
        if not self.snap_steps or self.snap_steps[-1] != step:
            self.snap_steps.append(step)
            self.snaps.append(np.asarray(flat, dtype=np.float64))

    def freeze(self) -> "History":
        table = np.array(self.rows, dtype=np.float64).reshape(-1, len(COLUMNS))
        snaps = np.stack(self.snaps) if self.snaps else np.zeros((0, len(self.param_names)))
        return History(
            columns={c: table[:, i].copy() for i, c in enumerate(COLUMNS)},
            param_names=tuple(self.param_names),
            snapshot_steps=np.asarray(self.snap_steps, dtype=np.int64),
            snapshots=snaps,
        )


@dataclass(frozen=True)
class History:
    """Per-step record of a fit. Arrays, not tensors: a history is data to save and draw.

    Attributes
    ----------
    columns : dict of str to ndarray
        ``step``, ``epoch``, ``loss``, ``val_loss`` (NaN where not evaluated), ``lr``,
        ``grad_norm``, ``time`` (seconds since the start).
    param_names : tuple of str
        Flat parameter names (``a[0]``, ``b``...), the columns of ``snapshots``.
    snapshot_steps : ndarray of int
        The steps at which parameters were kept.
    snapshots : ndarray, shape (len(snapshot_steps), len(param_names))
    """

    columns: dict[str, np.ndarray]
    param_names: tuple[str, ...]
    snapshot_steps: np.ndarray
    snapshots: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["step"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def loss(self) -> np.ndarray:
        return self.columns["loss"]

    @property
    def step(self) -> np.ndarray:
        return self.columns["step"].astype(np.int64)

    def params_at(self, step: int) -> dict[str, float]:
        """The kept snapshot at ``step`` (exactly), as flat name -> value."""
        hits = np.nonzero(self.snapshot_steps == step)[0]
        if not len(hits):
            raise KeyError(f"no parameter snapshot at step {step}; snapshots exist every few steps: {self.snapshot_steps[:5]}...")
        return dict(zip(self.param_names, self.snapshots[hits[0]].tolist()))

    def to_frame(self):
        """One row per recorded step; parameter columns where a snapshot was kept (NaN elsewhere)."""
        import pandas as pd

        frame = pd.DataFrame({c: v for c, v in self.columns.items()})
        frame["step"] = frame["step"].astype(np.int64)
        if len(self.snapshot_steps):
            snaps = pd.DataFrame(self.snapshots, columns=list(self.param_names))
            snaps.insert(0, "step", self.snapshot_steps)
            frame = frame.merge(snaps, on="step", how="outer").sort_values("step", kind="stable").reset_index(drop=True)
        return frame

    @classmethod
    def from_frame(cls, frame) -> "History":
        """Inverse of :meth:`to_frame` (what ``history.csv`` / ``.parquet`` hold)."""
        columns = {c: frame[c].to_numpy(dtype=np.float64) for c in COLUMNS}
        names = [c for c in frame.columns if c not in COLUMNS]
        have = frame[names].notna().all(axis=1).to_numpy() if names else np.zeros(len(frame), bool)
        return cls(
            columns=columns,
            param_names=tuple(names),
            snapshot_steps=frame["step"].to_numpy(dtype=np.int64)[have],
            snapshots=frame.loc[have, names].to_numpy(dtype=np.float64) if names else np.zeros((0, 0)),
        )
