"""Ranges of a streamed file's rows: its blocks, and reading given ranges of it (a split, a shuffled epoch).

A file too large for memory is shuffled and split by **blocks**, runs of whole file rows that can be read
without the rest: a Parquet file's row groups (one larger than ``max_rows`` cut in pieces of at most that many
rows), a CSV file's runs of :data:`BLOCK_ROWS` rows. A validation split holds out whole blocks, and a mini-batch
epoch (:mod:`gradfit.train.stream_batches`) reads them in a shuffled order.

Reading ranges in increasing order is one pass over the file (CSV reads through the rows between, Parquet skips
the row groups outside). In any other order each range is read by itself, which only Parquet can do cheaply: a
CSV file has no index, so a CSV epoch keeps the file's order (see :func:`can_seek`). A piece of a Parquet row
group is read from the group's first row (the rows before it are read and dropped: a cost in time, not memory).

Ranges count the **file's** rows, 0-based, before rows with NaN are dropped (``drop_nan``), so they name the same
rows whatever the data holds; :func:`kept_counts` says how many rows of each range a pass yields.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from gradfit.data.streamed import StreamedRows, _kept
from gradfit.errors import ConfigError

__all__ = ["BLOCK_ROWS", "Range", "can_seek", "file_blocks", "group_of", "kept_counts", "merged", "range_columns"]

#: Rows per block of a CSV file, and at most per block of a Parquet file whose row groups are larger.
BLOCK_ROWS = 1 << 16
#: File rows per batch of the reads below (as a pass's chunks: a batch is held, never the file).
_READ_ROWS = 1 << 16

Range = tuple[int, int]


def can_seek(stream: StreamedRows) -> bool:
    """Whether a range of ``stream``'s file can be read without the rows before it (Parquet; not CSV)."""
    return stream.file.kind == "parquet"


def file_blocks(stream: StreamedRows, max_rows: int = BLOCK_ROWS) -> list[Range]:
    """The file's blocks in file order: its Parquet row groups (cut in pieces of at most ``max_rows``), or runs of
    ``min(BLOCK_ROWS, max_rows)`` rows of a CSV file; of one process's share of the file (``stream.file.span``), the
    blocks within it."""
    max_rows = max(1, int(max_rows))
    n = stream.scan().file_rows
    if not can_seek(stream):
        size = min(BLOCK_ROWS, max_rows)
        blocks = [(a, min(a + size, n)) for a in range(0, n, size)]
    else:
        blocks = []
        at = 0
        for rows in stream.file.group_rows():
            pieces = -(-rows // max_rows) if rows else 0
            for i in range(pieces):  # equal pieces: none much smaller than the others
                blocks.append((at + rows * i // pieces, at + rows * (i + 1) // pieces))
            at += rows
    span = getattr(stream.file, "span", None)
    if span is None:
        return blocks
    return [(max(a, span[0]), min(b, span[1])) for a, b in blocks if max(a, span[0]) < min(b, span[1])]


def merged(ranges: Sequence[Range]) -> list[Range]:
    """``ranges`` sorted, with ranges that touch joined: the fewest ranges of the same rows."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _check(ranges: Sequence[Range]) -> list[Range]:
    checked = []
    for r in ranges:
        a, b = (int(v) for v in r)
        if not 0 <= a <= b:
            raise ConfigError(f"A row range must be (start, stop) with 0 <= start <= stop. Got {tuple(r)!r} instead.")
        checked.append((a, b))
    return checked


def range_columns(stream: StreamedRows, ranges: Sequence[Range]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(index of the range, columns)`` pieces of the used columns of each range of ``ranges``, in the order
    given (rows with NaN dropped when the stream drops them); each range's pieces come together, in file order.

    A CSV file's ranges must be increasing and disjoint: they are one pass over the file. A Parquet file's are
    read in runs of increasing ranges, each one pass, a run ending where the next range goes back or a whole row
    group lies between (so each row group a run needs is read once, and no other).
    """
    ranges = _check(ranges)
    if not ranges:
        return
    for part in _passes(stream, ranges):
        for index, cols in _one_pass(stream, part):
            if stream.drop_nan:
                keep = _kept(cols)
                if keep is not None:
                    cols = {k: v[keep] for k, v in cols.items()}
            yield index, cols


def group_of(stream: StreamedRows, rows: Sequence[int]) -> list[int]:
    """The Parquet row group of each file row of ``rows`` (0 for every row of a CSV file, which has none)."""
    sizes = stream.file.group_rows()
    if not sizes:
        return [0 for _ in rows]
    ends = np.cumsum(sizes)
    return [int(g) for g in np.searchsorted(ends, np.asarray(rows, dtype=np.int64), side="right")]


def _passes(stream: StreamedRows, ranges: list[Range]) -> list[list[tuple[int, Range]]]:
    """``ranges`` (with their indices) cut into the runs that are each read in one pass (see :func:`range_columns`)."""
    if not can_seek(stream):
        if any(ranges[i][1] > ranges[i + 1][0] for i in range(len(ranges) - 1)):
            raise ConfigError(
                f"{stream.source}: a CSV file is read in its own order; give its row ranges in that order."
            )
        return [list(enumerate(ranges))]
    firsts = group_of(stream, [a for a, _ in ranges])
    lasts = group_of(stream, [max(a, b - 1) for a, b in ranges])
    passes: list[list[tuple[int, Range]]] = []
    for i, r in enumerate(ranges):
        goes_on = i > 0 and ranges[i - 1][1] <= r[0] and firsts[i] <= lasts[i - 1] + 1
        if goes_on:
            passes[-1].append((i, r))
        else:
            passes.append([(i, r)])
    return passes


def _one_pass(stream: StreamedRows, part: list[tuple[int, Range]]) -> Iterator[tuple[int, dict]]:
    """The pieces of increasing ranges ``part`` (``(index, range)``), read in one pass from the first to the last."""
    span = (part[0][1][0], part[-1][1][1])
    j = 0
    for at, cols in stream.file.batches(stream.used, _READ_ROWS, span):
        n = len(next(iter(cols.values())))
        while j < len(part):
            index, (a, b) = part[j]
            lo, hi = max(a - at, 0), min(b - at, n)
            if lo >= n:
                break  # the next range starts in a later batch
            if hi > lo:
                yield index, {k: v[lo:hi] for k, v in cols.items()}
            if b - at > n:
                break  # the range goes on in the next batch
            j += 1


def kept_counts(stream: StreamedRows, ranges: Sequence[Range]) -> list[int]:
    """The rows each range yields: its length (within the file), less its rows with NaN when the stream drops them
    (then one pass over the ranges, remembered on the stream)."""
    ranges = _check(ranges)
    # The file rows read: all of them, or one process's share (``span``, whose rows the scan counted).
    first, end = getattr(stream.file, "span", None) or (0, stream.scan().file_rows)
    if not stream.drop_nan or stream.scan().dropped == 0:
        return [max(0, min(b, end) - max(a, first)) for a, b in ranges]
    cache = stream.kept_cache
    key = tuple(ranges)
    if key not in cache:
        order = sorted(range(len(ranges)), key=lambda i: ranges[i])
        counts = [0] * len(ranges)
        for index, cols in range_columns(stream, [ranges[i] for i in order]):
            counts[order[index]] += len(next(iter(cols.values())))
        cache[key] = counts
    return list(cache[key])
