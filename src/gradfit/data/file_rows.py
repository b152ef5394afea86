"""A file's rows as a fit's row set: what ``gradfit.fit(..., stream=True)`` descends on.

:class:`gradfit.data.streamed.StreamedRows` reads a file batch by batch and checks it; :class:`FileRows` is the
fit's view of it (a :class:`gradfit.rowpass.RowSet`): the dtype the fit runs in, the input columns the model uses,
the total weight, and evenly spaced rows in memory for the guesses and probes that read a few rows. Nothing
proportional to the file is held: every pass reads it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from gradfit.data.dataset import Dataset
from gradfit.data.file_batches import open_batches
from gradfit.data.streamed import StreamedRows
from gradfit.data.weights import Weighting
from gradfit.errors import DataError
from gradfit.rowpass import Chunk, chunk_rows, evenly_spaced

__all__ = ["FileRows", "file_columns", "loaded_bytes", "open_file_rows"]

#: Bytes per value of a file read whole: pandas's float64 table, then the fit's tensors (float64 at most).
_BYTES_PER_VALUE = 16

#: Rows per chunk of the pass that picks a sample.
_SAMPLE_CHUNK = 1 << 16


def file_columns(path) -> list[str]:
    """The names of the columns of the Parquet or CSV file at ``path`` (its schema or header: no rows read)."""
    return list(open_batches(path).names)


def loaded_bytes(path) -> float | None:
    """About the memory that reading the whole file at ``path`` takes (every column as float64, then the fit's
    copy of them), from its footer or its size; None when it is not a file that can be streamed."""
    try:
        file = open_batches(path)
    except (DataError, OSError):
        return None
    return float(file.rows_estimate() * len(file.names) * _BYTES_PER_VALUE)


def open_file_rows(
    path,
    x: Sequence[str] | None,
    y: str | None,
    *,
    sigma: str | None = None,
    weights: str | None = None,
    absolute_sigma: bool = False,
    dtype: torch.dtype = torch.float32,
    drop_nan: bool = False,
) -> FileRows:
    """The rows of the Parquet or CSV file at ``path`` (columns checked now, values in one pass:
    see :meth:`StreamedRows.scan`), ``x`` None taking every column but ``y``, ``sigma`` and ``weights``."""
    stream = StreamedRows.open(
        path, None if x is None else list(x), y, sigma=sigma, weights=weights, dtype=dtype, drop_nan=drop_nan
    )
    stream.scan()  # every check of the values, before the fit starts
    kind, column = ("sigma", sigma) if sigma is not None else ("weights", weights)
    weighting = Weighting(kind, column, absolute_sigma and sigma is not None) if column is not None else None
    return FileRows(stream, dtype, stream.x_names, weighting)


class FileRows:
    """The rows of ``stream`` in ``dtype``, inputs ``x_names`` (a subset of the stream's, in any order)."""

    device = torch.device("cpu")

    def __init__(
        self, stream: StreamedRows, dtype: torch.dtype, x_names: Sequence[str], weighting: Weighting | None = None
    ):
        self.stream, self.dtype, self.weighting = stream, dtype, weighting
        self.x_names = tuple(x_names)
        self.y_name, self.source = stream.y_name, stream.source
        every = list(stream.x_names)
        self._index = None if self.x_names == stream.x_names else [every.index(n) for n in self.x_names]
        self._samples: dict[int, Dataset] = {}

    @property
    def note(self) -> str | None:
        """What the scan dropped (``"dropped 3 rows with missing values (lines 4, 9, 12)"``), or None."""
        return self.stream.scan().note

    def __len__(self) -> int:
        return len(self.stream)

    def chunks(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> Iterator[Chunk]:
        for x, y, w in self.stream.chunks(chunk_rows(chunk_size), dtype or self.dtype):
            yield (x if self._index is None else x[:, self._index]), y, w

    def weight_total(self) -> float | None:
        return self.stream.scan().weight_sum

    def columns(self, names: Sequence[str]) -> FileRows:
        return FileRows(self.stream, self.dtype, names, self.weighting)

    def with_dtype(self, dtype: torch.dtype) -> FileRows:
        return FileRows(self.stream, dtype, self.x_names, self.weighting)

    def sample(self, rows: int) -> Dataset:
        """At most ``rows`` evenly spaced rows (:func:`gradfit.rowpass.evenly_spaced`) in memory: one pass."""
        if rows not in self._samples:
            self._samples[rows] = self.take(evenly_spaced(len(self), rows))
        return self._samples[rows]

    def take(self, positions: torch.Tensor) -> Dataset:
        """The rows at ``positions`` (sorted, within ``len(self)``) in memory: one pass."""
        parts: list[Chunk] = []
        start = 0
        for x, y, w in self.chunks(_SAMPLE_CHUNK):
            stop = start + len(x)
            lo, hi = (int(torch.searchsorted(positions, v)) for v in (start, stop))
            if hi > lo:
                at = positions[lo:hi] - start
                parts.append((x[at], None if y is None else y[at], None if w is None else w[at]))  # copies
            start = stop
        x = torch.cat([p[0] for p in parts])
        y = None if self.y_name is None else torch.cat([p[1] for p in parts if p[1] is not None])
        w = None if self.weighting is None else torch.cat([p[2] for p in parts if p[2] is not None])
        source = f"{self.source} ({len(x):,} evenly spaced rows of {len(self):,})"
        return Dataset(x, y, self.x_names, self.y_name, source, w, self.weighting)
