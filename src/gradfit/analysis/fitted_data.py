"""The data a saved run was fitted on, read again for pictures and analyses."""

from __future__ import annotations

import numbers
import os
import warnings
from typing import TYPE_CHECKING, Any, TypeGuard

import torch

from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.dates import apply_dates
from gradfit.data.fingerprint import dataset_fingerprint
from gradfit.data.io import read_like, read_table
from gradfit.data.weights import Weighting
from gradfit.errors import ConfigError, DataError, GradfitWarning
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: the analyses of a fit need chunk_size_of, not pandas
    pd = LazyModule("pandas")


def run_data(result, data: Any = None, weighted: bool = False) -> Dataset:
    """The inputs and targets of ``result``'s fit as a :class:`Dataset` (all rows, the fit's dtype).

    Parameters
    ----------
    result : FitResult
        Its ``data`` record names the columns (``x``, ``y``, and ``weights``: the sigma or weights
        column, with ``absolute_sigma``) and where the data came from.
    data : optional
        Anything :func:`gradfit.fit` accepts. Needed when the fit was given data in memory
        (a DataFrame or arrays); otherwise the file or built-in dataset is read again. A
        :class:`Dataset` keeps its own weights.
    weighted : bool
        The caller needs the fit's row weights (statistics, uncertainties): raise DataError when
        the fit was weighted by an array, which a saved run cannot read again. Without it such a
        run's data come back unweighted (enough for pictures of the data).

    Data read again from the run's file must be the data of the fit (DataError otherwise), and
    data passed in that are not get a warning: see :func:`check_same_data`.
    """
    info = result.data
    source = None  # where the data were read again from, when they were not passed in
    if data is None and info.get("stream") and info.get("path"):
        return streamed_sample(result)
    if data is None:
        path = info.get("path")
        if not path:
            raise DataError(
                f"This run was fitted on data held in memory ({info.get('source', 'unknown')}), which was not saved. "
                f"Pass the data again: data=... in Python, --data FILE on the command line."
            )
        source = path
        try:
            data = read_table(path, **(info.get("read") or {}))  # the same separator, decimal mark, dates...
        except DataError as exc:
            raise DataError(
                f"Cannot read the run's data again from {path!r}: {exc} Pass it with --data FILE."
            ) from None
    elif isinstance(data, (str, os.PathLike)):
        data = read_like(data, info)
    elif isinstance(data, pd.DataFrame):
        data = apply_dates(data, info.get("dates") or {})
    dtype = torch.float64 if info.get("dtype") == "float64" else torch.float32
    how = Weighting.from_dict(info.get("weights"))
    rows: dict[str, Any] = {}  # as_dataset's weights options: the column's name, absolute_sigma
    if how is not None and isinstance(data, Dataset) and data.w is not None:
        pass  # the Dataset's own weights
    elif how is not None and how.column is not None:
        rows = {how.kind: how.column, "absolute_sigma": how.absolute_sigma}
    elif how is not None and weighted:
        raise DataError(
            f"This run was weighted by {how.kind} given as an array, which is not saved with the run, so "
            f"its statistics cannot be recomputed from the data alone. Pass a Dataset with the weights "
            f"(data=Dataset(..., w=...)), or fit with the {how.kind} in a column of the data."
        )
    dataset = as_dataset(
        data,
        x=list(info["x"]),
        y=info["y"],
        dtype=dtype,
        drop_nan=any(str(n).startswith("dropped") for n in info.get("notes") or ()),
        **rows,
    )
    check_same_data(result, dataset, source=source)
    return dataset


#: Rows of a streamed run that its pictures and analyses read again: evenly spaced, so the curve's shape shows.
STREAMED_SAMPLE_ROWS = 100_000


def streamed_sample(result, rows: int = STREAMED_SAMPLE_ROWS) -> Dataset:
    """At most ``rows`` evenly spaced rows of a streamed run's file (``gradfit.fit(..., stream=True)``), in memory:
    a file too large to load is not loaded again to draw a picture."""
    from gradfit.data.file_rows import open_file_rows

    info = result.data
    how = Weighting.from_dict(info.get("weights"))
    column = None if how is None else how.column
    sigma, weights = (column, None) if how is not None and how.kind == "sigma" else (None, column)
    absolute = bool(how is not None and how.absolute_sigma)
    dtype = torch.float64 if info.get("dtype") == "float64" else torch.float32
    drop_nan = any(str(n).startswith("dropped") for n in info.get("notes") or ())
    try:
        rows_set = open_file_rows(
            info["path"],
            list(info["x"]),
            info["y"],
            sigma=sigma,
            weights=weights,
            absolute_sigma=absolute,
            dtype=dtype,
            drop_nan=drop_nan,
        )
    except DataError as exc:
        raise DataError(f"Cannot read the run's data again from {info['path']!r}: {exc}") from None
    if len(rows_set) != info.get("n"):
        raise DataError(
            f"The data in {info['path']!r} are no longer the data this run was fitted on: {len(rows_set):,} rows "
            f"where the fit had {info.get('n')}. Restore the file, or fit again on the data as they are now."
        )
    return rows_set.sample(rows)


def rows_fitted(result, dataset: Dataset) -> int:
    """The rows the fit saw, for a picture's "N of M rows": ``dataset``'s, or a streamed run's whole file when
    ``dataset`` is its sample (:func:`streamed_sample`)."""
    n = result.data.get("n")
    return n if result.data.get("stream") and isinstance(n, int) else len(dataset)


def check_same_data(result, dataset: Dataset, source: str | None = None) -> None:
    """Refuse (``source``: data read again from the run's own file) or warn (data passed in) when ``dataset`` is
    not the data ``result`` was fitted on, by the fingerprint the fit recorded (runs saved before it was recorded
    are not checked).

    Pictures and analyses of a run draw its fitted curve over its data: over data edited since, they would
    show a fit that was never made, without a word.
    """
    expected = result.data.get("fingerprint")
    if not isinstance(expected, str) or dataset_fingerprint(dataset) == expected:
        return
    n = result.data.get("n")
    what = (
        f"{len(dataset):,} rows where the fit had {n:,}"
        if isinstance(n, int) and n != len(dataset)
        else f"the same {len(dataset):,} rows, but values that differ (data fingerprint "
        f"{dataset_fingerprint(dataset)}; the fit's was {expected})"
    )
    if source is not None:
        raise DataError(
            f"The data in {source!r} are no longer the data this run was fitted on: {what}. The file was "
            f"changed after the fit, so its pictures would show the fitted curve over other data. Restore "
            f"the file, fit again on the data as they are now, or pass the fit's data with --data FILE "
            f"(data=... in Python)."
        )
    warnings.warn(
        GradfitWarning(
            f"The data given are not the data this run was fitted on: {what}. The fitted curve "
            f"is drawn over other data than it was fitted to."
        ),
        stacklevel=3,
    )


def chunk_size_of(result, chunk_size: int | None = None) -> int | None:
    """The rows per chunk of an analysis of ``result``: ``chunk_size`` when given, else the fit's own.

    The fit's is ``result.config["chunk_size"]`` (``FitConfig.chunk_size``, saved in result.json), so an
    analysis of a run loaded later reads its rows in the chunks the fit did. None (the row pass's default,
    :data:`gradfit.rowpass.CHUNK_ROWS`) for a result whose config does not hold a valid one.

    Raises
    ------
    ConfigError
        ``chunk_size`` is given and is not a whole number >= 1.
    """
    if chunk_size is not None:
        if not _whole(chunk_size):
            raise ConfigError(f"The 'chunk_size' parameter must be a whole number >= 1. Got {chunk_size!r} instead.")
        return int(chunk_size)
    saved = (getattr(result, "config", None) or {}).get("chunk_size")
    # A run saved without one (or a hand-edited result.json): the row pass's default.
    return int(saved) if _whole(saved) else None


def _whole(value) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
