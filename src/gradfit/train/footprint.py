"""What a fit will hold in memory, estimated from the shapes before anything is allocated.

:func:`check_fit_memory` runs in ``gradfit.fit`` once the model, the optimizer and the dtype are
known and before the data is copied, split or shuffled: it adds up the data, its copies, the
shuffling order, the parameters with their gradients and optimizer state, one chunk of rows
through the model, Levenberg-Marquardt's Jacobian, the history and the error bars, and refuses
the fit (:class:`~gradfit.errors.MemoryBudgetError`, exit 2 in the CLI) when they exceed the
budget of :mod:`gradfit.memory`, saying which items are large and what to change. The
estimates are upper bounds of the same order as what is measured (``tests/test_memory.py``),
not promises to the byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradfit.memory import device_budget, require
from gradfit.models.zoo import SPEC_BYTES
from gradfit.optim.registry import optimizer_name
from gradfit.rowpass import jacobian_rows
from gradfit.train.history import MAX_ROWS, snapshot_cap

#: Numbers of the size of the parameters that each optimizer keeps, besides the parameters and their gradients.
STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2, "rmsprop": 2, "adagrad": 1, "lm": 0}
#: Autograd keeps a chunk's intermediate values for the backward pass, which makes as many gradients; the
#: stability check's Hessian-vector products differentiate that graph once more.
PASS_FACTOR = 4


@dataclass(frozen=True)
class Item:
    """One thing a fit holds: what it is, its bytes, and what would make it smaller."""

    what: str
    nbytes: float
    advice: str
    where: str = "device"  # "host" for what stays in the computer's memory when the fit runs on a GPU


def fit_footprint(model, dataset, config, itemsize: int, fixed=()) -> list[Item]:
    """The large things the fit of ``model`` on ``dataset`` under ``config`` will hold at once.

    Parameters
    ----------
    model : Model
    dataset : Dataset
        The data as read (all rows, before the split).
    config : FitConfig
        With the optimizer resolved (not ``"auto"``).
    itemsize : int
        Bytes per number of the fit's dtype (4 for float32, 8 for float64).
    fixed : names
        Parameters held at their start (no gradient or optimizer state).
    """
    n, k = len(dataset), len(model.inputs)
    weighted = dataset.w is not None
    columns = k + 1 + int(weighted)
    n_val = max(1, int(round(n * config.val_split))) if config.val_split else 0
    n_train = max(1, n - n_val)
    batch = n_train if config.batch_size is None else min(config.batch_size, n_train)
    rows = min(config.chunk_size, batch)
    p = sum(s.size for s in model.specs)
    p_free = sum(s.size for s in model.specs if s.name not in set(fixed))
    name = optimizer_name(config.optimizer)
    fewer_rows = "Use fewer rows"
    items = [
        Item(f"the data as read ({n:,} rows)", _held(dataset), fewer_rows + ".", "host"),
        Item(
            f"its {columns} used columns in {'float64' if itemsize == 8 else 'float32'}",
            n * columns * itemsize,
            fewer_rows + " or --dtype float32.",
        ),
    ]
    if n_val:
        items.append(Item("the training and validation rows (a copy)", n * columns * itemsize, fewer_rows + "."))
    if batch < n_train:
        items.append(
            Item(f"the shuffled order of the {n_train:,} training rows (int64)", 16.0 * n_train, fewer_rows + ".")
        )
    items += _model_items(model, name, config, itemsize, p, p_free, rows)
    steps = _total_steps(config, n_train, batch)
    snapshots = min(snapshot_cap(p, config.max_snapshots), steps + 1)
    items.append(
        Item(
            f"the history ({min(steps + 1, MAX_ROWS):,} rows, {snapshots:,} snapshots of the parameters)",
            56.0 * min(steps + 1, MAX_ROWS) + 2 * 8.0 * snapshots * p,
            "Keep fewer parameter snapshots (max_snapshots=...).",
            "host",
        )
    )
    if config.uncertainty:  # asked for: p² matrices (automatic ones are kept small by gradfit.analysis.fit_analysis)
        items.append(
            Item(
                f"the covariance of the {p_free:,} free parameters (float64)",
                8 * 8.0 * p_free * p_free + 8.0 * jacobian_rows(p_free) * p_free,
                "Leave out --uncertainty (uncertainty=True).",
                "host",
            )
        )
    return items


def check_fit_memory(model, dataset, config, itemsize: int, fixed=(), device=None) -> None:
    """Raise :class:`~gradfit.errors.MemoryBudgetError` when :func:`fit_footprint` exceeds the budget.

    On a GPU, what lives there (everything but the data as read, the history and the error bars) is also held to
    the memory the GPU has free.
    """
    items = fit_footprint(model, dataset, config, itemsize, fixed)
    _require(items, f"this fit of {model.name!r}")
    gpu = device_budget(device) if device is not None else None
    if gpu is not None:
        _require([i for i in items if i.where == "device"], f"this fit of {model.name!r} on {device}", gpu)


def _require(items: list[Item], task: str, limit=None) -> None:
    largest = sorted(items, key=lambda i: -i.nbytes)
    advice = [i.advice for i in largest[:2] if i.nbytes >= 0.25 * largest[0].nbytes]
    require([(i.what, i.nbytes) for i in items], task, list(dict.fromkeys(advice)), limit)  # the same advice once


def _model_items(model, name: str, config, itemsize: int, p: int, p_free: int, rows: int) -> list[Item]:
    smaller = "Choose a smaller model (fewer parameters: a lower degree, narrower hidden layers, fewer outputs)."
    if name == "lbfgs":
        history = int(config.optimizer_options.get("history_size", 100))
        state, advice = (
            2 * history + 4,
            f"L-BFGS keeps {2 * history} vectors the size of the parameters: use "
            "--optimizer adam for a model this large, or a smaller model.",
        )
    else:
        state, advice = STATE.get(name, 2) + int(bool(config.momentum)), smaller
    # The start, the best (early stopping), the checkpoint's copy: three more vectors of every parameter.
    out = [
        Item(
            f"the model's {p:,} parameters, their gradients and {name}'s state",
            itemsize * (3.0 * p + (2 + state) * p_free) + SPEC_BYTES * len(model.specs),
            advice,
        ),
        Item(
            f"one chunk of {rows:,} rows through the model (forward and backward)",
            PASS_FACTOR * float(rows) * model.row_width() * itemsize,
            "Use a smaller --batch-size." if config.batch_size else smaller,
        ),
    ]
    if name == "lm":  # float64: a chunk's Jacobian (and its tangents), and the (p+1)² triangular factor
        out.append(
            Item(
                f"Levenberg-Marquardt's Jacobian of {rows:,} rows x {p_free:,} parameters",
                8.0 * (3 * rows * p_free + 3 * (p_free + 1) ** 2),
                "Use a gradient-descent optimizer (--optimizer adam) for this many parameters.",
            )
        )
    if config.scale:  # the Jacobian at the start on at most 5e6 numbers and a p x p whitening map
        out.append(
            Item("the scaling of the parameters", 8.0 * (5e6 + 3 * p_free * min(p_free, 2000)), "Leave out --scale.")
        )
    return out


def _held(dataset) -> float:
    return float(sum(t.numel() * t.element_size() for t in (dataset.x, dataset.y, dataset.w) if t is not None))


def _total_steps(config, n_train: int, batch: int) -> int:
    if config.steps is not None:
        return int(config.steps)
    if config.epochs is not None:
        return int(config.epochs) * math.ceil(n_train / batch)
    return 1000
