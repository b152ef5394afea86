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
from gradfit.errors import DataError


def run_data(result, data: Any = None) -> Dataset:
    """The inputs and targets of ``result``'s fit as a :class:`Dataset` (all rows, the fit's dtype).

    Parameters
    ----------
    result : FitResult
        Its ``data`` record names the columns (``x``, ``y``) and where the data came from.
    data : optional
        Anything :func:`gradfit.fit` accepts. Needed when the fit was given data in memory
        (a DataFrame or arrays); otherwise the file or built-in dataset is read again.
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
    return as_dataset(data, x=list(info["x"]), y=info["y"], dtype=dtype, drop_nan=any(str(n).startswith("dropped") for n in info.get("notes") or ()))
