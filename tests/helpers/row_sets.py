"""A Dataset's rows as a :class:`gradfit.rowpass.RowSet`: chunks only, as a file read batch by batch gives them.

A fit given one must take every sum over rows through the row pass, never through ``x`` or ``y`` (it has neither),
and so must give what the same fit on the Dataset gives.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from gradfit.data.dataset import Dataset
from gradfit.rowpass import MemoryRows, evenly_spaced


class HiddenRows:
    """The rows of ``dataset`` behind the row-set interface; ``passes`` counts the passes over them."""

    def __init__(self, dataset: Dataset, dtype: torch.dtype | None = None):
        self._data = dataset if dtype is None else dataset.to(dtype=dtype)
        self.x_names, self.y_name, self.source = dataset.x_names, dataset.y_name, dataset.source
        self.weighting = dataset.weighting
        self.dtype = self._data.dtype
        self.device = self._data.x.device
        self.passes = 0

    def __len__(self) -> int:
        return len(self._data)

    def chunks(self, chunk_size=None, dtype=None):
        self.passes += 1
        d = self._data
        return MemoryRows(d.x, d.y, d.w, chunk_size, dtype=dtype).chunks()

    def weight_total(self) -> float | None:
        return None if self._data.w is None else float(self._data.w.double().sum())

    def columns(self, names) -> HiddenRows:
        return HiddenRows(self._data.columns(names))

    def with_dtype(self, dtype: torch.dtype) -> HiddenRows:
        return HiddenRows(self._data, dtype)

    def take(self, positions: torch.Tensor) -> Dataset:
        return self._data.rows(positions)

    def sample(self, rows: int = 10_000) -> Dataset:
        d = self._data
        return replace(d.rows(evenly_spaced(len(d), rows)), source=f"{d.source} (a sample)")
