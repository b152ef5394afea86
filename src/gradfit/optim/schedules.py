"""Learning-rate schedules by name, stepped once per optimizer step.

``constant`` keeps the rate; ``step`` multiplies it by ``gamma`` (0.1) every ``step_size``
steps (a third of the budget by default); ``exponential`` decays it smoothly to 1% of the
start by the end of the budget; ``cosine`` anneals it to 0 over the budget; ``onecycle`` warms
up to the given rate and anneals (Smith's one-cycle policy), cycling the momentum too where the
optimizer has some (momentum, nesterov, Adam's beta1): from its own value down to 0.1 less at the
peak rate; plain ``sgd`` never gets momentum.
"""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler

from gradfit.aliases import canonical, unknown_name
from gradfit.errors import ConfigError

SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle")


def schedule_name(name: str | None) -> str:
    key = "constant" if name is None else canonical("schedule", name)
    if key in SCHEDULES:
        return key
    raise ConfigError(unknown_name("schedule", key, SCHEDULES, given=name))


def make_schedule(
    name: str | None, optimizer: torch.optim.Optimizer, total_steps: int, **options
) -> lr_scheduler.LRScheduler | None:
    """The scheduler for ``optimizer`` over a budget of ``total_steps`` steps, or None for constant."""
    key = schedule_name(name)
    total = max(1, int(total_steps))
    options = {k: v for k, v in options.items() if v is not None}
    try:
        if key == "constant":
            _no_options(key, options)
            return None
        if key == "step":
            return lr_scheduler.StepLR(
                optimizer,
                step_size=int(options.pop("step_size", max(1, total // 3))),
                gamma=options.pop("gamma", 0.1),
                **options,
            )
        if key == "exponential":
            return lr_scheduler.ExponentialLR(optimizer, gamma=options.pop("gamma", 0.01 ** (1 / total)), **options)
        if key == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.pop("T_max", total), **options)
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # One-cycle also cycles momentum, but only where the optimizer already has some, and from its own value:
        # torch's defaults (0.85 to 0.95) would turn plain sgd (momentum 0) into momentum SGD, override a given
        # momentum, and fail on optimizers without any (adagrad).
        own = _momentum(optimizer)
        options.setdefault("cycle_momentum", own > 0.0)
        if own > 0.0:  # from the optimizer's own momentum (at the low rates) to 0.1 less (at the peak)
            options.setdefault("max_momentum", own)
            options.setdefault("base_momentum", max(0.0, own - 0.1))
        return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total + 1, **options)
    except TypeError as exc:
        raise ConfigError(f"The schedule {key!r} refused its options: {exc}") from None


def _momentum(optimizer: torch.optim.Optimizer) -> float:
    """The optimizer's momentum (Adam's beta1), 0 when it has none."""
    defaults = optimizer.defaults
    return float(defaults["betas"][0]) if "betas" in defaults else float(defaults.get("momentum") or 0.0)


def _no_options(key: str, options: dict) -> None:
    if options:
        raise ConfigError(f"The schedule {key!r} takes no options. Got {', '.join(options)}.")
