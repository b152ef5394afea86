"""The Jacobian of a model's predictions over rows, in rows × parameters memory (never rows × rows).

``torch.autograd.functional.jacobian(f, theta, vectorize=True)`` and ``torch.func.jacrev``
differentiate one output at a time, batched over an identity matrix the size of the output: for
``m`` predictions that is an ``m × m`` matrix (80 GB for 10^5 rows), whatever the number of
parameters. A model's predictions have many rows and few parameters, so the Jacobian is taken
column by column instead, by reverse mode through ``g(v) = Jᵀv`` (linear in ``v``, so the gradient
of ``g·e_j`` with respect to ``v`` is the column ``J e_j``), memory ``m × p``:

1. one backward pass with ``create_graph`` builds ``g``, and one more per parameter gives its
   column. Every pass differentiates a scalar (``f·v``, then ``g_j``): unlike ``torch.func`` and
   forward-mode AD, and unlike an explicit ``grad_outputs`` tensor (checked with ``torch.fx``'s
   symbolic shapes), it imports neither ``torch._dynamo`` nor sympy, most of a command-line fit's
   start-up beyond ``import torch``;
2. for a model that cannot be differentiated twice: plain autograd, one backward pass per
   output, memory ``m × p``.

Callers still take it over chunks of rows so that ``m × p`` stays small.

Examples
--------
>>> x = torch.linspace(0, 1, 5, dtype=torch.float64)
>>> row_jacobian(lambda t: t[0] * x + t[1], torch.ones(2, dtype=torch.float64))[:, 0].tolist()
[0.0, 0.25, 0.5, 0.75, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["row_jacobian", "row_values_and_jacobian", "values_and_jacobian"]


def row_jacobian(f: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """``d f(theta) / d theta`` as an ``(m, p)`` tensor, ``m`` the number of values ``f`` returns (flattened).

    Parameters
    ----------
    f : callable
        ``(p,)`` tensor -> tensor of any shape (the predictions of some rows).
    theta : Tensor
        The point, shape ``(p,)``.
    """
    return row_values_and_jacobian(f, theta)[1]


def row_values_and_jacobian(f: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(theta) flattened, d f / d theta)``, both detached, as :func:`row_jacobian` takes the Jacobian: the values
    come from the pass that builds the Jacobian (no second forward pass), except in the fallback for a model that
    cannot be differentiated twice."""
    try:
        return values_and_jacobian(f, theta)
    except (RuntimeError, NotImplementedError, TypeError):
        pass
    with torch.no_grad():
        values = f(theta.detach()).reshape(-1)
    return values, torch.autograd.functional.jacobian(lambda t: f(t).reshape(-1), theta)  # one output at a time


def values_and_jacobian(f: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(theta), J)``, both detached: the values flattened to ``(m,)`` and ``J = d f / d theta`` of shape
    ``(m, p)``, by ``p`` double-backward products (see the module); zeros where ``f`` does not depend on ``theta``.

    Levenberg-Marquardt takes its residuals and their Jacobian from one call (:mod:`gradfit.optim.lm`).
    """
    with torch.enable_grad():
        q = theta.detach().clone().requires_grad_(True)
        r = f(q).reshape(-1)
        # Any v gives the columns (g is linear in it); one without zeros makes g's value Jᵀv, the first-order check.
        v = torch.linspace(1.0, 2.0, r.numel(), dtype=r.dtype, device=r.device).requires_grad_(True)
        g = torch.autograd.grad((r * v).sum(), q, create_graph=True, allow_unused=True)[0] if r.requires_grad else None
        if g is None or (not g.requires_grad and not bool((g != 0).any())):  # values that do not depend on theta
            return r.detach(), torch.zeros(r.numel(), theta.numel(), dtype=r.dtype, device=r.device)
        if not g.requires_grad:
            raise RuntimeError("The model's derivative cannot be differentiated again (its graph is cut).")
        cols = [torch.autograd.grad(g[j], v, retain_graph=True, allow_unused=True)[0] for j in range(theta.numel())]
    cols = [torch.zeros_like(r) if c is None else c for c in cols]
    J = torch.stack(cols, dim=1).detach()
    _check_columns(J, v.detach(), g.detach())
    return r.detach(), J


def _check_columns(J: Tensor, v: Tensor, g: Tensor) -> None:
    """Raise RuntimeError when ``Jᵀv`` is not the first-order gradient ``g``: an operation whose backward pass is not
    itself differentiable (a custom ``autograd.Function`` computing it outside autograd, ``once_differentiable``)
    leaves its columns zero without an error, and the caller's fallback must take over. Rounding is far below the
    tolerance; a missing column is missed only where its gradient is exactly 0 (non-finite entries are left be)."""
    with torch.no_grad():
        Jd, vd, gd = J.double(), v.double(), g.double()
        err = (Jd.T @ vd - gd).abs()
        tol = 1e-8 if J.dtype == torch.float64 else 1e-2
        if bool((err > tol * (Jd.abs().T @ vd)).any()):
            raise RuntimeError("The model's derivative cannot be differentiated again (a column came out wrong).")
