"""The seeds' step walk-through as a table: parameters, gradient, ``lr * grad`` and loss per step.

Seed 002 prints, at each step of its loop, ``params``, ``params.grad``, ``params.grad * lr`` and
the loss. :func:`step_table` gives the same walk-through for any saved fit: one row per kept
parameter snapshot, with the gradient and the loss recomputed exactly at that snapshot on the
full data (the history stores only the gradient's norm).

``lr * grad`` is the step only of plain gradient descent (``p -= lr * grad``). Every other run
shows the update it actually took instead, ``p[k+1] - p[k]``, read from the snapshots: a
Levenberg-Marquardt iteration solves ``(JᵀJ + λ·DᵀD) δ = -Jᵀr`` (its history's ``lr`` column is
the damping λ, shown as ``damping``); a run on scaled parameters (``scale=True``) steps by
``lr / loss_factor · A Aᵀ · grad`` for the map ``p = p0 + A q`` of ``train/scaling.py``;
momentum and Adam step by their own rules. Values, gradients and updates are all in the user's
units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gradfit.errors import ConfigError, DataError, ModelError

__all__ = ["grad_column", "gradient_at", "lr_grad_column", "plain_descent", "step_table", "update_column"]


def grad_column(name: str) -> str:
    """The step table's gradient column of flat parameter ``name``: ``"grad a[0]"``."""
    return f"grad {name}"


def lr_grad_column(name: str) -> str:
    """The step table's ``lr * gradient`` column of flat parameter ``name``: ``"lr*grad a[0]"``."""
    return f"lr*grad {name}"


def update_column(name: str) -> str:
    """The step table's update column of flat parameter ``name``: ``"update a[0]"`` (``p[k+1] - p[k]``)."""
    return f"update {name}"


def plain_descent(result) -> bool:
    """True when the run's step is ``p -= lr * grad``: plain sgd, without scaling (the seeds' loop)."""
    config = result.config
    name = str(config.get("optimizer") or "sgd")
    return name == "sgd" and not config.get("momentum") and not config.get("scale")


def gradient_at(
    result, params: Mapping[str, float], data: Any = None, *, loss=None, dataset=None, chunk_size: int | None = None
) -> tuple[float, dict[str, float]]:
    """The mean loss of ``result``'s fit and its gradient at ``params``, on the full data.

    Parameters
    ----------
    result : FitResult
        Supplies the model, the loss, the dtype and the fixed parameters.
    params : mapping of str to float
        Every flat parameter by name (``{"a[0]": 0.5, "a[1]": 1.0}``), e.g. a history snapshot.
    data : optional
        The fit's data when it was given in memory (see :func:`gradfit.analysis.fitted_data.run_data`).
    loss : optional
        The loss, needed only when the fit used a Python function as its loss.
    dataset : Dataset, optional
        Already-read data (skips ``data``); :func:`step_table` passes it to read the data once.
    chunk_size : int, optional
        Rows per chunk of the sums over the data; default the fit's own (``result.config["chunk_size"]``).

    Returns
    -------
    loss : float
        The mean loss over all rows, accumulated in float64.
    grad : dict of str to float
        d loss / d parameter by flat name, in the fit's dtype; NaN for fixed parameters.

    Examples
    --------
    >>> import gradfit
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", init={"a": [1.0, 1.0]}, lr=0.1, steps=3)
    >>> value, grad = gradient_at(r, r.history.params_at(0))
    >>> sorted(grad)
    ['a[0]', 'a[1]']
    """
    model = _model(result)
    objective = _objective(result, loss, chunk_size)
    ds = dataset if dataset is not None else _dataset(result, data)
    return _value_and_grad(model, objective, result, ds, params)


def step_table(
    result,
    data: Any = None,
    steps: Sequence[int] | None = None,
    max_rows: int = 50,
    *,
    loss=None,
    chunk_size: int | None = None,
):
    """Seed 002's walk-through of a fit, one row per parameter snapshot.

    Parameters
    ----------
    result : FitResult
        A fit, or a run read back with :func:`gradfit.outputs.load_run`.
    data : optional
        The fit's data when it was given in memory (a file or built-in dataset is read again).
    steps : sequence of int, optional
        The steps to show; each must be a kept snapshot (``result.history.snapshot_steps``).
        Default: every snapshot, or ``max_rows`` of them evenly spread, always with step 0
        and the final step.
    max_rows : int
        Most rows when ``steps`` is not given (>= 1).
    loss : optional
        The loss, needed only when the fit used a Python function as its loss.
    chunk_size : int, optional
        Rows per chunk of the sums over the data; default the fit's own (``result.config["chunk_size"]``).

    Returns
    -------
    pandas.DataFrame
        Columns ``step``, ``loss``, ``lr``, then for each flat parameter ``p`` (e.g. ``a[0]``),
        in the model's order: ``p`` (its value at that step), ``grad p`` (d loss / d p there) and
        ``lr*grad p`` (``lr`` times the gradient: the plain-SGD update, ``p[k+1] = p[k] - lr*grad p``).
        For any other run (see :func:`plain_descent`) the last column is ``update p`` instead,
        ``p[k+1] - p[k]``, the step the run took (NaN where the next step's snapshot was not
        kept); for Levenberg-Marquardt the ``lr`` column is called ``damping`` (the λ of the
        iteration that left that step).

    Notes
    -----
    ``loss`` and the gradient are recomputed at the snapshot on the full data (every row, the
    validation rows too), in the fit's dtype. For a mini-batch fit the table shows the full-data
    gradient, not the gradient of the batch the optimizer actually used; with ``val_split`` the
    loss differs from the history's training loss. ``lr`` is the learning rate used to leave that
    step (from the history): NaN at the final step, which no update leaves, and where the
    history's rows were thinned. Fixed parameters have NaN gradient columns.

    Raises
    ------
    DataError
        The result has no parameter snapshots (a run saved without its history.csv).
    ConfigError
        ``max_rows`` < 1, or a step in ``steps`` that has no snapshot.
    """
    import pandas as pd

    history = result.history
    chosen = _choose_steps(history, steps, max_rows)
    model = _model(result)
    objective = _objective(result, loss, chunk_size)
    ds = _dataset(result, data)
    lr_by_step = dict(zip(history.step.tolist(), history["lr"].tolist()))
    names = list(history.param_names)
    plain = plain_descent(result)
    rate = "damping" if str(result.config.get("optimizer")) == "lm" else "lr"
    step_col = lr_grad_column if plain else update_column
    kept = set(int(k) for k in history.snapshot_steps)

    rows = []
    for step in chosen:
        params = history.params_at(step)
        value, grad = _value_and_grad(model, objective, result, ds, params)
        lr = float(lr_by_step.get(step, math.nan))
        after = history.params_at(step + 1) if not plain and step + 1 in kept else None
        row: dict[str, float] = {"step": step, "loss": value, rate: lr}
        for name in names:
            row[name] = params[name]
            row[grad_column(name)] = grad[name]
            if plain:
                row[step_col(name)] = lr * grad[name]
            else:
                row[step_col(name)] = math.nan if after is None else after[name] - params[name]
        rows.append(row)
    columns = ["step", "loss", rate] + [c for n in names for c in (n, grad_column(n), step_col(n))]
    frame = pd.DataFrame(rows, columns=columns)
    frame["step"] = frame["step"].astype(np.int64)
    return frame


def _choose_steps(history, steps: Sequence[int] | None, max_rows: int) -> list[int]:
    kept = [int(s) for s in history.snapshot_steps]
    if not kept:
        raise DataError(
            "This run has no parameter snapshots to tabulate (its history is empty: was history.csv "
            "saved next to result.json?)."
        )
    if steps is not None:
        missing = [s for s in steps if int(s) not in kept]
        if missing:
            raise ConfigError(
                f"No parameter snapshot at step(s) {', '.join(map(str, missing))}. Snapshots were kept "
                f"at {_describe(kept)}."
            )
        return [int(s) for s in steps]
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ConfigError(f"The 'max_rows' parameter must be a whole number >= 1. Got {max_rows!r} instead.")
    if len(kept) <= max_rows:
        return kept
    # Evenly spaced positions; the first (step 0) and the last (the final state) are always in.
    picks = np.unique(np.round(np.linspace(0, len(kept) - 1, int(max_rows))).astype(int))
    return [kept[i] for i in picks]


def _describe(kept: list[int]) -> str:
    if len(kept) <= 12:
        return ", ".join(map(str, kept))
    return f"{', '.join(map(str, kept[:6]))}, ..., {', '.join(map(str, kept[-3:]))} ({len(kept)} steps)"


def _model(result):
    if result.model is None:
        raise ModelError(
            "This result has no model to differentiate (it was loaded from JSON with a callable or "
            "nn.Module model): load it with load_run(folder, model=...)."
        )
    return result.model


def _objective(result, loss, chunk_size: int | None = None):
    from gradfit.analysis.fitted_data import chunk_size_of
    from gradfit.losses import get_loss
    from gradfit.train.objective import Objective

    config = result.config
    if loss is None:
        name = config.get("loss", "mse")
        try:
            loss = get_loss(name, **config.get("loss_options", {}))
        except ConfigError:
            raise ConfigError(
                f"This fit used the loss {name!r}, which cannot be rebuilt from its name (a Python "
                f"function?). Pass it again: loss=..."
            ) from None
    else:
        loss = get_loss(loss)
    return Objective(_model(result), loss, chunk_size_of(result, chunk_size))


def _dataset(result, data):
    from gradfit.analysis.fitted_data import run_data

    ds = run_data(result, data, weighted=True)
    inputs = list(_model(result).inputs)
    return ds if list(ds.x_names) == inputs else ds.columns(inputs)


def _value_and_grad(model, objective, result, ds, flat: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    from gradfit.models.base import flatten_params, unflatten_params

    missing = [n for n in model.flat_names() if n not in flat]
    if missing:
        raise ModelError(
            f"No value for the parameter(s) {', '.join(missing)}. Give every one of {', '.join(model.flat_names())}."
        )
    params = unflatten_params(model.specs, flat, dtype=ds.dtype)
    fixed = set(result.fixed)
    trainable = [n for n in model.param_names if n not in fixed]
    for name in trainable:
        params[name].requires_grad_(True)
    value, grads = objective.value_and_grad(params, trainable, ds.x, ds.y, ds.w)
    named = {n: g.detach() for n, g in zip(trainable, grads)}
    for name in fixed:
        named[name] = torch.full_like(params[name], math.nan)
    return float(value), flatten_params(model.specs, named)
