"""What the page draws of the data: a sample of the points, and the model's curve for a row's parameters.

With one input the page draws y against x and the model's curve over a grid of x; with several, observed against
predicted for the sampled rows (the diagonal is a perfect fit). The curve is computed from the parameters a row
streamed (a copy taken at the step boundary), so it never reads the fit's tensors while the fit writes them; the
model is a pure function of (parameters, inputs), safe to call from the server's thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from gradfit.models.base import unflatten_params

#: Points of the data drawn at most (a sample, the same every time: evenly spaced rows).
MAX_POINTS = 2_000
#: x values of the curve (one input).
GRID = 200
#: Points along each side of the input plane for a classifier's regions (two inputs).
PLANE = 48
#: Distinct whole-number targets at most for the data to count as classes.
MAX_CLASSES = 10


class Curves:
    """The data's points and the model's predictions for them, for one run."""

    def __init__(self, model, frame, y: str | None, loss: str = "mse"):
        self.model = model
        self.inputs = list(model.inputs)
        self.y = y
        self.loss = loss
        n = len(frame)
        rows = np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int)) if n else np.zeros(0, int)
        sample = frame.iloc[rows]
        self.observed = _numbers(sample[y]) if y in frame.columns else []
        self.one_input = len(self.inputs) == 1 and model.n_outputs == 1
        self.classes = _classes(frame, y) if len(self.inputs) == 2 else None
        self.points_x: list[Any]  # x per point (one input), [x1, x2] per point (classes), or nothing
        self.grid: list[Any]  # the curve's x (one input), the plane's two axes (classes), or nothing
        if self.classes is not None:
            columns = sample[self.inputs].to_numpy(dtype=np.float64, na_value=np.nan)
            self.points_x = [[finite(a), finite(b)] for a, b in columns]
            box = [_padded(columns[:, k]) for k in range(2)]
            self.grid = [np.linspace(*box[0], PLANE).tolist(), np.linspace(*box[1], PLANE).tolist()]
            gb, ga = np.meshgrid(self.grid[1], self.grid[0], indexing="ij")
            self.at = torch.tensor(np.stack([ga.ravel(), gb.ravel()], axis=1), dtype=torch.float64)
        elif self.one_input:
            x = _numbers(sample[self.inputs[0]])
            self.points_x = x
            known = [v for v in x if v is not None]
            low, high = (min(known), max(known)) if known else (0.0, 1.0)
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
        kind = "classes" if self.classes is not None else "curve" if self.one_input else "observed_predicted"
        return {
            "kind": kind,
            "x": self.points_x,
            "y": self.observed,
            "grid": self.grid,
            "input": self.inputs,
            "classes": self.classes,
        }

    def predictions(self, flat: Mapping[str, float | None]) -> list[float | None] | None:
        """The model's values at the grid (one input), on the plane (classes) or at the sampled rows, for the
        parameters ``flat`` (by flat name, as a streamed row or the end's parameters give them)."""
        several = self.classes is not None and self.model.n_outputs > 1
        if any(flat.get(n) is None for n in self.model.flat_names()) or (self.model.n_outputs != 1 and not several):
            return None
        params = unflatten_params(self.model.specs, flat)  # type: ignore[arg-type]  # no None left: checked above
        try:
            with torch.no_grad():
                out = self.model(params, self.at)
        except Exception:  # a model that cannot take float64 or these rows: no curve, the fit goes on
            return None
        if self.classes is not None:
            out = _class_values(out, self.loss)
        return [finite(v) for v in out.reshape(-1).tolist()]


def _classes(frame, y: str | None) -> list[int] | None:
    """The classes of a target of a few whole numbers (a classifier's data), else None."""
    if y not in frame.columns or frame[y].dtype.kind not in "biuf":
        return None
    values = frame[y].dropna().to_numpy(dtype=np.float64)
    labels = np.unique(values)
    if len(labels) > MAX_CLASSES or not np.all(labels == np.round(labels)):
        return None
    return [int(v) for v in labels]


def _class_values(out: torch.Tensor, loss: str) -> torch.Tensor:
    """What the page paints over the plane: the chance of class 1 (one output: a logit under bce, else the
    output itself, clipped to [0, 1]), or the most likely class (several outputs)."""
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(dim=1).to(torch.float64)
    out = out.reshape(-1)
    return torch.sigmoid(out) if loss == "bce" else out.clamp(0.0, 1.0)


def _padded(values: np.ndarray) -> tuple[float, float]:
    known = values[np.isfinite(values)]
    low, high = (float(known.min()), float(known.max())) if len(known) else (0.0, 1.0)
    pad = 0.08 * (high - low) if high > low else 0.5
    return low - pad, high + pad


def finite(value: float) -> float | None:
    """``value`` as a float, or None for NaN and infinities (JSON has neither)."""
    return float(value) if math.isfinite(value) else None


def _numbers(column) -> list[float | None]:
    values = np.asarray(column, dtype=np.float64) if column.dtype.kind in "biuf" else np.full(len(column), np.nan)
    return [finite(v) for v in values]
