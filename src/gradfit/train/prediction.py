"""Prediction: what a fitted model says about rows, shared by ``FitResult.predict`` and ``gradfit predict``.

The inputs are checked at the door (a text value or an infinity in an input column is an error
that names the column and the row; a missing value gives a missing prediction, so the output
stays aligned with the rows), the model runs under ``torch.no_grad`` in chunks of rows (bounded
memory however many rows), and a classifier's outputs (logits) become classes and probabilities
as :mod:`gradfit.sklearn` makes them.

The task follows the loss: ``bce`` is a binary classifier (one logit, of class 1), ``cross_entropy``
a multi-class one (one logit per class ``0..C-1``), anything else a regression.

Examples
--------
>>> task_of("bce"), task_of("cross_entropy"), task_of("huber")
('binary', 'multiclass', 'regression')
>>> probabilities(torch.tensor([0.0, 2.0], dtype=torch.float64), "binary").round(decimals=3).tolist()
[[0.5, 0.5], [0.119, 0.881]]
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from gradfit.errors import ConfigError, DataError, ModelError
from gradfit.rowpass import CHUNK_ROWS, MemoryRows, concat
from gradfit.rowpass import chunk_rows as rows_per_chunk

__all__ = [
    "TASKS",
    "KINDS",
    "KEEP",
    "task_of",
    "input_matrix",
    "model_outputs",
    "probabilities",
    "classes",
    "finite_rows",
    "read_rows",
    "prediction_frame",
    "CHUNK_ROWS",
]

TASKS = ("regression", "binary", "multiclass")
#: What ``FitResult.predict`` returns: the model's own outputs (values, or logits for a classifier),
#: class labels, or class probabilities.
KINDS = ("output", "class", "proba")
#: At most this many numbers per chunk of (rows x outputs); the rows per forward pass are the row pass's
#: (``CHUNK_ROWS``, re-exported from :mod:`gradfit.rowpass`).
_CHUNK_NUMBERS = 1 << 24


def task_of(loss) -> str:
    """``"binary"`` for bce, ``"multiclass"`` for cross_entropy, else ``"regression"``.

    ``loss`` is a name (aliases such as ``"ce"`` count), a :class:`~gradfit.losses.Loss`, or a
    callable (a regression unless it is one of the named classification losses).
    """
    from gradfit.losses import get_loss

    name = loss if isinstance(loss, str) else getattr(loss, "name", "")
    try:
        name = get_loss(name).name if isinstance(name, str) and name else ""
    except ConfigError:  # a callable loss recorded by its function's name
        name = ""
    return {"bce": "binary", "cross_entropy": "multiclass"}.get(name, "regression")


def read_rows(path, data_record: Mapping | None = None):
    """Read a table of rows to predict as the training data was read.

    ``data_record`` is ``FitResult.data``; the reader options it records under ``"read_options"``
    (CSV dialect, dates...) are passed to :func:`gradfit.data.io.read_table` when it takes them.
    """
    from gradfit.data.io import read_table

    options = dict((data_record or {}).get("read_options") or {})
    accepted = inspect.signature(read_table).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    return read_table(path, **options)


def input_matrix(x, names: tuple[str, ...], dtype: torch.dtype, source: str | None = None) -> Tensor:
    """The ``(n, len(names))`` input tensor for ``x``: a DataFrame or dict holding the columns ``names``,
    or an array/tensor of shape ``(n,)`` or ``(n, len(names))`` with the columns in that order.

    Raises
    ------
    DataError
        A missing column (naming the columns found), text or infinities in an input column, a
        wrong number of columns. Missing values (NaN) are kept: their predictions are NaN.
    """
    if x is None:
        raise DataError(f"predict() needs the inputs {', '.join(names)}.")
    if isinstance(x, (str, os.PathLike)):
        raise DataError("input_matrix() takes a table, not a path; read it with read_rows() first.")
    if hasattr(x, "columns") or isinstance(x, Mapping):
        return _from_columns(x, names, dtype, source or ("DataFrame" if hasattr(x, "columns") else "dict"))
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    t = t.to(dtype)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[1] != len(names):
        got = f"{t.shape[1]} input column(s)" if t.ndim == 2 else f"an array of shape {tuple(t.shape)}"
        raise DataError(
            f"predict() got {got}; the model reads {len(names)}: {', '.join(names)}. Pass an (n, "
            f"{len(names)}) array with the columns in that order, or a DataFrame with those columns."
        )
    return t


def _from_columns(x, names, dtype, source: str) -> Tensor:
    from gradfit.data.columns import Table, column
    from gradfit.data.io import FIRST_ROW_ATTR, ROW_LABEL_ATTR

    found = [str(c) for c in (x.columns if hasattr(x, "columns") else x.keys())]
    missing = [n for n in names if n not in found]
    if missing:
        shown = ", ".join(found[:30]) + (", ..." if len(found) > 30 else "")
        raise DataError(
            f"{source} lacks the column(s) {', '.join(missing)} that the model reads as inputs "
            f"({', '.join(names)}). Columns found: {shown or '(none)'}."
        )
    table = Table({n: x[n] for n in names}, source)
    attrs = getattr(x, "attrs", {})  # a frame from read_table numbers its rows as lines of the file
    index = getattr(x, "index", None)
    if attrs.get(ROW_LABEL_ATTR) and getattr(index, "start", None) == 0 and getattr(index, "step", None) == 1:
        table.row_label, table.first_row = attrs[ROW_LABEL_ATTR], attrs.get(FIRST_ROW_ATTR, 0)
    cols = [column(table, n, dtype) for n in names]
    lengths = {n: c.shape[0] for n, c in zip(names, cols) if c is not None}
    if len(set(lengths.values())) > 1:
        table.problems.append(
            f"{source}: the input columns have different lengths "
            f"({', '.join(f'{n!r} has {k}' for n, k in lengths.items())})."
        )
    if table.problems:
        raise DataError("\n".join([f"Cannot predict from {source}:"] + [f"  - {p}" for p in table.problems]))
    present = [c for c in cols if c is not None]
    assert len(present) == len(cols)  # column() records a problem whenever it gives None
    return torch.stack(present, dim=1)


@torch.no_grad()
def model_outputs(model, params: Mapping[str, Tensor], X: Tensor, chunk_rows: int | None = None) -> Tensor:
    """``model(params, X)`` in chunks of rows, without autograd; params are cast to ``X``'s dtype and device."""
    cast = {k: torch.as_tensor(v).to(X.device, X.dtype) for k, v in params.items()}
    n_out = max(1, int(getattr(model, "n_outputs", 1)))
    step = max(1, min(rows_per_chunk(chunk_rows), _CHUNK_NUMBERS // n_out))
    if len(X) <= step:
        return model(cast, X)
    out = concat(lambda xc, _y, _w: model(cast, xc), MemoryRows(X, chunk_size=step))
    assert out is not None  # X has more rows than one chunk
    return out


def probabilities(outputs: Tensor, task: str) -> Tensor:
    """Class probabilities ``(n, C)`` from logits, columns in class order (``[1 - p, p]`` for binary)."""
    if task == "binary":
        p = torch.sigmoid(outputs.reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    if task == "multiclass":
        return torch.softmax(outputs, dim=1)
    raise ModelError(
        "Class probabilities are for classifiers (a fit with loss 'bce' or 'cross_entropy'); this "
        "result is a regression. Use kind='output'."
    )


def classes(outputs: Tensor, task: str) -> Tensor:
    """The most probable class of each row (int64), as ``GradfitClassifier.predict``: logit > 0 for binary."""
    if task == "binary":
        return (outputs.reshape(-1) > 0).long()
    if task == "multiclass":
        return outputs.argmax(dim=1)
    raise ModelError(
        "Classes are for classifiers (a fit with loss 'bce' or 'cross_entropy'); this result is a "
        "regression. Use kind='output'."
    )


def finite_rows(outputs: Tensor) -> Tensor:
    """A ``(n,)`` mask of the rows whose outputs are all finite (a missing input gives a missing output)."""
    finite = torch.isfinite(outputs)
    return finite if finite.ndim == 1 else finite.all(dim=1)


#: Which of the data's columns a prediction table repeats before the predictions.
KEEP = ("inputs", "all", "none")


def prediction_frame(result, frame, keep: str = "inputs", source: str | None = None):
    """The predictions of ``result`` for the rows of ``frame``, as a table to write.

    Parameters
    ----------
    result : FitResult
    frame : pandas.DataFrame
        Holds the model's input columns (``result.data["x"]``); other columns are ignored unless ``keep="all"``.
    keep : {"inputs", "all", "none"}
        The columns of ``frame`` repeated before the predictions: the model's inputs, every column
        (ids, targets), or none.
    source : str, optional
        The name of the data in messages (a file path).

    Returns
    -------
    pandas.DataFrame
        One row per row of ``frame``, in order. A regression adds ``prediction``; a classifier adds
        ``class`` (``0..C-1``) and one ``prob_<class>`` column per class (bce: ``prob_1``, the probability
        of class 1). A row with a missing input has empty predictions.

    Raises
    ------
    DataError
        A missing input column (naming the columns found), text or infinities in one, or a column of
        ``frame`` that a prediction column would overwrite (with ``keep="all"``).
    """
    import pandas as pd

    if keep not in KEEP:
        raise ConfigError(f"The 'keep' parameter must be one of {', '.join(map(repr, KEEP))}. Got {keep!r} instead.")
    names = tuple(result.model.inputs)
    dtype = torch.float64 if result.data.get("dtype") == "float64" else torch.float32
    X = input_matrix(frame, names, dtype, source=source)
    out = model_outputs(result.model, result.params, X)
    ok = finite_rows(out).cpu().numpy()
    task = result.task
    if task == "regression":
        values = out.cpu().numpy()
        added = (
            {"prediction": values}
            if values.ndim == 1
            else {f"prediction_{j}": values[:, j] for j in range(values.shape[1])}
        )
    else:
        probs = probabilities(out, task).cpu().numpy()
        labels = classes(out, task).cpu().numpy()
        added = {"class": pd.array(np.where(ok, labels, 0), dtype="Int64")}
        added["class"][~ok] = pd.NA
        columns = [1] if task == "binary" else range(probs.shape[1])
        added.update({f"prob_{j}": probs[:, j] for j in columns})
    kept = {"inputs": list(names), "all": [str(c) for c in frame.columns], "none": []}[keep]
    clash = [c for c in added if c in kept]
    if clash:
        raise DataError(
            f"{source or 'The data'} already has the column(s) {', '.join(clash)} that the predictions "
            f"would fill (is it the output of an earlier prediction?). Keep only the inputs "
            f"(--columns inputs), or rename those columns."
        )
    table = frame.loc[:, kept].reset_index(drop=True) if kept else pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name, values in added.items():
        table[name] = values
    return table
