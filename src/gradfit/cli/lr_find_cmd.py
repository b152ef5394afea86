"""``gradfit lr-find``: sweep the learning rate, print the suggestions, draw the curve.

A thin command over :func:`gradfit.experiments.lr_finder.find_lr`: it writes ``OUT/lr_find.png`` and
``OUT/lr_find.json`` and prints the suggested learning rates and, for full-batch sgd, the stability
limit ``2 / lambda_max``. torch and the library are imported inside the command.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug, Force, Quiet, run_folder
from gradfit.cli.console import EXIT_OK, console, guarded
from gradfit.cli.read_options import (
    DateFormat,
    DateOrigin,
    Dates,
    DateUnit,
    DayFirst,
    Decimal,
    Encoding,
    NoHeader,
    Params,
    Sep,
    Thousands,
    read_options,
)
from gradfit.cli.table_flags import table_flag
from gradfit.options import OPTIONS

__all__ = ["lr_find_command", "OWN_DEFAULTS"]

#: Where lr-find's default differs from a fit's (gradfit.options.OPTIONS): find_lr's, a short sweep of plain sgd.
OWN_DEFAULTS: dict[str, Any] = {"optimizer": "sgd", "steps": 100}

_DATA_HELP = (
    "The data: a CSV/TSV/Parquet file, or a built-in dataset: builtin:linear, builtin:rollercoaster, builtin:blobs, "
    "builtin:wells (one decay curve per well, for --group well)."
)

Out = Annotated[Path | None, run_folder("lr_find.png and lr_find.json", "gradfit-out/lr-find-NNN")]


def lr_find_command(
    data: Annotated[str, typer.Argument(help=_DATA_HELP, show_default=False)],
    y: Annotated[str, typer.Option("--y", help="The target column.", show_default=False)],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="A zoo name (`gradfit models` lists them) or a formula.", show_default=False
        ),
    ],
    x: Annotated[str | None, typer.Option("--x", help="Input column(s), comma-separated.")] = None,
    init: Annotated[
        list[str] | None, typer.Option("--init", help="Initial values: a[0]=0.5,a[1]=0.75, or 'random'.")
    ] = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Parameters held fixed, comma-separated.")] = None,
    loss: Annotated[str, table_flag("loss")] = OPTIONS["loss"].default,
    optimizer: Annotated[
        str,
        table_flag(
            "optimizer",
            note="Here: the optimizer whose learning rate is swept, "
            "default sgd; one of sgd, momentum, nesterov, adam, adamw, rmsprop or "
            "adagrad (auto, lbfgs and lm size their own steps).",
        ),
    ] = OWN_DEFAULTS["optimizer"],
    lr_min: Annotated[float, typer.Option(help="First learning rate of the sweep.")] = 1e-7,
    lr_max: Annotated[float, typer.Option(help="Last learning rate of the sweep.")] = 10.0,
    steps: Annotated[
        int, table_flag("steps", note="Here: the updates in the sweep, default 100, at least 5.")
    ] = OWN_DEFAULTS["steps"],
    batch_size: Annotated[int | None, table_flag("batch_size")] = OPTIONS["batch_size"].default,
    seed: Annotated[int, table_flag("seed")] = OPTIONS["seed"].default,
    dtype: Annotated[str | None, table_flag("dtype")] = OPTIONS["dtype"].default,
    param: Params = None,
    sep: Sep = None,
    decimal: Decimal = None,
    thousands: Thousands = None,
    encoding: Encoding = None,
    no_header: NoHeader = False,
    dates: Dates = None,
    date_unit: DateUnit = None,
    date_origin: DateOrigin = None,
    dayfirst: DayFirst = None,
    date_format: DateFormat = None,
    out: Out = None,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Find a learning rate: one run whose lr grows from --lr-min to --lr-max; the loss against the lr
    (OUT/lr_find.png, OUT/lr_find.json) and the suggested rates.

    Exit status: 0 success (a sweep that ends in divergence is the expected outcome), 2 bad input (nothing written).
    """
    with guarded(debug):
        import json

        from gradfit.atomic_files import atomic_write_text
        from gradfit.cli.parsing import parse_init, parse_names
        from gradfit.experiments.lr_finder import find_lr
        from gradfit.plots.lr_finder import LRFinderDisplay
        from gradfit.run_folder import command_folder
        from gradfit.train.result import json_safe

        parsed: dict[str, Any] = {  # find_lr's options, as gradfit.fit reads them
            "x": parse_names(x, "--x"),
            "init": parse_init(init),
            "fix": parse_names(fix, "--fix"),
            "params": parse_names(param, "--param"),
            "read": read_options(
                sep, decimal, thousands, encoding, no_header, dates, date_unit, date_origin, dayfirst, date_format
            ),
        }
        folder = command_folder(out, force=force, prefix="lr-find")
        out_dir = folder.path
        folder.check_inputs({"The data file": data}, writes=[out_dir / "lr_find.json", out_dir / "lr_find.png"])
        options: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
        with folder.discarded_on_error():
            result = find_lr(
                model,
                data,
                y=y,
                loss=loss,
                optimizer=optimizer,
                lr_min=lr_min,
                lr_max=lr_max,
                steps=steps,
                batch_size=batch_size,
                seed=seed,
                **parsed,
                **options,
            )
            display = LRFinderDisplay(result)
        folder.clear_earlier()
        folder.record([out_dir / "lr_find.json", out_dir / "lr_find.png"])
        text = json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False) + "\n"  # no NaN tokens
        written = [atomic_write_text(out_dir / "lr_find.json", text), display.save(out_dir / "lr_find.png")]
        if not quiet:
            _print(result, written, folder)
    raise typer.Exit(EXIT_OK)


def _print(result, written, folder) -> None:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("suggestion")
    table.add_column("lr", justify="right")
    table.add_row("steepest descent of the loss", _fmt(result.suggestion))
    table.add_row("minimum of the loss / 10", _fmt(result.suggestion_min10))
    table.add_row("minimum of the loss", _fmt(result.min_lr))
    limit = result.stability_limit
    if limit is not None:
        table.add_row(Text(f"stability limit 2/λmax (λmax = {limit.lam_max:.4g})"), _fmt(limit.limit))
    console.print(table)
    end = "stopped when the loss diverged" if result.stopped_early else "reached the last learning rate"
    console.print(
        Text(
            f"{result.optimizer}: {result.steps_run} steps from lr {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}; {end}."
        ),
        soft_wrap=True,
    )
    if limit is not None and math.isfinite(limit.limit) and result.min_lr > limit.limit:
        console.print(
            Text(
                f"Note: the loss was lowest at lr {result.min_lr:.3g}, above the stability limit "
                f"{limit.limit:.3g}: the sweep spends too few steps at each rate for the oscillation to "
                f"grow. A constant lr above the limit diverges; stay below it."
            ),
            soft_wrap=True,
        )
    if folder.automatic or folder.replaces or folder.others:
        console.print(Text(folder.describe()), soft_wrap=True)
    for path in written:
        console.print(Text(f"wrote {path}"), soft_wrap=True)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)
