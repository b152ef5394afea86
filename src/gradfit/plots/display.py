"""Display: a picture computed once and drawn many times.

A display holds the arrays it shows (computed from a result when it is made) and draws them
on request: ``plot(ax)`` into an existing Axes, ``figure()`` as a standalone figure,
``save(path)`` to a PNG/SVG/PDF file (written atomically), and ``_repr_png_`` so a notebook
shows it inline. Standalone figures use ``matplotlib.figure.Figure`` directly, not pyplot, so
scripts and the CLI never need a display or leak pyplot state.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradfit.outputs import atomic_path


class Display:
    """Base class. Subclasses implement ``plot(ax)``; multi-panel ones override ``draw(fig)``."""

    figsize: tuple[float, float] = (6.4, 4.4)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the main panel into ``ax`` (a new pyplot figure when None, so notebooks show it)."""
        raise NotImplementedError

    def draw(self, fig: Figure) -> None:
        """Lay out the whole picture on ``fig``; by default one panel."""
        self.plot(fig.add_subplot())

    def figure(self, figsize: tuple[float, float] | None = None, dpi: int = 100) -> Figure:
        fig = Figure(figsize=figsize or self.figsize, dpi=dpi, layout="constrained")
        self.draw(fig)
        return fig

    def save(self, path: str | os.PathLike, dpi: int = 100, figsize: tuple[float, float] | None = None) -> Path:
        """Write the picture; the format follows the extension (``.png``, ``.svg``, ``.pdf``)."""
        target = Path(path)
        fig = self.figure(figsize=figsize, dpi=dpi)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lstrip(".").lower() or "png")
        return target

    def to_png(self, dpi: int = 100) -> bytes:
        buffer = io.BytesIO()
        self.figure(dpi=dpi).savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the Axes of a new pyplot figure (imported only then)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax
