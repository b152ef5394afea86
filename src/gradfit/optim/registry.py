"""Optimizers by name, on top of torch.optim.

``sgd`` is the seeds' step ``p -= lr * grad`` (torch.optim.SGD without momentum); the other
names are torch.optim classes with the defaults listed in ``OPTIMIZERS``. Options are checked
against the class's own signature so a typo is an error, not silently ignored.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from gradfit.aliases import canonical, unknown_name
from gradfit.errors import ConfigError


@dataclass(frozen=True)
class OptimizerInfo:
    """A name's torch.optim class, fixed options, and default learning rate."""

    cls: type
    default_lr: float
    fixed: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


OPTIMIZERS: dict[str, OptimizerInfo] = {
    "sgd": OptimizerInfo(torch.optim.SGD, 0.01, {}, "plain gradient descent: p -= lr * grad"),
    "momentum": OptimizerInfo(torch.optim.SGD, 0.01, {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9"),
    "nesterov": OptimizerInfo(
        torch.optim.SGD, 0.01, {"momentum": 0.9, "nesterov": True}, "SGD with Nesterov momentum 0.9"
    ),
    "adam": OptimizerInfo(torch.optim.Adam, 1e-3, {}, "Adam (Kingma & Ba)"),
    "adamw": OptimizerInfo(torch.optim.AdamW, 1e-3, {}, "Adam with decoupled weight decay (0.01)"),
    "rmsprop": OptimizerInfo(torch.optim.RMSprop, 1e-2, {}, "RMSprop"),
    "adagrad": OptimizerInfo(torch.optim.Adagrad, 1e-2, {}, "Adagrad"),
    "lbfgs": OptimizerInfo(
        # torch's default tolerances (grad 1e-7, change 1e-9) are absolute and stop float64 fits of
        # small losses short of the optimum; these let it run to the precision of the dtype.
        torch.optim.LBFGS,
        1.0,
        {"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-12, "tolerance_change": 1e-15},
        "L-BFGS with a strong-Wolfe line search (full batch)",
    ),
}

# Levenberg-Marquardt is not a torch.optim optimizer: the loop drives it through gradfit.train.steppers.levenberg.
LEAST_SQUARES = ("lm",)
# "auto" is resolved to one of the others before a fit starts (gradfit.optim.auto).
AUTO = "auto"

#: Every name ``optimizer`` takes, in the order the help lists them (aliases: gradfit.aliases.ALIASES).
OPTIMIZER_NAMES = (AUTO, *OPTIMIZERS, *LEAST_SQUARES)


def optimizer_name(name: str) -> str:
    """The canonical name, or a ConfigError that lists the names and the closest match."""
    key = canonical("optimizer", name)
    if key in OPTIMIZER_NAMES:
        return key
    raise ConfigError(unknown_name("optimizer", key, OPTIMIZER_NAMES, given=name))


def default_lr(name: str) -> float | None:
    """The fallback learning rate (None for Levenberg-Marquardt, which has none, and for ``auto``).

    ``gradfit.fit`` sets gradient descent's lr from the stability limit when it can; this is the
    value used when no limit can be measured."""
    key = optimizer_name(name)
    return None if key in LEAST_SQUARES or key == AUTO else OPTIMIZERS[key].default_lr


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None = None, **options) -> torch.optim.Optimizer:
    """Build the named optimizer over ``params``.

    Parameters
    ----------
    name : str
        One of ``OPTIMIZERS``.
    params : list of Tensor
        Leaf tensors with ``requires_grad=True``.
    lr : float, optional
        Learning rate; the optimizer's default when None.
    **options
        Passed to the torch.optim class (``momentum``, ``betas``, ``weight_decay``, ...).
        ``None`` values are ignored so callers can forward unset options.

    Examples
    --------
    >>> p = torch.zeros(2, requires_grad=True)
    >>> make_optimizer("momentum", [p], lr=0.1).param_groups[0]["momentum"]
    0.9
    """
    key = optimizer_name(name)
    if key in LEAST_SQUARES or key == AUTO:
        raise ConfigError(f"{key!r} is not a torch.optim optimizer; gradfit.fit resolves or runs it itself.")
    info = OPTIMIZERS[key]
    lr = info.default_lr if lr is None else lr
    options = {k: v for k, v in options.items() if v is not None}
    # The class's signature is its __init__'s without self (the same set for every class in OPTIMIZERS).
    accepted = set(inspect.signature(info.cls).parameters) - {"self", "params", "lr"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"The optimizer {key!r} does not take the option(s) {', '.join(unknown)}. "
            f"It takes: {', '.join(sorted(accepted))}."
        )
    if key == "sgd" and options.get("momentum"):
        # 'sgd' is the seeds' plain step; momentum is spelled 'momentum' so results stay comparable.
        key_hint = "use --optimizer momentum (or nesterov) for SGD with momentum"
        raise ConfigError(f"The 'sgd' optimizer is plain gradient descent without momentum; {key_hint}.")
    kwargs = {**info.fixed, **options}
    if "momentum" in kwargs and not 0 <= kwargs["momentum"] < 1:
        raise ConfigError(f"The 'momentum' parameter must be in [0, 1). Got {kwargs['momentum']} instead.")
    try:
        return info.cls(params, lr=lr, **kwargs)
    except (ValueError, TypeError) as exc:  # torch's own range checks, e.g. "Invalid beta parameter"
        raise ConfigError(f"The optimizer {key!r} refused its options: {exc}") from None
