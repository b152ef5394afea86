"""as_dataset: any table-like input becomes a checked ``Dataset``, or one DataError listing every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gradfit.data.columns import FrameColumns, Table, column, finite_sum, plural
from gradfit.data.dataset import Dataset
from gradfit.data.io import FIRST_ROW_ATTR, NUMBERS_ATTR, ROW_LABEL_ATTR, SOURCE_ATTR, read_table
from gradfit.data.plain_csv import NumberTable
from gradfit.data.spelling import suggest
from gradfit.data.weights import check_values, to_weights, weight_options, weights_column, where_weights
from gradfit.errors import ConfigError, DataError
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = ["as_dataset"]

_FLOATS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
_NAN_FIX = "Clean the data or pass drop_nan=True (--drop-nan on the command line) to drop those rows."


def as_dataset(
    data,
    x=None,
    y=None,
    *,
    dtype=torch.float32,
    drop_nan: bool = False,
    source: str | None = None,
    min_rows: int = 2,
    report: list | None = None,
    sigma=None,
    weights=None,
    absolute_sigma: bool = False,
) -> Dataset:
    """Check ``data`` once and turn it into a ``Dataset`` of float tensors.

    Parameters
    ----------
    data : path, str, DataFrame, dict, array, tensor, tuple or Dataset
        A file path or ``"builtin:NAME"`` (read with ``read_table``); a DataFrame; a dict of
        1-D arrays; a 1-D or 2-D numpy array or tensor (columns ``x`` or ``x0, x1, ...``);
        a tuple ``(X, y)``; or a Dataset to re-select or cast.
    x : None, str or list of str
        Input columns: all but ``y`` when None; ``"x1,x2"`` is split at commas. For an
        array, names for its columns.
    y : None, str or array
        Target column name, or the targets themselves; None means no targets (for a
        Dataset, keep its targets).
    dtype : torch.dtype
        Floating dtype of the result (float32 default; float64 for accuracy).
    drop_nan : bool
        Drop rows with NaN in the used columns instead of reporting them.
    source : str, optional
        Name of the data in messages; defaults to the path or the kind of input.
    min_rows : int
        Fewest rows accepted.
    report : list, optional
        Receives human-readable notes, e.g. ``"dropped 3 rows with missing values (rows 4, 9, 12)"``.
    sigma : None, str or array
        The targets' standard deviations (as ``curve_fit``'s ``sigma``): a column name or one value
        per row, each > 0. The rows are weighted by ``1/sigma²`` (``Dataset.w``).
    weights : None, str or array
        Row weights >= 0 (as scikit-learn's ``sample_weight``), not all 0: a column name or one
        value per row. Exclusive with ``sigma``. A Dataset keeps its own weights when neither is given.
    absolute_sigma : bool
        The sigmas are absolute (recorded in ``Dataset.weighting`` for the uncertainties).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Listing every problem found, one per line, each with its fix.

    Examples
    --------
    >>> ds = as_dataset({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 5.0]}, y="y")
    >>> ds.x.shape, ds.x_names, ds.y_name
    (torch.Size([3, 1]), ('x',), 'y')
    """
    dtype = _check_dtype(dtype)
    asked = weight_options(sigma, weights, absolute_sigma)
    table = _table(data, x, y, source)
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
        y = str(y)  # a DataFrame column named by an integer
    elif y is not None and not isinstance(y, str):
        y = _add_targets(table, y)
    kind, weighting, w_name = weights_column(table, asked, absolute_sigma, data)
    x_names, y_name = _select(table, x, y)
    src, problems = table.source, table.problems
    if w_name is not None and w_name not in table.columns:
        problems.append(_unknown_weights(table, w_name, kind))
        w_name = None
    elif w_name is not None and x is None and w_name in x_names:  # row weights are not an input of the model
        x_names.remove(w_name)
        if not x_names:
            problems.append(
                f"{src}: no input (x) columns are left besides the target and the {kind}. Name at least one with x=."
            )
    used = x_names + ([y_name] if y_name else []) + ([w_name] if w_name else [])
    _check_memory(table, list(dict.fromkeys(used)), dtype)
    tensors = {n: t for n in dict.fromkeys(used) if (t := column(table, n, dtype)) is not None}
    if w_name in tensors:
        assert weighting is not None  # weights_column gives a record with every column it names
        problems += check_values(kind, tensors[w_name], where_weights(table, w_name, kind, weighting), table.where)
    lengths = {n: t.shape[0] for n, t in tensors.items()}
    note, same_length = None, len(set(lengths.values())) == 1
    if lengths and not same_length:
        sizes = ", ".join(f"'{n}' has {k}" for n, k in lengths.items())
        problems.append(
            f"{src}: columns have different lengths ({sizes} rows). Give every column the same number of rows."
        )
    elif lengths:
        tensors, note = _missing(table, tensors, drop_nan)
        n_rows = next(iter(tensors.values())).shape[0]
        if n_rows < min_rows:
            after = " after dropping the rows with missing values" if note else ""
            problems.append(
                f"{src}: {plural(n_rows, 'row')}{after}, but at least {min_rows} are needed. Give more data."
            )
    w = None
    if w_name in tensors and not problems:
        assert weighting is not None  # as above
        w, bad = to_weights(kind, tensors[w_name], dtype, where_weights(table, w_name, kind, weighting))
        problems += bad
    if problems:
        head = f"Cannot use the data from {src}: {plural(len(problems), 'problem')}:"
        raise DataError("\n".join([head] + [f"  - {p}" for p in problems]))
    if note is not None:
        src = f"{src} ({note})"
        if report is not None:
            report.append(note)
    # One input: the column, already this dataset's own copy, as (n, 1); several: stacked into a new buffer.
    alone = len(x_names) == 1 and x_names[0] not in (y_name, w_name)
    X = tensors[x_names[0]][:, None] if alone else torch.stack([tensors[n] for n in x_names], dim=1)
    return Dataset(
        x=X,
        y=tensors[y_name] if y_name else None,
        x_names=tuple(x_names),
        y_name=y_name,
        source=src,
        w=w,
        weighting=weighting if w is not None else None,
    )


def _unknown_weights(table: Table, name: str, kind: str) -> str:
    names = list(table.columns)
    close = suggest(name, names)
    hint = f" Did you mean '{close}'?" if close else ""
    return (
        f"{table.source}: {kind} column '{name}' not found. Available columns: "
        f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}.{hint}"
    )


def _missing(table: Table, tensors: dict, drop_nan: bool) -> tuple[dict, str | None]:
    """Drop the rows with NaN (and say which), or record one problem per column that has any."""
    # A column whose sum is finite has no NaN (nor inf): one read of it, no mask; the others are looked at closely.
    missing = {n: torch.isnan(t) for n, t in tensors.items() if not finite_sum(t)}
    for n, text in table.text_masks.items():  # text was reported already; do not count it twice
        if n in missing:
            missing[n] &= ~text.to(missing[n].device)
    if drop_nan and not missing:
        return tensors, None
    if drop_nan:
        gone = torch.stack(list(missing.values())).any(dim=0)
        dropped = gone.nonzero().flatten().tolist()
        if not dropped:
            return tensors, None
        shown = table.where(dropped[:10]) + (", ..." if len(dropped) > 10 else "")
        note = f"dropped {plural(len(dropped), 'row')} with missing values ({shown})"
        return {n: t[~gone] for n, t in tensors.items()}, note
    for n, mask in missing.items():
        if mask.any():
            pos = mask.nonzero().flatten()
            more = ", ..." if len(pos) > 5 else ""
            table.problems.append(
                f"{table.source}, column '{n}': {plural(len(pos), 'missing value')} "
                f"(NaN or empty) at {table.where(pos[:5].tolist())}{more}. {_NAN_FIX}"
            )
    return tensors, None


def _check_memory(table: Table, used: list[str], dtype: torch.dtype) -> None:
    """Refuse, before any column is converted, columns whose tensors the memory budget cannot hold."""
    from gradfit.memory import require

    rows = 0
    for name in used:
        try:
            rows = max(rows, len(table.columns[name]))
        except (KeyError, TypeError):
            continue
    itemsize = torch.finfo(dtype).bits // 8
    # Each column becomes a tensor of ``dtype``, through one float64 copy of a column at a time.
    require(
        [
            (
                f"{len(used)} column{'s' if len(used) != 1 else ''} of {rows:,} rows in {str(dtype).replace('torch.', '')}",
                float(rows) * len(used) * itemsize,
            ),
            ("a float64 copy of one column", 8.0 * rows),
        ],
        f"the data from {table.source}",
        "Use fewer rows or columns.",
    )


def _check_dtype(dtype) -> torch.dtype:
    resolved = _FLOATS.get(dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ConfigError(
            f"The 'dtype' parameter must be a floating torch dtype such as torch.float32 or "
            f"torch.float64. Got {dtype!r} instead."
        )
    return resolved


def _table(data, x, y, source) -> Table:
    if isinstance(data, (str, os.PathLike)):
        return _from_frame(read_table(data), source, str(data))
    if isinstance(data, NumberTable):  # before the pandas types: asking about them imports pandas
        return _from_numbers(data, source)
    if isinstance(data, Dataset):
        cols = {n: data.x[:, i] for i, n in enumerate(data.x_names)}
        y_name = None
        if data.y is not None:
            y_name = data.y_name if data.y_name and data.y_name not in cols else _free_name(cols)
            cols[y_name] = data.y
        return Table(cols, source or data.source, default_x=list(data.x_names), default_y=y_name)
    if isinstance(data, pd.DataFrame):
        return _from_frame(data, source, "DataFrame")
    if isinstance(data, pd.Series):
        return Table({str(data.name) if data.name is not None else "x": data}, source or "Series")
    if isinstance(data, Mapping):
        return Table({str(k): v for k, v in data.items()}, source or "dict")
    if isinstance(data, tuple):
        if len(data) != 2:
            raise DataError(f"A tuple of data must be (X, y). Got a tuple of {len(data)} items instead.")
        if y is not None:
            raise DataError("The targets were given twice: in the (X, y) tuple and as y=. Pass them only once.")
        table = _from_array(data[0], x, source or "(X, y) tuple")
        table.default_y = _free_name(table.columns)
        table.columns[table.default_y] = _targets(data[1])
        return table
    if isinstance(data, (np.ndarray, Tensor, list)):
        return _from_array(data, x, source or ("tensor" if isinstance(data, Tensor) else "array"))
    raise DataError(
        f"Cannot use data of type {type(data).__name__}. Expected a file path, 'builtin:NAME', a "
        "DataFrame, a dict of 1-D arrays, a 2-D array or tensor, an (X, y) tuple or a Dataset."
    )


def _from_frame(df: pd.DataFrame, source, default: str) -> Table:
    attrs = df.attrs  # set by read_table, so a frame read first still names its file and lines
    names = [str(c) for c in df.columns]
    table = Table({}, source or attrs.get(SOURCE_ATTR, default))
    default_index = isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
    if ROW_LABEL_ATTR in attrs and default_index:
        table.row_label, table.first_row = attrs[ROW_LABEL_ATTR], attrs.get(FIRST_ROW_ATTR, 0)
    table.decimal, table.thousands = attrs.get(NUMBERS_ATTR, (".", None))
    table.columns = FrameColumns(df, names)
    for name in table.columns.repeated:
        table.problems.append(
            f"{table.source}: the column name '{name}' appears more than once. Give every column a unique name."
        )
    return table


def _from_numbers(numbers: NumberTable, source) -> Table:
    """A plain numeric CSV file read without pandas: its columns, named and numbered as :func:`_from_frame` does."""
    attrs = numbers.attrs
    table = Table({name: numbers.column(name) for name in numbers.columns}, source or attrs[SOURCE_ATTR])
    table.row_label, table.first_row = attrs[ROW_LABEL_ATTR], attrs.get(FIRST_ROW_ATTR, 0)
    table.decimal, table.thousands = attrs.get(NUMBERS_ATTR, (".", None))
    return table


def _from_array(X, x, source: str) -> Table:
    X = X if isinstance(X, Tensor) else np.asarray(X)
    if X.ndim not in (1, 2):
        raise DataError(f"{source}: inputs must be a 1-D or 2-D array. Got shape {tuple(X.shape)} instead.")
    defaults = ["x"] if X.ndim == 1 else [f"x{i}" for i in range(X.shape[1])]
    wanted = _names(x) if x is not None else []
    if wanted and len(wanted) == len(defaults) and not set(wanted) <= set(defaults):
        defaults = wanted  # x names the array's columns
    cols = {n: (X if X.ndim == 1 else X[:, i]) for i, n in enumerate(defaults)}
    return Table(cols, source)


def _free_name(cols) -> str:
    return next(n for n in ("y", "target", "y_") if n not in cols)


def _targets(y):
    values = y.detach() if isinstance(y, Tensor) else y if isinstance(y, pd.Series) else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:  # an (n, 1) column is a common way to hold targets
        values = values[:, 0]
    return values


def _add_targets(table: Table, y) -> str:
    name = _free_name(table.columns)
    table.columns[name] = _targets(y)
    return name


def _names(x) -> list[str]:
    if isinstance(x, str):
        return [part.strip() for part in x.split(",") if part.strip()]
    return [str(n) for n in x]


def _select(table: Table, x, y) -> tuple[list[str], str | None]:
    names, problems, src = list(table.columns), table.problems, table.source
    y_name = table.default_y if y is None else str(y)
    if y_name is not None and y_name not in names:
        problems.append(column_not_found(y_name, "target (y)", names, src))
        y_name = None
    if x is None:
        x_names = [n for n in (table.default_x or names) if n != y_name and n != y]
        if not x_names and not problems:
            problems.append(f"{src}: no input (x) columns are left. Name at least one with x=.")
        return x_names, y_name
    return input_names(x, names, y_name, src, problems), y_name


def column_not_found(name: str, role: str, names: list[str], src: str) -> str:
    """The problem of a ``role`` column ``name`` that is not among ``names``: the columns there are, a near name,
    and a file without a header when every column name is a number."""
    close = suggest(name, names)
    hint = f" Did you mean '{close}'?" if close else ""
    if names and all(_numeric_name(n) for n in names):
        hint += (
            " The first line holds numbers, so the file probably has no header: read it with --no-header "
            "(library: read={'header': False}); its columns are then c1, c2, ..."
        )
    return (
        f"{src}: {role} column '{name}' not found. Available columns: "
        f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}.{hint}"
    )


def input_names(x, names: list[str], y: str | None, src: str, problems: list[str]) -> list[str]:
    """The input columns ``x`` asks for (names, or one string split at commas) among ``names``; each one missing,
    the target's or listed twice adds its problem to ``problems``, and so does none left."""
    x_names: list[str] = []
    for n in _names(x):
        if n not in names:
            problems.append(column_not_found(n, "input (x)", names, src))
        elif n == y:
            problems.append(f"{src}: column '{n}' is both the target (y) and an input (x). Remove it from x.")
        elif n in x_names:
            problems.append(f"{src}: input (x) column '{n}' is listed twice. List it once.")
        else:
            x_names.append(n)
    if not x_names and not problems:
        problems.append(f"{src}: no input (x) columns are left. Name at least one with x=.")
    return x_names


def _numeric_name(name: str) -> bool:
    try:
        float(str(name).replace(",", "."))
    except ValueError:
        return False
    return True
