"""ParamsDisplay: each parameter against the step, beside the exact optimum when there is one.

One small panel per parameter (their scales differ, so one shared axis would flatten most of
them), with the least-squares optimum as a dashed line for models linear in their parameters,
so the reader sees gradient descent close in on the answer. A Levenberg-Marquardt run is drawn
against its iterations and named as such.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradfit.analysis.optimum import least_squares_optimum
from gradfit.errors import ConfigError, DataError
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes
from gradfit.plots.labels import labels_of

MAX_PANELS = 12
COLUMNS = 4


class ParamsDisplay(Display):
    """Every parameter's path over the fit.

    Parameters
    ----------
    result : FitResult
    data : optional
        The data, to compute the optimum (as for :func:`gradfit.analysis.fitted_data.run_data`).
    optimum : dict of str to float, False or None
        Reference values to draw (flat names); None computes the least-squares optimum when it
        exists (and the data can be read); False draws none.

    Attributes
    ----------
    steps : ndarray
        The snapshot steps.
    names : list of str
        The parameters drawn (the first :data:`MAX_PANELS`).
    values : ndarray, shape (len(steps), len(names))
    optimum : dict of str to float or None
    """

    def __init__(self, result, data=None, optimum: dict[str, float] | bool | None = None):
        hist = result.history
        if not len(hist.snapshot_steps):
            raise ConfigError(
                "This run kept no parameter snapshots to draw (a result loaded from JSON without its "
                "history.csv): pass history=History.from_frame(...) to FitResult.from_json."
            )
        if optimum is None:
            try:
                optimum = least_squares_optimum(result, data)
            except DataError:
                optimum = None  # the data is not at hand: draw the paths without the reference
        elif optimum is False:
            optimum = None
        elif not isinstance(optimum, dict):
            raise ConfigError(
                f"The 'optimum' parameter must be a dict of parameter values, False or None. "
                f"Got {type(optimum).__name__} instead."
            )
        self.optimum = optimum
        self.words = labels_of(result)
        self.total = len(hist.param_names)
        self.names = list(hist.param_names[:MAX_PANELS])
        self.steps = np.asarray(hist.snapshot_steps)
        self.values = np.asarray(hist.snapshots[:, : len(self.names)], dtype=np.float64)
        self.fixed = {n for n in self.names if n.split("[")[0] in set(result.fixed)}
        n = len(self.names)
        self.ncols = min(n, COLUMNS)
        self.nrows = math.ceil(n / self.ncols)
        self.figsize = (max(4.0, 2.6 * self.ncols), 0.6 + 2.2 * self.nrows)

    def plot_param(self, ax: Axes, i: int, legend: bool = False) -> Axes:
        """Draw parameter ``i``'s path (and its optimum) into ``ax``."""
        style.apply(ax)
        name = self.names[i]
        ax.plot(
            self.steps,
            self.values[:, i],
            color=style.PALETTE["model"],
            lw=style.LINE_WIDTH,
            marker="o" if len(self.steps) <= 12 else None,
            ms=3,
            label=self.words.path,
        )
        if self.optimum is not None and name in self.optimum:
            ax.axhline(self.optimum[name], label="least-squares optimum", **style.OPTIMUM_STYLE)
        ax.set_title(name + (" (fixed)" if name in self.fixed else ""), fontsize=style.FONT_SIZE)
        if legend:
            ax.legend(fontsize=style.FONT_SIZE - 2, loc="best", framealpha=0.85)
        return ax

    def plot(self, ax: Axes | None = None) -> Axes:
        """All drawn parameters on one axes (paths only, each its own colour), for an existing figure."""
        ax = style.apply(new_axes(ax, self.figsize))
        for i, name in enumerate(self.names):
            color = style.CYCLE[i % len(style.CYCLE)]
            ax.plot(self.steps, self.values[:, i], color=color, lw=1.5, label=name)
            if self.optimum is not None and name in self.optimum:
                ax.axhline(self.optimum[name], color=color, ls="--", lw=1.0)
        ax.set(
            xlabel=self.words.step,
            ylabel="value",
            title="parameters" + (" (dashed: least-squares optimum)" if self.optimum is not None else ""),
        )
        ax.legend(fontsize=style.FONT_SIZE - 1, loc="best", ncol=2 if len(self.names) > 6 else 1)
        return ax

    def draw(self, fig: Figure) -> None:
        axes = np.atleast_1d(fig.subplots(self.nrows, self.ncols, sharex=True, squeeze=False)).ravel()
        for i, ax in enumerate(axes):
            if i >= len(self.names):
                ax.set_visible(False)
                continue
            self.plot_param(ax, i, legend=i == 0 and self.optimum is not None)
            if i >= len(self.names) - self.ncols:
                ax.set_xlabel(self.words.step, fontsize=style.FONT_SIZE)
                ax.tick_params(labelbottom=True)  # sharex hid them above an empty panel
        note = f" (the first {MAX_PANELS} of {self.total})" if self.total > MAX_PANELS else ""
        how = f" ({self.words.method})" if self.words.lm else ""
        fig.suptitle(f"parameters against {self.words.step}{how}{note}", fontsize=style.TITLE_SIZE)


def plot_params(result, data=None, *, optimum=None, ax: Axes | None = None) -> ParamsDisplay:
    """Make a :class:`ParamsDisplay`; draw it (all paths on one axes) into ``ax`` when one is given."""
    display = ParamsDisplay(result, data, optimum=optimum)
    if ax is not None:
        display.plot(ax)
    return display
