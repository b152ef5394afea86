"""A lock on a run's folder, so that two commands never write a run into one folder at once.

``gradfit fit``, ``race``, ``lr-find`` and ``demo`` take the lock of their output folder before
looking at what it holds (:func:`gradfit.run_folder.command_folder`), and ``gradfit plot`` takes
the lock of the run it draws into; each keeps it until the command ends. A second command on a
folder in use is refused at once (exit 2, nothing written) instead of interleaving its files
with the first one's or silently replacing its run.

The lock is :func:`fcntl.flock` on the folder itself (a descriptor opened on the directory), so
there is no lock file to leave behind or to clean up: the operating system drops the lock when
the process ends, however it ends (``kill -9`` included), and a crashed command never blocks
the next. Within one process the lock is shared (a command that runs another, as the demos
do, does not lock itself out). Where ``fcntl`` does not exist (Windows) folders are not locked.
A folder that does not exist yet is created to be locked, and removed again by
:meth:`FolderLock.release` if nothing was written into it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from gradfit.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    _LOCKING = False
else:
    _LOCKING = True

__all__ = ["FolderLock", "lock_folder", "locks_released"]

_HELD: dict[tuple[int, int], FolderLock] = {}  # this process's locks, by the folder's (device, inode)
_SCOPES: list[list[FolderLock]] = []  # the open locks_released() blocks, innermost last


class FolderLock:
    """This process's lock on one folder (see the module docstring); :func:`lock_folder` makes them."""

    def __init__(self, path: Path, fd: int | None, key: tuple[int, int] | None, created: tuple[Path, ...]):
        self.path, self.fd, self.key, self.created, self.count = path, fd, key, created, 1

    def release(self) -> None:
        """Give the lock back (once every holder in this process has); remove the folders it created, if empty."""
        self.count -= 1
        if self.count > 0:
            return
        if self.key is not None:  # None: a folder that was never locked (no fcntl)
            _HELD.pop(self.key, None)
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        for folder in self.created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: the run is there


def lock_folder(path: str | os.PathLike) -> FolderLock:
    """Lock ``path`` (created if missing) for this process, or raise ConfigError if another process holds it.

    Inside a :func:`locks_released` block the lock is given back when the block ends; otherwise call
    :meth:`FolderLock.release` (or let the process end).
    """
    folder = Path(path)
    created = _make(folder)
    if not _LOCKING:  # pragma: no cover
        lock = FolderLock(folder, None, None, created)
        _remember(lock)
        return lock
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        _remove(created)
        raise ConfigError(
            f"Cannot use the output folder {str(folder)!r}: {exc.strerror or exc}. Give another folder with --out."
        ) from None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    if key in _HELD:  # this process holds it already
        os.close(fd)
        lock = _HELD[key]
        lock.count += 1
        _remember(lock)
        return lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        _remove(created)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ConfigError(
                f"The folder {str(folder)!r} is in use: another gradfit command is writing a run there "
                f"right now. Wait for it to finish, or write to another folder (--out; without --out a "
                f"fit gets a new folder of its own)."
            ) from None
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        # A file system without locks (some network mounts): write without one, as before locks existed.
    lock = FolderLock(folder, fd, key, created)
    _HELD[key] = lock
    _remember(lock)
    return lock


@contextlib.contextmanager
def locks_released() -> Iterator[None]:
    """A block (a CLI command) at whose end every folder lock taken inside it is given back."""
    taken: list[FolderLock] = []
    _SCOPES.append(taken)
    try:
        yield
    finally:
        _SCOPES.remove(taken)
        for lock in reversed(taken):
            lock.release()


def _remember(lock: FolderLock) -> None:
    if _SCOPES:
        _SCOPES[-1].append(lock)


def _make(folder: Path) -> tuple[Path, ...]:
    """Create ``folder`` and its missing parents; the ones created, innermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    created = []
    try:
        for p in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(p)
                created.append(p)
    except OSError as exc:
        _remove(tuple(reversed(created)))
        raise ConfigError(
            f"Cannot create the output folder {str(folder)!r}: {exc.strerror or exc}. Give another folder with --out."
        ) from None
    return tuple(reversed(created))


def _remove(created: tuple[Path, ...]) -> None:
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return
