"""``gradfit models``: the model zoo, as a table or one model in detail.

Everything shown comes from :mod:`gradfit.models.catalog`, which reads the zoo's own classes
(docstrings, parameter specs, option tables), so the listing cannot drift from the models.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug
from gradfit.cli.console import EXIT_OK, console, guarded

__all__ = ["models_command"]


def models_command(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A zoo model to show in detail (linear, poly3, exponential, ...). Leave out for the table of all.",
            show_default=False,
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="A model option KEY=VALUE for the detail (degree=3, hidden=8,8), as `gradfit fit` takes it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue (or the one model) as JSON.")] = False,
    debug: Debug = False,
) -> None:
    """List the model zoo: each model's formula, parameters, options and how its starting values are chosen.

    Give a NAME for one model in detail. Use a name with `gradfit fit --model NAME`; anything that is not a zoo
    name is read as a formula.

    Exit status: 0 success, 2 unknown model or bad option.
    """
    with guarded(debug):
        from gradfit.cli.parsing import parse_model_options
        from gradfit.errors import ConfigError
        from gradfit.models.catalog import zoo_catalog, zoo_entry

        options = parse_model_options(option)
        if options and name is None:
            raise ConfigError("--option describes one model: give its NAME too, e.g. `gradfit models mlp -o hidden=8`.")
        if name is None:
            entries = zoo_catalog()
            if as_json:
                console.out(json.dumps([_jsonable(e) for e in entries], indent=2), highlight=False)
            else:
                _print_table(entries)
        else:
            entry = zoo_entry(name, **options)
            if as_json:
                console.out(json.dumps(_jsonable(entry), indent=2), highlight=False)
            else:
                _print_detail(entry, options)
    raise typer.Exit(EXIT_OK)


def _print_table(entries) -> None:
    console.print(
        Text("The model zoo: give a name to --model (anything else is read as a formula).", style="bold"),
        soft_wrap=True,
    )
    table = Table(show_edge=False, pad_edge=False, show_lines=False)
    for column in ("model", "formula", "parameters", "options", "start"):
        table.add_column(column, overflow="fold")
    for e in entries:
        params = ", ".join(p.name if p.shape == () else f"{p.name} {p.shape_text}" for p in e.params)
        table.add_row(Text(e.names), Text(e.formula), Text(params), Text(_options(e.options) or "-"), Text(e.start))
    console.print(table)
    console.print(
        Text(
            "Shapes are for one input column x. `gradfit models NAME` shows a model in detail; "
            "--option KEY=VALUE (repeatable) sets an option when fitting."
        ),
        soft_wrap=True,
    )


def _print_detail(e, given: dict) -> None:
    console.print(Text(f"{e.model_name}: {e.formula}", style="bold"), soft_wrap=True)
    console.print()
    for paragraph in e.doc.split("\n\n"):
        console.print(Text(" ".join(paragraph.split())), soft_wrap=True)
    console.print()
    table = Table(show_edge=False, pad_edge=False, title="parameters (for one input column x)", title_justify="left")
    for column in ("parameter", "shape", "default start", "meaning"):
        table.add_column(column)
    for p in e.params:
        table.add_row(Text(p.name), p.shape_text, Text(p.start), Text(p.doc))
    console.print(table)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    accepted = ", ".join(f"{k} (default {_value(v)})" for k, v in e.options.items())
    grid.add_row("options", Text(accepted or "none"))
    grid.add_row("inputs", "exactly one column" if e.one_input else "one or more columns")
    grid.add_row("outputs", "one or several (classes)" if e.multi_output else "one")
    start = (
        "guessed from the data (the default starts above where the data give nothing to go on)"
        if e.guesses
        else "the default starts above"
    )
    grid.add_row("start", Text(f"{start}; --init NAME=VALUE overrides it"))
    if e.aliases:
        grid.add_row("also called", Text(", ".join(e.aliases)))
    option_args = "".join(f" -o {k}={_value(v)}" for k, v in given.items())
    grid.add_row("try", Text(f"gradfit fit DATA --y COLUMN --model {e.model_name}{option_args}"))
    console.print(grid)


def _options(options: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in options.items())


def _value(v) -> str:
    # As --option takes it: hidden=16,16 rather than (16, 16).
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def _jsonable(entry) -> dict:
    data = asdict(entry)
    data["start"] = entry.start
    return data
