"""One fit per group of rows: ``gradfit.fit(model, data, group="well", y=...)``.

The rows are split by the group column (any dtype: its values are factorised, sorted), sorted by group and then,
for the work, by group size, so that each chunk of groups is padded to a largest group close to its others. A
chunk holds as many groups as the memory budget allows for its rows, Jacobian and temporaries
(:func:`chunk_groups`), at most :data:`MAX_CHUNK_ROWS` rows: memory is bounded by one chunk whatever the number of
groups. Each chunk is fitted by the batched Levenberg-Marquardt of :mod:`gradfit.optim.batched_lm`, its residuals
and Jacobian by :mod:`gradfit.models.batched` (a formula's derivative graph, or vmap of jacfwd).

Starting values per group: ``init`` gives a number (every group) or one value per group (an array in the order of
the sorted group keys); the rest come from the model's guess on each group's rows (one Python call per group: for
10^5 groups and more, give starts), else the model's defaults.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradfit.allocator import keep_freed_memory
from gradfit.data.convert import as_dataset
from gradfit.data.io import open_data
from gradfit.data.plain_csv import NumberTable
from gradfit.errors import ConfigError, DataError, ModelError
from gradfit.memory import budget, device_budget, require
from gradfit.models.base import Model
from gradfit.models.batched import BatchedJacobian, batched_jacobian
from gradfit.models.builder import build_model, check_names, default_inputs
from gradfit.models.names import check_declared
from gradfit.optim.batched_lm import STATUS, BatchedOptions, solve
from gradfit.optim.lm import checked_options
from gradfit.options import DEFAULT_STEPS
from gradfit.train.bounds import Bounds
from gradfit.train.config import FitConfig, resolve_device
from gradfit.train.grouped_descent import DescentOptions, descend
from gradfit.train.grouped_result import GroupedResult
from gradfit.train.initial_values import fixed_names

#: The options a grouped fit reads; any other given is refused (it would be silently ignored).
GROUPED_OPTIONS = ("loss", "optimizer", "steps", "tol", "optimizer_options", "dtype", "device", "chunk_size", "seed")
#: At most this many rows (padded) per chunk of groups: past it the arrays leave the caches and it gets slower
#: (measured on the 2-D Gaussian benchmark: 1.47 s at 2^18 rows, 1.60 s at 2^16, 2.15 s with all 2.5e6 in one).
MAX_CHUNK_ROWS = 262_144
#: The same on a GPU, whose kernels want large batches (not measured yet: no GPU was at hand).
MAX_GPU_CHUNK_ROWS = 1 << 24
_CODE = "\x00group code"  # the group's index, carried through as_dataset as one more input column (never shown)
_LM_OPTIONS = ("ftol", "xtol", "gtol", "max_rejections")
#: What a grouped fit by gradient descent reads beyond GROUPED_OPTIONS.
DESCENT_OPTIONS = ("lr", "momentum", "target_loss")


def check_grouped(
    config: FitConfig, given: Mapping[str, Any], refused: Mapping[str, Any]
) -> BatchedOptions | DescentOptions:
    """Refuse what a grouped fit does not do (ConfigError, before any reading) and return its solver options:
    batched Levenberg-Marquardt's (the default), or gradient descent's (sgd, momentum, nesterov, adam)."""
    if config.optimizer == "auto" and config.lr is not None:  # as one fit: a learning rate alone means sgd
        config = dataclasses.replace(config, optimizer="sgd")
    descent = config.optimizer not in ("auto", "lm")
    steps = config.steps if config.steps is not None else DEFAULT_STEPS
    if descent:
        options = DescentOptions.of(config, steps)  # the optimizer and its learning rate checked first
    if config.loss != "mse":
        raise ConfigError(f"A grouped fit minimises each group's sum of squares (loss='mse'); got {config.loss!r}.")
    if config.dtype not in (None, "float64"):
        raise ConfigError(f"A grouped fit runs in float64; got dtype={config.dtype!r}. Leave out dtype.")
    takes = GROUPED_OPTIONS + (DESCENT_OPTIONS if descent else ())
    other = sorted(k for k in given if k not in takes) + sorted(k for k, v in refused.items() if v)
    if other:
        raise ConfigError(
            f"A grouped fit does not take {', '.join(map(repr, other))} (it takes {', '.join(takes)}, "
            f"x, y, init, params, fix, bounds, model_options, read, drop_nan, sigma, absolute_sigma and weights)."
        )
    if descent:
        if config.optimizer_options:
            raise ConfigError(
                f"A grouped fit by gradient descent takes no optimizer_options; got "
                f"{', '.join(map(repr, config.optimizer_options))}."
            )
        return options
    return BatchedOptions(max_iterations=steps, **checked_options(config.optimizer_options, config.tol, _LM_OPTIONS))


def fit_groups(
    model, data, group: str, options: BatchedOptions | DescentOptions, config: FitConfig, **given: Any
) -> GroupedResult:
    """The grouped fit behind ``gradfit.fit(..., group=...)``: ``given`` holds fit()'s ``x``, ``y``, ``init``,
    ``params``, ``model_options``, ``read``, ``drop_nan``, ``sigma``, ``absolute_sigma``, ``weights`` and
    ``general`` (True: vmap of jacfwd even for a formula) and ``chunk_rows`` (the padded rows of one chunk of groups,
    when given: ``chunk_size``)."""
    started = time.perf_counter()
    if isinstance(options, DescentOptions) and given.get("bounds"):
        raise ConfigError(
            "A grouped fit by gradient descent does not take bounds yet: fit with Levenberg-Marquardt (the default), "
            "which honours them, or leave them out."
        )
    device = resolve_device(config.device)
    rows = _read(model, data, group, given)
    built = build_model(model, rows.inputs, **dict(given.get("model_options") or {}))
    check_declared(built, given.get("params"))
    if getattr(getattr(built, "formula", None), "reductions", ()):
        raise ConfigError(
            "A grouped fit takes no sum() or mean() over rows in the formula: each group would need its own, over "
            "its own rows. Fit such a model group by group, or give the reduced value as a column."
        )
    jacobian = batched_jacobian(built, general=bool(given.get("general")))
    p0 = _starts(built, rows, given.get("init"), config.seed)
    fixed = fixed_names(built, given.get("fix"))  # held at their starts: their columns leave the solve
    free = torch.tensor([j for j, s in enumerate(_flat_specs(built)) if s not in fixed], dtype=torch.int64)
    box = _box(built, given.get("bounds"), p0, rows)
    k = p0.shape[1]
    out = _Columns(len(rows.keys), k)
    order = np.argsort(rows.counts, kind="stable")  # by size: each chunk padded to a size close to its groups'
    per_row = 8 * (rows.x.shape[1] + 3 * k + 40) * (1 if jacobian.name == "formula derivative" else 3)
    keep_freed_memory()  # every chunk's temporaries reuse the last one's memory (gradfit.allocator)
    for chunk in _chunks(rows.counts[order], per_row, given.get("chunk_rows"), device):
        ids = order[chunk]
        part = _fit_chunk(jacobian, rows, ids, p0[ids], free, box, options, device, given.get("absolute_sigma", False))
        out.put(ids, part)
    return out.result(
        rows,
        built,
        options,
        config,
        timings={"elapsed": time.perf_counter() - started, "jacobian": getattr(jacobian, "path", jacobian.name)},
    )


class _Rows:
    """The fit's rows sorted by group: ``x (n, c)``, ``y (n,)``, ``w (n,) or None``, each group's first row and
    count, its key, and what the data's reading said."""

    def __init__(self, x, y, w, codes: np.ndarray, keys, group: str, inputs, y_name, notes, origin):
        if len(codes) > 1 and not (codes[1:] >= codes[:-1]).all():  # a table sorted by group is taken as it is
            order = torch.from_numpy(np.argsort(codes, kind="stable"))
            x, y, w = x[order], y[order], None if w is None else w[order]
        self.x, self.y, self.w = x, y, w
        self.counts = np.bincount(codes, minlength=len(keys)).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.keys, self.group, self.inputs, self.y_name = keys, group, inputs, y_name
        self.notes, self.origin = notes, origin

    def of(self, g: int) -> tuple[Tensor, Tensor]:
        s, n = int(self.starts[g]), int(self.counts[g])
        return self.x[s : s + n], self.y[s : s + n]


def _read(model, data, group: str, given: Mapping[str, Any]) -> _Rows:
    """Read the table, split off the group column (checked: there, no missing value) and convert the rest."""
    table, origin, _, notes = open_data(data, given.get("read"))
    columns = _column_names(table)
    if not isinstance(group, str) or group not in columns:
        from gradfit.aliases import closest

        hint = closest(str(group), columns)
        raise DataError(
            f"The group column {group!r} is not in the data"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Columns: {', '.join(columns)}."
        )
    codes, keys = _factorise(table, group)
    y = given.get("y")
    if not isinstance(y, str):
        raise DataError("A grouped fit needs targets: name the target column with y=... (--y COLUMN in the CLI).")
    x = given.get("x")
    x = [s.strip() for s in x.split(",")] if isinstance(x, str) else None if x is None else [str(s) for s in x]
    declared = set(given.get("params") or ()) | set(given.get("init") or ())
    weight_columns = [w for w in (given.get("sigma"), given.get("weights")) if isinstance(w, str)]
    inputs = _inputs(model, group, columns, y, x, declared, weight_columns)
    dropping = bool(given.get("drop_nan"))  # rows may go: their group indices go with them, as one more column
    dataset = as_dataset(
        _with_codes(table, group, codes) if dropping else table,
        x=[*inputs, _CODE] if dropping else inputs,
        y=y,
        dtype=torch.float64,
        drop_nan=dropping,
        report=notes,
        sigma=given.get("sigma"),
        weights=given.get("weights"),
        absolute_sigma=bool(given.get("absolute_sigma")),
        min_rows=1,
    )
    assert dataset.y is not None  # y was named
    if not dropping:
        return _Rows(dataset.x, dataset.y, dataset.w, codes, keys, group, inputs, y, notes, origin)
    kept = dataset.x[:, -1].numpy().astype(np.int64)
    return _Rows(dataset.x[:, :-1], dataset.y, dataset.w, kept, keys, group, inputs, y, notes, origin)


def _inputs(model, group: str, columns: list[str], y: str, x, declared: set, weight_columns: list) -> list[str]:
    """The model's input columns, none of them the group column: a model that reads the group column (the target,
    an input in x, or a formula's name) is refused saying so, rather than as a formula whose name is no column."""
    if group == y:
        raise DataError(
            f"The group column {group!r} is the target (y={y!r}, --y): every group's targets would be one value. "
            f"Group by another column (--group), or name another target."
        )
    if x is not None and group in x:
        raise DataError(
            f"The group column {group!r} cannot also be an input of the model: leave it out of x (--x), or group by "
            f"another column (--group)."
        )
    rest = [c for c in columns if c != group]
    try:
        check_names(model, rest, y, x, declared)
        return x if x is not None else default_inputs(model, rest, y, declared, weight_columns)
    except (DataError, ConfigError, ModelError):
        if x is None and group in _inputs_or_none(model, columns, y, declared, weight_columns):
            raise DataError(
                f"The model reads the group column {group!r} as an input, but a grouped fit splits the rows by it "
                f"(each group holds one value of it). Group by another column (--group), or rename the model's "
                f"name {group!r} (declare it a parameter with params=..., --param, if it is one)."
            ) from None
        raise


def _inputs_or_none(model, columns: list[str], y: str, declared: set, weight_columns: list) -> list[str]:
    """The inputs the model would read were the group column an ordinary column; none when it would be refused."""
    from gradfit.errors import GradfitError

    try:
        check_names(model, columns, y, None, declared)
        return list(default_inputs(model, columns, y, declared, weight_columns))
    except GradfitError:
        return []


def _column_names(table) -> list[str]:
    if hasattr(table, "columns"):
        return [str(c) for c in table.columns]
    if isinstance(table, Mapping):
        return [str(c) for c in table]
    raise DataError("A grouped fit needs a table with named columns (a file, a DataFrame or a dict of columns).")


def _factorise(table, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group index and the sorted group keys; a DataError for a missing value in the column."""
    import pandas as pd

    values = np.asarray(table.column(group) if isinstance(table, NumberTable) else table[group])
    sorted_codes = _sorted_codes(values)
    if sorted_codes is not None:
        return sorted_codes
    codes, keys = pd.factorize(pd.Series(values), sort=True)
    missing = np.flatnonzero(codes < 0)
    if len(missing):
        rows = ", ".join(str(int(i) + 1) for i in missing[:5])
        raise DataError(
            f"The group column {group!r} has {len(missing)} missing value(s) (rows {rows}"
            f"{', ...' if len(missing) > 5 else ''}): give every row a group, or drop those rows."
        )
    keys = np.asarray(keys)
    if keys.dtype.kind == "f" and np.isfinite(keys).all() and (keys == np.round(keys)).all() and len(keys):
        if np.abs(keys).max() < 2**53:  # whole numbers read as floats (a numeric CSV): shown as the integers they are
            keys = keys.astype(np.int64)
    return codes.astype(np.int64), keys


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes and keys of numbers already in order (a table sorted by group, the usual layout) without a sort or a
    hash table: a new group starts wherever the value changes. None for anything else (pandas factorises it)."""
    if values.dtype.kind not in "iuf" or len(values) < 2:
        return None
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return None
    if not (values[1:] >= values[:-1]).all():
        return None
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    codes = np.zeros(len(values), dtype=np.int64)
    codes[starts] = 1
    keys = values[np.concatenate([[0], starts])]
    if keys.dtype.kind == "f" and (keys == np.round(keys)).all() and np.abs(keys).max() < 2**53:
        keys = keys.astype(np.int64)  # whole numbers read as floats (a numeric CSV): shown as the integers they are
    return np.cumsum(codes), keys


def _with_codes(table, group: str, codes: np.ndarray):
    """The table without the group column, with the rows' group indices as one more column."""
    if isinstance(table, NumberTable):
        keep = [i for i, c in enumerate(table.columns) if c != group]
        names = [table.columns[i] for i in keep] + [_CODE]
        out = NumberTable(names, np.column_stack([table.values[:, keep], codes.astype(np.float64)]))
        out.attrs = dict(table.attrs)
        return out
    if isinstance(table, Mapping):
        return {**{k: v for k, v in table.items() if k != group}, _CODE: codes.astype(np.float64)}
    return table.drop(columns=[group]).assign(**{_CODE: codes.astype(np.float64)})


def _starts(model: Model, rows: _Rows, init, seed: int) -> Tensor:
    """``(groups, k)`` starting values: ``init``'s numbers or per-group arrays, else the model's guess per group."""
    names = model.flat_names()
    G = len(rows.keys)
    given: dict[str, np.ndarray] = {}
    for key, value in dict(init or {}).items():
        name = model.flat_key(str(key))
        if name not in names:
            raise ConfigError(f"init names {key!r}, which is not a scalar parameter of the model ({', '.join(names)}).")
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != G):
            raise ConfigError(
                f"init[{key!r}] must be a number or one value per group ({G}, in the order of the sorted group keys);"
                f" got shape {arr.shape}."
            )
        if not np.isfinite(arr).all():
            raise ConfigError(f"init[{key!r}] must be finite.")
        given[name] = np.broadcast_to(arr, (G,))
    p0 = np.empty((G, len(names)))
    missing = [j for j, n in enumerate(names) if n not in given]
    if missing:
        p0[:, missing] = _guesses(model, rows, seed)[:, missing]
    for j, n in enumerate(names):
        if n in given:
            p0[:, j] = given[n]
    return torch.from_numpy(p0)


def _guesses(model: Model, rows: _Rows, seed: int) -> np.ndarray:
    """The model's starting values per group: its guess from each group's rows, or its defaults for all."""
    from gradfit.models.base import flatten_params

    generator = torch.Generator().manual_seed(seed)
    G = len(rows.keys)
    x0, y0 = rows.of(0)
    if not model.guess(x0, y0):  # no data-driven guess: the defaults, the same for every group
        start = model.init_params(generator, torch.float64)
        return np.tile(np.array(list(flatten_params(model.specs, start).values())), (G, 1))
    out = np.empty((G, len(model.flat_names())))
    for g in range(G):
        xg, yg = rows.of(g)
        start = model.init_params(generator, torch.float64, x=xg, y=yg)
        out[g] = list(flatten_params(model.specs, start).values())
    return out


def chunk_groups(counts: np.ndarray, per_row: int, chunk_rows: int | None, device) -> int:
    """The most padded rows one chunk may hold: the memory budget (a quarter of it, as a working set) over the
    bytes per padded row, at most :data:`MAX_CHUNK_ROWS` on the CPU (:data:`MAX_GPU_CHUNK_ROWS` on a GPU, which
    wants large batches) or ``chunk_size``, and at least the largest group."""
    gpu = device_budget(device)
    limit = gpu or budget()
    largest = int(counts.max()) if len(counts) else 1
    require(  # one group is one chunk at least: its Jacobian and temporaries must fit whatever the chunk size
        [("the largest group's rows, Jacobian and temporaries", largest * per_row)],
        f"a grouped fit whose largest group has {largest:,} rows",
        "Split the largest groups, or fit them one by one with gradfit.fit.",
        limit=gpu,
    )
    most = MAX_GPU_CHUNK_ROWS if gpu is not None else MAX_CHUNK_ROWS
    rows = limit.nbytes / 4 / per_row if math.isfinite(limit.nbytes) else most
    rows = min(rows, chunk_rows or most, most)
    return max(int(rows), largest)


def _chunks(sizes: np.ndarray, per_row: int, chunk_rows: int | None, device):
    """Slices of the groups (sorted by size) whose padded rows (count × largest) stay within one chunk's rows."""
    most = chunk_groups(sizes, per_row, chunk_rows, device)
    start, G = 0, len(sizes)
    while start < G:
        # sizes ascend, so a chunk [start, end) is padded to sizes[end - 1]: take the most groups that fit.
        width = max(int(sizes[min(G - 1, start + max(1, most // max(1, int(sizes[start]))) - 1)]), 1)
        end = min(G, start + max(1, most // width))
        while end > start + 1 and (end - start) * max(int(sizes[end - 1]), 1) > most:
            end = start + max(1, (end - start) // 2)
        yield slice(start, end)
        start = end


def _box(model: Model, bounds, p0: Tensor, rows: _Rows) -> tuple[Tensor, Tensor] | None:
    """The bounds as flat ``(lower, upper)`` vectors (None without any), every group's start checked within them."""
    box = Bounds(model, bounds)
    if not box:
        return None
    lower = torch.cat([box.lower[s.name].reshape(-1) for s in model.specs])
    upper = torch.cat([box.upper[s.name].reshape(-1) for s in model.specs])
    outside = (p0 < lower) | (p0 > upper)
    if bool(outside.any()):
        g, j = (int(v) for v in outside.nonzero()[0])
        name = model.flat_names()[j]
        raise ModelError(
            f"The starts of {int(outside.any(1).sum())} group(s) lie outside the bounds: the first, group "
            f"{_shown(rows.keys[g])}, has {name} = {float(p0[g, j]):g} outside "
            f"[{float(lower[j]):g}, {float(upper[j]):g}]. "
            f"Give starts inside them with init=... (--init)."
        )
    return lower, upper


def _shown(key) -> str:
    """A group key as a message shows it: ``'well 3'`` for text, ``7`` for a number (not ``np.int64(7)``)."""
    value = key.item() if isinstance(key, np.generic) else key
    return repr(value) if isinstance(value, str) else str(value)


def _flat_specs(model: Model) -> list[str]:
    """The parameter each flat entry belongs to (``w`` for ``w[0]``), in the flat order."""
    return [s.name for s in model.specs for _ in range(s.size)]


def _fit_chunk(
    jacobian: BatchedJacobian, rows: _Rows, ids: np.ndarray, p0: Tensor, free: Tensor, box, options, device, absolute
):
    """Pad the chunk's groups to its largest, fit their free entries (``free``, the others held at ``p0``), return
    ``(params, stderr, the solver's result, Σ w)`` on the CPU."""
    counts = torch.from_numpy(rows.counts[ids])
    starts = torch.from_numpy(rows.starts[ids])
    m = max(int(counts.max()), 1)
    offsets = torch.arange(m)
    index = starts[:, None] + torch.minimum(offsets[None, :], (counts[:, None] - 1).clamp_min(0))
    index = index.clamp_max(len(rows.x) - 1)  # a group without rows (all dropped) points at a row it masks out
    mask = offsets[None, :] < counts[:, None]
    X = rows.x[index].to(device)
    Y = rows.y[index].to(device)
    root = mask.to(torch.float64) if rows.w is None else rows.w[index].sqrt() * mask
    root = root.to(device)
    plain = rows.w is None and bool(mask.all())  # no padding, no weights: the residuals as they are
    A, held = len(ids), len(free) < p0.shape[1]
    start = p0.to(device=device, dtype=torch.float64)
    free = free.to(device)

    def evaluate(p: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
        whole = len(groups) == A  # every group of the chunk: no gathered copies
        x, y, w = (X, Y, root) if whole else (X[groups], Y[groups], root[groups])
        if held:
            full = start.clone() if whole else start[groups]
            full[:, free] = p
            pred, J = jacobian(full, x)
            J = J[:, free]
        else:
            pred, J = jacobian(p, x)
        if plain:
            return pred - y, J
        return (pred - y) * w, J * w[:, None, :]

    weight = root.square().sum(1) if rows.w is not None else counts.to(device=device, dtype=torch.float64)
    # The rows that count, as one fit counts them: those of positive weight (a row of weight 0 carries nothing, so
    # a group whose rows all weigh 0 has too few rows, and the errors' degrees of freedom leave such rows out).
    n_rows = counts.to(device) if rows.w is None else (root > 0).sum(1)
    p0_free = start[:, free] if held else start
    if isinstance(options, DescentOptions):
        result = descend(evaluate, p0_free, n_rows, weight, options, absolute)
    else:
        lower, upper = (None, None) if box is None else (box[0][free.cpu()], box[1][free.cpu()])
        result = solve(evaluate, p0_free, n_rows, options, absolute, lower=lower, upper=upper)
    params, stderr = start.clone(), torch.full_like(start, math.nan)
    params[:, free], stderr[:, free] = result.params, result.stderr
    return params.cpu(), stderr.cpu(), result, weight.cpu()


class _Columns:
    """The result's columns, filled chunk by chunk."""

    def __init__(self, G: int, k: int):
        self.params = np.full((G, k), math.nan)
        self.stderr = np.full((G, k), math.nan)
        self.ss = np.full(G, math.nan)
        self.weight = np.zeros(G)
        self.steps = np.zeros(G, dtype=np.int64)
        self.status = np.zeros(G, dtype=np.int8)
        self.test = np.zeros(G, dtype=np.int8)

    def put(self, ids: np.ndarray, part) -> None:
        params, stderr, result, weight = part
        self.params[ids] = params.numpy()
        self.stderr[ids] = stderr.numpy()
        self.ss[ids] = result.sum_squares.cpu().numpy()
        self.weight[ids] = weight.numpy()
        self.steps[ids] = result.iterations.cpu().numpy()
        self.status[ids] = result.status.cpu().numpy()
        self.test[ids] = result.test.cpu().numpy()

    def result(self, rows: _Rows, model: Model, options, config: FitConfig, timings) -> GroupedResult:
        messages = options.messages(self.status, self.test)
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = self.ss / self.weight
        too_few = self.status == STATUS.index("too_few_rows")
        self.params[too_few] = math.nan
        return GroupedResult(
            group=rows.group,
            keys=rows.keys,
            names=tuple(model.flat_names()),
            params=self.params,
            stderr=self.stderr,
            loss=np.where(too_few, math.nan, loss),
            sum_squares=np.where(too_few, math.nan, self.ss),
            n_rows=rows.counts,
            steps=self.steps,
            status=np.asarray(STATUS, dtype=object)[self.status],
            message=messages,
            model_spec=model.describe(),
            config={**config.to_dict(), **options.describe()},
            data={
                "source": rows.origin,
                "n": int(rows.counts.sum()),
                "x": list(rows.inputs),
                "y": rows.y_name,
                "notes": list(rows.notes),
            },
            timings={**timings, "fits_per_second": len(rows.keys) / timings["elapsed"] if timings["elapsed"] else 0},
        )
