"""Gradient descent on every group of a grouped fit at once: each group a member of the batched loop.

A grouped fit (:mod:`gradfit.train.grouped`) with ``optimizer="sgd"``, ``"momentum"``, ``"nesterov"`` or ``"adam"``
moves each group's parameters as :func:`gradfit.fit` would move them on that group's rows alone: the mean squared
residual ``Σ wᵢ rᵢ² / Σ wᵢ`` and its gradient ``2 Jᵀr / Σ wᵢ`` come, for all the groups of a chunk at once, from the
residuals and Jacobian columns the batched Levenberg-Marquardt takes (:mod:`gradfit.models.batched`, padded rows of
weight 0); the updates and the stopping of each group are those of the batched loop of sweeps
(:mod:`gradfit.train.batched_steps`, :mod:`gradfit.train.batched_loop`): a group that diverges, reaches ``tol`` or
the target loss stops, and the others go on. Standard errors come from ``JᵀJ`` at the final point, as
Levenberg-Marquardt's do (:func:`gradfit.optim.batched_lm.finish`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradfit.errors import ConfigError
from gradfit.optim.batched_lm import (
    CONVERGED,
    DIVERGED,
    MAX_ITERATIONS,
    SINGULAR,
    TOO_FEW_ROWS,
    BatchedResult,
    Evaluate,
    finish,
)
from gradfit.train.batched_loop import BUDGET, TARGET, Rules, run_members
from gradfit.train.batched_loop import CONVERGED as TOLERANCE
from gradfit.train.batched_loop import DIVERGED as BLEW_UP
from gradfit.train.batched_steps import KINDS, BatchedUpdates

#: torch.optim.Adam's learning rate, which gradfit.fit(optimizer="adam") keeps when none is given.
ADAM_LR = 1e-3


@dataclass(frozen=True)
class DescentOptions:
    """The optimizer (one of :data:`gradfit.train.batched_steps.KINDS`), its learning rate and momentum, the budget
    of steps and the stopping options, the same for every group."""

    optimizer: str
    lr: float
    momentum: float
    steps: int
    tol: float | None = None
    target_loss: float | None = None

    @classmethod
    def of(cls, config, steps: int) -> DescentOptions:
        """The options of a fit's config; ConfigError for an optimizer or a learning rate a group cannot take."""
        kind = config.optimizer
        if kind not in KINDS:
            raise ConfigError(
                f"A grouped fit takes optimizer 'lm' (the default) or gradient descent ({', '.join(KINDS)}); "
                f"got {kind!r}."
            )
        lr = config.lr if config.lr is not None else (ADAM_LR if kind == "adam" else None)
        if lr is None:
            raise ConfigError(
                f"A grouped fit with optimizer={kind!r} needs a learning rate (lr=..., --lr): one fit takes half its "
                f"stability limit by default, which each group would need its own curvature for. Give --lr, or fit "
                f"with Levenberg-Marquardt (the default)."
            )
        momentum = KINDS[kind] if config.momentum is None else float(config.momentum)
        return cls(kind, float(lr), momentum, steps, config.tol, config.target_loss)

    def messages(self, status: np.ndarray, test: np.ndarray) -> np.ndarray:
        """One message per group from its status and stop codes (no Python per group)."""
        table = {
            (CONVERGED, TOLERANCE): f"the relative change of the loss fell below tol={self.tol}",
            (CONVERGED, TARGET): f"the loss reached target_loss={self.target_loss}",
            (MAX_ITERATIONS, BUDGET): f"ran the full budget of {self.steps} steps",
            (DIVERGED, BLEW_UP): f"the loss or its gradient stopped being finite: kept the last finite step's "
            f"parameters (lr={self.lr:g} is likely too large for this group)",
        }
        width = 8
        for code in range(width):  # JᵀJ at the end, whichever way the descent ended
            table[SINGULAR, code] = (
                "JᵀJ is singular: the group's rows do not determine every parameter, so its standard errors are "
                "undefined (NaN)"
            )
        table[TOO_FEW_ROWS, 0] = "fewer rows than parameters (rows of weight 0 not counted): the group was not fitted"
        lookup = np.array([table.get((c // width, c % width), "") for c in range(width * 8)], dtype=object)
        return lookup[status.astype(np.int64) * width + test.astype(np.int64)]

    def describe(self) -> dict:
        return {"optimizer": self.optimizer, "lr": self.lr, "momentum": self.momentum, "steps": self.steps}


class _GroupRows:
    """The batched loop's rows (:class:`gradfit.train.batched_pass.MemberRows`' two methods) of a chunk's groups:
    the members are the groups, each with its own rows."""

    def __init__(self, evaluate: Evaluate, weight: Tensor):
        self.evaluate, self.weight = evaluate, weight
        self.all = torch.arange(len(weight), device=weight.device)

    def value_and_grad(self, params: dict[str, Tensor], members: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        groups = self.all if members is None else members
        r, J = self.evaluate(params["p"], groups)
        weight = self.weight[groups]
        losses = r.square().sum(1) / weight
        grad = 2 * (J @ r.unsqueeze(2)).squeeze(2) / weight[:, None]
        return losses, [grad]

    def value(self, params: dict[str, Tensor]) -> Tensor:
        return self.value_and_grad(params)[0]


def descend(
    evaluate: Evaluate, p0: Tensor, n_rows: Tensor, weight: Tensor, options: DescentOptions, absolute_sigma: bool
) -> BatchedResult:
    """Every group's descent from ``p0 (G, k)`` (float64); ``n_rows (G,)`` counts each group's rows and ``weight (G,)``
    sums their weights (the mean's divisor). Groups with fewer rows than parameters are not fitted, as in
    :func:`gradfit.optim.batched_lm.solve`."""
    G, k = p0.shape
    fitted = (n_rows >= k).nonzero().flatten()
    params = p0.detach().to(torch.float64).clone()
    status = torch.full((G,), TOO_FEW_ROWS, dtype=torch.int8, device=p0.device)  # unless fitted below
    test = torch.zeros(G, dtype=torch.int8, device=p0.device)
    steps = torch.zeros(G, dtype=torch.int64, device=p0.device)
    if len(fitted):
        run = {"p": params[fitted].clone()}

        def some(p: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
            return evaluate(p, fitted[groups])

        rows = _GroupRows(some, weight[fitted].to(torch.float64).clamp_min(math.ulp(1.0)))
        n = len(fitted)
        updates = BatchedUpdates(
            [options.optimizer] * n, [options.lr] * n, [options.momentum] * n, [(n, k)], torch.float64, p0.device
        )
        out = run_members(rows, run, ["p"], updates, Rules(options.steps, options.tol, options.target_loss))
        params[fitted] = out.params["p"]
        codes = out.codes
        status[fitted] = torch.where(
            codes == BLEW_UP,
            DIVERGED,
            torch.where((codes == TOLERANCE) | (codes == TARGET), CONVERGED, MAX_ITERATIONS),
        ).to(torch.int8)
        test[fitted] = codes.to(torch.int8)
        steps[fitted] = out.steps
    return finish(evaluate, params, n_rows, status, test, steps, absolute_sigma)
