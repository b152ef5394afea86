"""Reading CSV-like text: a checked ``pandas.read_csv`` in the dialect given or detected.

Every failure is a ``DataError`` naming the file, the line and the fix: binary or
mis-encoded files, a separator that splits nothing, ragged rows, duplicate names. The reader
never coerces text: a column with a stray word stays a text column, reported later with its line.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradfit.data.compression import check_compressed, damaged, decompression_errors, open_stream
from gradfit.data.dialect import SAMPLE_BYTES, Dialect, detect_dialect, split_line
from gradfit.data.lines import LineNumbers, records
from gradfit.data.plain_csv import NumberTable, read_plain_csv
from gradfit.data.read_options import WHITESPACE, sep_name
from gradfit.data.wide_table import WIDE_COLUMNS, read_numbers
from gradfit.errors import DataError
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = ["check_duplicates", "check_rows", "headerless_names", "read_csv"]

_SCAN_LIMIT = 256 * 2**20
# The header and first row are read whole, however wide; lines longer than this are not a table's.
_MAX_FIRST_LINE = 256 * 2**20


def headerless_names(width: int) -> list[str]:
    """``c1, c2, ...``: names a formula can use, for the columns of a file without a header."""
    return [f"c{i}" for i in range(1, width + 1)]


def read_csv(
    p: Path, default_sep: str, compression: str | None, options: dict, plain: bool = False
) -> tuple[pd.DataFrame | NumberTable, Dialect, LineNumbers]:
    """The table in ``p``, the dialect it was read with and the lines its rows start on.

    ``compression`` is the file's compression suffix (``.gz``...) or None; ``options`` are
    :func:`~gradfit.data.read_options.check_read`'s. ``p`` has passed
    :func:`~gradfit.data.data_file.check_data_file`. With ``plain``, a plain numeric CSV file is read
    without pandas, into a :class:`~gradfit.data.plain_csv.NumberTable`.
    """
    encoding = options["encoding"] or "utf-8"
    header = options["header"]
    if compression is not None:
        check_compressed(p, compression)
    opener = _opener(p, compression)
    with _decompressing(p, compression):
        with opener() as raw:
            _check_text(p, raw.read(1024), encoding)
        try:
            lines, blank_lead = _sample_lines(p, opener, encoding)
        except UnicodeError as err:  # not a decoding error that errors="replace" mends: utf-16 without its BOM
            raise DataError(_codec_message(p, err, encoding)) from None
    dialect = detect_dialect(
        lines, default_sep, options["sep"], options["decimal"], options["thousands"], header, repr(str(p))
    )
    sep = dialect.sep
    first = split_line(lines[blank_lead], sep) if len(lines) > blank_lead else []  # the header, after blank lines
    if header:
        _check_delimiter(p, sep, first)
        check_duplicates(p, first)
    numbering = LineNumbers(p, opener, _text_encoding(encoding), None if sep == WHITESPACE else sep, header)
    names = first if header else headerless_names(_widest(lines, sep))
    if plain and _plain_layout(compression, encoding, header, options, dialect, blank_lead):
        table = read_plain_csv(p, names)
        if table is not None:
            return table, dialect, numbering
    if len(names) > WIDE_COLUMNS and dialect.decimal == "." and dialect.thousands is None and not options["dates"]:
        with _decompressing(p, compression):
            at = blank_lead + (1 if header else 0)
            row = lines[at] if len(lines) > at and lines[at].strip() else None
            df = read_numbers(
                opener,
                _text_encoding(encoding),
                sep,
                names,
                blank_lead + (1 if header else 0),
                first_row=None if row is None else split_line(row, sep),
            )
        if df is not None:
            check_rows(p, df)
            return df, dialect, numbering
    kwargs: dict[str, Any]
    kwargs = dict(
        sep=r"\s+" if sep == WHITESPACE else sep,
        decimal=dialect.decimal,
        thousands=dialect.thousands,
        encoding=_pandas_encoding(encoding),
        index_col=False,
        engine="c",
    )
    if not header:
        kwargs.update(header=None, names=names)
    if options["dates"]:  # as text, or the thousands separator would turn 01.02.2020 into 1022020
        kwargs["dtype"] = {name: str for name in options["dates"]}
    try:
        with (
            warnings.catch_warnings(),
            _decompressing(p, compression),
            opener() if compression is not None else contextlib.nullcontext(p) as source,
        ):
            # index_col=False stops pandas from silently taking the first column as the index when
            # every row has one field more than the header; it warns instead, and we report the row.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(source, **kwargs)
    except pd.errors.ParserWarning:
        _check_row_widths(p, opener, sep, len(first), encoding, header)
        raise DataError(
            f"{str(p)!r} has rows with more fields than its {'header' if header else 'first line'}. Fix those rows."
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(_decode_message(p, err, compression, encoding)) from None
    except UnicodeError as err:
        raise DataError(_codec_message(p, err, encoding)) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Cannot read {str(p)!r}: it holds no columns (only blank lines). Check that it was saved completely."
        ) from None
    except pd.errors.ParserError as err:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:  # pandas counts a quoted field's extra lines out: find the row's own line
            _check_row_widths(p, opener, sep, int(m.group(1)), encoding, header)
            raise DataError(_ragged_message(p, int(m.group(2)), int(m.group(1)), int(m.group(3)), header)) from None
        raise DataError(f"Cannot parse {str(p)!r} as {sep_name(sep)}-separated text: {err}".strip()) from None
    check_rows(p, df)
    # A short row leaves NaN in the last column; scanning with the csv module is slow, so only
    # then, and not for huge files.
    if compression is None and sep != WHITESPACE and df.iloc[:, -1].isna().any() and p.stat().st_size <= _SCAN_LIMIT:
        _check_row_widths(p, opener, sep, len(df.columns), encoding, header)
    return df, dialect, numbering


def _plain_layout(compression: str | None, encoding: str, header: bool, options: dict, dialect, lead: int) -> bool:
    """Whether the file may be read by :func:`~gradfit.data.plain_csv.read_plain_csv`: the layout it reads."""
    return (
        compression is None
        and codecs.lookup(encoding).name == "utf-8"
        and header
        and not options["dates"]
        and (dialect.sep, dialect.decimal, dialect.thousands) == (",", ".", None)
        and lead == 0
    )


def _opener(p: Path, compression: str | None):
    """A function opening the file's (decompressed) bytes, for each reader that needs them."""
    if compression is None:
        return lambda: open(p, "rb")
    return lambda: open_stream(p, compression)


@contextlib.contextmanager
def _decompressing(p: Path, compression: str | None):
    """Failures of the decompressor (a truncated or damaged file) as the DataError that names them."""
    if compression is None:
        yield
        return
    try:
        yield
    except decompression_errors() as err:
        raise damaged(p, compression, err) from None


def _pandas_encoding(encoding: str) -> str:
    return "utf-8" if codecs.lookup(encoding).name == "utf-8" else encoding


def _text_encoding(encoding: str) -> str:
    # A byte-order mark is not part of the first column's name.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _sample_lines(p: Path, opener, encoding: str) -> tuple[list[str], int]:
    """The first lines of the text and how many blank lines precede the first non-blank one.

    At least SAMPLE_BYTES characters and the first two non-blank lines (the header and a row) whole,
    however wide; a last line cut short is dropped.
    """
    with opener() as raw:
        f = io.TextIOWrapper(raw, encoding=_text_encoding(encoding), errors="replace", newline="")
        text = f.read(SAMPLE_BYTES)
        at_end = len(text) < SAMPLE_BYTES
        while not at_end and _whole_lines(text) < 2:
            if len(text) > _MAX_FIRST_LINE:
                raise DataError(
                    f"Cannot read {str(p)!r}: its first two lines are longer than "
                    f"{_MAX_FIRST_LINE // 2**20} MiB. A table has a header line (or a first row) and one "
                    f"row per line; check that this is such a file."
                )
            chunk = f.read(max(SAMPLE_BYTES, len(text)))
            text += chunk
            at_end = not chunk
    lines = text.splitlines()
    if not at_end and len(lines) > 1:
        lines = lines[:-1]
    lead = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    return lines, lead


def _whole_lines(text: str) -> int:
    """How many non-blank lines of ``text`` have ended (0, 1 or 2: the header and one row are enough)."""
    n = 0
    for line in text.splitlines(keepends=True):
        if line.strip() and line != line.rstrip("\r\n"):
            n += 1
            if n == 2:
                break
    return n


def _widest(lines: list[str], sep: str) -> int:
    return max((len(split_line(line, sep)) for line in lines if line.strip()), default=1)


def _check_text(p: Path, head: bytes, encoding: str) -> None:
    if head.startswith(b"PAR1"):
        raise DataError(f"{str(p)!r} is a Parquet file, not text. Rename it to end in .parquet.")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(
            f"{str(p)!r} is a zip archive (an Excel .xlsx file?), not text. Export it as CSV (UTF-8) first."
        )
    if b"\x00" in head and not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise DataError(
            f"{str(p)!r} looks like a binary file (it has NUL bytes in its first {len(head)} bytes), not CSV text. "
            + (
                "It starts like UTF-16 text: read it with --encoding utf-16 (library: read={'encoding': 'utf-16'}), "
                "or re-save it as UTF-8."
                if utf16
                else "Export the data as CSV (UTF-8) or Parquet; UTF-16 text must be read with --encoding utf-16."
            )
        )


def _check_delimiter(p: Path, sep: str, header: list[str]) -> None:
    if len(header) != 1:
        return
    for other in [",", "\t", ";", "|"]:
        if other != sep and other in header[0]:
            flag = "tab" if other == "\t" else f"'{other}'"
            raise DataError(
                f"{str(p)!r} was read as {sep_name(sep)}-separated but its header {header[0][:60]!r} "
                f"looks like {sep_name(other)}-separated, and its rows do not agree. Give the separator with "
                f"--sep {flag} (library: read={{'sep': {other!r}}}), and check the rows."
            )


def check_duplicates(p: Path, names: list[str]) -> None:
    """A DataError naming the column names that occur more than once."""
    if len(set(names)) == len(names):
        return
    seen: set[str] = set()
    dups = []
    for n in names:
        if n in seen:
            dups.append(n)
        seen.add(n)
    if dups:
        raise DataError(
            f"{str(p)!r} has duplicate column names: {', '.join(map(repr, dict.fromkeys(dups)))}. "
            "Give every column a unique name."
        )


def check_rows(p: Path, df: pd.DataFrame) -> None:
    """A DataError for a table with columns but no rows."""
    if len(df) == 0:
        raise DataError(
            f"{str(p)!r} has columns ({', '.join(map(str, list(df.columns)[:6]))}) but no data rows. "
            "Check that the file was saved completely."
        )


def _check_row_widths(p: Path, opener, sep: str, width: int, encoding: str, header: bool) -> None:
    """A DataError naming the first row (by the line it starts on) whose number of fields is not ``width``."""
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=_text_encoding(encoding), errors="replace", newline="")
        header_seen = not header
        for start, row in records(text, None if sep == WHITESPACE else sep):
            if row is None:  # blank: pandas skips it
                continue
            if not header_seen:
                header_seen = True
                continue
            if len(row) != width:
                raise DataError(_ragged_message(p, start, width, len(row), header))


def _ragged_message(p: Path, line: int, expected: int, found: int, header: bool = True) -> str:
    fix = (
        "a stray delimiter, or a value holding the delimiter that should be quoted"
        if found > expected
        else "a missing value; write an empty field between the delimiters"
    )
    first = "the header" if header else "the widest of the first lines"
    return f"{str(p)!r} line {line} has {found} fields but {first} has {expected}. Fix that row ({fix})."


def _codec_message(p: Path, err: UnicodeError, encoding: str) -> str:
    """For a codec's own refusal, such as UTF-16 text without its byte-order mark."""
    return (
        f"{str(p)!r} cannot be read as {encoding} text ({err}). Check the --encoding (library: read={{'encoding': "
        f"...}}): utf-8 (the default), latin-1, cp1252, or utf-16-le / utf-16-be for UTF-16 without a byte-order mark."
    )


def _decode_message(p: Path, err: UnicodeDecodeError, compression: str | None, encoding: str) -> str:
    fix = (
        "Re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel), or read it in its encoding: --encoding latin-1 "
        "or --encoding cp1252 (library: read={'encoding': 'latin-1'})."
    )
    if codecs.lookup(encoding).name != "utf-8":
        return f"{str(p)!r} is not valid {encoding} text ({err.reason}). Check the --encoding."
    if compression is not None:
        return f"{str(p)!r} is not valid UTF-8 text ({err.reason}). {fix}"
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with open(p, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as bad:
                at = offset - pending + bad.start
                line = lines + chunk[: max(0, at - offset)].count(b"\n") + 1
                byte = bad.object[bad.start]
                guess = bytes([byte]).decode("cp1252", errors="replace")
                return (
                    f"{str(p)!r} is not valid UTF-8: byte 0x{byte:02x} at offset {at} (line {line}), "
                    f"perhaps {guess!r} in Latin-1/Windows-1252. {fix}"
                )
            if not chunk:
                break
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return f"{str(p)!r} is not valid UTF-8 text ({err.reason}). {fix}"
