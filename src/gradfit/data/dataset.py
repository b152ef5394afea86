"""Dataset: the checked, named float tensors every fit starts from."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from gradfit.data.weights import Weighting


@dataclass(frozen=True)
class Dataset:
    """Inputs and targets, checked once at the door.

    Attributes
    ----------
    x : Tensor
        ``(n, k)`` inputs, columns named by ``x_names``.
    y : Tensor or None
        ``(n,)`` targets (class labels are stored as whole numbers in a float tensor).
    x_names : tuple of str
    y_name : str or None
    source : str
        Where the data came from, for messages (``"data.csv"``, ``"DataFrame"``).
    w : Tensor or None
        ``(n,)`` row weights >= 0 (``1/sigma²`` for sigma), or None for an unweighted fit; they follow
        the rows through :meth:`rows`, :meth:`split` and :meth:`to` (see :mod:`gradfit.data.weights`).
    weighting : Weighting or None
        Where the weights came from (sigma or weights, column or array, absolute_sigma).
    """

    x: Tensor
    y: Tensor | None
    x_names: tuple[str, ...]
    y_name: str | None = None
    source: str = "data"
    w: Tensor | None = None
    weighting: Weighting | None = None

    def __post_init__(self):
        if self.x.ndim != 2 or self.x.shape[1] != len(self.x_names):
            raise ValueError(f"x has shape {tuple(self.x.shape)} but {len(self.x_names)} column names")
        if self.y is not None and (self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]):
            raise ValueError(f"y has shape {tuple(self.y.shape)}, expected ({self.x.shape[0]},)")
        if self.w is not None and (self.w.ndim != 1 or self.w.shape[0] != self.x.shape[0]):
            raise ValueError(f"w has shape {tuple(self.w.shape)}, expected ({self.x.shape[0]},)")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> Dataset:
        y = None if self.y is None else self.y.to(device=device, dtype=dtype)
        w = None if self.w is None else self.w.to(device=device, dtype=dtype)
        return replace(self, x=self.x.to(device=device, dtype=dtype), y=y, w=w)

    def columns(self, names) -> Dataset:
        """The same rows with only the named input columns, in that order."""
        idx = [self.x_names.index(n) for n in names]
        if idx == list(range(self.x.shape[1])):  # every column, in order: these rows as they are, no copy of them
            return replace(self, x_names=tuple(names))
        return replace(self, x=self.x[:, idx], x_names=tuple(names))

    def rows(self, index: Tensor) -> Dataset:
        y = None if self.y is None else self.y[index]
        w = None if self.w is None else self.w[index]
        return replace(self, x=self.x[index], y=y, w=w)

    def split(self, fraction: float, generator: torch.Generator) -> tuple[Dataset, Dataset]:
        """A random (train, validation) split; ``fraction`` of the rows go to validation."""
        n = len(self)
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            from gradfit.errors import DataError

            most = (n - 0.5) / n if n > 1 else 0.0  # val_split below this keeps a row to fit on (n_val rounds to n - 1)
            fix = f"a val_split below {most:.3g} (--val-split)" if most > 0 else "no val_split"
            raise DataError(
                f"val_split={fraction:g} of the {n:,} row{'s' if n != 1 else ''} of {self.source} sends "
                f"{n_val:,} to validation and leaves no row to fit on (rows dropped for missing values "
                f"are not counted). Give {fix}, or more rows."
            )
        perm = torch.randperm(n, generator=generator)
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        return self.rows(train_idx.to(self.x.device)), self.rows(val_idx.to(self.x.device))
