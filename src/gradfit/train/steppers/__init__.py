"""Steppers: what differs between optimizers inside the one loop (:func:`gradfit.train.loop.run_loop`).

The loop owns the step boundary (budget, stop request, checkpoints), the history rows, the
stopping rules, early stopping, divergence rollback and the result. A stepper owns the
parameters' way down. Each step of the loop asks it twice:

``look(k, batch) -> Look``
    The loss, gradient norm and learning rate (for Levenberg-Marquardt its damping λ) at the
    current parameters (state ``k``), on ``batch = (x, y, w)``. Nothing moves yet: the loop records the row,
    runs callbacks, early stopping and the stopping rules first, so row ``k`` is the state
    after ``k`` updates. ``Look.stop`` ends the fit here (``"diverged"``, or a reason the
    stepper decides, with its ``message``); ``Look.row`` says whether the row is recorded.

``snapshot()`` then ``step(k, previous) -> StepReport``
    ``snapshot()`` returns a copy of the free parameters (or None where the stepper keeps its
    own fallback, as Levenberg-Marquardt does), which the loop keeps as the last finite state
    for divergence rollback and as the checkpoint's ``previous``. ``step`` leaves state ``k``:
    ``StepReport.advanced`` says a step was taken (the loop's counter moves on), ``moved``
    whether any parameter changed bit for bit, and ``stop`` a reason the stepper decides (its
    convergence tests, an overflow; :data:`BUDGET` to end as if the budget ran out).

Besides these, a stepper gives the loop:

- ``start_loss``: the mean training loss at the initial parameters, taken before a resume;
- ``refusal() -> (reason, message) or None``: a fit that cannot start at all;
- ``state_dict()`` / ``load_state_dict(saved)``: its part of a checkpoint, as top-level fields
  (``{"optimizer", "scheduler"}``; ``{"lm"}``); ``loop_fields`` names the loop's own fields it
  keeps (:class:`gradfit.train.loop.LoopState`); ``resumable()`` the keyword arguments of
  :func:`gradfit.train.checkpoint_schema.check_resumable` that describe it, and
  ``check_resume(saved, total)`` refuses what cannot be resumed faithfully;
- ``put_back(previous)`` and ``finite()`` for the loop's rollback, ``assign(values)`` to set
  parameters (early stopping's best), ``finish(reason, message) -> message`` once the fit
  stopped, and ``diagnostics(notes, step, still, enough)``, the result's counters;
- ``checks_rise``: whether a stop by early stopping is checked for a training loss above its
  start (a descent that was diverging; Levenberg-Marquardt never raises its sum of squares);
- ``takes_tol``: whether the stepper applies ``tol`` itself (Levenberg-Marquardt, as ``ftol``), so the
  loop adds no :class:`~gradfit.train.stopping.Tolerance` rule.

Implementations: :class:`~gradfit.train.steppers.gradient.TorchStepper` (any torch.optim
optimizer, L-BFGS's closure included, mini-batches and learning-rate schedules) and
:class:`~gradfit.train.steppers.levenberg.LMStepper` (:mod:`gradfit.optim.lm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BUDGET = "budget"  # StepReport.stop: end the fit as if its budget ran out (nothing left to move)


@dataclass
class Look:
    """The state at the current parameters, before the step leaves it."""

    loss: float
    grad_norm: float
    lr: float
    stop: str | None = None
    message: str = ""
    row: bool = True


@dataclass
class StepReport:
    """What one step did."""

    advanced: bool
    moved: bool
    stop: str | None = None
    message: str = ""


class Stepper(Protocol):
    @property
    def loop_fields(self) -> tuple[str, ...]: ...
    @property
    def checks_rise(self) -> bool: ...
    @property
    def takes_tol(self) -> bool: ...
    @property
    def start_loss(self) -> float: ...

    def refusal(self) -> tuple[str, str] | None: ...
    def look(self, k: int, batch: tuple) -> Look: ...
    def snapshot(self) -> list | None: ...
    def step(self, k: int, previous: list | None) -> StepReport: ...
    def put_back(self, previous: list | None) -> None: ...
    def finite(self) -> bool: ...
    def assign(self, values: dict) -> None: ...
    def finish(self, reason: str, message: str) -> str: ...
    def diagnostics(self, notes: dict, step: int, still: int, enough: int) -> dict: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, saved: dict) -> None: ...
    def resumable(self) -> dict: ...
    def check_resume(self, saved: dict, total: int) -> None: ...


def make_stepper(model, loss, train, params: dict, fixed: frozenset, config, total: int, bounds, objective) -> Stepper:
    """Levenberg-Marquardt's stepper for ``optimizer="lm"`` (or an alias), torch.optim's for the others."""
    from gradfit.optim.registry import optimizer_name

    if optimizer_name(config.optimizer) == "lm":
        from gradfit.train.steppers.levenberg import LMStepper

        return LMStepper(model, loss, train, params, fixed, config, bounds, objective)
    from gradfit.train.steppers.gradient import TorchStepper

    return TorchStepper(model, train, params, fixed, config, total, bounds, objective)
