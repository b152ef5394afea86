"""FitDisplay: the data and the model's fit, the seeds' first picture.

One input: the data as points and the model as a curve over the data's x-range, drawn on a grid
fine enough for its structure (:func:`gradfit.plots.curve.curve_grid`) and framed by the data
and the final fit, not by a far-off start. Several inputs: predicted against observed with the
``y = x`` diagonal. Class logits: the data coloured by class with, for two inputs, the model's
decision boundary. Everything drawn is computed once, when the display is made.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from gradfit.analysis.fitted_data import rows_fitted, run_data
from gradfit.data.dataset import Dataset
from gradfit.errors import ConfigError, ModelError
from gradfit.models.base import unflatten_params
from gradfit.plots import display, style
from gradfit.plots.curve import BASE_POINTS, curve_grid, leaves, y_limits
from gradfit.plots.display import Display, new_axes, quiet_corner
from gradfit.plots.labels import labels_of


def dataset_of(result, data=None) -> Dataset:
    """The run's data (a Dataset passes through, so a grid of fits reads it once)."""
    return data if isinstance(data, Dataset) else run_data(result, data)


def params_at(result, step: int | None) -> tuple[dict[str, torch.Tensor], int, float]:
    """``(params, step, loss)`` of the snapshot at ``step``, or of the final fit when None."""
    if result.model is None:
        raise ModelError(
            "This result has no model to draw (it was loaded from JSON without one): pass model=... "
            "to FitResult.from_json."
        )
    hist = result.history
    if step is None:
        return dict(result.params), int(result.steps), float(result.loss)
    steps = hist.snapshot_steps
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or int(step) not in set(steps.tolist()):
        shown = ", ".join(map(str, steps[:6])) + (f", ..., {steps[-1]}" if len(steps) > 6 else "")
        raise ConfigError(
            f"The 'step' parameter must be a step with a parameter snapshot ({shown or 'none kept'}). "
            f"Got {step!r} instead."
        )
    flat = hist.params_at(int(step))
    rows = np.nonzero(hist.step == int(step))[0]
    loss = float(hist.loss[rows[0]]) if len(rows) else math.nan
    return unflatten_params(result.model.specs, flat), int(step), loss


def evaluate(result, params: dict[str, torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """The model's outputs at ``x`` under ``params``, in ``x``'s dtype (as ``result.predict`` computes them)."""
    with torch.no_grad():
        out = result.model({k: torch.as_tensor(v).to(x.dtype) for k, v in params.items()}, x)
    return out.detach().cpu().numpy()


def is_classifier(result) -> bool:
    return result.model is not None and (result.model.n_outputs > 1 or result.config.get("loss") == "bce")


def class_probs(result, out: np.ndarray) -> np.ndarray:
    """``(n, C)`` class probabilities from the model's logits (one bce logit counts as two classes)."""
    t = torch.as_tensor(out, dtype=torch.float64)
    if t.ndim == 1:
        p1 = torch.sigmoid(t)
        return torch.stack([1 - p1, p1], dim=1).numpy()
    return torch.softmax(t, dim=1).numpy()


def class_margins(out: np.ndarray) -> np.ndarray:
    """``(n, C)``: how far each class's log-probability is above the best other class's (> 0 where it wins).

    Contouring these at 0 draws smooth decision boundaries, unlike the stairs of an argmax grid.
    """
    t = torch.as_tensor(out, dtype=torch.float64)
    if t.ndim == 1:
        return torch.stack([-t, t], dim=1).numpy()
    logp = torch.log_softmax(t, dim=1)
    top2 = logp.topk(2, dim=1).values
    best_other = torch.where(logp == top2[:, :1], top2[:, 1:], top2[:, :1])
    return (logp - best_other).numpy()


class FitDisplay(Display):
    """The data and the fitted model.

    Parameters
    ----------
    result : FitResult
    data : optional
        The data, as for :func:`gradfit.analysis.fitted_data.run_data` (needed for in-memory fits).
    residuals : bool
        Add a residuals panel (data minus model) below, sharing the x-axis (regression only).
    show_start : bool
        Overlay the initial guess (the snapshot at step 0) in grey dashes.
    step : int, optional
        Draw the fit at this snapshot instead of the final parameters.
    grid_points : int
        Points of the even grid the one-input curve starts from; every data x is added, and
        midpoints wherever straight segments would miss the curve (see
        :func:`gradfit.plots.curve.curve_grid`).

    Examples
    --------
    >>> FitDisplay(result, residuals=True, show_start=True).save("fit.png")  # doctest: +SKIP
    """

    def __init__(
        self,
        result,
        data=None,
        *,
        residuals: bool = False,
        show_start: bool = False,
        step: int | None = None,
        grid_points: int = BASE_POINTS,
    ):
        if isinstance(grid_points, bool) or not isinstance(grid_points, (int, np.integer)) or grid_points < 2:
            raise ConfigError(f"The 'grid_points' parameter must be an integer >= 2. Got {grid_points!r} instead.")
        ds = dataset_of(result, data)
        assert ds.y is not None  # a fit's data have targets (fit() refuses data without)
        params, self.step, self.loss = params_at(result, step)
        start = params_at(result, 0)[0] if show_start else None
        self.words = labels_of(result)
        self.x_names, self.y_name = tuple(ds.x_names), ds.y_name or "y"
        self.n = len(ds)
        self.n_fitted = rows_fitted(result, ds)  # a streamed run's file: more rows than its sample ds
        # At most display.MAX_PLOT_ROWS points: a fixed random subset of bigger data.
        rows = display.plot_rows(self.n, display.MAX_PLOT_ROWS)
        self.n_shown = self.n if rows is None else len(rows)
        x, y = (
            (ds.x, ds.y)
            if rows is None
            else (ds.x[torch.from_numpy(rows).to(ds.x.device)], ds.y[torch.from_numpy(rows).to(ds.y.device)])
        )
        self.x_data, self.y_data = x.cpu().numpy(), y.cpu().numpy()
        self.kind = "classes" if is_classifier(result) else ("curve" if x.shape[1] == 1 else "parity")
        self.residuals = residuals and self.kind != "classes"
        if self.residuals:
            self.figsize = (self.figsize[0], round(self.figsize[1] * 1.4, 2))
        self.x_curve = self.y_curve = self.y_start = self.ylim = None
        if self.kind == "classes":
            self._classes(result, ds, x, params, start, grid_points)
            return
        self.pred = evaluate(result, params, x)  # at the data points: parity plot and residuals
        self.resid = self.y_data - self.pred
        if self.kind == "curve":
            drawn = [params] if start is None else [params, start]

            def curves(at: np.ndarray) -> np.ndarray:
                xs = torch.from_numpy(at).to(x.dtype)[:, None]
                return np.stack([evaluate(result, p, xs).reshape(-1) for p in drawn])

            lo, hi = float(ds.x[:, 0].min()), float(ds.x[:, 0].max())
            even = np.linspace(lo, hi, int(grid_points))
            rough = y_limits(self.y_data, self.pred, curves(even)[0])
            grid = curve_grid(self.x_data[:, 0], curves, rough, base_points=int(grid_points))
            # The drawn x are the model's own inputs (float32 rounding merges some neighbours).
            self.x_curve = np.unique(torch.from_numpy(grid).to(x.dtype).numpy())
            values = curves(self.x_curve.astype(np.float64))
            self.y_curve = values[0]
            self.y_start = None if start is None else values[1]
            self.ylim = y_limits(self.y_data, self.y_curve)
        else:
            self.y_start = None if start is None else evaluate(result, start, x)
            self.ylim = y_limits(self.y_data, self.pred)

    def _classes(self, result, ds, x, params, start, grid_points):
        self.labels = self.y_data.astype(np.int64)
        self.n_classes = max(2, int(result.model.n_outputs), int(self.labels.max()) + 1)
        if x.shape[1] == 2:
            # A 2-D grid costs grid_points**2 evaluations: 200 x 200 already draws a smooth boundary.
            g = min(grid_points, 200)
            axes = []
            for j in range(2):
                lo, hi = float(ds.x[:, j].min()), float(ds.x[:, j].max())
                pad = 0.05 * (hi - lo or 1.0)
                axes.append(torch.linspace(lo - pad, hi + pad, g, dtype=torch.float64))
            gx, gy = torch.meshgrid(*axes, indexing="xy")
            pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(x.dtype)
            self.grid = (gx.numpy(), gy.numpy())
            self.margins = class_margins(evaluate(result, params, pts)).T.reshape(-1, g, g)
            self.zone = self.margins.argmax(0)
            self.margins_start = (
                None if start is None else class_margins(evaluate(result, start, pts)).T.reshape(-1, g, g)
            )
        else:
            # Any other number of inputs: the probability the model gives each row's observed class.
            self.grid = None
            probs = class_probs(result, evaluate(result, params, x))
            self.p_true = probs[np.arange(len(self.labels)), self.labels]

    # -- drawing ---------------------------------------------------------------------------------

    @property
    def fit_label(self) -> str:
        loss = "" if math.isnan(self.loss) else f", loss {style.fmt(self.loss)}"
        return f"fit ({self.words.at(self.step)}{loss})"

    @property
    def start_label(self) -> str:
        off = self.y_start is not None and self.ylim is not None and leaves(self.y_start, self.ylim)
        return f"start ({self.words.at(0)}" + (", leaves the frame)" if off else ")")

    @property
    def data_label(self) -> str:
        return "data" if self.n_shown == self.n_fitted else f"data ({self.n_shown:,} of {self.n_fitted:,} rows)"

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the data and the fit into ``ax`` (a new figure when None)."""
        ax = style.apply(new_axes(ax, self.figsize))
        getattr(self, f"_plot_{self.kind}")(ax)
        return ax

    def _plot_curve(self, ax: Axes) -> None:
        assert self.x_curve is not None and self.y_curve is not None  # __init__ computes them for a curve
        ax.scatter(
            self.x_data[:, 0],
            self.y_data,
            s=style.MARKER_SIZE,
            color=style.PALETTE["data"],
            alpha=style.DATA_ALPHA,
            label=self.data_label,
            zorder=2,
        )
        if self.y_start is not None:
            ax.plot(self.x_curve, self.y_start, label=self.start_label, zorder=3, **style.START_STYLE)
        ax.plot(
            self.x_curve,
            self.y_curve,
            color=style.PALETTE["model"],
            lw=style.LINE_WIDTH,
            label=self.fit_label,
            zorder=4,
        )
        ax.set(xlabel=self.x_names[0], ylabel=self.y_name, ylim=self.ylim)
        crowd = [(self.x_data[:, 0], self.y_data), (self.x_curve, self.y_curve)]
        ax.legend(loc=quiet_corner(ax, crowd), fontsize=style.FONT_SIZE - 1, framealpha=0.85)

    def _plot_parity(self, ax: Axes) -> None:
        if self.y_start is not None:
            ax.scatter(
                self.y_data,
                self.y_start,
                s=style.MARKER_SIZE,
                facecolors="none",
                edgecolors=style.PALETTE["start"],
                linestyle="--",
                label=self.start_label,
                zorder=2,
            )
        ax.scatter(
            self.y_data,
            self.pred,
            s=style.MARKER_SIZE,
            color=style.PALETTE["model"],
            alpha=style.DATA_ALPHA,
            label=f"data: {self.fit_label}",
            zorder=3,
        )
        # Framed by the observed values and the final predictions: a far-off start is clipped, not the frame.
        assert self.ylim is not None  # __init__ sets it for a parity plot
        lo, hi = self.ylim
        ax.plot([lo, hi], [lo, hi], color=style.PALETTE["data"], lw=1.2, label="y = x (perfect fit)", zorder=1)
        ax.set(
            xlabel=f"observed {self.y_name}",
            ylabel=f"predicted {self.y_name}",
            xlim=(lo, hi),
            ylim=(lo, hi),
            title=f"{self.y_name} ~ {', '.join(self.x_names)}",
        )
        ax.legend(loc="upper left", fontsize=style.FONT_SIZE - 1, framealpha=0.85)

    def _plot_classes(self, ax: Axes) -> None:
        colors = [style.CYCLE[i % len(style.CYCLE)] for i in range(self.n_classes)]
        if self.grid is not None:
            levels = np.arange(self.n_classes + 1) - 0.5
            ax.contourf(*self.grid, self.zone, levels=levels, cmap=ListedColormap(colors), alpha=0.15, zorder=0)
            self._boundaries(ax, self.margins, colors=style.PALETTE["model"], linewidths=style.LINE_WIDTH, zorder=4)
            ax.plot([], [], color=style.PALETTE["model"], lw=style.LINE_WIDTH, label="decision boundary")
            if self.margins_start is not None and self._boundaries(
                ax, self.margins_start, colors=style.PALETTE["start"], linestyles="--", linewidths=1.5, zorder=3
            ):
                ax.plot([], [], label=f"start ({self.words.at(0)})", **style.START_STYLE)
            for c in range(self.n_classes):
                hit = self.labels == c
                ax.scatter(
                    self.x_data[hit, 0],
                    self.x_data[hit, 1],
                    s=style.MARKER_SIZE,
                    color=colors[c],
                    edgecolors="white",
                    linewidths=0.4,
                    label=f"{self.y_name} = {c}",
                    zorder=2,
                )
            ax.set(xlabel=self.x_names[0], ylabel=self.x_names[1], title=self.fit_label)
        else:
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(self.labels))
            ax.scatter(
                self.labels + jitter,
                self.p_true,
                s=style.MARKER_SIZE,
                c=[colors[c] for c in self.labels],
                alpha=style.DATA_ALPHA,
                zorder=2,
            )
            ax.set(
                xlabel=f"observed {self.y_name}",
                ylabel="predicted probability of the observed class",
                xticks=range(self.n_classes),
                ylim=(-0.03, 1.03),
                title=self.fit_label,
            )
            return
        # Below the axes: class zones fill the whole panel, so no corner inside is free.
        n_entries = len(ax.get_legend_handles_labels()[0])
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=min(n_entries, 4),
            fontsize=style.FONT_SIZE - 1,
            frameon=False,
        )

    def _boundaries(self, ax: Axes, margins: np.ndarray, **kw) -> bool:
        """Draw where classes meet; False when no boundary crosses the panel."""
        drawn = False
        # Two classes share one boundary; with more, each class's region edge is drawn (shared edges coincide).
        for c in [1] if len(margins) == 2 else range(len(margins)):
            if margins[c].min() < 0 < margins[c].max():
                ax.contour(*self.grid, margins[c], levels=[0.0], **kw)
                drawn = True
        return drawn

    def plot_residuals(self, ax: Axes) -> Axes:
        """Data minus model at each data point, against x (or the prediction for several inputs)."""
        style.apply(ax)
        at = self.x_data[:, 0] if self.kind == "curve" else self.pred
        ax.axhline(0.0, color=style.PALETTE["model"], lw=1.2, zorder=1)
        ax.scatter(
            at, self.resid, s=style.MARKER_SIZE * 0.7, color=style.PALETTE["data"], alpha=style.DATA_ALPHA, zorder=2
        )
        ax.set(xlabel=self.x_names[0] if self.kind == "curve" else f"predicted {self.y_name}", ylabel="residual")
        return ax

    def draw(self, fig: Figure) -> None:
        if not self.residuals:
            self.plot(fig.add_subplot())
            return
        top, bottom = fig.subplots(2, 1, sharex=self.kind == "curve", gridspec_kw={"height_ratios": [3, 1]})
        self.plot(top)
        self.plot_residuals(bottom)
        if self.kind == "curve":
            top.set_xlabel("")
            top.tick_params(labelbottom=False)


def plot_fit(result, data=None, *, ax: Axes | None = None, **options) -> FitDisplay:
    """Make a :class:`FitDisplay` (options as its parameters); draw it into ``ax`` when one is given.

    In a notebook the returned display shows itself; ``.save("fit.png")`` writes it.
    """
    display = FitDisplay(result, data, **options)
    if ax is not None:
        display.plot(ax)
    return display
