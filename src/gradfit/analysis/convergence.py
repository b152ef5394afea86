"""Did the fit find the optimum? The verdict after a fit, with the remedy that fits the cause.

Why a fit stopped (its budget, a rule, divergence, a stall) is not whether it found the best
parameters. :func:`judge` looks at how it ended and says which it was:

- the loss ended above where it started: stop reason ``loss_increased``, a failure;
- a stall (updates that change nothing) at a minimum: ``converged``; elsewhere ``stalled``, with the
  remedies that fit (float64, scaling, Levenberg-Marquardt);
- a plateau, where parameters lost their effect because the model underflows or overflows
  (:mod:`gradfit.analysis.flatness`): ``stalled``, with the start named as the cause;
- a budget (``max_steps``, ``max_epochs``, ``max_time``) or a ``converged`` rule that ended short of the
  minimum: not converged. A failure for a deterministic fit of a curve (all rows per step, not a neural
  network); a warning for mini-batch and network fits, whose budgets are the norm;
- divergence: the message names the measured stability limit and the cause (an lr above it, columns far
  from unit scale, a bad start).

"At a minimum" means that one Newton (Gauss-Newton for least squares) step from the final point would
move no parameter by more than :data:`NEWTON_TOL` standard errors: the answer is right to well within
its own error bars. Where no uncertainties exist, that the loss fell by less than :data:`STILL_FALLING`
(relative) over the last tenth of the steps.

The verdict lands in ``result.diagnostics["verdict"]`` (``converged``, ``remedies``, ``flat``), the
stop reason and message; ``result.success`` is False when ``converged`` is False.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradfit.analysis.flatness import MAX_PROBE_PARAMS, Flatness, flatness
from gradfit.analysis.stability import CHECK_ROWS
from gradfit.rowpass import is_row_set, reduce, rows_of, rows_triple

__all__ = ["Verdict", "judge", "NEWTON_TOL", "STILL_FALLING", "BUDGETS"]

NEWTON_TOL = 0.1  # standard errors a Newton step may still move a parameter at a converged point
STILL_FALLING = 1e-5  # relative fall of the loss over the last 10% of the steps that means "still falling"
STILL_IMPROVING = 1e-2  # ... and, for mini-batch and network fits, that is worth a warning
EXACT = {"float64": 1e-10, "float32": 1e-9}  # a final loss below this fraction of the start's: an exact fit
BUDGETS = ("max_steps", "max_epochs", "max_time")
GD = ("sgd", "momentum", "nesterov")
ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")  # steps of about lr per parameter, whatever the gradient's size
# The stability limits of gradfit.analysis.stability.lr_limit, in words (b: the momentum, lam: the largest curvature).
_LIMIT_FORMULA = {
    "sgd": "2 / the largest curvature of the loss",
    "momentum": "2(1 + b) / the largest curvature, for heavy-ball momentum b",
    "nesterov": "2(1 + b) / ((1 + 2b) x the largest curvature), for Nesterov momentum b",
}
LBFGS_LR = 1.0  # torch's L-BFGS default: the first trial step of its line search


@dataclass(frozen=True)
class Verdict:
    """The outcome of a fit in words.

    Attributes
    ----------
    stop_reason : str
        The (possibly revised) stop reason.
    message : str
        One paragraph: what happened and, when it is not a success, what to do.
    converged : bool or None
        Whether the parameters are at the optimum; None where the question does not apply (interrupted,
        early stopping, a target loss, a mini-batch or network fit that was not judged).
    remedies : tuple of str
        What to try, most specific first.
    warning : str or None
        A sentence for a ``GradfitWarning`` (a fit that is not a success, or one still improving).
    flat : Flatness or None
    """

    stop_reason: str
    message: str
    converged: bool | None
    remedies: tuple[str, ...] = ()
    warning: str | None = None
    flat: Flatness | None = None

    def to_dict(self) -> dict:
        flat = (
            None
            if self.flat is None
            else {"vanishing": list(self.flat.vanishing), "overflow": self.flat.overflow, "remedy": self.flat.remedy}
        )
        return {"converged": self.converged, "remedies": list(self.remedies), "flat": flat, "warning": self.warning}


@dataclass(frozen=True)
class _Facts:
    optimizer: str
    dtype: str
    lr: float | None
    scaled: bool
    least_squares: bool
    loss_name: str
    stochastic: bool  # mini-batches or a network: budgets are the norm, the optimum is not unique
    start: float | None
    baseline: float | None  # the loss of the best constant prediction (least squares: the targets' variance)
    final: float
    newton: float | None  # the Newton step in standard errors (None: no uncertainties)
    trend: float | None
    limit: float | None  # the stability limit of the optimizer used (None: does not apply)
    columns: str | None  # input columns far from unit scale, in words
    size: float = 1.0  # the free parameters' typical size (largest |value| at the start or the end, >= 1e-3)


def judge(result, uncertainty, model, loss, train, chunk_size: int | None = None, sums=None) -> Verdict:
    """The verdict on ``result`` (a FitResult before its verdict), from its ``uncertainty`` and training rows.

    The rows are read ``chunk_size`` at a time (the fit's ``FitConfig.chunk_size``; default
    :data:`gradfit.rowpass.CHUNK_ROWS`). ``sums``: what Levenberg-Marquardt summed at its final point
    (:class:`gradfit.optim.lm.PointSums`), whose Jacobian the flatness probe reads when it is the one it would take."""
    from gradfit.analysis.uncertainty import loss_trend

    f = _facts(result, uncertainty, model, loss, train, loss_trend(result.history), chunk_size)
    reason, message = result.stop_reason, result.message
    if reason == "interrupted" or (reason in BUDGETS and result.steps == 0):  # stopped, or asked not to fit
        return Verdict(reason, message, None)
    if reason == "diverged":
        return _diverged(result, f, model, train, chunk_size)
    if f.start is not None and _worse(f):
        remedies = _remedies(f, worse=True)
        text = f"The loss ended at {f.final:.6g}, above its start {f.start:.6g}: the fit made things worse. {message}"
        return _failed("loss_increased", text, remedies)
    flat = _flatness(result, model, train, f, chunk_size, sums)
    if flat is not None and flat.vanishing and flat.remedy:
        text = (
            f"Stopped at step {result.steps} on a plateau, not at a minimum: "
            f"{flat.sentence('at this point', remedy=False)[:-1]}."
        )
        return _failed("stalled", text, (f"starting from {_remedy_text(flat.remedy)}",), flat)
    at_minimum = _at_minimum(f)
    still = result.diagnostics.get("still")
    if reason == "stalled" or (still and reason in BUDGETS):
        return _stood_still(result, f, at_minimum, still, flat)
    if reason in BUDGETS or reason == "converged":
        if at_minimum is not False:
            return Verdict(
                reason,
                message + (_newton_words(f, sentence=True) if reason in BUDGETS else ""),
                None if at_minimum is None else True,
                flat=flat,
            )
        why = (
            f"the loss was still falling ({100 * f.trend:.2g}% over the last 10% of the steps)"
            if f.trend is not None and f.trend > STILL_FALLING
            else "this is not the minimum"
        )
        text = f"{message} Not converged: {why}{_newton_words(f, not_min=True)}."
        if f.stochastic:  # a network's or a mini-batch fit's budget: say so, do not fail it
            warn = text if f.trend is not None and f.trend > STILL_IMPROVING else None
            return Verdict(reason, text if warn else message, None, _remedies(f), warn, flat)
        return _failed(reason, text, _remedies(f), flat)
    return Verdict(reason, message, None, flat=flat)


def _stood_still(result, f: _Facts, at_minimum: bool | None, still: dict | None, flat: Flatness | None) -> Verdict:
    """Updates that no longer move the parameters (``still``, from the loop) or Levenberg-Marquardt's own stall.

    A stall's flat loss says nothing about a minimum: only an exact fit or the Newton step can tell.
    """
    reason, message = result.stop_reason, result.message
    decided = at_minimum and (f.newton is not None or _exact(f))
    if still:
        how = f"the parameters stopped changing at step {still['since']} ({still['why']}, in {still['dtype']})"
        if decided and f.optimizer == "lbfgs":  # L-BFGS stands still when its own convergence tests hold
            return Verdict(
                "converged",
                f"Converged at step {still['since']}: L-BFGS stopped changing the "
                f"parameters, at the minimum{_newton_words(f)}.",
                True,
                flat=flat,
            )
        if decided:
            return Verdict(
                reason, f"{message} {how[0].upper() + how[1:]}, at the minimum{_newton_words(f)}.", True, flat=flat
            )
        if still["since"] == 0:  # nothing moved, ever: a fit that did nothing is not a success unless shown right
            return _failed(
                "stalled",
                f"Stalled: the parameters never moved from their start ({still['why']}, in "
                f"{still['dtype']}){_newton_words(f, not_min=True) or '; nothing shows that the start is the minimum'}.",
                _remedies(f, stalled=True),
                flat,
            )
        if f.newton is None:  # no error bars to tell a minimum from a stall: say so, do not guess
            return Verdict(
                reason,
                f"{message} {how[0].upper() + how[1:]}; whether that is the minimum was not "
                f"checked (no uncertainties were computed).",
                None,
                flat=flat,
            )
        return _failed(
            "stalled",
            f"Stalled: {how}, short of the minimum{_newton_words(f, not_min=True)}.",
            _remedies(f, stalled=True),
            flat,
        )
    if _exact(f):  # Levenberg-Marquardt's own stall (its tests know a minimum better than a Newton step)
        return Verdict(
            "converged", f"Converged at step {result.steps}: the model fits the data exactly.", True, flat=flat
        )
    if flat is not None and flat.vanishing and not flat.remedy:
        names, it = ", ".join(flat.vanishing), "it" if len(flat.vanishing) == 1 else "them"
        message += (
            f" No start nearby gives {names} an effect either: the model may not depend on {it} at all; "
            f"hold {names} fixed (--fix) or remove {it} from the model."
        )
    return _failed("stalled", message, _remedies(f, stalled=True), flat)


def _facts(result, uncertainty, model, loss, train, trend, chunk_size: int | None = None) -> _Facts:
    cfg, diag = result.config, result.diagnostics
    limit = diag.get("stability_limit") or {}
    lr_limit = limit.get("lr_limit") if isinstance(limit, dict) else None
    start = diag.get("start_loss")
    stochastic = bool(getattr(model, "network", False)) or (
        cfg.get("batch_size") is not None and cfg["batch_size"] < len(train)
    )
    newton = getattr(uncertainty, "newton_distance", None) if uncertainty is not None else None
    return _Facts(
        optimizer=str(cfg.get("optimizer")),
        dtype=str(cfg.get("dtype")),
        lr=cfg.get("lr"),
        scaled=bool(cfg.get("scale")),
        least_squares=bool(getattr(loss, "least_squares", False)),
        loss_name=str(getattr(loss, "name", "loss")),
        stochastic=stochastic,
        start=None if start is None or not math.isfinite(start) else float(start),
        baseline=_baseline(loss, train, chunk_size, result.metrics),
        final=float(result.loss),
        newton=None if newton is None or not math.isfinite(newton) else float(newton),
        trend=trend,
        limit=_float(lr_limit),
        columns=_badly_scaled(train, chunk_size),
        size=_size(result),
    )


def _worse(f: _Facts) -> bool:
    assert f.start is not None  # judge asks only when the fit has a starting loss
    if not math.isfinite(f.final):
        return True
    slack = (1e-6 if f.dtype == "float32" else 1e-12) * max(abs(f.start), 1e-300)
    return f.final > f.start + slack


def _exact(f: _Facts) -> bool:
    """The loss is ~0 next to where it started and to the best constant prediction."""
    refs = [r for r in (f.start, f.baseline) if r is not None and r > 0]
    return bool(refs) and f.final <= EXACT.get(f.dtype, 1e-9) * min(refs)


def _baseline(loss, train, chunk_size: int | None = None, metrics: dict | None = None) -> float | None:
    """The targets' variance (``Σ (y - ȳ)² / n``): from the training metrics' ``tss`` when they cover these rows
    (the same sum, accumulated by chunks), else by two passes over them."""
    n = len(train)
    if not getattr(loss, "least_squares", False) or getattr(train, "y_name", None) is None or n < 2:
        return None
    stored = (metrics or {}).get("train") or {}
    if stored.get("n") == n and isinstance(stored.get("tss"), float):
        return stored["tss"] / n
    _, m2 = _moments(train, chunk_size, targets=True)
    return float(m2 / n)


def _moments(data, chunk_size: int | None = None, targets: bool = False):
    """The mean of the rows of ``data``'s inputs (its targets when ``targets``) and their summed squared deviation
    from it (per column), in float64: two row passes in chunks of ``chunk_size`` rows (a one-pass sum of squares
    would cancel on a large offset). ``data``: a Dataset, or a row set read chunk by chunk."""
    x, y, _ = rows_triple(data)
    rows = rows_of(x, y, chunk_size=chunk_size, dtype=torch.float64)

    def pick(c, yc):
        return yc if targets else c

    mean = reduce(lambda c, yc, _w: pick(c, yc).sum(0), rows) / len(data)
    return mean, reduce(lambda c, yc, _w: ((pick(c, yc) - mean) ** 2).sum(0), rows)


def _at_minimum(f: _Facts) -> bool | None:
    """True at the minimum, False short of it, None when it cannot be told."""
    if _exact(f):
        return True
    if f.newton is not None:
        return f.newton <= NEWTON_TOL
    if f.trend is not None:
        return f.trend <= STILL_FALLING
    return None


def _flatness(result, model, train, f: _Facts, chunk_size: int | None = None, sums=None) -> Flatness | None:
    """Flat directions at the final point, for small models of curves (None when not looked at)."""
    free = _free(result)
    if f.stochastic or not free or len(free) > MAX_PROBE_PARAMS or getattr(model, "n_outputs", 1) != 1:
        return None
    try:
        x, y = _probe_rows(train)
        return flatness(model, x, y, result.flat_params, free, chunk_size=chunk_size, sums=sums)
    except Exception:  # a diagnosis must never fail a fit  # noqa: BLE001
        return None


def _probe_rows(train) -> tuple[Tensor, Tensor]:
    """The rows :func:`flatness` probes (it takes at most :data:`PROBE_ROWS` evenly spaced rows of them): the rows in
    memory, or the evenly spaced rows a fit holds of a row set."""
    data = train.sample(CHECK_ROWS) if is_row_set(train) else train  # the rows the fit holds: no pass
    return data.x, data.y


def _diverged(result, f: _Facts, model, train, chunk_size: int | None = None) -> Verdict:
    """Divergence: the message with the measured stability limit and the fixes that fit the cause."""
    message = result.message
    causes, remedies = [], []
    if result.steps == 0 and not f.stochastic:  # it could not start: look at the start itself
        free = _free(result)
        try:
            flat = (
                flatness(model, *_probe_rows(train), result.init_params, free, chunk_size=chunk_size)
                if len(free) <= MAX_PROBE_PARAMS
                else None
            )
        except Exception:  # noqa: BLE001
            flat = None
        if flat is not None and flat.flat:
            causes.append(flat.sentence("At the start", remedy=False))
            if flat.remedy:
                remedies.append(f"starting from {_remedy_text(flat.remedy)}")
    if f.optimizer in GD and f.limit is not None and f.lr is not None and f.lr > f.limit:
        causes.append(
            f"The learning rate {f.lr:.3g} is above the stability limit {f.limit:.3g} measured at the start "
            f"({_LIMIT_FORMULA[f.optimizer]}), beyond which {f.optimizer} oscillates and grows."
        )
    if f.columns and not f.scaled and f.optimizer != "lm":
        causes.append(
            f"The input columns are far from unit scale ({f.columns}): the curvature of the loss differs by "
            f"orders of magnitude between directions, so no single step size suits them all."
        )
    remedies += _remedies(f, diverged=True)
    text = " ".join([message, *causes])
    return _failed("diverged", text, remedies)


def _remedies(f: _Facts, worse: bool = False, stalled: bool = False, diverged: bool = False) -> tuple[str, ...]:
    out = []
    too_fast = (worse or diverged) and f.optimizer in GD and f.limit is not None and f.lr is not None and f.lr > f.limit
    # Adaptive optimizers move each parameter by about lr per step: an lr beyond the parameters' size overshoots.
    adaptive = (worse or diverged) and f.optimizer in ADAPTIVE and bool(f.lr)
    if adaptive and f.lr is not None and f.lr > f.size:  # adaptive implies a nonzero lr: the check is for mypy
        too_fast = True
        out.append(_adaptive_lr(f))
    if (worse or diverged or stalled) and f.optimizer == "lbfgs" and f.lr is not None and f.lr != LBFGS_LR:
        # L-BFGS's lr is no step size: it scales the first trial step of the line search, whose default is 1.
        out.append(
            f"L-BFGS's own first step (leave out --lr: lr={f.lr:.3g} sets the length of its line search's first "
            f"trial step, whose default is {LBFGS_LR:g})"
        )
    if too_fast and not adaptive:  # the cause itself first
        assert f.limit is not None and f.lr is not None  # too_fast without adaptive: both checked above
        out.append(
            f"a smaller learning rate, below the stability limit {f.limit:.3g} (lr={f.lr:.3g} is "
            f"{f.lr / f.limit:.2g}x the limit; e.g. lr={0.5 * f.limit:.2g}, --lr {0.5 * f.limit:.2g})"
        )
    auto = f.least_squares and f.optimizer != "lm" and not f.stochastic
    if auto:
        out.append("Levenberg-Marquardt (--optimizer lm, or leave out --optimizer and --lr for the automatic choice)")
    if f.dtype == "float32" and (stalled or f.optimizer == "lbfgs"):
        out.append("float64 (--dtype float64)")
    # Scaling evens out the curvature across directions; it does not rescue an lr above the limit on its own.
    uneven = f.columns or stalled or ((diverged or worse) and not too_fast)
    if not f.scaled and f.optimizer != "lm" and uneven and not f.stochastic:
        out.append("scaled parameters (--scale)")
    if (worse or diverged) and f.optimizer in GD and f.limit is not None and f.lr is not None:
        if not too_fast:
            out.append(
                f"a smaller learning rate, below the stability limit {f.limit:.3g} (e.g. "
                f"lr={0.5 * f.limit:.2g}, --lr {0.5 * f.limit:.2g})"
            )
    elif adaptive:
        if not too_fast:
            out.append(_adaptive_lr(f))
    elif (worse or diverged) and f.optimizer not in ("lm", "lbfgs"):
        out.append(f"a smaller learning rate (--lr {0.1 * f.lr:.2g})" if f.lr else "a smaller learning rate (--lr)")
    if not (worse or diverged or stalled):
        if f.optimizer in GD and f.limit is not None and f.lr is not None and f.lr < 0.2 * f.limit:
            out.append(f"a larger learning rate, up to the stability limit {f.limit:.3g} (--lr {0.5 * f.limit:.2g})")
        out.append("more steps (--steps)")
    if not f.least_squares and not f.stochastic and f.optimizer not in ("lbfgs",) and not (worse or diverged):
        out.append("L-BFGS (--optimizer lbfgs, or leave out --optimizer and --lr for the automatic choice)")
    return tuple(dict.fromkeys(out))


def _adaptive_lr(f: _Facts) -> str:
    """A smaller lr for Adam and kin, which move each parameter by about lr per step: a fraction of their size."""
    assert f.lr is not None  # asked for only when adaptive, which needs a nonzero lr
    return (
        f"a smaller learning rate ({f.optimizer} moves each parameter by about lr per step, and the parameters "
        f"are of size {f.size:.2g}: e.g. --lr {min(0.1 * f.lr, 0.1 * f.size):.2g})"
    )


def _failed(reason: str, text: str, remedies, flat: Flatness | None = None) -> Verdict:
    if remedies:
        text = f"{text} Try {_or(remedies)}."
    return Verdict(reason, text, False, tuple(remedies), text, flat)


def _newton_words(f: _Facts, not_min: bool = False, sentence: bool = False) -> str:
    if f.newton is None:
        return ""
    if not_min:
        return f": one Newton step from here would still move a parameter by {f.newton:.2g} standard errors"
    if sentence:
        return f" The parameters are at the minimum to {f.newton:.2g} standard errors (one Newton step from here)."
    return f" (one Newton step from here would move no parameter by more than {f.newton:.2g} standard errors)"


def _remedy_text(remedy: dict[str, float]) -> str:
    ((name, value),) = remedy.items()
    return f"{name} = {value:.3g} (--init {name}={value:.3g})"


def _badly_scaled(train, chunk_size: int | None = None) -> str | None:
    """Input columns whose scale is far from 1 (rms above 100 or below 0.01, or an offset 100x their spread). Of a
    row set, its evenly spaced rows the fit already holds: two passes over a file to word a hint would cost more
    than the hint is worth."""
    train = train.sample(CHECK_ROWS) if is_row_set(train) else train
    n = len(train)
    if n == 0 or not train.x_names:
        return None
    mean, m2 = _moments(train, chunk_size)
    rms = ((m2 + n * mean * mean) / n).sqrt().cpu().numpy()
    spread = (m2 / (n - 1)).sqrt().cpu().numpy() if n > 1 else np.zeros_like(rms)
    offset = np.abs(mean.cpu().numpy())
    bad = [
        f"{name}: rms {r:.3g}"
        for name, r, s, o in zip(train.x_names, rms, spread, offset)
        if r > 100 or 0 < r < 0.01 or (s > 0 and o > 100 * s)
    ]
    if not bad:
        return None
    return ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")


def _size(result) -> float:
    """The free parameters' typical size: the largest finite |value| at the start or the end (1 when all are 0)."""
    free = _free(result)
    values = [
        abs(v)
        for d in (result.init_params, result.flat_params)
        for k, v in d.items()
        if k in free and isinstance(v, (int, float)) and math.isfinite(v)
    ]
    big = max(values, default=0.0)
    return big if big > 1e-3 else 1.0


def _free(result) -> list[str]:
    fixed = set(result.fixed)
    held = set(result.diagnostics.get("at_bounds", ()))
    return [n for n in result.flat_params if n not in fixed and n.split("[")[0] not in fixed and n not in held]


def _or(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else "; ".join(items[:-1]) + "; or " + items[-1]


def _float(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def with_verdict(result, verdict: Verdict):
    """``result`` with the verdict's stop reason, message and diagnostics."""
    return dataclasses.replace(
        result,
        stop_reason=verdict.stop_reason,
        message=verdict.message,
        diagnostics={**result.diagnostics, "verdict": verdict.to_dict()},
    )
