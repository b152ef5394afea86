"""Reel: what every animation shares, the figure's layout, its backdrop, and saving and showing it.

A subclass computes its frames when it is made and implements ``draw_panels(fig)``, which lays
its panels out showing frame 0 and returns ``update(i)``. :meth:`Reel.make_figure` adds the top
line (the run on the left, the frame's label on the right), lays the figure out once, cuts texts
that would run into others, and bakes the still part into a backdrop
(:mod:`gradfit.plots.backdrop`). Saving writes ``.gif`` (one palette for every frame), ``.mp4``
(with ffmpeg) or a self-contained ``.html`` page; a notebook shows the HTML player.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from gradfit.atomic_files import atomic_path, atomic_write_text
from gradfit.errors import ConfigError
from gradfit.plots import style
from gradfit.plots.animation_panels import shorten
from gradfit.plots.backdrop import freeze, render, settle
from gradfit.plots.gif import PaletteGifWriter, palette_of

if TYPE_CHECKING:  # matplotlib.typing is new in matplotlib 3.8; the annotations are never evaluated
    from matplotlib.typing import RcKeyType

__all__ = ["PANEL_SIZE", "Reel"]

PANEL_SIZE = (6.4, 3.6)  # inches per panel: 512 x 288 pixels at dpi 80
GAP = 12  # pixels kept between the top line's two texts
# Saving must use the figure's own dpi and extent: the backdrop is pixels.
_SAVING: dict[RcKeyType, Any] = {"savefig.dpi": "figure", "savefig.bbox": None}

# matplotlib's jshtml player loads Font Awesome from a CDN for its button icons; a saved page
# must work offline, so the icons become plain characters and the stylesheet link goes.
_ICONS = {
    "fa fa-minus": "&minus;",
    "fa fa-fast-backward": "&#x23EE;",
    "fa fa-step-backward": "&#x25C1;",
    "fa fa-play fa-flip-horizontal": "&#x25C0;",
    "fa fa-pause": "&#x23F8;",
    "fa fa-play": "&#x25B6;",
    "fa fa-step-forward": "&#x25B7;",
    "fa fa-fast-forward": "&#x23ED;",
    "fa fa-plus": "+",
}
_EXTERNAL = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?https?://[^>]*>""", re.IGNORECASE)
_ICON_TAG = re.compile(r'<i class="(fa [^"]*)"></i>')


class Reel:
    """Layout, saving and showing machinery; subclasses precompute frames and implement ``draw_panels``."""

    figsize: tuple[float, float] = PANEL_SIZE
    title: str = "gradfit animation"
    heading: str = ""  # the top line's left: what is animated
    frame_steps: np.ndarray
    frame_labels: list[str]  # the top line's right, per frame
    interval: int
    fps: float | None

    @property
    def n_frames(self) -> int:
        return len(self.frame_steps)

    def draw_panels(self, fig: Figure) -> Callable[[int], list]:
        """Lay the panels out on ``fig`` showing frame 0; returns ``update(i)`` (the artists it moved)."""
        raise NotImplementedError

    def make_figure(self, dpi: int = 80, *, frozen: bool = True) -> tuple[Figure, Callable[[int], list]]:
        """A figure showing frame 0 and ``update(i)``, which redraws it as frame ``i``.

        With ``frozen`` (the default) the still part is baked into a backdrop (see
        :func:`gradfit.plots.backdrop.freeze`): the figure must then be saved at ``dpi``.
        """
        fig = Figure(figsize=self.figsize, dpi=dpi, layout="constrained")
        canvas = FigureCanvasAgg(fig)
        head = fig.suptitle(self.heading, x=0.01, ha="left", fontsize=style.TITLE_SIZE)
        label = fig.text(
            0.99,
            0.99,
            max(self.frame_labels, key=len),
            ha="right",
            va="top",
            family="monospace",
            fontsize=style.FONT_SIZE,
            gid="label",
        )
        label.set_in_layout(False)
        panels = self.draw_panels(fig)

        def update(i: int) -> list:
            label.set_text(self.frame_labels[i])
            return panels(i) + [label]

        update(0)
        # Limits never change between frames, so neither does the layout: lay it out once, then fit the texts.
        settle(fig)
        renderer = canvas.get_renderer()
        label.set_text(max(self.frame_labels, key=len))
        label.set_y(head.get_position()[1])
        room = label.get_window_extent(renderer).x0 - head.get_window_extent(renderer).x0 - GAP
        shorten(head, room, renderer)
        for ax in fig.axes:  # an Axes' own texts are its titles and notes: each within the panel's width
            for text in ax.get_children():
                if isinstance(text, Text) and text.get_text():
                    shorten(text, ax.get_window_extent(renderer).width, renderer)
        moving = update(0)
        if frozen:
            freeze(fig, moving)
        return fig, update

    def animation(
        self, dpi: int = 80, figure: tuple[Figure, Callable[[int], list]] | None = None
    ) -> animation.FuncAnimation:
        """A :class:`matplotlib.animation.FuncAnimation` of the frames (on ``figure``, from :meth:`make_figure`)."""
        fig, update = figure if figure is not None else self.make_figure(dpi=dpi)
        return animation.FuncAnimation(
            fig, update, frames=self.n_frames, interval=self.interval, blit=False, cache_frame_data=False
        )

    def _fps(self) -> float:
        return float(self.fps) if self.fps else 1000.0 / self.interval

    def check_memory(self, dpi: int, kind: str) -> None:
        """Refuse, before drawing, frames the memory budget cannot hold (:mod:`gradfit.memory`).

        A GIF keeps every frame as a palette image (a byte a pixel), an HTML page as base64 PNG text
        (counted as 3 bytes a pixel, an upper bound); both keep the still part as two RGBA images.
        """
        from gradfit.memory import require

        pixels = self.figsize[0] * dpi * self.figsize[1] * dpi
        per_frame = {"gif": 1.0, "html": 3.0}.get(kind, 0.0)
        require(
            [
                (f"{self.n_frames:,} frames of {pixels:,.0f} pixels", per_frame * pixels * self.n_frames),
                ("the still part of the picture", 2 * 4.0 * pixels),
            ],
            f"the animation ({kind})",
            "Keep fewer frames (max_frames=...) or a lower dpi.",
        )

    def to_jshtml(self, dpi: int = 80) -> str:
        """An HTML fragment with every frame embedded as a base64 PNG and a player; no external URL."""
        self.check_memory(dpi, "html")
        with matplotlib.rc_context(_SAVING):
            # matplotlib's stubs say fps is an int; it takes any rate (the player's delay is 1000 / fps ms)
            text = self.animation(dpi=dpi).to_jshtml(
                fps=self._fps(),  # type: ignore[arg-type]
                embed_frames=True,
                default_mode="loop",
            )
        text = _EXTERNAL.sub("", text)
        return _ICON_TAG.sub(lambda m: _ICONS.get(m.group(1), ""), text)

    def _repr_html_(self) -> str:
        return self.to_jshtml()

    def save(self, path: str | os.PathLike, dpi: int = 80) -> Path:
        """Write the animation; the format follows the extension (``.gif``, ``.mp4``, ``.html``).

        The file is written atomically: an error part-way leaves no half-written file.

        Raises
        ------
        ConfigError
            For another extension, or ``.mp4`` when ffmpeg is not installed.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in (".gif", ".mp4", ".html"):
            raise ConfigError(
                f"Cannot save an animation as {target.name!r}: the extension must be .gif, .mp4 or .html."
            )
        if suffix == ".html":
            page = (
                f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html.escape(self.title)}</title>\n</head>\n<body>\n{self.to_jshtml(dpi=dpi)}\n</body>\n</html>\n"
            )
            return atomic_write_text(target, page)
        if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
            raise ConfigError("saving MP4 needs ffmpeg, which is not installed; save as .gif or .html instead.")
        self.check_memory(dpi, suffix[1:])
        figure = self.make_figure(dpi=dpi)
        writer: animation.AbstractMovieWriter
        if suffix == ".mp4":
            # matplotlib's stubs say fps is an int; ffmpeg takes any rate (-r 12.5)
            writer = animation.FFMpegWriter(fps=self._fps())  # type: ignore[arg-type]
        else:
            writer = PaletteGifWriter(self._palette(*figure), fps=self._fps())
        anim = self.animation(dpi=dpi, figure=figure)
        with matplotlib.rc_context(_SAVING), atomic_path(target) as tmp:
            anim.save(tmp, writer=writer, dpi=dpi)
        return target

    def _palette(self, fig: Figure, update: Callable[[int], list]):
        """One GIF palette for every frame, from the first, middle and last frames."""
        frames = []
        for i in sorted({0, self.n_frames // 2, self.n_frames - 1}):
            update(i)
            frames.append(render(fig))
        update(0)
        return palette_of(frames)
