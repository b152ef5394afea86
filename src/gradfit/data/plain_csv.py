"""A plain numeric CSV file read without pandas: the common case of a command-line fit.

Why: importing pandas costs a ``gradfit fit`` of a small file about a quarter of a second, more
than the rest of its own work. A file written as ``x,y`` then rows of plain numbers (comma
separated, point decimals, UTF-8, no quotes, blanks, empty fields or other text) needs none of
pandas' parser: it is split and each field converted with Python's ``float`` (correctly rounded,
as pandas' converter is for such fields). Anything else - and every file that would give an
error or a note - returns None and is read by :func:`gradfit.data.csv_reader.read_csv`'s pandas
path as before, so messages and results stay the same (tests/data/test_plain_csv.py checks that
both paths give the same Dataset, to the bit).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

__all__ = ["PLAIN_MAX_BYTES", "NumberTable", "read_plain_csv"]

# Bigger files go to pandas, whose C parser is faster per row; start-up matters for small ones.
PLAIN_MAX_BYTES = 2**20
# A number as pandas' C parser reads it into a float or int column: no blanks, underscores, inf or nan, and ASCII
# digits only (Python's float() also takes other scripts' digits, '١٢', which pandas reads as text).
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_INT_DIGITS = 15  # longer integers: an int64 or uint64 column (or text) in pandas, left to it
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"[^\s\"',;|]+(?: [^\s\"',;|]+)*")  # no quotes, separators or blanks at either end


class NumberTable:
    """Named float64 columns and the ``attrs`` a read records: what :func:`gradfit.data.io.open_data`
    returns for a plain numeric CSV file, in place of a DataFrame (``as_dataset`` takes either)."""

    def __init__(self, names: list[str], values: np.ndarray):
        self.columns = list(names)
        self.values = values  # rows x columns, float64
        self.attrs: dict = {}

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


def read_plain_csv(p: Path, names: list[str]) -> NumberTable | None:
    """The table in ``p`` (comma-separated, UTF-8, a header ``names`` already split and checked), or None
    when any line is not plain numbers: then pandas reads the file as before."""
    if p.stat().st_size > PLAIN_MAX_BYTES or not names or not all(_NAME.fullmatch(n) for n in names):
        return None
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:  # a lone carriage return: pandas ends a line there, split() would not
            return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or lines[0].split(",") != names:
        return None
    width = len(names)
    rows = [line.split(",") for line in lines[1:]]
    if any(len(row) != width for row in rows):  # blank lines and ragged rows: pandas' rules and messages
        return None
    values = np.empty((len(rows), width), dtype=np.float64)
    for j in range(width):
        fields = [row[j] for row in rows]
        ints = [bool(_INT.fullmatch(f)) for f in fields]
        if any(i and len(f.lstrip("+-")) > _INT_DIGITS for i, f in zip(ints, fields)):
            return None
        if all(ints):  # an int64 column in pandas, so -0 is 0
            values[:, j] = [float(int(f)) for f in fields]
        elif all(_FLOAT.fullmatch(f) for f in fields):
            values[:, j] = [float(f) for f in fields]
        else:
            return None
    if not all(math.isfinite(v) for v in values.flat):  # 1e999: reported by the general path
        return None
    return NumberTable(names, values)
