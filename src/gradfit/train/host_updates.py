"""torch.optim's updates of a few parameters in Python floats: SGD (momentum, dampening, Nesterov) and Adam.

Each update is the single-tensor code path of torch.optim (what the CPU takes) written out entry by entry with
the rounding of :mod:`gradfit.train.host_arith`, for the settings where that path is plain arithmetic; an
optimizer with any other setting (weight decay, maximize, amsgrad, foreach or fused kernels, tensor learning
rates) gets no host update, and its fit steps one at a time. The optimizer's state travels as flat lists of the
free entries: read from ``optimizer.state`` at a block's start (:meth:`read`), written back at its end
(:meth:`write`).
"""

from __future__ import annotations

import math

import torch

from gradfit.train.host_arith import Arith

__all__ = ["AdamUpdate", "SGDUpdate", "flat_entries", "host_update", "plain_group", "split_entries"]


def host_update(optimizer: torch.optim.Optimizer, arith: list[Arith]):
    """The host update for ``optimizer`` over free entries of arithmetic ``arith``, or None."""
    if len(optimizer.param_groups) != 1:
        return None
    if type(optimizer) is torch.optim.SGD:
        return SGDUpdate(optimizer, arith)
    if type(optimizer) is torch.optim.Adam and all(a.adam for a in arith):
        return AdamUpdate(optimizer, arith)
    return None


def plain_group(group: dict) -> bool:
    """Whether torch.optim's update over ``group`` is plain arithmetic on the CPU (the single-tensor path): no
    weight decay or maximize, no foreach, fused or differentiable kernel, a float learning rate."""
    return (
        group["weight_decay"] == 0
        and not group["maximize"]
        and not group["foreach"]
        and not group["fused"]
        and not group["differentiable"]
        and type(group["lr"]) is float
    )


def split_entries(flat: list, leaves: list[torch.Tensor]) -> list[list]:
    """``flat`` (the free entries, in ``leaves`` order) cut into one list per leaf: :func:`flat_entries` undone."""
    out, at = [], 0
    for p in leaves:
        out.append(flat[at : at + p.numel()])
        at += p.numel()
    return out


def flat_entries(tensors) -> list[float]:
    """Every entry of ``tensors``, in order and row-major within each, as Python floats (exact: float64 widens)."""
    return [v for t in tensors for v in t.reshape(-1).tolist()]


class SGDUpdate:
    """``torch.optim.sgd._single_tensor_sgd`` without weight decay; its state is the momentum buffers (or None)."""

    def __init__(self, optimizer: torch.optim.SGD, arith: list[Arith]):
        self.optimizer, self.arith, self.group = optimizer, arith, optimizer.param_groups[0]

    def ready(self) -> bool:
        return plain_group(self.group)

    def read(self, leaves: list[torch.Tensor]):
        bufs = [self.optimizer.state[p].get("momentum_buffer") if p in self.optimizer.state else None for p in leaves]
        return None if any(b is None for b in bufs) else flat_entries(bufs)

    def write(self, leaves: list[torch.Tensor], bufs) -> None:
        if bufs is None:
            return
        for p, values in zip(leaves, split_entries(bufs, leaves)):
            self.optimizer.state[p]["momentum_buffer"] = torch.tensor(values, dtype=p.dtype).reshape(p.shape)

    def step(self, theta: list[float], grads: list[float], lr: float, bufs):
        """The new entries and buffers (OverflowError where a scalar leaves the dtype's range)."""
        group, arith = self.group, self.arith
        momentum = group["momentum"]
        alphas = [a.rnd(-lr) for a in arith]
        if momentum != 0:
            m = [a.rnd(momentum) for a in arith]
            damp = [a.rnd(1 - group["dampening"]) for a in arith]
            if bufs is None:
                bufs = list(grads)  # the first momentum step: the buffer is the gradient
            else:
                bufs = [a.axpy(a.mul(b, mi), di, g) for a, b, mi, di, g in zip(arith, bufs, m, damp, grads)]
            moves = [a.axpy(g, mi, b) for a, g, mi, b in zip(arith, grads, m, bufs)] if group["nesterov"] else bufs
        else:
            moves = grads
        new = [a.axpy(p, al, d) for a, p, al, d in zip(arith, theta, alphas, moves)]
        return new, bufs


class AdamUpdate:
    """``torch.optim.adam._single_tensor_adam`` without weight decay or amsgrad. Its state is ``(step, exp_avg,
    exp_avg_sq)`` and is read only once the optimizer has one (the loop's own first step makes it)."""

    def __init__(self, optimizer: torch.optim.Adam, arith: list[Arith]):
        self.optimizer, self.arith, self.group = optimizer, arith, optimizer.param_groups[0]
        self.step_float64 = False

    def ready(self) -> bool:
        group = self.group
        beta1, beta2 = group["betas"]
        return (
            plain_group(group)
            and not group["amsgrad"]
            and not group["capturable"]
            and not group.get("decoupled_weight_decay", False)
            and type(beta1) is float
            and type(beta2) is float
            and type(group["eps"]) is float
            and abs(1 - beta1) < 0.5  # lerp's small-weight form
        )

    def read(self, leaves: list[torch.Tensor]):
        states = [self.optimizer.state.get(p) or {} for p in leaves]
        if not all({"step", "exp_avg", "exp_avg_sq"} <= s.keys() for s in states):
            return None  # before the first step
        steps = {float(s["step"]) for s in states}
        dtypes = {s["step"].dtype for s in states}
        if len(steps) != 1 or len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
            return None
        self.step_float64 = dtypes == {torch.float64}  # the counter's dtype (torch's default dtype's)
        return steps.pop(), flat_entries(s["exp_avg"] for s in states), flat_entries(s["exp_avg_sq"] for s in states)

    def write(self, leaves: list[torch.Tensor], state) -> None:
        step, m, v = state
        for p, ms, vs in zip(leaves, split_entries(m, leaves), split_entries(v, leaves)):
            s = self.optimizer.state[p]
            s["step"].fill_(step)
            s["exp_avg"].copy_(torch.tensor(ms, dtype=p.dtype).reshape(p.shape))
            s["exp_avg_sq"].copy_(torch.tensor(vs, dtype=p.dtype).reshape(p.shape))

    def step(self, theta: list[float], grads: list[float], lr: float, state):
        """The new entries and state (None before the optimizer has a state; OverflowError as SGD's)."""
        if state is None:
            return None
        group, arith = self.group, self.arith
        step, m, v = state
        step = step + 1.0 if self.step_float64 else _round32_step(step)
        beta1, beta2 = group["betas"]
        w1 = [a.rnd(1 - beta1) for a in arith]
        b2 = [a.rnd(beta2) for a in arith]
        c2 = [a.rnd(1 - beta2) for a in arith]
        # exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m = [a.axpy(mi, w, a.rnd(g - mi)) for a, mi, w, g in zip(arith, m, w1, grads)]
        v = [a.axpy(a.mul(vi, b), a.mul(c, g), g) for a, vi, b, c, g in zip(arith, v, b2, c2, grads)]
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        root2 = bias_correction2**0.5
        roots = _torch_sqrt(v, arith)
        denoms = [a.rnd(a.rnd(r / a.rnd(root2)) + a.rnd(group["eps"])) for a, r in zip(arith, roots)]
        # param.addcdiv_(exp_avg, denom, value=-step_size): p + (value * exp_avg) / denom
        new = [a.rnd(p + a.rnd(a.mul(a.rnd(-step_size), mi) / d)) for a, p, mi, d in zip(arith, theta, m, denoms)]
        return new, (step, m, v)


def _round32_step(step: float) -> float:
    """``step_t += 1`` on a float32 step counter (exact below 2**24, where it stops counting)."""
    return float(torch.tensor(step, dtype=torch.float32).add_(1).item()) if step >= 2**24 else step + 1.0


def _torch_sqrt(values: list[float], arith: list[Arith]) -> list[float]:
    """torch's square roots (its CPU kernels are not math.sqrt's, correctly rounded, bit for bit), one call."""
    if all(math.isfinite(x) and x >= 0 for x in values) and len({a.dtype for a in arith}) == 1:
        return torch.tensor(values, dtype=arith[0].dtype).sqrt_().tolist()
    return [torch.tensor(x, dtype=a.dtype).sqrt_().item() for x, a in zip(values, arith)]
