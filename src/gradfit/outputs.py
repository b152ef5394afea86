"""Writing a run to disk so that no file is ever left half-written.

Every file is written to a temporary name in its own folder, flushed and fsync'ed, and only
then renamed onto its target with :func:`os.replace` (atomic on POSIX and Windows when both
names are on the same file system, which a sibling temporary guarantees). A crash or an
exception part-way leaves the old file, or no file, never a truncated one.

No rich, typer or matplotlib here: the library and the CLI both use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gradfit.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from gradfit.train.result import FitResult

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_out_dir", "save_run",
           "RESULT_NAME", "HISTORY_NAME"]

RESULT_NAME = "result.json"
HISTORY_NAME = "history.csv"


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
        it is removed and the exception propagates.

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
    # Hidden and random so that two writers never collide and a leftover is easy to spot.
    tmp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


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


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Check, before any work is done, that a run can be saved in ``out_dir``.

    The folder need not exist yet (it is created by :func:`save_run`), but it must not be a
    file, and its nearest existing ancestor must be a writable folder.

    Raises
    ------
    ConfigError
        Naming the folder and what to do instead.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"The output folder {str(out)!r} is an existing file, not a folder. "
                          f"Give another path with --out.")
    ancestor = out if out.exists() else next((p for p in out.absolute().parents if p.exists()), None)
    if ancestor is None or not ancestor.is_dir():
        raise ConfigError(f"Cannot create the output folder {str(out)!r}: {str(ancestor)!r} is not a folder. "
                          f"Give another path with --out.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"Cannot write the output folder {str(out)!r}: {str(ancestor)!r} is not writable. "
                          f"Give another path with --out.")
    return out


def save_run(result: FitResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``result.json`` and ``history.csv`` of a fit into ``out_dir`` (created if needed).

    Each file is written atomically; ``result.json`` is written last, so its presence means the
    run is complete. Existing files of an earlier run are replaced.

    Parameters
    ----------
    result : FitResult
    out_dir : str or os.PathLike

    Returns
    -------
    dict
        ``{"result": Path, "history": Path}``.

    Examples
    --------
    >>> import gradfit, tempfile
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=5)
    >>> sorted(p.name for p in save_run(r, tempfile.mkdtemp()).values())
    ['history.csv', 'result.json']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"result": out / RESULT_NAME, "history": out / HISTORY_NAME}
    with atomic_path(paths["history"]) as tmp:
        result.save_history(tmp)
    atomic_write_text(paths["result"], result.to_json() + "\n")
    return paths


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
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


def load_run(out_dir: str | os.PathLike, model=None) -> FitResult:
    """The :class:`FitResult` saved by :func:`save_run` in ``out_dir``, history included.

    Pictures and reports are drawn from it without refitting. ``model`` is needed only for a
    run whose model was a Python callable or an ``nn.Module`` (those cannot be rebuilt from JSON).
    """
    import pandas as pd

    from gradfit.errors import DataError
    from gradfit.train.history import History
    from gradfit.train.result import FitResult

    out = Path(out_dir)
    result_path, history_path = out / RESULT_NAME, out / HISTORY_NAME
    if not result_path.is_file():
        raise DataError(f"{str(out)!r} holds no saved run: {RESULT_NAME} is missing. Give the --out folder of a "
                        f"`gradfit fit` run.")
    history = History.from_frame(pd.read_csv(history_path)) if history_path.is_file() else None
    try:
        return FitResult.from_json(result_path, model=model, history=history)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{str(result_path)!r} is not a gradfit result ({type(exc).__name__}: {exc}).") from None
