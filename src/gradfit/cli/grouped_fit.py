"""``gradfit fit DATA --group COL``: one fit per group, written as a table (``groups.csv``, ``groups.parquet``).

The command checks everything it can before reading (the library refuses the options a grouped fit does not
take), fits, then writes ``OUT/groups.csv`` (and ``groups.parquet`` with ``--parquet``) and ``OUT/result.json``,
the counts by status. It exits 0 when at least one group converged, 1 when none did; when some failed it says how
many and where to read why (the table's status and message columns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.text import Text

from gradfit.cli.console import EXIT_FAILED, EXIT_OK, abort, console, err_console

GROUPS_CSV, GROUPS_PARQUET, SUMMARY = "groups.csv", "groups.parquet", "result.json"


def run_grouped(
    data: str,
    *,
    model: str,
    y: str,
    group: str,
    parquet: bool = False,
    out: Path | None = None,
    force: bool = False,
    quiet: bool = False,
    unused: dict[str, Any],
    **given: Any,
) -> int:
    """The body of ``gradfit fit --group``: returns the exit code; raises GradfitError for bad input (exit 2).

    ``unused``: the command's flags that a grouped fit does not take, by flag, refused when given."""
    from gradfit.api import fit
    from gradfit.errors import ConfigError
    from gradfit.run_folder import command_folder
    from gradfit.train.interrupt import StopRequest, current_request

    given_flags = [flag for flag, value in unused.items() if value not in (None, False, [], ())]
    if given_flags:
        raise ConfigError(
            f"--group does not take {', '.join(given_flags)}: a grouped fit writes a table of its groups, with no "
            f"pictures, checkpoints or processes for now."
        )
    folder = command_folder(out, force=force)
    files = [folder.path / GROUPS_CSV, folder.path / SUMMARY] + ([folder.path / GROUPS_PARQUET] if parquet else [])
    folder.check_inputs({"The data file": data}, writes=files)
    stop = current_request()  # the command's interrupt window (falsy until a signal: not `or`)
    stop = stop if stop is not None else StopRequest()
    # Nothing is kept from a grouped fit cut short: a signal stops it at once (exit 130), and nothing is written.
    with folder.discarded_on_error(), stop.stage("fitting the groups", droppable=True):
        result = fit(model, data, y=y, group=group, **given)
    written = _write(result, folder.path, parquet)
    folder.record(written)
    counts = result.counts()
    if not quiet:
        n = len(result)
        per = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        console.print(Text(f"Fitted {model} to {data} per {group}: {n} groups ({per})", style="bold"), soft_wrap=True)
        for note in result.data.get("notes", []):
            console.print(Text(f"note: {note}"), soft_wrap=True)
        console.print(Text(f"elapsed {result.timings['elapsed']:.3g} s"), soft_wrap=True)
        for path in written:
            console.print(Text(f"wrote {path}"), soft_wrap=True)
    failed = len(result) - counts.get("converged", 0)
    if failed:
        why = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k != "converged")
        err_console.print(
            f"{failed} of {len(result)} groups did not converge ({why}): see the status and message columns of "
            f"{str(written[0])!r}.",
            markup=False,
            soft_wrap=True,
            style="red" if not result.success else "yellow",
        )
    return EXIT_OK if result.success else EXIT_FAILED


def _write(result, out_dir: Path, parquet: bool) -> list[Path]:
    """The table and the summary, each written whole or not at all; a failed write ends with exit 1."""
    from gradfit.atomic_files import atomic_path, atomic_write_text

    table = result.to_pandas()
    paths = [out_dir / GROUPS_CSV] + ([out_dir / GROUPS_PARQUET] if parquet else []) + [out_dir / SUMMARY]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(paths[0]) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
        if parquet:
            with atomic_path(paths[1]) as tmp:
                table.to_parquet(tmp, index=False)
        atomic_write_text(paths[-1], json.dumps(result.summary(), indent=2, default=str) + "\n")
    except OSError as exc:
        abort(
            f"Cannot write the groups' table to {str(out_dir)!r}: {exc.strerror or exc}. Free some space or give "
            f"another folder with --out.",
            EXIT_FAILED,
        )
    return paths
