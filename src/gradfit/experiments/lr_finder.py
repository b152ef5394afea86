"""The learning-rate finder: one short run whose learning rate grows exponentially.

Leslie Smith's range test (as in fastai): start at ``lr_min``, multiply the learning rate by a
constant factor after every update so that it reaches ``lr_max`` at the last one, and record the
loss each update leads to. While the rate is too small the loss barely moves; then it falls
fastest; then the steps overshoot and the loss climbs and blows up. A good constant learning rate
lies where the loss falls fastest (the steepest descent of the smoothed curve against ``log lr``),
or about a tenth of the rate at the smoothed loss's minimum.

The sweep is an ordinary :func:`gradfit.fit` run (exponential schedule) from the same start a
fit would use; it works on its own copy of the parameters, so nothing of the caller's (init values,
model, data) changes, and the same seed gives the same curve. For plain sgd on all rows it also
reports the stability limit ``2 / lambda_max`` at the start (:mod:`gradfit.analysis.stability`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradfit.analysis.stability import StabilityLimit, stability_limit_of
from gradfit.errors import ConfigError, DivergenceError

__all__ = ["LRFinderResult", "find_lr", "smooth"]

MINIBATCH_SMOOTHING = 0.05
# find_lr sets these itself; passing them would silently change what the sweep measures.
_OWN = ("lr", "steps", "epochs", "schedule", "schedule_options", "val_split", "patience", "target_loss", "tol")


@dataclass(frozen=True, eq=False)
class LRFinderResult:
    """The sweep and what it suggests.

    Attributes
    ----------
    lrs : ndarray
        The learning rate of each update, ``lr_min * gamma**k``.
    losses : ndarray
        The raw loss just after that update (inf/NaN where the run blew up).
    smoothed : ndarray
        Bias-corrected exponential moving average of ``losses`` (``smoothed[0] == losses[0]``).
    suggestion : float
        The lr where the smoothed loss falls fastest against ``log10(lr)`` (before its minimum).
    min_lr : float
        The lr at the smoothed loss's minimum.
    suggestion_min10 : float
        ``min_lr / 10``, the other common rule of thumb.
    stopped_early : bool
        True when the sweep stopped because the loss diverged before ``lr_max``.
    stability_limit : StabilityLimit or None
        For full-batch sgd: ``2 / lambda_max`` at the starting parameters; None otherwise.
    steps_run : int
        Updates taken (``len(lrs)``).
    optimizer : str
    smoothing : float
        The moving average's weight of the newest loss (1: none, ``smoothed == losses``).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    min_lr: float
    suggestion_min10: float
    stopped_early: bool
    stability_limit: StabilityLimit | None
    steps_run: int
    optimizer: str = "sgd"
    smoothing: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: numbers as floats, non-finite values as strings ("inf", "nan")."""
        return {
            "schema": "gradfit.lr_finder/1",
            "optimizer": self.optimizer,
            "smoothing": self.smoothing,
            "suggestion": _num(self.suggestion),
            "min_lr": _num(self.min_lr),
            "suggestion_min10": _num(self.suggestion_min10),
            "stopped_early": self.stopped_early,
            "steps_run": self.steps_run,
            "stability_limit": None if self.stability_limit is None else self.stability_limit.to_dict(),
            "lrs": [_num(v) for v in self.lrs],
            "losses": [_num(v) for v in self.losses],
            "smoothed": [_num(v) for v in self.smoothed],
        }


def find_lr(
    model,
    data=None,
    *,
    y: str | None = None,
    x=None,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    steps: int = 100,
    optimizer: str = "sgd",
    smoothing: float | None = None,
    diverge_factor: float = 4.0,
    batch_size: int | None = None,
    seed: int = 0,
    init=None,
    fix=None,
    **fit_options,
) -> LRFinderResult:
    """Sweep the learning rate from ``lr_min`` to ``lr_max`` over ``steps`` updates and suggest one.

    Parameters
    ----------
    model, data, y, x, init, fix, batch_size, seed
        As for :func:`gradfit.fit`; the sweep starts where that fit would.
    lr_min, lr_max : float
        First and last learning rate; the rate is multiplied by ``(lr_max/lr_min)**(1/(steps-1))``
        after each update.
    steps : int
        Updates in the sweep (at least 5).
    optimizer : str
        Any of :func:`gradfit.fit`'s torch.optim optimizers (not ``lbfgs`` or ``lm``, which choose their
        own step length).
    smoothing : float in (0, 1], optional
        Weight of the newest loss in the exponential moving average (1: no smoothing). Default: 0.05 with
        mini-batches (an average over about the last 20 updates, which calms their noise), 1 on all rows,
        whose loss is exact: there an average only lags, by about ``(1 - w) / w`` updates, i.e. 1.5 decades
        of lr for 0.05 over a 100-step sweep of 8 decades, and would put the suggestions that much too high.
        The average is bias-corrected, so it starts at the first loss rather than at 0.
    diverge_factor : float > 1
        Stop once the smoothed loss exceeds this multiple of its best value (or a loss is not finite).
    **fit_options
        Other :func:`gradfit.fit` options (``loss``, ``momentum``, ``dtype``, ``x``...). The finder sets
        ``lr``, ``steps`` and the schedule itself.

    Returns
    -------
    LRFinderResult

    Raises
    ------
    ConfigError
        For options out of range; the errors of :func:`gradfit.fit` for the data and model.
    DivergenceError
        When the loss is not finite at the starting parameters (nothing to sweep from).

    Examples
    --------
    >>> r = find_lr("linear", "builtin:linear", y="y")  # doctest: +SKIP
    >>> r.suggestion, r.stability_limit.limit           # doctest: +SKIP
    (0.0546..., 0.999...)
    """
    from gradfit.api import fit
    from gradfit.optim.registry import optimizer_name

    if smoothing is None:
        smoothing = 1.0 if batch_size is None else MINIBATCH_SMOOTHING
    _check(lr_min, lr_max, steps, smoothing, diverge_factor, fit_options)
    key = optimizer_name(optimizer)
    if key in ("lbfgs", "lm"):
        raise ConfigError(
            f"The learning-rate finder sweeps the step size of a gradient step; {key!r} chooses its own "
            f"step length. Use optimizer='sgd', 'momentum', 'adam'... instead."
        )
    gamma = (lr_max / lr_min) ** (1.0 / (steps - 1))
    watch = _Watch(smoothing, diverge_factor)
    result = fit(
        model,
        data,
        x=x,
        y=y,
        init=init,
        fix=fix,
        callbacks=[watch],
        catch_signals=False,
        optimizer=key,
        lr=lr_min,
        steps=steps,
        schedule="exponential",
        schedule_options={"gamma": gamma},
        batch_size=batch_size,
        seed=seed,
        **fit_options,
    )
    if not watch.losses:
        raise DivergenceError(result.message.replace("The fit", "The learning-rate finder", 1), result)
    # Pair each update's lr with the loss it led to: the loss at step k+1 follows the update made with lr_k.
    lrs, losses = watch.lrs[:-1], watch.losses[1:]
    if result.stop_reason == "diverged":  # the loop stops before callbacks on a non-finite loss
        bad = result.history.loss[~np.isfinite(result.history.loss)]
        lrs, losses = watch.lrs, losses + [float(bad[0]) if len(bad) else math.inf]
    elif result.stop_reason != "interrupted":  # the budget ran out: the final state follows the last update
        lrs, losses = watch.lrs, losses + [result.loss]
    lr_array, loss_array = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    smoothed = smooth(loss_array, smoothing)
    suggestion, min_lr = _suggest(lr_array, smoothed)
    stability = None
    if key == "sgd" and batch_size is None:
        stability = stability_limit_of(result, None if isinstance(data, str) else data)
    return LRFinderResult(
        lrs=lr_array,
        losses=loss_array,
        smoothed=smoothed,
        suggestion=suggestion,
        min_lr=min_lr,
        suggestion_min10=min_lr / 10,
        stopped_early=result.stop_reason in ("interrupted", "diverged"),
        stability_limit=stability,
        steps_run=len(lr_array),
        optimizer=key,
        smoothing=float(smoothing),
    )


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Bias-corrected exponential moving average: ``out[0] == values[0]``; inf from the first non-finite value on.

    ``avg_k = (1 - weight) avg_{k-1} + weight v_k`` from ``avg_{-1} = 0``, divided by ``1 - (1 - weight)**(k+1)``
    so the start is not pulled towards zero (Adam's correction). Computed in the equivalent form
    ``sum (1-w)^(k-i) v_i / sum (1-w)^(k-i)``, which returns the first value exactly.
    """
    out = np.full(len(values), np.inf)
    ema = _Ema(weight)
    for k, v in enumerate(values):
        if not math.isfinite(v):
            break
        out[k] = ema.add(float(v))
    return out


class _Ema:
    def __init__(self, weight: float):
        self.keep = 1.0 - weight
        self.num = self.den = 0.0

    def add(self, value: float) -> float:
        self.num = self.keep * self.num + value
        self.den = self.keep * self.den + 1.0
        return self.num / self.den


class _Watch:
    """A callback recording (lr, loss) at each step and stopping once the smoothed loss blows up."""

    def __init__(self, smoothing: float, factor: float):
        self.factor = factor
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.ema, self.best = _Ema(smoothing), math.inf

    def on_step(self, state) -> bool:
        self.lrs.append(float(state.lr))
        self.losses.append(float(state.loss))
        if len(self.losses) == 1:
            return False  # the starting loss follows no update of the sweep
        smoothed = self.ema.add(float(state.loss))
        self.best = min(self.best, smoothed)
        return not math.isfinite(smoothed) or smoothed > self.factor * self.best


def _suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(steepest descent before the minimum, lr at the minimum) of the smoothed curve against log10(lr)."""
    finite = np.isfinite(smoothed)
    if not finite.any():
        return math.nan, math.nan
    best = int(np.argmin(np.where(finite, smoothed, np.inf)))
    # The first points average few losses (the bias correction makes them nearly raw), so mini-batch
    # noise there looks like steep descent: leave a tenth of the sweep out of the search, as fastai does.
    skip = min(len(lrs) // 10, max(best - 2, 0))
    if best - skip < 2:
        return float(lrs[best]), float(lrs[best])  # no descent to speak of: the loss rose from the first update
    slope = np.gradient(smoothed[skip : best + 1], np.log10(lrs[skip : best + 1]))
    return float(lrs[skip + int(np.argmin(slope))]), float(lrs[best])


def _check(lr_min, lr_max, steps, smoothing, diverge_factor, fit_options) -> None:
    problems = []
    for name, value in (("lr_min", lr_min), ("lr_max", lr_max)):
        if not _real(value) or not value > 0:
            problems.append(f"The '{name}' parameter must be a finite number > 0. Got {value!r} instead.")
    if not problems and not lr_max > lr_min:
        problems.append(
            f"The 'lr_max' parameter must be larger than 'lr_min'. Got lr_min={lr_min!r} and lr_max={lr_max!r}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 5:
        problems.append(f"The 'steps' parameter must be a whole number >= 5. Got {steps!r} instead.")
    if not _real(smoothing) or not 0 < smoothing <= 1:
        problems.append(f"The 'smoothing' parameter must be in (0, 1] (1: no smoothing). Got {smoothing!r} instead.")
    if not _real(diverge_factor) or not diverge_factor > 1:
        problems.append(f"The 'diverge_factor' parameter must be a number > 1. Got {diverge_factor!r} instead.")
    own = sorted(set(fit_options) & set(_OWN))
    if own:
        problems.append(
            f"The learning-rate finder sets {', '.join(own)} itself; leave them out (use lr_min, lr_max "
            f"and steps to shape the sweep)."
        )
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "Invalid options:\n- " + "\n- ".join(problems))


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else str(v)
