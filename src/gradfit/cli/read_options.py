"""The reading options every command that reads data shares: ``--sep``, ``--decimal``, ``--dates``...

Each is an ``Annotated`` type, so ``gradfit fit``, ``lr-find`` and ``race`` declare them in one
line each and say the same thing in ``--help``; :func:`read_options` turns them into the
``read=`` mapping of :func:`gradfit.fit` (checked there, by the library).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

__all__ = [
    "DateFormat",
    "DateOrigin",
    "DateUnit",
    "Dates",
    "DayFirst",
    "Decimal",
    "Encoding",
    "NoHeader",
    "Params",
    "Sep",
    "Thousands",
    "read_options",
]

_PANEL = "Reading the data"

Sep = Annotated[
    Optional[str],
    typer.Option(
        "--sep",
        help="Field separator: ',', ';', '|', tab, space or whitespace (runs of blanks). Default: detected "
        "(a ';'-separated .csv is recognised).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
Decimal = Annotated[
    Optional[str],
    typer.Option(
        "--decimal",
        help="Decimal mark, '.' or ','. Default: detected (',' when numbers read 1,5 with --sep ';').",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
Thousands = Annotated[
    Optional[str],
    typer.Option(
        "--thousands",
        help="Thousands separator, e.g. '.' for 1.234,5 or ',' for 1,234.5. Default: detected from grouped numbers.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
Encoding = Annotated[
    Optional[str],
    typer.Option(
        "--encoding",
        help="Text encoding: utf-8 (default), latin-1, cp1252, utf-16...",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
NoHeader = Annotated[
    bool,
    typer.Option(
        "--no-header", help="The file has no header line: its columns are named c1, c2, ...", rich_help_panel=_PANEL
    ),
]
Dates = Annotated[
    Optional[list[str]],
    typer.Option(
        "--dates",
        help="Column(s) of dates or times, comma-separated: converted to a unit since an origin (both stated). "
        "Reads 2020-03-31[ 14:05[:30]], 31/03/2020, 03/31/2020, 31.03.2020.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
DateUnit = Annotated[
    Optional[str],
    typer.Option(
        "--date-unit",
        help="Unit of the --dates columns: seconds, minutes, hours, days, weeks, years (365.25 days) or "
        "auto (default: the largest unit the data spans twice).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
DateOrigin = Annotated[
    Optional[str],
    typer.Option(
        "--date-origin",
        help="The date that is 0, e.g. 2000-01-01 (default: the first day in the data).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
DayFirst = Annotated[
    Optional[bool],
    typer.Option(
        "--dayfirst/--monthfirst",
        help="Read dates such as 01/02/2020 day-first (1 February) or month-first "
        "(2 January). Default: decided from the values; asked when they cannot tell.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
DateFormat = Annotated[
    Optional[str],
    typer.Option(
        "--date-format",
        help="The strftime format of the --dates columns, e.g. '%d %b %Y' for 31 Mar 2020.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
Params = Annotated[
    Optional[list[str]],
    typer.Option(
        "--param",
        help="Formula names that are parameters, comma-separated: needed for a name close to a column "
        "(bpp next to bp) or equal to one, which is otherwise refused.",
        show_default=False,
    ),
]


def read_options(
    sep: str | None = None,
    decimal: str | None = None,
    thousands: str | None = None,
    encoding: str | None = None,
    no_header: bool = False,
    dates: list[str] | None = None,
    date_unit: str | None = None,
    date_origin: str | None = None,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> dict | None:
    """The flags as ``gradfit.fit``'s ``read=`` mapping (None when none was given)."""
    from gradfit.cli.parsing import parse_names

    read = {
        "sep": sep,
        "decimal": decimal,
        "thousands": thousands,
        "encoding": encoding,
        "header": False if no_header else None,
        "dates": parse_names(dates, "--dates"),
        "date_unit": date_unit,
        "date_origin": date_origin,
        "dayfirst": dayfirst,
        "date_format": date_format,
    }
    read = {k: v for k, v in read.items() if v is not None}
    return read or None
