"""History: what happened at every step, in bounded memory.

Row ``k`` describes the state after ``k`` updates: the loss at those parameters, the norm of
the gradient taken there and the learning rate used to leave them. The last row is the final
state (no gradient taken, so ``grad_norm`` and ``lr`` are NaN there).

Memory is bounded whatever the length of the fit (see ``docs/limits.md``):

- at most :data:`MAX_ROWS` scalar rows: past it every other row is dropped and the interval
  between kept rows doubles;
- at most :data:`MAX_SNAPSHOTS` parameter vectors, and no more than :data:`MAX_SNAPSHOT_VALUES`
  numbers in all (a model with many parameters keeps fewer vectors), decimated the same way.

Kept rows and snapshots are evenly spaced; step 0 (the start) and the final state are always
kept. The wall-clock ``time`` column stays in memory but is not part of :meth:`History.to_frame`
by default, so a saved history is the same, byte for byte, every time a fit is repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

#: Scalar rows (step, loss, ...) kept in memory: 56 MB of float64 at most.
MAX_ROWS = 1_000_000
#: Parameter vectors kept (the default of ``FitConfig.max_snapshots``).
MAX_SNAPSHOTS = 2_000
#: Numbers kept across all parameter vectors: 256 MB of float64 at most.
MAX_SNAPSHOT_VALUES = 32_000_000

STEP_COLUMNS = ("step", "epoch", "loss", "val_loss", "lr", "grad_norm")
TIME_COLUMN = "time"
COLUMNS = STEP_COLUMNS + (TIME_COLUMN,)


def snapshot_cap(n_params: int, max_snapshots: int = MAX_SNAPSHOTS) -> int:
    """How many parameter vectors a fit of ``n_params`` numbers keeps: at least 2 (start and end).

    Examples
    --------
    >>> snapshot_cap(3), snapshot_cap(100_000), snapshot_cap(10**9)
    (2000, 320, 2)
    """
    return max(2, min(int(max_snapshots), MAX_SNAPSHOT_VALUES // max(1, int(n_params))))


class HistoryRecorder:
    """Collects rows and snapshots during a fit; ``freeze()`` returns the :class:`History`.

    Rows live in one preallocated float64 table (7 numbers a row), not Python tuples, so a
    full :data:`MAX_ROWS` costs 56 MB instead of about 300 MB; snapshots likewise in one float64 table
    (a row per kept vector), both grown by doubling up to their caps.
    """

    def __init__(
        self,
        param_names: list[str],
        max_rows: int = MAX_ROWS,
        max_snapshots: int = MAX_SNAPSHOTS,
        snapshot_every: int = 1,
    ):
        self.param_names = list(param_names)
        self.max_rows = max(2, int(max_rows))
        self.max_snapshots = snapshot_cap(len(self.param_names), max_snapshots)
        self.row_every = 1
        self.snapshot_every = max(1, int(snapshot_every))
        self._table = np.empty((min(1024, self.max_rows + 1), len(COLUMNS)), dtype=np.float64)
        self._n = 0
        self.snap_steps: list[int] = []
        self._snaps = np.empty((min(64, self.max_snapshots + 1), len(self.param_names)), dtype=np.float64)

    def __len__(self) -> int:
        return self._n

    @property
    def rows(self) -> list[tuple]:
        """The kept rows as tuples ``(step, epoch, loss, val_loss, lr, grad_norm, time)`` (a copy)."""
        return [tuple(r) for r in self._table[: self._n].tolist()]

    def table(self) -> np.ndarray:
        """The kept rows as a ``(len(self), 7)`` float64 array in :data:`COLUMNS` order (a copy)."""
        return self._table[: self._n].copy()

    @property
    def snaps(self) -> np.ndarray:
        """The kept parameter vectors, one row per entry of ``snap_steps`` (a view: copy it to keep it)."""
        return self._snaps[: len(self.snap_steps)]

    def wants_snapshot(self, step: int) -> bool:
        return step % self.snapshot_every == 0

    def add_row(
        self, step: int, epoch: float, loss: float, val_loss: float, lr: float, grad_norm: float, t: float
    ) -> None:
        if step % self.row_every:
            return
        self._append((step, epoch, loss, val_loss, lr, grad_norm, t))
        if self._n > self.max_rows:
            self._thin_rows()

    def add_rows(self, rows: list) -> None:
        """:meth:`add_row` of each of ``rows`` (``[step, epoch, loss, val_loss, lr, grad_norm, time]``), in order:
        one write where no row is dropped and the table stays within its cap (a block of steps)."""
        m = len(rows)
        if self.row_every != 1 or self._n + m > self.max_rows:
            for row in rows:
                self.add_row(*row)
            return
        if self._n + m > len(self._table):
            self._grow_rows(self._n + m)
        self._table[self._n : self._n + m] = rows
        self._n += m

    def add_snapshots(self, steps: list[int], values: np.ndarray) -> None:
        """The snapshot each of ``steps`` would get from :meth:`wants_snapshot` and :meth:`add_snapshot` taken one
        at a time (``values[i]``: the vector at ``steps[i]``): one write where all are kept within the cap."""
        m, kept = len(steps), len(self.snap_steps)
        if self.snapshot_every == 1 and kept + m <= self.max_snapshots:
            if kept + m > len(self._snaps):
                self._grow_snaps(kept + m)
            self._snaps[kept : kept + m] = values
            self.snap_steps.extend(steps)
            return
        for step, row in zip(steps, values):
            if self.wants_snapshot(step):
                self.add_snapshot(step, row)

    def set_last_val(self, val_loss: float) -> None:
        """Fill in a validation loss computed after the row was added."""
        if self._n:
            self._table[self._n - 1, 3] = val_loss

    def add_snapshot(self, step: int, flat: torch.Tensor | np.ndarray) -> None:
        self._snapshot_row()[:] = _vector(flat)
        self._kept_snapshot(step)

    def add_snapshot_of(self, step: int, tensors) -> None:
        """:meth:`add_snapshot` of the entries of ``tensors``, in order and row-major within each (the vector
        :func:`gradfit.problem.flatten` gives), written into the table without building that vector."""
        row, at = self._snapshot_row(), 0
        for t in tensors:
            n = t.numel()
            if n == 1:
                row[at] = t.item()  # exact: every float dtype widens to float64 without rounding
            elif n <= 16:
                # A few numbers: cheaper than a float64 copy on the side.
                row[at : at + n] = t.tolist() if t.dim() == 1 else t.reshape(-1).tolist()
            else:
                row[at : at + n] = t.detach().reshape(-1).to("cpu", torch.float64).numpy()
            at += n
        self._kept_snapshot(step)

    def _snapshot_row(self) -> np.ndarray:
        """The table's next free row (the table doubled first when full)."""
        m = len(self.snap_steps)
        if m == len(self._snaps):
            self._grow_snaps(m + 1)
        return self._snaps[m]

    def _grow_snaps(self, needed: int) -> None:
        """Double the snapshot table until it holds ``needed`` vectors (never past the cap plus one)."""
        self._snaps = _grown(self._snaps, len(self.snap_steps), needed, self.max_snapshots + 1)

    def _kept_snapshot(self, step: int) -> None:
        self.snap_steps.append(step)
        if len(self.snap_steps) > self.max_snapshots:
            self._thin_snapshots()

    def add_final(self, step: int, epoch: float, loss: float, val_loss: float, t: float, flat) -> None:
        """The final state is always recorded, whatever the decimation, and the caps still hold.

        After divergence the final state is the step before the non-finite row, which is already
        recorded: the rows stay in step order (``..., k-1, k``) with the blow-up last.
        """
        if not self._n or step not in self._table[max(0, self._n - 2) : self._n, 0]:
            if self._n >= self.max_rows:
                self._thin_rows()
            self._append((step, epoch, loss, val_loss, math.nan, math.nan, t))
        if not self.snap_steps or self.snap_steps[-1] != step:
            if len(self.snap_steps) >= self.max_snapshots:
                self._thin_snapshots()
            self._snapshot_row()[:] = _vector(flat)
            self.snap_steps.append(step)

    def state_dict(self) -> dict:
        """The rows and snapshots so far, as tensors and numbers (``torch.load(weights_only=True)`` reads them)."""
        return {
            "rows": torch.from_numpy(self.table()).reshape(-1, len(COLUMNS)),
            "snap_steps": torch.tensor(self.snap_steps, dtype=torch.int64),
            "snaps": torch.from_numpy(self.snaps.copy()),
            "row_every": self.row_every,
            "snapshot_every": self.snapshot_every,
        }

    def load_state_dict(self, state: dict) -> None:
        """Refill a fresh recorder through its own methods (the kept rows are multiples of ``row_every``)."""
        self.row_every, self.snapshot_every = int(state["row_every"]), int(state["snapshot_every"])
        for row in state["rows"].tolist():
            self.add_row(int(row[0]), *row[1:])
        for step, flat in zip(state["snap_steps"].tolist(), state["snaps"]):
            self.add_snapshot(int(step), flat.numpy().copy())

    def freeze(self) -> History:
        table = self._table[: self._n]
        snaps = self.snaps.copy()
        return History(
            columns={c: table[:, i].copy() for i, c in enumerate(COLUMNS)},
            param_names=tuple(self.param_names),
            snapshot_steps=np.asarray(self.snap_steps, dtype=np.int64),
            snapshots=snaps,
        )

    def _append(self, row: tuple) -> None:
        if self._n == len(self._table):
            self._grow_rows(self._n + 1)
        self._table[self._n] = row
        self._n += 1

    def _grow_rows(self, needed: int) -> None:
        """Double the row table until it holds ``needed`` rows (never past the cap plus one)."""
        self._table = _grown(self._table, self._n, needed, self.max_rows + 1)

    def _thin_rows(self) -> None:
        # Doubling the interval keeps the rows evenly spaced (steps are multiples of it) and step 0.
        self.row_every *= 2
        rows = self._table[: self._n]
        kept = rows[rows[:, 0] % self.row_every == 0]
        self._n = len(kept)
        self._table[: self._n] = kept

    def _thin_snapshots(self) -> None:
        self.snapshot_every *= 2
        keep = [i for i, s in enumerate(self.snap_steps) if s % self.snapshot_every == 0]
        self.snap_steps = [self.snap_steps[i] for i in keep]
        self._snaps[: len(keep)] = self._snaps[keep]


def _grown(table: np.ndarray, used: int, needed: int, cap: int) -> np.ndarray:
    """``table`` (its first ``used`` rows kept) in a table doubled until it holds ``needed`` rows, at most ``cap``."""
    size = max(len(table), 1)
    while size < min(needed, cap):
        size = min(2 * size, cap)
    grown = np.empty((size, table.shape[1]), dtype=np.float64)
    grown[:used] = table[:used]
    return grown


@dataclass(frozen=True)
class History:
    """Per-step record of a fit. Arrays, not tensors: a history is data to save and draw.

    Attributes
    ----------
    columns : dict of str to ndarray
        ``step``, ``epoch``, ``loss``, ``val_loss`` (NaN where not evaluated), ``lr``,
        ``grad_norm``, ``time`` (seconds since the start; NaN when loaded without ``timings.csv``).
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
            raise KeyError(
                f"no parameter snapshot at step {step}; snapshots exist every few steps: {self.snapshot_steps[:5]}..."
            )
        return dict(zip(self.param_names, self.snapshots[hits[0]].tolist()))

    def to_frame(self, include_time: bool = False, params: bool = True):
        """One row per recorded step; parameter columns where a snapshot was kept (NaN elsewhere).

        The wall-clock ``time`` column is left out unless ``include_time``: it differs from run
        to run, and the frame is what ``history.csv`` holds (times go to :meth:`timings_frame`).
        ``params=False`` leaves the parameter columns out (a large model's snapshots go to a file
        of their own, see :mod:`gradfit.train.snapshots`).
        """
        import pandas as pd

        return pd.DataFrame(self.table(include_time=include_time, params=params).columns())

    def table(self, include_time: bool = False, params: bool = True):
        """The columns of :meth:`to_frame` as a :class:`~gradfit.train.history_table.HistoryTable`, produced a
        slice of rows at a time (what :func:`gradfit.outputs.save_run` writes, fast and in bounded memory)."""
        from gradfit.train.history_table import HistoryTable

        return HistoryTable(self, COLUMNS if include_time else STEP_COLUMNS, params=params)

    def timings_table(self):
        """The columns of :meth:`timings_frame` as a :class:`~gradfit.train.history_table.HistoryTable`."""
        from gradfit.train.history_table import HistoryTable

        return HistoryTable(self, ("step", TIME_COLUMN), params=False)

    def timings_frame(self):
        """``step, time``: the wall-clock seconds since the start at each recorded row (``timings.csv``)."""
        import pandas as pd

        return pd.DataFrame({"step": self.columns["step"].astype(np.int64), TIME_COLUMN: self.columns[TIME_COLUMN]})

    def with_snapshots(self, names, steps, values) -> History:
        """The same rows with these parameter snapshots (as read from ``history_params.npz``)."""
        values = np.asarray(values, dtype=np.float64)
        return replace(
            self,
            param_names=tuple(names),
            snapshot_steps=np.asarray(steps, dtype=np.int64),
            snapshots=values.reshape(len(steps), len(names)),
        )

    @classmethod
    def from_frame(cls, frame, timings=None) -> History:
        """Inverse of :meth:`to_frame` (what ``history.csv`` / ``.parquet`` hold).

        Reads files with or without a ``time`` column; ``timings`` (a ``step, time`` frame, as
        in ``timings.csv``) fills the times in by step. Without either, ``time`` is NaN.
        """
        columns = {c: frame[c].to_numpy(dtype=np.float64) for c in STEP_COLUMNS}
        columns[TIME_COLUMN] = _times(frame, timings, columns["step"])
        names = [c for c in frame.columns if c not in COLUMNS]
        have = frame[names].notna().all(axis=1).to_numpy() if names else np.zeros(len(frame), bool)
        return cls(
            columns=columns,
            param_names=tuple(names),
            snapshot_steps=frame["step"].to_numpy(dtype=np.int64)[have],
            snapshots=frame.loc[have, names].to_numpy(dtype=np.float64) if names else np.zeros((0, 0)),
        )


def _vector(flat) -> np.ndarray:
    """A float64 copy of a parameter vector: the caller may reuse its buffer."""
    if isinstance(flat, torch.Tensor):
        return flat.detach().to("cpu", torch.float64).numpy().copy()
    return np.array(flat, dtype=np.float64)


def _times(frame, timings, steps: np.ndarray) -> np.ndarray:
    if TIME_COLUMN in frame.columns:
        return frame[TIME_COLUMN].to_numpy(dtype=np.float64)
    if timings is None or TIME_COLUMN not in timings.columns or "step" not in timings.columns:
        return np.full(len(steps), np.nan)
    by_step = dict(
        zip(
            timings["step"].to_numpy(dtype=np.float64).tolist(),
            timings[TIME_COLUMN].to_numpy(dtype=np.float64).tolist(),
        )
    )
    return np.array([by_step.get(s, math.nan) for s in steps.tolist()], dtype=np.float64)
