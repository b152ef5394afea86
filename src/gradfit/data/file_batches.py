"""A CSV or Parquet file read batch by batch through pyarrow: only the columns asked for, each as float64.

A streamed fit (:mod:`gradfit.data.streamed`) reads a file that need not fit in memory, once per pass,
so this module never holds more than one batch of it. Parquet is opened with ``pre_buffer=False``
and a read buffer (:data:`PARQUET_BUFFER`): with pyarrow's default (``pre_buffer=True``) a 10^8-row
file was measured held whole in memory while its batches were read. CSV goes through pyarrow's
streaming reader with every used column typed float64, so a stray word fails the read; the failure
is turned into the in-memory reader's message, naming the column and the line (found by reading
that column again as text, only then).

Every failure is a :class:`~gradfit.errors.DataError`; no pyarrow exception reaches the caller.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from gradfit.data.csv_reader import check_duplicates
from gradfit.data.data_file import check_data_file
from gradfit.data.dialect import detect_dialect, split_line
from gradfit.data.io import _COMPRESSION_SUFFIXES, _CSV_SUFFIXES, _PARQUET_SUFFIXES, parquet_error
from gradfit.data.lines import LineNumbers, row_numbers
from gradfit.data.read_options import WHITESPACE
from gradfit.errors import DataError

__all__ = ["FileBatches", "as_tensor", "open_batches"]

_HEAD_BYTES = 64 * 1024
#: Bytes pyarrow reads at a time from a Parquet column chunk. With the default (0) it reads a row group's whole
#: column chunk at once: measured on 10^7 rows (x, y float64, row groups of 10^6 rows), the peak resident memory
#: of a pass grew 69 MB beyond pyarrow's own first-use cost, against 38 MB with 1 MiB buffers (187 MB with
#: pre_buffer=True, which holds the file).
PARQUET_BUFFER = 1 << 20
#: Bytes of CSV text per batch. pyarrow's streaming CSV reader parses ahead of its reader (about 37 blocks were
#: measured allocated at once), so the block is small: on 10^7 rows, pyarrow's pool peaked at 39 MB with 1 MiB
#: blocks, 93 MB with 2.5 MiB and the whole 387 MB file with 16 MiB, for the same speed.
CSV_BLOCK = 1 << 20
_COLUMN = re.compile(r"In CSV column #(\d+): CSV conversion error to \w+: invalid value '(.*)'", re.DOTALL)


class FileBatches:
    """One CSV or Parquet file: its column names, how its rows are numbered, and its batches."""

    def __init__(self, path: Path, kind: str, names: list[str], first_row, reader):
        self.path, self.kind, self.names = path, kind, names
        self.row_label = "line" if kind == "csv" else "row"
        self.first_row = first_row  # LineNumbers for CSV (lines as the in-memory reader counts them), 0 for Parquet
        self._reader = reader  # pq.ParquetFile, or the CSV's (separator, decimal mark)
        # The file rows [start, stop) this process reads of a file shared by processes (None: all of them).
        self.span: tuple[int, int] | None = None

    def where(self, positions) -> str:
        """``"line 5"`` or ``"rows 3, 4"``: file row positions as the in-memory reader names them."""
        nums = [str(n) for n in row_numbers(self.first_row, positions)]
        return f"{self.row_label}{'s' if len(nums) > 1 else ''} {', '.join(nums)}"

    def rows_estimate(self) -> int:
        """The file's rows: a Parquet file's from its footer; a CSV file's from its size and its first lines."""
        if self.kind == "parquet":
            return int(self._reader.metadata.num_rows)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        lines = max(1, head.count(b"\n"))
        return max(0, round(size / (len(head) / lines)) - 1)  # less the header

    def group_rows(self) -> list[int]:
        """The rows of each Parquet row group, in file order ([] for CSV, which has none)."""
        if self.kind != "parquet":
            return []
        md = self._reader.metadata
        return [int(md.row_group(i).num_rows) for i in range(md.num_row_groups)]

    def not_numbers(self, columns: list[str]) -> list[str]:
        """The problems of the Parquet columns among ``columns`` that do not hold numbers (CSV: found when read)."""
        if self.kind != "parquet":
            return []
        import pyarrow as pa

        schema = self._reader.schema_arrow
        problems = []
        for name in columns:
            t = schema.field(name).type
            numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
            if not any(is_kind(t) for is_kind in numeric):
                problems.append(
                    f"{self.path}, column '{name}': holds {t}, not numbers. Leave it out of the columns used, "
                    f"or store it as numbers."
                )
        return problems

    def batches(
        self, columns: list[str], batch_rows: int, rows: tuple[int, int] | None = None
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(position of the batch's first row in the file, {column: float64 array})`` for each batch, in file
        order; missing values are NaN. ``rows=(start, stop)`` keeps the file rows ``start <= i < stop`` only
        (Parquet skips the row groups outside; CSV reads through them)."""
        start, stop = rows if rows is not None else (0, None)
        if self.span is not None:  # this process's share of the file: nothing outside it
            start, stop = max(start, self.span[0]), self.span[1] if stop is None else min(stop, self.span[1])
        source = self._parquet(columns, batch_rows, start, stop) if self.kind == "parquet" else self._csv(columns)
        for at, n, cols in source:
            lo, hi = max(start - at, 0), n if stop is None else min(stop - at, n)
            if hi > lo:
                yield at + lo, {k: v[lo:hi] for k, v in cols.items()}
            if stop is not None and at + n >= stop:
                return

    def _parquet(self, columns, batch_rows, start, stop):
        import pyarrow as pa

        md = self._reader.metadata
        offsets = np.concatenate([[0], np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)])])
        stop = int(offsets[-1]) if stop is None else stop
        groups = [i for i in range(md.num_row_groups) if offsets[i] < stop and offsets[i + 1] > start]
        if not groups:
            return
        at = int(offsets[groups[0]])
        try:
            for batch in self._reader.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns):
                yield at, batch.num_rows, {name: _floats(batch.column(name)) for name in columns}
                at += batch.num_rows
        except (pa.ArrowException, OSError, ValueError) as err:
            raise parquet_error(self.path, err) from None

    def _csv(self, columns):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        sep, decimal = self._reader
        convert = pcsv.ConvertOptions(
            include_columns=columns, column_types={c: pa.float64() for c in columns}, decimal_point=decimal
        )
        at = 0
        try:
            reader = pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK),
                parse_options=pcsv.ParseOptions(delimiter=sep),
                convert_options=convert,
            )
            for batch in reader:
                yield at, batch.num_rows, {name: _floats(batch.column(name)) for name in columns}
                at += batch.num_rows
        except pa.ArrowInvalid as err:
            raise self._csv_error(err, sep, decimal) from None
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"Cannot read {str(self.path)!r}: {str(err).strip() or type(err).__name__}.") from None

    def _csv_error(self, err, sep: str, decimal: str) -> DataError:
        text = str(err).strip()
        m = _COLUMN.search(text)
        if m and int(m.group(1)) < len(self.names):
            name = self.names[int(m.group(1))]
            pos = _first_text(self.path, name, sep, decimal)
            at = f"the first at {self.where([pos])}: " if pos is not None else ""
            return DataError(
                f"Cannot use the data from {self.path}: 1 problem:\n  - {self.path}, column "
                f"'{name}': text in a number column ({at}{m.group(2)[:40]!r}). Fix or remove those values, or "
                f"leave '{name}' out of the columns used."
            )
        m = re.search(r"Expected (\d+) columns, got (\d+): ?(.*)", text, re.DOTALL)
        if m:
            return DataError(
                f"{str(self.path)!r} has a row with {m.group(2)} fields where the header has {m.group(1)} "
                f"({m.group(3)[:60].strip()!r}). Fix that row."
            )
        return DataError(f"Cannot parse {str(self.path)!r} as CSV: {text.splitlines()[0] if text else err!r}.")


def open_batches(path) -> FileBatches:
    """The file at ``path``, checked (exists, a regular readable file, Parquet footer or CSV header readable)."""
    p = Path(path)
    check_data_file(p)
    suffixes = [s.lower() for s in p.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in _COMPRESSION_SUFFIXES:
        raise DataError(
            f"Cannot stream {str(p)!r}: a compressed file ({suffix}). Streaming reads a plain .csv or a Parquet "
            f"file: decompress it first, or convert it to Parquet (which compresses its own columns)."
        )
    with open(p, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if suffix in _PARQUET_SUFFIXES or (suffix not in _CSV_SUFFIXES and head.startswith(b"PAR1")):
        return _open_parquet(p)
    return _open_csv(p, head, _CSV_SUFFIXES.get(suffix, ","))


def _open_parquet(p: Path) -> FileBatches:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(p, pre_buffer=False, buffer_size=PARQUET_BUFFER)
        names = list(file.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as err:  # many types for a damaged file, one meaning here
        raise parquet_error(p, err) from None
    check_duplicates(p, names)
    return FileBatches(p, "parquet", names, 0, file)


def _open_csv(p: Path, head: bytes, default_sep: str) -> FileBatches:
    if b"\x00" in head:
        raise DataError(f"Cannot read {str(p)!r}: it holds binary data, not CSV text. Give a CSV or Parquet file.")
    try:
        text = head.decode("utf-8-sig") if len(head) < _HEAD_BYTES else head.decode("utf-8-sig", errors="ignore")
    except UnicodeDecodeError:
        raise DataError(
            f"Cannot stream {str(p)!r}: it is not UTF-8 text. Streaming reads UTF-8 CSV: convert the file "
            f"(e.g. iconv -t utf-8), or read it in memory with its encoding."
        ) from None
    lines = text.splitlines()
    if len(head) == _HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError(
            f"Cannot read {str(p)!r}: it holds no columns (only blank lines). Check that it was saved completely."
        )
    dialect = detect_dialect(lines, default_sep, None, None, None, True, repr(str(p)))
    if dialect.sep == WHITESPACE or dialect.thousands is not None:
        blanks = dialect.sep == WHITESPACE
        layout = "columns separated by blanks" if blanks else f"{dialect.thousands!r} between thousands"
        raise DataError(
            f"Cannot stream {str(p)!r}: it is written with {layout}, which the streaming reader does not read. "
            f"Read it in memory (without streaming), or convert it to Parquet or to a plain CSV."
        )
    names = split_line(lines[0], dialect.sep)
    check_duplicates(p, names)
    numbering = LineNumbers(p, lambda: open(p, "rb"), "utf-8", dialect.sep, True)
    return FileBatches(p, "csv", names, numbering, (dialect.sep, dialect.decimal))


def _floats(arr) -> np.ndarray:
    """An Arrow column as float64, without a copy when it is float64 without nulls (nulls become NaN)."""
    import pyarrow as pa

    if arr.null_count == 0 and pa.types.is_float64(arr.type):
        return arr.to_numpy(zero_copy_only=True)
    return arr.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def _first_text(p: Path, name: str, sep: str, decimal: str) -> int | None:
    """The file row position of the first value of column ``name`` that is not a number (None: not found),
    reading that column again as text and casting each batch as the CSV reader does."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()}, strings_can_be_null=True)
    at = 0
    try:
        for batch in pcsv.open_csv(p, parse_options=pcsv.ParseOptions(delimiter=sep), convert_options=convert):
            col = batch.column(0)
            if decimal != ".":
                col = pc.replace_substring(col, decimal, ".")
            bad = _first_bad(col)
            if bad is not None:
                return at + bad
            at += len(col)
    except pa.ArrowException:
        return None
    return None


def _first_bad(col) -> int | None:
    """The first position of a text column that does not cast to float64, by halving (None: every value casts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lo, hi = 0, len(col)
    try:
        pc.cast(col, pa.float64())
        return None
    except pa.ArrowInvalid:
        pass
    while hi - lo > 1:  # col[lo:hi] holds a bad value
        mid = (lo + hi) // 2
        try:
            pc.cast(col.slice(lo, mid - lo), pa.float64())
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    return lo


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    """A float64 array of a batch as a tensor sharing its memory (pyarrow's buffers are read-only: never write it)."""
    if arr.flags.writeable:
        return torch.from_numpy(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)
