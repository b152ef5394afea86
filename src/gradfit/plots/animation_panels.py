"""The panels both animations share (a landscape with paths growing, loss curves growing).

Each panel is drawn once and returns an ``update(i)`` that only moves its artists to frame ``i``
(the frames of :mod:`gradfit.plots.animation_frames`), so a frame costs a few ``set_data``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from gradfit.plots import style
from gradfit.plots.animation_frames import upto

__all__ = ["finite_curve", "landscape_panel", "loss_panel", "pad_range", "shorten"]


def landscape_panel(
    ax: Axes, land, paths, path_steps, colors, frame_steps, *, cmap: str = "viridis", fit_paths: bool = True
):
    """Contours of ``land`` and each path growing to the frame's step; returns ``update(i)``.

    ``fit_paths`` widens the limits to the whole paths (a given landscape may not span them);
    otherwise the panel is exactly the landscape's grid, filled edge to edge.
    """
    from gradfit.plots.landscape import PATH_EDGE, draw_contours, held_note, stroke

    style.apply(ax, grid=False)
    draw_contours(ax, land, levels=16, cmap=cmap)
    note = held_note(land)
    ax.set_title("Loss landscape" + (f"\n{note}" if note else ""), loc="left")
    corners = np.column_stack([land.a[[0, -1]], land.b[[0, -1]]])
    if fit_paths:
        shown = np.concatenate([corners] + list(paths))
        ax.set_xlim(*pad_range(shown[:, 0], 0.01))
        ax.set_ylim(*pad_range(shown[:, 1], 0.01))
    else:
        ax.set_xlim(*corners[:, 0])
        ax.set_ylim(*corners[:, 1])
    lines, dots = [], []
    for k, (path, color) in enumerate(zip(paths, colors)):
        if k == 0:  # the runs of a race share their start
            ax.plot(
                path[:1, 0], path[:1, 1], marker="o", ls="none", ms=8, color="white", mec=PATH_EDGE, mew=1.3, zorder=5
            )
        (line,) = ax.plot(
            path[:1, 0],
            path[:1, 1],
            color=color,
            lw=1.8,
            gid="path",
            zorder=6,
            path_effects=stroke(3.2, PATH_EDGE if color == "white" else "white"),
        )
        (dot,) = ax.plot(
            path[:1, 0],
            path[:1, 1],
            marker="o",
            ms=8,
            color=color,
            mec=PATH_EDGE,
            mew=1.2,
            ls="none",
            gid="current",
            zorder=7,
        )
        lines.append(line)
        dots.append(dot)

    def update(i: int) -> list:
        for line, dot, path, steps in zip(lines, dots, paths, path_steps):
            m = max(upto(steps, frame_steps[i]), 1)
            line.set_data(path[:m, 0], path[:m, 1])
            dot.set_data(path[m - 1 : m, 0], path[m - 1 : m, 1])
        return lines + dots

    return update


def loss_panel(ax: Axes, curves, colors, frame_steps, labels=None, loss_name: str = "loss", step_word: str = "step"):
    """Each (steps, loss) curve growing to the frame's step (log scale past two decades); returns ``update(i)``.

    ``step_word`` names the x axis (``"iteration"`` for Levenberg-Marquardt).
    """
    style.apply(ax)
    from gradfit.plots.loss import uses_log_scale

    every = np.concatenate([c[1] for c in curves]) if curves else np.zeros(0)
    log = len(every) > 0 and bool(np.all(every > 0)) and uses_log_scale(every)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(every.min() / 1.5, every.max() * 1.5)
    elif len(every):
        ax.set_ylim(*pad_range(every, 0.05))
    # A little room past the last step so the final marker is not cut in half by the edge.
    ax.set_xlim(0, max(float(frame_steps[-1]), 1.0) * 1.03)
    ax.set(xlabel=step_word, ylabel=f"{loss_name} (log scale)" if log else loss_name)
    ax.set_title("Training loss", loc="left")
    lines, dots = [], []
    for k, ((steps, loss), color) in enumerate(zip(curves, colors)):
        (line,) = ax.plot(
            steps[:1],
            loss[:1],
            color=color,
            lw=style.LINE_WIDTH,
            gid="loss",
            label=None if labels is None else labels[k],
        )
        (dot,) = ax.plot(steps[:1], loss[:1], marker="o", ms=6, color=color, ls="none", gid="loss-now")
        lines.append(line)
        dots.append(dot)
    if labels is not None:
        from gradfit.plots.display import quiet_corner

        ax.legend(loc=quiet_corner(ax, curves), fontsize=style.FONT_SIZE - 1, framealpha=0.9)

    def update(i: int) -> list:
        for line, dot, (steps, loss) in zip(lines, dots, curves):
            m = max(upto(steps, frame_steps[i]), 1)
            line.set_data(steps[:m], loss[:m])
            dot.set_data(steps[m - 1 : m], loss[m - 1 : m])
        return lines + dots

    return update


def finite_curve(steps, values) -> tuple[np.ndarray, np.ndarray]:
    """The (steps, values) pairs whose value is finite."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    return steps[keep], values[keep]


def pad_range(values, frac: float) -> tuple[float, float]:
    """Limits around the finite ``values`` with ``frac`` of their span added each side."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = (hi - lo) * frac if hi > lo else max(abs(lo), 1.0) * 0.05
    return lo - pad, hi + pad


def shorten(text, width: float, renderer) -> bool:
    """Cut each line of a Text with an ellipsis until it is at most ``width`` pixels wide; True if any was cut.

    Long formulas and held-parameter notes would otherwise run into the next panel's title.
    """
    full = text.get_text().split("\n")
    out = []
    for line in full:
        text.set_text(line)
        if text.get_window_extent(renderer).width <= width:
            out.append(line)
            continue
        lo, hi = 0, len(line)  # the longest prefix that fits, by bisection: a few measurements, not one per character
        while lo < hi:
            mid = (lo + hi + 1) // 2
            text.set_text(line[:mid].rstrip() + "…")
            lo, hi = (mid, hi) if text.get_window_extent(renderer).width <= width else (lo, mid - 1)
        out.append(line[:lo].rstrip() + "…")
    text.set_text("\n".join(out))
    return out != full
