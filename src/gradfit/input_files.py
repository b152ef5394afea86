"""A command's inputs are never its outputs: the files it reads, checked against every file it may write or remove.

Before anything is written, each command lists what it reads (the data file, the checkpoint it
continues, the saved run it redraws) and what it may write or remove (its outputs, and the files
of an earlier run in the same folder, which are replaced). A path in both lists is refused with a
:class:`~gradfit.errors.ConfigError` naming the two: fitting a curve to an earlier run's
``history.csv`` with that run's folder as ``--out`` would otherwise replace the data with the
new run's history. Paths are compared as files (:func:`os.path.samefile`), so a symbolic link, a
hard link or another spelling of the same path is caught too.

No rich, typer or matplotlib here: the library and the CLI both use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from gradfit.errors import ConfigError

__all__ = ["check_inputs_kept", "same_file"]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one existing file (through links and other spellings of the path)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or cannot be looked at): not the same file
        return False


def check_inputs_kept(
    inputs: Mapping[str, str | os.PathLike | None],
    outputs: Iterable[str | os.PathLike | None],
    fix: str = "give another output path",
) -> None:
    """Refuse, before anything is written, outputs that would write over or remove an input.

    Parameters
    ----------
    inputs : mapping
        What each input is, for people (``"The data file"``) -> its path; None, and ``builtin:``
        datasets, are not files and are skipped.
    outputs : iterable of paths
        Every file the command may write, replace or remove (None entries are skipped).
    fix : str
        What to do instead, ending the message (e.g. ``"give another folder with --out"``).

    Raises
    ------
    ConfigError
        Naming the input, the output it would be lost to, and ``fix``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "history.csv").write_text("step,loss\\n0,1\\n")
    >>> check_inputs_kept({"The data file": folder / "history.csv"}, [folder / "result.json"])
    >>> check_inputs_kept({"The data file": folder / "history.csv"}, [folder / "history.csv"])
    Traceback (most recent call last):
    ...
    gradfit.errors.ConfigError: The data file ... would be lost: it is among the files this command would write, ...
    """
    files = {label: path for label, path in inputs.items() if path is not None and _is_file(path)}
    if not files:
        return
    for out in outputs:
        if out is None:
            continue
        for label, path in files.items():
            if same_file(out, path):
                shown = f"{str(path)!r}" + ("" if Path(out) == Path(path) else f" (the same file as {str(out)!r})")
                raise ConfigError(
                    f"{label} {shown} would be lost: it is among the files this command would "
                    f"write, replace or remove. An input is never overwritten; {fix}, or copy the input "
                    f"somewhere else first."
                )


def _is_file(path) -> bool:
    if path is None or (isinstance(path, str) and (path.startswith("builtin:") or not path)):
        return False
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False
