"""``gradfit steps``: seed 002's walk-through (params, grad, lr * grad, loss) of a saved run.

The table comes from :func:`gradfit.analysis.walkthrough.step_table`. On the terminal it is shown
long: one block per step and one line per parameter, which fits an 80-column screen whatever
the number of parameters; ``--csv FILE`` writes the wide DataFrame instead. Plain gradient
descent shows ``lr*grad``, the step it takes; any other run (Levenberg-Marquardt, ``--scale``,
momentum, Adam...) shows the update it took, and the notes say what that step is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug
from gradfit.cli.console import console, guarded
from gradfit.cli.paths import given_path

__all__ = ["MAX_SHOWN_PARAMS", "print_steps", "steps_command"]

# More lines per step than this stop being a walk-through; --csv has them all.
MAX_SHOWN_PARAMS = 12


def steps_command(
    run: Annotated[
        Path,
        typer.Argument(
            parser=given_path,
            metavar="RUN",
            help="The folder of a saved run (the --out of `gradfit fit`).",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="The fit's data, when it was not a file or built-in dataset that can be read again."
        ),
    ] = None,
    rows: Annotated[
        int, typer.Option("--rows", help="Most steps shown, evenly spread; step 0 and the last are always shown.")
    ] = 50,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv", parser=given_path, metavar="PATH", help="Write the table to this CSV file instead of printing it."
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Show each step of a saved fit: parameters, gradient, lr * gradient and loss (as seed 002 prints them).

    The gradient and the loss are recomputed at each kept parameter snapshot on the full data. Runs that do not
    step by lr * gradient (lm, --scale, momentum, adam...) show the update they took instead.

    Exit status: 0 success, 2 bad input (no run in the folder, unreadable data).
    """
    with guarded(debug):
        from gradfit.analysis.walkthrough import step_table
        from gradfit.atomic_files import atomic_path
        from gradfit.errors import ConfigError
        from gradfit.input_files import check_inputs_kept
        from gradfit.outputs import load_run, run_inputs

        if rows < 1:
            raise ConfigError(f"--rows must be a whole number >= 1. Got {rows} instead.")
        if csv is not None and not csv.parent.is_dir():
            raise ConfigError(f"Cannot write {str(csv)!r}: the folder {str(csv.parent)!r} does not exist.")
        result = load_run(run)
        if csv is not None:
            check_inputs_kept(run_inputs(run, data or result.data.get("path")), [csv], fix="give another file to --csv")
        table = step_table(result, data=data, max_rows=rows)
        if csv is not None:
            with atomic_path(csv) as tmp:
                table.to_csv(tmp, index=False, lineterminator="\n")
            console.print(Text(f"wrote {csv} ({len(table)} steps, {len(table.columns)} columns)"), soft_wrap=True)
            return
        print_steps(result, table, run)


def print_steps(result, table, run: Path | str = "") -> None:
    """Print the step table long: a block per step, a line per parameter."""
    from gradfit.analysis.walkthrough import grad_column, lr_grad_column, plain_descent, update_column

    names = list(result.history.param_names)
    shown = names[:MAX_SHOWN_PARAMS]
    config, info = result.config, result.data
    lm = config.get("optimizer") == "lm"
    plain = plain_descent(result)
    how = "Levenberg-Marquardt" if lm else f"{config.get('optimizer')} lr {_fmt(config.get('lr'))}"
    if config.get("scale"):
        how += f" on scaled parameters ({_scaling_kind(result)})"
    console.print(
        Text(
            f"Steps of {run}: {info.get('y', 'y')} = {_model_name(result.model_spec)}, {how}, "
            f"{len(table)} of {len(result.history.snapshot_steps)} kept snapshots",
            style="bold",
        ),
        soft_wrap=True,
    )
    notes = [
        f"Loss and gradient recomputed at each {'iteration' if lm else 'step'} on all {info.get('n', '?')} "
        f"rows of the data, in the units of the data and the parameters"
    ]
    if info.get("n_val"):
        notes.append(
            f"The fit trained on {info.get('n_train')} of them (the rest were its validation rows), so "
            f"this loss is not the history's training loss"
        )
    if config.get("batch_size"):
        notes.append(
            f"The fit used mini-batches of {config['batch_size']} rows, so this is the full-data "
            f"gradient, not the batch's"
        )
    if plain:
        notes.append(
            "lr*grad is the step plain SGD takes (params -= lr*grad); '-' at the final step, which no update leaves"
        )
    else:
        notes.append(
            _step_rule(result) + "; update is the change to the next step's parameters (params[k+1] - "
            "params[k]), '-' where that step's snapshot was not kept and at the final step"
        )
    if len(shown) < len(names):
        notes.append(f"Showing {len(shown)} of {len(names)} parameters; --csv FILE writes them all")
    for note in notes:
        console.print(Text(note + ".", style="dim"), soft_wrap=True)

    rate = "damping" if lm else "lr"
    step_col, step_name = (lr_grad_column, "lr*grad") if plain else (update_column, "update")
    out = Table(show_edge=False, pad_edge=False)
    for col in ("iteration" if lm else "step", "loss", rate, "param", "value", "grad", step_name):
        out.add_column(col, justify="left" if col == "param" else "right", no_wrap=True)
    for i, row in enumerate(table.itertuples(index=False)):
        record = dict(zip(table.columns, row))
        for j, name in enumerate(shown):
            head = (str(record["step"]), _fmt(record["loss"]), _fmt(record[rate])) if j == 0 else ("", "", "")
            out.add_row(
                *head,
                Text(name),
                _fmt(record[name]),
                _fmt(record[grad_column(name)]),
                _fmt(record[step_col(name)]),
                end_section=(j == len(shown) - 1 and i < len(table) - 1),
            )
    console.print(out)


def _step_rule(result) -> str:
    """What one update of this run is, in words and symbols."""
    config = result.config
    name = str(config.get("optimizer") or "sgd")
    if name == "lm":
        return (
            "Levenberg-Marquardt: each iteration solves (JᵀJ + damping·DᵀD) step = -Jᵀr for the residuals r "
            "and their Jacobian J (D: Marquardt's scaling); damping 0 is a Gauss-Newton step, a large damping a "
            "short step down the gradient"
        )
    if config.get("scale"):
        factor = (result.diagnostics.get("scaling") or {}).get("loss_factor")
        over = f"{_fmt(factor)}" if factor is not None else "the loss factor"
        rule = (
            f"params -= lr / {over} · A·Aᵀ·grad"
            if name == "sgd" and not config.get("momentum")
            else f"{name}'s step on q, mapped back through A"
        )
        return (
            f"The descent ran on scaled parameters q, params = params0 + A·q (--scale; A from the Jacobian at "
            f"the start, the loss divided by {over}): {rule}, not lr*grad"
        )
    return f"{name} does not step by lr*grad (it keeps its own running state)"


def _scaling_kind(result) -> str:
    return str((result.diagnostics.get("scaling") or {}).get("kind") or "scaled")


def _model_name(spec: dict) -> str:
    return str(spec.get("formula") or spec.get("name") or spec.get("kind") or "model")


def _fmt(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    return f"{value + 0.0:.6g}"
