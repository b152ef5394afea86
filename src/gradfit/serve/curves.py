"""What the page draws of the data: a sample of the points, and the model's curve for a row's parameters.

With one input the page draws y against x and the model's curve over a grid of x; with several, observed against
predicted for the sampled rows (the diagonal is a perfect fit). The curve is computed from the parameters a row
streamed (a copy taken at the step boundary), so it never reads the fit's tensors while the fit writes them; the
model is a pure function of (parameters, inputs), safe to call from the server's thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: Points of the data drawn at most (a sample, the same every time: evenly spaced rows).
MAX_POINTS = 2_000
#: x values of the curve (one input).
GRID = 200


class Curves:
    """The data's points and the model's predictions for them, for one run."""

    def __init__(self, model, frame, y: str | None):
        self.model = model
        self.inputs = list(model.inputs)
        self.y = y
        n = len(frame)
        rows = np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int)) if n else np.zeros(0, int)
        sample = frame.iloc[rows]
        self.observed = _numbers(sample[y]) if y in frame.columns else []
        self.one_input = len(self.inputs) == 1 and model.n_outputs == 1
        if self.one_input:
            x = _numbers(sample[self.inputs[0]])
            self.points_x = x
            finite = [v for v in x if v is not None]
            low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
            pad = 0.02 * (high - low) if high > low else 0.5
            grid = np.linspace(low - pad, high + pad, GRID)
            self.at = torch.tensor(grid, dtype=torch.float64)[:, None]
            self.grid = grid.tolist()
        else:
            columns = [c for c in self.inputs if c in frame.columns]
            values = sample[columns].to_numpy(dtype=np.float64, na_value=np.nan) if columns else np.zeros((0, 0))
            self.at = torch.tensor(values, dtype=torch.float64)
            self.points_x = []
            self.grid = []

    def points(self) -> dict[str, Any]:
        """The data as the page draws it, sent once per run."""
        kind = "curve" if self.one_input else "observed_predicted"
        return {"kind": kind, "x": self.points_x, "y": self.observed, "grid": self.grid, "input": self.inputs}

    def predictions(self, names: list[str], row: list[float | None]) -> list[float | None] | None:
        """The model's values at the grid (one input) or at the sampled rows, for the parameters in ``row``."""
        values = row[5:]
        if len(values) != len(names) or any(v is None for v in values) or self.model.n_outputs != 1:
            return None
        flat = dict(zip(names, values))
        params = {}
        for spec in self.model.specs:
            entries = [flat[n] for n in spec.flat_names()]
            params[spec.name] = torch.tensor(entries, dtype=torch.float64).reshape(spec.shape)
        try:
            with torch.no_grad():
                out = self.model(params, self.at).reshape(-1).tolist()
        except Exception:  # a model that cannot take float64 or these rows: no curve, the fit goes on
            return None
        return [v if math.isfinite(v) else None for v in out]


def _numbers(column) -> list[float | None]:
    values = np.asarray(column, dtype=np.float64) if column.dtype.kind in "biuf" else np.full(len(column), np.nan)
    return [float(v) if math.isfinite(v) else None for v in values]
