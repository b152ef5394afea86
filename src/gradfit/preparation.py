"""What ``gradfit.fit`` prepares before it descends: the rows read and checked, their dtype and device, the plan.

:func:`open_rows` reads and checks a fit's rows (in memory, streamed, or a process's shard), :func:`plan_fit` picks
the optimizer, dtype and scaling, :func:`narrowed` puts the rows in the fit's dtype and device. The front door
(:mod:`gradfit.api`) calls them in that order, and so do other runs of fits that must start exactly where
``gradfit.fit`` would (the sweeps' members, :mod:`gradfit.experiments.sweep_members`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from gradfit.aliases import ALIASES, closest
from gradfit.analysis.stability import CHECK_ROWS
from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.io import open_data
from gradfit.errors import ConfigError, DataError, GradfitWarning
from gradfit.models.builder import check_names, default_inputs
from gradfit.optim.auto import Choice, plan_optimizer
from gradfit.rowpass import is_row_set
from gradfit.train.config import FitConfig
from gradfit.train.row_sets import check_row_set, open_stream, stream_instead, unjoined_launch

__all__ = [
    "FIT_OPTIONS",
    "fit_config",
    "check_lm",
    "columns_of",
    "constant_notes",
    "device_of",
    "dtype_of",
    "n_outputs_of",
    "narrowed",
    "open_rows",
    "plan_fit",
    "split_names",
    "weight_sum",
]


#: The names fit() takes as options: the fields of FitConfig.
FIT_OPTIONS = {f.name for f in dataclasses.fields(FitConfig)}


def fit_config(options: dict) -> FitConfig:
    """The options of a fit as a checked FitConfig; ConfigError naming an unknown option (with a "did you mean")."""
    unknown = sorted(set(options) - FIT_OPTIONS)
    if unknown:
        hints = []
        for u in unknown:
            match = ALIASES["option"].get(u) or closest(u, sorted(FIT_OPTIONS))
            hints.append(f"{u!r} (did you mean {match!r}?)" if match else repr(u))
        raise ConfigError(
            f"Unknown option(s) to fit(): {', '.join(hints)}. Known options: {', '.join(sorted(FIT_OPTIONS))}."
        )
    return FitConfig(**options).validate()


def plan_fit(config: FitConfig, loss, model, fixed, dataset) -> Choice:
    """The optimizer, dtype and scaling for this problem (``auto`` chooses; a named optimizer keeps its own)."""
    rows = len(dataset) if not config.val_split else len(dataset) - max(1, int(round(len(dataset) * config.val_split)))
    free = sum(s.size for s in model.specs if s.name not in fixed)
    choice = plan_optimizer(
        config.optimizer,
        rows=rows,
        free=free,
        lr_given=config.lr is not None,
        momentum_given=config.momentum is not None,
        schedule_given=config.schedule is not None,
        dtype=config.dtype,
        scale=config.scale,
        loss_name=getattr(loss, "name", "loss"),
        least_squares=bool(getattr(loss, "least_squares", False)),
        batch_size=config.batch_size,
        network=bool(getattr(model, "network", False)),
        streamed=is_row_set(dataset),
    )
    if choice.optimizer == "lm":
        check_lm(config, loss)
    return choice


def check_lm(config: FitConfig, loss) -> None:
    if not getattr(loss, "least_squares", False):
        raise ConfigError(
            f"Levenberg-Marquardt ('lm') minimises a sum of squares, so it needs loss='mse'. Got "
            f"{getattr(loss, 'name', loss)!r}; use another optimizer for that loss."
        )
    if config.batch_size is not None:
        raise ConfigError("Levenberg-Marquardt ('lm') works on all rows at once; leave out 'batch_size'.")
    if config.lr is not None or config.momentum is not None or config.schedule is not None:
        given = [k for k in ("lr", "momentum", "schedule") if getattr(config, k) is not None]
        raise ConfigError(
            f"Levenberg-Marquardt ('lm') has no learning rate: its damping adapts by itself. Leave out "
            f"{' and '.join(map(repr, given))}, or choose a gradient-descent optimizer."
        )


def open_rows(data, model, x, y, declared, config, stream, read, drop_nan, sigma, weights, absolute_sigma):
    """The fit's rows, checked: ``(dataset, sample, origin, reading, notes, streamed)``. ``dataset`` is a Dataset
    in memory, or a row set (a file read batch by batch: ``stream``, or by itself past the memory budget; a
    process's row groups under torchrun; a RowSet given as ``data``), whose ``sample`` of evenly spaced rows the
    guesses, shape checks and stability limit read (the Dataset itself otherwise). ``origin``: where the data can
    be read again (with ``reading``, ``result.data["read"]``), so pictures can be redrawn from a saved run."""
    y_name = y if isinstance(y, str) else None
    origin, reading, notes = None, dict[str, Any](), list[str]()
    alone = unjoined_launch()
    if alone:
        warnings.warn(alone, GradfitWarning, stacklevel=3)
    if stream is None:
        why = stream_instead(data, config, read, sigma, weights)
        stream, notes = why is not None, [why] if why else []
    if stream:
        split_x = None if x is None else split_names(x)
        origin = str(data)
        data = open_stream(
            data, model, split_x, y_name, declared, sigma, weights, absolute_sigma, drop_nan, read, dtype_of("float64")
        )
        notes += [data.note] if data.note else []
        sigma = weights = read = None
        drop_nan = False
    if is_row_set(data):  # rows not held here: every sum over them goes through the row pass
        check_row_set(data, config, sigma, weights, read, drop_nan)
        return data, data.sample(CHECK_ROWS), origin, reading, notes, bool(stream)
    data, origin, reading, notes = open_data(data, read)
    check_names(model, columns_of(data), y_name, None if x is None else split_names(x), declared)
    weight_columns = [w for w in (sigma, weights) if isinstance(w, str)]
    inputs = (
        split_names(x) if x is not None else default_inputs(model, columns_of(data), y_name, declared, weight_columns)
    )
    dataset = as_dataset(
        data,
        x=inputs,
        y=y,
        dtype=dtype_of(config.resolved_dtype),
        drop_nan=drop_nan,
        report=notes,
        sigma=sigma,
        weights=weights,
        absolute_sigma=absolute_sigma,
    )
    return dataset, dataset, origin, reading, notes, False


def weight_sum(train) -> float | None:
    """``Σ wᵢ`` of the training rows in float64, None when they are unweighted."""
    if is_row_set(train):
        return train.weight_total()
    return None if train.w is None else float(train.w.double().sum())


def dtype_of(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def device_of(name: str) -> torch.device:
    from gradfit.train.config import resolve_device

    return resolve_device(name)


def narrowed(dataset: Dataset, device, dtype: torch.dtype) -> Dataset:
    """``dataset`` on ``device`` in ``dtype``; a DataError when a value read in float64 does not fit in float32."""
    out = dataset.to(device, dtype)
    if torch.finfo(dtype).bits >= torch.finfo(dataset.dtype).bits:
        return out
    columns = [(name, out.x[:, i]) for i, name in enumerate(out.x_names)] + [(out.y_name or "y", out.y)]
    problems, kind = [], str(dtype).replace("torch.", "")
    for name, values in columns:
        if values is None:
            continue
        bad = (~torch.isfinite(values)).nonzero().flatten()
        if len(bad):
            first = int(bad[0])
            if name in dataset.x_names:
                source = dataset.x[first, dataset.x_names.index(name)]
            else:
                assert dataset.y is not None  # out.y, the targets in the new dtype, holds this value
                source = dataset.y[first]
            problems.append(
                f"column {name!r}: {len(bad)} value{'s' if len(bad) > 1 else ''} too large for {kind} "
                f"(the first in row {first + 1}: {float(source):g})"
            )
    if problems:
        raise DataError(
            f"{dataset.source}: the fit runs in {kind}, and {'; '.join(problems)}. Fit in float64: "
            f"dtype='float64' (--dtype float64), or rescale the column."
        )
    return out


def split_names(x) -> list[str]:
    if isinstance(x, str):
        return [s.strip() for s in x.split(",") if s.strip()]
    return [str(s) for s in x]


def columns_of(data) -> list[str]:
    if isinstance(data, Dataset):
        return list(data.x_names) + ([data.y_name] if data.y_name else [])
    if hasattr(data, "columns"):
        return [str(c) for c in data.columns]
    if isinstance(data, Mapping):
        return [str(k) for k in data]
    if isinstance(data, tuple):
        X = data[0]
        k = 1 if getattr(X, "ndim", 1) == 1 else X.shape[1]
        return [f"x{i}" for i in range(k)]
    if hasattr(data, "shape") and len(data.shape) == 1:
        return ["x"]
    if hasattr(data, "shape") and len(data.shape) == 2:
        return [f"x{i}" for i in range(data.shape[1])]
    return []


def constant_notes(model) -> list[str]:
    """A note when a formula uses ``e``: a coefficient named e would silently be Euler's number, not fitted."""
    formula = getattr(model, "formula", None)
    if formula is None or "e" not in getattr(formula, "constants", ()):
        return []
    return [
        "in the formula, e is Euler's number 2.71828 (a constant), not a parameter; to fit a coefficient, "
        "give it another name"
    ]


def n_outputs_of(loss, y, n_inputs: int) -> int:
    """One output per row, or one per class for the cross-entropy (from the targets ``y``: every label)."""
    if getattr(loss, "name", "") != "cross_entropy" or y is None:
        return 1
    return loss.n_classes(y, n_inputs) if torch.isfinite(y).all() else 2
