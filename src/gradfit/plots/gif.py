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


#: Colours kept exactly in the palette: the commonest ones (the white background, black text, the flat
#: fills of contour bands), which a median cut would average with their anti-aliased neighbours.
EXACT = 128


def palette_of(frames: Sequence[np.ndarray]) -> np.ndarray:
    """A palette of at most 256 colours, ``(k, 3)`` uint8, for the given RGBA frames ``(h, w, 4)``.

    Every colour when there are at most 256; else the :data:`EXACT` commonest colours as they
    are and a median cut of the other pixels for the rest.
    """
    rgb = np.concatenate([np.asarray(f)[..., :3].reshape(-1, 3) for f in frames])
    colours, counts = np.unique(_codes(rgb), return_counts=True)
    if len(colours) > 256:
        common = colours[np.argsort(counts, kind="stable")[::-1][:EXACT]]
        others = rgb[~np.isin(_codes(rgb), common)]
        cut = Image.fromarray(np.ascontiguousarray(others.reshape(1, -1, 3))).quantize(
            colors=256 - EXACT, method=Image.Quantize.MEDIANCUT
        )
        palette = cut.getpalette()
        assert palette is not None  # quantize() makes a "P" image, which always has a palette
        extra = np.asarray(palette[: 3 * (256 - EXACT)], dtype=np.uint8).reshape(-1, 3)
        colours = np.unique(np.concatenate([common, _codes(extra)]))
    return _colours(colours)


class PaletteGifWriter(animation.PillowWriter):
    """:class:`matplotlib.animation.PillowWriter`, mapping every frame onto ``palette`` as it comes.

    Each pixel takes the nearest palette colour (exactly its own when the palette has it: Pillow's
    own mapping rounds through a 6-bit cache and turns the white background grey), through a table
    of every colour met so far, so a frame costs a lookup, not a search.

    Parameters
    ----------
    palette : ndarray, shape (k, 3), uint8
        At most 256 colours (see :func:`palette_of`).
    fps : float
        Frames per second (the GIF stores each frame's delay in milliseconds).
    """

    def __init__(self, palette: np.ndarray, fps: float = 5, **kwargs):
        # matplotlib's stubs say fps is an int; a GIF stores any rate as its delay, round(1000 / fps) ms
        super().__init__(fps=fps, **kwargs)  # type: ignore[arg-type]
        self.palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        self._flat = self.palette.ravel().tolist() + [0] * (768 - self.palette.size)
        self._index: np.ndarray | None = None  # colour code (24 bits) -> palette index, -1 until met

    def grab_frame(self, **savefig_kwargs):
        buf = BytesIO()
        self.fig.savefig(buf, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
        w, h = self.frame_size
        # RGBA bytes read as little-endian 32-bit words: r + g<<8 + b<<16 + a<<24; the mask drops alpha.
        codes = np.frombuffer(buf.getbuffer(), dtype="<u4") & 0xFFFFFF
        if self._index is None:
            self._index = np.full(1 << 24, -1, dtype=np.int16)
        index = self._index[codes]
        new = np.unique(codes[index < 0])
        if len(new):
            rgb = _colours(new).astype(np.int32)
            distance = ((rgb[:, None, :] - self.palette[None, :, :].astype(np.int32)) ** 2).sum(axis=2)
            self._index[new] = distance.argmin(axis=1)
            index = self._index[codes]
        frame = Image.frombytes("P", (w, h), index.astype(np.uint8).tobytes())
        frame.putpalette(self._flat)
        self._frames.append(frame)

    def finish(self):
        self._index = None
        self._frames[0].save(
            self.outfile,
            format="GIF",
            save_all=True,
            append_images=self._frames[1:],
            duration=round(1000 / self.fps),
            loop=0,
        )


def _codes(rgb: np.ndarray) -> np.ndarray:
    """``(n, 3)`` uint8 colours as 24-bit integers ``r + g<<8 + b<<16`` (the bytes of RGBA, read little-endian)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    return rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16)


def _colours(codes: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_codes`: ``(n, 3)`` uint8."""
    codes = np.asarray(codes, dtype=np.uint32)
    return np.stack([codes & 255, (codes >> 8) & 255, (codes >> 16) & 255], axis=1).astype(np.uint8)
