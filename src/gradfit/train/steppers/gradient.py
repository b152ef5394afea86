"""The torch.optim stepper: any gradient optimizer of :mod:`gradfit.optim.registry`, with its schedule.

The gradient taken at the current parameters for the history row is handed to the optimizer's
first closure call, so a step of sgd or adam costs one gradient; L-BFGS's line search calls the
closure again for its trial points. Bounds mask the gradient of parameters held at a bound and
project the parameters back after each step (L-BFGS then starts its curvature memory afresh).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import optimizer as torch_optimizer

from gradfit.errors import ConfigError
from gradfit.optim.registry import make_optimizer
from gradfit.optim.schedules import make_schedule
from gradfit.rowpass import rows_triple
from gradfit.train.host_updates import plain_group
from gradfit.train.steppers import BUDGET, Look, StepReport


class TorchStepper:
    """Gradient descent by a torch.optim optimizer over the free entries of ``params`` (changed in place).

    Parameters
    ----------
    model, train, params, fixed, config, bounds, objective
        As given to :func:`gradfit.train.loop.run_loop`; ``objective`` computes loss and gradient.
    total : int
        The budget in steps, over which the learning-rate schedule is laid.
    """

    loop_fields: tuple[str, ...] = ("step", "total", "previous", "still", "elapsed")
    checks_rise = True
    takes_tol = False

    def __init__(self, model, train, params: dict, fixed: frozenset, config, total: int, bounds, objective):
        self.params, self.bounds, self.objective = params, bounds, objective
        self.trainable = [n for n in model.param_names if n not in fixed]
        self.leaves = [params[n].requires_grad_(True) for n in self.trainable]
        for n in fixed:
            params[n].requires_grad_(False)
        options = dict(config.optimizer_options, momentum=config.momentum)
        self.optimizer = make_optimizer(config.optimizer, self.leaves, lr=config.lr, **options) if self.leaves else None
        self.scheduler = (
            make_schedule(config.schedule, self.optimizer, total, **config.schedule_options) if self.optimizer else None
        )
        self.start_loss = float(objective.value(params, *rows_triple(train)))
        self._step = _direct_step(self.optimizer) if self.optimizer is not None else None
        self._batch: tuple = ()
        self._value = self._grads = None

    # -- a step ----------------------------------------------------------------------------------

    def refusal(self) -> None:
        return None  # a non-finite start shows in the first look, with its row

    def look(self, k: int, batch: tuple) -> Look:
        self._batch = batch
        value, grads = self._value_and_grad()
        self._value, self._grads = value, grads
        loss = float(value)
        grad_norm = _norm(grads)
        lr = self.optimizer.param_groups[0]["lr"] if self.optimizer else math.nan
        stop = None if math.isfinite(loss) and math.isfinite(grad_norm) else "diverged"
        return Look(loss, grad_norm, lr, stop=stop)

    def snapshot(self) -> list[torch.Tensor] | None:
        return [p.detach().clone() for p in self.leaves] if self.optimizer is not None else None

    def step(self, k: int, previous: list | None) -> StepReport:
        if self.optimizer is None or self._step is None:
            return StepReport(advanced=False, moved=False, stop=BUDGET)  # every parameter is fixed
        lr = self.optimizer.param_groups[0]["lr"]
        try:
            self._step(self._closure())
        except RuntimeError as exc:  # an lr beyond the dtype's range overflows inside torch.optim
            if "overflow" not in str(exc):
                raise
            self.put_back(previous)
            return StepReport(
                False,
                False,
                "diverged",
                f"The fit diverged at step {k + 1}: the update overflowed {self.leaves[0].dtype} with "
                f"learning rate {lr:.3g}. Kept the parameters of step {k}, the last with a finite loss.",
            )
        if self.bounds and self.bounds.project(self.params) and isinstance(self.optimizer, torch.optim.LBFGS):
            # Its curvature memory describes a move the projection undid; start it afresh from here.
            self.optimizer.state.clear()
        if self.scheduler is not None:
            self.scheduler.step()
        assert previous is not None  # snapshot() gives one whenever there is an optimizer
        return StepReport(True, not all(torch.equal(p, old) for p, old in zip(self.leaves, previous)))

    def _value_and_grad(self):
        x, y, w = self._batch
        value, grads = self.objective.value_and_grad(self.params, self.trainable, x, y, w)
        if self.bounds:
            grads = self.bounds.mask_gradients(self.params, self.trainable, grads)
        return value, grads

    def _closure(self):
        cached = [(self._value, self._grads)]

        def closure():
            # The first call is at the parameters the look took the gradient at; L-BFGS's later calls are not.
            value, grads = cached.pop() if cached else self._value_and_grad()
            for p, g in zip(self.leaves, grads):
                p.grad = g
            return value

        return closure

    # -- the loop's helpers ----------------------------------------------------------------------

    def put_back(self, previous: list | None) -> None:
        assert previous is not None, "put back only after a snapshot"
        with torch.no_grad():
            for p, old in zip(self.leaves, previous):
                p.copy_(old)

    def finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.leaves)

    def assign(self, values: dict) -> None:
        with torch.no_grad():
            for name, value in values.items():
                self.params[name].copy_(value)

    def finish(self, reason: str, message: str) -> str:
        for p in self.leaves:
            p.grad = None
            p.requires_grad_(False)
        return message

    def diagnostics(self, notes: dict, step: int, still: int, enough: int) -> dict:
        """``notes``, then ``{"still": {...}}`` when the last ``still >= enough`` updates (a whole epoch with
        mini-batches) changed no parameter, so the fit stood still from step ``step - still``: at a minimum or
        stalled short of it, which the verdict (gradfit.analysis.convergence) tells apart."""
        if still < enough or not self.leaves:
            return dict(notes)
        lbfgs = isinstance(self.optimizer, torch.optim.LBFGS)
        why = (
            "the line search found no lower loss along its direction"
            if lbfgs
            else "each update was below the precision of the parameters"
        )
        return {
            **notes,
            "still": {
                "since": step - still,
                "updates": still,
                "why": why,
                "dtype": str(self.leaves[0].dtype).replace("torch.", ""),
            },
        }

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
        }

    def load_state_dict(self, saved: dict) -> None:
        if self.optimizer is not None and saved.get("optimizer") is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved.get("scheduler") is not None:
            self.scheduler.load_state_dict(saved["scheduler"])

    def resumable(self) -> dict:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler}

    def check_resume(self, saved: dict, total: int) -> None:
        """A schedule laid over another budget would change the descent: refuse it."""
        step = int(saved["step"])
        if self.scheduler is not None and type(saved.get("total")) is int and step <= saved["total"] != total:
            raise ConfigError(
                f"The checkpoint's fit (its field 'total') lays its learning-rate schedule over a budget of "
                f"{saved['total']} "
                f"steps, and this one over {total}: the schedule would change, so the result would not be "
                f"the uninterrupted fit's. Resume with the budget the fit was started with (--steps "
                f"{saved['total']}, or the same --epochs), or start afresh."
            )


def _norm(grads: list[torch.Tensor]) -> float:
    """The gradient's Euclidean norm over all entries, its squares summed in float64.

    Where no tensor has more than two entries, the float64 sum of each tensor's squares has one possible
    order, so Python's float arithmetic on the entries gives torch's sum without a tensor operation per step
    (on the CPU, where torch's square root is taken the same way for the result).
    """
    if not grads:
        return 0.0
    if all(g.numel() <= 2 and g.device.type == "cpu" for g in grads):
        total = 0.0  # 0 + s is s: the same number as a sum started at the first tensor's
        for g in grads:
            # Python floats are exact: float64 widens every dtype; v * v is the float64 square torch takes.
            entries = g.tolist() if g.dim() == 1 else [g.item()] if g.dim() == 0 else g.reshape(-1).tolist()
            if entries:
                square = entries[0] * entries[0]
                total += square + entries[1] * entries[1] if len(entries) == 2 else square
        # torch's sqrt, not math.sqrt: torch's CPU sqrt is not always correctly rounded, and the number must be torch's.
        return torch.tensor(total, dtype=torch.float64).sqrt_().item()
    squares = [g.double().pow(2).sum() for g in grads]
    # Started at the first sum, not at 0: the same float64 number (0 + s is s), one Python addition fewer.
    return float(torch.sqrt(sum(squares[1:], squares[0])))


def _direct_step(optimizer: torch.optim.Optimizer) -> Callable:
    """``optimizer.step`` without torch.optim's per-call wrapper where nothing observes the call.

    The wrapper (a profiler record, step hooks, and for most optimizers a grad-mode switch that also imports
    ``torch._dynamo``) costs more than a small problem's whole update. The class's own step function is called
    instead, with the same arguments and in the same grad mode, so the arithmetic and ``optimizer.state`` are
    exactly those of ``optimizer.step``. Where a hook is registered (globally or on the optimizer), the
    optimizer's ``step`` is not the one torch.optim patches, or its grad-mode decorator is not the one known
    here, each call goes through ``optimizer.step`` as before.
    """
    public = optimizer.step
    patched = type(optimizer).step
    inner = getattr(patched, "__wrapped__", None) if getattr(patched, "hooked", False) else None
    code = getattr(inner, "__code__", None)
    body = getattr(inner, "__wrapped__", None)
    if (
        inner is None
        or body is None
        or code is None
        or code.co_name != "_use_grad"
        or optimizer.defaults.get("differentiable", False)
    ):
        return public
    # A learning-rate schedule wraps the optimizer's step to note that it ran (it warns otherwise).
    by_schedule = getattr(public, "_wrapped_by_lr_sched", False)

    plain_sgd = type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1

    def step(closure):
        if _hooked(optimizer):
            return optimizer.step(closure)
        if by_schedule:
            optimizer._opt_called = True
        group = optimizer.param_groups[0]
        if plain_sgd and _plain(group):
            with torch.enable_grad():
                loss = closure()
            if all(p.grad is not None and p.device.type == "cpu" and not p.grad.is_sparse for p in group["params"]):
                with torch.no_grad():
                    for p in group["params"]:
                        p.add_(p.grad, alpha=-group["lr"])  # torch.optim.sgd's single-tensor update, exactly
                return loss

            def closure():  # it ran: SGD.step takes the gradients it left
                return loss

        with torch.no_grad():
            return body(optimizer, closure)

    return step


def _plain(group: dict) -> bool:
    """Whether torch.optim.SGD's step over ``group`` is ``p -= lr * grad`` for each parameter, nothing more: no
    momentum (so no state), weight decay or maximize, and a float learning rate; the caller checks that the
    closure left a dense gradient on every parameter and that they are on the CPU, where torch picks the
    single-tensor update."""
    return group["momentum"] == 0 and plain_group(group)


def _hooked(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step hook would run: then the step must go through torch.optim's wrapper."""
    # Where torch keeps them elsewhere (another release), count them as registered: the wrapper then runs.
    registries = (
        getattr(torch_optimizer, "_global_optimizer_pre_hooks", True),
        getattr(torch_optimizer, "_global_optimizer_post_hooks", True),
        getattr(optimizer, "_optimizer_step_pre_hooks", True),
        getattr(optimizer, "_optimizer_step_post_hooks", True),
    )
    return any(bool(hooks) for hooks in registries)
