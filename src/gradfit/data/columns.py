"""Columns at the door: one named column to a float tensor, recording every problem found.

``Table`` holds the raw columns and gathers problems (one line each, naming the source,
column and rows) so that ``as_dataset`` can report them all at once.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gradfit.data.lines import LineNumbers, row_numbers
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

_DATE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\d{1,2}:\d{2})")


@dataclass
class Table:
    """Named 1-D columns (Series, arrays or tensors) before any check, and how to name their rows."""

    columns: MutableMapping
    source: str
    row_label: str = "row"  # "line" when positions map to lines of a CSV file
    first_row: int | LineNumbers = 0  # the number of position 0, or the lines of a text file's rows
    default_x: list | None = None
    default_y: str | None = None
    decimal: str = "."  # how a text file wrote its numbers, so a bad value is told from a good one
    thousands: str | None = None
    problems: list = field(default_factory=list)
    text_masks: dict = field(default_factory=dict)  # positions holding text, so they are not also counted as NaN

    def where(self, positions) -> str:
        """``"line 5"`` or ``"rows 3, 4"``: positions as the user counts them."""
        nums = [str(n) for n in row_numbers(self.first_row, positions)]
        return f"{self.row_label}{'s' if len(nums) > 1 else ''} {', '.join(nums)}"


class FrameColumns(MutableMapping):
    """A DataFrame's columns by name, each taken out of the frame only when it is used.

    A wide file has up to millions of columns and a fit uses a few; taking each out costs about
    0.1 ms. A name given twice maps to its first column and is listed in ``repeated``; columns
    added later (targets, weights given as values) are kept apart from the frame's.
    """

    def __init__(self, df: pd.DataFrame, names: list[str]):
        self._df = df
        self._added: dict[str, object] = {}
        self._pos = dict(zip(names, range(len(names))))
        self.repeated: list[str] = []
        if len(self._pos) != len(names):  # the first of a repeated name wins
            self._pos = {}
            for i, n in enumerate(names):
                if self._pos.setdefault(n, i) != i and n not in self.repeated:
                    self.repeated.append(n)

    def __getitem__(self, name):
        if name in self._added:
            return self._added[name]
        return self._df.iloc[:, self._pos[name]]

    def __setitem__(self, name, value) -> None:
        self._added[name] = value

    def __delitem__(self, name) -> None:
        del self._added[name]

    def __contains__(self, name) -> bool:
        return name in self._added or name in self._pos

    def __iter__(self):
        yield from self._pos
        yield from (n for n in self._added if n not in self._pos)

    def __len__(self) -> int:
        return len(self._pos) + sum(1 for n in self._added if n not in self._pos)


def plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def column(table: Table, name: str, dtype: torch.dtype) -> Tensor | None:
    """One column as a 1-D float tensor of ``dtype`` (a copy), or None after recording why not."""
    col, src, problems = table.columns[name], table.source, table.problems
    where = f"{src}, column '{name}'"
    values: Tensor | pd.Series | np.ndarray
    if isinstance(col, Tensor):
        values = col.detach()
    elif isinstance(col, np.ndarray):  # before pd.Series: asking about it imports pandas
        values = col
    elif isinstance(col, pd.Series):
        values = col
    else:
        values = np.asarray(col)
    if values.ndim != 1:
        problems.append(f"{where}: expected a 1-D column. Got shape {tuple(values.shape)} instead.")
        return None
    kind = _kind(values)
    if kind == "complex":
        problems.append(f"{where}: holds complex numbers. Fit the real and imaginary parts as separate columns.")
        return None
    if kind == "datetime":
        problems.append(
            f"{where}: holds dates or times ({values.dtype}), not numbers. gradfit.fit converts them "
            "itself (to a unit since an origin, stated in a note); here convert them first with "
            "gradfit.data.dates.convert_dates(df, {'" + name + "': {}})."
        )
        return None
    if isinstance(values, Tensor):
        source_tensor = values
    elif kind == "number":
        arr = values if isinstance(values, np.ndarray) else values.to_numpy()
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        source_tensor = _from_numpy(arr)
    elif kind == "nullable":
        assert isinstance(values, pd.Series)  # an array's dtype is NumPy's: only a Series has a nullable one
        source_tensor = _from_numpy(values.to_numpy(dtype="float64", na_value=np.nan))
    else:
        return _text_column(table, name, values, dtype)
    out = source_tensor.to(dtype=dtype, copy=True)
    _check_inf(table, name, out, source_tensor)
    return out


def _from_numpy(arr: np.ndarray) -> Tensor:
    with warnings.catch_warnings():  # read-only arrays are fine: every caller copies before handing out
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def _kind(values) -> str:
    dt = values.dtype
    if isinstance(values, Tensor):
        return "complex" if values.is_complex() else "number"
    if isinstance(dt, np.dtype) and dt.kind in "biufc":  # NumPy's own answer, without importing pandas
        return "complex" if dt.kind == "c" else "number"
    if pd.api.types.is_complex_dtype(dt):
        return "complex"
    if (
        pd.api.types.is_datetime64_any_dtype(dt)
        or pd.api.types.is_timedelta64_dtype(dt)
        or isinstance(dt, pd.PeriodDtype)
    ):
        return "datetime"
    if isinstance(dt, np.dtype):
        return "number" if dt.kind in "biuf" else "text"
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
        return "nullable"
    return "text"


def _text_column(table: Table, name: str, values, dtype: torch.dtype) -> Tensor | None:
    s = pd.Series(np.asarray(values, dtype=object))
    missing = s.isna().to_numpy()
    try:
        num = pd.to_numeric(_plain_numbers(s, table), errors="coerce")
    except (TypeError, ValueError):  # objects such as lists, which to_numeric refuses even when coercing
        num = pd.to_numeric(s.map(lambda v: v if isinstance(v, (str, int, float, bool)) else None), errors="coerce")
    if pd.api.types.is_complex_dtype(num.dtype):
        table.problems.append(
            f"{table.source}, column '{name}': holds complex numbers. "
            "Fit the real and imaginary parts as separate columns."
        )
        return None
    text = ~missing & num.isna().to_numpy()
    huge = _huge_numbers(s, text | np.isinf(num.to_numpy(dtype="float64", na_value=np.nan)))
    if huge.any():
        pos = np.flatnonzero(huge)
        value = str(s.iloc[pos[0]]).strip()
        shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
        table.problems.append(
            f"{table.source}, column '{name}': {plural(len(pos), 'number')} too large for float64 "
            f"(the first at {table.where([pos[0]])}: {shown}, {len(value):,} characters). "
            "Check how the file was made; numbers must be below 1.8e308."
        )
        text &= ~huge
        num[huge] = np.nan  # reported here, so neither text nor inf again
    if text.any():
        pos = np.flatnonzero(text)
        value = str(s.iloc[pos[0]])
        shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
        fix = (
            f"It looks like dates or times: read the column as dates with --dates {name} (library: "
            f"read={{'dates': [{name!r}]}}), which converts them to a stated unit since an origin"
            if _DATE.match(value)
            else f"Fix or remove those values, or leave '{name}' out of the columns used"
        )
        table.problems.append(
            f"{table.source}, column '{name}': text in a number column "
            f"({plural(len(pos), 'value')}, the first at {table.where([pos[0]])}: {shown}). {fix}."
        )
    source_tensor = _from_numpy(num.to_numpy(dtype="float64", na_value=np.nan))
    out = source_tensor.to(dtype=dtype, copy=True)
    table.text_masks[name] = torch.from_numpy(text | huge)
    _check_inf(table, name, out, source_tensor)
    return out


def _plain_numbers(s: pd.Series, table: Table) -> pd.Series:
    """Text numbers as Python writes them, from the file's decimal mark and thousands separator."""
    if table.decimal == "." and table.thousands is None:
        return s
    text = s.map(lambda v: v if not isinstance(v, str) else v.strip())
    is_text = text.map(lambda v: isinstance(v, str))
    if not is_text.any():
        return s
    t = text[is_text].astype(str)
    if table.thousands is not None:
        # Only where the grouping is well formed (1.234.567,5), so '1.5' in a decimal-comma file stays an error.
        d = re.escape(table.decimal)
        grouped = t.str.fullmatch(rf"[+-]?\d{{1,3}}({re.escape(table.thousands)}\d{{3}})+({d}\d*)?")
        t = t.where(~grouped, t.str.replace(table.thousands, "", regex=False))
    if table.decimal != ".":
        t = t.where(t.str.contains(".", regex=False), t.str.replace(table.decimal, ".", regex=False))
    out = text.copy()
    out[is_text] = t
    return out


def _huge_numbers(s: pd.Series, candidates: np.ndarray) -> np.ndarray:
    """Where a value written as digits (not 'inf') overflows float64, e.g. a field of a million 9s."""
    out = np.zeros(len(s), dtype=bool)
    for i in np.flatnonzero(candidates)[:10_000]:  # bounded: this is for messages, not for parsing
        value = s.iloc[i]
        if isinstance(value, str) and "inf" not in value.lower():
            try:
                out[i] = math.isinf(float(value))
            except ValueError:
                pass
    return out


def finite_sum(t: Tensor) -> bool:
    """Whether ``t`` is a float tensor whose sum is finite, which proves every value of it finite (no NaN, no inf)."""
    return t.is_floating_point() and t.numel() > 0 and math.isfinite(float(t.sum()))


def _check_inf(table: Table, name: str, out: Tensor, source_tensor: Tensor) -> None:
    if finite_sum(out):
        return  # no inf among its values: one read of the column, no mask of it
    inf = torch.isinf(out)
    if not inf.any():
        return
    # A finite source value that became inf did not fit in the narrower dtype.
    overflow = inf & ~torch.isinf(source_tensor.to(out.device)) if source_tensor.is_floating_point() else inf
    kind = str(out.dtype).replace("torch.", "")
    for mask, what, fix in [
        (overflow, f"too large for {kind}", "Fit in float64: dtype='float64' (--dtype float64)"),
        (inf & ~overflow, "infinite (inf or -inf)", "Replace or remove them; a fit needs finite numbers"),
    ]:
        if mask.any():
            pos = mask.nonzero().flatten()
            table.problems.append(
                f"{table.source}, column '{name}': {plural(len(pos), 'value')} {what} at "
                f"{table.where(pos[:5].tolist())}{', ...' if len(pos) > 5 else ''}. {fix}."
            )
