"""Reading a table from disk (CSV, TSV, Parquet) or from the built-in datasets.

Every failure is a ``DataError`` naming the file, what is wrong and how to fix it;
no pandas or pyarrow traceback reaches the user. The reader never coerces text:
a column with a stray word stays a text column, and ``as_dataset`` reports it.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import os
import re
import warnings
from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd

from gradfit.data.synthetic import load_builtin
from gradfit.errors import DataError, GradfitError

__all__ = ["read_table"]

_CSV_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst"}
_SCAN_LIMIT = 256 * 2**20
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "';'", "|": "'|'"}
# Where as_dataset should count rows from: data row 1 of a CSV with a header is file line 2.
ROW_LABEL_ATTR, FIRST_ROW_ATTR, SOURCE_ATTR = "gradfit_row_label", "gradfit_first_row", "gradfit_source"


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, or a ``builtin:NAME`` dataset, into a DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``/``.txt`` (comma-separated), ``.tsv``/``.tab`` (tab-separated),
        ``.parquet``/``.pq``; other extensions are sniffed. ``builtin:linear`` or
        ``builtin:linear?n=1000&seed=3`` loads a built-in dataset.

    Returns
    -------
    pandas.DataFrame
        Column types as inferred by pandas; text is left as text.

    Raises
    ------
    DataError
        Missing, empty, binary, non-UTF-8, ragged, mis-delimited or corrupt files,
        and duplicate column names.

    Examples
    --------
    >>> read_table("builtin:linear?n=3").shape
    (3, 2)
    """
    if isinstance(path, str) and path.startswith("builtin:"):
        return _read_builtin(path)
    p = Path(path)
    _check_file(p)
    suffixes = [s.lower() for s in p.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in _COMPRESSION_SUFFIXES
    suffix = (suffixes[-2] if compressed and len(suffixes) > 1 else suffixes[-1]) if suffixes else ""
    if suffix in _PARQUET_SUFFIXES:
        return _label(_read_parquet(p), p, "row", 0)
    if suffix in _CSV_SUFFIXES or compressed:
        sep = _CSV_SUFFIXES.get(suffix, ",")
    else:
        head = _head(p)
        if head.startswith(b"PAR1"):
            return _label(_read_parquet(p), p, "row", 0)
        first_line = head.split(b"\n", 1)[0]
        sep = "\t" if b"\t" in first_line and b"," not in first_line else ","
    return _label(_read_csv(p, sep, compressed), p, "line", 2)


def _label(df: pd.DataFrame, p: Path, row_label: str, first_row: int) -> pd.DataFrame:
    df.attrs.update({SOURCE_ATTR: str(p), ROW_LABEL_ATTR: row_label, FIRST_ROW_ATTR: first_row})
    return df


def _read_builtin(path: str) -> pd.DataFrame:
    name, _, query = path[len("builtin:"):].partition("?")
    kwargs = {}
    for key, text in parse_qsl(query, keep_blank_values=True):
        try:
            kwargs[key] = int(text)
        except ValueError:
            try:
                kwargs[key] = float(text)
            except ValueError:
                raise DataError(
                    f"{path!r}: the value of '{key}' must be a number. Got {text!r} instead. "
                    f"Write it as e.g. builtin:{name}?{key}=3."
                ) from None
    try:
        df = load_builtin(name, **kwargs)
    except GradfitError as err:
        raise DataError(f"{path!r}: {err}") from None
    df.attrs.update({SOURCE_ATTR: path, ROW_LABEL_ATTR: "row", FIRST_ROW_ATTR: 0})
    return df


def _check_file(p: Path) -> None:
    if not p.exists():
        folder = p.parent
        if not folder.is_dir():
            raise DataError(f"Cannot read {str(p)!r}: the folder {str(folder)!r} does not exist. Check the path.")
        close = difflib.get_close_matches(p.name, sorted(os.listdir(folder)), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(str(folder / c)) for c in close)}?" if close else ""
        raise DataError(
            f"Cannot read {str(p)!r}: no such file (looked in {str(folder.resolve())!r}).{hint}"
        )
    if p.is_dir():
        raise DataError(f"Cannot read {str(p)!r}: it is a folder, not a file. Give the path of a CSV or Parquet file.")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except PermissionError:
        raise DataError(
            f"Cannot read {str(p)!r}: permission denied. Check the file's permissions (e.g. chmod u+r)."
        ) from None
    except OSError as err:
        raise DataError(f"Cannot read {str(p)!r}: {err.strerror or err}.") from None
    if p.stat().st_size == 0:
        raise DataError(f"Cannot read {str(p)!r}: the file is empty (0 bytes). Check that it was saved completely.")


def _head(p: Path, size: int = 1024) -> bytes:
    with open(p, "rb") as f:
        return f.read(size)


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(p)
        _check_duplicates(p, list(file.schema_arrow.names))
        df = file.read().to_pandas()
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:  # many types for a damaged file, one meaning here
        reason = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
        head = _head(p)
        if not head.startswith(b"PAR1") and b"\x00" not in head:
            reason += ". It looks like text: if it is CSV, name the file .csv"
        raise DataError(
            f"Cannot read {str(p)!r} as Parquet: {reason}. The file is truncated or corrupt; "
            "export it again (e.g. df.to_parquet(...)) or check that it is really a Parquet file."
        ) from None
    _check_rows(p, df)
    return df


def _read_csv(p: Path, sep: str, compressed: bool) -> pd.DataFrame:
    if not compressed:
        _check_text(p, _head(p))
        header = _header(p, sep)
        _check_delimiter(p, sep, header)
        _check_duplicates(p, header)
    try:
        with warnings.catch_warnings():
            # index_col=False stops pandas from silently taking the first column as the index when
            # every row has one field more than the header; it warns instead, and we report the row.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(p, sep=sep, engine="c", encoding="utf-8", index_col=False)
    except pd.errors.ParserWarning:
        if not compressed:
            _check_row_widths(p, sep, len(header))
        raise DataError(f"{str(p)!r} has rows with more fields than its header. Fix those rows.") from None
    except UnicodeDecodeError as err:
        raise DataError(_utf8_message(p, err, compressed)) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Cannot read {str(p)!r}: it holds no columns (only blank lines). Check that it was saved completely."
        ) from None
    except pd.errors.ParserError as err:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:
            raise DataError(_ragged_message(p, int(m.group(2)), int(m.group(1)), int(m.group(3)))) from None
        raise DataError(f"Cannot parse {str(p)!r} as {_DELIMITER_NAMES[sep]}-separated text: {err}".strip()) from None
    if compressed:
        _check_duplicates(p, [str(c) for c in df.columns], mangled=True)
    _check_rows(p, df)
    # A short row leaves NaN in the last column; scanning with the csv module is slow, so only
    # then, and not for huge files.
    if not compressed and df.iloc[:, -1].isna().any() and p.stat().st_size <= _SCAN_LIMIT:
        _check_row_widths(p, sep, len(df.columns))
    return df


def _check_text(p: Path, head: bytes) -> None:
    if head.startswith(b"PAR1"):
        raise DataError(f"{str(p)!r} is a Parquet file, not text. Rename it to end in .parquet.")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(
            f"{str(p)!r} is a zip archive (an Excel .xlsx file?), not text. Export it as CSV (UTF-8) first."
        )
    if b"\x00" in head:
        raise DataError(
            f"{str(p)!r} looks like a binary file (it has NUL bytes in its first {len(head)} bytes), not CSV text. "
            "Export the data as CSV (UTF-8) or Parquet; UTF-16 text must be re-saved as UTF-8."
        )


def _header(p: Path, sep: str) -> list[str]:
    # The header as written: pandas renames duplicates ("a", "a.1"), so read it ourselves.
    with open(p, encoding="utf-8-sig", errors="replace", newline="") as f:
        for row in csv.reader(f, delimiter=sep):
            if row:
                return row
    return []


def _check_delimiter(p: Path, sep: str, header: list[str]) -> None:
    if len(header) != 1:
        return
    for other in [",", "\t", ";", "|"]:
        if other != sep and other in header[0]:
            name = _DELIMITER_NAMES[other]
            fix = {
                ",": "name the file .csv",
                "\t": "name the file .tsv",
            }.get(other, "convert it to comma-separated (or tab-separated and name the file .tsv)")
            raise DataError(
                f"{str(p)!r} was read as {_DELIMITER_NAMES[sep]}-separated but its header {header[0][:60]!r} "
                f"looks like {name}-separated; {fix}."
            )


def _check_duplicates(p: Path, names: list[str], mangled: bool = False) -> None:
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


def _check_rows(p: Path, df: pd.DataFrame) -> None:
    if len(df) == 0:
        raise DataError(
            f"{str(p)!r} has columns ({', '.join(map(str, list(df.columns)[:6]))}) but no data rows. "
            "Check that the file was saved completely."
        )


def _check_row_widths(p: Path, sep: str, width: int) -> None:
    with open(p, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        next(reader, None)
        for row in reader:
            if row and len(row) != width:
                raise DataError(_ragged_message(p, reader.line_num, width, len(row)))


def _ragged_message(p: Path, line: int, expected: int, found: int) -> str:
    fix = ("a stray delimiter, or a value holding the delimiter that should be quoted"
           if found > expected else "a missing value; write an empty field between the delimiters")
    return (
        f"{str(p)!r} line {line} has {found} fields but the header has {expected}. "
        f"Fix that row ({fix})."
    )


def _utf8_message(p: Path, err: UnicodeDecodeError, compressed: bool) -> str:
    fix = "Re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel, or iconv -f latin1 -t utf-8)."
    if compressed:
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
