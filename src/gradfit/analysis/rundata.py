"""The data a saved run was fitted on, read again for pictures and analyses."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import torch

from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.dates import apply_dates
from gradfit.data.io import read_like, read_table
from gradfit.data.weights import Weighting
from gradfit.errors import DataError


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
    """
    info = result.data
    if data is None:
        path = info.get("path")
        if not path:
            raise DataError(
                f"This run was fitted on data held in memory ({info.get('source', 'unknown')}), which was not saved. "
                f"Pass the data again: data=... in Python, --data FILE on the command line."
            )
        try:
            data = read_table(path, **(info.get("read") or {}))  # the same separator, decimal mark, dates...
        except DataError as exc:
            raise DataError(f"Cannot read the run's data again from {path!r}: {exc} Pass it with --data FILE.") from None
    elif isinstance(data, (str, os.PathLike)):
        data = read_like(data, info)
    elif isinstance(data, pd.DataFrame):
        data = apply_dates(data, info.get("dates") or {})
    dtype = torch.float64 if info.get("dtype") == "float64" else torch.float32
    how = Weighting.from_dict(info.get("weights"))
    rows = {}
    if how is not None and isinstance(data, Dataset) and data.w is not None:
        pass  # the Dataset's own weights
    elif how is not None and how.column is not None:
        rows = {how.kind: how.column, "absolute_sigma": how.absolute_sigma}
    elif how is not None and weighted:
        raise DataError(f"This run was weighted by {how.kind} given as an array, which is not saved with the run, so "
                        f"its statistics cannot be recomputed from the data alone. Pass a Dataset with the weights "
                        f"(data=Dataset(..., w=...)), or fit with the {how.kind} in a column of the data.")
    return as_dataset(data, x=list(info["x"]), y=info["y"], dtype=dtype, drop_nan=any(str(n).startswith("dropped") for n in info.get("notes") or ()), **rows)
