"""The folder a run is written to: one run per folder, never mixed with an earlier one.

Every command that writes a run (``gradfit fit``, ``demo``, ``race``, ``lr-find``) asks for its
folder here before any work is done:

- without ``--out``, :func:`new_run_folder` creates a new numbered folder under ``gradfit-out/``
  (``run-001``, ``run-002``, ...; ``race-001``, ``lr-find-001``, ``demo-linear-001``): the next
  number after the highest one there, claimed with :func:`os.mkdir`, which fails when another
  process took the name first, so two processes started at the same moment get two folders;
- with ``--out DIR``, :func:`open_run_folder` accepts a new or empty folder, or one that holds
  a run (its files are replaced), and refuses a folder with other files unless ``force``
  (the run files are then replaced and the other files left alone).

A folder holds a run when it has one of the files only a run writes (:data:`RUN_MARKERS`:
``result.json``, ``history.csv``, ``checkpoint.pt``, ...) or the list of files the run wrote
(:data:`MANIFEST_NAME`, a hidden JSON file). The run's files are then that list, the names
gradfit writes (:data:`KNOWN_FILES`) and temporary files of an interrupted write.

The earlier run is not touched until the new one is about to be saved: a command refused or
failing on bad input leaves it as it was. Then :meth:`RunFolder.clear_earlier` removes each
earlier file that the new run has not rewritten (a stale ``fit.png``, ``landscape.png``,
``fit.gif``, ``checkpoint.pt``...) and nothing else; for a fit this happens inside
:func:`gradfit.outputs.save_run`, after the earlier ``result.json`` is gone and before the new
one is written, so a folder with a ``result.json`` never holds files of two runs.

No rich, typer or matplotlib here: the library and the CLI both use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gradfit.atomic_files import atomic_write_text, is_temp_name
from gradfit.errors import ConfigError
from gradfit.folder_lock import lock_folder
from gradfit.input_files import check_inputs_kept
from gradfit.outputs import RUN_FILES, check_out_dir

__all__ = [
    "RunFolder",
    "command_folder",
    "new_run_folder",
    "open_run_folder",
    "read_manifest",
    "AUTO_ROOT",
    "MANIFEST_NAME",
    "KNOWN_FILES",
    "RUN_MARKERS",
]

#: Where runs without ``--out`` go.
AUTO_ROOT = Path("gradfit-out")
#: The list of files a run wrote, relative to its folder (hidden; JSON).
MANIFEST_NAME = ".gradfit-run.json"
_MANIFEST_FORMAT = "gradfit.run-files/1"
#: Files that only a gradfit run writes: a folder holding one of them holds a run.
RUN_MARKERS = frozenset({*RUN_FILES, "checkpoint.pt", "lr_find.json", MANIFEST_NAME})
#: Every name gradfit gives a file in a run folder: the run's data, checkpoint and pictures.
KNOWN_FILES = RUN_MARKERS | frozenset(
    {
        "fit.png",
        "loss.png",
        "params.png",
        "grid.png",
        "landscape.png",
        "race.png",
        "lr_find.png",
        "animation.gif",
        "animation.mp4",
        "animation.html",
    }
)
#: Files an operating system puts in any folder; neither a run's nor worth refusing a folder for.
_SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_SHOWN = 5  # other files named in a refusal
_MAX_CLAIMS = 10_000  # names tried before giving up on an automatic folder


@dataclass(frozen=True)
class RunFolder:
    """A folder checked for writing a run, and what it held before.

    Attributes
    ----------
    path : Path
    earlier : dict
        The earlier run's files, relative path -> ``(inode, mtime_ns, size)`` when checked: a
        file whose identity has changed since was rewritten by the new run and is kept.
    others : tuple of str
        Files that are not a run's (left alone; only with ``force`` or when resuming in place).
    created : tuple of Path
        Folders this process created for the run, innermost first (removed again while empty
        when the command fails: see :meth:`discard_if_empty`).
    automatic : bool
        Whether the folder was named automatically (no ``--out``).
    resumed : bool
        Whether the run continues the one saved in this folder (``--resume`` in place).
    """

    path: Path
    earlier: dict = field(default_factory=dict)
    others: tuple[str, ...] = ()
    created: tuple[Path, ...] = ()
    automatic: bool = False
    resumed: bool = False

    @property
    def replaces(self) -> bool:
        """Whether the folder holds an earlier run that this one replaces (not just a killed writer's leftovers)."""
        return any(not is_temp_name(Path(rel).name) for rel in self.earlier)

    def describe(self) -> str:
        """One line for people: where the run goes and what happens to what is there."""
        where = f"{self.path}{os.sep}"
        if self.automatic:
            return f"Writing to {where} (a new folder)"
        notes = []
        if self.resumed:
            notes.append("continuing the run saved there")
        elif self.replaces:
            notes.append("replacing the earlier run there")
        if self.others:
            n = len(self.others)
            notes.append(f"leaving {n} other file{'s' if n != 1 else ''} alone")
        return f"Writing to {where}" + (f" ({'; '.join(notes)})" if notes else "")

    def check_inputs(self, inputs: Mapping[str, str | os.PathLike | None], writes: Iterable = ()) -> None:
        """Refuse (ConfigError) a run whose files would overwrite or remove one of its ``inputs``.

        ``inputs`` maps what each input is (``"The data file"``) to its path; ``writes`` are the
        files the run will write (anywhere). The earlier run's files in the folder, which the run
        replaces or removes, and the folder's list of run files count as written too. Call it
        before any work, with every input the command reads.
        """
        replaced = [*(self.path / rel for rel in self.earlier), self.path / MANIFEST_NAME]
        check_inputs_kept(
            inputs,
            [*writes, *replaced],
            fix=f"give another folder with --out (or leave --out out for a new one under {AUTO_ROOT}{os.sep})",
        )

    def clear_earlier(self) -> list[Path]:
        """Remove the earlier run's files that the new run has not rewritten; return them.

        Call it when the new run is about to be saved. Sub-folders of the earlier run left empty
        are removed too; files that were not the earlier run's are never touched.
        """
        removed = []
        for rel, identity in sorted(self.earlier.items()):
            target = self.path / rel
            try:
                if _identity(os.lstat(target)) != tuple(identity):
                    continue  # rewritten by this run
                os.unlink(target)
            except FileNotFoundError:
                continue
            removed.append(target)
        for folder in sorted({p.parent for p in removed}, key=lambda p: len(p.parts), reverse=True):
            while folder != self.path and self.path in folder.parents:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
                folder = folder.parent
        return removed

    def record(self, paths: Iterable[str | os.PathLike], run_id: str | None = None) -> Path | None:
        """Add ``paths`` (files this run wrote or will write) to the folder's list of run files.

        Paths outside the folder are left out. The list is what lets a later run replace exactly
        this run's files, whatever their names (an animation saved as ``fit.gif``, say). ``run_id``
        (:mod:`gradfit.run_schema`) is written with it; None keeps the id the list has.
        """
        root = self.path.resolve()
        names = set(read_manifest(self.path))
        for p in paths:
            full = Path(p) if Path(p).is_absolute() else Path.cwd() / p
            try:
                rel = full.resolve().relative_to(root)
            except ValueError:
                continue  # written elsewhere: not part of this folder's run
            if rel.parts and rel.as_posix() != MANIFEST_NAME:
                names.add(rel.as_posix())
        if not names:
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        run_id = run_id or _manifest_run(self.path)
        text = (
            json.dumps(
                {"format": _MANIFEST_FORMAT, **({"run": run_id} if run_id else {}), "files": sorted(names)}, indent=1
            )
            + "\n"
        )
        return atomic_write_text(self.path / MANIFEST_NAME, text)

    def discard_if_empty(self) -> None:
        """Remove the folders this process created for the run if nothing was written into them."""
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or gone): keep it and its parents

    @contextlib.contextmanager
    def discarded_on_error(self) -> Iterator[RunFolder]:
        """A block after which the folders created for the run are removed again if it raised and wrote nothing."""
        try:
            yield self
        except BaseException:
            self.discard_if_empty()
            raise


def command_folder(
    out: str | os.PathLike | None, *, force: bool = False, resume: str | os.PathLike | None = None, prefix: str = "run"
) -> RunFolder:
    """The folder of a command's run, checked before any work: ``out``, or a new ``gradfit-out/<prefix>-NNN``.

    Only the automatic folder is created here. ``resume`` (a folder or its checkpoint file) that
    is also ``out`` is the run being continued: it is replaced without ``force``. The folder is
    locked for the command (:mod:`gradfit.folder_lock`): another command writing there is refused.
    """
    if out is None:
        folder = new_run_folder(prefix)
        lock_folder(folder.path)  # a new name, but `gradfit plot` on it must wait for the run
        return folder
    in_place = False
    if resume is not None:
        resume = Path(resume)
        with contextlib.suppress(OSError):
            in_place = Path(out).resolve() == (resume.parent if resume.is_file() else resume).resolve()
    lock_folder(check_out_dir(out))  # before looking at what the folder holds: no other command changes it now
    return open_run_folder(out, force=force, resuming=in_place)


def new_run_folder(prefix: str = "run", root: str | os.PathLike = AUTO_ROOT) -> RunFolder:
    """Create ``root/<prefix>-NNN``, the next number after the highest one there, and return it.

    The name is claimed with :func:`os.mkdir`, which fails if another process created it first;
    the next number is tried then, so concurrent commands never share a folder.

    Raises
    ------
    ConfigError
        If ``root`` is a file or cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> [new_run_folder("run", root).path.name for _ in range(2)]
    ['run-001', 'run-002']
    """
    root = Path(root)
    check_out_dir(root)
    created = []
    missing = [p for p in (root, *root.parents) if not p.exists()]
    try:
        for p in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(p)
                created.append(p)
        pattern = re.compile(re.escape(prefix) + r"-(\d+)\Z")
        taken = [int(m.group(1)) for e in os.scandir(root) if (m := pattern.match(e.name))]
        number = max(taken, default=0) + 1
        for _ in range(_MAX_CLAIMS):
            path = root / f"{prefix}-{number:03d}"
            try:
                os.mkdir(path)
            except FileExistsError:
                number += 1
                continue
            return RunFolder(path, created=(path, *reversed(created)), automatic=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create a folder for the run in {str(root)!r}: {exc.strerror or exc}. Give a folder with --out."
        ) from None
    raise ConfigError(
        f"Cannot find a free name for the run in {str(root)!r} after {_MAX_CLAIMS} tries. Give a folder with --out."
    )


def open_run_folder(out: str | os.PathLike, *, force: bool = False, resuming: bool = False) -> RunFolder:
    """Check, before any work and writing nothing, that a run can be written to ``out``.

    Parameters
    ----------
    out : path
        The folder (created when the run is saved if it does not exist).
    force : bool
        Write into a folder that holds files other than a run's: its run files are replaced and
        the other files left alone.
    resuming : bool
        The run continues the one saved in ``out`` (``--resume`` in place): its files are
        replaced, and other files there are left alone as with ``force``.

    Raises
    ------
    ConfigError
        ``out`` is a file or cannot be written; or it holds files that are not a run's and
        neither ``force`` nor ``resuming`` is given (naming a few of them and ``--force``).
    """
    path = check_out_dir(out)
    if not path.is_dir():
        return RunFolder(path)
    earlier, others = _survey(path)
    if others and not (force or resuming):
        shown = ", ".join(others[:_SHOWN]) + (f" and {len(others) - _SHOWN} more" if len(others) > _SHOWN else "")
        what = ", besides an earlier run," if any(not is_temp_name(Path(r).name) for r in earlier) else ""
        raise ConfigError(
            f"The output folder {str(path)!r} holds{what} files that are not from a gradfit run: {shown}. "
            f"Each run is written to a folder of its own so that it never mixes with other files: give a new or "
            f"empty folder with --out, leave --out out to get a new folder under {AUTO_ROOT}{os.sep}, or add --force "
            f"to write the run there anyway (an earlier run's files are replaced; the other files are left alone)."
        )
    folder = RunFolder(path, earlier=earlier, others=tuple(others))
    return dataclasses.replace(folder, resumed=True) if resuming and folder.replaces else folder


def read_manifest(folder: str | os.PathLike) -> list[str]:
    """The relative paths listed in ``folder``'s :data:`MANIFEST_NAME` (empty if none or unreadable)."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
        files = data["files"] if data.get("format") == _MANIFEST_FORMAT else []
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return []
    return [f for f in files if isinstance(f, str) and _safe_relative(f)]


def _manifest_run(folder: Path) -> str | None:
    """The run id in ``folder``'s list of run files, if any."""
    try:
        run = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return run if isinstance(run, str) else None


def _survey(path: Path) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """The earlier run's files (with their identities) and the other files, at the top of ``path``."""
    listed = read_manifest(path)
    top = {f.split("/")[0] for f in listed}
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    is_run = any(e.name in RUN_MARKERS and e.is_file(follow_symlinks=False) for e in entries)
    earlier: dict[str, tuple[int, int, int]] = {}
    others: list[str] = []
    for e in entries:
        if e.name in _SYSTEM_FILES:
            continue
        if e.is_symlink():
            others.append(e.name)  # never followed, never removed
        elif e.is_dir(follow_symlinks=False):
            inside = _listed_tree(path, e.name, listed) if (is_run and e.name in top) else None
            if inside is None:
                others.append(e.name + "/")
            else:
                earlier.update(inside)
        elif is_run and (e.name in KNOWN_FILES or e.name in top or is_temp_name(e.name)):
            earlier[e.name] = _identity(e.stat(follow_symlinks=False))
        elif is_temp_name(e.name):
            earlier[e.name] = _identity(e.stat(follow_symlinks=False))  # a killed writer's leftover
        else:
            others.append(e.name)
    return earlier, others


def _listed_tree(path: Path, name: str, listed: list[str]) -> dict | None:
    """The files under ``path/name`` if every one is listed in the manifest (or a temporary file), else None."""
    wanted = set(listed)
    found = {}
    for dirpath, dirnames, filenames in os.walk(path / name):
        for f in filenames:
            full = Path(dirpath) / f
            rel = full.relative_to(path).as_posix()
            if full.is_symlink() or not (rel in wanted or is_temp_name(f)):
                return None
            found[rel] = _identity(os.lstat(full))
        if any((Path(dirpath) / d).is_symlink() for d in dirnames):
            return None
    return found


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _safe_relative(name: str) -> bool:
    """A manifest entry that stays inside the folder (no absolute path, no ``..``)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts
