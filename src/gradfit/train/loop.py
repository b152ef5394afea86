"""The one training loop: batches -> loss -> gradient -> step -> history -> stopping rules.

Row ``k`` of the history is the state after ``k`` updates. At each step the loop takes the
loss and gradient at the current parameters, records them, asks the stopping rules, and only
then updates. A non-finite loss, gradient or parameter stops the fit as ``diverged`` and puts
back the last parameters whose loss was finite.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from gradfit.errors import ConfigError
from gradfit.models.base import Model
from gradfit.optim.registry import make_optimizer
from gradfit.optim.schedules import make_schedule
from gradfit.train.callbacks import call
from gradfit.train.checkpoint import Checkpointer, recorder_state, restore_recorder, restore_rules, rules_state
from gradfit.train.checkpoint_schema import check_resumable
from gradfit.train.config import DEFAULT_STEPS, FitConfig
from gradfit.train.history import History, HistoryRecorder
from gradfit.train.interrupt import StopRequest
from gradfit.train.objective import Objective
from gradfit.train.stopping import EarlyStopping, MaxTime, StepState, Target, Tolerance, describe_stop

STILL_UPDATES = 3  # updates in a row that change nothing before the fit counts as stalled


@dataclass
class LoopOutput:
    params: dict[str, torch.Tensor]
    loss: float
    val_loss: float | None
    steps: int
    epochs: float
    stop_reason: str
    message: str
    elapsed: float
    history: History
    best_step: int | None = None
    diagnostics: dict = field(default_factory=dict)  # optimizer-specific counters, copied into the result
    start_loss: float | None = None  # the mean loss over all training rows at the start (None: not known)


def run_loop(
    model: Model,
    loss,
    train,
    val,
    params: dict[str, torch.Tensor],
    fixed: frozenset[str],
    config: FitConfig,
    callbacks=(),
    generator: torch.Generator | None = None,
    bounds=None,
    checkpoints: Checkpointer | None = None,
    stop_request: StopRequest | None = None,
) -> LoopOutput:
    """Fit ``params`` (modified in place, leaves on the data's device) and return what happened.

    ``checkpoints`` saves the loop's state between steps and may hold a state to resume from
    (:mod:`gradfit.train.checkpoint`); once ``stop_request`` is set (by Ctrl-C or SIGTERM, see
    :mod:`gradfit.train.interrupt`) the fit stops at the next step boundary as ``interrupted``.
    """
    start = time.perf_counter()
    checkpoints = checkpoints or Checkpointer()
    trainable = [n for n in model.param_names if n not in fixed]
    leaves = [params[n].requires_grad_(True) for n in trainable]
    for n in fixed:
        params[n].requires_grad_(False)
    objective = Objective(model, loss, config.chunk_size)
    n = len(train)
    batch = n if config.batch_size is None else min(config.batch_size, n)
    per_epoch = math.ceil(n / batch)
    total = config.epochs * per_epoch if config.epochs is not None else (DEFAULT_STEPS if config.steps is None else config.steps)
    budget_reason = "max_epochs" if config.epochs is not None else "max_steps"

    options = dict(config.optimizer_options, momentum=config.momentum)
    optimizer = make_optimizer(config.optimizer, leaves, lr=config.lr, **options) if leaves else None
    scheduler = make_schedule(config.schedule, optimizer, total, **config.schedule_options) if optimizer else None
    rules = [r for r in (
        Target(config.target_loss) if config.target_loss is not None else None,
        Tolerance(config.tol) if config.tol is not None else None,
        MaxTime(config.max_time) if config.max_time is not None else None,
    ) if r is not None]
    early = EarlyStopping(config.patience, config.min_delta) if (val is not None and config.patience) else None
    recorder = HistoryRecorder(model.flat_names(), max_snapshots=config.max_snapshots, snapshot_every=config.snapshot_every)

    step, reason = 0, budget_reason
    previous: list[torch.Tensor] | None = None
    still = 0  # updates in a row that left every parameter bit for bit where it was (see _stillness)
    order = None
    epoch_rng = generator.get_state() if generator is not None else None  # the generator where this epoch's order was drawn

    def loop_state() -> dict:
        """Everything the rest of the fit depends on, at the top of ``step`` (see gradfit.train.checkpoint)."""
        mid_epoch = batch < n and config.shuffle and step % per_epoch != 0
        return {"step": step, "total": total, "params": {k: v.detach() for k, v in params.items()},
                "optimizer": optimizer.state_dict() if optimizer else None,
                "scheduler": scheduler.state_dict() if scheduler else None,
                "generator": epoch_rng if mid_epoch else (generator.get_state() if generator is not None else None),
                "previous": previous, "still": still, "early": dict(vars(early)) if early else None,
                "rules": rules_state(rules),
                "recorder": recorder_state(recorder), "elapsed": time.perf_counter() - start}

    start_loss = float(objective.value(params, train.x, train.y, train.w))  # before a resume overwrites the start
    if checkpoints.resume is not None:
        step, previous, start = _restore(checkpoints.resume, params, total, optimizer, scheduler, generator, early, rules,
                                         recorder)
        still = int(checkpoints.resume.get("still", 0))
    call(callbacks, "on_start", total)
    signalled, stop_request = False, stop_request if stop_request is not None else StopRequest()
    while True:
        if step >= total:
            break
        if stop_request:
            reason, signalled = "interrupted", True
            break
        if checkpoints.due(step):
            checkpoints.save(loop_state())
        if batch < n:
            if order is None or (step % per_epoch == 0 and config.shuffle):
                # Drawn afresh after a resume mid-epoch too, from the generator state of the epoch's start.
                epoch_rng = generator.get_state() if generator is not None else None
                order = torch.randperm(n, generator=generator).to(train.x.device) if config.shuffle else torch.arange(n, device=train.x.device)
            idx = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
            xb, yb, wb = train.x[idx], train.y[idx], None if train.w is None else train.w[idx]
        else:
            xb, yb, wb = train.x, train.y, train.w
        value, grads = objective.value_and_grad(params, trainable, xb, yb, wb)
        if bounds:
            grads = bounds.mask_gradients(params, trainable, grads)
        loss_k = float(value)
        grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))) if grads else 0.0
        lr = optimizer.param_groups[0]["lr"] if optimizer else math.nan
        elapsed = time.perf_counter() - start
        if not (math.isfinite(loss_k) and math.isfinite(grad_norm)):
            recorder.add_row(step, step / per_epoch, loss_k, math.nan, lr, grad_norm, elapsed)
            reason = "diverged"
            message = _diverged_message(step, loss_k, grad_norm, lr, config, previous is not None)
            if previous is not None:
                _put_back(leaves, previous)
                step -= 1
            break
        val_due = val is not None and step % per_epoch == 0  # every step in full batch, each epoch's start otherwise
        val_k = float(objective.value(params, val.x, val.y, val.w)) if val_due else math.nan
        recorder.add_row(step, step / per_epoch, loss_k, val_k, lr, grad_norm, elapsed)
        if recorder.wants_snapshot(step):
            recorder.add_snapshot(step, _flat(model, params))
        state = StepState(step, step / per_epoch, loss_k, val_k, lr, grad_norm, elapsed, total, params,
                          epoch_end=(step + 1) % per_epoch == 0)
        stop = call(callbacks, "on_step", state)
        if early is not None and math.isfinite(val_k) and early.update(step, val_k, params):
            reason = "early_stopped"
            break
        hit = next((r for r in (rule.check(state) for rule in rules) if r), None)
        if hit:
            reason = hit
            break
        if stop:
            reason = "interrupted"
            break
        if optimizer is None:
            break
        previous = [p.detach().clone() for p in leaves]
        cached = [grads]

        def closure():
            if cached:  # the gradient at the current parameters is already known
                for p, g in zip(leaves, cached.pop()):
                    p.grad = g
                return value
            v, gs = objective.value_and_grad(params, trainable, xb, yb, wb)
            if bounds:
                gs = bounds.mask_gradients(params, trainable, gs)
            for p, g in zip(leaves, gs):
                p.grad = g
            return v

        try:
            optimizer.step(closure)
        except RuntimeError as exc:  # an lr beyond the dtype's range overflows inside torch.optim
            if "overflow" not in str(exc):
                raise
            _put_back(leaves, previous)
            reason = "diverged"
            message = (f"The fit diverged at step {step + 1}: the update overflowed {leaves[0].dtype} with learning rate "
                       f"{lr:.3g}. Kept the parameters of step {step}, the last with a finite loss.")
            break
        if bounds and bounds.project(params) and isinstance(optimizer, torch.optim.LBFGS):
            # Its curvature memory describes a move the projection undid; start it afresh from here.
            optimizer.state.clear()
        if scheduler is not None:
            scheduler.step()
        step += 1
        still = still + 1 if all(torch.equal(p, old) for p, old in zip(leaves, previous)) else 0
    if checkpoints.wants_final(signalled) and (signalled or reason == budget_reason):
        checkpoints.save(loop_state())  # a stop at the top of a step: the state is whole

    # Early stopping is for overfitting: the training loss falls while the validation loss rises. When the
    # training loss has risen above its start too, the descent was diverging, and that is what is reported.
    stop_loss = float(objective.value(params, train.x, train.y, train.w)) if reason == "early_stopped" else None
    diverging = stop_loss is not None and math.isfinite(start_loss) and not stop_loss <= start_loss
    best_step = None
    if reason == "early_stopped" and config.restore_best and early.best_params is not None:
        with torch.no_grad():
            for name, value in early.best_params.items():
                params[name].copy_(value)
        best_step = early.best_step
    if reason != "diverged":
        message = describe_stop(reason, step, epochs=config.epochs, max_time=config.max_time, target_loss=config.target_loss,
                                tol=config.tol, patience=config.patience, best_step=early.best_step if early else None)
    if diverging:
        reason, message = "diverged", _diverged_early_message(step, start_loss, stop_loss, lr, config, best_step)
    if signalled:
        message = _interrupted_message(stop_request.reason, step, checkpoints.saved)
    for p in leaves:
        p.grad = None
        p.requires_grad_(False)
    final_loss = float(objective.value(params, train.x, train.y, train.w))
    if reason == budget_reason and previous is not None and not (math.isfinite(final_loss) and _finite(leaves)):
        # The budget's last update overflowed: that is divergence too, and the previous step is kept.
        recorder.add_row(step, step / per_epoch, final_loss, math.nan, lr, math.nan, time.perf_counter() - start)
        reason, message = "diverged", _diverged_message(step, final_loss, math.nan, lr, config, True)
        _put_back(leaves, previous)
        step -= 1
        final_loss = float(objective.value(params, train.x, train.y, train.w))
    final_val = float(objective.value(params, val.x, val.y, val.w)) if val is not None else None
    elapsed = time.perf_counter() - start
    recorder.add_final(step, step / per_epoch, final_loss, math.nan if final_val is None else final_val, elapsed, _flat(model, params))
    return LoopOutput(
        start_loss=start_loss,
        params={k: v.detach() for k, v in params.items()},
        loss=final_loss,
        val_loss=final_val,
        steps=step,
        epochs=step / per_epoch,
        stop_reason=reason,
        message=message,
        elapsed=elapsed,
        history=recorder.freeze(),
        best_step=best_step,
        diagnostics={**_notes(stop_request.reason if signalled else None, checkpoints),
                     **_stillness(step, still, max(STILL_UPDATES, per_epoch), leaves, optimizer)},
    )


def _stillness(step: int, still: int, enough: int, leaves, optimizer) -> dict:
    """``{"still": {...}}`` when the last ``still >= enough`` updates (a whole epoch with mini-batches) changed no
    parameter, so the fit stood still from step ``step - still``: at a minimum or stalled short of it, which the
    verdict (gradfit.analysis.convergence) tells apart."""
    if still < enough or not leaves:
        return {}
    why = ("the line search found no lower loss along its direction" if isinstance(optimizer, torch.optim.LBFGS)
           else "each update was below the precision of the parameters")
    return {"still": {"since": step - still, "updates": still, "why": why,
                      "dtype": str(leaves[0].dtype).replace("torch.", "")}}


def _put_back(leaves, previous) -> None:
    with torch.no_grad():
        for p, old in zip(leaves, previous):
            p.copy_(old)


def _finite(leaves) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in leaves)


def _restore(saved: dict, params, total: int, optimizer, scheduler, generator, early, rules, recorder, solver=None):
    """Put the loop back where a checkpoint left it, every field checked first; returns (step, previous, start time).

    ``solver``: Levenberg-Marquardt's description (see :func:`gradfit.train.checkpoint_schema.check_resumable`)."""
    step = int(saved["step"])  # a whole number >= 0 (load_checkpoint)
    if step > total:
        raise ConfigError(f"The checkpoint is at step {step}, past this fit's budget of {total} steps: give a larger "
                          f"budget (--steps / --epochs) to continue it.")
    if scheduler is not None and type(saved.get("total")) is int and step <= saved["total"] != total:  # else damage
        raise ConfigError(f"The checkpoint's fit (its field 'total') lays its learning-rate schedule over a budget of "
                          f"{saved['total']} "
                          f"steps, and this one over {total}: the schedule would change, so the result would not be "
                          f"the uninterrupted fit's. Resume with the budget the fit was started with (--steps "
                          f"{saved['total']}, or the same --epochs), or start afresh.")
    check_resumable(saved, params=params, optimizer=optimizer, scheduler=scheduler, generator=generator,
                    early=early, rules=rules, recorder=recorder, solver=solver)
    with torch.no_grad():
        for name, value in saved["params"].items():
            params[name].copy_(value)
    if optimizer is not None and saved.get("optimizer") is not None:
        optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved.get("scheduler") is not None:
        scheduler.load_state_dict(saved["scheduler"])
    if generator is not None and saved.get("generator") is not None:
        generator.set_state(saved["generator"])
    if early is not None and saved.get("early"):
        early.__dict__.update(saved["early"])
    restore_rules(rules, saved.get("rules") or {})
    restore_recorder(recorder, saved["recorder"])
    device = next(iter(params.values())).device if params else None
    previous = None if saved.get("previous") is None else [t.to(device) for t in saved["previous"]]
    return step, previous, time.perf_counter() - float(saved["elapsed"])


def _diverged_early_message(step: int, start: float, stop: float, lr: float, config: FitConfig,
                            best_step: int | None) -> str:
    """Divergence seen by early stopping before the loss overflowed: facts only, the verdict adds the remedies."""
    kept = (f"kept the parameters of step {best_step}{' (the start)' if best_step == 0 else ''}, those with the best "
            f"validation loss" if best_step is not None else f"left the parameters of step {step}")
    return (f"The fit diverged by step {step}: the training loss rose from {start:.6g} at the start to {stop:.6g} with "
            f"learning rate {lr:.3g}, while the validation loss did not improve for {config.patience} checks; early "
            f"stopping {kept}.")


def _interrupted_message(by: str | None, step: int, checkpoint) -> str:
    text = f"Interrupted ({by}) at step {step}; the parameters are those of step {step}."
    if checkpoint is not None:
        text += (f" The state was saved to {str(checkpoint)!r}: continue with `gradfit fit ... --resume "
                 f"{str(checkpoint.parent)!r}` (library: resume=...).")
    return text


def _notes(signalled: str | None, checkpoints: Checkpointer) -> dict:
    """What the result should say about interruption and checkpoints (nothing when neither happened)."""
    notes: dict = {}
    if signalled:
        notes["interrupted_by"] = signalled
    if checkpoints.resume is not None:
        notes["resumed_at_step"] = checkpoints.start_step
    if checkpoints.saved is not None:
        notes["checkpoint"] = str(checkpoints.saved)
    return notes


def _flat(model: Model, params) -> torch.Tensor:
    return torch.cat([params[n].detach().reshape(-1).double().cpu() for n in model.param_names]) if params else torch.zeros(0)


def _diverged_message(step: int, loss: float, grad_norm: float, lr: float, config: FitConfig, kept: bool) -> str:
    """What happened, in facts; the remedies that fit the cause are added by the verdict
    (:mod:`gradfit.analysis.convergence`), which knows the stability limit and the data."""
    what = f"the loss became {loss}" if not math.isfinite(loss) else f"the gradient became {grad_norm}"
    if not kept:
        return (
            f"The fit could not start: at the initial parameters {what}. Check the initial values (--init) "
            f"and the data (for example log or sqrt of negative numbers, or division by zero)."
        )
    return (f"The fit diverged at step {step}: {what} with learning rate {lr:.3g}. Kept the parameters of step "
            f"{step - 1}, the last with a finite loss.")
