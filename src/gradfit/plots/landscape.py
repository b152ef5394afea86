"""The loss landscape as contours, with the fit's path drawn on top.

Contour levels are log-spaced between the grid's lowest and highest loss: a loss bowl spans
decades, and evenly spaced levels would crowd every contour near the rim and leave the
minimum, where the path ends, blank. A loss that spans many decades (an exponential model
whose loss climbs to 1e27 across the grid) would still leave most of the map in one band, the
path in a single colour; then the levels split the decades and the map's area evenly, half
each (:func:`contour_levels`), and the colour bar says so.
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
from gradfit.plots.labels import RunLabels

__all__ = ["LandscapeDisplay", "contour_levels", "draw_contours", "held_note", "log_levels", "plot_landscape"]

#: Log-spaced levels are kept unless one band would cover more than this fraction of the map.
CROWDED_BAND = 0.25
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
        raise ConfigError(
            "The landscape holds no finite loss value to draw (the loss overflows over the whole grid); "
            "choose a smaller span."
        )
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    if lo > 0:
        return np.geomspace(lo, hi, int(levels))
    offset = lo - (hi - lo) * 1e-3
    return offset + np.geomspace(lo - offset, hi - offset, int(levels))


def contour_levels(loss: np.ndarray, levels: int = 20) -> tuple[np.ndarray, str]:
    """Readable contour levels of a loss grid, and what they are: ``(levels, "log")`` or ``(levels, "log+area")``.

    Log-spaced (:func:`log_levels`) unless one band between them would hold more than
    :data:`CROWDED_BAND` of the finite grid points. Then each level is a quantile of an even mix
    of two distributions of the log-loss, the grid's (area) and the uniform one over its range
    (decades): every band then holds at most ``2 / (levels - 1)`` of the map *and* of the
    decades, so the flat plains and the deep valley both get contours.

    Examples
    --------
    >>> a, b = np.meshgrid(np.linspace(0, 1, 50), np.linspace(-1, 1, 50))
    >>> lv, kind = contour_levels(1 + np.exp(60 * b) * a, 12)   # 26 decades, mostly a plain near 1
    >>> kind, len(lv)
    ('log+area', 12)
    """
    lv = log_levels(loss, levels)
    finite = np.asarray(loss, dtype=np.float64)[np.isfinite(loss)]
    counts = np.histogram(finite, bins=lv)[0]
    lo, hi = float(finite.min()), float(finite.max())
    if counts.max() <= CROWDED_BAND * len(finite) or not hi > lo:
        return lv, "log"
    offset = 0.0 if lo > 0 else lo - (hi - lo) * 1e-3
    z = np.sort(np.log(finite - offset))
    zlo, zhi = float(z[0]), float(z[-1])
    # The mixture's CDF on the grid's own values and an even grid: strictly increasing, so invertible by interpolation.
    v = np.union1d(z, np.linspace(zlo, zhi, 4 * int(levels) + 1))
    cdf = 0.5 * np.searchsorted(z, v, side="right") / len(z) + 0.5 * (v - zlo) / (zhi - zlo)
    out = offset + np.exp(np.interp(np.linspace(0.0, 1.0, int(levels)), cdf, v))
    out[0], out[-1] = lo, hi
    out = np.maximum.accumulate(out)
    # Levels that merged in rounding (matplotlib refuses levels that do not increase): one, the minimum's neighbour
    # on a plain at the minimum, is lifted by one ulp; more (a loss of 0 over half the map next to 1e10) leave the
    # mix unreadable, and the log-spaced levels are drawn instead.
    merged = np.flatnonzero(np.diff(out) <= 0) + 1
    if len(merged) > 1:
        return lv, "log"
    for i in merged:
        out[i] = np.nextafter(out[i - 1], np.inf)
    return out, "log+area"


LEVEL_NOTES = {"log": "log-spaced levels", "log+area": "levels by decade and area"}


def distinct_labels(values) -> list[str]:
    """The values with 3 significant digits, or as many more as it takes for no two to read the same."""
    for digits in range(3, 10):
        labels = [f"{float(v):.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def draw_contours(
    ax: Axes, land: Landscape, levels: int = 20, cmap: str = "viridis", colorbar: bool = True, lines: bool = True
):
    """Filled contours of ``land`` on ``ax`` at :func:`contour_levels` (with a colorbar); returns the ContourSet."""
    lv, kind = contour_levels(land.loss, levels)
    z = np.ma.masked_invalid(np.asarray(land.loss, dtype=np.float64))  # levels closer than float32 tells apart
    # Colours by level index, not by value, so each log-spaced band gets its own shade.
    norm = BoundaryNorm(lv, 256)
    cs = ax.contourf(land.a, land.b, z, levels=lv, cmap=cmap, norm=norm, extend="neither")
    if lines:
        ax.contour(land.a, land.b, z, levels=lv, colors="white", linewidths=0.4, alpha=0.35)
    if colorbar:
        cb = ax.figure.colorbar(cs, ax=ax, spacing="uniform", pad=0.02)
        cb.set_label(f"{land.loss_name} ({LEVEL_NOTES[kind]})", fontsize=style.FONT_SIZE)
        ticks = lv[np.unique(np.round(np.linspace(0, len(lv) - 1, 6)).astype(int))]
        names = dict(zip(ticks.tolist(), distinct_labels(ticks)))
        cb.locator = FixedLocator(ticks)
        cb.formatter = FuncFormatter(lambda v, _pos: names.get(float(v), style.fmt(v)))
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
        Number of contour levels (log-spaced, or see :func:`contour_levels`).
    show_path : bool, default True
    show_minimum : bool, default True
        Mark the grid's lowest point.
    cmap : str, default "viridis"
    """

    figsize = (6.4, 5.0)

    def __init__(
        self,
        landscape: Landscape,
        *,
        levels: int = 20,
        show_path: bool = True,
        show_minimum: bool = True,
        cmap: str = "viridis",
    ):
        self.landscape = landscape
        self.levels, self.level_kind = contour_levels(landscape.loss, levels)
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
            ax.plot(
                [ma],
                [mb],
                marker="P",
                ls="none",
                ms=9,
                color="white",
                mec=PATH_EDGE,
                zorder=6,
                clip_on=False,
                label=f"grid minimum ({style.fmt(ml)})",
            )
        if self.show_path and len(land.path):
            p = land.path
            ax.plot(
                p[:, 0],
                p[:, 1],
                color=PATH_COLOR,
                lw=1.6,
                marker="o",
                ms=2.6,
                markevery=_every(len(p)),
                path_effects=stroke(3.2),
                zorder=7,
                label=f"path ({int(land.path_steps[-1])} {RunLabels({'optimizer': land.optimizer}).step}s)",
            )
            ax.plot(
                [p[0, 0]],
                [p[0, 1]],
                marker="o",
                ls="none",
                ms=9,
                color="white",
                mec=PATH_EDGE,
                mew=1.5,
                zorder=8,
                label="start",
            )
            ax.plot(
                [p[-1, 0]],
                [p[-1, 1]],
                marker="*",
                ls="none",
                ms=16,
                color=END_COLOR,
                mec=PATH_EDGE,
                mew=1.0,
                zorder=9,
                label="end",
            )
        ax.set_xlim(land.a[0], land.a[-1])
        ax.set_ylim(land.b[0], land.b[-1])
        ax.legend(loc="best", fontsize=style.FONT_SIZE - 1, framealpha=0.85)
        note = held_note(land)
        ax.set_title("loss landscape" + (f"\n{note}" if note else ""), fontsize=style.TITLE_SIZE)
        return ax


def plot_landscape(
    source,
    data=None,
    *,
    ax: Axes | None = None,
    params=None,
    n: int = 101,
    span=None,
    levels: int = 20,
    show_path: bool = True,
    show_minimum: bool = True,
) -> LandscapeDisplay:
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
