"""Animations of a descent: a fit converging, and several optimizers racing on one landscape.

Every frame's arrays are computed once, when the animation is made; drawing a frame only moves
artists, over a backdrop of everything else rendered once (:mod:`gradfit.plots.backdrop`). An
animation saves as ``.gif`` (Pillow, one palette for all frames), ``.mp4`` (when ffmpeg is
installed) or a self-contained ``.html`` page, and shows inline in Jupyter (``_repr_html_``);
the layout and saving they share is :class:`gradfit.plots.reel.Reel`. Figures are
``matplotlib.figure.Figure`` objects, never pyplot, so nothing needs a display.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradfit.errors import ConfigError, ModelError
from gradfit.plots import display, style
from gradfit.plots.animation_frames import sample_frames, snapshot_params, upto
from gradfit.plots.animation_panels import finite_curve, landscape_panel, loss_panel, pad_range
from gradfit.plots.curve import curve_grid, leaves, y_limits
from gradfit.plots.display import quiet_corner
from gradfit.plots.labels import labels_of
from gradfit.plots.reel import PANEL_SIZE, Reel

__all__ = ["FitAnimation", "RaceAnimation"]

CURVE_POINTS = 5_000  # the most points of a one-input model's curve, redrawn every frame
GRID_FRAMES = 10  # frames whose curves choose where the curve is evaluated


class FitAnimation(Reel):
    """The model's curve moving onto the data, one frame per kept parameter snapshot.

    Parameters
    ----------
    result : FitResult
        A fit with a model and a history (``load_run`` results work too).
    data : optional
        The fit's data, needed when it was given in memory (see :func:`gradfit.analysis.fitted_data.run_data`).
    max_frames : int, default 100
        The most frames (see :func:`gradfit.plots.animation_frames.sample_frames`); start and end always shown.
        For more than ~100 in HTML, also raise ``matplotlib.rcParams["animation.embed_limit"]`` (MB).
    landscape : (str, str) or Landscape, optional
        Add a panel with the loss landscape over these two parameters and the path so far.
    show_loss : bool, default False
        Add a panel with the loss curve growing.
    interval : int, default 50
        Milliseconds between frames.
    fps : float, optional
        Frames per second of saved files (default ``1000 / interval``).

    Examples
    --------
    >>> import gradfit
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1, 1]}, lr=0.1, steps=20)
    >>> anim = FitAnimation(r, max_frames=5)
    >>> anim.frame_steps
    array([ 0,  5, 10, 15, 20])
    """

    data_x: np.ndarray | None  # the shown rows' input, for one input (None for several)
    grid_x: np.ndarray | None  # where the curve is drawn, for one input (None for several)

    def __init__(
        self,
        result,
        data=None,
        *,
        max_frames: int = 100,
        landscape=None,
        show_loss: bool = False,
        interval: int = 50,
        fps: float | None = None,
    ):
        from gradfit.analysis.fitted_data import rows_fitted, run_data

        model = result.model
        if model is None:
            raise ModelError(
                "This result has no model to animate (it was loaded with a callable or nn.Module "
                "model): pass model=... to load_run / FitResult.from_json."
            )
        if model.n_outputs != 1:
            raise ModelError(f"Animations draw models with one output; {model.name!r} has {model.n_outputs}.")
        if interval <= 0:
            raise ConfigError(f"The 'interval' parameter must be > 0 (milliseconds). Got {interval!r} instead.")
        h = result.history
        self.interval, self.fps = int(interval), fps
        self.words = labels_of(result)
        self.title = f"gradfit: fitting {model.name}"
        index = sample_frames(h.snapshot_steps, max_frames)
        self.frame_steps = np.asarray(h.snapshot_steps)[index]
        self.frame_params = np.asarray(h.snapshots)[index]
        self.loss_steps, self.losses = finite_curve(h.step, h.loss)
        self.frame_losses = np.interp(self.frame_steps, h.step, h.loss) if len(h) else np.full(self.n_frames, np.nan)
        self.frame_labels = [
            f"{self.words.at(s)}  loss {style.fmt(v)}" for s, v in zip(self.frame_steps, self.frame_losses)
        ]

        ds = run_data(result, data)
        self.x_names, self.y_name = tuple(ds.x_names), ds.y_name or result.data.get("y", "y")
        # At most display.MAX_ANIMATION_ROWS points, the same fixed random subset as the still pictures use.
        rows = display.plot_rows(len(ds), display.MAX_ANIMATION_ROWS)
        shown = torch.arange(len(ds)) if rows is None else torch.from_numpy(rows)
        self.n_rows, self.n_shown = rows_fitted(result, ds), len(shown)
        assert ds.y is not None  # a fit's data have targets (fit() refuses data without)
        self.data_y = ds.y[shown].double().cpu().numpy()
        frame_params = [snapshot_params(result, row, ds.dtype) for row in self.frame_params]

        def predict(params, inputs: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                return model(params, inputs.to(ds.x.device)).reshape(-1).double().cpu().numpy()

        if ds.x.shape[1] == 1:
            self.data_x = ds.x[shown, 0].double().cpu().numpy()
            # The grid follows the curves of a few frames spread over the descent (the first and last included).
            guides = [frame_params[k] for k in sample_frames(self.frame_steps, GRID_FRAMES)]

            def guided(at: np.ndarray) -> np.ndarray:
                inputs = torch.from_numpy(at).to(ds.dtype)[:, None]
                return np.stack([predict(p, inputs) for p in guides])

            rough = y_limits(self.data_y, guided(np.linspace(self.data_x.min(), self.data_x.max(), 400))[-1])
            grid = curve_grid(self.data_x, guided, rough, max_points=CURVE_POINTS)
            self.grid_x = np.unique(torch.from_numpy(grid).to(ds.dtype).double().numpy())
            inputs = torch.from_numpy(self.grid_x).to(ds.dtype)[:, None]
        else:  # several inputs: predicted against observed, at the shown data points
            inputs = ds.x[shown]
            self.data_x = self.grid_x = None
        self.curves = np.stack([predict(p, inputs) for p in frame_params])
        # Framed by the data and the final curve: a far-off start leaves the frame, it does not squash the data.
        self.ylim = y_limits(self.data_y, self.curves[-1])

        self.landscape = self.path = self.path_steps = None
        if landscape is not None:
            self.landscape = _as_landscape(result, data, landscape)
            missing = [n for n in self.landscape.names if n not in h.param_names]
            if missing:
                raise ConfigError(
                    f"The landscape's parameter(s) {', '.join(missing)} are not in this fit's history "
                    f"(it holds {', '.join(h.param_names)}): was the landscape made for another fit?"
                )
            cols = [list(h.param_names).index(n) for n in self.landscape.names]
            self.path, self.path_steps = np.asarray(h.snapshots)[:, cols], np.asarray(h.snapshot_steps)
        self.show_loss = bool(show_loss)
        self.loss_name = str(result.config.get("loss", "loss"))
        cfg = result.config
        how = (
            self.words.method
            if self.words.lm or cfg.get("lr") is None
            else f"{self.words.method}, lr {style.fmt(cfg['lr'])}"
        )
        how += ", scaled" if self.words.scaled else ""
        self.heading = f"Fitting {_model_text(result, self.y_name, self.x_names)}  ({how})"
        panels = 1 + (self.landscape is not None) + self.show_loss
        self.figsize = (PANEL_SIZE[0] if panels == 1 else 4.5 * panels - 0.8, PANEL_SIZE[1] + 0.3)

    @property
    def data_label(self) -> str:
        return "data" if self.n_shown == self.n_rows else f"data ({self.n_shown:,} of {self.n_rows:,} rows)"

    def curve_at(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``i``'s drawn curve: (grid, predictions) for one input, else (observed, predicted)."""
        return (self.grid_x if self.grid_x is not None else self.data_y), self.curves[i]

    def current_point(self, i: int) -> np.ndarray:
        """Frame ``i``'s position on the landscape: the snapshot's values of the two landscape parameters."""
        assert self.path is not None and self.path_steps is not None, "current_point needs a landscape"
        return self.path[upto(self.path_steps, self.frame_steps[i]) - 1]

    def draw_panels(self, fig: Figure) -> Callable[[int], list]:
        n = 1 + (self.landscape is not None) + self.show_loss
        axes = list(fig.subplots(1, n, squeeze=False)[0])
        updates = [self._main_panel(axes.pop(0))]
        if self.landscape is not None:
            updates.append(
                landscape_panel(
                    axes.pop(0), self.landscape, [self.path], [self.path_steps], ["white"], self.frame_steps
                )
            )
        if self.show_loss:
            updates.append(
                loss_panel(
                    axes.pop(0),
                    [(self.loss_steps, self.losses)],
                    [style.PALETTE["model"]],
                    self.frame_steps,
                    loss_name=self.loss_name,
                    step_word=self.words.step,
                )
            )

        def update(i: int) -> list:
            return [a for u in updates for a in u(i)]

        return update

    def _main_panel(self, ax: Axes) -> Callable[[int], list]:
        style.apply(ax)
        one_input = self.grid_x is not None
        xs, _ = self.curve_at(0)
        moving: Line2D | PathCollection
        if one_input:
            assert self.data_x is not None  # __init__ sets it with grid_x
            ax.scatter(
                self.data_x,
                self.data_y,
                s=style.MARKER_SIZE,
                color=style.PALETTE["data"],
                alpha=style.DATA_ALPHA,
                label=self.data_label,
                gid="data",
            )
            start = "start" + (" (leaves the frame)" if leaves(self.curves[0], self.ylim) else "")
            ax.plot(xs, self.curves[0], **style.START_STYLE, label=start, gid="start")
            (moving,) = ax.plot(
                xs, self.curves[0], color=style.PALETTE["model"], lw=style.LINE_WIDTH, label="model", gid="curve"
            )
            ax.set(xlabel=self.x_names[0], ylabel=self.y_name, xlim=pad_range(self.grid_x, 0.02), ylim=self.ylim)
            crowd = [(self.data_x, self.data_y), (xs, self.curves[-1])]
        else:  # predicted against observed: the points gather onto the diagonal as the fit converges
            lim = self.ylim
            ax.plot(lim, lim, **style.START_STYLE, label="perfect fit")
            moving = ax.scatter(
                xs,
                self.curves[0],
                s=style.MARKER_SIZE,
                color=style.PALETTE["model"],
                alpha=style.DATA_ALPHA,
                label="model",
                gid="predictions",
            )
            ax.set(xlim=lim, ylim=lim, xlabel=f"observed {self.y_name}", ylabel=f"predicted {self.y_name}")
            crowd = [(xs, self.curves[-1]), (np.array(lim), np.array(lim))]
        if self.landscape is not None or self.show_loss:  # alone, the panel needs no name under the heading
            ax.set_title("Data and model", loc="left")
        ax.legend(loc=quiet_corner(ax, crowd), fontsize=style.FONT_SIZE - 1, framealpha=0.9)

        def update(i: int) -> list:
            if isinstance(moving, Line2D):  # one input: a curve
                moving.set_ydata(self.curves[i])
            else:
                moving.set_offsets(np.column_stack([xs, self.curves[i]]))
            return [moving]

        return update


class RaceAnimation(Reel):
    """Several fits descending one loss landscape together, and their loss curves growing.

    Parameters
    ----------
    race : Race
        From :func:`gradfit.experiments.race.run_race`: labels, results, a landscape and each run's path.
        Without a landscape (a one-parameter model) only the loss curves are drawn.
    max_frames : int, default 100
        The most frames, evenly spaced over the steps of all runs (first and last always shown).
        A run that stopped early stays at its last point.
    interval : int, default 50
        Milliseconds between frames.
    fps : float, optional
        Frames per second of saved files (default ``1000 / interval``).
    """

    def __init__(self, race, *, max_frames: int = 100, interval: int = 50, fps: float | None = None):
        from gradfit.plots.race import visible_prefix

        if interval <= 0:
            raise ConfigError(f"The 'interval' parameter must be > 0 (milliseconds). Got {interval!r} instead.")
        self.interval, self.fps = int(interval), fps
        self.labels = list(race.labels)
        self.loss_name = str(race.results[0].config.get("loss", "loss")) if race.results else "loss"
        self.landscape = race.landscape if len(race.paths) else None
        self.title = f"gradfit: {len(self.labels)} runs on one landscape"
        self.heading = (
            f"{len(self.labels)} runs on one landscape" if self.landscape is not None else f"{len(self.labels)} runs"
        )
        self.paths = [np.asarray(p, dtype=np.float64) for p in race.paths]
        self.path_steps = [np.asarray(s, dtype=np.int64) for s in race.path_steps]
        if self.landscape is not None:
            # A run that blew up is drawn until it leaves the map (its later points may be 1e30 or NaN).
            kept = [len(visible_prefix(p, self.landscape)) for p in self.paths]
            self.labels = [
                label + (" (leaves the map)" if m < len(p) else "")
                for label, p, m in zip(self.labels, self.paths, kept)
            ]
            self.paths = [p[:m] if m else p[:1] for p, m in zip(self.paths, kept)]
            self.path_steps = [s[: len(p)] for s, p in zip(self.path_steps, self.paths)]
        self.loss_curves = [finite_curve(r.history.step, r.history.loss) for r in race.results]
        axis = np.unique(
            np.concatenate(
                [np.asarray(s, dtype=np.int64) for s in race.path_steps] or [c[0] for c in self.loss_curves]
            ).astype(np.int64)
        )
        self.frame_steps = axis[sample_frames(axis, max_frames)]
        self.frame_labels = [f"step {int(s)}" for s in self.frame_steps]
        self.colors = [style.CYCLE[i % len(style.CYCLE)] for i in range(len(self.labels))]
        self.figsize = (11.0, 4.4) if self.landscape is not None else (PANEL_SIZE[0], PANEL_SIZE[1] + 0.3)

    def current_points(self, i: int) -> np.ndarray:
        """``(runs, 2)``: where each run is at frame ``i`` (its last point once it has stopped or left the map)."""
        return np.stack([p[max(upto(s, self.frame_steps[i]), 1) - 1] for p, s in zip(self.paths, self.path_steps)])

    def draw_panels(self, fig: Figure) -> Callable[[int], list]:
        if self.landscape is not None:
            ax_land, ax_loss = fig.subplots(1, 2, width_ratios=[1.15, 1])
            updates = [
                landscape_panel(
                    ax_land,
                    self.landscape,
                    self.paths,
                    self.path_steps,
                    self.colors,
                    self.frame_steps,
                    cmap="Greys_r",
                    fit_paths=False,
                )
            ]
        else:
            ax_loss, updates = fig.subplots(), []
        updates.append(
            loss_panel(ax_loss, self.loss_curves, self.colors, self.frame_steps, self.labels, loss_name=self.loss_name)
        )

        def update(i: int) -> list:
            return [a for u in updates for a in u(i)]

        return update


# -- helpers ------------------------------------------------------------------------------------


def _as_landscape(result, data, landscape):
    from gradfit.analysis.landscape import Landscape, compute_landscape

    if isinstance(landscape, Landscape):
        return landscape
    if isinstance(landscape, (tuple, list)) and len(landscape) == 2 and all(isinstance(n, str) for n in landscape):
        return compute_landscape(result, data=data, params=tuple(landscape))
    raise ConfigError(
        f"The 'landscape' parameter must be two parameter names such as ('a[0]', 'a[1]') or a "
        f"Landscape. Got {landscape!r} instead."
    )


def _model_text(result, y: str, x_names) -> str:
    """The model as the heading shows it: ``y = formula``, else ``y ~ name(inputs)``."""
    spec = result.model_spec or {}
    if spec.get("formula"):
        return f"{y} = {spec['formula']}"
    name = getattr(result.model, "name", None) or spec.get("name") or "model"
    return f"{y} ~ {name}({', '.join(x_names)})"
