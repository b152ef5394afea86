"""The loss landscape as contours, with the fit's path drawn on top.

Contour levels are log-spaced between the grid's lowest and highest loss: a loss bowl spans
decades, and evenly spaced levels would crowd every contour near the rim and leave the
minimum, where the path ends, blank.
"""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from matplotlib.ticker import FixedLocator, FuncFormatter

from gradfit.analysis.landscape import Landscape, compute_landscape
from gradfit.errors import ConfigError
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes

__all__ = ["LandscapeDisplay", "draw_contours", "held_note", "log_levels", "plot_landscape"]

PATH_COLOR = "white"
PATH_EDGE = "#1a1a1a"
END_COLOR = "#ffd400"


def log_levels(loss: np.ndarray, levels: int = 20) -> np.ndarray:
    """``levels`` contour levels, geometric between the finite min and max of ``loss``.

    When the minimum is <= 0 the levels are ``offset + geomspace(...)``: the spacing above the
    offset (just below the minimum) stays geometric.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ConfigError(f"The 'levels' parameter must be a whole number >= 2. Got {levels!r} instead.")
    finite = np.asarray(loss, dtype=np.float64)[np.isfinite(loss)]
    if not len(finite):
        raise ConfigError("The landscape holds no finite loss value to draw (the loss overflows over the whole grid); "
                          "choose a smaller span.")
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    if lo > 0:
        return np.geomspace(lo, hi, int(levels))
    offset = lo - (hi - lo) * 1e-3
    return offset + np.geomspace(lo - offset, hi - offset, int(levels))


def draw_contours(ax: Axes, land: Landscape, levels: int = 20, cmap: str = "viridis", colorbar: bool = True,
                  lines: bool = True):
    """Filled log-spaced contours of ``land`` on ``ax`` (with a colorbar); returns the ContourSet."""
    lv = log_levels(land.loss, levels)
    z = np.ma.masked_invalid(land.loss)
    # Colours by level index, not by value, so each log-spaced band gets its own shade.
    norm = BoundaryNorm(lv, 256)
    cs = ax.contourf(land.a, land.b, z, levels=lv, cmap=cmap, norm=norm, extend="neither")
    if lines:
        ax.contour(land.a, land.b, z, levels=lv, colors="white", linewidths=0.4, alpha=0.35)
    if colorbar:
        cb = ax.figure.colorbar(cs, ax=ax, spacing="uniform", pad=0.02)
        cb.set_label(f"{land.loss_name} (log-spaced levels)", fontsize=style.FONT_SIZE)
        ticks = lv[np.unique(np.round(np.linspace(0, len(lv) - 1, 6)).astype(int))]
        cb.locator = FixedLocator(ticks)
        cb.formatter = FuncFormatter(lambda v, _pos: style.fmt(v))
        cb.update_ticks()
        cb.ax.tick_params(labelsize=style.FONT_SIZE - 1)
    ax.set_xlabel(land.names[0])
    ax.set_ylabel(land.names[1])
    return cs


def held_note(land: Landscape) -> str:
    """What the other parameters were held at, short enough for a title."""
    held = land.held
    if not held:
        return ""
    if len(held) <= 2:
        return ", ".join(f"{k} = {style.fmt(v)}" for k, v in held.items()) + " held at the fit's final value"
    return f"the other {len(held)} parameters held at their final values"


def stroke(width: float, color: str = PATH_EDGE) -> list:
    """A dark outline under a line, so it reads on light and dark contour bands alike."""
    return [patheffects.withStroke(linewidth=width, foreground=color)]


class LandscapeDisplay(Display):
    """Contours of the loss over two parameters with the fit's path, start and end.

    Parameters
    ----------
    landscape : Landscape
    levels : int, default 20
        Number of log-spaced contour levels.
    show_path : bool, default True
    show_minimum : bool, default True
        Mark the grid's lowest point.
    cmap : str, default "viridis"
    """

    figsize = (6.4, 5.0)

    def __init__(self, landscape: Landscape, *, levels: int = 20, show_path: bool = True, show_minimum: bool = True,
                 cmap: str = "viridis"):
        self.landscape = landscape
        self.levels = log_levels(landscape.loss, levels)
        self.n_levels = int(levels)
        self.show_path = bool(show_path)
        self.show_minimum = bool(show_minimum)
        self.cmap = cmap

    def plot(self, ax: Axes | None = None) -> Axes:
        ax = new_axes(ax, self.figsize)
        land = self.landscape
        style.apply(ax, grid=False)
        draw_contours(ax, land, self.n_levels, self.cmap)
        if self.show_minimum:
            ma, mb, ml = land.minimum()
            ax.plot([ma], [mb], marker="P", ls="none", ms=9, color="white", mec=PATH_EDGE, zorder=6, clip_on=False,
                    label=f"grid minimum ({style.fmt(ml)})")
        if self.show_path and len(land.path):
            p = land.path
            ax.plot(p[:, 0], p[:, 1], color=PATH_COLOR, lw=1.6, marker="o", ms=2.6, markevery=_every(len(p)),
                    path_effects=stroke(3.2), zorder=7, label=f"path ({int(land.path_steps[-1])} steps)")
            ax.plot([p[0, 0]], [p[0, 1]], marker="o", ls="none", ms=9, color="white", mec=PATH_EDGE, mew=1.5,
                    zorder=8, label="start")
            ax.plot([p[-1, 0]], [p[-1, 1]], marker="*", ls="none", ms=16, color=END_COLOR, mec=PATH_EDGE, mew=1.0,
                    zorder=9, label="end")
        ax.set_xlim(land.a[0], land.a[-1])
        ax.set_ylim(land.b[0], land.b[-1])
        ax.legend(loc="best", fontsize=style.FONT_SIZE - 1, framealpha=0.85)
        note = held_note(land)
        ax.set_title("loss landscape" + (f"\n{note}" if note else ""), fontsize=style.TITLE_SIZE)
        return ax


def plot_landscape(source, data=None, *, ax: Axes | None = None, params=None, n: int = 101, span=None, levels: int = 20,
                   show_path: bool = True, show_minimum: bool = True) -> LandscapeDisplay:
    """Make a :class:`LandscapeDisplay` of a :class:`Landscape` (or of a FitResult, computing one); draw it into ``ax`` when given.

    In a notebook the returned display shows itself; ``.save("landscape.png")`` writes it.

    Examples
    --------
    >>> import gradfit
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=100)
    >>> plot_landscape(r).save("landscape.png")  # doctest: +SKIP
    """
    land = source if isinstance(source, Landscape) else compute_landscape(source, data, params=params, n=n, span=span)
    display = LandscapeDisplay(land, levels=levels, show_path=show_path, show_minimum=show_minimum)
    if ax is not None:
        display.plot(ax)
    return display


def _every(m: int) -> int:
    """Markers on at most ~60 points, so a long path is a line with beads, not a smear."""
    return max(1, int(np.ceil(m / 60)))
