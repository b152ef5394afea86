"""The objective: mean loss over rows, and its gradient, evaluated in chunks.

Rows are processed ``chunk_size`` at a time and the per-chunk sums of the loss and of its
gradient are accumulated in float64. That keeps float32 fits on millions of rows as accurate
as float64 ones (a plain float32 ``mean`` followed by ``backward`` accumulates 10^7 terms in
float32 inside the matrix products and drifts; see tests/train/test_accuracy.py) and bounds
the memory of the autograd graph to one chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


class Objective:
    """``loss(model(params, x), y)`` averaged over rows.

    Parameters
    ----------
    model : gradfit.models.base.Model
    loss : gradfit.losses.Loss
        Must provide ``total(pred, target)``, the sum over rows.
    chunk_size : int
        Rows per chunk; 65,536 keeps float32 sums accurate to ~1e-7 and is faster than one pass.
    """

    def __init__(self, model, loss, chunk_size: int = 65536):
        self.model = model
        self.loss = loss
        self.chunk_size = int(chunk_size)

    def _chunks(self, x: Tensor, y: Tensor):
        n = x.shape[0]
        for start in range(0, n, self.chunk_size):
            yield x[start : start + self.chunk_size], y[start : start + self.chunk_size]

    @torch.no_grad()
    def value(self, params: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """The mean loss as a float64 scalar tensor."""
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for xc, yc in self._chunks(x, y):
            total += self.loss.total(self.model(params, xc), yc).double()
        return total / x.shape[0]

    def value_and_grad(
        self, params: Mapping[str, Tensor], trainable: Sequence[str], x: Tensor, y: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """The mean loss (float64 scalar) and its gradient w.r.t. ``trainable`` (each in its parameter's dtype)."""
        n = x.shape[0]
        leaves = [params[name] for name in trainable]
        if n <= self.chunk_size:
            # One chunk: differentiate the mean directly, exactly as a hand-written loop does.
            with torch.enable_grad():
                mean = self.loss.total(self.model(params, x), y) / n
                grads = _grad(mean, leaves)
            return mean.detach().double(), grads
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        acc = [torch.zeros_like(p, dtype=torch.float64) for p in leaves]
        for xc, yc in self._chunks(x, y):
            with torch.enable_grad():
                part = self.loss.total(self.model(params, xc), yc)
                grads = _grad(part, leaves)
            total += part.detach().double()
            for a, g in zip(acc, grads):
                a += g.double()
        return total / n, [(a / n).to(p.dtype) for a, p in zip(acc, leaves)]


def _grad(value: Tensor, leaves: list[Tensor]) -> list[Tensor]:
    if not leaves:
        return []
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)]
