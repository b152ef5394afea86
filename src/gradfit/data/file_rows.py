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
from gradfit.data.row_ranges import (
    BLOCK_ROWS,
    Range,
    can_seek,
    file_blocks,
    group_of,
    kept_counts,
    merged,
    range_columns,
)
from gradfit.data.streamed import StreamedRows
from gradfit.data.weights import Weighting
from gradfit.errors import DataError
from gradfit.rowpass import Chunk, chunk_rows, evenly_spaced, reduce, rows_of

__all__ = ["FileRows", "file_columns", "loaded_bytes", "open_file_rows", "split_blocks"]

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
    scan: bool = True,
) -> FileRows:
    """The rows of the Parquet or CSV file at ``path`` (columns checked now, values in one pass unless not ``scan``:
    see :meth:`StreamedRows.scan`), ``x`` None taking every column but ``y``, ``sigma`` and ``weights``."""
    stream = StreamedRows.open(
        path, None if x is None else list(x), y, sigma=sigma, weights=weights, dtype=dtype, drop_nan=drop_nan
    )
    if scan:
        stream.scan()  # every check of the values, before the fit starts
    kind, column = ("sigma", sigma) if sigma is not None else ("weights", weights)
    weighting = Weighting(kind, column, absolute_sigma and sigma is not None) if column is not None else None
    return FileRows(stream, dtype, stream.x_names, weighting)


class FileRows:
    """The rows of ``stream`` in ``dtype``, inputs ``x_names`` (a subset of the stream's, in any order)."""

    device = torch.device("cpu")

    def __init__(
        self,
        stream: StreamedRows,
        dtype: torch.dtype,
        x_names: Sequence[str],
        weighting: Weighting | None = None,
        ranges: Sequence[Range] | None = None,
    ):
        self.stream, self.dtype, self.weighting = stream, dtype, weighting
        self.x_names = tuple(x_names)
        self.y_name, self.source = stream.y_name, stream.source
        # The file rows these rows are (increasing, disjoint ranges): all of them when None; a split's part else.
        self.ranges: tuple[Range, ...] | None = None if ranges is None else tuple(merged(ranges))
        every = list(stream.x_names)
        self._index = None if self.x_names == stream.x_names else [every.index(n) for n in self.x_names]
        self._samples: dict[int, Dataset] = {}
        self._weight_sum: float | None = None

    @property
    def note(self) -> str | None:
        """What the scan dropped (``"dropped 3 rows with missing values (lines 4, 9, 12)"``), or None."""
        return self.stream.scan().note

    def __len__(self) -> int:
        if self.ranges is None:
            return len(self.stream)
        return sum(kept_counts(self.stream, self.ranges))

    def chunks(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> Iterator[Chunk]:
        for x, y, w in self.stream.chunks(chunk_rows(chunk_size), dtype or self.dtype, ranges=self.ranges):
            yield (x if self._index is None else x[:, self._index]), y, w

    def weight_total(self) -> float | None:
        if self.ranges is None or self.weighting is None:
            return self.stream.scan().weight_sum
        if self._weight_sum is None:
            self._weight_sum = float(reduce(lambda _x, _y, w: w.sum(dtype=torch.float64), rows_of(self)) or 0.0)
        return self._weight_sum

    def columns(self, names: Sequence[str]) -> FileRows:
        return FileRows(self.stream, self.dtype, names, self.weighting, self.ranges)

    def with_dtype(self, dtype: torch.dtype) -> FileRows:
        return FileRows(self.stream, dtype, self.x_names, self.weighting, self.ranges)

    def rows_in(self, ranges: Sequence[Range]) -> FileRows:
        """These rows within the file rows ``ranges`` only (a split's part)."""
        return FileRows(self.stream, self.dtype, self.x_names, self.weighting, self._within(ranges))

    @property
    def seekable(self) -> bool:
        """Whether a block can be read without the rows before it (Parquet), so blocks can come in any order."""
        return can_seek(self.stream)

    def blocks(self, max_rows: int = BLOCK_ROWS) -> list[Range]:
        """These rows' file blocks (:func:`gradfit.data.row_ranges.file_blocks`), in file order: whole row groups
        of a Parquet file (cut in pieces of at most ``max_rows``), runs of rows of a CSV file."""
        return self._within(file_blocks(self.stream, max_rows))

    def block_groups(self, blocks: Sequence[Range]) -> list[int]:
        """The Parquet row group each of ``blocks`` lies in (pieces of one row group share it; 0 for CSV)."""
        return group_of(self.stream, [a for a, _ in blocks])

    def block_counts(self, blocks: Sequence[Range]) -> list[int]:
        """The rows each of ``blocks`` holds (less its rows with NaN, when they are dropped)."""
        return kept_counts(self.stream, blocks)

    def read_blocks(self, blocks: Sequence[Range], dtype: torch.dtype | None = None) -> Iterator[Chunk]:
        """One ``(x, y, w)`` chunk per block of ``blocks``, in the order given (a CSV file's in file order). Each
        batch read is copied into its block's tensors at once, so a block is held once, not as pieces and their
        join."""
        dtype = dtype or self.dtype
        pieces = range_columns(self.stream, blocks)
        piece = next(pieces, None)
        for index, (a, b) in enumerate(blocks):
            x = torch.empty((b - a, len(self.x_names)), dtype=dtype)
            y = None if self.y_name is None else torch.empty(b - a, dtype=dtype)
            w = None if self.weighting is None else torch.empty(b - a, dtype=dtype)
            at = 0
            while piece is not None and piece[0] == index:  # an empty block (every row dropped) has no pieces
                xc, yc, wc = self.stream.chunk_of(piece[1], dtype)
                m = len(xc)
                x[at : at + m] = xc if self._index is None else xc[:, self._index]
                for whole, part in ((y, yc), (w, wc)):
                    if whole is not None and part is not None:
                        whole[at : at + m] = part
                at += m
                piece = next(pieces, None)
            yield x[:at], None if y is None else y[:at], None if w is None else w[:at]

    def split(self, fraction: float, generator: torch.Generator) -> tuple[FileRows, FileRows]:
        """A (train, validation) split by whole blocks of file rows (:func:`split_blocks`), drawn from
        ``generator``, as :meth:`gradfit.data.dataset.Dataset.split` draws its rows."""
        train, val = split_blocks(self, fraction, generator)
        return self.rows_in(train), self.rows_in(val)

    def _within(self, ranges: Sequence[Range]) -> list[Range]:
        """The parts of ``ranges`` (in their order) that are among these rows."""
        if self.ranges is None:
            return [(int(a), int(b)) for a, b in ranges]
        out = []
        for a, b in ranges:
            out += [(max(a, c), min(b, d)) for c, d in self.ranges if max(a, c) < min(b, d)]
        return out

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


#: Blocks a validation split draws from at least (when the file has that many rows): its fraction is then close.
SPLIT_BLOCKS = 32


def split_blocks(rows: FileRows, fraction: float, generator: torch.Generator) -> tuple[list[Range], list[Range]]:
    """The (train, validation) file-row ranges of a split of ``rows`` by whole blocks: the blocks (at most
    ``len / SPLIT_BLOCKS`` rows each, so even a file of one row group gives many) in an order drawn from
    ``generator``, the first ones to validation until they hold about ``fraction`` of the rows (at least one
    block, never all). Blocks, not single rows: each part is then a few ranges of the file, read in one pass."""
    n = len(rows)
    blocks = rows.blocks(min(BLOCK_ROWS, max(1, n // SPLIT_BLOCKS)))
    counts = rows.block_counts(blocks)
    target = max(1, int(round(n * fraction)))
    order = torch.randperm(len(blocks), generator=generator).tolist()
    held, val = 0, list[int]()
    for i in order:
        if held >= target or len(val) == len(blocks) - 1 or (held and held + counts[i] - target > target - held):
            break  # enough, or this block would take the share further from the fraction than it is
        val.append(i)
        held += counts[i]
    if held == 0 or held >= n:
        raise DataError(
            f"val_split={fraction:g} of the {n:,} rows of {rows.source}, held out by blocks of file rows, leaves "
            f"{'no row to fit on' if held else 'no row to validate on'}. Give a smaller val_split, or more rows."
        )
    chosen = set(val)
    return [b for i, b in enumerate(blocks) if i not in chosen], [blocks[i] for i in sorted(val)]
