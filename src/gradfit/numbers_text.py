"""Small tables of numbers as CSV text in pure Python: byte for byte what :mod:`gradfit.numbers_csv` writes.

Why: Arrow's writer is fast per row, but importing pyarrow (which imports pandas when it converts
NumPy arrays) costs a command-line fit about 0.4 s; the ``history.csv`` and ``timings.csv`` of a
small fit hold a few hundred numbers. :func:`gradfit.outputs.save_run` writes tables of up to
:data:`SMALL_TABLE_NUMBERS` numbers here, larger ones with Arrow. Floats are written as Arrow writes
them: the shortest text that reads back to the same float64, in fixed notation for decimal exponents
-6 to 9 and ``1.5e+10`` / ``1e-7`` beyond; ``-0``, ``inf``, ``-inf``, NaN as an empty field.
tests/test_numbers_text.py checks the bytes against Arrow's. A leaf: it imports nothing of gradfit.
"""

from __future__ import annotations

import csv
import io
import math
import os

__all__ = ["SMALL_TABLE_NUMBERS", "format_float", "write_small_numbers_csv"]

#: Tables of at most this many numbers are written in Python (about 0.1 s at most), larger ones by Arrow.
SMALL_TABLE_NUMBERS = 50_000


def format_float(x: float) -> str:
    """``x`` as Arrow's CSV writer formats a float64 (see the module's docstring)."""
    if x != x:
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    mantissa, _, power = repr(abs(x)).partition("e")  # repr: the shortest round-trip digits
    whole, _, fraction = mantissa.partition(".")
    all_digits = (whole + fraction).lstrip("0")  # value = all_digits * 10**(power - len(fraction))
    digits = all_digits.rstrip("0")
    exponent = int(power or 0) - len(fraction) + len(all_digits) - len(digits)  # value = digits * 10**exponent
    lead = exponent + len(digits) - 1  # the decimal exponent of the first digit
    minus = "-" if x < 0 else ""
    if -6 <= lead <= 9:
        if exponent >= 0:
            return minus + digits + "0" * exponent
        point = len(digits) + exponent
        if point > 0:
            return minus + digits[:point] + "." + digits[point:]
        return minus + "0." + "0" * -point + digits
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{minus}{mantissa}e{'+' if lead >= 0 else '-'}{abs(lead)}"


def write_small_numbers_csv(table, path: str | os.PathLike) -> bool:
    """Write ``table`` (as :func:`gradfit.numbers_csv.write_numbers_csv` takes it) as CSV text, or return False
    without writing when it is not small or holds columns other than int64 and float64 (Arrow writes those)."""
    n_rows, n_cols = len(table), len(table.names)
    if n_cols == 0 or n_rows * n_cols > SMALL_TABLE_NUMBERS:
        return False
    columns = table.rows(0, n_rows)
    if any(c.dtype.kind not in "if" or c.dtype.itemsize != 8 for c in columns):
        return False
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.names)  # quoted as pandas would, where needed
    text = [
        [str(v) for v in c.tolist()] if c.dtype.kind == "i" else list(map(format_float, c.tolist())) for c in columns
    ]
    body = "".join(",".join(row) + "\n" for row in zip(*text))
    with open(path, "wb") as f:
        f.write((header.getvalue() + body).encode("utf-8"))
    return True
