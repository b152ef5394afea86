"""Tables of many columns (thousands to millions) read as one block of numbers, in about a second.

pandas builds a table column by column, at a cost of about 0.1 ms per column whatever the rows:
a file of 10^6 columns took minutes before anything else happened. A wide table of plain
numbers (a separator, a ``.`` decimal mark, no text, no empty field) is read here with NumPy's
C reader into one float64 array, and becomes a DataFrame of one block, which costs nothing per
column. A few text columns (a name, an id: those whose first value is not a number) are read by
pandas alone, the numbers still in one block. A wide table this cannot read (text further down,
missing values, ragged rows) returns None, and the usual reader reads it and reports what it finds.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

from gradfit.data.read_options import WHITESPACE
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = ["WIDE_COLUMNS", "read_numbers"]

#: A table with more columns than this is first tried as one block of numbers.
WIDE_COLUMNS = 2_000
#: A wide table with more text columns than this (judged by its first row) is left to pandas.
MAX_TEXT_COLUMNS = 100


def read_numbers(
    opener, encoding: str, sep: str, names: list[str], skip: int, first_row: list[str] | None = None
) -> pd.DataFrame | None:
    """The rows after the first ``skip`` lines as a float64 frame with columns ``names``, or None.

    ``opener`` opens the file's (decompressed) bytes; ``skip`` counts the blank lines before the
    header and the header itself. ``first_row``, the fields of the first data row, tells the few
    text columns of a table of numbers (a name or an id): those are read by pandas alone, the
    numbers still in one block.
    """
    values = _block(opener, encoding, sep, skip)
    if values is None and first_row is not None and len(first_row) == len(names):
        return _numbers_and_text(opener, encoding, sep, names, skip, first_row)
    if values is None or values.shape[1] != len(names):
        return None
    return pd.DataFrame(values, columns=pd.Index(names, dtype=object), copy=False)


def _block(opener, encoding: str, sep: str, skip: int, usecols=None) -> np.ndarray | None:
    """The numbers after ``skip`` lines (in columns ``usecols``) as one float64 array; None where one is not."""
    try:
        with opener() as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": check_rows says it better
            # newline=None: \r, \r\n and \n all end a line, as for pandas.
            text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline=None)
            return np.loadtxt(
                text,
                delimiter=None if sep == WHITESPACE else sep,
                skiprows=skip,
                comments=None,
                quotechar='"',
                dtype=np.float64,
                ndmin=2,
                usecols=usecols,
            )
    except (ValueError, UnicodeDecodeError):  # text, an empty field, a ragged row...: the usual reader says which
        return None


def _numbers_and_text(
    opener, encoding: str, sep: str, names: list[str], skip: int, first_row: list[str]
) -> pd.DataFrame | None:
    text = [i for i, v in enumerate(first_row) if not _is_number(v)]
    if not text or len(text) > MAX_TEXT_COLUMNS:
        return None
    taken = set(text)
    numeric = [i for i in range(len(names)) if i not in taken]
    values = _block(opener, encoding, sep, skip, usecols=numeric)
    if values is None:  # text or an empty field further down: the usual reader reports it
        return None
    try:
        with opener() as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            words = pd.read_csv(
                raw,
                sep=r"\s+" if sep == WHITESPACE else sep,
                header=None,
                skiprows=skip,
                usecols=text,
                encoding=encoding,
                index_col=False,
                engine="c",
                skip_blank_lines=False,
            )
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return None
    if len(words) != len(values):  # blank lines between rows: counted differently; the usual reader decides
        return None
    frame = pd.DataFrame(values, columns=pd.Index([names[i] for i in numeric], dtype=object), copy=False)
    words.columns = pd.Index([names[i] for i in text], dtype=object)
    return pd.concat([frame, words], axis=1)[names]


def _is_number(field: str) -> bool:
    try:
        float(field.strip().strip('"'))
    except ValueError:
        return False
    return True
