"""Output targets: whether a file can be written where the user asked, known before any work.

Permission bits do not tell: ``root`` passes every :func:`os.access` check, a read-only mount or
``/proc`` refuses files whatever the bits say, and a folder may be full. So a folder is tried
the only sure way, by creating (and at once removing) a hidden empty file in it, named like
:func:`gradfit.atomic_files.atomic_path`'s temporary files so that a leftover is recognised as one.

No rich, typer or matplotlib here: the library and the CLI both use it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from gradfit.errors import ConfigError

__all__ = ["nearest_folder", "probe_folder", "check_file_target"]


def nearest_folder(path: str | os.PathLike) -> Path | None:
    """``path`` if it exists, else its nearest existing ancestor (the folder a new path would be made in)."""
    path = Path(path)
    return path if os.path.lexists(path) else next((p for p in path.absolute().parents if p.exists()), None)


def probe_folder(folder: str | os.PathLike) -> str | None:
    """None if a file can be created in ``folder``, else the operating system's reason (``"Read-only file
    system"``, ``"No such file or directory"`` for ``/proc``...)."""
    probe = Path(folder) / f".tmp-{secrets.token_hex(6)}-write-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass  # the name marks it as a temporary file: the next run's clean-up removes it
    return None


def check_file_target(path: str | os.PathLike, option: str, what: str = "file") -> Path:
    """``path`` if a ``what`` can be written there (creating its missing folders), else a ConfigError naming
    ``option`` and the reason: an existing folder or special file (a device, a FIFO) in its place, a parent
    that is a file, or a folder that refuses new files.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_file_target(folder / "new" / "fit.gif", "--animate").name
    'fit.gif'
    >>> try:
    ...     check_file_target(folder, "--animate")
    ... except ConfigError as exc:
    ...     print(str(exc).split(": ")[1].split(".")[0])
    it is an existing folder
    """
    target = Path(path)
    shown = str(target)
    if os.path.lexists(target):
        mode = os.stat(target).st_mode if target.exists() else os.lstat(target).st_mode
        if stat.S_ISDIR(mode):
            example = target / f"fit{target.suffix or '.gif'}"
            raise ConfigError(
                f"Cannot write the {what} {shown!r} given with {option}: it is an existing folder. "
                f"Give a file name, e.g. {str(example)!r}."
            )
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"Cannot write the {what} {shown!r} given with {option}: it is not a regular file (a "
                f"device, a pipe, a socket or a broken link), and writing would replace it. Give another path."
            )
    folder = nearest_folder(target.parent)
    if folder is None or not folder.is_dir():
        raise ConfigError(
            f"Cannot write the {what} {shown!r} given with {option}: {str(folder)!r} is a file, not a "
            f"folder. Give another path."
        )
    reason = probe_folder(folder)
    if reason is not None:
        raise ConfigError(
            f"Cannot write the {what} {shown!r} given with {option}: the folder {str(folder)!r} does "
            f"not accept new files ({reason}). Give another path."
        )
    return target
