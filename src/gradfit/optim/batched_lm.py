"""Levenberg-Marquardt on many small independent least-squares problems at once (one per group of rows).

Every group ``g`` has its own parameters ``p[g]`` (a row of a ``(G, k)`` float64 tensor), residuals ``r[g]``
(``m`` of them, padded: a group with fewer rows has weight 0 on the rest, so they add nothing to ``JᵀJ``, ``Jᵀr``
or the sum of squares) and Jacobian. One call of the evaluator gives all the active groups' residuals and
Jacobian columns, ``(A, m)`` and ``(A, k, m)``; the ``k × k`` algebra is batched: ``H = JᵀJ`` is one batched
matrix product, and the damped system ``(H + λ D²) δ = -Jᵀr`` one batched Cholesky factorisation
(``torch.linalg.cholesky_ex``, whose ``info`` says which groups failed, without raising) and solve.

The rules are those of the one-fit solver (:mod:`gradfit.optim.lm`), per group: Marquardt's scaling ``D`` (the
largest column norms of ``J`` seen so far), a step accepted when its gain ratio (actual over predicted reduction
of the sum of squares) is at least 1e-4, and MINPACK's tests ``ftol`` (actual and predicted relative reductions
both below it), ``xtol`` (the scaled step below ``xtol·||D p||``) and ``gtol`` (the largest |cosine| between the
residuals and a column of ``J`` below it). The damping follows Nielsen's rule (λ shrinks by up to 3 after a good
step, grows by 2, 4, 8... after rejected ones) instead of MINPACK's trust-radius search, which would take several
factorisations per trial: the iterates differ from the one-fit solver's, the minimum found does not (to the
tolerances). One evaluation per iteration: each trial's Jacobian is taken with its residuals, and reused as the
next iteration's when the trial is accepted (most are).

A group that converges or fails is frozen: nothing later reads or writes its entries, and every batched operation
works on each group's own rows and matrices, so one group's failure changes no other group's numbers, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradfit.optim.lm import EPS, TESTS, LMOptions

# (p (A, k) float64, groups (A,) int64: which groups those rows are) -> (residuals (A, m), Jacobian columns (A, k, m)),
# the residuals and columns already multiplied by the square roots of the row weights (0 on padded rows).
Evaluate = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]

# Per-group status codes, and their names in the result table.
RUNNING, CONVERGED, MAX_ITERATIONS, SINGULAR, DIVERGED, TOO_FEW_ROWS, STALLED = range(7)
STATUS = ("running", "converged", "max_iterations", "singular", "diverged", "too_few_rows", "stalled")
# The convergence test that fired (0: none).
TEST_NAMES = ("", "ftol", "xtol", "gtol")

# Below this smallest pivot of the Cholesky factor of the column-scaled JᵀJ (whose diagonal is 1), the parameters
# are not determined by the rows (cond(JᵀJ) above about 1e12: its inverse has no correct digit left to trust).
SINGULAR_PIVOT = 1e-6
_LAMBDA0 = 1e-3  # the first damping, relative to D² (Marquardt's scaling)
_RETRIES = 8  # factorisations of a failed damped system, each with λ ten times larger, before "singular"


@dataclass(frozen=True)
class BatchedOptions:
    """Tolerances (those of :class:`gradfit.optim.lm.LMOptions`, the same defaults), the iteration budget (each
    iteration is one trial step, accepted or not) and the bound on successive rejected trials ("stalled")."""

    ftol: float = LMOptions.ftol
    xtol: float = LMOptions.xtol
    gtol: float = LMOptions.gtol
    max_iterations: int = 200
    max_rejections: int = LMOptions.max_rejections

    def messages(self, status: np.ndarray, test: np.ndarray) -> np.ndarray:
        """One message per group (see :func:`status_messages`)."""
        return status_messages(status, test, self)

    def describe(self) -> dict:
        """What a grouped fit's result says of its solver."""
        return {"optimizer": "lm", "max_iterations": self.max_iterations}


@dataclass(frozen=True)
class BatchedResult:
    """What :func:`solve` found per group: ``params (G, k)``, ``sum_squares (G,)``, ``iterations (G,)``, ``status``
    and ``test`` codes ``(G,)`` (see :data:`STATUS`, :data:`TEST_NAMES`), ``cov (G, k, k)`` and ``stderr (G, k)``
    (curve_fit's: ``s² (JᵀJ)⁻¹`` with ``s² = SSR/(n-k)``, or ``(JᵀJ)⁻¹`` with ``absolute_sigma``; inf when
    ``n == k``, NaN where undefined)."""

    params: Tensor
    sum_squares: Tensor
    iterations: Tensor
    status: Tensor
    test: Tensor
    cov: Tensor
    stderr: Tensor

    def messages(self, options: BatchedOptions) -> np.ndarray:
        """One message per group (see :func:`status_messages`)."""
        return status_messages(self.status.cpu().numpy(), self.test.cpu().numpy(), options)


def status_messages(status: np.ndarray, test: np.ndarray, options: BatchedOptions) -> np.ndarray:
    """One message per group from its status and test codes, read from a table indexed by the codes (no Python per
    group)."""
    table = {
        (CONVERGED, 1): TESTS["ftol"].format(ftol=options.ftol),
        (CONVERGED, 2): TESTS["xtol"].format(xtol=options.xtol),
        (CONVERGED, 3): TESTS["gtol"].format(gtol=options.gtol),
        (MAX_ITERATIONS, 0): f"stopped after max_iterations={options.max_iterations} before a test held",
        (SINGULAR, 0): "JᵀJ is singular: the group's rows do not determine every parameter, so its standard "
        "errors are undefined (NaN)",
        (DIVERGED, 0): "the residuals or their Jacobian are not finite (at the start or at the accepted point)",
        (TOO_FEW_ROWS, 0): "fewer rows than parameters (rows of weight 0 not counted): the group was not fitted",
        (STALLED, 0): f"no step reduced the sum of squares in {options.max_rejections} tries in a row",
    }
    codes = status.astype(np.int64) * 4 + test.astype(np.int64)
    lookup = np.array([table.get((c // 4, c % 4), "") for c in range(4 * len(STATUS))], dtype=object)
    return lookup[codes]


def solve(
    evaluate: Evaluate,
    p0: Tensor,
    n_rows: Tensor,
    options: BatchedOptions = BatchedOptions(),
    absolute_sigma: bool = False,
    lower: Tensor | None = None,
    upper: Tensor | None = None,
) -> BatchedResult:
    """Fit every group from ``p0 (G, k)``; ``n_rows (G,)`` is each group's count of real rows.

    ``lower``/``upper`` (``(k,)``, shared by the groups, ``-inf``/``inf`` where unbounded) are honoured as the
    one-fit solver does, by projection: an entry on a bound whose gradient points out of the box is held (its row
    and column leave the damped system), each trial is clipped into the box, and the predicted reduction is then the
    linear model's along the clipped step. The starts must lie within them.

    Examples
    --------
    >>> x = torch.linspace(0, 3, 20, dtype=torch.float64).expand(2, 20)
    >>> y = torch.stack([2 * torch.exp(-0.5 * x[0]), 3 * torch.exp(-1.5 * x[1])])
    >>> def evaluate(p, groups):
    ...     e = torch.exp(-p[:, 1:2] * x[groups])
    ...     return p[:, :1] * e - y[groups], torch.stack([e, -x[groups] * p[:, :1] * e], dim=1)
    >>> out = solve(evaluate, torch.ones(2, 2, dtype=torch.float64), torch.tensor([20, 20]))
    >>> [[round(v, 6) for v in row] for row in out.params.tolist()], [STATUS[s] for s in out.status.tolist()]
    ([[2.0, 0.5], [3.0, 1.5]], ['converged', 'converged'])
    """
    state = _State(p0, n_rows)
    if lower is not None or upper is not None:
        k = p0.shape[1]
        state.box = (
            torch.full((k,), -math.inf, dtype=torch.float64) if lower is None else lower.double(),
            torch.full((k,), math.inf, dtype=torch.float64) if upper is None else upper.double(),
        )
        state.box = (state.box[0].to(p0.device), state.box[1].to(p0.device))
    active = state.running()
    if len(active):
        r, J = evaluate(state.p[active], active)
        state.take(active, r, J)
        state.stop(active[~(state.ss[active].isfinite() & state.H[active].isfinite().flatten(1).all(1))], DIVERGED)
    while len(active := state.running()):
        _iterate(state, evaluate, active, options)
    return state.result(absolute_sigma)


def finish(
    evaluate: Evaluate,
    p: Tensor,
    n_rows: Tensor,
    status: Tensor,
    test: Tensor,
    iterations: Tensor,
    absolute_sigma: bool = False,
) -> BatchedResult:
    """The result of groups fitted by other means (gradient descent, :mod:`gradfit.train.grouped_descent`) at ``p``
    with their ``status``: each group's sum of squares there and curve_fit's covariance from its ``JᵀJ``, as
    :func:`solve` ends (a fitted group whose ``JᵀJ`` is singular is marked so)."""
    state = _State(p, n_rows)
    state.status.copy_(status)
    state.test.copy_(test)
    state.iterations.copy_(iterations)
    groups = (state.status != TOO_FEW_ROWS).nonzero().flatten()
    if len(groups):
        r, J = evaluate(state.p[groups], groups)
        state.take(groups, r, J)
    return state.result(absolute_sigma)


class _State:
    """Every group's iterate, sums at it, damping and status; only the running groups' entries ever change."""

    def __init__(self, p0: Tensor, n_rows: Tensor):
        G, k = p0.shape
        dev = p0.device
        self.p = p0.detach().to(torch.float64).clone()
        self.n = n_rows.to(device=dev, dtype=torch.float64)
        self.ss = torch.full((G,), math.nan, dtype=torch.float64, device=dev)
        self.H = torch.zeros(G, k, k, dtype=torch.float64, device=dev)
        self.g = torch.zeros(G, k, dtype=torch.float64, device=dev)
        self.D = torch.zeros(G, k, dtype=torch.float64, device=dev)
        self.lam = torch.full((G,), _LAMBDA0, dtype=torch.float64, device=dev)
        self.nu = torch.full((G,), 2.0, dtype=torch.float64, device=dev)
        self.status = torch.zeros(G, dtype=torch.int8, device=dev)
        self.test = torch.zeros(G, dtype=torch.int8, device=dev)
        self.iterations = torch.zeros(G, dtype=torch.int64, device=dev)
        self.rejected = torch.zeros(G, dtype=torch.int64, device=dev)
        self.status[self.n < k] = TOO_FEW_ROWS
        self.box: tuple[Tensor, Tensor] | None = None  # lower and upper bounds (k,), shared by every group

    def running(self) -> Tensor:
        return (self.status == RUNNING).nonzero().flatten()

    def take(self, groups: Tensor, r: Tensor, J: Tensor) -> None:
        """Keep ``JᵀJ``, ``Jᵀr`` and ``||r||²`` of the groups' current points."""
        r, J = r.to(torch.float64), J.to(torch.float64)
        self.ss[groups] = r.square().sum(1)
        self.H[groups] = J @ J.transpose(1, 2)
        self.g[groups] = (J @ r.unsqueeze(2)).squeeze(2)

    def stop(self, groups: Tensor, status: int, test: Tensor | int = 0) -> None:
        if len(groups):
            self.status[groups] = status
            self.test[groups] = test if isinstance(test, int) else test.to(torch.int8)

    def result(self, absolute_sigma: bool) -> BatchedResult:
        cov, stderr = _covariance(self, absolute_sigma)
        return BatchedResult(self.p, self.ss, self.iterations, self.status, self.test, cov, stderr)


def _iterate(state: _State, evaluate: Evaluate, active: Tensor, options: BatchedOptions) -> None:
    """One trial step for every running group: the gtol test, the damped solve, the trial's residuals and Jacobian,
    its acceptance, the damping's update and the ftol/xtol tests.

    When every group runs (or every one goes on), the state's tensors are used and written whole instead of
    gathered and scattered: the same numbers, without the copies (on large chunks they cost as much as the algebra).
    """
    full = len(active) == len(state.p)
    H, g, ss, p, D0 = (t if full else t[active] for t in (state.H, state.g, state.ss, state.p, state.D))
    cnorm = torch.diagonal(H, dim1=1, dim2=2).clamp_min(0).sqrt()
    D = torch.maximum(D0, cnorm)
    D = torch.where(D > 0, D, torch.ones_like(D))
    _put(state.D, active, D, full)
    fnorm = ss.sqrt()
    g_free = g
    if state.box is not None:  # held: on a bound, the gradient pointing out of the box
        held = ((p <= state.box[0]) & (g > 0)) | ((p >= state.box[1]) & (g < 0))
        g_free = torch.where(held, 0.0, g)
    cos = torch.nan_to_num(g_free.abs() / (cnorm * fnorm.unsqueeze(1)), nan=0.0, posinf=math.inf)
    flat = (cos.amax(1) <= options.gtol) | (fnorm == 0)
    lam = state.lam if full else state.lam[active]
    if bool(flat.any()):
        state.stop(active[flat], CONVERGED, 3)
        keep = ~flat
        active, H, g, g_free, ss, p, D, fnorm, lam = (t[keep] for t in (active, H, g, g_free, ss, p, D, fnorm, lam))
        full = False
        if not len(active):
            return
    step, lam, solved = _damped_step(_held_out(H, g_free, g) if state.box is not None else H, g_free, D, lam)
    if not bool(solved.all()):
        state.stop(active[~solved], SINGULAR)
        active, H, g, ss, p, D, fnorm, step, lam = (t[solved] for t in (active, H, g, ss, p, D, fnorm, step, lam))
        full = False
        if not len(active):
            return
    trial, clipped = p + step, None
    if state.box is not None:
        moved = trial
        trial = torch.minimum(torch.maximum(moved, state.box[0]), state.box[1])
        clipped = (trial != moved).any(1)
        step = torch.where(clipped.unsqueeze(1), trial - p, step)
    r, J = evaluate(trial, active)
    r, J = r.to(torch.float64), J.to(torch.float64)
    ss_new = r.square().sum(1)
    finite = ss_new.isfinite()
    actred = torch.where(finite & (0.1 * ss_new.sqrt() < fnorm), 1 - ss_new / ss, torch.full_like(ss, -1.0))
    Hs = (H @ step.unsqueeze(2)).squeeze(2)
    Ds = D * step
    prered = ((step * Hs).sum(1) + 2 * lam * Ds.square().sum(1)) / ss
    if clipped is not None:  # the linear model's reduction along a clipped step
        prered = torch.where(clipped, -(2 * (step * g).sum(1) + (step * Hs).sum(1)) / ss, prered)
    ratio = torch.where(prered != 0, actred / prered, torch.zeros_like(prered))
    accepted = ratio >= 1e-4
    _damping(state, active, accepted, ratio, lam, full)
    H_new, g_new = J @ J.transpose(1, 2), (J @ r.unsqueeze(2)).squeeze(2)  # every trial's: no copy of J
    Dp = D * torch.where(accepted[:, None], trial, p)  # before p, a view of the state when full, is written
    if full and bool(accepted.all()):
        state.p.copy_(trial)
        state.ss.copy_(ss_new)
        state.H.copy_(H_new)
        state.g.copy_(g_new)
    else:
        moved = active[accepted]
        state.p[moved] = trial[accepted]
        state.ss[moved] = ss_new[accepted]
        state.H[moved] = H_new[accepted]
        state.g[moved] = g_new[accepted]
    finite_H = H_new.isfinite().flatten(1).all(1)
    _tests(state, active, accepted, actred, prered, ratio, Ds, Dp, finite_H, options)


def _held_out(H: Tensor, g_free: Tensor, g: Tensor) -> Tensor:
    """``H`` with the held entries' rows and columns replaced by the identity's, so their step is 0."""
    held = (g_free == 0) & (g != 0)
    out = H.masked_fill(held.unsqueeze(1) | held.unsqueeze(2), 0.0)
    return out + torch.diag_embed(held.to(H.dtype))


def _put(t: Tensor, index: Tensor, value: Tensor, full: bool) -> None:
    if full:
        t.copy_(value)
    else:
        t[index] = value


def _damping(state: _State, active: Tensor, accepted: Tensor, ratio: Tensor, lam: Tensor, full: bool) -> None:
    """Nielsen's damping: shrink λ by up to 3 after a good step, double it (then 4x, 8x...) after each rejected one;
    count the iterations and the rejections in a row."""
    nu = state.nu if full else state.nu[active]
    shrink = torch.clamp_min(1 - (2 * ratio - 1) ** 3, 1 / 3)
    _put(state.lam, active, torch.where(accepted, lam * shrink, lam * nu), full)
    _put(state.nu, active, torch.where(accepted, torch.full_like(nu, 2.0), nu * 2), full)
    rejected = state.rejected if full else state.rejected[active]
    _put(state.rejected, active, torch.where(accepted, 0, rejected + 1), full)
    if full:
        state.iterations += 1
    else:
        state.iterations[active] += 1


def _tests(state: _State, active, accepted, actred, prered, ratio, Ds, Dp, finite_H, options: BatchedOptions) -> None:
    """MINPACK's convergence tests on each trial, then the budget, the stall bound and a non-finite Jacobian."""
    pnorm, xnorm = Ds.norm(dim=1), Dp.norm(dim=1)
    small = (0.5 * ratio <= 1) & (actred.abs() <= options.ftol) & (prered <= options.ftol)
    tiny = (0.5 * ratio <= 1) & (actred.abs() <= EPS) & (prered <= EPS)  # below what float64 resolves
    ftol = small | tiny
    xtol = ~ftol & ((pnorm <= options.xtol * xnorm) | (pnorm <= EPS * xnorm))
    test = torch.where(ftol, 1, torch.where(xtol, 2, 0))
    done = test > 0
    state.stop(active[done], CONVERGED, test[done])
    bad = ~done & accepted & ~finite_H
    state.stop(active[bad], DIVERGED)
    left = ~done & ~bad
    state.stop(active[left & (state.iterations[active] >= options.max_iterations)], MAX_ITERATIONS)
    state.stop(active[left & (state.rejected[active] >= options.max_rejections)], STALLED)


def _damped_step(H: Tensor, g: Tensor, D: Tensor, lam: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``δ`` solving ``(H + λ D²) δ = -g`` per group by a batched Cholesky factorisation; a group whose factorisation
    fails (``info > 0``) is tried again with λ ten times larger, up to :data:`_RETRIES` times. Returns
    ``(δ, λ used, solved)``."""
    step = torch.zeros_like(g)
    solved = torch.zeros(len(g), dtype=torch.bool, device=g.device)
    todo = torch.arange(len(g), device=g.device)
    D2 = D.square()
    for _ in range(_RETRIES + 1):
        M = H[todo] + torch.diag_embed(lam[todo].unsqueeze(1) * D2[todo])
        L, info = torch.linalg.cholesky_ex(M)
        ok = (info == 0) & torch.diagonal(L, dim1=1, dim2=2).isfinite().all(1)
        done = todo[ok]
        step[done] = torch.cholesky_solve(-g[done].unsqueeze(2), L[ok]).squeeze(2)
        solved[done] = True
        todo = todo[~ok]
        if not len(todo):
            break
        lam = lam.clone()
        lam[todo] = lam[todo] * 10
    solved &= step.isfinite().all(1)
    return step, lam, solved


def _covariance(state: _State, absolute_sigma: bool) -> tuple[Tensor, Tensor]:
    """curve_fit's covariance per group at the final point, from ``JᵀJ`` scaled to unit diagonal and factorised;
    a group whose factor has a pivot below :data:`SINGULAR_PIVOT` is marked singular (NaN errors)."""
    G, k = state.p.shape
    cov = torch.full((G, k, k), math.nan, dtype=torch.float64, device=state.p.device)
    fitted = ((state.status == CONVERGED) | (state.status == MAX_ITERATIONS) | (state.status == STALLED)).nonzero()
    fitted = fitted.flatten()
    if len(fitted):
        H = state.H[fitted]
        d = torch.diagonal(H, dim1=1, dim2=2).clamp_min(0).sqrt()
        scale = d.unsqueeze(2) * d.unsqueeze(1)
        eye = torch.eye(k, dtype=H.dtype, device=H.device)
        L, info = torch.linalg.cholesky_ex(torch.where(scale > 0, H / scale, eye))
        pivots = torch.diagonal(L, dim1=1, dim2=2)
        ok = (info == 0) & (d > 0).all(1) & (pivots.amin(1) > SINGULAR_PIVOT)
        inv = torch.cholesky_inverse(L[ok]) / scale[ok]
        n, ssr = state.n[fitted[ok]], state.ss[fitted[ok]]
        if not absolute_sigma:
            dof = n - k
            s2 = torch.where(dof > 0, ssr / dof.clamp_min(1), torch.full_like(ssr, math.inf))
            inv = inv * s2[:, None, None]
        cov[fitted[ok]] = inv
        state.stop(fitted[~ok], SINGULAR)
    stderr = torch.diagonal(cov, dim1=1, dim2=2).sqrt()
    return cov, stderr
