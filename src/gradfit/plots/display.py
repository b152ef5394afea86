"""Display: a picture computed once and drawn many times.

A display holds the arrays it shows (computed from a result when it is made) and draws them
on request: ``plot(ax)`` into an existing Axes, ``figure()`` as a standalone figure,
``save(path)`` to a PNG/SVG/PDF file (written atomically), and ``_repr_png_`` so a notebook
shows it inline. Standalone figures use ``matplotlib.figure.Figure`` directly, not pyplot, so
scripts and the CLI never need a display or leak pyplot state.

Pictures of big data draw a fixed random subset of the rows (:func:`plot_rows`): at most
:data:`MAX_PLOT_ROWS` in a still picture and :data:`MAX_ANIMATION_ROWS` in an animation, whose
every frame is drawn again. What a picture holds is then bounded whatever the size of the data
(see ``docs/limits.md``); raise the caps by assigning them before making the picture.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradfit.atomic_files import atomic_path

#: Data rows drawn by a still picture (FitDisplay, GridDisplay); more only blot the picture.
MAX_PLOT_ROWS = 20_000
#: Data rows drawn by an animation (FitAnimation): every frame redraws them.
MAX_ANIMATION_ROWS = 2_000
#: Seed of the subset, so the same data always shows the same points.
PLOT_SEED = 0


def plot_rows(n: int, cap: int | None = None) -> np.ndarray | None:
    """Which of ``n`` rows a picture draws: None for all of them, else ``cap`` row indices, sorted.

    The subset is random but fixed (seed :data:`PLOT_SEED`) and costs memory in ``cap``, not in
    ``n`` (NumPy draws it by Floyd's algorithm when ``n`` is large), so a picture of 10^8 rows
    allocates no 10^8-long permutation.

    Parameters
    ----------
    n : int
        Rows of the data.
    cap : int, optional
        The most rows drawn; default :data:`MAX_PLOT_ROWS` (read when called).

    Examples
    --------
    >>> plot_rows(10, cap=20) is None
    True
    >>> idx = plot_rows(10**8, cap=5)
    >>> len(idx), bool((idx[1:] > idx[:-1]).all()), bool(idx.max() < 10**8)
    (5, True, True)
    """
    cap = MAX_PLOT_ROWS if cap is None else int(cap)
    if n <= cap:
        return None
    rng = np.random.default_rng(PLOT_SEED)
    return np.sort(rng.choice(n, size=cap, replace=False, shuffle=False)).astype(np.int64)


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
        from gradfit.plots.backdrop import settle

        target = Path(path)
        # Laid out once: with the layout engine left on, savefig would lay the figure out in a draw of its own.
        fig = settle(self.figure(figsize=figsize, dpi=dpi))
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix.lstrip(".").lower() or "png")
        return target

    def to_png(self, dpi: int = 100) -> bytes:
        from gradfit.plots.backdrop import settle

        buffer = io.BytesIO()
        settle(self.figure(dpi=dpi)).savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()


#: Where :func:`quiet_corner` puts a legend (a ``loc`` of ``Axes.legend``).
Corner = Literal["upper left", "upper right", "lower left", "lower right"]


def quiet_corner(ax: Axes, crowd) -> Corner:
    """The corner of ``ax`` holding the fewest of the given ``(x, y)`` points: where a legend hides least.

    A cheap stand-in for ``legend(loc="best")``, whose search over every drawn vertex is slow on
    big data; ``crowd`` is what matters (the data, the curves), in data coordinates, with the axes'
    limits already set.
    """
    xy = (
        np.concatenate(
            [
                np.column_stack([np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()])
                for x, y in crowd
            ]
        )
        if crowd
        else np.zeros((0, 2))
    )
    with np.errstate(all="ignore"):  # log axes: non-positive values map to NaN and count nowhere
        u, v = (ax.transScale + ax.transLimits).transform(xy).T if len(xy) else (np.zeros(0), np.zeros(0))
    corners: dict[Corner, np.ndarray] = {
        "upper left": (u < 0.4) & (v > 0.6),
        "upper right": (u > 0.6) & (v > 0.6),
        "lower left": (u < 0.4) & (v < 0.4),
        "lower right": (u > 0.6) & (v < 0.4),
    }
    return min(corners, key=lambda name: int(corners[name].sum()))


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the Axes of a new pyplot figure (imported only then)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax
