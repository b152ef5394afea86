"""LRFinderDisplay: the learning-rate finder's loss against the learning rate, with its suggestions.

The raw loss is drawn faint and the smoothed loss strong, on a logarithmic lr axis. Vertical lines
mark the suggestions (steepest descent, a tenth of the minimum) and, for full-batch sgd, the
stability limit ``2 / lambda_max``, each named with its value in the legend. The sweep ends in a
blow-up that would flatten everything else, so the y-axis stops at 1.5 times the starting loss.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from gradfit.errors import ConfigError
from gradfit.experiments.lr_finder import LRFinderResult
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes

__all__ = ["LRFinderDisplay"]

TOP_FACTOR = 1.5  # the y-axis shows losses up to this multiple of the first smoothed loss
LOG_SPAN = 10.0  # a log y-axis when the losses shown span more than this factor

SUGGESTION_STYLE: style.LineStyle = {"color": style.PALETTE["model"], "linestyle": "--", "linewidth": 1.3}
MIN10_STYLE: style.LineStyle = {"color": style.PALETTE["optimum"], "linestyle": "--", "linewidth": 1.3}
LIMIT_STYLE: style.LineStyle = {"color": style.PALETTE["lr"], "linestyle": ":", "linewidth": 1.6}


class LRFinderDisplay(Display):
    """The lr finder's sweep: loss against learning rate, suggestions marked.

    Without smoothing (the default on all rows) the one curve is the loss; otherwise the raw loss is
    drawn faint behind the smoothed one.

    Parameters
    ----------
    result : LRFinderResult

    Attributes
    ----------
    lrs, losses, smoothed : ndarray
        As in the result (the drawn lines are exactly these, at their finite points).
    markers : dict of str to float
        The vertical lines drawn: ``"suggestion"``, ``"min/10"`` and, when known, ``"stability limit"``.
    ylim : tuple of float
        The y-range shown.
    log_y : bool
        True when the shown losses span more than a decade.

    Examples
    --------
    >>> from gradfit.experiments.lr_finder import find_lr          # doctest: +SKIP
    >>> LRFinderDisplay(find_lr("linear", "builtin:linear", y="y")).save("lr_find.png")  # doctest: +SKIP
    """

    def __init__(self, result: LRFinderResult):
        if not isinstance(result, LRFinderResult):
            raise ConfigError(
                f"LRFinderDisplay needs an LRFinderResult (from gradfit.experiments.lr_finder.find_lr). "
                f"Got {type(result).__name__} instead."
            )
        self.result = result
        self.lrs = np.asarray(result.lrs, dtype=np.float64)
        self.losses = np.asarray(result.losses, dtype=np.float64)
        self.smoothed = np.asarray(result.smoothed, dtype=np.float64)
        self.markers: dict[str, float] = {}
        for key, value in (("suggestion", result.suggestion), ("min/10", result.suggestion_min10)):
            if np.isfinite(value):
                self.markers[key] = float(value)
        limit = result.stability_limit
        if limit is not None and np.isfinite(limit.limit):
            self.markers["stability limit"] = float(limit.limit)
        self.ylim, self.log_y = self._y_range()

    def _y_range(self) -> tuple[tuple[float, float], bool]:
        finite = np.concatenate([v[np.isfinite(v)] for v in (self.losses, self.smoothed)])
        if not len(finite):
            return (0.0, 1.0), False
        first = self.smoothed[0] if np.isfinite(self.smoothed[0]) else finite[0]
        top = min(TOP_FACTOR * first, finite.max()) if first > 0 else finite.max()
        shown = finite[finite <= top]
        low = shown.min() if len(shown) else finite.min()
        # One decade suffices here (the loss plot wants two): a plateau far below the start must not read as zero.
        log_y = bool(low > 0 and top / low > LOG_SPAN)
        if log_y:
            return (low / 1.3, top * 1.3), True
        pad = 0.05 * (top - low) if top > low else 0.05 * max(abs(top), 1.0)
        return (low - pad, top + pad), False

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the sweep into ``ax`` (a new figure when None)."""
        ax = style.apply(new_axes(ax, self.figsize))
        smoothed = self.result.smoothing < 1  # else the two curves coincide: draw one, named plainly
        if smoothed:
            raw = np.isfinite(self.losses)
            ax.plot(self.lrs[raw], self.losses[raw], color=style.PALETTE["data"], lw=1.0, alpha=0.6, label="loss")
        ok = np.isfinite(self.smoothed)
        ax.plot(
            self.lrs[ok],
            self.smoothed[ok],
            color=style.PALETTE["model"],
            lw=style.LINE_WIDTH,
            label=f"smoothed loss (weight {style.fmt(self.result.smoothing)})" if smoothed else "loss",
            zorder=3,
        )
        labels = {
            "suggestion": "steepest descent",
            "min/10": "minimum / 10",
            "stability limit": "stability limit 2/λmax",
        }
        styles = {"suggestion": SUGGESTION_STYLE, "min/10": MIN10_STYLE, "stability limit": LIMIT_STYLE}
        for key, value in self.markers.items():
            ax.axvline(value, label=f"{labels[key]}: lr {style.fmt(value)}", gid=key, zorder=2, **styles[key])
        ax.set_xscale("log")
        if self.log_y:
            ax.set_yscale("log")
        ax.set_ylim(*self.ylim)
        r = self.result
        ax.set(
            xlabel="learning rate (log scale)",
            ylabel="loss (log scale)" if self.log_y else "loss",
            title=f"learning-rate finder: {r.optimizer}, {r.steps_run} steps"
            + (", stopped on divergence" if r.stopped_early else ""),
        )
        ax.legend(loc="best", fontsize=style.FONT_SIZE - 1, framealpha=0.9)
        return ax
