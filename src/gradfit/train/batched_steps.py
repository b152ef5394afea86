"""The updates of many fits at once: K members, each with its own optimizer, learning rate and state.

Every parameter tensor carries the members on a leading dimension, ``(K, ...)``, and so does every
piece of optimizer state (momentum buffers, Adam's moments and step counts). One call of
:meth:`BatchedUpdates.step` moves every member that is still running by its own optimizer's rule, as a
handful of tensor operations over all members of that optimizer, never a Python loop over members;
the members the ``active`` mask leaves out keep their parameters and state exactly. The formulas are
torch.optim's single-tensor updates, written out so that a float64 member follows torch.optim to
rounding (tests/train/test_batched_steps.py holds them to it):

- ``sgd``: ``p -= lr * g`` (torch.optim.SGD without momentum);
- ``momentum`` / ``nesterov``: ``b = mu * b + g`` (``b = g`` at the first step: the buffer starts at 0),
  ``p -= lr * b`` or ``p -= lr * (g + mu * b)`` (SGD with dampening 0);
- ``adam``: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g²``,
  ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`` with ``t`` the member's own step count.

Members of one optimizer that sit next to each other are updated through views (no copies); the sweep
(:mod:`gradfit.experiments.sweeps`) orders them so. Grouped fits (one fit per group of rows) can reuse it
as it is: a member is a group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfit.errors import ConfigError

#: The optimizers a batch of members can take, and each one's default momentum (torch.optim's fixed options).
KINDS = {"sgd": 0.0, "momentum": 0.9, "nesterov": 0.9, "adam": 0.0}
BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which gradfit's "adam" keeps
EPS = 1e-8


@dataclass
class _Run:
    """Members ``start:stop``, all of one optimizer ``kind``."""

    kind: str
    start: int
    stop: int


class BatchedUpdates:
    """The optimizer state of K members and their update (see the module's docstring for the formulas).

    Parameters
    ----------
    kinds : sequence of str
        Each member's optimizer, one of :data:`KINDS`.
    lr, momentum : sequence of float
        Each member's learning rate and momentum (read by ``momentum`` and ``nesterov`` only).
    shapes : sequence of torch.Size
        The shape of each parameter tensor the updates move, members included: ``(K, ...)``.
    dtype, device
        Of the parameters; the state is kept in the same.
    """

    def __init__(self, kinds: Sequence[str], lr, momentum, shapes, dtype: torch.dtype, device=None):
        unknown = sorted({k for k in kinds if k not in KINDS})
        if unknown:
            raise ConfigError(
                f"Batched updates take the optimizers {', '.join(KINDS)}; got {', '.join(map(repr, unknown))}."
            )
        self.kinds = list(kinds)
        self.runs = _runs(self.kinds)
        self.lr = torch.as_tensor(list(lr), dtype=dtype, device=device)
        self.momentum = torch.as_tensor(list(momentum), dtype=dtype, device=device)
        state = any(r.kind != "sgd" for r in self.runs)
        self.buffers = [torch.zeros(s, dtype=dtype, device=device) for s in shapes] if state else []
        adam = any(r.kind == "adam" for r in self.runs)
        self.second = [torch.zeros(s, dtype=dtype, device=device) for s in shapes] if adam else []
        self.count = torch.zeros(len(self.kinds), dtype=torch.float64, device=device)  # updates each member took

    def step(self, params: list[Tensor], grads: list[Tensor], active: Tensor) -> None:
        """Move the ``active`` members of ``params`` (changed in place) along ``grads`` (same shapes)."""
        self.count += active.to(self.count.dtype)
        for run in self.runs:
            s = slice(run.start, run.stop)
            keep = active[s]
            lr = self.lr[s]
            if run.kind == "sgd":
                for p, g in zip(params, grads):
                    _assign(p[s], p[s] - _lead(lr, p) * g[s], keep)
            elif run.kind == "adam":
                self._adam(s, params, grads, keep)
            else:
                self._momentum(s, run.kind == "nesterov", params, grads, keep)

    def _momentum(self, s: slice, nesterov: bool, params, grads, keep: Tensor) -> None:
        lr, mu = self.lr[s], self.momentum[s]
        for p, g, b in zip(params, grads, self.buffers):
            buf = _lead(mu, b) * b[s] + g[s]  # torch: buf.mul_(mu).add_(g); from 0, the first is g itself
            move = g[s] + _lead(mu, b) * buf if nesterov else buf
            _assign(b[s], buf, keep)
            _assign(p[s], p[s] - _lead(lr, p) * move, keep)

    def _adam(self, s: slice, params, grads, keep: Tensor) -> None:
        beta1, beta2 = BETAS
        t = self.count[s]
        correction1 = 1 - torch.pow(beta1, t)
        root2 = (1 - torch.pow(beta2, t)).sqrt()
        lr = self.lr[s]
        for p, g, m, v in zip(params, grads, self.buffers, self.second):
            gs = g[s]
            first = torch.lerp(m[s], gs, 1 - beta1)
            second = v[s] * beta2 + (1 - beta2) * gs * gs
            step = (lr.double() / correction1).to(p.dtype)
            denom = second.sqrt() / _lead(root2.to(p.dtype), p) + EPS
            _assign(m[s], first, keep)
            _assign(v[s], second, keep)
            _assign(p[s], p[s] - _lead(step, p) * (first / denom), keep)  # torch: p.addcdiv_(m, denom, -step)


def _runs(kinds: list[str]) -> list[_Run]:
    """The stretches of members with one optimizer, in order."""
    runs: list[_Run] = []
    for i, kind in enumerate(kinds):
        if runs and runs[-1].kind == kind and runs[-1].stop == i:
            runs[-1].stop = i + 1
        else:
            runs.append(_Run(kind, i, i + 1))
    return runs


def _lead(values: Tensor, like: Tensor) -> Tensor:
    """``values`` (one per member) shaped to broadcast over ``like``'s ``(K, ...)``."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def _assign(target: Tensor, new: Tensor, keep: Tensor) -> None:
    """``target = new`` for the members ``keep`` marks, in place; the others keep their values bit for bit."""
    with torch.no_grad():
        target.copy_(torch.where(_lead(keep, target), new, target))
