"""Reading CSV-like text: a checked ``pandas.read_csv`` in the dialect given or detected.

Every failure is a ``DataError`` naming the file, the line and the fix: binary or
mis-encoded files, a separator that splits nothing, ragged rows, duplicate names. The reader
never coerces text: a column with a stray word stays a text column, reported later with its line.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import lzma
import re
import warnings
import zipfile
from pathlib import Path

import pandas as pd

from gradfit.data.dialect import SAMPLE_BYTES, Dialect, detect_dialect, split_line
from gradfit.data.read_options import WHITESPACE, sep_name
from gradfit.errors import DataError

__all__ = ["check_duplicates", "check_rows", "headerless_names", "read_csv"]

_SCAN_LIMIT = 256 * 2**20
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def headerless_names(width: int) -> list[str]:
    """``c1, c2, ...``: names a formula can use, for the columns of a file without a header."""
    return [f"c{i}" for i in range(1, width + 1)]


def read_csv(p: Path, default_sep: str, compression: str | None, options: dict) -> tuple[pd.DataFrame, Dialect]:
    """The table in ``p`` and the dialect it was read with.

    ``compression`` is the file's compression suffix (``.gz``...) or None; ``options`` are
    :func:`~gradfit.data.read_options.check_read`'s.
    """
    encoding = options["encoding"] or "utf-8"
    header = options["header"]
    if compression is None:
        _check_text(p, _head(p), encoding)
    lines = _sample_lines(p, compression, encoding)
    dialect = detect_dialect(lines, default_sep, options["sep"], options["decimal"], options["thousands"], header,
                             repr(str(p)))
    sep = dialect.sep
    first = split_line(lines[0], sep) if lines else []
    if header and compression is None:
        _check_delimiter(p, sep, first)
        check_duplicates(p, first)
    kwargs = dict(sep=r"\s+" if sep == WHITESPACE else sep, decimal=dialect.decimal, thousands=dialect.thousands,
                  encoding=_pandas_encoding(encoding), index_col=False, engine="c")
    if not header:
        kwargs.update(header=None, names=headerless_names(_widest(lines, sep)))
    if options["dates"]:  # as text, or the thousands separator would turn 01.02.2020 into 1022020
        kwargs["dtype"] = {name: str for name in options["dates"]}
    try:
        with warnings.catch_warnings():
            # index_col=False stops pandas from silently taking the first column as the index when
            # every row has one field more than the header; it warns instead, and we report the row.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(p, **kwargs)
    except pd.errors.ParserWarning:
        if compression is None:
            _check_row_widths(p, sep, len(first), encoding, header)
        raise DataError(f"{str(p)!r} has rows with more fields than its {'header' if header else 'first line'}. "
                        "Fix those rows.") from None
    except UnicodeDecodeError as err:
        raise DataError(_decode_message(p, err, compression, encoding)) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Cannot read {str(p)!r}: it holds no columns (only blank lines). Check that it was saved completely."
        ) from None
    except pd.errors.ParserError as err:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:
            raise DataError(_ragged_message(p, int(m.group(2)), int(m.group(1)), int(m.group(3)), header)) from None
        raise DataError(f"Cannot parse {str(p)!r} as {sep_name(sep)}-separated text: {err}".strip()) from None
    if compression is not None and header:
        check_duplicates(p, [str(c) for c in df.columns], mangled=True)
    check_rows(p, df)
    # A short row leaves NaN in the last column; scanning with the csv module is slow, so only
    # then, and not for huge files.
    if compression is None and sep != WHITESPACE and df.iloc[:, -1].isna().any() and p.stat().st_size <= _SCAN_LIMIT:
        _check_row_widths(p, sep, len(df.columns), encoding, header)
    return df, dialect


def _pandas_encoding(encoding: str) -> str:
    return "utf-8" if codecs.lookup(encoding).name == "utf-8" else encoding


def _text_encoding(encoding: str) -> str:
    # A byte-order mark is not part of the first column's name.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _head(p: Path, size: int = 1024) -> bytes:
    with open(p, "rb") as f:
        return f.read(size)


def _sample_lines(p: Path, compression: str | None, encoding: str) -> list[str]:
    """The first lines of the text (at most SAMPLE_BYTES characters; a cut last line dropped)."""
    try:
        if compression in _OPENERS:
            with _OPENERS[compression](p, "rt", encoding=_text_encoding(encoding), errors="replace", newline="") as f:
                text = f.read(SAMPLE_BYTES)
        elif compression == ".zip":
            with zipfile.ZipFile(p) as z, z.open(z.namelist()[0]) as raw:
                text = raw.read(SAMPLE_BYTES).decode(_text_encoding(encoding), errors="replace")
        elif compression is not None:
            return []  # no reader for a sample here (.zst): pandas reads it in the extension's dialect
        else:
            with open(p, encoding=_text_encoding(encoding), errors="replace", newline="") as f:
                text = f.read(SAMPLE_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, IndexError) as err:
        raise DataError(f"Cannot read {str(p)!r}: the compressed file is damaged ({err}). "
                        "Compress it again or give the plain file.") from None
    lines = text.splitlines()
    if len(text) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]
    return lines


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
            + ("It starts like UTF-16 text: read it with --encoding utf-16 (library: read={'encoding': 'utf-16'}), "
               "or re-save it as UTF-8." if utf16 else
               "Export the data as CSV (UTF-8) or Parquet; UTF-16 text must be read with --encoding utf-16.")
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


def check_duplicates(p: Path, names: list[str], mangled: bool = False) -> None:
    """A DataError naming the column names that occur more than once."""
    if mangled:  # pandas has already renamed a second "a" to "a.1"
        dups = [m.group(1) for m in map(re.compile(r"^(.*)\.\d+$").match, names) if m and m.group(1) in names]
    else:
        seen: set[str] = set()
        dups = [n for n in names if n in seen or seen.add(n)]
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


def _check_row_widths(p: Path, sep: str, width: int, encoding: str, header: bool) -> None:
    with open(p, encoding=_text_encoding(encoding), errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        if header:
            next(reader, None)
        for row in reader:
            if row and len(row) != width:
                raise DataError(_ragged_message(p, reader.line_num, width, len(row), header))


def _ragged_message(p: Path, line: int, expected: int, found: int, header: bool = True) -> str:
    fix = ("a stray delimiter, or a value holding the delimiter that should be quoted"
           if found > expected else "a missing value; write an empty field between the delimiters")
    first = "the header" if header else "the widest of the first lines"
    return f"{str(p)!r} line {line} has {found} fields but {first} has {expected}. Fix that row ({fix})."


def _decode_message(p: Path, err: UnicodeDecodeError, compression: str | None, encoding: str) -> str:
    fix = ("Re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel), or read it in its encoding: --encoding latin-1 "
           "or --encoding cp1252 (library: read={'encoding': 'latin-1'}).")
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
