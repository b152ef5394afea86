"""Row weights: ``sigma`` (the targets' standard deviations, as ``curve_fit``'s) or ``weights``, checked at the door.

A fit weights its rows in one of two ways, never both:

- ``sigma``: the standard deviation of each target, as ``scipy.optimize.curve_fit(..., sigma=...)``.
  Each row gets the weight ``1 / sigma²``, so the sum of squares becomes the chi-square
  ``Σ (rᵢ / σᵢ)²``. With ``absolute_sigma=False`` (curve_fit's default) only the ratios of the sigmas
  matter and the covariance is scaled by the reduced chi-square; with ``absolute_sigma=True`` the
  sigmas are taken as they are and it is not.
- ``weights``: ``wᵢ >= 0`` per row, as scikit-learn's ``sample_weight`` (relative: the covariance of a
  least-squares fit is scaled by the weighted residual variance, as statsmodels' WLS; a weight of 0
  leaves a row out).

Every loss is then the weighted mean ``Σ wᵢ ℓᵢ / Σ wᵢ`` over the rows it is evaluated on (all rows, a
chunk's sum divided by the whole set's weight, or one mini-batch): with equal weights it is the
unweighted loss, it does not change when every weight is multiplied by a constant, and it keeps the
units of the loss (for mse: the weighted mean squared residual). The chi-square is recoverable:
``loss * Σ wᵢ`` (``result.data["weights"]["sum"]`` holds ``Σ wᵢ`` of the training rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = [
    "Weighting",
    "check_values",
    "check_training_rows",
    "to_weights",
    "weight_options",
    "weights_column",
    "where_weights",
]

KINDS = ("sigma", "weights")


@dataclass(frozen=True)
class Weighting:
    """How a dataset's rows are weighted.

    Attributes
    ----------
    kind : str
        ``"sigma"`` (weights ``1/sigma²``) or ``"weights"``.
    column : str or None
        The data column they came from; None when they were given as an array (which is not saved
        with a run, so a saved run cannot read them again).
    absolute_sigma : bool
        With ``sigma``: the sigmas are absolute, so the covariance is not scaled by the reduced chi-square.
    """

    kind: str
    column: str | None = None
    absolute_sigma: bool = False

    def describe(self) -> str:
        """``"sigma (column 'err')"``, ``"weights (an array)"``: for reports and messages."""
        where = f"column '{self.column}'" if self.column is not None else "an array"
        absolute = ", absolute" if self.absolute_sigma else ""
        return f"{self.kind} ({where}{absolute})"

    def to_dict(self, total: float | None = None) -> dict:
        """JSON-able, for ``result.data["weights"]``; ``total`` is Σ wᵢ over the training rows."""
        out: dict[str, object] = {
            "kind": self.kind,
            "column": self.column,
            "from": "column" if self.column is not None else "array",
            "absolute_sigma": self.absolute_sigma,
        }
        if total is not None:
            out["sum"] = float(total)
        return out

    @classmethod
    def from_dict(cls, d: dict | None) -> Weighting | None:
        if not d:
            return None
        return cls(d["kind"], d.get("column"), bool(d.get("absolute_sigma", False)))


def weight_options(sigma, weights, absolute_sigma) -> tuple[str, object] | None:
    """``(kind, value)`` of the weighting asked for (None: unweighted), or ConfigError for a contradiction."""
    from gradfit.errors import ConfigError

    if not isinstance(absolute_sigma, bool):
        raise ConfigError(f"The 'absolute_sigma' parameter must be True or False. Got {absolute_sigma!r} instead.")
    if sigma is not None and weights is not None:
        raise ConfigError(
            "Give sigma or weights, not both: weights are 1/sigma², so one determines the other. "
            "Use sigma for the targets' standard deviations (as curve_fit), weights for sample weights."
        )
    if absolute_sigma and sigma is None:
        raise ConfigError(
            "absolute_sigma=True (--absolute-sigma) needs sigma=... (--sigma COLUMN): it says the sigmas "
            "are absolute standard deviations. For weights w that are absolute inverse variances, give "
            "sigma = 1/sqrt(w) instead."
        )
    for kind, value in (("sigma", sigma), ("weights", weights)):
        if value is not None:
            if isinstance(value, (bool, int, float)):
                raise ConfigError(
                    f"The '{kind}' parameter must be a column name or an array with one value per row. "
                    f"Got {value!r} instead."
                )
            return kind, value
    return None


def weights_column(table, asked, absolute_sigma: bool, data) -> tuple[str, Weighting | None, str | None]:
    """``(kind, weighting, column)``: how to check the values, what the Dataset records, and the name of their
    column in ``table`` (a :class:`gradfit.data.columns.Table`).

    ``asked`` is :func:`weight_options`' answer. An array is added to the table as a column of its
    own; a Dataset's own weights are kept when none are asked for.
    """
    if asked is None:
        from gradfit.data.dataset import Dataset  # here: dataset.py imports this module

        own = data.w if isinstance(data, Dataset) else None
        if own is not None:
            name = _unused(table.columns, "weights")
            table.columns[name] = own.detach()
            # The stored weights themselves (even from sigma: no round trip through 1/sqrt), and their record.
            return "weights", data.weighting or Weighting("weights"), name
        return "weights", None, None
    kind, value = asked
    if isinstance(value, (int, np.integer)):
        value = str(value)  # a DataFrame column named by an integer
    if isinstance(value, str):
        return kind, Weighting(kind, value, absolute_sigma), value
    weighting = Weighting(kind, None, absolute_sigma)
    values = _one_per_row(value)
    if values.ndim != 1:
        table.problems.append(
            f"{table.source}: {kind} must be one value per row (a 1-D array). Got shape {tuple(values.shape)} instead."
        )
        return kind, weighting, None
    n = len(next(iter(table.columns.values()))) if table.columns else len(values)
    if len(values) != n:
        table.problems.append(
            f"{table.source}: {kind} has {len(values)} values but the data has {n} rows. Give one "
            f"{kind} value per row, in the data's row order."
        )
        return kind, weighting, None
    name = _unused(table.columns, kind)
    table.columns[name] = values
    return kind, weighting, name


def where_weights(table, name: str, kind: str, weighting: Weighting) -> str:
    """How messages name the weights: ``"data.csv, sigma column 'err'"`` or ``"dict, weights (the array given)"``."""
    if weighting.column is None:
        return f"{table.source}, {kind} (the array given)"
    return f"{table.source}, {kind} column '{name}'"


def _one_per_row(value):
    values = (
        value.detach() if isinstance(value, Tensor) else value if isinstance(value, pd.Series) else np.asarray(value)
    )
    if values.ndim == 2 and values.shape[1] == 1:  # an (n, 1) column
        values = values[:, 0]
    return values


def _unused(cols, stem: str) -> str:
    return next(n for n in (stem, f"{stem}_", *(f"{stem}_{i}" for i in range(len(cols) + 1))) if n not in cols)


def check_values(kind: str, values: Tensor, where: str, at) -> list[str]:
    """The problems of a sigma or weights column (NaN aside: the caller reports missing values).

    ``where`` names the column in messages; ``at(positions)`` says where rows are ("lines 4, 9").
    """
    problems = []
    bad = values <= 0 if kind == "sigma" else values < 0  # NaN compares False: reported elsewhere
    if bool(bad.any()):
        pos = bad.nonzero().flatten()
        more = ", ..." if len(pos) > 5 else ""
        if kind == "sigma":
            problems.append(
                f"{where}: {len(pos)} sigma value(s) <= 0 at {at(pos[:5].tolist())}{more} (the first is "
                f"{float(values[pos[0]]):g}). A standard deviation must be > 0: correct them, or drop those "
                f"rows (to leave a row out of the fit, use weights with a weight of 0 instead)."
            )
        else:
            problems.append(
                f"{where}: {len(pos)} negative weight(s) at {at(pos[:5].tolist())}{more} (the first is "
                f"{float(values[pos[0]]):g}). Weights must be >= 0 (0 leaves a row out)."
            )
    return problems


def to_weights(kind: str, values: Tensor, dtype: torch.dtype, where: str) -> tuple[Tensor | None, list[str]]:
    """The row weights in ``dtype`` (``1/sigma²`` for sigma), or the problems that prevent them."""
    w = 1.0 / values.double() ** 2 if kind == "sigma" else values.double()
    problems = []
    if not bool((w > 0).any()):
        problems.append(f"{where}: every weight is 0, so no row counts. Give at least one row a weight > 0.")
    out = w.to(dtype)
    if not bool(torch.isfinite(out).all()):
        pos = (~torch.isfinite(out)).nonzero().flatten()
        problems.append(
            f"{where}: {len(pos)} sigma value(s) so small that 1/sigma² overflows {dtype} (the first is "
            f"{float(values[pos[0]]):g}). Fit in float64: dtype='float64' (--dtype float64), or give the sigmas in other units."
        )
    return (None if problems else out), problems


def check_training_rows(train) -> None:
    """DataError when no training row has a positive weight (the validation split took them all)."""
    from gradfit.errors import DataError

    if train.w is not None and not bool((train.w > 0).any()):
        raise DataError(
            f"Every training row has weight 0 ({len(train)} rows): the validation split took every row that "
            f"counts. Give more rows a weight > 0, or a smaller val_split (--val-split), or another seed."
        )
