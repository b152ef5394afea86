"""The curvature of a fit's loss at a point, by autograd: what :mod:`gradfit.analysis.uncertainty` inverts.

Everything runs in float64 over row chunks, so neither the Jacobian of 10^7 predictions nor the
autograd graph of all rows is ever held at once. For least squares the Jacobian chunks are folded
into the triangular factor ``R`` of a QR decomposition (``[R; J_chunk] = Q R'``, the "tall-skinny
QR"): ``RᵀR = JᵀJ`` without forming ``JᵀJ``, whose condition number is the square of ``J``'s.
Inversion scales the columns to unit norm first (so the verdict "singular" does not depend on the
parameters' units) and names the parameters of each null direction.

Row weights ``w`` (the dataset's ``w``) enter as in the fit: least squares folds ``sqrt(w) J`` and
``sqrt(w) r`` (so ``rss`` is the chi-square ``Σ wᵢrᵢ²``), and the Hessian methods differentiate
``Σ wᵢℓᵢ``. Rows of weight 0 carry no information and are not counted in ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gradfit.jacobian import row_values_and_jacobian
from gradfit.optim.lm import gram_factor
from gradfit.problem import ParamView, gradient, hessian
from gradfit.rowpass import (
    RowSource,
    across,
    add_across,
    counted_rows,
    fold,
    is_row_set,
    jacobian_rows,
    reduce,
    rows_device,
    rows_of,
    rows_triple,
)
from gradfit.train.formula_jacobian import formula_jacobian


class NotComputable(Exception):
    """The curvature cannot be computed at this point; the message says why."""


class DatasetView(ParamView):
    """The predictions as a function of the free flat parameters ``theta`` (the held ones keep ``values``), and
    the dataset's rows, read ``chunk_size`` at a time at most (the fit's ``FitConfig.chunk_size``; None for
    :data:`gradfit.rowpass.CHUNK_ROWS`)."""

    def __init__(
        self,
        model,
        dataset,
        values: np.ndarray,
        free: list[int],
        chunk_size: int | None = None,
        sums=None,
        n: int | None = None,
    ):
        super().__init__(model, torch.tensor(values, dtype=torch.float64, device=rows_device(dataset)), free)
        self.dataset = dataset
        self.values = np.asarray(values, dtype=np.float64)
        self.sums = sums  # the optimizer's sums at its final point (gradfit.optim.lm.PointSums), or None
        self.chunk_size = chunk_size
        self.x, self.y, self.w = rows_triple(dataset)  # the rows in memory, or a row set (y and w None)
        self.weighted = self.w is not None or (is_row_set(self.x) and self.x.weight_total() is not None)
        weighting = getattr(dataset, "weighting", None)
        # curve_fit's absolute_sigma: the sigmas are the errors' scale, not to be estimated from the residuals.
        self.absolute = bool(
            self.weighted and weighting is not None and weighting.kind == "sigma" and weighting.absolute_sigma
        )
        # The points that count: rows of weight 0 say nothing about the parameters.
        self.n = counted_rows(dataset) if n is None else n  # given when counted already: a weighted row set's pass
        # A formula's Jacobian in one pass from its derivative graph (None: autograd's, by ParamView.jacobian).
        self.formula = formula_jacobian(model, self.names) if getattr(model, "n_outputs", 1) == 1 else None

    def jacobian(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``d f(x; theta) / d theta``, ``(rows, free entries)``: from the formula's derivatives when it has them."""
        return self.values_and_jacobian(theta, x)[1]

    def values_and_jacobian(self, theta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predictions, flattened and detached, and their Jacobian: a formula's in one pass."""
        if self.formula is None:  # autograd's Jacobian, the predictions from its own forward pass
            return row_values_and_jacobian(lambda t: self.predict(t, x), theta)
        return self.formula(self.params(theta), x)

    def kept_sums(self):
        """The optimizer's :class:`~gradfit.optim.lm.PointSums` when they are those of this problem: the same model
        and data (the same objects), unweighted, the same free parameters at the same values to the bit, summed in
        float64. None otherwise (bounds held a parameter, the fit moved on or rolled back, scaled parameters...)."""
        s = self.sums
        if s is None or self.weighted:
            return None
        if any(a is not b for a, b in zip(s.source, (self.model, self.x, self.y, None), strict=True)):
            return None
        values = self.values[self.free_index.tolist()]
        return s if tuple(self.names) == s.names and values.tobytes() == s.values.tobytes() else None

    def rows(self, rows: int) -> RowSource:
        """The dataset's rows, ``rows`` at a time, each chunk in float64 (``w`` None for an unweighted dataset)."""
        return rows_of(self.x, self.y, self.w, rows, dtype=torch.float64)

    def chunks(self, rows: int):
        """``(x, y, w)`` of each chunk in float64 (``w`` None for an unweighted dataset)."""
        return self.rows(rows).chunks()


@dataclass
class Curvature:
    """``matrix`` is ``R`` (with ``RᵀR = A``) when ``sqrt``, else the symmetric ``A`` itself.

    The covariance is ``scale * A⁻¹`` (``scale * A⁻¹ meat A⁻¹`` when ``meat`` is given) and
    ``A⁻¹ gradient`` is the Newton step from the point.
    """

    matrix: np.ndarray
    sqrt: bool
    scale: float
    gradient: np.ndarray
    rss: float = math.nan
    meat: np.ndarray | None = None


@dataclass
class Inverse:
    cov: np.ndarray  # A⁻¹ on the estimable parameters, NaN elsewhere
    no_effect: list[int]  # zero columns
    null: list[list[int]]  # the dominant parameters of each null direction
    negative: list[int]  # the dominant parameters of negative-curvature directions
    condition: float


def curvature(problem: DatasetView, loss, method: str) -> Curvature:
    n, p = problem.n, len(problem.theta)
    if method in ("jacobian", "sandwich-lad"):
        return _from_jacobian(problem, loss, method, n, p)
    return _from_hessian(problem, loss, method == "sandwich", n, p)


def _from_jacobian(problem, loss, method, n, p) -> Curvature:
    if problem.model.n_outputs != 1:
        raise NotComputable(
            f"The {loss.name} loss needs one prediction per row; the model has {problem.model.n_outputs}."
        )
    if method == "jacobian":
        by_sums = _least_squares_kept(problem, n, p)
        if by_sums is None and problem.kept_sums() is None:  # kept sums the Gram refused: so would a fresh pass's
            by_sums = _least_squares_by_sums(problem, n, p)
        if by_sums is not None:
            return by_sums
    theta = problem.theta
    zeros = theta.new_zeros
    start = {
        "R": None,
        "rss": 0.0,
        "jtr": zeros(p),
        "residuals": [],
        "meat": None if problem.w is None or method == "jacobian" else zeros(p, p),
    }

    def step(acc, xc, yc, wc):
        pred, J = problem.values_and_jacobian(theta, xc)
        r = yc - pred
        _check_finite(J, r)
        root = None if wc is None else wc.sqrt()
        Jw = J if root is None else root[:, None] * J  # RᵀR = JᵀWJ
        acc["R"] = torch.linalg.qr(Jw if acc["R"] is None else torch.cat([acc["R"], Jw]), mode="r").R
        if method == "jacobian":
            rw = r if root is None else root * r
            acc["rss"] += float((rw * rw).sum())
            acc["jtr"] += Jw.T @ rw
            return acc
        acc["rss"] += float((r * r).sum() if wc is None else (wc * r * r).sum())
        acc["jtr"] += J.T @ (torch.sign(r) if wc is None else wc * torch.sign(r))  # the gradient of Σ wᵢ|rᵢ|
        acc["residuals"].append((r if wc is None else r[wc > 0]).cpu().numpy())
        if acc["meat"] is not None:  # the scores' variance, Σ wᵢ² JᵢJᵢᵀ (= A when unweighted)
            acc["meat"] += (wc[:, None] * J).T @ (wc[:, None] * J)
        return acc

    source = problem.rows(jacobian_rows(p, chunk_size=problem.chunk_size))
    acc = _joined(across(source, fold(step, source, start)))
    R, rss, jtr, meat = acc["R"], acc["rss"], acc["jtr"], acc["meat"]
    if method == "jacobian":
        return Curvature(R.cpu().numpy(), True, 1.0 if problem.absolute else rss / (n - p), jtr.cpu().numpy(), rss)
    f0 = _density_at_zero(np.concatenate(acc["residuals"]))
    return Curvature(
        R.cpu().numpy(),
        True,
        n / (n - p) / (4 * f0 * f0),
        jtr.cpu().numpy() / (2 * f0),
        rss,
        meat=None if meat is None else meat.cpu().numpy(),
    )


def _joined(parts: list[dict]) -> dict:
    """The QR fold's running state of every process's shard, in rank order, as one: the factors stacked and
    factorised once more, the sums added, the residuals joined (one part: itself)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return {
        "R": torch.linalg.qr(torch.cat([part["R"] for part in parts]), mode="r").R,
        "rss": sum(part["rss"] for part in parts),
        "jtr": sum((part["jtr"] for part in parts[1:]), first["jtr"]),
        "residuals": [r for part in parts for r in part["residuals"]],
        "meat": None if first["meat"] is None else sum((part["meat"] for part in parts[1:]), first["meat"]),
    }


def _least_squares_kept(problem, n, p) -> Curvature | None:
    """Least squares from the optimizer's own sums at the fitted point (:meth:`DatasetView.kept_sums`): the curvature
    the passes below would compute, without reading the rows again. Its residuals are prediction minus target, the
    negative of these, so the gradient's sign flips. None when there are none, or they are not finite or too
    ill-conditioned for the normal equations (the passes below then decide, and say why)."""
    kept = problem.kept_sums()
    if kept is None:
        return None
    if kept.block is not None:  # one chunk: [J | r] itself, factorised as the fold would
        block = kept.block.cpu().numpy()
        if not np.isfinite(block).all():
            return None
        J, r = block[:, :p], block[:, p]
        # numpy's stubs say QRResult for every mode; mode="r" returns R alone, an array.
        R1: np.ndarray = np.linalg.qr(J, mode="r")  # type: ignore[assignment]
        scale = 1.0 if problem.absolute else kept.total / (n - p)
        return Curvature(R1, True, scale, -(J.T @ r), kept.total)
    return _from_gram(problem, kept.gram.cpu().numpy(), n, p, sign=-1.0)


def _least_squares_by_sums(problem, n, p) -> Curvature | None:
    """Least squares over several chunks: ``R`` from the float64 sums ``[J | r]ᵀ[J | r]`` (one matrix product per
    chunk, where the QR fold factorises every chunk again), when ``J`` is well conditioned
    (:func:`gradfit.optim.lm.gram_factor`); None leaves it to the QR fold (one chunk, ill-conditioned, a zero column,
    or values that are not finite, which the fold reports)."""
    rows = jacobian_rows(p, chunk_size=problem.chunk_size)
    if len(problem.dataset) <= rows:
        return None
    gram = None
    source = problem.rows(rows)
    for xc, yc, wc in source.chunks():
        if problem.formula is not None:  # the residuals written beside the columns, no copy of them
            pred, block = problem.formula(problem.params(problem.theta), xc, extra=1)
            torch.sub(yc, pred, out=block[:, -1])
        else:
            pred, J = problem.values_and_jacobian(problem.theta, xc)
            block = torch.cat([J, (yc - pred)[:, None]], dim=1)
        block = block if wc is None else block * wc.sqrt()[:, None]
        gram = block.T @ block if gram is None else gram + block.T @ block
    assert gram is not None  # more rows than one chunk (each process holds rows)
    sums = [gram]
    add_across(source, sums)  # a process's shard: the sums of every process
    return _from_gram(problem, sums[0].cpu().numpy(), n, p, sign=1.0)


def _from_gram(problem, G: np.ndarray, n: int, p: int, sign: float) -> Curvature | None:
    """Least squares from ``G = [J | r]ᵀ[J | r]`` (:func:`gradfit.optim.lm.gram_factor`), None when ``J`` is too
    ill-conditioned for it. ``sign``: +1 when ``r`` is target minus prediction, -1 when prediction minus target
    (the gradient ``Jᵀ(y - f)`` is then ``-G[:p, p]``)."""
    out = gram_factor(G, p)
    if out is None:
        return None
    R, _, rss = out
    return Curvature(R, True, 1.0 if problem.absolute else rss / (n - p), sign * G[:p, p], rss)


def _from_hessian(problem, loss, sandwich, n, p) -> Curvature:
    theta = problem.theta

    def sums(xc, yc, wc):
        if wc is None:
            total = lambda t: loss.total(problem.predict(t, xc), yc)  # noqa: E731
        else:
            total = lambda t: loss.total(problem.predict(t, xc), yc, wc)  # noqa: E731
        parts = [hessian(total, theta), gradient(total, theta)]
        if sandwich:  # the per-row scores of Σ wᵢℓᵢ: B = Σ wᵢ² gᵢgᵢᵀ
            scale = 1.0 if wc is None else wc[:, None]
            G = jacobian(lambda t: loss.per_row(problem.predict(t, xc), yc), theta) * scale
            parts.append(G.T @ G)
        return tuple(parts)

    # A Hessian chunk holds the autograd graph of rows x parameters twice: 2^20 numbers at most.
    out = reduce(sums, problem.rows(jacobian_rows(p, 2**20, chunk_size=problem.chunk_size, square=False)))
    if out is None:
        out = (theta.new_zeros(p, p), theta.new_zeros(p)) + ((theta.new_zeros(p, p),) if sandwich else ())
    H, g = out[0], out[1]
    B = out[2] if sandwich else None
    _check_finite(H, g)
    H = (H + H.T) / 2
    meat = None if B is None else B.cpu().numpy()
    return Curvature(H.cpu().numpy(), False, n / (n - p) if sandwich else 1.0, g.cpu().numpy(), meat=meat)


def invert(c: Curvature, singular: float) -> Inverse:
    """A pseudo-inverse of ``A`` that names what it cannot invert.

    A direction is singular when its singular value (of the column-scaled ``R``) is below
    ``singular`` times the largest; for a Hessian, whose eigenvalues carry roundoff of about 1e-16
    of the largest, when its eigenvalue is below ``max(singular², 1e-12)`` times the largest.
    """
    M = c.matrix
    p = M.shape[1]
    d = np.linalg.norm(M, axis=0) if c.sqrt else np.sqrt(np.abs(np.diag(M)))
    zero = [i for i in range(p) if not d[i] > 1e-15 * d.max(initial=0.0)]
    keep = [i for i in range(p) if i not in zero]
    cov = np.full((p, p), np.nan)
    if not keep:
        return Inverse(cov, zero, [], [], math.inf)
    dk = d[keep]
    if c.sqrt:
        _, s, vh = np.linalg.svd(M[:, keep] / dk, full_matrices=False)
        vectors = vh.T
        if len(s) < len(keep):  # fewer rows than parameters: the missing singular values are zero
            vectors = np.linalg.svd(np.vstack([M[:, keep] / dk, np.zeros((len(keep) - len(s), len(keep)))]))[2].T
            s = np.concatenate([s, np.zeros(len(keep) - len(s))])
        eig, root = s * s, s
    else:
        eig, vectors = np.linalg.eigh(M[np.ix_(keep, keep)] / np.outer(dk, dk))
        root = np.sign(eig) * np.sqrt(np.abs(eig))
        singular = max(singular, 1e-6)
    top = root.max()
    bad_null = [j for j in range(len(eig)) if abs(root[j]) < singular * top]
    bad_negative = [j for j in range(len(eig)) if root[j] <= -singular * top]
    good = [j for j in range(len(eig)) if j not in bad_null and j not in bad_negative]
    v = vectors[:, good]
    scaled = (v / eig[good]) @ v.T / np.outer(dk, dk)
    # A parameter with any weight in a bad direction is not estimable; the others are (their
    # variance from the pseudo-inverse is exact for a combination orthogonal to the null space).
    estimable = (vectors[:, bad_null + bad_negative] ** 2).sum(axis=1) < 1e-8
    cov[np.ix_(keep, keep)] = np.where(np.outer(estimable, estimable), scaled, np.nan)
    smallest = np.abs(root).min()
    condition = top / smallest if smallest > 0 else math.inf
    null = [_dominant(vectors[:, j], keep) for j in bad_null if j not in bad_negative]
    negative = sorted({i for j in bad_negative for i in _dominant(vectors[:, j], keep)})
    return Inverse(cov, zero, _unique(null), negative, condition if c.sqrt else condition**2)


def _dominant(vector: np.ndarray, keep: list[int]) -> list[int]:
    """The parameters that carry a direction (|component| >= 0.2 of the unit vector), largest first."""
    return [keep[i] for i in np.argsort(-np.abs(vector)) if abs(vector[i]) >= 0.2]


def jacobian(f, theta: torch.Tensor) -> torch.Tensor:
    """``d f / d theta`` as ``(m, p)``, in ``m x p`` memory (:func:`gradfit.jacobian.row_jacobian`: reverse
    mode would batch over an ``m x m`` identity)."""
    from gradfit.jacobian import row_jacobian

    return row_jacobian(f, theta)


def _density_at_zero(r: np.ndarray) -> float:
    """The residuals' density at 0 by Siddiqui's difference quotient of quantiles with the Hall-Sheather
    bandwidth, as in quantile regression (Koenker's "iid" standard errors): ``2h / (Q(1/2+h) - Q(1/2-h))``.

    A kernel estimate oversmooths the cusp of a Laplace density at 0 (about 20% too low at n = 4000).
    """
    h = min(0.49, len(r) ** (-1 / 3) * 1.959964 ** (2 / 3) * (1.5 * (1 / math.sqrt(2 * math.pi)) ** 2) ** (1 / 3))
    lo, hi = np.quantile(r, [0.5 - h, 0.5 + h])
    if not hi > lo:
        raise NotComputable(
            "The residuals have no spread (the model interpolates the data), so the mae "
            "covariance, which needs their density at zero, is not defined."
        )
    return float(2 * h / (hi - lo))


def _check_finite(*tensors) -> None:
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise NotComputable(
            "The loss or its derivatives are not finite at the fitted parameters (NaN or inf in the "
            "predictions or their Jacobian), so no uncertainty can be computed there."
        )


def _unique(groups: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for g in groups:
        if sorted(g) not in [sorted(o) for o in out]:
            out.append(g)
    return out
