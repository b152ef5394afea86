"""What the CLI says after Ctrl-C or SIGTERM: which signal, what it cut short, and exactly what was saved.

A command stopped by a signal ends in one of two ways (see :mod:`gradfit.train.interrupt`):

- it reached a safe point and finished what must not be lost (the fit stopped at a step, the
  run was saved): :func:`saved_message` reports from the result and the paths written;
- it was cut short by an exception (a signal during droppable work such as reading the data or
  drawing, a second signal, or Ctrl-C outside any window): :func:`cut_short_message` reports
  from the :class:`~gradfit.atomic_files.WriteLog` of the files written whole before it.

Either way the message names only files that are complete on disk: every write is atomic, and
the temporary file of a write cut short is removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["saved_message", "cut_short_message", "picture_names"]

_RESULT, _CHECKPOINT = "result.json", "checkpoint.pt"


def picture_names(paths: Iterable[Path | None]) -> str:
    """``"fit.png, loss.png and params.png"``."""
    return _and([p.name for p in paths if p is not None])


def saved_message(result, paths: dict[str, Path], stop, undrawn: list[Path]) -> str:
    """The stderr paragraph of a fit command that a signal stopped at a safe point, with its run saved.

    Parameters
    ----------
    result : FitResult
        The saved result (its message says where the fit stopped and what the loop saved).
    paths : dict
        What :func:`gradfit.outputs.save_run` and the pictures wrote.
    stop : StopRequest
        The command's request: the signal, and the stage it arrived in.
    undrawn : list of Path
        Pictures asked for and not drawn because of the signal.
    """
    folder = paths["result"].parent
    files = [p.name for p in paths.values() if p is not None]
    checkpoint = result.diagnostics.get("checkpoint")
    if checkpoint and Path(checkpoint).parent == folder and _CHECKPOINT not in files:
        files.append(_CHECKPOINT)
    if result.stop_reason == "interrupted":  # the loop or the analysis was stopped: the result says how
        text = result.message
    else:
        # The fit and its analysis were over (else the result would say interrupted): only the pictures were left.
        text = (
            f"Interrupted ({stop.reason}) once the fit and its analysis were over ({result.stop_reason}; the run "
            f"says whether it succeeded)."
        )
    text += f" Saved whole in {str(folder)!r}: {_and(files)}."
    if undrawn:
        text += f" Not drawn: {picture_names(undrawn)}; draw them with `gradfit plot {_shell(folder)}`."
    return text


def cut_short_message(exc: BaseException, written: list[Path]) -> str:
    """The stderr paragraph of a command that a signal ended by an exception.

    ``written`` is what the command wrote whole before (:attr:`gradfit.atomic_files.WriteLog.written`).
    """
    from gradfit.train.interrupt import Interrupted

    if isinstance(exc, Interrupted):
        again = " a second time" if exc.second else ""
        text = f"Interrupted{again} ({exc.name})" + (f" while {exc.during}." if exc.during else ".")
    else:
        text = "Interrupted (Ctrl-C)."
    # A file written twice (a checkpoint) is listed once; hidden files (the run's list of files) are not news.
    done = [p for p in dict.fromkeys(written) if not p.name.startswith(".")]
    if not done:
        return f"{text} Nothing was written."
    folders = {p.parent for p in done}
    if len(folders) == 1:
        folder = folders.pop()
        text += f" Written whole before it, in {str(folder)!r}: {_and([p.name for p in done])}."
    else:
        text += f" Written whole before it: {_and([str(p) for p in done])}."
    names = {p.name: p.parent for p in done}
    if _RESULT in names:
        folder = names[_RESULT]
        text += f" The run is saved; draw any missing picture with `gradfit plot {_shell(folder)}`."
    elif _CHECKPOINT in names:
        folder = names[_CHECKPOINT]
        earlier = f" (the {_RESULT} there is an earlier run's)" if (folder / _RESULT).exists() else ""
        text += (
            f" This run's {_RESULT} was not written{earlier}, but its checkpoint was: continue with "
            f"`gradfit fit ... --resume {_shell(folder)}`."
        )
    return text + " No partial or temporary file was left."


def _and(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _shell(path: Path) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "-_./" + os.sep for c in text) else repr(text)
