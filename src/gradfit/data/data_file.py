"""A data file checked before anything is read from it: a regular file that can be read, or a DataError.

Only the file's metadata is looked at first (:func:`os.stat`, which never blocks), so a named
pipe without a writer, a device such as ``/dev/zero`` or a socket is refused by what it is
instead of hanging or being read forever. A regular file is then opened and its first byte
read: a file the system reports as 0 bytes long may still hold text (the virtual files under
``/proc`` are made when read), and such a file is not called empty.
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from pathlib import Path

from gradfit.errors import DataError

__all__ = ["check_data_file", "file_kind"]

# What each kind of non-regular file is, for people; a pipe and a device each get their own advice.
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device (such as /dev/zero or a terminal)"),
    (stat.S_ISBLK, "a block device (a disk)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``"a named pipe (FIFO)"``, ``"a folder"``...: what a path whose ``st_mode`` is ``mode`` is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_data_file(p: Path) -> os.stat_result:
    """The ``os.stat`` of ``p`` once it is known to be a readable, non-empty regular file.

    Raises
    ------
    DataError
        Naming the path and what it is instead: missing (with close names), a broken or looping
        symbolic link, a folder, a pipe, a device or socket, unreadable, empty, or a virtual file
        whose size is not known.
    """
    try:
        st = os.stat(p)  # follows symbolic links; never opens the file, so a pipe cannot block it
    except OSError as err:
        raise DataError(_stat_message(p, err)) from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"Cannot read {str(p)!r}: it is a folder, not a file. Give the path of a CSV or Parquet file.")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(_special_message(p, st.st_mode))
    try:
        with open(p, "rb") as f:
            first = f.read(1)
    except PermissionError:
        raise DataError(
            f"Cannot read {str(p)!r}: permission denied. Check the file's permissions (e.g. chmod u+r)."
        ) from None
    except OSError as err:
        raise DataError(f"Cannot read {str(p)!r}: {err.strerror or err}.") from None
    if st.st_size == 0:
        if first:
            raise DataError(
                f"Cannot read {str(p)!r}: the system reports its size as 0 bytes, yet it holds text: it is a virtual "
                f"file (such as those under /proc or /sys) whose content is made anew each time it is read, so the "
                f"rows could change between reads. Copy it to a regular file first (cp {str(p)} data.txt) and give that."
            )
        raise DataError(f"Cannot read {str(p)!r}: the file is empty (0 bytes). Check that it was saved completely.")
    return st


def _stat_message(p: Path, err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return (
            f"Cannot read {str(p)!r}: it is a symbolic link that leads back to itself (a loop of links). "
            f"Point the link at the data file, or give the file's own path."
        )
    if err.errno == errno.ENOENT:
        if os.path.islink(p):
            return (
                f"Cannot read {str(p)!r}: it is a symbolic link to {os.readlink(p)!r}, which does not exist. "
                f"Point the link at the data file, or give the file's own path."
            )
        folder = p.parent
        if not folder.is_dir():
            return f"Cannot read {str(p)!r}: the folder {str(folder)!r} does not exist. Check the path."
        try:
            close = difflib.get_close_matches(p.name, sorted(os.listdir(folder)), n=3, cutoff=0.6)
        except OSError:
            close = []
        hint = f" Did you mean {' or '.join(repr(str(folder / c)) for c in close)}?" if close else ""
        return f"Cannot read {str(p)!r}: no such file (looked in {str(folder.resolve())!r}).{hint}"
    if err.errno == errno.ENOTDIR:
        return (
            f"Cannot read {str(p)!r}: a part of the path before the file name is a file, not a folder. Check the path."
        )
    if err.errno == errno.EACCES:
        return (
            f"Cannot read {str(p)!r}: permission denied on a folder of the path. Check the folders' permissions "
            f"(e.g. chmod u+x)."
        )
    return f"Cannot read {str(p)!r}: {err.strerror or err}."


def _special_message(p: Path, mode: int) -> str:
    kind = file_kind(mode)
    if stat.S_ISFIFO(mode):
        fix = (
            "gradfit reads its data more than once (to detect the layout, then the rows), which a pipe cannot "
            "give. Save the data to a file first (e.g. `... > data.csv`) and give that file"
        )
    else:
        fix = "Give the path of a CSV or Parquet file"
    return f"Cannot read {str(p)!r}: it is {kind}, not a regular file. {fix}."
