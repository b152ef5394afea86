"""The one training loop: batches -> look -> history -> stopping rules -> step.

Row ``k`` of the history is the state after ``k`` updates. At each step the loop has the stepper
(:mod:`gradfit.train.steppers`) take the loss and gradient at the current parameters, records
them, asks callbacks, early stopping and the stopping rules, and only then lets the stepper
update. A non-finite loss, gradient or parameter stops the fit as ``diverged`` and puts back the
last parameters whose loss was finite.

The loop owns the step boundary: the budget, the stop request (Ctrl-C, SIGTERM) and the
checkpoints, taken at the top of a step. A checkpoint is ``{name: part.state_dict()}`` over the
loop's parts (:data:`CHECKPOINT_FIELDS`; see :mod:`gradfit.train.checkpoint`): the loop's own
:class:`LoopState`, the parameters, the stepper, the shuffling generator (:class:`Batches`),
early stopping, the stopping rules and the history recorder.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from gradfit.errors import ConfigError
from gradfit.models.base import Model
from gradfit.problem import flatten
from gradfit.rowpass import is_row_set, rows_triple
from gradfit.train.batches import Batches
from gradfit.train.callbacks import call
from gradfit.train.checkpoint import Checkpointer
from gradfit.train.checkpoint_schema import check_resumable
from gradfit.train.config import DEFAULT_STEPS, FitConfig
from gradfit.train.history import History, HistoryRecorder
from gradfit.train.host_steps import NOT_RUN, HostBlocks
from gradfit.train.interrupt import StopRequest
from gradfit.train.objective import Objective
from gradfit.train.paths import prepare_paths
from gradfit.train.shard_batches import ShardBatches
from gradfit.train.steppers import BUDGET, Stepper, make_stepper
from gradfit.train.stopping import EarlyStopping, MaxTime, StepState, StoppingRules, Target, Tolerance, describe_stop
from gradfit.train.stream_batches import StreamBatches

STILL_UPDATES = 3  # updates in a row that change nothing before the fit counts as stalled
#: A checkpoint's fields, in the order they are written (a stepper keeps those of its parts and ``loop_fields``).
CHECKPOINT_FIELDS = (
    "step",
    "total",
    "params",
    "optimizer",
    "scheduler",
    "lm",
    "generator",
    "windows",
    "previous",
    "still",
    "early",
    "rules",
    "recorder",
    "elapsed",
)


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
    # What the stepper summed over the rows at the final parameters (Levenberg-Marquardt's [J | r] sums), for the
    # error bars to reuse after checking they are at those parameters; None when it holds nothing.
    sums: object | None = None


@dataclass
class LoopState:
    """The loop's own state at the top of step ``step``.

    ``previous``: the free parameters before the last update (the rollback after a divergence; None before the
    first update and for steppers that keep their own); ``still``: updates in a row that left every parameter bit
    for bit where it was; ``started``: the clock (:func:`time.perf_counter`) at the fit's start, moved back by the
    time a resumed fit had already run; ``lr``: the learning rate of the last look.
    """

    total: int
    started: float
    step: int = 0
    previous: list[torch.Tensor] | None = None
    still: int = 0
    lr: float = math.nan

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "total": self.total,
            "previous": self.previous,
            "still": self.still,
            "elapsed": self.elapsed(),
        }

    def load_state_dict(self, saved: dict, device) -> None:
        self.step = int(saved["step"])
        self.previous = None if saved.get("previous") is None else [t.to(device) for t in saved["previous"]]
        self.still = int(saved.get("still", 0))
        self.started = time.perf_counter() - float(saved["elapsed"])


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

    The optimizer's stepper (:func:`gradfit.train.steppers.make_stepper`: torch.optim's, or
    Levenberg-Marquardt's) makes the moves. ``checkpoints`` saves the loop's state between steps and may
    hold a state to resume from (:mod:`gradfit.train.checkpoint`); once ``stop_request`` is set (by Ctrl-C
    or SIGTERM, see :mod:`gradfit.train.interrupt`) the fit stops at the next step boundary as
    ``interrupted``.
    """
    fit = _Fit(model, loss, train, val, params, fixed, config, callbacks, generator, bounds, checkpoints)
    stop_request = stop_request if stop_request is not None else StopRequest()
    state, checkpoints = fit.state, fit.checkpoints
    if checkpoints.resume is not None:
        fit.resume(checkpoints.resume)
    call(callbacks, "on_start", state.total)
    outcome, signalled = fit.refusal(), False
    vote = getattr(train, "vote", None)  # a process's shard: the processes stop at the same step
    if vote is not None:
        vote.start(lambda: bool(stop_request))
    while outcome is None:
        if state.step >= state.total:
            outcome = (fit.budget_reason, "")
        elif vote.look() if vote is not None else bool(stop_request):
            if not stop_request:  # asked of another process: this one stops with it, and says so
                stop_request.set_elsewhere("a stop asked of another process")
            outcome, signalled = ("interrupted", ""), True
        else:
            if checkpoints.due(state.step):
                checkpoints.save(fit.state_dict())
            outcome = fit.advance()
    if checkpoints.wants_final(signalled) and (signalled or outcome[0] == fit.budget_reason):
        checkpoints.save(fit.state_dict())  # a stop at the top of a step: the state is whole
    return fit.finish(*outcome, stop_request.reason if signalled else None)


class _Fit:
    """The parts of one fit and the loop's steps over them (each method one phase of :func:`run_loop`)."""

    def __init__(
        self, model, loss, train, val, params, fixed, config: FitConfig, callbacks, generator, bounds, checkpoints
    ):
        started = time.perf_counter()
        self.model, self.train, self.val, self.params, self.config = model, train, val, params, config
        self.spec_names = [spec.name for spec in model.specs]  # the snapshots' order (gradfit.problem.flatten)
        self.callbacks = callbacks
        self.checkpoints = checkpoints or Checkpointer()
        self.objective = Objective(model, loss, config.chunk_size)
        # A row set's mini-batches are read from its file window by window (gradfit.train.stream_batches), each
        # process's share of them from its own rows in a fit spread over processes (gradfit.train.shard_batches).
        kind = (
            (ShardBatches if getattr(train, "group", None) is not None else StreamBatches)
            if is_row_set(train)
            else Batches
        )
        self.batches = kind(train, config.batch_size, config.shuffle, generator)
        per_epoch = self.batches.per_epoch
        total = (
            config.epochs * per_epoch
            if config.epochs is not None
            else (DEFAULT_STEPS if config.steps is None else config.steps)
        )
        self.budget_reason = "max_epochs" if config.epochs is not None else "max_steps"
        full_batch = self.batches.batch >= self.batches.rows
        prepare_paths(self.objective, model, loss, train, val, params, fixed, config, total, full_batch)
        self.stepper: Stepper = make_stepper(model, loss, train, params, fixed, config, total, bounds, self.objective)
        self.rules = StoppingRules(
            [
                Target(config.target_loss) if config.target_loss is not None else None,
                Tolerance(config.tol) if config.tol is not None and not self.stepper.takes_tol else None,
                MaxTime(config.max_time) if config.max_time is not None else None,
            ]
        )
        self.early = EarlyStopping(config.patience, config.min_delta) if (val is not None and config.patience) else None
        self.recorder = HistoryRecorder(
            model.flat_names(), max_snapshots=config.max_snapshots, snapshot_every=config.snapshot_every
        )
        self.state = LoopState(total=total, started=started)
        # Steps nothing observes in between, in blocks of Python floats (gradfit.train.host_steps), where they can be.
        self.blocks = HostBlocks.of(self)

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything the rest of the fit depends on, at the top of the step (see gradfit.train.checkpoint)."""
        loop = self.state.state_dict()
        parts = {
            **{k: loop[k] for k in self.stepper.loop_fields},
            "params": {k: v.detach() for k, v in self.params.items()},
            **self.stepper.state_dict(),
            "generator": self.batches.state_dict(),
            **self.batches.layout(),  # a streamed file's shuffle windows (StreamBatches), else nothing
            "early": self.early.state_dict() if self.early else None,
            "rules": self.rules.state_dict(),
            "recorder": self.recorder.state_dict(),
        }
        return {k: parts[k] for k in CHECKPOINT_FIELDS if k in parts}

    def resume(self, saved: dict) -> None:
        """Put every part back where the checkpoint left it, every field checked first."""
        step, total = int(saved["step"]), self.state.total  # a whole number >= 0 (load_checkpoint)
        if step > total:
            raise ConfigError(
                f"The checkpoint is at step {step}, past this fit's budget of {total} steps: give a "
                f"larger budget (--steps / --epochs) to continue it."
            )
        self.stepper.check_resume(saved, total)
        check_resumable(
            saved,
            params=self.params,
            generator=self.batches.generator,
            early=self.early,
            rules=self.rules.rules,
            recorder=self.recorder,
            **self.stepper.resumable(),
        )
        with torch.no_grad():
            for name, value in saved["params"].items():
                self.params[name].copy_(value)
        self.stepper.load_state_dict(saved)
        self.batches.check_layout(saved)
        self.batches.load_state_dict(saved.get("generator"))
        if self.early is not None and saved.get("early"):
            self.early.load_state_dict(saved["early"])
        self.rules.load_state_dict(saved.get("rules") or {})
        self.recorder.load_state_dict(saved["recorder"])
        device = next(iter(self.params.values())).device if self.params else None
        self.state.load_state_dict(saved, device)

    def refusal(self) -> tuple[str, str] | None:
        """A fit the stepper cannot start (its row says so); None for one that can."""
        refused = self.stepper.refusal()
        if refused is not None:
            self.recorder.add_row(0, 0, math.nan, math.nan, math.nan, math.nan, self.state.elapsed())
        return refused

    # -- one step --------------------------------------------------------------------------------

    def advance(self) -> tuple[str, str] | None:
        """Step ``state.step``: look, record, ask the rules, then move; a ``(reason, message)`` ends the fit."""
        if self.blocks is not None:
            outcome = self.blocks.advance(self)
            if outcome is not NOT_RUN:
                return outcome  # type: ignore[return-value]
        state, per_epoch, val = self.state, self.batches.per_epoch, self.val
        k = state.step
        look = self.stepper.look(k, self.batches.take(k))
        state.lr = look.lr
        if look.stop:
            return self._halt(look)
        val_due = val is not None and k % per_epoch == 0  # every step in full batch, each epoch's start otherwise
        val_k = float(self.objective.value(self.params, *rows_triple(val))) if val_due else math.nan
        elapsed = state.elapsed()
        self.recorder.add_row(k, k / per_epoch, look.loss, val_k, look.lr, look.grad_norm, elapsed)
        if self.recorder.wants_snapshot(k):
            self.recorder.add_snapshot_of(k, [self.params[name] for name in self.spec_names])
        # What callbacks and the rules see; not built when there are none (a small fit's step is this cheap).
        seen = (
            StepState(
                k,
                k / per_epoch,
                look.loss,
                val_k,
                look.lr,
                look.grad_norm,
                elapsed,
                state.total,
                self.params,
                epoch_end=(k + 1) % per_epoch == 0,
            )
            if self.callbacks or self.rules.rules
            else None
        )
        stop = call(self.callbacks, "on_step", seen) if self.callbacks else False
        if self.early is not None and math.isfinite(val_k) and self.early.update(k, val_k, self.params):
            return "early_stopped", ""
        hit = self.rules.check(seen) if seen is not None and self.rules.rules else None
        if hit or stop:
            return hit or "interrupted", ""
        return self._move(k)

    def _move(self, k: int) -> tuple[str, str] | None:
        state = self.state
        previous = self.stepper.snapshot()
        if previous is not None:
            state.previous = previous
        report = self.stepper.step(k, previous)
        if report.stop == BUDGET:
            return self.budget_reason, ""
        if report.stop == "diverged":
            return "diverged", report.message
        if report.advanced:
            state.step += 1
        if previous is not None:
            state.still = 0 if report.moved else state.still + 1
        return (report.stop, report.message) if report.stop else None

    def _halt(self, look) -> tuple[str, str]:
        """A stop the look found: a non-finite loss or gradient (rolled back a step) or the stepper's own."""
        state, k = self.state, self.state.step
        if look.row:
            self.recorder.add_row(
                k, k / self.batches.per_epoch, look.loss, math.nan, look.lr, look.grad_norm, state.elapsed()
            )
        if look.stop != "diverged" or look.message:
            return look.stop, look.message
        kept = state.previous is not None
        message = _diverged_message(k, look.loss, look.grad_norm, look.lr, self.config, kept)
        if kept:
            self.stepper.put_back(state.previous)
            state.step -= 1
        return "diverged", message

    # -- the end ---------------------------------------------------------------------------------

    def finish(self, reason: str, message: str, signalled: str | None) -> LoopOutput:
        """The result: early stopping's best parameters, the message, the final row and the counters."""
        state, config, early, train = self.state, self.config, self.early, self.train
        # Early stopping is for overfitting: the training loss falls while the validation loss rises. When the
        # training loss has risen above its start too, the descent was diverging, and that is what is reported.
        start_loss = self.stepper.start_loss
        stop_loss = self._loss(train) if reason == "early_stopped" and self.stepper.checks_rise else None
        diverging = stop_loss is not None and math.isfinite(start_loss) and not stop_loss <= start_loss
        best_step = None
        if reason == "early_stopped" and config.restore_best and early is not None and early.best_params is not None:
            self.stepper.assign(early.best_params)
            best_step = early.best_step
        if not message:
            message = describe_stop(
                reason,
                state.step,
                epochs=config.epochs,
                max_time=config.max_time,
                target_loss=config.target_loss,
                tol=config.tol,
                patience=config.patience,
                best_step=early.best_step if early else None,
            )
        if diverging and stop_loss is not None:
            reason = "diverged"
            message = _diverged_early_message(state.step, start_loss, stop_loss, state.lr, config, best_step)
        if signalled:
            message = _interrupted_message(signalled, state.step, self.checkpoints.saved)
        message = self.stepper.finish(reason, message)
        final_loss = self._final_loss(train)
        if (
            reason == self.budget_reason
            and state.previous is not None
            and not (math.isfinite(final_loss) and self.stepper.finite())
        ):
            reason, message, final_loss = self._overflowed(final_loss)
        return self._output(reason, message, final_loss, best_step, signalled)

    def _overflowed(self, final_loss: float) -> tuple[str, str, float]:
        """The budget's last update overflowed: that is divergence too, and the previous step is kept."""
        state = self.state
        self.recorder.add_row(
            state.step, state.step / self.batches.per_epoch, final_loss, math.nan, state.lr, math.nan, state.elapsed()
        )
        message = _diverged_message(state.step, final_loss, math.nan, state.lr, self.config, True)
        self.stepper.put_back(state.previous)
        state.step -= 1
        return "diverged", message, self._loss(self.train)

    def _output(self, reason: str, message: str, final_loss: float, best_step, signalled) -> LoopOutput:
        state, per_epoch, params = self.state, self.batches.per_epoch, self.params
        final_val = self._loss(self.val) if self.val is not None else None
        elapsed = state.elapsed()
        self.recorder.add_final(
            state.step,
            state.step / per_epoch,
            final_loss,
            math.nan if final_val is None else final_val,
            elapsed,
            _flat(self.model, params),
        )
        notes = _notes(signalled, self.checkpoints)
        return LoopOutput(
            start_loss=self.stepper.start_loss,
            params={k: v.detach() for k, v in params.items()},
            loss=final_loss,
            val_loss=final_val,
            steps=state.step,
            epochs=state.step / per_epoch,
            stop_reason=reason,
            message=message,
            elapsed=elapsed,
            history=self.recorder.freeze(),
            best_step=best_step,
            sums=getattr(self.stepper, "final_sums", lambda: None)(),
            diagnostics={
                **self.stepper.diagnostics(notes, state.step, state.still, max(STILL_UPDATES, per_epoch)),
                "row_pass": self._row_passes(),
                **({"host_steps": self.blocks.steps} if self.blocks is not None and self.blocks.steps else {}),
            },
        )

    def _row_passes(self) -> list[str]:
        """The paths that took this fit's sums over rows: the stepper's own where it passes the rows itself
        (Levenberg-Marquardt's residuals and Jacobians), else the objective's."""
        own = getattr(self.stepper, "row_passes", None)
        return own() if own is not None else self.objective.describe()

    def _final_loss(self, train) -> float:
        """The mean training loss at the final parameters: the stepper's own when it has it (Levenberg-Marquardt's
        sum of squares there, the same number), else a pass over the rows."""
        known = getattr(self.stepper, "final_loss", None)
        value = known() if known is not None else None
        return self._loss(train) if value is None else value

    def _loss(self, data) -> float:
        return float(self.objective.value(self.params, *rows_triple(data)))


def _diverged_early_message(
    step: int, start: float, stop: float, lr: float, config: FitConfig, best_step: int | None
) -> str:
    """Divergence seen by early stopping before the loss overflowed: facts only, the verdict adds the remedies."""
    kept = (
        f"kept the parameters of step {best_step}{' (the start)' if best_step == 0 else ''}, those with the best "
        f"validation loss"
        if best_step is not None
        else f"left the parameters of step {step}"
    )
    return (
        f"The fit diverged by step {step}: the training loss rose from {start:.6g} at the start to {stop:.6g} with "
        f"learning rate {lr:.3g}, while the validation loss did not improve for {config.patience} checks; early "
        f"stopping {kept}."
    )


def _interrupted_message(by: str | None, step: int, checkpoint) -> str:
    text = f"Interrupted ({by}) at step {step}; the parameters are those of step {step}."
    if checkpoint is not None:
        text += (
            f" The state was saved to {str(checkpoint)!r}: continue with `gradfit fit ... --resume "
            f"{str(checkpoint.parent)!r}` (library: resume=...)."
        )
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
    """Every entry of ``params`` as the history's snapshots hold them: float64, on the CPU."""
    return flatten(model.specs, params, torch.float64, "cpu")


def _diverged_message(step: int, loss: float, grad_norm: float, lr: float, config: FitConfig, kept: bool) -> str:
    """What happened, in facts; the remedies that fit the cause are added by the verdict
    (:mod:`gradfit.analysis.convergence`), which knows the stability limit and the data."""
    what = f"the loss became {loss}" if not math.isfinite(loss) else f"the gradient became {grad_norm}"
    if not kept:
        return (
            f"The fit could not start: at the initial parameters {what}. Check the initial values (--init) "
            f"and the data (for example log or sqrt of negative numbers, or division by zero)."
        )
    return (
        f"The fit diverged at step {step}: {what} with learning rate {lr:.3g}. Kept the parameters of step "
        f"{step - 1}, the last with a finite loss."
    )
