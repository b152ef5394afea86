"""The loop for Levenberg-Marquardt: ``run_lm``, a drop-in for :func:`gradfit.train.loop.run_loop`.

One history row per LM iteration, i.e. per Jacobian: row ``k`` holds the state after ``k``
accepted steps (steps rejected inside an iteration are not rows; an iteration ends when a step is
accepted or a convergence test fires). In that row ``loss`` is the mse at those parameters,
``grad_norm`` the norm of the mse's gradient ``2 Jᵀr / m`` (entries held on a bound left out) and
the ``lr`` column holds the damping λ of the step that left them: LM has no learning rate, and λ
is its counterpart (λ = 0 is a pure Gauss-Newton step; a large λ a short gradient step).

The budget ``steps`` (or ``epochs``: LM is full batch, so they coincide) counts iterations, hence
Jacobian evaluations. Options: ``optimizer_options={"ftol": ..., "xtol": ..., "gtol": ...,
"factor": ...}`` (see :class:`gradfit.optim.lm.LMOptions`); ``tol`` sets ``ftol``. Counters
(Jacobian and residual evaluations, the test that fired) go to ``result.diagnostics["lm"]``.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from gradfit.errors import ConfigError
from gradfit.models.base import Model
from gradfit.optim.lm import TESTS, ChunkedResiduals, LevenbergMarquardt, LMOptions
from gradfit.train.callbacks import call
from gradfit.train.checkpoint import Checkpointer, recorder_state
from gradfit.train.config import DEFAULT_STEPS, FitConfig
from gradfit.train.history import HistoryRecorder
from gradfit.train.interrupt import StopRequest
from gradfit.train.loop import LoopOutput, _flat, _interrupted_message, _notes, _restore
from gradfit.train.objective import Objective
from gradfit.train.stopping import EarlyStopping, MaxTime, StepState, Target, describe_stop

_OPTIONS = tuple(f.name for f in dataclasses.fields(LMOptions))


def run_lm(model: Model, loss, train, val, params: dict[str, torch.Tensor], fixed: frozenset[str], config: FitConfig,
           callbacks=(), generator: torch.Generator | None = None, bounds=None, checkpoints: Checkpointer | None = None,
           stop_request: StopRequest | None = None) -> LoopOutput:
    """Fit ``params`` (modified in place) by Levenberg-Marquardt on all rows of ``train``; see the module docstring.

    ``checkpoints`` and ``stop_request`` as in :func:`gradfit.train.loop.run_loop`.
    """
    start = time.perf_counter()
    checkpoints = checkpoints or Checkpointer()
    options = _options(config)
    trainable = [n for n in model.param_names if n not in fixed]
    specs = {s.name: s for s in model.specs}
    objective = Objective(model, loss, config.chunk_size)
    # The mse divides the sum of squares by the number of residuals (weighted: by the sum of the weights).
    m = train.y.numel() if train.w is None else float(train.w.double().sum())
    total = config.epochs if config.epochs is not None else (DEFAULT_STEPS if config.steps is None else config.steps)
    budget_reason = "max_epochs" if config.epochs is not None else "max_steps"
    float(objective.value(params, train.x[:1], train.y[:1]))  # the loss's own shape checks, with its messages

    base = {k: v.detach() for k, v in params.items()}

    def unflatten(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, offset = dict(base), 0
        for name in trainable:
            spec = specs[name]
            out[name] = flat[offset : offset + spec.size].reshape(spec.shape)
            offset += spec.size
        return out

    def residuals(flat, xc, yc):
        return (model(unflatten(flat), xc) - yc).reshape(-1)

    p0 = torch.cat([params[n].detach().reshape(-1) for n in trainable]) if trainable else torch.zeros(0, dtype=train.y.dtype)
    lower, upper = _box(bounds, trainable, p0)
    res = ChunkedResiduals(residuals, train.x, train.y, config.chunk_size, w=train.w)  # residuals times sqrt(w)
    lm = LevenbergMarquardt(res, p0, options, lower, upper)
    start_loss = lm.sum_squares / m  # before a resume overwrites the iterate

    rules = [r for r in (Target(config.target_loss) if config.target_loss is not None else None,
                         MaxTime(config.max_time) if config.max_time is not None else None) if r is not None]
    early = EarlyStopping(config.patience, config.min_delta) if (val is not None and config.patience) else None
    recorder = HistoryRecorder(model.flat_names(), max_snapshots=config.max_snapshots, snapshot_every=config.snapshot_every)

    step, reason, message, it = 0, budget_reason, "", None

    def loop_state() -> dict:
        """The loop at the top of ``step``: parameters, LM's iterate, trust region and counters (see checkpoint.py)."""
        solver = {"p": torch.from_numpy(lm.p.copy()), "sum_squares": lm.sum_squares, "delta": lm.delta, "lam": lm.lam,
                  "diag": None if lm.diag is None else torch.from_numpy(lm.diag.copy()), "n_fev": res.n_fev,
                  "n_jev": res.n_jev}
        return {"step": step, "params": {k: v.detach() for k, v in params.items()}, "lm": solver,
                "generator": generator.get_state() if generator is not None else None, "previous": None,
                "early": dict(vars(early)) if early else None, "rules": {}, "recorder": recorder_state(recorder),
                "elapsed": time.perf_counter() - start}

    if checkpoints.resume is not None:
        saved = checkpoints.resume
        step, _, start = _restore(saved, params, total, None, None, generator, early, rules, recorder,
                                  solver={"trainable": trainable})
        solver = saved["lm"]
        lm.p, lm.sum_squares, lm.delta, lm.lam = solver["p"].numpy().copy(), solver["sum_squares"], solver["delta"], solver["lam"]
        lm.diag = None if solver["diag"] is None else solver["diag"].numpy().copy()
        res.n_fev, res.n_jev = solver["n_fev"], solver["n_jev"]
    call(callbacks, "on_start", total)
    if not math.isfinite(lm.sum_squares):
        recorder.add_row(0, 0, math.nan, math.nan, math.nan, math.nan, time.perf_counter() - start)
        reason = "diverged"
        message = ("The fit could not start: at the initial parameters the residuals are not finite. Check the initial "
                   "values (--init) and the data (for example log or sqrt of negative numbers, or division by zero).")
    signalled, stop_request = False, stop_request if stop_request is not None else StopRequest()
    while reason != "diverged":
        if step >= total:
            break
        if stop_request:
            reason, signalled = "interrupted", True
            break
        if checkpoints.due(step):
            checkpoints.save(loop_state())
        if not trainable:
            reason, message = "converged", "Nothing to fit: every parameter is fixed."
            break
        try:
            it = lm.iterate()
        except FloatingPointError as exc:
            reason = "diverged"
            message = (f"The fit stopped at iteration {step}: {exc}, so no step can be computed. Kept the parameters of "
                       f"iteration {step}, whose residuals are finite. Try other initial values or bounds that keep the "
                       f"model away from where it overflows.")
            break
        loss_k = it.sum_squares / m
        grad_norm = 2 * float(np.linalg.norm(it.projected_gradient)) / m
        val_k = float(objective.value(params, val.x, val.y, val.w)) if val is not None else math.nan
        elapsed = time.perf_counter() - start
        recorder.add_row(step, step, loss_k, val_k, it.lam, grad_norm, elapsed)
        if recorder.wants_snapshot(step):
            recorder.add_snapshot(step, _flat(model, params))
        state = StepState(step, step, loss_k, val_k, it.lam, grad_norm, elapsed, total, params, epoch_end=True)
        stop = call(callbacks, "on_step", state)
        if early is not None and math.isfinite(val_k) and early.update(step, val_k, params):
            reason = "early_stopped"
            break
        hit = next((r for r in (rule.check(state) for rule in rules) if r), None)
        if hit or stop:
            reason = hit or "interrupted"
            break
        if it.trial is not None:
            lm.accept(it)
            _write(params, unflatten(lm.tensor(lm.p)), trainable)
            step += 1
        if it.test:
            reason = "converged" if it.test in TESTS else "stalled"
            message = _test_message(it, step, options, model, trainable, specs)
            if it.test in TESTS and it.dead:
                reason = "stalled"
            break
    if checkpoints.wants_final(signalled) and (signalled or reason == budget_reason):
        checkpoints.save(loop_state())  # a stop at the top of an iteration: the state is whole

    best_step = None
    if reason == "early_stopped" and config.restore_best and early.best_params is not None:
        _write(params, early.best_params, list(early.best_params))
        best_step = early.best_step
    if not message:
        message = describe_stop(reason, step, epochs=config.epochs, max_time=config.max_time,
                                target_loss=config.target_loss, patience=config.patience,
                                best_step=early.best_step if early else None)
    if signalled:
        message = _interrupted_message(stop_request.reason, step, checkpoints.saved)
    if p0.dtype != torch.float64 and reason != "diverged":
        message += " (Computed in float32: ask for dtype='float64', the default for lm, for full precision.)"
    final_loss = float(objective.value(params, train.x, train.y, train.w))
    final_val = float(objective.value(params, val.x, val.y, val.w)) if val is not None else None
    elapsed = time.perf_counter() - start
    recorder.add_final(step, step, final_loss, math.nan if final_val is None else final_val, elapsed, _flat(model, params))
    flat_trainable = [n for name in trainable for n in specs[name].flat_names()]
    counters = {"n_jacobian": res.n_jev, "n_function": res.n_fev, "test": it.test if it else None,
                "lambda": lm.lam, "held": [flat_trainable[j] for j in (it.held if it else [])],
                "no_effect": [flat_trainable[j] for j in (it.dead if it else [])]}
    return LoopOutput(start_loss=start_loss, params={k: v.detach() for k, v in params.items()}, loss=final_loss,
                      val_loss=final_val, steps=step,
                      epochs=float(step), stop_reason=reason, message=message, elapsed=elapsed,
                      history=recorder.freeze(), best_step=best_step,
                      diagnostics={"lm": counters, **_notes(stop_request.reason if signalled else None, checkpoints)})


def _options(config: FitConfig) -> LMOptions:
    given = dict(config.optimizer_options)
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"Unknown option(s) for Levenberg-Marquardt: {', '.join(map(repr, unknown))}. "
                          f"Known: {', '.join(_OPTIONS)}.")
    if config.tol is not None:
        given.setdefault("ftol", config.tol)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"The Levenberg-Marquardt option {key!r} must be a number > 0. Got {value!r} instead.")
    return LMOptions(**given)


def _box(bounds, trainable: list[str], p0: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if not bounds:
        return None, None
    lower = torch.cat([bounds.lower[n].reshape(-1) for n in trainable]) if trainable else None
    upper = torch.cat([bounds.upper[n].reshape(-1) for n in trainable]) if trainable else None
    return lower, upper


def _write(params: dict[str, torch.Tensor], values: dict[str, torch.Tensor], names) -> None:
    with torch.no_grad():
        for name in names:
            params[name].requires_grad_(False)
            params[name].copy_(values[name])


def _test_message(it, step: int, options: LMOptions, model: Model, trainable, specs) -> str:
    names = [n for name in trainable for n in specs[name].flat_names()]
    if it.test == "stalled":
        return (f"Stalled at iteration {step}: {options.max_rejections} steps in a row failed to reduce the sum of "
                f"squares although the gradient is not zero. The model may not be differentiable here or may overflow "
                f"nearby; try other initial values.")
    text = f"Converged at iteration {step}: " + TESTS[it.test].format(**dataclasses.asdict(options)) + "."
    if it.dead:
        dead = ", ".join(names[j] for j in it.dead)
        text = (f"Stopped at iteration {step} on a plateau, not a minimum: {dead} no longer change(s) the predictions "
                f"(the Jacobian column vanished), so {TESTS[it.test].format(**dataclasses.asdict(options)).split(' (')[0]} without the fit being found. "
                f"Try initial values closer to the answer, or bounds that keep {dead} in a sensible range.")
    if it.held:
        text += f" Held at a bound: {', '.join(names[j] for j in it.held)}."
    return text
