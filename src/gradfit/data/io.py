"""Reading a table from disk (CSV, TSV, Parquet) or from the built-in datasets.

Every failure is a ``DataError`` naming the file, what is wrong and how to fix it;
no pandas or pyarrow traceback reaches the user. The reader never coerces text:
a column with a stray word stays a text column, and ``as_dataset`` reports it.

What a read used (the separator and decimal mark detected, the dates' unit and origin) is
recorded in ``df.attrs[READ_ATTR]``; ``read_table(path, **record)`` reads the file the same
way again (``FitResult.data["read"]`` holds it for a fit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from gradfit.data.csv_reader import check_duplicates, check_rows, read_csv
from gradfit.data.data_file import check_data_file
from gradfit.data.dates import apply_dates, convert_dates, datetime_columns
from gradfit.data.plain_csv import NumberTable
from gradfit.data.read_options import check_read
from gradfit.errors import ConfigError, DataError, GradfitError
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = ["open_data", "read_like", "read_table"]

_CSV_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst"}
# How as_dataset should number rows in messages: "line" and a gradfit.data.lines.LineNumbers for text
# files (blank lines and quoted line ends counted), "row" and an offset otherwise.
ROW_LABEL_ATTR, FIRST_ROW_ATTR, SOURCE_ATTR = "gradfit_row_label", "gradfit_first_row", "gradfit_source"
# What the read used (read_table(path, **attrs[READ_ATTR]) reads the same way), its notes, and the
# number format of text columns (so a bad value is found and reported by its line, not every value).
READ_ATTR, NOTES_ATTR, NUMBERS_ATTR = "gradfit_read", "gradfit_notes", "gradfit_numbers"
DETECTED_ATTR = "gradfit_detected"  # which of sep, decimal, thousands were detected rather than given


def read_table(
    path: str | os.PathLike,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    thousands: str | None = None,
    encoding: str | None = None,
    header: bool = True,
    dates=None,
    date_unit: str | None = None,
    date_origin: str | None = None,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, or a ``builtin:NAME`` dataset, into a DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``/``.txt`` (comma-separated), ``.tsv``/``.tab`` (tab-separated),
        ``.parquet``/``.pq``; other extensions are sniffed, and so is a text file whose
        extension's separator splits nothing (a ``;``-separated ``.csv``). ``builtin:linear`` or
        ``builtin:linear?n=1000&seed=3`` loads a built-in dataset.
    sep, decimal, thousands : str, optional
        The separator (``","``, ``";"``, ``"tab"``, ``"|"``, ``"whitespace"``...), decimal mark
        (``"."`` or ``","``) and thousands separator of a text file; detected when not given
        (``;`` with decimal commas and ``.`` between thousands is recognised).
    encoding : str, optional
        The text's encoding (default UTF-8), e.g. ``"latin-1"``, ``"cp1252"``, ``"utf-16"``.
    header : bool
        False for a file without a header line: its columns are named ``c1, c2, ...``.
    dates : list of str or dict, optional
        Columns of dates or times, converted to numbers: a unit since an origin (see
        :mod:`gradfit.data.dates`); a dict gives per-column options ``{"unit", "origin",
        "dayfirst", "format"}``.
    date_unit, date_origin, dayfirst, date_format : optional
        Defaults for every column of ``dates``: ``"auto"`` or ``"seconds"`` ... ``"years"``; an
        origin such as ``"2000-01-01"`` (default: the first day in the data); day-first (True) or
        month-first (False) for dates such as ``01/02/2020``; a ``strftime`` format.

    Returns
    -------
    pandas.DataFrame
        Column types as inferred by pandas; text is left as text. ``df.attrs[READ_ATTR]`` holds
        what was used (detected separator, dates' unit and origin...): pass it back as
        ``read_table(path, **record)`` to read the same numbers again.

    Raises
    ------
    DataError
        Missing, empty, binary, mis-encoded, ragged, mis-delimited or corrupt files, duplicate
        column names, a separator that splits nothing, dates that do not parse.
    ConfigError
        Reading options out of range.

    Examples
    --------
    >>> read_table("builtin:linear?n=3").shape
    (3, 2)
    """
    options = check_read(
        {
            "sep": sep,
            "decimal": decimal,
            "thousands": thousands,
            "encoding": encoding,
            "header": header,
            "dates": dates,
            "date_unit": date_unit,
            "date_origin": date_origin,
            "dayfirst": dayfirst,
            "date_format": date_format,
        }
    )
    return _read(path, options)


def _read(path: str | os.PathLike, options: dict, plain: bool = False):
    """:func:`read_table` after its options are checked; with ``plain``, a plain numeric CSV file comes back as
    a :class:`~gradfit.data.plain_csv.NumberTable` (read without pandas), anything else as a DataFrame."""
    if isinstance(path, str) and path.startswith("builtin:"):
        _only_text_options(options, path, "a built-in dataset")
        return _dates(_read_builtin(path), options, {})
    p = Path(path)
    check_data_file(p)
    suffixes = [s.lower() for s in p.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES else None
    suffix = (suffixes[-2] if compression and len(suffixes) > 1 else suffixes[-1]) if suffixes else ""
    if suffix in _PARQUET_SUFFIXES or (
        suffix not in _CSV_SUFFIXES and not compression and _head(p).startswith(b"PAR1")
    ):
        _only_text_options(options, p, "Parquet")
        if compression:
            raise DataError(
                f"Cannot read {str(p)!r}: a compressed Parquet file ({compression}). Parquet compresses its "
                f"own columns; decompress the file and give the plain .parquet file."
            )
        return _dates(_label(_read_parquet(p), p, "row", 0), options, {})
    df, dialect, numbering = read_csv(p, _CSV_SUFFIXES.get(suffix, ","), compression, options, plain)
    df = _label(df, p, "line", numbering)
    used = {
        "sep": dialect.sep,
        "decimal": dialect.decimal,
        "thousands": dialect.thousands,
        "encoding": options["encoding"] or "utf-8",
        "header": options["header"],
    }
    df.attrs[NUMBERS_ATTR] = (dialect.decimal, dialect.thousands)
    df.attrs[DETECTED_ATTR] = dialect.detected
    note = dialect.note()
    return _dates(df, options, used, [note] if note else [])


def open_data(data, read=None) -> tuple[object, str | None, dict, list[str]]:
    """The data for a fit, read and with its date columns as numbers, and what was done.

    Parameters
    ----------
    data : path, str, DataFrame or other
        A path or ``"builtin:NAME"`` is read with ``read_table(data, **read)``; a DataFrame's
        date columns (``read["dates"]`` and every datetime column) are converted; anything else
        is returned as is.
    read : mapping, optional
        See :func:`read_table`; for data in memory only the date options apply.

    Returns
    -------
    (data, origin, reading, notes)
        ``origin``: the path to read again (None for data in memory); ``reading``: ``{"read": what
        read_table used (None for data in memory), "dates": per converted column its unit and
        origin}``; ``notes``: sentences for the user (detected layout, date conversions).
    """
    options = check_read(read)
    if isinstance(data, (str, os.PathLike)):
        # first: a path that cannot be resolved (a loop of links) is refused there
        df = _read(data, options, plain=True)  # options checked above (check_read is idempotent)
        origin = str(data) if str(data).startswith("builtin:") else str(Path(data).resolve())
        used, notes = dict(df.attrs[READ_ATTR]), list(df.attrs[NOTES_ATTR])
        if isinstance(df, NumberTable):  # numbers only: no datetime columns
            return df, origin, {"read": used, "read_detected": list(df.attrs[DETECTED_ATTR]), "dates": {}}, notes
        df, auto, auto_notes = _datetime_columns(df, set(used.get("dates", {})))
        if auto:
            used["dates"] = {**used.get("dates", {}), **auto}
        reading = {"read": used, "read_detected": list(df.attrs.get(DETECTED_ATTR, ())), "dates": used.get("dates", {})}
        return df, origin, reading, notes + auto_notes
    text_options = {k: v for k, v in options.items() if k != "dates" and v not in (None, True)}
    if text_options:
        raise ConfigError(
            f"The reading option(s) {', '.join(text_options)} apply to files; the data given is a "
            f"{type(data).__name__}. Leave them out (only 'dates' applies to a DataFrame)."
        )
    if not isinstance(data, pd.DataFrame):
        if options["dates"]:
            raise ConfigError(
                f"The 'dates' reading option applies to files and DataFrames; the data given is a "
                f"{type(data).__name__}. Convert the dates to numbers first."
            )
        return data, None, {"read": None, "read_detected": [], "dates": {}}, []
    df, notes = data, []
    records: dict = {}
    if options["dates"]:
        df, records, notes = convert_dates(df, options["dates"], source="DataFrame")
    df, auto, auto_notes = _datetime_columns(df, set(records))
    return df, None, {"read": None, "read_detected": [], "dates": {**records, **auto}}, notes + auto_notes


def read_like(path: str | os.PathLike, info: Mapping) -> pd.DataFrame:
    """Read ``path`` as a run's data was read: ``info`` is ``FitResult.data``.

    The encoding, header, separators the user gave and the date conversion (unit, origin, day
    order) are the run's; a separator, decimal mark or thousands separator that was detected then
    is detected again, so new data in another layout is still read. For the run's own file,
    ``read_table(info["path"], **info["read"])`` repeats the read exactly.
    """
    detected = set(info.get("read_detected") or ())
    read = {k: v for k, v in (info.get("read") or {}).items() if k not in detected}
    df = read_table(path, **read)
    return apply_dates(
        df,
        info.get("dates") or {},
        source=repr(str(path)),
        row_label=df.attrs.get(ROW_LABEL_ATTR, "row"),
        first_row=df.attrs.get(FIRST_ROW_ATTR, 0),
    )


def _datetime_columns(df: pd.DataFrame, done: set) -> tuple[pd.DataFrame, dict, list[str]]:
    """A frame's datetime columns (not already converted) as numbers, as ``dates`` would convert them."""
    todo: dict[str, dict] = {c: {} for c in datetime_columns(df) if c not in done}
    if not todo:
        return df, {}, []
    return convert_dates(df, todo, source=str(df.attrs.get(SOURCE_ATTR, "DataFrame")))


def _only_text_options(options: dict, where, kind: str) -> None:
    given = [k for k in ("sep", "decimal", "thousands", "encoding") if options[k] is not None]
    given += ["header"] if not options["header"] else []
    if given:
        raise ConfigError(
            f"The reading option(s) {', '.join(given)} apply to CSV/TSV text, but {str(where)!r} is "
            f"{kind}. Leave them out."
        )


def _dates(df: pd.DataFrame, options: dict, used: dict, notes: list[str] | None = None) -> pd.DataFrame:
    """Convert the date columns; record in attrs what the read used, so it can be repeated."""
    notes = list(notes or [])
    attrs = dict(df.attrs)
    if options["dates"]:
        decimal_comma = attrs.get(NUMBERS_ATTR, (".", None))[0] == ","
        df, records, date_notes = convert_dates(
            df,
            options["dates"],
            source=repr(attrs.get(SOURCE_ATTR, "data")),
            row_label=attrs.get(ROW_LABEL_ATTR, "row"),
            first_row=attrs.get(FIRST_ROW_ATTR, 0),
            decimal_comma=decimal_comma,
        )
        df.attrs.update(attrs)
        used = {**used, "dates": records}
        notes += date_notes
    df.attrs.update({READ_ATTR: used, NOTES_ATTR: notes})
    return df


def _label(df: pd.DataFrame, p: Path, row_label: str, first_row) -> pd.DataFrame:
    df.attrs.update({SOURCE_ATTR: str(p), ROW_LABEL_ATTR: row_label, FIRST_ROW_ATTR: first_row})
    return df


def load_builtin(name: str, **kwargs) -> pd.DataFrame:
    """:func:`gradfit.data.synthetic.load_builtin`, imported when a built-in dataset is asked for: it imports
    pandas, which reading a plain CSV file does not need."""
    from gradfit.data.synthetic import load_builtin as load

    return load(name, **kwargs)


def _read_builtin(path: str) -> pd.DataFrame:
    name, _, query = path[len("builtin:") :].partition("?")
    kwargs: dict[str, float] = {}  # int where the text is one
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


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(p)
        check_duplicates(p, list(file.schema_arrow.names))
        df = file.read().to_pandas()
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:  # many types for a damaged file, one meaning here
        raise parquet_error(p, err) from None
    check_rows(p, df)
    return df


def parquet_error(p: Path, err: BaseException) -> DataError:
    """The DataError for a Parquet file pyarrow cannot read (truncated, corrupt, or text), whichever reader met it."""
    reason = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
    head = _head(p)
    if not head.startswith(b"PAR1") and b"\x00" not in head:
        reason += ". It looks like text: if it is CSV, name the file .csv"
    return DataError(
        f"Cannot read {str(p)!r} as Parquet: {reason}. The file is truncated or corrupt; "
        "export it again (e.g. df.to_parquet(...)) or check that it is really a Parquet file."
    )


def _head(p: Path, size: int = 1024) -> bytes:
    with open(p, "rb") as f:
        return f.read(size)
