"""``gradfit predict``: the predictions of a saved run for new rows, as CSV or Parquet.

Without ``--out`` the table goes to stdout as CSV, so it pipes (``gradfit predict run new.csv |
head``); messages go to stderr. With ``--out FILE`` it is written atomically (CSV, TSV or Parquet by
the file's extension). The data file and the run's own files are never overwritten, and every check
(the run, the data, its columns, the output path) is made before anything is written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gradfit.cli.common_options import Debug, Quiet
from gradfit.cli.console import console, err_console, guarded
from gradfit.cli.paths import given_path

__all__ = ["predict_command", "OUTPUT_SUFFIXES"]

#: Output formats by extension (a CSV may also end in .gz, .bz2, .xz or .zst: compressed).
OUTPUT_SUFFIXES = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
_RUN_FILES = ("checkpoint.pt",)  # with gradfit.outputs.RUN_FILES
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head` reports for `yes`


def predict_command(
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
        str,
        typer.Argument(
            help="The rows to predict: a CSV/TSV/Parquet file holding the model's input "
            "columns (read as the fit's data was).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            parser=given_path,
            metavar="PATH",
            help="Write the predictions to FILE (.csv, .tsv or .parquet; .csv.gz compresses) instead of stdout.",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        str,
        typer.Option(
            "--columns",
            help="The data's columns written before the predictions: "
            "inputs (the model's), all (ids and targets too) or none.",
        ),
    ] = "inputs",
    allow_failed: Annotated[
        bool,
        typer.Option(
            "--allow-failed", help="Predict even from a run whose fit did not succeed (diverged, interrupted, stalled)."
        ),
    ] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predict DATA's rows with the model saved in RUN: CSV on stdout, or --out FILE.

    A regression writes a `prediction` column, a classifier `class` and `prob_<class>` columns (bce: `prob_1`).

    Exit status: 0 success; 2 bad input (nothing written).
    """
    with guarded(debug):
        from gradfit.errors import ConfigError, DataError
        from gradfit.outputs import load_run
        from gradfit.train.prediction import KEEP, prediction_frame, read_rows

        if columns not in KEEP:
            raise ConfigError(f"--columns must be one of {', '.join(KEEP)}. Got {columns!r} instead.")
        fmt = _check_out(out, run, data) if out is not None else "csv"
        result = load_run(run)
        if result.model is None:
            raise DataError(
                f"The run in {str(run)!r} was fitted with a Python function or a torch.nn.Module, which a "
                f"saved run cannot rebuild. Predict in Python: gradfit.outputs.load_run(RUN, "
                f"model=...).predict(data)."
            )
        if not result.success and not allow_failed:
            raise DataError(
                f"The fit in {str(run)!r} did not succeed ({result.stop_reason}: {result.message}) Its "
                f"parameters are not a fit to trust; fit again, or pass --allow-failed to predict anyway."
            )
        frame = read_rows(data, result.data)
        table = prediction_frame(result, frame, keep=columns, source=data)
        missing = int(table.iloc[:, -1].isna().sum())
        if missing and not quiet:
            err_console.print(
                f"note: {missing} of {len(table)} rows have a missing input; their predictions are empty.",
                markup=False,
                soft_wrap=True,
                style="yellow",
            )
        if not result.success:
            err_console.print(
                f"warning: the fit did not succeed ({result.stop_reason}); these predictions come "
                f"from its last parameters.",
                markup=False,
                soft_wrap=True,
                style="yellow",
            )
        if out is None:
            _to_stdout(table)
            return
        _write(table, out, fmt)
        if not quiet:
            shown = ", ".join(map(str, table.columns[:8])) + (", ..." if len(table.columns) > 8 else "")
            console.print(Text(f"wrote {len(table)} rows ({shown}) to {out}"), soft_wrap=True)


def _check_out(out: Path, run: Path, data: str) -> str:
    """The format of ``out``; refuses a path that would overwrite the data or a file of the run."""
    from gradfit.errors import ConfigError
    from gradfit.outputs import RUN_FILES

    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a folder; give a file name such as {str(out / 'predictions.csv')!r}.")
    suffixes = [s.lower() for s in out.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in _COMPRESSED
    suffix = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    fmt = OUTPUT_SUFFIXES.get(suffix)
    if fmt is None or (compressed and fmt == "parquet"):
        raise ConfigError(
            f"--out {str(out)!r}: the file must end in .csv, .tsv or .parquet (a CSV may be compressed: "
            f".csv.gz). Got {''.join(out.suffixes) or 'no extension'!r}."
        )
    if _same_file(out, Path(data)):
        raise ConfigError(
            f"--out {str(out)!r} is the data file itself; predictions never overwrite their data. Give "
            f"another file name."
        )
    if out.name in RUN_FILES + _RUN_FILES and _same_file(out.parent, run):
        raise ConfigError(
            f"--out {str(out)!r} is a file of the run; give another name, e.g. {str(out.parent / 'predictions.csv')!r}."
        )
    ancestor = next((p for p in out.absolute().parents if p.exists()), None)
    if ancestor is None or not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"Cannot write --out {str(out)!r}: {str(ancestor)!r} is not a writable folder.")
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.absolute() == b.absolute()


def _to_stdout(table) -> None:
    """The table as CSV on stdout; a reader that stops early (``| head``) ends the command as SIGPIPE would."""
    try:
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so that Python's own flush at exit does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise typer.Exit(EXIT_BROKEN_PIPE) from None


def _write(table, out: Path, fmt: str) -> None:
    from gradfit.atomic_files import atomic_path
    from gradfit.cli.console import EXIT_FAILED, abort

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:  # keeps the suffix: pandas compresses by it
            if fmt == "parquet":
                table.to_parquet(tmp, index=False)
            else:
                table.to_csv(tmp, index=False, lineterminator="\n", sep="\t" if fmt == "tsv" else ",")
    except OSError as exc:
        abort(
            f"Cannot write the predictions to {str(out)!r}: {exc.strerror or exc}. Free some space or give another "
            f"file with --out.",
            EXIT_FAILED,
        )
