"""SweepDisplay: a sweep's final loss against the learning rate, one line per optimizer.

Too small a learning rate leaves the loss high after the budget, a good one takes it to the bottom,
too large a one makes it bounce or blow up: the U-shaped curve, on log axes. Members that diverged
(a loss that overflowed, or ended above its start) have no useful loss to draw: they are marked with
a triangle at the top edge, in their optimizer's colour (one row per optimizer), so where divergence
begins is in plain sight.
With several seeds, each member is a faint dot and the line joins the median over the seeds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from gradfit.errors import ConfigError
from gradfit.experiments.sweeps import SweepResult, descended
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes

__all__ = ["SweepDisplay", "diverged"]

RAISE = 1.5  # each optimizer's divergence markers sit this factor above the previous one's


def diverged(row: dict) -> bool:
    """Whether a member's loss is not one to draw (at the top edge instead): it overflowed, or the fit made things
    worse."""
    return not descended(row)


class SweepDisplay(Display):
    """Final loss against learning rate (log x, log y), one line per optimizer, divergence marked at the top.

    Parameters
    ----------
    sweep : SweepResult
    """

    figsize = (7.0, 4.6)

    def __init__(self, sweep: SweepResult):
        if not len(sweep):
            raise ConfigError("The sweep has no members to draw.")
        self.sweep = sweep
        self.optimizers = list(dict.fromkeys(r["optimizer"] for r in sweep.rows))
        kept = [r["loss"] for r in sweep.rows if not diverged(r) and r["loss"] > 0]
        self.low = min(kept) if kept else 1e-3
        self.high = max(kept) if kept else 1.0
        self.seeded = len({r["seed"] for r in sweep.rows}) > 1

    def plot(self, ax: Axes | None = None) -> Axes:
        ax = new_axes(ax, self.figsize)
        style.apply(ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = self.high * 3.0
        for i, name in enumerate(self.optimizers):
            color = style.CYCLE[i % len(style.CYCLE)]
            rows = [r for r in self.sweep.rows if r["optimizer"] == name]
            self._optimizer(ax, rows, name, color, top * RAISE**i)  # one row of markers per optimizer
        ax.set_ylim(self.low / 2.0, top * RAISE ** len(self.optimizers))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final loss")
        budget = self.sweep.history.shape[0] - 1  # every member's history holds the budget's steps and the end
        ax.set_title(f"Final loss after at most {budget} steps, by learning rate", fontsize=style.TITLE_SIZE)
        ax.legend(loc="best", fontsize=style.FONT_SIZE - 1)
        return ax

    def _optimizer(self, ax: Axes, rows: list[dict], name: str, color: str, top: float) -> None:
        lrs = sorted({r["lr"] for r in rows})
        medians = []
        for lr in lrs:
            losses = [r["loss"] for r in rows if r["lr"] == lr and not diverged(r) and r["loss"] > 0]
            medians.append(float(np.median(losses)) if losses else np.nan)
        label = f"{name} (median over seeds)" if self.seeded else name
        if not all(np.isnan(medians)):  # no line, and no legend entry, for an optimizer none of whose members descended
            ax.plot(lrs, medians, color=color, linewidth=style.LINE_WIDTH, marker="o", markersize=3, label=label)
        if self.seeded:
            good = [r for r in rows if not diverged(r) and r["loss"] > 0]
            ax.scatter([r["lr"] for r in good], [r["loss"] for r in good], color=color, s=8, alpha=0.35)
        bad = sorted({r["lr"] for r in rows if diverged(r)})
        if bad:
            ax.scatter(bad, [top] * len(bad), marker="^", s=40, color=color, edgecolors="black", linewidths=0.6,
                       label=f"{name}: diverged", zorder=3, clip_on=False)  # fmt: skip
