"""Path options of the commands: the text given, as a Path, and an empty one refused.

``Path("")`` is the current folder, so ``--out ''`` (an unset shell variable, say) would quietly
write a run among the files there. Each path option is parsed with :func:`given_path`, which
refuses an empty or blank value with exit 2 before the command starts; ``.`` still means the
current folder for whoever wants it.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["given_path"]


def given_path(text: str | Path) -> Path:
    """``text`` as a Path; typer.BadParameter (exit 2) when it is empty or only blanks."""
    if isinstance(text, Path):
        return text
    if not text.strip():
        raise typer.BadParameter(
            f"the path is empty ({text!r}), which would mean the current folder without "
            f"saying so. Give a name, or '.' for the current folder."
        )
    return Path(text)
