"""The shared look of gradfit's pictures: one palette, one set of sizes.

Every display draws with these colours so a reader learns them once: data points muted,
the model strong, the start grey and dashed, validation orange, the learning rate purple,
the least-squares optimum green and a descent path red.
"""

from __future__ import annotations

from typing import TypedDict

from matplotlib.axes import Axes

PALETTE: dict[str, str] = {
    "data": "#7f9cb8",  # muted steel blue: the data should recede behind the model
    "model": "#c0392b",  # strong red: the fitted curve
    "start": "#8c8c8c",  # grey: the initial guess (drawn dashed)
    "val": "#e67e22",  # orange: validation loss
    "lr": "#8e44ad",  # purple: learning rate on a twin axis
    "optimum": "#27ae60",  # green: the least-squares optimum (drawn dashed)
    "path": "#d35400",  # dark orange: a descent path on a landscape
}

#: Categorical colours (for classes, several runs); colour-blind friendly (Okabe-Ito).
CYCLE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

FONT_SIZE = 10
TITLE_SIZE = 11
LINE_WIDTH = 2.0
MARKER_SIZE = 18  # scatter ``s`` (points^2)
DATA_ALPHA = 0.7


class LineStyle(TypedDict):
    """The keywords of a reference line (``ax.axhline(y, **style.OPTIMUM_STYLE)``)."""

    color: str
    linestyle: str
    linewidth: float


START_STYLE: LineStyle = {"color": PALETTE["start"], "linestyle": "--", "linewidth": 1.5}
OPTIMUM_STYLE: LineStyle = {"color": PALETTE["optimum"], "linestyle": "--", "linewidth": 1.2}


def apply(ax: Axes, *, grid: bool = True) -> Axes:
    """Give ``ax`` the house style: light grid behind the data, no top/right spines, readable ticks."""
    ax.set_axisbelow(True)
    if grid:
        ax.grid(True, color="#e5e5e5", linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=FONT_SIZE - 1)
    ax.xaxis.label.set_fontsize(FONT_SIZE)
    ax.yaxis.label.set_fontsize(FONT_SIZE)
    ax.title.set_fontsize(TITLE_SIZE)
    return ax


def fmt(value: float) -> str:
    """A number short enough for a legend or title (``0.0123``, ``1.2e+05``)."""
    return f"{value:.3g}"
