"""Levenberg-Marquardt for least squares, after MINPACK's ``lmder`` (Moré 1978), in torch.

Minimise ``||r(p)||²`` for residuals ``r`` (prediction minus target, one per row; times ``sqrt(wᵢ)`` for
row weights ``w``, so the sum of squares is ``Σ wᵢ rᵢ²``, the chi-square for ``w = 1/sigma²``). Each iteration
takes the Jacobian ``J`` of ``r`` once, then tries steps ``δ`` solving the damped problem
``min ||J δ + r||² + λ ||D δ||²`` until one reduces the sum of squares; the damping ``λ`` is set,
as in MINPACK, so that the scaled step ``||D δ||`` fits a trust radius ``Δ`` that grows after a
good step and shrinks after a bad one (gain ratio ρ = actual / predicted reduction; a step is
accepted when ρ >= 1e-4). ``D`` holds the column norms of ``J`` (``D² = diag(JᵀJ)``, Marquardt's
scaling), each the largest seen so far, so the method does not care about the parameters' units.
The trust-region form reproduces MINPACK's iterates, hence ``scipy.optimize.least_squares(...,
method="lm", x_scale="jac")``'s, and so needs no more Jacobians than it does.

Rows are processed in chunks: the Jacobian of each chunk is folded into a running QR
factorisation of ``[J | r]``, so memory is bounded by one chunk and the ``k × k`` factor ``R``
(``RᵀR = JᵀJ``, with ``Qᵀr`` beside it) keeps the condition number of ``J`` instead of squaring it
as the normal equations ``JᵀJ δ = -Jᵀr`` would. Every damped solve is a small least-squares
problem on ``[R; √λ D]``, never singular for λ > 0 (the minimum-norm solution at λ = 0).

Bounds are honoured by projection: an entry on a bound whose gradient points out of the box is
held (its column is left out of the step), and each trial point is clipped into the box; the
predicted reduction is then that of the clipped step.

Stopping tests (MINPACK's): ``ftol`` when the actual and predicted relative reductions of the sum
of squares are both below it; ``xtol`` when the trust radius is below ``xtol·||D p||``; ``gtol`` when
the largest |cosine| between the residuals and a column of J is below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradfit.errors import ConfigError
from gradfit.jacobian import row_values_and_jacobian
from gradfit.rowpass import Chunk, MemoryRows, RowSet, RowSource, across, add_across, chunk_rows, reduce, rows_of

EPS = float(np.finfo(np.float64).eps)
DWARF = float(np.finfo(np.float64).tiny)
TESTS = {
    "ftol": "the relative reduction of the sum of squares (actual and predicted) fell below ftol={ftol:g}",
    "xtol": "the relative change of the parameters fell below xtol={xtol:g}",
    "gtol": "the residuals became orthogonal to the Jacobian's columns (max |cos| below gtol={gtol:g})",
}

# What LevenbergMarquardt.state_dict() holds (the checkpoint's "lm" entry).
STATE_KEYS = ("p", "sum_squares", "delta", "lam", "diag", "n_fev", "n_jev")

# A residual function takes the flat parameter vector and one chunk of inputs and targets.
Residuals = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PointSums:
    """The float64 sums of ``[J | r]`` that LM took at one point, kept so the error bars after the fit need no
    second pass over the rows there (:mod:`gradfit.analysis.curvature`).

    ``block`` is ``[J | r]`` itself when the rows were one chunk, else ``gram`` is ``Σ [J | r]ᵀ[J | r]`` over the
    chunks; ``r`` is prediction minus target (times ``sqrt(w)``), ``total`` its sum of squares. ``source`` holds
    what the sums were taken of (the model, ``x``, ``y``, ``w``), compared by identity by whoever reuses them, and
    ``names`` the flat parameters of the columns, at the float64 ``values``. ``jacobian`` says where the columns came
    from (``"formula derivative"`` or ``"autograd"``): a reuse that must give the very bits another pass would, such as
    the flatness probe's column norms, takes them only from the pass it would run itself.
    """

    names: tuple[str, ...]
    values: np.ndarray
    block: Tensor | None
    gram: Tensor | None
    total: float
    source: tuple
    jacobian: str = "autograd"


@dataclass(frozen=True)
class LMOptions:
    """Tolerances of :class:`LevenbergMarquardt` (scipy's ``least_squares`` uses 1e-8 for all three).

    Near a minimum the sum of squares is flat, so parameters settle only to about ``sqrt(ftol)``
    relative on ill-determined problems: ``ftol = 1e-12`` puts NIST's MGH09 within 1e-6 of its
    certified values, where 1e-10 leaves it 1e-5 away. ``xtol`` and ``gtol`` rarely fire first.
    ``factor`` sets the first trust radius, ``factor·||D p0||`` (MINPACK's default, 100);
    ``max_rejections`` bounds the failed trials within one iteration before it reports "stalled".
    """

    ftol: float = 1e-12
    xtol: float = 1e-10
    gtol: float = 1e-12
    factor: float = 100.0
    max_rejections: int = 60


def checked_options(given: Mapping[str, Any], tol: float | None, known: Sequence[str]) -> dict[str, Any]:
    """``optimizer_options`` of a Levenberg-Marquardt fit, checked: each a name of ``known`` and a number > 0, with
    ``tol`` as ``ftol`` unless ``ftol`` is given. ConfigError names what is wrong."""
    options = dict(given)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"Unknown option(s) for Levenberg-Marquardt: {', '.join(map(repr, unknown))}. Known: {', '.join(known)}."
        )
    if tol is not None:
        options.setdefault("ftol", tol)
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"The Levenberg-Marquardt option {key!r} must be a number > 0. Got {value!r} instead.")
    return options


class ChunkedResiduals:
    """Residuals and their Jacobian over all rows, one chunk at a time, in float64 sums.

    The Jacobian of a chunk comes from ``augmented`` when given: ``(p, x, y) -> [J | r]``, the chunk's Jacobian
    with its residuals as a last column, computed in one pass (a formula's derivative graph,
    :mod:`gradfit.train.formula_jacobian`). Otherwise from plain autograd
    (:func:`gradfit.jacobian.row_values_and_jacobian`: one backward pass per parameter through ``g(v) = Jᵀv``, memory
    ``rows × params``, never ``rows²``). Unlike ``torch.func``'s ``jacrev``/``jacfwd`` and forward-mode AD, it
    imports neither ``torch._dynamo`` nor sympy (together most of a command-line fit's start-up beyond
    ``import torch``), and it is faster than ``jacfwd`` from 20 to 65,536 rows.

    With row weights ``w`` (``>= 0``) every residual, and so every row of the Jacobian, is multiplied
    by ``sqrt(wᵢ)``: the weighted least-squares problem is the ordinary one in those residuals.
    """

    def __init__(
        self,
        fn: Residuals,
        x: Tensor | RowSet,
        y: Tensor | None,
        chunk_size: int | None = None,
        w: Tensor | None = None,
        augmented: Residuals | None = None,
    ):
        self.fn, self.x, self.y, self.chunk_size = fn, x, y, chunk_rows(chunk_size)
        self.augmented = augmented
        self._ahead: tuple[tuple, tuple[Tensor | None, Tensor | None, float]] | None = None  # see sum_squares
        self._factored: tuple[tuple, tuple[Tensor | None, Tensor | None, float]] | None = None  # see sums_at
        self.root_w = None if w is None else w.detach().sqrt()
        self.n_fev = 0
        self.n_jev = 0

    @property
    def _one_chunk(self) -> bool:
        return isinstance(self.x, Tensor) and int(self.x.shape[0]) <= self.chunk_size

    def _in_memory(self) -> tuple[Tensor, Tensor]:
        """The rows and targets when they are tensors in memory (one chunk)."""
        assert isinstance(self.x, Tensor) and self.y is not None, "only rows held in memory are one chunk"
        return self.x, self.y

    def rows(self) -> RowSource:
        """The rows and the square roots of their weights, as a :class:`gradfit.rowpass.RowSource` (``x`` may be a
        :class:`gradfit.rowpass.RowSet` carrying its own targets and weights)."""
        if isinstance(self.x, Tensor):
            return MemoryRows(self.x, self.y, self.root_w, self.chunk_size)
        return _RootWeights(rows_of(self.x, chunk_size=self.chunk_size))

    def _weighted(self, root: Tensor | None) -> Residuals:
        if root is None:
            return self.fn
        return lambda q, xs, ys: self.fn(q, xs, ys) * root.to(ys.dtype)

    @torch.no_grad()
    def sum_squares(self, p: Tensor) -> float:
        """``||r(p)||²`` (inf or nan when a residual is not finite).

        With ``augmented``, the residuals come from the pass that also gives the Jacobian: it is taken, and its
        chunks' sums kept for :meth:`factor` at the same point, which follows whenever LM accepts the point (most
        trials), so that point's rows are read once instead of twice.
        """
        self.n_fev += 1
        if self.augmented is not None:
            sums = self._sums(p)
            self._ahead = (_key(p), sums)
            return sums[2]
        if self._one_chunk:  # reduce's float64 sum of one chunk's total is that total: the same number, less overhead
            x, y = self._in_memory()
            return float((self._weighted(self.root_w)(p, x, y).double() ** 2).sum())
        total = reduce(lambda xc, yc, root: (self._weighted(root)(p, xc, yc).double() ** 2).sum(), self.rows())
        return 0.0 if total is None else float(total)

    def _sums(self, p: Tensor) -> tuple[Tensor | None, Tensor | None, float]:
        """``(the block [J | r] of one chunk or None, the float64 sum of [J | r]ᵀ[J | r] over several or None,
        ||r||²)``."""
        if self._one_chunk:
            block, total = self._block(p, *self._in_memory(), self.root_w)
            return block, None, total
        gram: Tensor | None = None
        total = 0.0
        source = self.rows()
        for block, ss in self._blocks(p, source):
            gram = block.T @ block if gram is None else gram + block.T @ block
            total += ss
        if getattr(source, "combine", None) is not None:  # a process's shard: the sums of every process
            assert gram is not None  # every process holds rows
            sums = [gram, torch.tensor(total, dtype=torch.float64)]
            add_across(source, sums)
            gram, total = sums[0], float(sums[1])
        return None, gram, total

    def _blocks(self, p: Tensor, source: RowSource | None = None) -> Iterator[tuple[Tensor, float]]:
        """``([J | r] in float64, ||r||²)`` of each chunk, the residuals weighted."""
        if self._one_chunk:  # the rows themselves: no slices, no row source to build per call
            yield self._block(p, *self._in_memory(), self.root_w)
            return
        for xc, yc, root in (source or self.rows()).chunks():
            assert yc is not None  # self.y is a Tensor, so every chunk has its targets
            yield self._block(p, xc, yc, root)

    def _block(self, p: Tensor, xc: Tensor, yc: Tensor, root: Tensor | None) -> tuple[Tensor, float]:
        if self.augmented is None:
            r, J = row_values_and_jacobian(lambda q: self._weighted(root)(q, xc, yc), p)
            return torch.cat([J, r[:, None]], dim=1).double(), float((r.double() ** 2).sum())
        block = self.augmented(p, xc, yc)
        if root is not None:
            block = block * root.to(block.dtype)[:, None]
        block = block.double()
        return block, float(block[:, -1].square().sum())

    def factor(self, p: Tensor) -> tuple[np.ndarray, np.ndarray, float]:
        """``(R, Qᵀr, ||r||²)`` with ``RᵀR = JᵀJ``, in float64 numpy.

        Over several chunks, ``[J | r]ᵀ[J | r]`` is summed in float64 (one matrix product per chunk) and ``R``
        read from its Cholesky factor, unless ``J``'s columns, scaled to unit norm, have a condition number above
        :data:`GRAM_CONDITION` (the normal equations square it): then, as in one chunk, the QR factorisation of
        ``[J | r]`` carries ``Qᵀr`` in its last column; each chunk is stacked under the running
        ``(k+1) × (k+1)`` factor and factorised again.
        """
        self.n_jev += 1
        k = p.numel()
        ahead, self._ahead = self._ahead, None
        sums = ahead[1] if ahead is not None and ahead[0] == _key(p) else None
        if sums is None and (self.augmented is not None or not self._one_chunk):
            sums = self._sums(p)
        if sums is None:  # one chunk, autograd
            return self._qr_factor(self._blocks(p), k)  # one chunk in memory: no other process
        self._factored = (_key(p), sums)
        block, gram, total = sums
        if block is not None:
            return self._qr_factor([(block, total)], k)
        assert gram is not None  # several chunks
        out = gram_factor(gram.cpu().numpy(), k)
        if out is not None:
            return out
        source = self.rows()
        return self._qr_factor(self._blocks(p, source), k, source)

    def sums_at(self, p: Tensor) -> tuple[Tensor | None, Tensor | None, float] | None:
        """``(block, gram, ||r||²)`` as :meth:`_sums` gives them, when the last factorisation or the last trial
        was at exactly ``p`` (its dtype and bytes); else None. What the error bars at the final point reuse."""
        key = _key(p)
        for kept in (self._ahead, self._factored):
            if kept is not None and kept[0] == key:
                return kept[1]
        return None

    @staticmethod
    def _qr_factor(
        blocks: Iterable[tuple[Tensor, float]], k: int, source: RowSource | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """``(R, Qᵀr, ||r||²)`` by folding each chunk's ``[J | r]`` into a running QR factor (and, when ``source``
        is a process's shard, the factors of every process stacked in rank order and factorised once more)."""
        aug: np.ndarray | Tensor | None = None
        total = 0.0
        for block, ss in blocks:
            total += ss
            if block.device.type == "cpu":
                assert not isinstance(aug, Tensor)  # every chunk is on the device of self.x, so aug is numpy here
                rows = block.numpy()
                # numpy's stubs say QRResult for every mode; mode="r" returns R alone, an array.
                aug = np.linalg.qr(rows if aug is None else np.vstack([aug, rows]), mode="r")  # type: ignore[assignment]
            else:
                assert not isinstance(aug, np.ndarray)  # as above: aug is a tensor on that device
                aug = torch.linalg.qr(block if aug is None else torch.cat([aug, block]), mode="r")[1]
        assert aug is not None  # a fit has rows, so there was at least one chunk
        aug = aug if isinstance(aug, np.ndarray) else aug.cpu().numpy()
        parts = across(source, (aug, total)) if source is not None else [(aug, total)]
        if len(parts) > 1:  # the same stack on every process, so the same factor
            aug = np.linalg.qr(np.vstack([a for a, _ in parts]), mode="r")  # type: ignore[assignment]
            total = sum(t for _, t in parts)
        aug = np.vstack([aug, np.zeros((k + 1 - aug.shape[0], k + 1))]) if aug.shape[0] < k + 1 else aug
        return aug[:k, :k], aug[:k, k], total


class _RootWeights:
    """A source's chunks with the square roots of their weights, as the residuals are weighted."""

    def __init__(self, source: RowSource):
        self.source = source
        self.combine = getattr(source, "combine", None)  # a process's shard: its sums are added across processes
        self.gather = getattr(source, "gather", None)

    def chunks(self) -> Iterator[Chunk]:
        for x, y, w in self.source.chunks():
            yield x, y, None if w is None else w.detach().sqrt()


def _key(p: Tensor) -> tuple:
    """What identifies a point exactly: its dtype and its entries' bytes."""
    return p.dtype, p.detach().cpu().numpy().tobytes()


# Above this condition number of the column-scaled Jacobian, R comes from a QR factorisation, not from JᵀJ: the
# normal equations lose about cond² · 1e-16 of relative precision (here at most 1e-8).
GRAM_CONDITION = 1e4


def gram_factor(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``(R, Qᵀr, ||r||²)`` from ``G = [J | r]ᵀ[J | r]``; None when ``J`` is too ill-conditioned, has a zero
    column or is not finite (the caller then factorises by QR)."""
    if not np.isfinite(gram).all():
        return None
    d = np.sqrt(np.diag(gram)[:k])
    if k == 0 or not (d > 0).all():
        return None
    try:
        L = np.linalg.cholesky(gram[:k, :k] / np.outer(d, d))
    except np.linalg.LinAlgError:
        return None
    if np.linalg.cond(L) > GRAM_CONDITION:
        return None
    R = L.T * d  # RᵀR = D L Lᵀ D = JᵀJ
    qtr = np.linalg.solve(R.T, gram[:k, k])  # Rᵀ Qᵀr = Jᵀr
    return R, qtr, float(gram[k, k])


@dataclass
class Iteration:
    """What one iteration found at the current point ``p`` (before any move)."""

    sum_squares: float  # ||r(p)||²
    gradient: np.ndarray  # Jᵀr at p, the held entries included
    lam: float  # the damping λ of the last step tried (0: a Gauss-Newton step)
    trial: np.ndarray | None = None  # the accepted point, or None
    trial_sum_squares: float = math.nan
    test: str | None = None  # "ftol", "xtol", "gtol", or "stalled"
    trials: int = 0
    dead: list[int] = field(default_factory=list)  # columns of J that vanished: parameters with no effect
    held: list[int] = field(default_factory=list)  # entries held on a bound (left out of the step)

    @property
    def projected_gradient(self) -> np.ndarray:
        """``Jᵀr`` with the held entries zeroed: the gradient that can still move the fit."""
        g = self.gradient.copy()
        g[self.held] = 0.0
        return g


class LevenbergMarquardt:
    """MINPACK's Levenberg-Marquardt, one outer iteration (one Jacobian) per :meth:`iterate` call.

    The iterate ``p`` and the ``k × k`` algebra live in float64 numpy: torch's LAPACK calls on
    matrices this small cost a thread-pool wake-up each, a thousand times numpy's on a busy CPU.

    Parameters
    ----------
    residuals : ChunkedResiduals
    p0 : Tensor
        Flat starting point; its dtype and device are those the residuals are evaluated in.
    options : LMOptions
    lower, upper : Tensor, optional
        Bounds per entry (``-inf``/``inf`` where none).

    Examples
    --------
    >>> x = torch.linspace(0, 3, 20, dtype=torch.float64)
    >>> res = ChunkedResiduals(lambda p, x, y: p[0] * torch.exp(-p[1] * x) - y, x, 2 * torch.exp(-0.5 * x))
    >>> lm = LevenbergMarquardt(res, torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> while (it := lm.iterate()).test is None:
    ...     lm.accept(it)
    >>> lm.accept(it)
    >>> [round(v, 6) for v in lm.p.tolist()]
    [2.0, 0.5]
    """

    def __init__(
        self,
        residuals: ChunkedResiduals,
        p0: Tensor,
        options: LMOptions = LMOptions(),
        lower: Tensor | None = None,
        upper: Tensor | None = None,
    ):
        self.res, self.opt = residuals, options
        self.dtype, self.device = p0.dtype, p0.device
        self.p = p0.detach().double().cpu().numpy().copy()
        k = self.p.size
        self.lower = np.full(k, -np.inf) if lower is None else lower.double().cpu().numpy()
        self.upper = np.full(k, np.inf) if upper is None else upper.double().cpu().numpy()
        self.sum_squares = self.res.sum_squares(self.tensor(self.p))
        self.diag: np.ndarray | None = None  # D: running max of J's column norms
        self.delta = math.nan  # trust radius in the scaled norm ||D δ||
        self.lam = 0.0

    def tensor(self, p: np.ndarray) -> Tensor:
        """``p`` in the residuals' dtype and device."""
        return torch.from_numpy(p).to(device=self.device, dtype=self.dtype)

    def iterate(self) -> Iteration:
        """Take the Jacobian at ``p`` and search for an acceptable step (``p`` itself is not moved)."""
        R, qtr, _ = self.res.factor(self.tensor(self.p))
        fnorm = math.sqrt(self.sum_squares)
        if not (np.isfinite(R).all() and np.isfinite(qtr).all()):
            raise FloatingPointError("the Jacobian is not finite at the current parameters")
        cnorm = np.linalg.norm(R, axis=0)
        g = R.T @ qtr
        first = self.diag is None
        self.diag = np.where(cnorm > 0, cnorm, 1.0) if self.diag is None else np.maximum(self.diag, cnorm)
        if first:
            xnorm = _norm(self.diag * self.p)
            self.delta = self.opt.factor * xnorm if xnorm > 0 else self.opt.factor
        dead = [j for j in range(len(cnorm)) if cnorm[j] <= math.sqrt(EPS) * self.diag[j]]
        held = ((self.p <= self.lower) & (g > 0)) | ((self.p >= self.upper) & (g < 0))
        free = np.flatnonzero(~held)
        it = Iteration(self.sum_squares, g, self.lam, dead=dead, held=np.flatnonzero(held).tolist())
        with np.errstate(divide="ignore", invalid="ignore"):
            # 0/0 (a dead column) counts as orthogonal; x/0 stays inf, above any gtol (nan_to_num's decision, cheaper)
            cos = np.abs(g[free]) / (cnorm[free] * fnorm) if fnorm > 0 else np.zeros(1)
            cos[np.isnan(cos)] = 0.0
        if len(free) == 0 or float(cos.max()) <= self.opt.gtol:
            it.test = "gtol"
            return it
        A, D = R[:, free], self.diag[free]
        for trials in range(1, self.opt.max_rejections + 1):
            it.trials = trials
            lam, step = _lmpar(A, qtr, D, self.delta, self.lam)
            self.lam = it.lam = lam
            full = np.zeros_like(self.p)
            full[free] = step
            moved = self.p + full
            trial = np.minimum(np.maximum(moved, self.lower), self.upper)  # np.clip's numbers, NaN too, sooner
            clipped = not bool((trial == moved).all())  # np.array_equal's answer (same shapes; NaN is unequal)
            full = trial - self.p
            pnorm = _norm(self.diag * full)
            if first:  # MINPACK: the first step bounds the initial trust radius
                self.delta = min(self.delta, pnorm)
            ss = self.res.sum_squares(self.tensor(trial))
            fnorm1 = math.sqrt(ss) if math.isfinite(ss) else math.inf
            actred = 1 - (fnorm1 / fnorm) ** 2 if 0.1 * fnorm1 < fnorm else -1.0
            Rp = R @ full
            if not clipped:  # MINPACK's formulas for the damped step, free of cancellation
                t1, t2 = _norm(Rp) / fnorm, math.sqrt(lam) * _norm(D * step) / fnorm
                prered, dirder = t1**2 + 2 * t2**2, -(t1**2 + t2**2)
            else:  # the linear model's reduction along the clipped step
                prered = -(2 * float(full @ g) + float(Rp @ Rp)) / fnorm**2
                dirder = float(full @ g) / fnorm**2
            ratio = actred / prered if prered != 0 else 0.0
            if ratio <= 0.25:
                temp = 0.5 if actred >= 0 else 0.5 * dirder / (dirder + 0.5 * actred)
                if 0.1 * fnorm1 >= fnorm or temp < 0.1:
                    temp = 0.1
                self.delta = temp * min(self.delta, pnorm / 0.1)
                self.lam = self.lam / temp
            elif lam == 0 or ratio >= 0.75:
                self.delta = pnorm / 0.5
                self.lam = 0.5 * self.lam
            accepted = ratio >= 1e-4
            if accepted:
                it.trial, it.trial_sum_squares = trial, ss
            xnorm = _norm(self.diag * (trial if accepted else self.p))
            if abs(actred) <= self.opt.ftol and prered <= self.opt.ftol and 0.5 * ratio <= 1:
                it.test = "ftol"
            elif self.delta <= self.opt.xtol * xnorm:
                it.test = "xtol"
            elif abs(actred) <= EPS and prered <= EPS and 0.5 * ratio <= 1 or self.delta <= EPS * xnorm:
                it.test = "ftol" if prered <= EPS else "xtol"  # the tolerances are below what float64 resolves
            if accepted or it.test:
                return it
        it.test = "stalled"
        return it

    def accept(self, it: Iteration) -> None:
        """Move to the iteration's accepted point (if it has one)."""
        if it.trial is not None:
            self.p, self.sum_squares = it.trial, it.trial_sum_squares

    def state_dict(self) -> dict:
        """What the next iterations depend on, copied: a plain dict of tensors and numbers (torch.optim's convention).

        ``p`` (the iterate, float64), ``sum_squares`` (at ``p``), ``delta`` (the trust radius; nan before the first
        iteration), ``lam`` (the damping), ``diag`` (the scaling ``D``, float64; None before the first iteration),
        and the residuals' counters ``n_fev`` and ``n_jev``. The options, bounds and residual function are the
        solver's construction, not its state.
        """
        return {
            "p": torch.from_numpy(self.p.copy()),
            "sum_squares": self.sum_squares,
            "delta": self.delta,
            "lam": self.lam,
            "diag": None if self.diag is None else torch.from_numpy(self.diag.copy()),
            "n_fev": self.res.n_fev,
            "n_jev": self.res.n_jev,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (a :meth:`state_dict`, copied in): the iterations that follow are those the solver
        that saved it would have made, to the bit.

        Raises
        ------
        ValueError
            When a key is missing, or ``p`` or ``diag`` does not have one entry per parameter of this solver.
        """
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(
                f"Levenberg-Marquardt's state lacks {', '.join(map(repr, missing))}: a state_dict() "
                f"holds {', '.join(STATE_KEYS)}."
            )
        p = _vector(state["p"], "p", self.p.size)
        diag = None if state["diag"] is None else _vector(state["diag"], "diag", self.p.size)
        self.p, self.diag = p, diag
        self.sum_squares, self.delta, self.lam = state["sum_squares"], state["delta"], state["lam"]
        self.res.n_fev, self.res.n_jev = state["n_fev"], state["n_jev"]


def _vector(value, key: str, size: int) -> np.ndarray:
    """A float64 numpy copy of a saved vector, checked to have ``size`` entries."""
    out = torch.as_tensor(value).detach().cpu().double().numpy().copy()
    if out.shape != (size,):
        raise ValueError(
            f"Levenberg-Marquardt's state has {key!r} of shape {tuple(out.shape)}; this solver has "
            f"{size} parameter(s), so it expects ({size},)."
        )
    return out


def _norm(v: np.ndarray) -> float:
    """``||v||`` of a float64 vector as ``np.linalg.norm`` computes it (the square root of ``v·v``), the same number
    without its dispatch, which costs more than the product on the few entries of a parameter vector."""
    return math.sqrt(float(v.dot(v)))


def _solve(A: np.ndarray, b: np.ndarray, D: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``argmin ||A x + b||² + lam ||D x||²`` and the triangular factor of ``AᵀA + lam D²`` (None if singular)."""
    M = np.vstack([A, math.sqrt(lam) * np.diag(D)]) if lam > 0 else A
    rhs = np.concatenate([-b, np.zeros_like(D)]) if lam > 0 else -b
    Q, Rl = np.linalg.qr(M)
    d = np.abs(np.diag(Rl))
    if len(d) and d.min() > EPS * len(d) * d.max():
        return np.linalg.solve(Rl, Q.T @ rhs), Rl
    return np.linalg.lstsq(M, rhs, rcond=None)[0], None  # minimum-norm Gauss-Newton step


def _lmpar(A: np.ndarray, b: np.ndarray, D: np.ndarray, delta: float, par: float) -> tuple[float, np.ndarray]:
    """MINPACK's ``lmpar``: the λ >= 0 whose step has ``||D x||`` within 10% of ``delta`` (or λ = 0 inside it)."""
    x, R0 = _solve(A, b, D, 0.0)
    dxnorm = _norm(D * x)
    fp = dxnorm - delta
    if fp <= 0.1 * delta:
        return 0.0, x
    parl = 0.0
    if R0 is not None:  # Newton's lower bound from the Gauss-Newton step
        w = np.linalg.solve(R0.T, D * (D * x) / dxnorm)
        parl = fp / delta / float(w @ w)
    gnorm = _norm((A.T @ b) / D)
    paru = gnorm / delta if gnorm > 0 else DWARF / min(delta, 0.1)
    par = min(max(par, parl), paru)
    if par == 0:
        par = gnorm / dxnorm
    for i in range(10):
        if par == 0:
            par = max(DWARF, 0.001 * paru)
        x, Rl = _solve(A, b, D, par)
        dxnorm = _norm(D * x)
        temp, fp = fp, dxnorm - delta
        if abs(fp) <= 0.1 * delta or (parl == 0 and fp <= temp < 0) or i == 9 or Rl is None:
            break
        w = np.linalg.solve(Rl.T, D * (D * x) / dxnorm)
        parc = fp / delta / float(w @ w)
        if fp > 0:
            parl = max(parl, par)
        elif fp < 0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, x
