"""The flags of the option table (:mod:`gradfit.options`) for the commands that run fits besides ``gradfit fit``.

``gradfit race`` and ``gradfit lr-find`` take the options they share with a fit (``--optimizer``, ``--steps``,
``--seed``...) through :func:`table_flag`, so each flag has the table's name, help and range check: a value
out of range is refused while the command line is read, with the table's message (``Error: The 'steps'
parameter must be a whole number >= 0. Got -1 instead.``, exit 2), as ``gradfit fit`` refuses it.
A command whose default differs from the table's (lr-find sweeps 100 steps, not 1000) says so in its
``OWN_DEFAULTS``; tests/test_options.py checks every such flag against the table.
"""

from __future__ import annotations

from typing import Any

import typer

from gradfit.cli.console import abort
from gradfit.options import OPTIONS

__all__ = ["table_flag"]


def table_flag(name: str, *, note: str = "") -> Any:
    """The ``typer.Option`` of the table's option ``name``: its CLI flag, its help and its range check.

    Parameters
    ----------
    name : str
        An option of :data:`gradfit.options.OPTIONS` that has a CLI flag.
    note : str, optional
        What differs in this command, put after the table's help and begun with ``Here:``: another default
        or another role (race's ``--optimizer`` is the optimizer of an ``--lrs`` race, sgd unless given).

    Examples
    --------
    >>> table_flag("steps", note="Here: every run's.").help
    "Budget in updates (default 1000). Here: every run's."
    """
    option = OPTIONS[name]
    if option.cli is None:
        raise ValueError(f"The option {name!r} has no CLI flag in gradfit.options.OPTIONS.")

    def check(value):
        # Here, not in the library only: the command is refused before it reads data or makes a folder.
        problem = option.problem(value)
        if problem is not None:
            abort(problem)
        return value

    help_text = f"{option.help} {note}" if note else option.help
    return typer.Option(option.cli, help=help_text, callback=check)
