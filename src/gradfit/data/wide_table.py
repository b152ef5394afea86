"""Tables of many columns (thousands to millions) read as one block of numbers, in about a second.

pandas builds a table column by column, at a cost of about 0.1 ms per column whatever the rows:
a file of 10^6 columns took minutes before anything else happened. A wide table of plain
numbers (a separator, a ``.`` decimal mark, no text, no empty field) is read here with NumPy's
C reader into one float64 array, and becomes a DataFrame of one block, which costs nothing per
column. A wide table this cannot read (text, missing values, ragged rows) returns None, and the
usual reader reads it and reports what it finds.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd

from gradfit.data.read_options import WHITESPACE

__all__ = ["WIDE_COLUMNS", "read_numbers"]

#: A table with more columns than this is first tried as one block of numbers.
WIDE_COLUMNS = 2_000


def read_numbers(opener, encoding: str, sep: str, names: list[str], skip: int) -> pd.DataFrame | None:
    """The rows after the first ``skip`` lines as a float64 frame with columns ``names``, or None.

    ``opener`` opens the file's (decompressed) bytes; ``skip`` counts the blank lines before the
    header and the header itself.
    """
    try:
        with opener() as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": check_rows says it better
            # newline=None: \r, \r\n and \n all end a line, as for pandas.
            text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline=None)
            values = np.loadtxt(text, delimiter=None if sep == WHITESPACE else sep, skiprows=skip, comments=None,
                                quotechar='"', dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError):  # text, an empty field, a ragged row...: the usual reader says which
        return None
    if values.shape[1] != len(names):
        return None
    return pd.DataFrame(values, columns=pd.Index(names, dtype=object), copy=False)
