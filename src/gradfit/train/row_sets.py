"""What a fit on a row set can do: rows not held in memory (a file read batch by batch), checked at the door.

A :class:`gradfit.rowpass.RowSet` gives its rows only chunk by chunk, so a fit on one takes every sum over rows
through the row pass: full-batch gradient descent (each step one pass), Levenberg-Marquardt (``JᵀJ`` and ``Jᵀr``
summed over the chunks), the metrics and the error bars. Its guesses, shape checks and stability limit read evenly
spaced rows (``sample``). A streamed file's rows also take mini-batches (read window by window:
:mod:`gradfit.train.stream_batches`) and a validation split by blocks of file rows
(:func:`gradfit.data.file_rows.split_blocks`). What needs the rows in memory is refused here with what to do
instead, before any pass.
"""

from __future__ import annotations

import json
import os

import torch
from torch import Tensor

from gradfit.distributed import current
from gradfit.errors import ConfigError, DataError
from gradfit.models.builder import check_names, default_inputs
from gradfit.rowpass import RowSet, across, rows_of


def open_stream(path, model, x, y, declared, sigma, weights, absolute_sigma: bool, drop_nan: bool, read, dtype):
    """The rows of the file at ``path`` as a row set read batch by batch (``gradfit.fit(..., stream=True)``): its
    columns checked against the model's names as for a file read whole, its values in one pass."""
    from gradfit.data.file_rows import file_columns, open_file_rows

    if not isinstance(path, (str, os.PathLike)) or str(path).startswith("builtin:"):
        raise ConfigError(
            f"stream=True (--stream) reads a Parquet or CSV file batch by batch; got {type(path).__name__}, which "
            f"is in memory already. Give the path of a file, or leave out stream."
        )
    if read:
        raise ConfigError(
            f"A streamed file is read as Parquet, or as CSV with a comma, a point for decimals and a header row; "
            f"the reading options {', '.join(map(repr, read))} are not built for streaming yet. Convert the file "
            f"(e.g. to Parquet), or leave out stream."
        )
    for name, value in (("sigma", sigma), ("weights", weights)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"With stream=True, {name} must name a column of the file, not hold the values.")
    columns = file_columns(path)
    check_names(model, columns, y, x, declared)
    weight_columns = [c for c in (sigma, weights) if c is not None]
    inputs = list(x) if x is not None else default_inputs(model, columns, y, declared, weight_columns)
    group = current()
    if group is not None:  # one of many processes: its own row groups, its sums added to the others'
        from gradfit.data.shard_rows import open_shard

        return open_shard(
            path,
            inputs,
            y,
            group,
            sigma=sigma,
            weights=weights,
            absolute_sigma=absolute_sigma,
            dtype=dtype,
            drop_nan=drop_nan,
        )
    return open_file_rows(
        path, inputs, y, sigma=sigma, weights=weights, absolute_sigma=absolute_sigma, dtype=dtype, drop_nan=drop_nan
    )


def unjoined_launch() -> str | None:
    """A warning's text when torchrun started this process among others but no process group was started: every
    process would then fit all the rows by itself (the same result, the work done ``WORLD_SIZE`` times)."""
    world = os.environ.get("WORLD_SIZE", "1")
    if current() is not None or not world.isdigit() or int(world) <= 1 or "RANK" not in os.environ:
        return None
    return (
        f"This process is one of {world} that torchrun started, but no process group was started, so each of them "
        f"fits all the rows by itself. Call gradfit.distributed.init_from_env() before gradfit.fit to share the "
        f"rows (the command line does it)."
    )


def stream_instead(data, config, read, sigma, weights) -> str | None:
    """Why ``data`` is streamed when ``stream`` was not given (a note for ``result.data["notes"]``): a Parquet or CSV
    file that would not fit in the memory budget read whole, for a fit that streaming serves, or any file of a fit
    spread over processes (each reads its own rows). None otherwise."""
    from gradfit.data.file_rows import loaded_bytes
    from gradfit.memory import budget, format_bytes

    if not isinstance(data, (str, os.PathLike)) or str(data).startswith("builtin:") or read:
        return None
    group = current()
    if group is not None:
        return f"each of the {group.world} processes reads its own row groups of {os.fspath(data)}"
    if (
        config.batch_size is not None
        or config.val_split
        or not all(isinstance(w, (str, type(None))) for w in (sigma, weights))
    ):
        return None
    size, limit = loaded_bytes(data), budget()
    if size is None or size <= limit.nbytes:
        return None
    return (
        f"{os.fspath(data)} would take about {format_bytes(size)} in memory, above the memory budget ({limit}), so it "
        f"is read batch by batch at every pass instead (stream=True, --stream); the results are the same"
    )


def check_row_set(rows: RowSet, config, sigma, weights, read, drop_nan: bool) -> None:
    """ConfigError for what a fit on ``rows`` cannot take (options that belong to reading a file, or that need
    every row in memory)."""
    given = [
        name
        for name, value in (("sigma", sigma), ("weights", weights), ("read", read), ("drop_nan", drop_nan))
        if value
    ]
    if given:
        raise ConfigError(
            f"A fit on {_name(rows)} (rows read chunk by chunk) does not take {', '.join(map(repr, given))}: "
            f"the row set carries its own columns and weights (a streamed file reads them: give them with "
            f"stream=True). Leave them out, or load the data in memory."
        )
    if config.val_split and not hasattr(rows, "split"):
        raise ConfigError(
            f"A validation split of {_name(rows)} (rows read chunk by chunk) needs rows that can be split by ranges, "
            f"such as a streamed file's (stream=True); this row set cannot. Leave out val_split, or load the data "
            f"in memory."
        )


def check_row_set_plan(rows: RowSet, config, device, model=None) -> None:
    """ConfigError for a plan a fit on ``rows`` cannot follow yet: mini-batches of rows that cannot be read by
    blocks (a streamed file's can: :mod:`gradfit.train.stream_batches`), a GPU. Over many processes, also that
    every process fits the same model with the same options to the same rows (a DistributedError on every
    process, naming what differs, rather than a hang in a later step)."""
    mini_batches = config.batch_size is not None and config.batch_size < len(rows)
    if mini_batches and not hasattr(getattr(rows, "local", rows), "read_blocks"):
        raise ConfigError(
            f"Mini-batches over {_name(rows)} (rows read chunk by chunk) need rows that can be read block by block, "
            f"such as a streamed file's (stream=True); this row set cannot. Leave out batch_size for full-batch "
            f"steps (each step reads every row once), or load the data in memory."
        )
    if getattr(device, "type", "cpu") != "cpu":
        raise ConfigError(f"A fit on {_name(rows)} runs on the CPU for now: leave out device, or give 'cpu'.")
    if getattr(rows, "combine", None) is not None and config.max_time is not None:
        raise ConfigError(
            "max_time (--max-time) stops a fit by its own clock, which each of many processes reads at its own "
            "moment; a fit spread over processes takes steps or epochs as its budget. Leave out max_time."
        )
    group = getattr(rows, "group", None)
    if group is not None:
        from gradfit.distributed import digest, same_everywhere

        spec = json.dumps(getattr(model, "describe", dict)(), sort_keys=True, default=repr)
        options = json.dumps(config.to_dict(), sort_keys=True, default=repr)
        same_everywhere([len(rows), digest(spec), digest(options)], "the rows, the model and the options", group)


#: Rows per chunk of the passes that read the targets alone.
CHECK_CHUNK = 1 << 16
#: Distinct target values a classification loss can use at most (labels beyond are refused as too many classes).
MAX_LABELS = 100_000


def target_values(rows: RowSet) -> Tensor:
    """The distinct finite targets of every row (one pass; every process's, for a shard): what a classification
    loss's number of classes is read from, where the evenly spaced sample might miss a rare label."""
    seen = torch.zeros(0, dtype=torch.float64)
    for _, y, _ in rows_of(rows, chunk_size=CHECK_CHUNK).chunks():
        if y is not None and len(seen) <= MAX_LABELS:
            values = y.double()
            seen = torch.unique(torch.cat([seen, values[torch.isfinite(values)]]))
    return torch.unique(torch.cat(across(rows, seen)))


def check_targets(loss, rows: RowSet, n_outputs: int) -> None:
    """``loss.check_targets`` over every row of ``rows`` when it reads the targets' values (a classification loss),
    naming rows as the file counts them; a DataError found by one process is raised by every process."""
    if not getattr(loss, "reads_targets", False):
        return
    problem, start = None, int(getattr(rows, "offset", 0))
    for _, y, _ in rows_of(rows, chunk_size=CHECK_CHUNK).chunks():
        assert y is not None  # a fit's row set has its targets
        try:
            loss.check_targets(y, n_outputs, first_row=start)
        except DataError as exc:
            problem = str(exc)
            break
        start += len(y)
    found = [p for p in across(rows, problem) if p is not None]
    if found:
        raise DataError(found[0])


def check_weights(rows: RowSet) -> None:
    """DataError when no row has a positive weight."""
    total = rows.weight_total()
    if total is not None and total <= 0:
        raise DataError(f"Every row of {_name(rows)} has weight 0: give some rows a weight > 0.")


def _name(rows: RowSet) -> str:
    return str(getattr(rows, "source", "the row set"))
