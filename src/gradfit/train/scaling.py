"""Scaling: a well-conditioned descent that still answers in the original units (``scale=True``).

The roller coaster's ``a*t**2 + b*t + c`` (``t**2`` up to 361 beside a column of ones; mse Hessian
condition number ~2e5) is too badly conditioned for plain gradient descent. Standardising the
inputs would fix it, but a general formula has no back-map from standardised inputs, so the descent
runs on internal parameters ``q`` with the exact affine map ``p = p0 + A q`` (free entries,
flattened; ``q`` starts at 0; fixed parameters untouched), ``A`` chosen from the Jacobian
``J = d pred / d p`` at the start (float64, at most ~1e5 evenly spaced rows):

- ``whitened`` (linear in the free parameters: ``J`` agrees at ``p0`` and at a perturbed point to
  1e-6): ``A = R^-1 sqrt(n) s`` from ``J = Q R`` (unit-norm columns first, for accuracy), so the mse
  divided by ``s**2 = var(y)`` has the Hessian exactly ``2 I`` in ``q``: plain sgd with lr 0.25-0.5
  converges in a few dozen steps. The raw columns are whitened, not centred ones: the Hessian is
  ``2 J^T J / n``, and a centred constant column is zero, leaving the intercept unscaled.
- ``diagonal`` (nonlinear; rank-deficient or very wide ``J``; or bounds given, so a box stays a
  box): ``A = diag(s / (|J_i| / sqrt(n)))``, Jacobi scaling. A zero column keeps scale 1.
- ``identity`` when no finite Jacobian could be had (``notes`` says why).

The loss is divided by ``loss_factor`` for the descent (``var(y)`` for mse and huber, ``std(y)`` for
mae, 1 for classification and user functions) so lr is dimensionless; multiply losses back by it.

With row weights ``w`` the loss is ``Σ wᵢℓᵢ / Σ wᵢ``, whose mse Hessian is ``2 JᵀWJ / Σ wᵢ``: the map is
chosen from ``sqrt(wᵢ / mean(w)) J`` and the factor is the weighted variance of ``y``, so the weighted
descent is exactly as well conditioned as the unweighted one.

Examples
--------
>>> from gradfit.losses import get_loss
>>> from gradfit.models.zoo import make_zoo_model
>>> model = make_zoo_model("poly2", ["t"])
>>> t = torch.arange(20.0, dtype=torch.float64)[:, None]
>>> p = {s.name: torch.zeros(s.shape, dtype=torch.float64) for s in model.specs}
>>> s = Scaling.prepare(model, get_loss("mse"), t, 0.75 * (t[:, 0] - 9.5) ** 2 + 1, p, frozenset())
>>> s.kind, round(s.describe()["condition_before"]), round(s.describe()["condition_after"], 6)
('whitened', 218451, 1.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from gradfit.losses import Loss
from gradfit.models.base import Model
from gradfit.problem import ParamView, pack, positions, unflatten
from gradfit.rowpass import RowSet, evenly_spaced, is_row_set, reduce, rows_of

MAX_ROWS = 100_000  # rows the Jacobian is taken on
MAX_ENTRIES = 5_000_000  # rows x outputs x free entries of that Jacobian (40 MB in float64)
CHECK_ROWS = 512  # rows of the linearity test
MAX_WHITEN = 2_000  # beyond this many free entries a dense P x P map costs more than it saves
RTOL = 1e-6  # linearity: J at two points agrees to this (relative)
RANK_TOL = 1e-10  # |R_ii| below this (relative to the largest) means rank-deficient


class Scaling:
    """The affine reparametrisation ``p = p0 + A q`` of one fit; build it with :meth:`prepare`.

    Attributes
    ----------
    model : Model
        Same specs, inputs and outputs as the original; its forward maps ``q`` to ``p`` (differentiably)
        and calls the original.
    loss : Loss
        The loss divided by ``loss_factor``.
    loss_factor : float
        Multiply the descent's losses by it for the original units.
    kind : str
        ``"whitened"``, ``"diagonal"`` or ``"identity"``.
    """

    def __init__(
        self,
        original: Model,
        loss: Loss,
        free: tuple[str, ...],
        p0: Tensor,
        A: Tensor,
        start: dict[str, Tensor],
        loss_factor: float,
        kind: str,
        info: dict,
    ):
        self.original = original
        self.free = free  # names of the free parameters, in spec order
        self.p0 = p0  # float64: their entries at the start, flattened
        self.A = A  # (P, P) whitened, (P,) diagonal or identity
        self.start = start
        self.loss_factor = float(loss_factor)
        self.kind = kind
        self.info = info
        self.bounds = None  # the user's Bounds, when given (diagonal kinds only)
        self.free_index = np.array(positions(original.specs, free), dtype=np.int64)
        self.model = ScaledModel(self)
        self.loss = ScaledLoss(loss, self.loss_factor)

    @classmethod
    def prepare(
        cls,
        model: Model,
        loss: Loss,
        x: Tensor | RowSet,
        y: Tensor | None,
        params: Mapping[str, Tensor],
        fixed: frozenset[str] | set[str],
        *,
        bounds=None,
        w: Tensor | None = None,
    ) -> Scaling:
        """Choose ``A`` from the Jacobian of ``model`` at ``params`` on the rows ``x`` (targets ``y``, row weights ``w``).

        ``x`` may be a :class:`gradfit.rowpass.RowSet` (``y`` and ``w`` None): the loss's factor then takes two
        passes over its rows, and the Jacobian the evenly spaced rows it would take of rows in memory.
        A non-empty ``bounds`` (:class:`gradfit.train.bounds.Bounds`) forces the diagonal kind, whose
        image of a box is a box (:meth:`internal_bounds`).
        """
        free = tuple(s.name for s in model.specs if s.name not in fixed and s.size)
        p0 = ParamView.of(model, params, fixed, device="cpu").theta  # float64: the free entries at the start
        if is_row_set(x):
            factor, note = _loss_factor_of_rows(loss, x)
            P = sum(model.spec(n).size for n in free)
            sample = x.sample(_jacobian_rows(len(x), P, model.n_outputs))
            rows, w = sample.x, sample.w
        else:
            assert y is not None  # rows in memory come with their targets
            factor, note = _loss_factor(loss, y, w)
            rows = x
        kind, A, info = _choose_map(model, params, free, rows, math.sqrt(factor), diagonal_only=bool(bounds), w=w)
        info = {**info, "loss_factor": factor, "notes": ([note] if note else []) + info["notes"]}
        start = {
            s.name: params[s.name].detach().clone() if s.name not in free else torch.zeros_like(params[s.name].detach())
            for s in model.specs
        }
        scaling = cls(model, loss, free, p0, A, start, factor, kind, info)
        scaling.bounds = bounds if bounds else None
        return scaling

    def internal_start(self) -> dict[str, Tensor]:
        """Internal starting parameters (fresh tensors): 0 for free entries, fixed ones as they are."""
        return {k: v.clone() for k, v in self.start.items()}

    def free_to_external(self, q: Tensor) -> Tensor:
        """``p0 + A q`` for the flat free entries (float64, differentiable in ``q``)."""
        A, p0 = self.A.to(q.device), self.p0.to(q.device)
        return p0 + (A @ q if A.ndim == 2 else A * q)

    def to_external(self, q: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The user's parameters from internal ones (same shapes, dtypes and devices as ``q``)."""
        with torch.no_grad():
            p = {k: v.detach().clone() for k, v in self.model.external(q).items()}
            if self.bounds:
                # An entry projected onto its bound in q lands on it in p exactly, not within float32 rounding of it.
                inner = self.internal_bounds(self.bounds)
                for n in self.free:
                    for side, outer in ((inner.lower[n], self.bounds.lower[n]), (inner.upper[n], self.bounds.upper[n])):
                        edge = side.to(q[n]) == q[n]
                        p[n] = torch.where(edge & torch.isfinite(outer).to(edge.device), outer.to(p[n]), p[n])
            return p

    def snapshots_to_external(self, snapshots: np.ndarray) -> np.ndarray:
        """History snapshots ``(m, every flat entry)`` in internal units, mapped to the user's."""
        out = np.array(snapshots, dtype=np.float64, copy=True)
        if out.size and len(self.free_index):
            q, A = out[:, self.free_index], self.A.numpy()
            out[:, self.free_index] = self.p0.numpy() + (q @ A.T if A.ndim == 2 else q * A)
        return out

    def history_to_external(self, history):
        """The History with losses and snapshots in the user's units (``grad_norm`` stays internal)."""
        columns = dict(history.columns)
        for name in ("loss", "val_loss"):
            columns[name] = columns[name] * self.loss_factor
        meta = {**history.meta, "scaling": self.kind, "grad_norm": "of the internal (scaled) parameters"}
        return dataclasses.replace(
            history, columns=columns, snapshots=self.snapshots_to_external(history.snapshots), meta=meta
        )

    def wrap_callbacks(self, callbacks) -> list:
        """Callbacks that see the user's units: ``on_step`` gets the loss times ``loss_factor`` and ``p``."""
        return [_External(cb, self) for cb in callbacks]

    def internal_bounds(self, bounds):
        """The :class:`~gradfit.train.bounds.Bounds` on ``q`` equivalent to ``bounds`` on ``p`` (diagonal kinds)."""
        from gradfit.errors import ConfigError
        from gradfit.train.bounds import Bounds

        inner = Bounds(self.model, None)
        if not bounds:
            return inner
        if self.A.ndim != 1:
            raise ConfigError("Bounds with scaling need the diagonal map: build the Scaling with bounds=... .")
        free_specs = [s for s in self.original.specs if s.name in self.free]
        scales, starts = unflatten(free_specs, self.A), unflatten(free_specs, self.p0)
        for s in self.original.specs:
            lo, hi = bounds.lower[s.name].clone(), bounds.upper[s.name].clone()
            if s.name in self.free:
                a, p0 = scales[s.name], starts[s.name]
                lo, hi = (lo - p0) / a, (hi - p0) / a  # a > 0: the order is kept
            inner.lower[s.name], inner.upper[s.name] = lo, hi
        inner.given = dict(bounds.given)
        return inner

    def describe(self) -> dict:
        """JSON-able: ``kind``, the mse Hessian's condition number before and after, rows used, notes."""
        return {"kind": self.kind, **self.info}

    def __repr__(self) -> str:
        return f"<Scaling {self.kind} of {self.original.name!r}, loss / {self.loss_factor:.4g}>"


class _External:
    """A callback seen through the map: its ``on_step`` state is in the user's units; the rest is forwarded."""

    def __init__(self, callback, scaling: Scaling):
        self._callback, self._scaling = callback, scaling

    def __getattr__(self, name):
        return getattr(self._callback, name)

    def on_step(self, state):
        fn = getattr(self._callback, "on_step", None)
        if fn is None:
            return None
        f = self._scaling.loss_factor
        return fn(
            dataclasses.replace(
                state, loss=state.loss * f, val_loss=state.val_loss * f, params=self._scaling.to_external(state.params)
            )
        )


class ScaledModel(Model):
    """The original model over internal parameters: ``forward(q, x) = original(p0 + A q, x)``."""

    def __init__(self, scaling: Scaling):
        self.scaling = scaling
        self.original = scaling.original
        self.name = self.original.name
        self.inputs = tuple(self.original.inputs)
        self.n_outputs = self.original.n_outputs

    @property
    def specs(self):
        return self.original.specs

    def external(self, q: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``p`` by name, differentiable in ``q``, each in its ``q`` tensor's dtype."""
        out = dict(q)
        free = self.scaling.free
        if free:
            p = self.scaling.free_to_external(pack(q, free, torch.float64))
            out.update(
                {n: t.to(q[n].dtype) for n, t in unflatten([s for s in self.specs if s.name in free], p).items()}
            )
        return out

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        return self.original(self.external(params), x)

    def describe(self) -> dict:
        return self.original.describe()


class ScaledLoss(Loss):
    """``loss / factor``: the same loss in dimensionless units (its name and description unchanged)."""

    def __init__(self, loss: Loss, factor: float):
        super().__init__()
        self.inner, self.factor = loss, float(factor)
        self.name = loss.name
        self.least_squares = getattr(loss, "least_squares", False)
        self.options = dict(getattr(loss, "options", {}))

    def per_row(self, pred, target):
        return self.inner.per_row(pred, target) / self.factor

    def total(self, pred, target, weight=None):
        inner = self.inner.total(pred, target) if weight is None else self.inner.total(pred, target, weight)
        return inner / self.factor

    def __call__(self, pred, target, weight=None):
        return (self.inner(pred, target) if weight is None else self.inner(pred, target, weight)) / self.factor

    def check_targets(self, y, n_outputs, first_row: int = 0):
        return self.inner.check_targets(y, n_outputs, first_row)

    def describe(self) -> dict:
        return self.inner.describe()


def _loss_factor(loss: Loss, y: Tensor, w: Tensor | None = None) -> tuple[float, str]:
    """What makes the loss dimensionless, and a note when nothing could."""
    name = getattr(loss, "name", "")
    if name not in ("mse", "huber", "mae"):
        return 1.0, ""  # classification losses are already dimensionless; a user's function has unknown units
    yy = y.detach().double().reshape(-1)
    ww = torch.ones_like(yy) if w is None else w.detach().double().reshape(-1).to(yy.device)
    keep = torch.isfinite(yy) & (ww > 0)
    yy, ww = yy[keep], ww[keep]
    mean = (ww * yy).sum() / ww.sum() if yy.numel() else 0.0
    var = float((ww * (yy - mean) ** 2).sum() / ww.sum()) if yy.numel() > 1 else 0.0
    if not (var > 0 and math.isfinite(var)):
        return 1.0, "The targets are constant, so the loss is not rescaled."
    return (math.sqrt(var), "") if name == "mae" else (var, "")


def _jacobian_rows(n: int, P: int, n_outputs: int) -> int:
    """How many evenly spaced rows of ``n`` the Jacobian is taken on."""
    return int(min(n, MAX_ROWS, max(CHECK_ROWS, MAX_ENTRIES // max(1, P * n_outputs))))


def _loss_factor_of_rows(loss: Loss, rows: RowSet) -> tuple[float, str]:
    """:func:`_loss_factor` of a row set: the weighted mean, then the weighted variance, each a pass over its
    chunks in float64 (rows whose target is not finite, or whose weight is 0, left out)."""
    if getattr(loss, "name", "") not in ("mse", "huber", "mae"):
        return 1.0, ""
    source = rows_of(rows, dtype=torch.float64)

    def kept(y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        yy = y.reshape(-1)
        ww = torch.ones_like(yy) if w is None else w.reshape(-1)
        keep = torch.isfinite(yy) & (ww > 0)
        return yy[keep], ww[keep]

    def first(_x, y, w):
        yy, ww = kept(y, w)
        return (ww * yy).sum(), ww.sum(), torch.tensor(yy.numel(), dtype=torch.float64)

    total, weight, count = reduce(first, source)
    if count < 2:
        return 1.0, "The targets are constant, so the loss is not rescaled."
    mean = total / weight

    def second(_x, y, w):
        yy, ww = kept(y, w)
        return (ww * (yy - mean) ** 2).sum()

    var = float(reduce(second, source) / weight)
    if not (var > 0 and math.isfinite(var)):
        return 1.0, "The targets are constant, so the loss is not rescaled."
    return (math.sqrt(var), "") if loss.name == "mae" else (var, "")


def _choose_map(model: Model, params, free, x: Tensor, s: float, diagonal_only: bool, w: Tensor | None = None):
    """``(kind, A, info)`` from the Jacobian of the predictions w.r.t. the free entries (rows weighted by ``w``)."""
    P = sum(model.spec(n).size for n in free)
    notes: list[str] = []
    info: dict[str, float | list[str] | None] = {
        "condition_before": None,
        "condition_after": None,
        "rows": 0,
        "notes": notes,
    }
    if P == 0:
        return "identity", torch.ones(0, dtype=torch.float64), info
    view = ParamView.of(model, params, (s.name for s in model.specs if s.name not in free), device="cpu")
    x64 = x.detach().double().cpu()
    idx = evenly_spaced(len(x64), _jacobian_rows(len(x64), P, model.n_outputs))
    theta = view.theta

    try:
        J = view.jacobian(theta, x64[idx])
    except (RuntimeError, TypeError, ValueError) as exc:
        notes.append(f"The Jacobian could not be taken by autograd ({exc}); the descent is not scaled.")
        return "identity", torch.ones(P, dtype=torch.float64), info
    info["rows"] = len(idx)
    if w is not None:
        # The weighted mse's Hessian is 2 JᵀWJ / Σw: scale J's rows by sqrt(w / mean w) and whiten that.
        ww = w.detach().double().cpu()
        J = J * (ww[idx] / ww.mean()).sqrt().repeat_interleave(J.shape[0] // len(idx))[:, None]
    if not bool(torch.isfinite(J).all()):
        notes.append("The Jacobian at the start is not finite; the descent is not scaled. Check the initial values.")
        return "identity", torch.ones(P, dtype=torch.float64), info
    norms = J.norm(dim=0) / math.sqrt(J.shape[0])
    info["condition_before"] = _cond(J)
    zero = norms <= 1e-300 + 1e-12 * float(norms.max())
    if bool(zero.any()):
        names = [f for n in free for f in model.spec(n).flat_names()]
        notes.append(
            "Without effect at the start (scale kept at 1): " + ", ".join(n for n, z in zip(names, zero) if z) + "."
        )
    if (
        not diagonal_only
        and P <= MAX_WHITEN
        and not bool(zero.any())
        and _is_linear(view, theta, x64[idx[:CHECK_ROWS]], J)
    ):
        D = 1.0 / J.norm(dim=0)
        R = torch.linalg.qr(J * D, mode="r").R
        d = R.diagonal().abs()
        if bool(d.min() > RANK_TOL * d.max()):
            eye = torch.eye(P, dtype=torch.float64)
            A = D[:, None] * torch.linalg.solve_triangular(R, eye, upper=True) * (math.sqrt(J.shape[0]) * s)
            info["condition_after"] = _cond(J @ A)
            return "whitened", A, info
        notes.append("The parameters are (nearly) redundant at the start: diagonal scaling instead of whitening.")
    elif diagonal_only:
        notes.append("Bounds are given: diagonal scaling, so the box stays a box.")
    A = torch.where(zero, torch.ones_like(norms), s / norms)
    info["condition_after"] = _cond(J * A)
    return "diagonal", A, info


def _is_linear(view: ParamView, theta: Tensor, rows: Tensor, J: Tensor) -> bool:
    """J at a perturbed point equals J here to RTOL (as analysis/optimum.py checks)."""
    gen = torch.Generator().manual_seed(0)
    other = theta + (0.5 + torch.rand(theta.shape, generator=gen, dtype=torch.float64)) * (theta.abs() + 1.0)
    try:
        j1, j2 = view.jacobian(theta, rows), view.jacobian(other, rows)
    except (RuntimeError, TypeError, ValueError):
        return False
    scale = float(torch.maximum(j1.abs().max(), j2.abs().max()))
    return bool(torch.isfinite(j2).all()) and float((j1 - j2).abs().max()) <= RTOL * max(scale, 1e-300)


def _cond(J: Tensor) -> float | None:
    """Condition number of ``J^T J`` (the mse Hessian up to a constant); None when singular."""
    sv = torch.linalg.svdvals(J)
    if not bool(sv.min() > 0):
        return None
    c = float((sv.max() / sv.min()) ** 2)
    return c if math.isfinite(c) else None
