"""What a fit on a row set can do: rows not held in memory (a file read batch by batch), checked at the door.

A :class:`gradfit.rowpass.RowSet` gives its rows only chunk by chunk, so a fit on one takes every sum over rows
through the row pass: full-batch gradient descent (each step one pass), Levenberg-Marquardt (``JᵀJ`` and ``Jᵀr``
summed over the chunks), the metrics and the error bars. Its guesses, shape checks and stability limit read evenly
spaced rows (``sample``). What needs the rows in memory is refused here with what to do instead, before any pass.
"""

from __future__ import annotations

from gradfit.errors import ConfigError, DataError
from gradfit.rowpass import RowSet


def check_row_set(rows: RowSet, config, sigma, weights, read, drop_nan: bool, checkpoint_dir, resume) -> None:
    """ConfigError for what a fit on ``rows`` cannot take (options that belong to reading a file, or that need
    every row in memory)."""
    given = [
        name
        for name, value in (
            ("sigma", sigma),
            ("weights", weights),
            ("read", read),
            ("drop_nan", drop_nan),
            ("checkpoint_dir", checkpoint_dir),
            ("resume", resume),
            ("val_split", config.val_split),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"A fit on {_name(rows)} (rows read chunk by chunk) does not take {', '.join(map(repr, given))} yet: "
            f"the row set carries its own columns and weights, and checkpoints and a validation split of rows "
            f"not held in memory are not built yet. Leave them out, or load the data in memory."
        )


def check_row_set_plan(rows: RowSet, config, device) -> None:
    """ConfigError for a plan a fit on ``rows`` cannot follow yet: mini-batches, a GPU."""
    if config.batch_size is not None and config.batch_size < len(rows):
        raise ConfigError(
            f"Mini-batches over {_name(rows)} (rows read chunk by chunk) are not built yet: leave out batch_size "
            f"for full-batch steps (each step reads every row once), or load the data in memory."
        )
    if getattr(device, "type", "cpu") != "cpu":
        raise ConfigError(f"A fit on {_name(rows)} runs on the CPU for now: leave out device, or give 'cpu'.")


def check_weights(rows: RowSet) -> None:
    """DataError when no row has a positive weight."""
    total = rows.weight_total()
    if total is not None and total <= 0:
        raise DataError(f"Every row of {_name(rows)} has weight 0: give some rows a weight > 0.")


def _name(rows: RowSet) -> str:
    return str(getattr(rows, "source", "the row set"))
