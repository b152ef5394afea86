"""A GIF writer with one palette for the whole animation.

matplotlib's Pillow writer keeps every frame in RGB and lets Pillow quantise each on its own when
saving (a median cut per frame: most of the time of a GIF), each with its own palette, so colours
can shimmer between frames. :class:`PaletteGifWriter` is given one palette, chosen once from a few
frames spread over the animation (the start, the middle and the end hold every colour it uses),
maps each frame onto it as soon as it is drawn, without dithering so flat areas stay flat, and
keeps one byte per pixel instead of three.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import numpy as np
from matplotlib import animation
from PIL import Image

__all__ = ["PaletteGifWriter", "palette_of"]


def palette_of(frames: Sequence[np.ndarray]) -> Image.Image:
    """A 256-colour palette image (Pillow mode ``"P"``) for the given RGBA frames ``(h, w, 4)``."""
    h, w = frames[0].shape[:2]
    strip = Image.new("RGB", (w, h * len(frames)))
    for k, rgba in enumerate(frames):
        strip.paste(Image.fromarray(np.ascontiguousarray(rgba[..., :3])), (0, h * k))
    return strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


class PaletteGifWriter(animation.PillowWriter):
    """:class:`matplotlib.animation.PillowWriter`, quantising every frame onto ``palette`` as it comes.

    Parameters
    ----------
    palette : PIL.Image.Image
        A ``"P"`` image whose palette every frame is mapped to (see :func:`palette_of`).
    fps : float
        Frames per second (the GIF stores each frame's delay in milliseconds).
    """

    def __init__(self, palette: Image.Image, fps: float = 5, **kwargs):
        super().__init__(fps=fps, **kwargs)
        self.palette = palette

    def grab_frame(self, **savefig_kwargs):
        buf = BytesIO()
        self.fig.savefig(buf, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
        rgba = Image.frombuffer("RGBA", self.frame_size, buf.getbuffer(), "raw", "RGBA", 0, 1)
        self._frames.append(rgba.convert("RGB").quantize(palette=self.palette, dither=Image.Dither.NONE))

    def finish(self):
        self._frames[0].save(self.outfile, format="GIF", save_all=True, append_images=self._frames[1:],
                             duration=round(1000 / self.fps), loop=0)
