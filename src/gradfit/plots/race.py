"""The optimizer race: loss curves side by side with the paths on one landscape.

One colour per run in both panels, so a reader can match a curve that stalls with the path
that zig-zags across the valley.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradfit.analysis.landscape import Landscape
from gradfit.experiments.race import Race, descended, run_race
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes, quiet_corner
from gradfit.plots.landscape import PATH_EDGE, draw_contours, held_note, stroke

__all__ = ["RaceDisplay", "plot_race", "visible_prefix"]


class RaceDisplay(Display):
    """Two panels: every run's loss curve on one axes, and every path on the shared landscape.

    Parameters
    ----------
    race : Race
    levels : int, default 20
        Log-spaced contour levels of the landscape.
    cmap : str, default "Greys_r"
        A colour map without hues, so the runs' colours stand out on it.
    """

    figsize = (12.0, 5.0)

    def __init__(self, race: Race, *, levels: int = 20, cmap: str = "Greys_r"):
        self.race = race
        self.levels = int(levels)
        self.cmap = cmap
        self.colors = tuple(style.CYCLE[i % len(style.CYCLE)] for i in range(len(race.results)))

    def draw(self, fig: Figure) -> None:
        left, right = (
            fig.subplots(1, 2, width_ratios=(1.0, 1.15))
            if self.race.landscape is not None
            else (fig.add_subplot(), None)
        )
        self.plot_losses(left)
        if right is not None:
            self.plot_paths(right)

    def plot(self, ax: Axes | None = None) -> Axes:
        """The paths on the landscape (the loss curves when there is no landscape)."""
        ax = new_axes(ax, (6.4, 5.0))
        return self.plot_paths(ax) if self.race.landscape is not None else self.plot_losses(ax)

    def plot_losses(self, ax: Axes) -> Axes:
        """Each run's training loss against the step, log-scaled when the losses span decades."""
        style.apply(ax)
        finite, crowd = [], []
        off = self.off_map()
        for k, (label, result, color) in enumerate(zip(self.race.labels, self.race.results, self.colors)):
            h = result.history
            note = " (path leaves the map)" if k in off else ""
            ax.plot(h.step, h.loss, color=color, lw=style.LINE_WIDTH, label=f"{label}: {style.fmt(result.loss)}{note}")
            finite.append(h.loss[np.isfinite(h.loss)])
            crowd.append((h.step, h.loss))
        values = np.concatenate(finite) if finite else np.zeros(0)
        if len(values) and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"training loss ({self._loss_name()})")
        ax.set_title("loss per step (legend: final loss)")
        ax.legend(loc=quiet_corner(ax, crowd), fontsize=style.FONT_SIZE - 1, framealpha=0.9)
        return ax

    def off_map(self) -> set[int]:
        """The runs whose path leaves the landscape (a run that blew up): their legend entries say so."""
        land = self.race.landscape
        if land is None:
            return set()
        inside = [
            (
                np.isfinite(p).all(axis=1)
                & (p[:, 0] >= land.a[0])
                & (p[:, 0] <= land.a[-1])
                & (p[:, 1] >= land.b[0])
                & (p[:, 1] <= land.b[-1])
            ).all()
            for p in (np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.race.paths)
        ]
        return {k for k, ok in enumerate(inside) if not ok}

    def plot_paths(self, ax: Axes) -> Axes:
        """Every run's path on the shared contours; the common start once, each end as a star."""
        land = self.race.landscape
        assert land is not None, "plot_paths needs a race with a landscape"  # draw() and plot() check
        style.apply(ax, grid=False)
        draw_contours(ax, land, self.levels, self.cmap)
        for label, path, color, result in zip(self.race.labels, self.race.paths, self.colors, self.race.results):
            shown = visible_prefix(path, land)
            if not len(shown):
                continue
            # Labels starting with "_" stay out of legends but let tests and users find each run's lines.
            ax.plot(
                shown[:, 0],
                shown[:, 1],
                color=color,
                lw=1.8,
                marker="o",
                ms=2.4,
                label=f"_path {label}",
                markevery=max(1, len(shown) // 60),
                path_effects=stroke(3.2, "white"),
                zorder=6,
            )
            if len(shown) == len(path) and descended(result):
                ax.plot(
                    path[-1:, 0],
                    path[-1:, 1],
                    marker="*",
                    ls="none",
                    ms=15,
                    color=color,
                    mec=PATH_EDGE,
                    mew=0.8,
                    zorder=8,
                    label=f"_end {label}",
                )
        starts = [p[0] for p in self.race.paths if len(p)]
        if starts:
            ax.plot(
                [starts[0][0]],
                [starts[0][1]],
                marker="o",
                ls="none",
                ms=9,
                color="white",
                mec=PATH_EDGE,
                mew=1.5,
                zorder=9,
                label="_start",
            )
            ax.annotate(
                "start",
                starts[0],
                xytext=self._away(land),
                textcoords="offset points",
                ha="center",
                va="center",
                fontsize=style.FONT_SIZE - 1,
                color=PATH_EDGE,
                path_effects=stroke(2.5, "white"),
                zorder=9,
            )
        ax.set_xlim(land.a[0], land.a[-1])
        ax.set_ylim(land.b[0], land.b[-1])
        note = held_note(land)
        ax.set_title("paths on the loss landscape (star: end)" + (f"\n{note}" if note else ""))
        return ax

    def _away(self, land: Landscape) -> tuple[float, float]:
        """An offset (points) for the "start" label on the side the paths do not leave by."""
        width = np.array([land.a[-1] - land.a[0], land.b[-1] - land.b[0]])
        moves = [(p[min(5, len(p) - 1)] - p[0]) / width for p in self.race.paths if len(p) > 1]
        d = np.nanmean(moves, axis=0) if moves else np.zeros(2)
        d = np.nan_to_num(d)
        norm = float(np.hypot(*d))
        return (0.0, -14.0) if norm == 0 else (float(-16 * d[0] / norm), float(-16 * d[1] / norm))

    def _loss_name(self) -> str:
        if self.race.landscape is not None:
            return self.race.landscape.loss_name
        return str(self.race.results[0].config.get("loss", "loss"))


def visible_prefix(path: np.ndarray, land: Landscape) -> np.ndarray:
    """``path`` up to and including its first point far outside the grid (or not finite).

    A run that blows up jumps between ever larger values; its later segments would cross the
    frame back and forth. Keeping the first far point draws the path leaving the frame, once.
    """
    path = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    wa, wb = land.a[-1] - land.a[0], land.b[-1] - land.b[0]
    inside = (
        np.isfinite(path).all(axis=1)
        & (path[:, 0] >= land.a[0] - wa)
        & (path[:, 0] <= land.a[-1] + wa)
        & (path[:, 1] >= land.b[0] - wb)
        & (path[:, 1] <= land.b[-1] + wb)
    )
    if inside.all():
        return path
    first = int(np.argmin(inside))
    return path[: first + (1 if np.isfinite(path[first]).all() else 0)]


def plot_race(source, data=None, *, ax: Axes | None = None, levels: int = 20, **race_options) -> RaceDisplay:
    """Draw a race (a :class:`Race`, or a model to race with ``run_race(source, data, **race_options)``).

    With ``ax`` the paths panel is drawn there; ``.save(path)`` / ``.figure()`` give both panels.

    Examples
    --------
    >>> plot_race("linear", "builtin:linear", y="y", optimizers=["sgd:0.1", "momentum:0.1", "adam:0.1"],
    ...           init={"a": [-1.0, 1.0]}, steps=100).save("race.png")  # doctest: +SKIP
    """
    race = source if isinstance(source, Race) else run_race(source, data, **race_options)
    display = RaceDisplay(race, levels=levels)
    if ax is not None:
        display.plot(ax)
    return display
