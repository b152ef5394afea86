"""Why a fit stops: the reasons, and the rules that watch for them.

Each rule looks at the state after the loss at the current parameters is known and before
they are updated, and returns a reason or None. Budgets (``max_steps``, ``max_epochs``) and
divergence are the loop's own business; the rules here are the optional ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Every stop reason gradfit reports; the first group counts as a successful fit.
SUCCESS = ("max_steps", "max_epochs", "max_time", "target_loss", "converged", "early_stopped")
FAILURE = ("diverged", "stalled", "loss_increased", "interrupted")
REASONS = SUCCESS + FAILURE


@dataclass
class StepState:
    """What callbacks and rules see at step ``step`` (parameters after ``step`` updates)."""

    step: int
    epoch: float
    loss: float
    val_loss: float
    lr: float
    grad_norm: float
    elapsed: float
    total_steps: int
    params: dict
    epoch_end: bool = True


class Target:
    def __init__(self, target: float):
        self.target = target

    def check(self, s: StepState) -> str | None:
        if s.loss <= self.target:
            return "target_loss"
        return None


class MaxTime:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def check(self, s: StepState) -> str | None:
        return "max_time" if s.elapsed >= self.seconds else None


class Tolerance:
    """Converged when the loss improves by less than ``tol`` (relative) from one check to the next.

    With mini-batches the per-batch loss is noisy, so the comparison is between epoch means.
    A gradient that is exactly zero also counts as converged.
    """

    def __init__(self, tol: float):
        self.tol = tol
        self.previous = math.inf
        self.running: list[float] = []

    def check(self, s: StepState) -> str | None:
        if s.grad_norm == 0.0:
            return "converged"
        self.running.append(s.loss)
        if not s.epoch_end:
            return None
        current = sum(self.running) / len(self.running)
        self.running.clear()
        previous, self.previous = self.previous, current
        if math.isfinite(previous) and abs(previous - current) <= self.tol * max(abs(current), 1e-300):
            return "converged"
        return None

    def state_dict(self) -> dict:
        """The running state: the last check's mean and the losses since (the setting ``tol`` is the fit's)."""
        return {"previous": self.previous, "running": list(self.running)}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state.get("previous", self.previous)
        self.running = list(state.get("running", self.running))


class StoppingRules:
    """The optional rules of a fit, asked in order; the first that answers stops it.

    Its state (:meth:`state_dict`) names each rule by its class: ``{"Tolerance": {"previous": ...,
    "running": [...]}, "Target": {}}``; rules without running state hold an empty dict.
    """

    def __init__(self, rules):
        self.rules = [r for r in rules if r is not None]

    def check(self, s: StepState) -> str | None:
        """The first rule's reason, or None; the rules after it are not asked (Tolerance counts its checks)."""
        return next((r for r in (rule.check(s) for rule in self.rules) if r), None)

    def state_dict(self) -> dict:
        return {type(r).__name__: r.state_dict() if hasattr(r, "state_dict") else {} for r in self.rules}

    def load_state_dict(self, state: dict) -> None:
        for r in self.rules:
            if hasattr(r, "load_state_dict"):
                r.load_state_dict(state.get(type(r).__name__, {}))


class EarlyStopping:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` checks."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_step = 0
        self.best_params: dict | None = None
        self.bad = 0

    def update(self, step: int, val_loss: float, params: dict) -> str | None:
        if val_loss < self.best - self.min_delta:
            self.best, self.best_step, self.bad = val_loss, step, 0
            self.best_params = {k: v.detach().clone() for k, v in params.items()}
            return None
        self.bad += 1
        return "early_stopped" if self.bad >= self.patience else None

    def state_dict(self) -> dict:
        """Settings and running state: ``patience``, ``min_delta``, ``best``, ``best_step``, ``best_params``,
        ``bad``."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "best": self.best,
            "best_step": self.best_step,
            "best_params": self.best_params,
            "bad": self.bad,
        }

    def load_state_dict(self, state: dict) -> None:
        """The running state of a checkpoint (its settings were checked against this fit's on loading)."""
        self.best, self.best_step, self.bad = state["best"], state["best_step"], state["bad"]
        self.best_params = state["best_params"]


def describe_stop(reason: str, step: int, **info) -> str:
    """One sentence saying why the fit stopped, for reports and result.json."""
    if reason == "max_steps":
        return f"Ran the full budget of {step} steps."
    if reason == "max_epochs":
        return f"Ran the full budget of {info.get('epochs')} epochs ({step} steps)."
    if reason == "max_time":
        return f"Stopped at step {step}: the time limit of {info.get('max_time')} s was reached."
    if reason == "target_loss":
        return f"Reached the target loss {info.get('target_loss')} at step {step}."
    if reason == "converged":
        return f"Converged at step {step}: the loss improved by less than tol={info.get('tol')} (relative)."
    if reason == "early_stopped":
        return (
            f"Stopped early at step {step}: the validation loss did not improve for {info.get('patience')} checks; "
            f"best at step {info.get('best_step')}."
        )
    if reason == "stalled":
        return f"Stalled at step {step}: no step from here reduces the loss, yet this is not a minimum."
    if reason == "interrupted":
        return f"Interrupted at step {step}."
    if reason == "loss_increased":
        return f"Stopped at step {step} with the loss above its start."
    return reason
