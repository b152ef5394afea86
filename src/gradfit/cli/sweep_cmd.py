"""``gradfit sweep``: many learning rates (x optimizers x seeds) of one fit, run as one batched fit."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug, Force, Quiet, run_folder
from gradfit.cli.console import EXIT_FAILED, EXIT_OK, console, err_console, guarded, print_warnings
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

__all__ = ["sweep_command", "parse_lrs"]

#: The most learning rates a spec may ask for (a typo such as 1e-4:1:50000 would otherwise run for hours).
MAX_LRS = 10_000
SHOWN = 12  # members listed in the terminal's table: the best, then a count of the rest

Out = Annotated[Path | None, run_folder("sweep.csv, history.csv, sweep.png and race.png", "gradfit-out/sweep-NNN")]


def sweep_command(
    data: Annotated[str, typer.Argument(help="A CSV/TSV/Parquet file or builtin:NAME.", show_default=False)],
    y: Annotated[str, typer.Option("--y", help="The target column.", show_default=False)],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="A zoo name (`gradfit models` lists them) or a formula.", show_default=False
        ),
    ],
    lr: Annotated[
        str,
        typer.Option(
            "--lr",
            help="The learning rates: LOW:HIGH:N for N log-spaced values from LOW to HIGH (1e-4:1:50), or a "
            "comma-separated list (0.01,0.1,0.5).",
            show_default=False,
        ),
    ],
    optimizer: Annotated[
        str,
        typer.Option(help="Optimizers, comma-separated: sgd, momentum, nesterov, adam (e.g. sgd,adam)."),
    ] = "sgd",
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds 0..N-1 for each configuration (with --init-random: N starts).")
    ] = 1,
    init_random: Annotated[
        bool, typer.Option("--init-random", help="Start each member from random values drawn with its seed.")
    ] = False,
    x: Annotated[str | None, typer.Option("--x", help="Input column(s), comma-separated.")] = None,
    init: Annotated[
        list[str] | None, typer.Option("--init", help="Initial values shared by every member: a[0]=0.5,a[1]=0.75.")
    ] = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="Parameters held fixed.")] = None,
    loss: Annotated[str, table_flag("loss")] = OPTIONS["loss"].default,
    steps: Annotated[int | None, table_flag("steps", note="Here: every member's.")] = OPTIONS["steps"].default,
    tol: Annotated[float | None, table_flag("tol")] = OPTIONS["tol"].default,
    target_loss: Annotated[float | None, table_flag("target_loss")] = OPTIONS["target_loss"].default,
    momentum: Annotated[float | None, table_flag("momentum")] = OPTIONS["momentum"].default,
    dtype: Annotated[str | None, table_flag("dtype")] = OPTIONS["dtype"].default,
    compiled: Annotated[
        bool,
        typer.Option(
            "--compiled",
            help="Compile a formula's batched pass with torch.compile (row_pass='compiled'): seconds to compile, "
            "then several times faster steps; for long or repeated sweeps.",
        ),
    ] = False,
    best: Annotated[
        int, typer.Option(min=0, help="Race the best N members again on the landscape (race.png); 0: none.")
    ] = 3,
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
    """Sweep learning rates (x optimizers x seeds) as one batched fit: each member stops as its own fit would.

    Writes OUT/sweep.csv (one row per member), OUT/history.csv (member, step, loss), OUT/sweep.png (final
    loss against learning rate, divergence marked) and OUT/race.png (the best members on the landscape).

    Exit status: 0 success (even if some members diverged; the table says which), 1 when no member descended
    (every one diverged or ended above its start), 2 bad input.
    """
    with guarded(debug):
        from gradfit.atomic_files import atomic_write_text
        from gradfit.cli.parsing import parse_init, parse_names
        from gradfit.errors import GradfitWarning
        from gradfit.experiments.sweeps import descended, sweep
        from gradfit.plots.race import RaceDisplay
        from gradfit.plots.sweep import SweepDisplay
        from gradfit.run_folder import command_folder

        lrs = parse_lrs(lr)
        names = [o.strip() for o in optimizer.split(",") if o.strip()]
        options: dict[str, Any] = dict(
            x=parse_names(x, "--x"),
            init=parse_init(init),
            fix=parse_names(fix, "--fix"),
            params=parse_names(param, "--param"),
            loss=loss,
            steps=steps,
            tol=tol,
            target_loss=target_loss,
            momentum=momentum,
            dtype=dtype,
            row_pass="compiled" if compiled else None,
            read=read_options(
                sep, decimal, thousands, encoding, no_header, dates, date_unit, date_origin, dayfirst, date_format
            ),
        )
        options = {k: v for k, v in options.items() if v is not None}
        folder = command_folder(out, force=force, prefix="sweep")
        out_dir = folder.path
        files = [out_dir / name for name in ("sweep.csv", "history.csv", "sweep.png", "race.png")]
        folder.check_inputs({"The data file": data}, writes=files)
        with folder.discarded_on_error(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradfitWarning)
            result = sweep(model, data, y=y, lr=lrs, optimizer=names, seeds=seeds, init_random=init_random, **options)
            race = result.race(best=best) if best and result.ranked() else None
        print_warnings(caught)
        folder.clear_earlier()
        written = files if race is not None else files[:3]
        folder.record(written)
        atomic_write_text(files[0], result.table_csv())
        atomic_write_text(files[1], result.history_csv())
        SweepDisplay(result).save(files[2])
        if race is not None:
            RaceDisplay(race).save(files[3])
        if not quiet:
            _print(result)
            if folder.automatic or folder.replaces or folder.others:
                console.print(Text(folder.describe()), soft_wrap=True)
            for path in written:
                console.print(Text(f"wrote {path}"), soft_wrap=True)
        if not any(descended(r) for r in result.rows):
            err_console.print(
                Text(
                    f"No member of the sweep descended: every one diverged or ended above its starting loss (the "
                    f"largest learning rate tried was {max(lrs):.4g}). Try smaller learning rates (--lr LOW:HIGH:N "
                    f"with a lower HIGH); the table and sweep.png in {out_dir} show what each did."
                ),
                soft_wrap=True,
                style="red",
            )
            raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_OK)


def _print(result) -> None:
    """The best members, and how many diverged, in the terminal."""
    table = Table(show_edge=False, pad_edge=False)
    for col in ("optimizer", "lr", "seed", "final loss", "steps", "stopped"):
        table.add_column(col, justify="left" if col in ("optimizer", "stopped") else "right")
    ranked = result.ranked()
    for r in (ranked or result.rows)[:SHOWN]:  # all diverged: what each did instead
        table.add_row(r["optimizer"], f"{r['lr']:.4g}", str(r["seed"]), f"{r['loss']:.6g}", str(r["steps"]),
                      r["stop_reason"])  # fmt: skip
    console.print(table)
    from gradfit.experiments.sweeps import descended

    bad = sum(1 for r in result.rows if r["stop_reason"] == "diverged")
    worse = sum(1 for r in result.rows if r["stop_reason"] == "loss_increased")
    shown = f"the best {min(SHOWN, len(ranked))} shown" if any(map(descended, result.rows)) else "none descended"
    console.print(
        Text(
            f"{len(result)} members ({result.row_pass} pass); {shown}; "
            f"{bad} diverged, {worse} ended above their starting loss."
        ),  # fmt: skip
        soft_wrap=True,
    )


def parse_lrs(text: str) -> list[float]:
    """``LOW:HIGH:N`` (N log-spaced values from LOW to HIGH, both included) or ``a,b,c``; a ConfigError says
    what is wrong with any other text."""
    from gradfit.errors import ConfigError

    spec = text.strip()
    usage = (
        f"--lr takes LOW:HIGH:N (N log-spaced learning rates from LOW to HIGH, such as 1e-4:1:50) or numbers "
        f"separated by commas (0.01,0.1). Got {text!r}"
    )
    if ":" in spec:
        parts = spec.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(f"{usage}.") from None
        if not (0 < low < high < math.inf) or not 1 <= count <= MAX_LRS:
            raise ConfigError(f"{usage}: LOW and HIGH must be positive with LOW < HIGH, and N in 1..{MAX_LRS}.")
        if count == 1:
            return [low]
        step = (math.log10(high) - math.log10(low)) / (count - 1)
        return [low if i == 0 else high if i == count - 1 else 10 ** (math.log10(low) + i * step) for i in range(count)]
    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{usage}.") from None
    if not values or len(values) > MAX_LRS:
        raise ConfigError(f"{usage}.")
    return values
