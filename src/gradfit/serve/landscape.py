"""The playground's loss landscape: the exact loss over two parameters, the others held where the fit is now.

The page asks for a grid over a span it chose (around the path so far); the server evaluates the run's own loss
on the run's data at every grid point (:func:`gradfit.analysis.landscape.loss_on_grid`: from the sufficient
statistics for a model linear in its parameters under the mse, else a batched pass over the rows). A grid would
cost rows x points model evaluations: beyond :data:`MAX_EVALUATIONS` the rows are an even sample, and the answer
says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gradfit.errors import ConfigError
from gradfit.serve.curves import finite

#: Grid points along each axis.
GRID = 41
#: Model evaluations one grid may take (rows x points); beyond, an even sample of the rows.
MAX_EVALUATIONS = 4 * 10**7


class Landscapes:
    """Grids of one run's loss: its model, loss and data, ready to evaluate."""

    def __init__(self, model, frame, y: str | None, loss: str = "mse"):
        from gradfit.losses import get_loss

        self.model = model
        self.loss = get_loss(loss or "mse")
        columns = list(model.inputs)
        keep = frame[[*columns, y]].dropna() if y in frame.columns else frame.iloc[:0]
        self.total_rows = len(keep)
        budget = max(1, MAX_EVALUATIONS // (GRID * GRID))
        if len(keep) > budget:
            keep = keep.iloc[np.linspace(0, len(keep) - 1, budget).round().astype(int)]
        self.x = torch.tensor(keep[columns].to_numpy(dtype=np.float64)).reshape(len(keep), len(columns))
        self.y = torch.tensor(keep[y].to_numpy(dtype=np.float64)) if y in frame.columns else torch.zeros(0)

    def grid(self, names: list[str], row: list[float | None], pair: Any, span: Any) -> dict[str, Any]:
        """The loss over ``pair`` (two flat parameter names) on ``span`` (``[[alo, ahi], [blo, bhi]]``), the other
        parameters at their values in ``row`` (a streamed row)."""
        from gradfit.analysis.landscape import loss_on_grid

        if not (isinstance(pair, list) and len(pair) == 2 and all(p in names for p in pair) and pair[0] != pair[1]):
            raise ConfigError(f"A landscape needs two different parameters among {', '.join(names)}.")
        ranges = _span(span)
        values = row[5:]
        if len(values) != len(names) or any(v is None for v in values):
            raise ConfigError("No finite parameters to hold the others at yet.")
        flat = dict(zip(names, values))
        base = torch.tensor([flat[k] for k in self.model.flat_names()], dtype=torch.float64)
        a = np.linspace(*ranges[0], GRID)
        b = np.linspace(*ranges[1], GRID)
        loss = loss_on_grid(self.model, self.loss, base, pair, a, b, self.x, self.y)
        grid = [[finite(v) for v in line] for line in loss.tolist()]
        sampled = len(self.y) < self.total_rows
        return {
            "type": "landscape",
            "pair": pair,
            "a": a.tolist(),
            "b": b.tolist(),
            "loss": grid,
            "rows": len(self.y),
            "note": f"from an even sample of {len(self.y):,} of {self.total_rows:,} rows" if sampled else "",
        }


def _span(span: Any) -> list[tuple[float, float]]:
    ok = isinstance(span, list) and len(span) == 2
    ranges = []
    for side in span if ok else []:
        if not (isinstance(side, list) and len(side) == 2 and all(isinstance(v, (int, float)) for v in side)):
            ok = False
            break
        low, high = float(side[0]), float(side[1])
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            ok = False
            break
        ranges.append((low, high))
    if not ok:
        raise ConfigError("A landscape's span is [[low, high], [low, high]] with finite low < high.")
    return ranges
