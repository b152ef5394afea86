"""A table of rows streamed from disk: a :class:`gradfit.rowpass.RowSource` that reads a file batch by batch.

A fit on more rows than memory holds needs every sum over rows without the rows in memory. This
source reads a Parquet or CSV file (:mod:`gradfit.data.file_batches`: only the used columns, one
batch at a time) and yields ``(x, y, w)`` chunks of exactly ``chunk_size`` rows, the last one
shorter, like :class:`gradfit.rowpass.MemoryRows` over the same rows: the float64 sums of a pass
over it equal the in-memory pass bit for bit. Nothing proportional to the file is kept; a
float64 column without nulls reaches torch without a copy (a chunk of one input column is a view
of pyarrow's buffer, to be read, never written).

The checks the in-memory reader makes (:func:`gradfit.data.convert.as_dataset`) are made here in
two steps: :meth:`StreamedRows.open` checks what the file's head and schema tell (the file, its
columns, their types); :meth:`StreamedRows.scan` reads the file once for the rest (NaN, inf, text
in a CSV number column, sigma and weights) and its column statistics and sample. Both raise the
same kind of :class:`~gradfit.errors.DataError`, naming lines of a CSV file and rows of a Parquet
file as the in-memory reader does.

Row ranges (``rows=(start, stop)`` of :meth:`StreamedRows.chunks`) count the **file's** rows,
0-based, before any row is dropped for NaN: a process shard or a validation split by row ranges
then names the same rows whatever the data holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gradfit.data.convert import _check_dtype, column_not_found, input_names
from gradfit.data.file_batches import FileBatches, as_tensor, open_batches
from gradfit.data.stream_scan import Scan, scan_file
from gradfit.errors import ConfigError, DataError
from gradfit.rowpass import Chunk, chunk_rows

__all__ = ["Scan", "StreamedRows"]


@dataclass
class StreamedRows:
    """Rows of a Parquet or CSV file on disk, read batch by batch, only the used columns.

    Make one with :meth:`open`. ``chunks()`` (the :class:`~gradfit.rowpass.RowSource` protocol)
    reads the file again on every call; ``len()`` and :meth:`scan` read it once and remember.
    """

    file: FileBatches
    x_names: tuple[str, ...]
    y_name: str | None
    source: str
    dtype: torch.dtype
    sigma: str | None = None
    weights: str | None = None
    drop_nan: bool = False
    chunk_size: int | None = None
    sample_rows: int = 10_000
    _scan: Scan | None = field(default=None, repr=False)
    #: Rows kept in given row ranges (gradfit.data.row_ranges.kept_counts), counted once per set of ranges.
    kept_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        path,
        x: list[str] | str | None,
        y: str | None,
        *,
        sigma: str | None = None,
        weights: str | None = None,
        dtype=torch.float32,
        drop_nan: bool = False,
        chunk_size: int | None = None,
    ) -> StreamedRows:
        """The file at ``path``, its columns checked: ``x`` None takes every column but ``y``, ``sigma`` and
        ``weights``. Raises DataError naming every missing column (with a near name) or non-numeric one."""
        dtype = _check_dtype(dtype)
        if sigma is not None and weights is not None:
            raise ConfigError("Give sigma or weights, not both: weights are 1/sigma², so one determines the other.")
        file = open_batches(path)
        src = str(path)  # as as_dataset names a file it reads
        x_names, problems = _select(file.names, x, y, sigma, weights, src)
        used = list(dict.fromkeys(x_names + [n for n in (y, sigma, weights) if n is not None]))
        problems += file.not_numbers([n for n in used if n in file.names])
        if problems:
            head = f"Cannot use the data from {src}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"
            raise DataError("\n".join([head] + [f"  - {p}" for p in problems]))
        return cls(file, tuple(x_names), y, str(path), dtype, sigma, weights, drop_nan, chunk_size)

    @property
    def used(self) -> list[str]:
        """The columns read: inputs, target, then sigma or weights."""
        extra = [n for n in (self.y_name, self.sigma or self.weights) if n is not None]
        return list(dict.fromkeys(list(self.x_names) + extra))

    def scan(self, sample_rows: int | None = None) -> Scan:
        """One pass over the file (cached): rows, checks, column statistics and a sample (see :class:`Scan`)."""
        if self._scan is None:
            self._scan = scan_file(self, self.sample_rows if sample_rows is None else sample_rows)
        return self._scan

    def __len__(self) -> int:
        return self.scan().n_rows

    def columns(self, batch_rows: int, rows: tuple[int, int] | None = None) -> Iterator[tuple[int, dict]]:
        """The file's batches of the used columns (float64 arrays), rows with NaN dropped when ``drop_nan``:
        ``(file position of the batch's first row, columns)``; with NaN dropped, the positions of the kept rows
        are not contiguous (the scan names them by its own means)."""
        for at, cols in self.file.batches(self.used, batch_rows, rows):
            if self.drop_nan:
                keep = _kept(cols)
                if keep is not None:
                    cols = {k: v[keep] for k, v in cols.items()}
            yield at, cols

    def chunks(
        self,
        chunk_size: int | None = None,
        dtype: torch.dtype | None = None,
        rows: tuple[int, int] | None = None,
        ranges: Sequence[tuple[int, int]] | None = None,
    ) -> Iterator[Chunk]:
        """``(x, y, w)`` chunks of exactly ``chunk_size`` rows (default: the source's, else
        :data:`gradfit.rowpass.CHUNK_ROWS`) but the last; ``x`` is (n, k), ``y`` and ``w`` (n,) or None, all in
        ``dtype`` (default: the source's); ``w`` is ``1/sigma²`` or the weights as the in-memory reader makes
        them. ``rows=(start, stop)`` restricts the pass to the file rows ``start <= i < stop``; ``ranges``, to
        several such ranges, increasing and disjoint (:func:`gradfit.data.row_ranges.range_columns`)."""
        from gradfit.data.row_ranges import range_columns

        size = chunk_rows(chunk_size if chunk_size is not None else self.chunk_size)
        dtype = self.dtype if dtype is None else _check_dtype(dtype)
        if rows is not None:
            start, stop = (int(r) for r in rows)
            if not 0 <= start <= stop:
                raise ConfigError(f"A row range must be (start, stop) with 0 <= start <= stop. Got {rows!r} instead.")
            rows = (start, stop)
        pieces = self.columns(size, rows) if ranges is None else range_columns(self, ranges)
        pending: list[dict] = []
        have = 0
        for _, cols in pieces:
            n = len(next(iter(cols.values())))
            at = 0
            while at < n:
                take = min(size - have, n - at)
                pending.append({k: v[at : at + take] for k, v in cols.items()})
                have, at = have + take, at + take
                if have == size:
                    yield self.chunk_of(_join(pending), dtype)
                    pending, have = [], 0
        if have:
            yield self.chunk_of(_join(pending), dtype)

    def chunk_of(self, cols: dict[str, np.ndarray], dtype: torch.dtype) -> Chunk:
        """The ``(x, y, w)`` chunk of rows given as float64 columns (as :meth:`columns` yields them)."""
        first = as_tensor(cols[self.x_names[0]])
        if len(self.x_names) == 1:
            x = first[:, None].to(dtype)
        else:
            x = torch.empty((first.shape[0], len(self.x_names)), dtype=dtype)
            for j, name in enumerate(self.x_names):
                x[:, j] = as_tensor(cols[name])
        y = None if self.y_name is None else as_tensor(cols[self.y_name]).to(dtype)
        return x, y, self._weights(cols, dtype)

    def _weights(self, cols: dict[str, np.ndarray], dtype: torch.dtype) -> torch.Tensor | None:
        """The row weights as :func:`gradfit.data.weights.to_weights` makes them from a column of ``dtype``."""
        name = self.sigma or self.weights
        if name is None:
            return None
        values = as_tensor(cols[name]).to(dtype)
        w = 1.0 / values.double() ** 2 if self.sigma is not None else values.double()
        return w.to(dtype)


def _select(names, x, y, sigma, weights, src) -> tuple[list[str], list[str]]:
    """The input columns and the problems of the columns asked for (as :func:`gradfit.data.convert._select`)."""
    problems = [
        column_not_found(name, role, names, src)
        for name, role in ((y, "target (y)"), (sigma, "sigma"), (weights, "weights"))
        if name is not None and name not in names
    ]
    if x is not None:
        return input_names(x, names, y, src, problems), problems
    others = {n for n in (y, sigma, weights) if n is not None}
    x_names = [n for n in names if n not in others]
    if not x_names and not problems:
        problems.append(f"{src}: no input (x) columns are left. Name at least one with x=.")
    return x_names, problems


def _kept(cols: dict[str, np.ndarray]) -> np.ndarray | None:
    """The mask of rows without NaN in any column, or None when every row is kept."""
    nan = None
    for v in cols.values():
        if not np.isfinite(v.sum()):  # a finite sum proves no NaN: one read, no mask
            m = np.isnan(v)
            nan = m if nan is None else nan | m
    return None if nan is None or not nan.any() else ~nan


def _join(pieces: list[dict]) -> dict[str, np.ndarray]:
    if len(pieces) == 1:
        return pieces[0]
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
