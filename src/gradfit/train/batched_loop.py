"""The loop of K fits at once, stopping each member as the one-fit loop would stop it alone.

Each step takes every running member's loss and gradient in one pass
(:class:`gradfit.train.batched_pass.MemberRows`), asks the one-fit loop's rules of each, and moves the
members still running by their own optimizers (:class:`gradfit.train.batched_steps.BatchedUpdates`). A
member that stops is frozen where :func:`gradfit.train.loop.run_loop` would leave it, and the others go
on. The rules, as the one-fit loop applies them to a full-batch fit (:mod:`gradfit.train.stopping`):

- a non-finite loss or gradient at step ``k`` is divergence: the parameters of step ``k - 1`` are put back
  (at ``k = 0`` the fit could not start and keeps its start);
- then ``target_loss`` (loss <= target), then ``tol`` (a zero gradient, or a relative change of the loss
  from the previous step of at most ``tol``), each stopping at step ``k`` with its parameters;
- after the budget, a non-finite final loss or parameter is divergence too, and the last update is undone.

Everything is kept as tensors over the members (reasons as codes); the only per-step synchronisation is
one check whether any member is still running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: The stop codes of :attr:`MembersOutput.codes`; RUNNING never survives the loop.
RUNNING, BUDGET, CONVERGED, TARGET, DIVERGED = 0, 1, 2, 3, 4
REASONS = {BUDGET: "budget", CONVERGED: "converged", TARGET: "target_loss", DIVERGED: "diverged"}


@dataclass
class MembersOutput:
    """What happened to each member.

    ``params``: final values, ``(K, ...)`` per name; ``losses``: the final mean loss (float64, ``(K,)``);
    ``steps``: updates kept; ``codes``: why each stopped (:data:`REASONS`); ``history``: ``(steps + 1, K)``, the
    loss at each step's look (NaN after a member stopped) and, in the last row, the final loss of those that ran
    the whole budget; ``start``: the loss at the start; ``stopped_at``: the step of the look that stopped it.
    """

    params: dict[str, Tensor]
    losses: Tensor
    steps: Tensor
    codes: Tensor
    history: Tensor
    start: Tensor
    stopped_at: Tensor


@dataclass
class Rules:
    """The stopping options of the members (the same for all): ``total`` steps, ``tol``, ``target``."""

    total: int
    tol: float | None = None
    target: float | None = None


class _State:
    """The members' running bookkeeping, as tensors."""

    def __init__(self, K: int, total: int, device):
        self.active = torch.ones(K, dtype=torch.bool, device=device)
        self.codes = torch.zeros(K, dtype=torch.long, device=device)
        self.steps = torch.zeros(K, dtype=torch.long, device=device)
        self.stopped_at = torch.full((K,), -1, dtype=torch.long, device=device)
        self.final = torch.full((K,), math.nan, dtype=torch.float64, device=device)
        self.previous_loss = torch.full((K,), math.inf, dtype=torch.float64, device=device)
        self.history = torch.full((total + 1, K), math.nan, dtype=torch.float64, device=device)

    def stop(self, which: Tensor, code: int, steps, final: Tensor, k: int) -> None:
        """Stop the members ``which`` at look ``k`` with ``code``, ``steps`` kept and ``final`` loss."""
        if not bool(which.any()):  # the common case: one test instead of five updates
            return
        self.codes = torch.where(which, code, self.codes)
        self.steps = torch.where(which, steps, self.steps)
        self.final = torch.where(which, final, self.final)
        self.stopped_at = torch.where(which, k, self.stopped_at)
        self.active = self.active & ~which


def run_members(rows, params: dict[str, Tensor], trainable: list[str], updates, rules: Rules) -> MembersOutput:
    """Fit the K members of ``params`` (``(K, ...)`` per name, changed in place) and say how each ended.

    ``rows`` gives the losses and gradients (:class:`gradfit.train.batched_pass.MemberRows`), ``updates`` the moves
    (:class:`gradfit.train.batched_steps.BatchedUpdates`) of the ``trainable`` names."""
    K = next(iter(params.values())).shape[0]
    device = next(iter(params.values())).device
    state = _State(K, rules.total, device)
    leaves = [params[n] for n in trainable]
    previous = [p.clone() for p in leaves]
    start: Tensor | None = None
    for k in range(rules.total):
        losses, grads = _running(rows, params, trainable, state.active)
        if start is None:
            start = losses.clone()
        _look(state, k, losses, grads, leaves, previous, rules)
        if not bool(state.active.any()):
            break
        for p, old in zip(leaves, previous):
            old.copy_(p)
        updates.step(leaves, grads, state.active)
    if state.active.any() or start is None:
        start = _end(state, rows, params, leaves, previous, rules.total, start)
    return MembersOutput(params, state.final, state.steps, state.codes, state.history, start, state.stopped_at)


def _running(rows, params: dict[str, Tensor], trainable: list[str], active: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The losses and gradients of the running members (the others' are NaN and 0): stopped members cost no
    pass over the rows."""
    if bool(active.all()):
        return rows.value_and_grad(params)
    index = active.nonzero().reshape(-1)
    some, grads = rows.value_and_grad({n: v.index_select(0, index) for n, v in params.items()}, index)
    losses = torch.full(active.shape, math.nan, dtype=some.dtype, device=some.device).index_copy_(0, index, some)
    full = [torch.zeros_like(params[n]).index_copy_(0, index, g) for n, g in zip(trainable, grads)]
    return losses, full


def _look(state: _State, k: int, losses: Tensor, grads: list[Tensor], leaves, previous, rules: Rules) -> None:
    """Record step ``k`` and stop the members that diverged, reached the target or converged."""
    active = state.active
    norm = _norms(grads, losses)
    state.history[k] = torch.where(active, losses, state.history[k])
    bad = active & ~(torch.isfinite(losses) & torch.isfinite(norm))
    if not bool(bad.any()):
        pass
    elif k > 0:
        _put_back(leaves, previous, bad)
        state.stop(bad, DIVERGED, k - 1, state.history[k - 1], k)
    else:
        state.stop(bad, DIVERGED, 0, losses, k)
    running = state.active
    if rules.target is not None:
        state.stop(running & (losses <= rules.target), TARGET, k, losses, k)
        running = state.active
    if rules.tol is not None:
        previous_loss = state.previous_loss
        change = (previous_loss - losses).abs() <= rules.tol * losses.abs().clamp(min=1e-300)
        done = running & ((norm == 0) | (torch.isfinite(previous_loss) & change))
        state.previous_loss = torch.where(running, losses, previous_loss)
        state.stop(done, CONVERGED, k, losses, k)


def _end(state: _State, rows, params, leaves, previous, total: int, start: Tensor | None) -> Tensor:
    """The members that ran the budget: their final loss, and divergence if it or a parameter is not finite."""
    final = rows.value(params)
    if start is None:  # a budget of 0 steps: the start is the end
        start = final.clone()
    running = state.active
    state.history[total] = torch.where(running, final, state.history[total])
    if total > 0:
        finite = torch.stack([torch.isfinite(p.reshape(p.shape[0], -1)).all(1) for p in leaves]).all(0)
        bad = running & ~(torch.isfinite(final) & finite)
        _put_back(leaves, previous, bad)
        state.stop(bad, DIVERGED, total - 1, state.history[total - 1], total)
    state.stop(state.active, BUDGET, total, final, total)
    return start


def _norms(grads: list[Tensor], losses: Tensor) -> Tensor:
    """Each member's gradient norm, its squares summed in float64."""
    if not grads:
        return torch.zeros_like(losses)
    squares = sum(g.double().reshape(g.shape[0], -1).pow(2).sum(1) for g in grads)
    assert isinstance(squares, Tensor)
    return squares.sqrt()


def _put_back(leaves: list[Tensor], previous: list[Tensor], which: Tensor) -> None:
    with torch.no_grad():
        for p, old in zip(leaves, previous):
            p.copy_(torch.where(which.reshape(-1, *([1] * (p.dim() - 1))), old, p))
