"""The backdrop of an animation: everything that does not move, rendered once.

An animation's frames differ only in a few artists (a curve, a path, a dot, a label); axes,
ticks, contours, colour bars and legends are the same in every frame, and drawing them is most of
the cost of a frame (tick and text layout, legend boxes). :func:`freeze` renders the still part
once into two pixel layers, one under the moving artists and one over them, and hides it, so
every later draw of the figure, by any writer (GIF, MP4, the HTML player, a notebook), blits two
images and draws the moving artists only.

What is drawn stays the same: in each Axes the still artists drawn after its first moving artist
(a legend over the moving curve, say) go to the upper layer, so nothing that sat above a moving
artist ends up under it.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["Backdrop", "Layer", "freeze", "render", "settle"]


class Layer(Artist):
    """A figure-sized RGBA image drawn as is: no resampling, no colour mapping (the figure's own pixels).

    Drawn on a canvas of another size (the figure saved at another dpi), it cannot stand for the
    artists it holds: it hands the figure back to them (see :class:`Backdrop`) and the figure is
    drawn in full from then on.
    """

    def __init__(self, rgba: np.ndarray, zorder: float, backdrop: Backdrop):
        super().__init__()
        self.rgba = rgba
        self._rows_up = np.ascontiguousarray(rgba[::-1])  # the renderer takes rows from the bottom up
        self.backdrop = backdrop
        self.set_zorder(zorder)

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        if (getattr(renderer, "height", None), getattr(renderer, "width", None)) != self.rgba.shape[:2]:
            self.backdrop.thaw(renderer)
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, 0, 0, self._rows_up)
        gc.restore()
        self.stale = False


class Backdrop:
    """The two layers of a frozen figure and the artists they stand for."""

    def __init__(self, fig: Figure, still: list[Artist], under: np.ndarray, top: np.ndarray | None):
        self.fig, self.still = fig, still
        self.layers = [Layer(under, -1e9, self)] + ([Layer(top, 1e9, self)] if top is not None else [])
        for layer in self.layers:
            fig.add_artist(layer)

    def thaw(self, renderer) -> None:
        """Show the still artists again and drop the layers (the draw under way goes on with them)."""
        for layer in self.layers:
            layer.set_visible(False)
        for artist in self.still:
            artist.set_visible(True)
        self.fig.patch.draw(renderer)  # the figure drew its (hidden) background before this layer


def render(fig: Figure) -> np.ndarray:
    """The figure drawn by Agg at its own dpi: an ``(height, width, 4)`` uint8 RGBA array (a copy).

    The figure keeps the canvas it had.
    """
    before = fig.canvas
    canvas = before if isinstance(before, FigureCanvasAgg) else FigureCanvasAgg(fig)
    try:
        canvas.draw()
        return np.array(canvas.buffer_rgba(), copy=True)
    finally:
        if canvas is not before:
            fig.set_canvas(before)


def settle(fig: Figure) -> Figure:
    """Run the figure's layout engine once and turn it off: a later save draws once instead of laying out again.

    With an engine on (even ``"none"``, a placeholder), every ``savefig`` draws twice: once to lay
    out, once to render.
    """
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    return fig


def freeze(fig: Figure, moving: Iterable[Artist]) -> None:
    """Bake every artist of ``fig`` but ``moving`` into two layers, under and over the moving artists.

    Call it once the figure is laid out (see :func:`settle`) and shows frame 0: the layers are
    pixels, so nothing may move afterwards but ``moving``. Drawn at another size or dpi, the
    figure thaws and is drawn in full, correct but at the old cost.
    """
    moving = list(moving)
    keep = set(moving)
    over: list[Artist] = []
    for ax in {a.axes for a in moving if a.axes is not None}:
        # An Axes draws its children sorted by zorder, ties in the order they were added: whatever it draws
        # after its first moving artist goes over. Axis objects (ticks, grid lines) lie below the data in the
        # house style, and are the costly part.
        order = sorted(ax.get_children(), key=lambda a: a.get_zorder())
        first = min(k for k, a in enumerate(order) if a in keep)
        over += [
            c
            for c in order[first:]
            if c.get_visible() and c not in keep and c is not ax.patch and not isinstance(c, Axis)
        ]
    still = _still(fig, keep)
    for artist in moving + over:
        artist.set_visible(False)
    under = render(fig)
    for artist in still:
        artist.set_visible(False)
    for artist in over:
        artist.set_visible(True)
    top = render(fig) if over else None  # on a transparent canvas: the figure's patch is hidden
    for artist in over:
        artist.set_visible(False)
    for artist in moving:
        artist.set_visible(True)
    Backdrop(fig, still, under, top)  # the artists over the moving ones are among the still ones
    if isinstance(fig.canvas, FigureCanvasAgg):
        # FuncAnimation calls draw_idle after every frame; the writers draw it again to save it.
        FigureCanvasBase(fig)


def _still(fig: Figure, keep: set[Artist]) -> list[Artist]:
    """The visible artists to hide once baked: whole Axes without moving artists, else their children."""
    holders = {a.axes for a in keep if a.axes is not None}
    out: list[Artist] = []
    for child in fig.get_children():
        if child in keep or not child.get_visible():
            continue
        if child in holders:
            out += [c for c in child.get_children() if c.get_visible() and c not in keep]
        else:
            out.append(child)
    return out
