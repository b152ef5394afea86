"""``gradfit race``: several optimizers (or learning rates) on the same problem, side by side."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug, Force, Quiet, run_folder
from gradfit.cli.console import EXIT_OK, console, guarded, print_warnings
from gradfit.cli.paths import given_path
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

__all__ = ["race_command", "OWN_DEFAULTS"]

#: Where race's default differs from a fit's (gradfit.options.OPTIONS): an --lrs race is of plain sgd.
OWN_DEFAULTS = {"optimizer": "sgd"}

Out = Annotated[Path | None, run_folder("race.png", "gradfit-out/race-NNN")]


def race_command(
    data: Annotated[str, typer.Argument(help="A CSV/TSV/Parquet file or builtin:NAME.", show_default=False)],
    y: Annotated[str, typer.Option("--y", help="The target column.", show_default=False)],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="A zoo name (`gradfit models` lists them) or a formula.", show_default=False
        ),
    ],
    optimizers: Annotated[
        str | None,
        typer.Option(
            help="Optimizers to race, comma-separated; NAME:LR sets a "
            "learning rate, e.g. sgd:0.1,momentum:0.1,adam:0.1,lm (lm, "
            "Levenberg-Marquardt, takes none)."
        ),
    ] = None,
    lrs: Annotated[
        str | None,
        typer.Option(
            help="Learning rates to race for one --optimizer, comma-separated (e.g. 0.01,0.1,0.5).", show_default=False
        ),
    ] = None,
    optimizer: Annotated[
        str, table_flag("optimizer", note="Here: the optimizer of an --lrs race, default sgd.")
    ] = OWN_DEFAULTS["optimizer"],
    x: Annotated[str | None, typer.Option("--x", help="Input column(s), comma-separated.")] = None,
    init: Annotated[
        list[str] | None,
        typer.Option("--init", help="Initial values shared by every run: a[0]=0.5,a[1]=0.75, or 'random'."),
    ] = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Parameters held fixed.")] = None,
    loss: Annotated[str, table_flag("loss")] = OPTIONS["loss"].default,
    steps: Annotated[int | None, table_flag("steps", note="Here: every run's.")] = OPTIONS["steps"].default,
    epochs: Annotated[int | None, table_flag("epochs", note="Here: every run's.")] = OPTIONS["epochs"].default,
    batch_size: Annotated[int | None, table_flag("batch_size")] = OPTIONS["batch_size"].default,
    seed: Annotated[int, table_flag("seed", note="Here: shared by every run.")] = OPTIONS["seed"].default,
    dtype: Annotated[str | None, table_flag("dtype")] = OPTIONS["dtype"].default,
    landscape: Annotated[
        str | None,
        typer.Option(help="The landscape's two parameters A,B (default: the first two free ones).", show_default=False),
    ] = None,
    animate: Annotated[
        Path | None,
        typer.Option(
            parser=given_path,
            metavar="PATH",
            help="Also write an animation: FILE.gif, FILE.mp4 or FILE.html.",
            show_default=False,
        ),
    ] = None,
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
    """Race optimizers or learning rates on one problem: loss curves on one plot and paths on one landscape
    (OUT/race.png).

    Exit status: 0 success (even if some runs diverged; the table says which), 2 bad input.
    """
    with guarded(debug):
        from gradfit.cli.parsing import parse_init, parse_names
        from gradfit.cli.picture_options import parse_pair
        from gradfit.errors import ConfigError, GradfitWarning
        from gradfit.experiments.race import run_race
        from gradfit.plots.animate import RaceAnimation
        from gradfit.plots.race import RaceDisplay
        from gradfit.plots.run_pictures import check_animation_path
        from gradfit.run_folder import command_folder

        if (optimizers is None) == (lrs is None):
            raise ConfigError("Say what to race: --optimizers sgd,momentum,adam or --lrs 0.01,0.1 (one of the two).")
        pair = parse_pair(landscape)
        if animate is not None:
            check_animation_path(animate)
        common: dict[str, Any] = dict(  # fit options for every run
            x=parse_names(x, "--x"),
            y=y,
            init=parse_init(init),
            fix=parse_names(fix, "--fix"),
            loss=loss,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            dtype=dtype,
            params=parse_names(param, "--param"),
            read=read_options(
                sep, decimal, thousands, encoding, no_header, dates, date_unit, date_origin, dayfirst, date_format
            ),
        )
        common = {k: v for k, v in common.items() if v is not None}
        folder = command_folder(out, force=force, prefix="race")
        out_dir = folder.path
        folder.check_inputs({"The data file": data}, writes=[out_dir / "race.png", animate])
        with folder.discarded_on_error(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradfitWarning)
            if lrs is not None:
                race = run_race(model, data, lrs=_floats(lrs), landscape_params=pair, optimizer=optimizer, **common)
            else:
                assert optimizers is not None  # one of --optimizers and --lrs, checked above
                race = run_race(
                    model,
                    data,
                    optimizers=[o.strip() for o in optimizers.split(",") if o.strip()],
                    landscape_params=pair,
                    **common,
                )
        print_warnings(caught)  # each run's verdict, named by its label
        folder.clear_earlier()
        folder.record([out_dir / "race.png", *([animate] if animate is not None else [])])
        written = [RaceDisplay(race).save(out_dir / "race.png")]
        if animate is not None:
            written.append(RaceAnimation(race).save(animate))
        if not quiet:
            table = Table(show_edge=False, pad_edge=False)
            for col in ("run", "final loss", "steps", "stopped"):
                table.add_column(col, justify="left" if col in ("run", "stopped") else "right")
            for label, r in zip(race.labels, race.results):
                table.add_row(Text(label), f"{r.loss:.6g}", str(r.steps), r.stop_reason)
            console.print(table)
            if folder.automatic or folder.replaces or folder.others:
                console.print(Text(folder.describe()), soft_wrap=True)
            for path in written:
                console.print(Text(f"wrote {path}"), soft_wrap=True)
    raise typer.Exit(EXIT_OK)


def _floats(text: str) -> list[float]:
    from gradfit.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--lrs takes numbers separated by commas, such as 0.01,0.1. Got {text!r} instead.") from None
