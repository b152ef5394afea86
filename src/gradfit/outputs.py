"""Saving a run to a folder and reading it back: ``result.json``, ``history.csv``, ``timings.csv``.

Every file goes through :mod:`gradfit.atomic_files` (whole or not there), the tables through
:mod:`gradfit.numbers_csv` (fast, so an interrupted fit winds down in about a second), and
``result.json`` is written last, sealing the others by size and digest (:mod:`gradfit.run_schema`):
a folder holds the earlier run or this one, never a mixture.

The atomic-write names (``atomic_path``, ``WriteLog``, ...) are re-exported here for code written
against them; new code imports them from :mod:`gradfit.atomic_files`.

No rich, typer or matplotlib here: the library and the CLI both use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gradfit.atomic_files import (
    STALE_TEMP_SECONDS,
    TEMP_PREFIX,
    WriteLog,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    is_temp_name,
)
from gradfit.atomic_files import remove_stale_temps as _remove_stale_temps
from gradfit.errors import ConfigError
from gradfit.input_files import check_inputs_kept
from gradfit.numbers_csv import write_csv, write_numbers_csv

if TYPE_CHECKING:  # pragma: no cover
    from gradfit.train.result import FitResult

__all__ = [
    "check_out_dir",
    "save_run",
    "load_run",
    "RESULT_NAME",
    "HISTORY_NAME",
    "TIMINGS_NAME",
    "SNAPSHOTS_NAME",
    "RUN_FILES",
    "CHECKPOINT_NAME",
    "run_inputs",
    "remove_stale_temps",
    # re-exported from gradfit.atomic_files and gradfit.numbers_csv
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temp_name",
    "WriteLog",
    "write_numbers_csv",
    "TEMP_PREFIX",
    "STALE_TEMP_SECONDS",
]

RESULT_NAME = "result.json"
HISTORY_NAME = "history.csv"  # the same bytes every time a fit is repeated
TIMINGS_NAME = "timings.csv"  # step, wall-clock seconds: differs from run to run
SNAPSHOTS_NAME = "history_params.npz"  # a large model's parameter snapshots (gradfit.train.snapshots)
RUN_FILES = (HISTORY_NAME, TIMINGS_NAME, RESULT_NAME, SNAPSHOTS_NAME)
CHECKPOINT_NAME = "checkpoint.pt"  # gradfit.train.checkpoint's file: its stale temporaries are the run's too


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Check, before any work is done, that a run can be saved in ``out_dir``.

    The folder need not exist yet (it is created by :func:`save_run`), but it must not be a
    file, and its nearest existing ancestor must be a writable folder.

    Raises
    ------
    ConfigError
        Naming the folder and what to do instead.
    """
    if isinstance(out_dir, str) and not out_dir.strip():  # Path("") would quietly be the current folder
        raise ConfigError(
            f"The output folder is an empty path ({out_dir!r}). Give a folder name, or '.' for the current folder."
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"The output folder {str(out)!r} is an existing file, not a folder. Give another path with --out."
        )
    ancestor = out if out.exists() else next((p for p in out.absolute().parents if p.exists()), None)
    if ancestor is None or not ancestor.is_dir():
        raise ConfigError(
            f"Cannot create the output folder {str(out)!r}: {str(ancestor)!r} is not a folder. "
            f"Give another path with --out."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"Cannot write the output folder {str(out)!r}: {str(ancestor)!r} is not writable. "
            f"Give another path with --out."
        )
    from gradfit.targets import probe_folder

    reason = probe_folder(ancestor)  # root passes os.access; a read-only mount or /proc refuses files all the same
    if reason is not None:
        raise ConfigError(
            f"Cannot write the output folder {str(out)!r}: {str(ancestor)!r} does not accept new files "
            f"({reason}). Give another path with --out."
        )
    return out


def save_run(
    result: FitResult, out_dir: str | os.PathLike, before_result: Callable[[], object] | None = None
) -> dict[str, Path]:
    """Write ``history.csv``, ``timings.csv`` and ``result.json`` of a fit into ``out_dir`` (created if needed).

    A model of more than :data:`gradfit.train.snapshots.MAX_PARAM_COLUMNS` parameters keeps its
    parameter snapshots in ``history_params.npz`` (compact, exact) and ``history.csv`` keeps the
    per-step columns only; a smaller one has a column per parameter in ``history.csv``.

    Each file is written atomically: whenever the writer stops, every file holds either its
    old or its new content, never a part. An error while writing leaves the earlier run as it
    was. Once the new files are written, the earlier ``result.json`` is removed, the others
    renamed into place and the new ``result.json`` written last: its presence means the other
    files belong to it and are complete. Temporary files of the run's files and of its
    checkpoint that a killed writer left behind (older than :data:`STALE_TEMP_SECONDS`) are
    removed. A folder whose files would replace the fit's own data file is refused first
    (ConfigError), before anything is written.

    ``history.csv`` and ``result.json`` (but for its ``timings`` field) are the same, byte for
    byte, when the same fit is repeated: wall-clock times go to ``timings.csv`` only, and floats
    are written in their shortest exact form (read back bit for bit by :func:`load_run`).

    Parameters
    ----------
    result : FitResult
    out_dir : str or os.PathLike
    before_result : callable, optional
        Called once the new history is in place and the earlier ``result.json`` is gone, just
        before the new one is written: the CLI removes the earlier run's other files there
        (:meth:`gradfit.run_folder.RunFolder.clear_earlier`), so no complete run ever sits
        beside files of another.

    Returns
    -------
    dict
        ``{"result": Path, "history": Path, "timings": Path}``, and ``"snapshots"`` when
        ``history_params.npz`` was written.

    Examples
    --------
    >>> import gradfit, tempfile
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=5)
    >>> sorted(p.name for p in save_run(r, tempfile.mkdtemp()).values())
    ['history.csv', 'result.json', 'timings.csv']
    """
    from gradfit.run_schema import new_run_id, run_record, with_run_record
    from gradfit.train.snapshots import snapshots_bytes, wants_own_file

    if isinstance(out_dir, str) and not out_dir.strip():
        check_out_dir(out_dir)  # refuses it: Path("") would quietly be the current folder
    out = Path(out_dir)
    text = result.to_json() + "\n"  # everything that can fail is done before a file is touched
    h = result.history
    own_file = wants_own_file(len(h.param_names))  # a large model: snapshots in an .npz, not 1,000s of CSV columns
    history, timings = h.table(include_time=False, params=not own_file), h.timings_table()
    snapshots = snapshots_bytes(h.param_names, h.snapshot_steps, h.snapshots) if own_file else None
    paths = {"result": out / RESULT_NAME, "history": out / HISTORY_NAME, "timings": out / TIMINGS_NAME}
    if own_file:
        paths["snapshots"] = out / SNAPSHOTS_NAME
    check_inputs_kept(
        {"The fit's data file": result.data.get("path")},
        [*paths.values(), out / SNAPSHOTS_NAME],
        fix="save the run to another folder",
    )
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, names=(*RUN_FILES, CHECKPOINT_NAME))
    with contextlib.ExitStack() as replacing:
        with (
            atomic_path(paths["history"]) as tmp_history,
            atomic_path(paths["timings"]) as tmp_timings,
            atomic_path(paths["snapshots"]) if own_file else contextlib.nullcontext() as tmp_snapshots,
        ):
            write_csv(history, tmp_history)
            write_csv(timings, tmp_timings)
            written = {HISTORY_NAME: tmp_history, TIMINGS_NAME: tmp_timings}
            if own_file:
                assert tmp_snapshots is not None and snapshots is not None  # both made when own_file
                tmp_snapshots.write_bytes(snapshots)
                written[SNAPSHOTS_NAME] = tmp_snapshots
            # result.json seals the files written before it: their sizes and digests (gradfit.run_schema).
            text = with_run_record(text, run_record(result.run_id or new_run_id(), written))
            # From here the earlier run gives way to this one, in milliseconds: a signal (a second Ctrl-C)
            # waits for the new result.json rather than leave a folder with neither run.
            replacing.enter_context(_held())
            # All are written; before they replace the old ones, the old result.json goes: next to
            # a new history.csv it would pass off a half-saved run as complete.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(paths["result"])
                fsync_dir(out)
            if not own_file:  # an earlier large model's snapshots must not be read as this run's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(out / SNAPSHOTS_NAME)
        if before_result is not None:
            before_result()
        atomic_write_text(paths["result"], text)
    return paths


def run_inputs(run: str | os.PathLike, data: str | os.PathLike | None = None) -> dict[str, str | os.PathLike | None]:
    """The inputs of a command that reads the saved run in ``run`` (and the fit's ``data``): label -> path."""
    inputs: dict[str, str | os.PathLike | None] = {
        f"The run's {name}": Path(run) / name for name in (*RUN_FILES, CHECKPOINT_NAME)
    }
    inputs["The data file"] = data
    return inputs


def remove_stale_temps(
    folder: str | os.PathLike, names=RUN_FILES, older_than: float = STALE_TEMP_SECONDS
) -> list[Path]:
    """Remove the temporary files of a run's files (``names``) in ``folder`` that a killed writer left.

    :func:`gradfit.atomic_files.remove_stale_temps` with a run's file names as the default.
    """
    return _remove_stale_temps(folder, names, older_than)


def _held():
    """The interrupt window's :meth:`~gradfit.train.interrupt.StopRequest.held` block, if a window is open."""
    from gradfit.train.interrupt import current_request

    request = current_request()
    return request.held() if request is not None else contextlib.nullcontext()


def load_run(out_dir: str | os.PathLike, model=None) -> FitResult:
    """The :class:`FitResult` saved by :func:`save_run` in ``out_dir``, history included.

    Pictures and reports are drawn from it without refitting. ``model`` is needed only for a
    run whose model was a Python callable or an ``nn.Module`` (those cannot be rebuilt from JSON).
    Only the run's own file names are read: temporary files of an interrupted save are ignored.
    Floats are read back exactly as they were written. Runs saved before ``timings.csv``
    existed (with a ``time`` column in ``history.csv``) load too, and so do both layouts of the
    parameter snapshots: columns of ``history.csv``, or ``history_params.npz`` for a large model.
    """
    from gradfit.errors import DataError
    from gradfit.run_schema import RUN_FIELD, check_run_files, read_result
    from gradfit.train.history import History
    from gradfit.train.result import FitResult

    out = Path(out_dir)
    result_path, history_path, timings_path = out / RESULT_NAME, out / HISTORY_NAME, out / TIMINGS_NAME
    if not result_path.is_file():
        raise DataError(
            f"{str(out)!r} holds no saved run: {RESULT_NAME} is missing. Give the --out folder of a `gradfit fit` run."
        )
    text, fields = read_result(result_path)
    # The files result.json sealed must be the ones it describes: not cut short, edited, or another run's.
    check_run_files(out, fields.get(RUN_FIELD), names=(HISTORY_NAME, TIMINGS_NAME, SNAPSHOTS_NAME))
    history, from_npz = None, False
    if history_path.is_file():
        timings = _read_csv(timings_path) if timings_path.is_file() else None
        try:
            history = History.from_frame(_read_csv(history_path), timings=timings)
        except (KeyError, ValueError) as exc:
            raise DataError(
                f"{str(history_path)!r} is not a gradfit history ({type(exc).__name__}: {exc}). "
                f"Fit again, or delete it to load the result without its history."
            ) from None
        if not history.param_names and (out / SNAPSHOTS_NAME).is_file():
            history, from_npz = _with_snapshots(history, out / SNAPSHOTS_NAME), True
    try:
        result = FitResult.from_json(text, model=model, history=history)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        # Fields of the right kinds (read_result) that still do not make a result: a model description or
        # parameters that do not fit together.
        raise DataError(f"{str(result_path)!r} is not a gradfit result ({type(exc).__name__}: {exc}).") from None
    if from_npz and history is not None and list(history.param_names) != list(result.flat_params):
        raise DataError(
            f"The parameter snapshots in {str(out)!r} name other parameters than {RESULT_NAME} "
            f"({', '.join(list(history.param_names)[:3])}, ... against "
            f"{', '.join(list(result.flat_params)[:3])}, ...): the files belong to different runs. "
            f"Fit again."
        )
    return result


def _with_snapshots(history, path: Path):
    """``history`` (read from a history.csv without parameter columns) with the snapshots of ``path``."""
    from gradfit.errors import DataError
    from gradfit.train.snapshots import read_snapshots

    try:
        names, steps, values = read_snapshots(path)
    except ValueError as exc:
        raise DataError(
            f"{str(path)!r} is not a gradfit parameter history: {exc}. Fit again, or delete it to load "
            f"the run without its parameter snapshots."
        ) from None
    return history.with_snapshots(names, steps, values)


def _read_csv(path: Path):
    """A table of numbers read back bit for bit: every field as text, converted by NumPy.

    NumPy's text-to-float conversion is correctly rounded, so the shortest-repr text pandas writes
    gives back the very float64 it came from, whatever the pandas version (its own fast parser
    is not exact in every version). An empty field is NaN.
    """
    import numpy as np
    import pandas as pd

    from gradfit.errors import DataError

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        for name in frame.columns:
            text = frame[name].to_numpy(dtype=str)
            frame[name] = np.where(text == "", "nan", text).astype(np.float64)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:  # EmptyDataError is a ValueError
        raise DataError(
            f"{str(path)!r} is not a readable table of numbers ({type(exc).__name__}: {exc}). Fit again to rewrite it."
        ) from None
    return frame
