"""HistoryTable: the columns of ``history.csv``, merged from a history's rows and snapshots with NumPy.

A :class:`~gradfit.train.history.History` keeps its per-step rows and its parameter snapshots
apart (a snapshot is kept every few steps). The saved table has one row per step that has
either, in step order: the step columns (NaN where a step has only a snapshot) and one column
per parameter (NaN where a step has no snapshot), as a pandas outer merge on ``step`` would
give. Here the merge is an index computed once (``argsort`` and ``searchsorted``), and the
parameter columns are produced a slice of rows at a time, so writing a history of
:data:`~gradfit.train.history.MAX_ROWS` rows never builds a rows x parameters block of floats.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HistoryTable"]


class HistoryTable:
    """The merged columns of a history (``names``), produced a slice of rows at a time.

    Parameters
    ----------
    history : History
    columns : sequence of str
        The per-step columns, ``step`` first (default: those of ``history.csv``, without the
        wall-clock ``time``; ``("step", "time")`` is ``timings.csv``).
    params : bool
        Add a column per parameter from the snapshots.

    Examples
    --------
    >>> import numpy as np
    >>> from gradfit.train.history import History
    >>> cols = {c: np.array([0.0, 2.0]) if c == "step" else np.array([1.0, 0.5]) for c in
    ...         ("step", "epoch", "loss", "val_loss", "lr", "grad_norm", "time")}
    >>> t = HistoryTable(History(cols, ("a",), np.array([1]), np.array([[7.0]])))
    >>> t.names[0], t.names[-1], len(t)
    ('step', 'a', 3)
    >>> [c.tolist() for c in t.rows(0, 3)][::6]
    [[0, 1, 2], [nan, 7.0, nan]]
    """

    def __init__(self, history, columns=None, params: bool = True):
        from gradfit.train.history import STEP_COLUMNS

        step_names = tuple(columns) if columns is not None else STEP_COLUMNS
        if step_names[:1] != ("step",):
            raise ValueError(f"the first column of a history table is 'step', not {step_names[:1]}")
        steps = history.columns["step"].astype(np.int64)
        snap_steps = np.asarray(history.snapshot_steps, dtype=np.int64)
        with_params = params and len(snap_steps) > 0
        self.names: tuple[str, ...] = tuple(step_names) + (tuple(history.param_names) if with_params else ())
        self._columns = [steps] + [np.asarray(history.columns[c], dtype=np.float64) for c in step_names[1:]]
        self._snapshots = history.snapshots if with_params else None
        self._n_rows = len(steps)  # rows of the history; any beyond are steps with a snapshot only
        if not with_params:
            self._order, self._steps, self._snap = None, steps, None
            return
        only_snapshot = snap_steps[~np.isin(snap_steps, steps)]
        merged = np.concatenate([steps, only_snapshot])
        self._order = np.argsort(merged, kind="stable")  # the history's rows keep their order among equal steps
        self._steps = merged[self._order]
        sorter = np.argsort(snap_steps, kind="stable")
        at = sorter[np.minimum(np.searchsorted(snap_steps, self._steps, sorter=sorter), len(snap_steps) - 1)]
        self._snap = np.where(snap_steps[at] == self._steps, at, -1)  # the snapshot of each row, -1 for none

    def __len__(self) -> int:
        return len(self._steps)

    def rows(self, start: int, stop: int) -> list[np.ndarray]:
        """Rows ``start:stop`` of every column, in :attr:`names` order (``step`` as int64, the rest float64)."""
        if self._order is None:
            return [c[start:stop] for c in self._columns]
        assert self._snap is not None and self._snapshots is not None  # __init__ sets them with _order
        index = self._order[start:stop]
        from_rows = index < self._n_rows
        out = [self._steps[start:stop]]
        for column in self._columns[1:]:
            values = np.full(len(index), np.nan)
            values[from_rows] = column[index[from_rows]]
            out.append(values)
        snap = self._snap[start:stop]
        has = snap >= 0
        block = np.full((self._snapshots.shape[1], len(index)), np.nan)  # a contiguous row per parameter
        block[:, has] = self._snapshots[snap[has]].T
        return out + list(block)

    def columns(self) -> dict[str, np.ndarray]:
        """The whole table as name -> array."""
        return dict(zip(self.names, self.rows(0, len(self))))
