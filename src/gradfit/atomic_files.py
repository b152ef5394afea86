"""Atomic file writes: a file is either whole or not there, never half-written.

Every file is written to a temporary name in its own folder, flushed and fsync'ed, and only
then renamed onto its target with :func:`os.replace` (atomic on POSIX and Windows when both
names are on the same file system, which a sibling temporary guarantees). A crash or an
exception part-way leaves the old file, or no file, never a truncated one.

A :class:`WriteLog` open around a command records every file written whole while it is open
and removes any temporary file a write cut short left behind (a second Ctrl-C, say), so the CLI
can say exactly what an interruption saved.

A leaf: it imports nothing of gradfit, so saving a run (:mod:`gradfit.outputs`), checkpoints,
pictures and the CLI all write through it without importing each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temp_name",
    "remove_stale_temps",
    "WriteLog",
    "TEMP_PREFIX",
    "STALE_TEMP_SECONDS",
    "fsync_dir",
]

#: Temporary files are hidden and named ``.tmp-<12 hex digits>-<target name>``.
TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]{12}-(?P<target>.+)\Z", re.DOTALL)
#: A temporary file older than this (seconds) is a leftover of a killed writer.
STALE_TEMP_SECONDS = 60.0


class WriteLog:
    """The files written whole while the log is open, and the temporary files of writes under way.

    Every :func:`atomic_path` reports to the logs open at the time. On leaving the block, a
    temporary file still there (a write cut short where its own clean-up could not run, e.g. by
    a further signal) is removed, so an interrupted command leaves no ``.tmp-`` file.

    Examples
    --------
    >>> import tempfile
    >>> with WriteLog() as log:
    ...     p = atomic_write_text(Path(tempfile.mkdtemp()) / "a.txt", "hi")
    >>> log.written == [p]
    True
    """

    def __init__(self) -> None:
        self.written: list[Path] = []
        self.pending: set[Path] = set()

    def __enter__(self) -> WriteLog:
        _logs.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _logs.remove(self)
        for tmp in list(self.pending):
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.pending.clear()


_logs: list[WriteLog] = []


def is_temp_name(name: str, target: str | None = None) -> bool:
    """Whether ``name`` is one of :func:`atomic_path`'s temporary files (for ``target`` when given).

    Examples
    --------
    >>> is_temp_name(".tmp-0123456789ab-result.json", "result.json"), is_temp_name("result.json")
    (True, False)
    """
    m = _TEMP_NAME.match(name)
    return m is not None and (target is None or m.group("target") == target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces ``path`` only if the block succeeds.

    The temporary name keeps the target's suffix, so writers that choose a format by extension
    (``DataFrame.to_csv``, ``FitResult.save_history``) behave as they would on the target.

    Parameters
    ----------
    path : str or os.PathLike
        The final file. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where to write. On success it is fsync'ed and renamed onto ``path``; on an exception
        it is removed and the exception propagates. Temporary files for ``path`` that a killed
        writer left (older than :data:`STALE_TEMP_SECONDS`) are removed first.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("x,y\\n1,2\\n")
    >>> target.read_text()
    'x,y\\n1,2\\n'
    """
    target = Path(path)
    remove_stale_temps(target.parent, names=(target.name,))  # a killed writer's leftovers for this very file
    # Hidden and random so that two writers never collide and a leftover is easy to spot.
    tmp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{target.name}")
    for log in _logs:
        log.pending.add(tmp)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        for log in _logs:
            log.pending.discard(tmp)
        raise
    for log in _logs:
        log.pending.discard(tmp)
        log.written.append(target)
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path.

    Examples
    --------
    >>> import tempfile
    >>> p = atomic_write_bytes(Path(tempfile.mkdtemp()) / "b.bin", b"abc")
    >>> p.read_bytes()
    b'abc'
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default); return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def remove_stale_temps(
    folder: str | os.PathLike, names: Iterable[str], older_than: float = STALE_TEMP_SECONDS
) -> list[Path]:
    """Remove the temporary files for ``names`` in ``folder`` last modified over ``older_than`` seconds ago.

    A writer killed between creating its temporary file and renaming it (SIGKILL, power loss)
    cannot clean up; the next save does. Younger files may belong to a writer still at work.
    Returns the removed paths.
    """
    cutoff = time.time() - older_than
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(os.fspath(folder)):
            if any(is_temp_name(entry.name, n) for n in names) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; folders cannot be opened this way on Windows.
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
