"""The options most commands share, declared once so that every command says the same thing in ``--help``:
``--quiet``, ``--debug``, ``--force`` and the ``--out`` of a command that writes a run folder.

Each is an ``Annotated`` type (``quiet: Quiet = False``), as the reading options are
(:mod:`gradfit.cli.read_options`); :func:`run_folder` makes the ``--out`` option of one command, which names
the files it writes and its default folder (``Out = Annotated[Path | None, run_folder(FILES, DEFAULT)]``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gradfit.cli.paths import given_path

__all__ = ["Debug", "Force", "Quiet", "run_folder"]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Write into an --out folder that holds other files: the earlier run's files are replaced, the other "
        "files left alone.",
    ),
]


def run_folder(files: str, default: str) -> Any:
    """The ``--out`` option (for ``Annotated[Path | None, run_folder(...)]``) of a command that writes ``files``
    into a run folder, by default a new ``default``."""
    return typer.Option(
        parser=given_path,
        metavar="PATH",
        help=f"Folder for {files} (default: a new folder {default}). A folder holding an earlier run gets this one "
        "instead; one holding other files is refused (see --force).",
        show_default=False,
    )
