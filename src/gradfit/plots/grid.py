"""GridDisplay: the seeds' row of successive fits, the descent as a comic strip.

A 1 x k row of panels, each the data and the fit after one step (by default k evenly spaced
snapshots from the start to the end), with shared y-limits so the panels compare. The limits
frame the data and the last panel's curve; an early curve far off the data is drawn leaving the
frame, with an arrow saying which way, instead of squashing the data into a line.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradfit.errors import ConfigError
from gradfit.plots import style
from gradfit.plots.curve import y_limits
from gradfit.plots.display import Display
from gradfit.plots.fit import FitDisplay, dataset_of


def choose_steps(snapshot_steps: np.ndarray, k: int) -> list[int]:
    """``k`` evenly spaced snapshot steps, the first (the start) and the last included."""
    steps = np.asarray(snapshot_steps)
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, min(k, len(steps)))).astype(int))
    return [int(s) for s in steps[idx]]


class GridDisplay(Display):
    """The fit after successive steps, side by side.

    Parameters
    ----------
    result : FitResult
    data : optional
        The data, as for :func:`gradfit.analysis.fitted_data.run_data`.
    steps : sequence of int, optional
        The steps to show; each must have a parameter snapshot. Default: ``k`` evenly spaced ones.
    k : int
        Number of panels when ``steps`` is not given.

    Attributes
    ----------
    steps : list of int
    panels : list of FitDisplay
        One display per step; ``panels[i].y_curve`` is the curve drawn in panel ``i``.
    ylim : tuple of float
        The y-limits every panel shares: the data's and the last panel's curve's.
    """

    def __init__(self, result, data=None, steps=None, k: int = 4):
        available = np.asarray(result.history.snapshot_steps)
        if not len(available):
            raise ConfigError(
                "This run kept no parameter snapshots to draw (a result loaded from JSON without its "
                "history.csv): pass history=History.from_frame(...) to FitResult.from_json."
            )
        if steps is None:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ConfigError(f"The 'k' parameter must be an integer >= 1. Got {k!r} instead.")
            steps = choose_steps(available, int(k))
        else:
            steps = [int(s) for s in steps]
            if not steps:
                raise ConfigError("The 'steps' parameter must name at least one step. Got an empty list instead.")
        ds = dataset_of(result, data)
        self.steps = steps
        self.panels = [FitDisplay(result, ds, step=s) for s in steps]  # FitDisplay checks each step
        self.ylim = self._shared_ylim()
        if self.ylim is not None:
            for panel in self.panels:
                panel.ylim = self.ylim  # each panel frames itself, and places its legend, in the shared range
        self.figsize = (3.0 * len(steps) + 0.4, 3.2)

    def _shared_ylim(self) -> tuple[float, float] | None:
        last = self.panels[-1]
        if last.kind == "classes":
            return None  # class panels share their x/y inputs, which already agree
        return y_limits(last.y_data, last.y_curve if last.kind == "curve" else last.pred)

    @staticmethod
    def _off_frame(panel: FitDisplay, ylim: tuple[float, float]) -> str:
        """``"↑"``, ``"↓"``, ``"↕"`` or ``""``: where the panel's curve leaves the shared frame."""
        v = np.asarray(panel.y_curve if panel.kind == "curve" else panel.pred, dtype=np.float64)
        v = v[np.isfinite(v)]
        up, down = bool((v > ylim[1]).any()), bool((v < ylim[0]).any())
        return {(True, False): "↑", (False, True): "↓", (True, True): "↕"}.get((up, down), "")

    def plot(self, ax: Axes | None = None) -> Axes:
        """The last panel alone (the full row needs a figure: use ``figure()`` or ``save()``)."""
        return self.panels[-1].plot(ax)

    def draw(self, fig: Figure) -> None:
        axes = np.atleast_1d(fig.subplots(1, len(self.panels), sharey=True, squeeze=False)).ravel()
        for i, (ax, panel) in enumerate(zip(axes, self.panels)):
            panel.plot(ax)
            loss = "" if np.isnan(panel.loss) else f", loss {style.fmt(panel.loss)}"
            arrow = self._off_frame(panel, self.ylim) if self.ylim is not None else ""
            ax.set_title(
                f"{panel.words.at(panel.step)}{loss}" + (f"\n(fit leaves the frame {arrow})" if arrow else ""),
                fontsize=style.FONT_SIZE,
            )
            legend = ax.get_legend()
            if legend is not None and i > 0:
                legend.remove()  # one legend explains every panel
            elif legend is not None:
                for text in legend.get_texts():
                    if text.get_text().startswith("fit ("):
                        text.set_text("fit")
            if i > 0:
                ax.set_ylabel("")
                ax.tick_params(labelleft=False)


def plot_grid(result, data=None, *, steps=None, k: int = 4) -> GridDisplay:
    """Make a :class:`GridDisplay`; ``.save("grid.png")`` writes it, a notebook shows it."""
    return GridDisplay(result, data, steps=steps, k=k)
