"""LossDisplay: the loss against the step, the first thing to look at after a fit.

A log scale when the loss falls by more than two decades (a linear axis would show a cliff
and then nothing), the validation loss where it was measured, the learning rate on a second
axis when a schedule changed it, and a note when the fit diverged. A Levenberg-Marquardt run is
drawn against its iterations, and its history's ``lr`` column, which holds the damping λ, is
labelled as such.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from gradfit.errors import ConfigError
from gradfit.plots import style
from gradfit.plots.display import Display, new_axes
from gradfit.plots.labels import labels_of
from gradfit.train.history import History

LOG_DECADES = 2.0  # log scale when the positive losses span more than this many decades


def uses_log_scale(loss: np.ndarray) -> bool:
    """True when the finite positive losses span more than :data:`LOG_DECADES` decades."""
    pos = loss[np.isfinite(loss) & (loss > 0)]
    return len(pos) >= 2 and np.log10(pos.max() / pos.min()) > LOG_DECADES


def lr_changes(lr: np.ndarray) -> bool:
    """True when the learning rate took more than one value (a schedule, a warm-up, a decay)."""
    finite = lr[np.isfinite(lr)]
    return len(finite) >= 2 and not np.allclose(finite, finite[0], rtol=1e-9, atol=0.0)


class LossDisplay(Display):
    """The training loss (and validation loss, learning rate) against the step.

    Parameters
    ----------
    history_or_result : History or FitResult
        A FitResult also gives the title (optimizer and learning rate).

    Attributes
    ----------
    steps, loss, val_loss, lr : ndarray
        The history's columns, as drawn.
    log_scale, show_lr, diverged : bool
    """

    def __init__(self, history_or_result):
        history = getattr(history_or_result, "history", history_or_result)
        if not isinstance(history, History):
            raise ConfigError(
                f"LossDisplay needs a History or a FitResult. Got {type(history_or_result).__name__} instead."
            )
        if len(history) == 0:
            raise ConfigError(
                "This run has no history to draw (a result loaded from JSON without its history.csv): "
                "pass history=History.from_frame(...) to FitResult.from_json."
            )
        self.steps = history.step
        self.loss = np.asarray(history.loss, dtype=np.float64)
        self.val_loss = np.asarray(history["val_loss"], dtype=np.float64)
        self.lr = np.asarray(history["lr"], dtype=np.float64)
        self.log_scale = uses_log_scale(self.loss)
        self.show_lr = lr_changes(self.lr)
        self.has_val = bool(np.isfinite(self.val_loss).any())
        # A diverged fit ends on the last finite parameters, so the last row may be finite again:
        # look for any non-finite loss, and trust the result's own verdict.
        bad = np.nonzero(~np.isfinite(self.loss))[0]
        self.diverged = len(bad) > 0 or getattr(history_or_result, "stop_reason", None) == "diverged"
        self.diverged_at = int(self.steps[bad[0]]) if len(bad) else (int(self.steps[-1]) if self.diverged else None)
        self.bad_loss = float(self.loss[bad[0]]) if len(bad) else None
        self.words = labels_of(history_or_result)
        self.title = _title(history_or_result) if history_or_result is not history else "loss"

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the loss curve into ``ax`` (a new figure when None); the lr axis is a twin of ``ax``."""
        ax = style.apply(new_axes(ax, self.figsize))
        ok = np.isfinite(self.loss)
        # A single recorded step is a point, not a line: show it with a marker so it is visible.
        marker = "o" if ok.sum() < 2 else None
        ax.plot(
            self.steps[ok],
            self.loss[ok],
            color=style.PALETTE["model"],
            lw=style.LINE_WIDTH,
            marker=marker,
            label="training loss",
            zorder=3,
        )
        if self.has_val:
            v = np.isfinite(self.val_loss)
            ax.plot(
                self.steps[v],
                self.val_loss[v],
                color=style.PALETTE["val"],
                lw=1.5,
                marker="o" if v.sum() <= 50 else None,
                ms=3,
                label="validation loss",
                zorder=2,
            )
        if self.log_scale:
            ax.set_yscale("log")
        ax.set(xlabel=self.words.step, ylabel="loss (log scale)" if self.log_scale else "loss", title=self.title)
        handles, labels = ax.get_legend_handles_labels()
        if self.show_lr:
            twin = ax.twinx()
            lr_ok = np.isfinite(self.lr)
            rate = self.words.rate
            (line,) = twin.plot(
                self.steps[lr_ok], self.lr[lr_ok], color=style.PALETTE["lr"], lw=1.2, ls=":", label=rate
            )
            axis_label = f"{rate} (0: a Gauss-Newton step)" if self.words.lm else rate
            twin.set_ylabel(axis_label, color=style.PALETTE["lr"], fontsize=style.FONT_SIZE)
            twin.tick_params(axis="y", colors=style.PALETTE["lr"], labelsize=style.FONT_SIZE - 1)
            twin.spines["top"].set_visible(False)
            twin.set_ylim(bottom=0)
            handles, labels = handles + [line], labels + [rate]
            self.lr_axes = twin
        if self.diverged:
            became = f":\nthe loss became {self.bad_loss:g}" if self.bad_loss is not None else ""
            ax.axvline(self.diverged_at, color=style.PALETTE["model"], lw=1.0, ls=":", zorder=1)
            # Bottom right: a diverging loss climbs, so that corner stays clear of the curve.
            ax.text(
                0.98,
                0.05,
                f"diverged at {self.words.at(self.diverged_at)}{became}",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                color=style.PALETTE["model"],
                fontsize=style.FONT_SIZE,
                bbox={"facecolor": "white", "edgecolor": style.PALETTE["model"]},
            )
        if len(handles) > 1:
            ax.legend(
                handles,
                labels,
                loc="upper left" if self.diverged else "upper right",
                fontsize=style.FONT_SIZE - 1,
                framealpha=0.85,
            )
        return ax


def _title(result) -> str:
    cfg = getattr(result, "config", {}) or {}
    words = labels_of(result)
    if words.lm:
        parts = [words.method]
    else:
        parts = [
            f"{cfg.get('optimizer') or 'sgd'}, lr {style.fmt(cfg['lr'])}"
            if cfg.get("lr") is not None
            else str(cfg.get("optimizer") or "fit")
        ]
    if words.scaled:
        parts.append("on scaled parameters")
    if cfg.get("schedule"):
        parts.append(f"{cfg['schedule']} schedule")
    loss = cfg.get("loss")
    if isinstance(loss, str):
        parts.append(f"{loss} loss")
    return ", ".join(parts)


def plot_loss(history_or_result, *, ax: Axes | None = None) -> LossDisplay:
    """Make a :class:`LossDisplay`; draw it into ``ax`` when one is given.

    Examples
    --------
    >>> plot_loss(result).save("loss.png")  # doctest: +SKIP
    """
    display = LossDisplay(history_or_result)
    if ax is not None:
        display.plot(ax)
    return display
