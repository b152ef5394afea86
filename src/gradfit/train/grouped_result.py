"""What a grouped fit returns: one row per group (its parameters, standard errors, loss, steps, status, message).

The numbers are held as columns (numpy arrays, one entry per group, in the order of the sorted group keys), never
as one Python object per group, so a result of 10^6 groups costs its arrays and nothing more. ``to_pandas()``
gives the table the CLI writes as ``groups.csv`` (and ``groups.parquet``), ``summary()`` the counts by status
that go to ``result.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The statuses of a group that count as a success (its parameters are a minimum and its errors defined).
SUCCESS = ("converged",)


@dataclass(frozen=True)
class GroupedResult:
    """One fit per group.

    Attributes
    ----------
    group : str
        The column the rows were grouped by.
    keys : numpy array
        The groups' labels (the column's values, sorted), one per group.
    names : tuple of str
        The flat parameter names (``a``, ``w[0]``...), the columns of ``params`` and ``stderr``.
    params, stderr : numpy arrays (groups, parameters)
        The fitted values and their standard errors (curve_fit's; NaN where undefined, inf with as many rows as
        parameters).
    loss : numpy array
        Each group's mse (``Σ wᵢrᵢ² / Σ wᵢ``); ``sum_squares`` its sum of squares (the chi-square with sigma).
    n_rows, steps : numpy arrays of int
        Each group's rows and iterations (trial steps, accepted or not).
    status, message : numpy arrays of str
        ``converged``, ``max_iterations``, ``singular``, ``diverged``, ``too_few_rows`` or ``stalled``, and why.
    """

    group: str
    keys: np.ndarray
    names: tuple[str, ...]
    params: np.ndarray
    stderr: np.ndarray
    loss: np.ndarray
    sum_squares: np.ndarray
    n_rows: np.ndarray
    steps: np.ndarray
    status: np.ndarray
    message: np.ndarray
    model_spec: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def success(self) -> bool:
        """Whether at least one group succeeded (the CLI's exit status follows it)."""
        return bool(np.isin(self.status, SUCCESS).any())

    def counts(self) -> dict[str, int]:
        """How many groups ended with each status."""
        values, counts = np.unique(self.status.astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts)}

    def to_pandas(self):
        """The table: the group column, each parameter, each standard error (``NAME_stderr``), loss, sum_squares,
        n_rows, steps, status and message."""
        import pandas as pd

        columns: dict[str, Any] = {self.group: self.keys}
        columns.update({n: self.params[:, j] for j, n in enumerate(self.names)})
        columns.update({f"{n}_stderr": self.stderr[:, j] for j, n in enumerate(self.names)})
        columns.update(
            loss=self.loss,
            sum_squares=self.sum_squares,
            n_rows=self.n_rows,
            steps=self.steps,
            status=self.status,
            message=self.message,
        )
        return pd.DataFrame(columns)

    def summary(self) -> dict:
        """What ``result.json`` holds: the counts by status, the model, options, data and timings (JSON-able)."""
        return {
            "kind": "grouped",
            "group": self.group,
            "groups": len(self),
            "success": self.success,
            "counts": self.counts(),
            "parameters": list(self.names),
            "model": self.model_spec,
            "config": self.config,
            "data": self.data,
            "timings": self.timings,
        }
