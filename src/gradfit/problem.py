"""What is being fitted, and the one view of its parameters as a flat vector.

A model takes named parameters (``{"a": tensor([3., 2.]), "b": tensor(1.5)}``); the linear algebra
of least squares, uncertainties, curvature and scaling wants a flat vector ``theta`` of the free
entries. :class:`ParamView` is the one place that converts between the two and differentiates the
predictions with respect to ``theta``: the Jacobian (rows x parameters, column by column through
:func:`gradfit.jacobian.row_jacobian`, never rows x rows), gradients, Hessians and
Hessian-vector products. :class:`Problem` records the model, loss, rows, held parameters and
bounds; its rows are read through :mod:`gradfit.rowpass`, so every sum over them is chunked there.

Examples
--------
>>> from gradfit.models.builder import build_model
>>> view = ParamView.of(build_model("linear", ("x",)), {"a": torch.tensor([3.0, 2.0])})
>>> view.names, view.theta.tolist()
(['a[0]', 'a[1]'], [3.0, 2.0])
>>> view.jacobian(view.theta, torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)).tolist()
[[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from gradfit.jacobian import row_jacobian
from gradfit.losses import Loss
from gradfit.rowpass import RowSet, RowSource, jacobian_rows, reduce, rows_of

__all__ = ["ParamView", "Problem", "flatten", "gradient", "hessian", "hvp", "pack", "positions", "unflatten"]


class ParamView:
    """Named parameters as one flat vector, of which the entries ``free_index`` vary (``theta``) and the
    others keep their values in ``base``.

    Parameters
    ----------
    model : Model
        Gives the parameters' names, shapes and order (``model.specs``).
    base : Tensor
        Every entry of every parameter, flattened in ``specs`` order, row-major within each.
    free_index : sequence of int, optional
        The positions in ``base`` that ``theta`` sets (default: all).
    """

    def __init__(self, model, base: Tensor, free_index: Iterable[int] | None = None):
        self.model, self.specs = model, list(model.specs)
        self.base = base
        index = range(base.numel()) if free_index is None else list(free_index)
        self.free_index = torch.tensor(list(index), dtype=torch.long, device=base.device)
        self.theta = self.base[self.free_index].clone()

    @classmethod
    def of(
        cls, model, params: Mapping[str, Tensor], fixed: Iterable[str] = (), dtype=torch.float64, device=None
    ) -> ParamView:
        """The view of ``params`` (named tensors) with every entry free except those of the ``fixed`` names."""
        fixed = frozenset(fixed)
        base = flatten(model.specs, params, dtype, device)
        return cls(model, base, positions(model.specs, [s.name for s in model.specs if s.name not in fixed]))

    @property
    def names(self) -> list[str]:
        """The flat names of the free entries (``a[0]``, ``b``...), in ``theta``'s order."""
        every = [n for s in self.specs for n in s.flat_names()]
        return [every[i] for i in self.free_index.tolist()]

    def full(self, theta: Tensor) -> Tensor:
        """Every entry, with the free ones set from ``theta``."""
        return self.base.index_copy(0, self.free_index, theta)

    def unflatten(self, full: Tensor) -> dict[str, Tensor]:
        """Named tensors from a full flat vector (views of it: gradients flow back)."""
        return unflatten(self.specs, full)

    def params(self, theta: Tensor) -> dict[str, Tensor]:
        """Named tensors at ``theta``."""
        return self.unflatten(self.full(theta))

    def predict(self, theta: Tensor, x: Tensor) -> Tensor:
        """The model's predictions at ``theta`` for the rows ``x``."""
        return self.model(self.params(theta), x)

    def residuals(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """``y - f(x; theta)``, flattened."""
        return y.reshape(-1) - self.predict(theta, x).reshape(-1)

    def jacobian(self, theta: Tensor, x: Tensor) -> Tensor:
        """``d f(x; theta) / d theta`` as ``(rows x outputs, free entries)``, in that much memory."""
        return row_jacobian(lambda t: self.predict(t, x).reshape(-1), theta)


def flatten(specs, params: Mapping[str, Tensor], dtype=torch.float64, device=None) -> Tensor:
    """Every entry of ``params`` in ``specs`` order (row-major within each) as one vector of ``dtype``."""
    return pack(params, [s.name for s in specs], dtype, device, detach=True)


def pack(
    values: Mapping[str, Tensor],
    names: Iterable[str],
    dtype: torch.dtype | None = None,
    device=None,
    detach: bool = False,
) -> Tensor:
    """The entries of the tensors ``values[n]`` for ``n`` in ``names``, in that order (row-major within each), as
    one vector.

    Parameters
    ----------
    values : mapping of str to Tensor
        Named tensors (parameters, or per-entry bounds), of any shapes.
    names : iterable of str
        Which of them, in which order: ``model.param_names``, the trainable names, a subset.
    dtype, device : optional
        Of the vector; None keeps the tensors' own (mixed dtypes promote as ``torch.cat`` does). With no names the
        vector is empty, of ``dtype`` (torch's default when None).
    detach : bool
        Cut the vector from the tensors' graphs; by default it is differentiable in them.

    Examples
    --------
    >>> pack({"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor(5.0)}, ["b", "a"]).tolist()
    [5.0, 1.0, 2.0, 3.0, 4.0]
    """
    parts = []
    for n in names:
        t = torch.as_tensor(values[n])
        parts.append((t.detach() if detach else t).to(device=device, dtype=dtype).reshape(-1))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype, device=device)


def unflatten(specs, flat: Tensor) -> dict[str, Tensor]:
    """The named tensors of ``specs`` (their shapes, in their order) from the consecutive entries of ``flat``, which
    holds exactly those entries: the inverse of :func:`pack` over ``[s.name for s in specs]``. Each is a view of
    ``flat``, so gradients flow back.

    Examples
    --------
    >>> from gradfit.models.base import ParamSpec
    >>> unflatten([ParamSpec("b", ()), ParamSpec("a", (2,))], torch.tensor([5.0, 1.0, 2.0]))
    {'b': tensor(5.), 'a': tensor([1., 2.])}
    """
    specs = list(specs)
    return {s.name: t.reshape(s.shape) for s, t in zip(specs, torch.split(flat, [s.size for s in specs]))}


def positions(specs, names: Iterable[str]) -> list[int]:
    """The positions, in a vector of every entry of ``specs`` (``flatten``'s), of the entries of ``names``, in
    ``specs`` order whatever the order of ``names``."""
    chosen, pos = frozenset(names), 0
    out: list[int] = []
    for s in specs:
        if s.name in chosen:
            out.extend(range(pos, pos + s.size))
        pos += s.size
    return out


def gradient(f: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """``d f / d theta`` of a scalar function."""
    with torch.enable_grad():
        t = theta.detach().clone().requires_grad_(True)
        return torch.autograd.grad(f(t), t)[0]


def hessian(f: Callable[[Tensor], Tensor], theta: Tensor) -> Tensor:
    """``d² f / d theta²`` of a scalar function (``torch.func``, else autograd for models it cannot transform)."""
    try:
        with torch.enable_grad():
            return torch.func.hessian(f)(theta)
    except (RuntimeError, NotImplementedError, TypeError):
        return torch.autograd.functional.hessian(f, theta)


def hvp(f: Callable[[Tensor], Tensor], theta: Tensor, v: Tensor) -> Tensor | None:
    """The Hessian of a scalar function at ``theta`` times ``v`` by double backward, or None when ``f`` has
    no second derivative there (it does not depend on ``theta``, or is linear in it)."""
    t = theta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        total = f(t)
        if not total.requires_grad:
            return None
        (g,) = torch.autograd.grad(total, t, create_graph=True)
        if not g.requires_grad:
            return None
        (hv,) = torch.autograd.grad(g, t, grad_outputs=v, allow_unused=True)
    return hv


@dataclass
class Problem:
    """What is being fitted: model, loss, rows (``x``, ``y``, weights ``w``; or a :class:`gradfit.rowpass.RowSet`
    ``x`` alone), held names and bounds.

    ``chunk_size`` (``FitConfig.chunk_size``; None for :data:`gradfit.rowpass.CHUNK_ROWS`) sets the rows per
    chunk of every pass over the rows.
    """

    model: object
    loss: Loss
    x: Tensor | RowSet
    y: Tensor | None = None
    w: Tensor | None = None
    fixed: frozenset = frozenset()
    bounds: object = None
    chunk_size: int | None = None
    trainable: tuple = field(init=False)

    def __post_init__(self):
        self.fixed = frozenset(self.fixed)
        self.trainable = tuple(n for n in self.model.param_names if n not in self.fixed)

    def rows(self, chunk_size: int | None = None, dtype: torch.dtype | None = None) -> RowSource:
        """The rows as a :class:`gradfit.rowpass.RowSource`, each chunk converted to ``dtype`` when given."""
        return rows_of(self.x, self.y, self.w, chunk_size or self.chunk_size, dtype=dtype)

    @property
    def device(self) -> torch.device:
        """Where the rows' chunks are (and so where the parameters go)."""
        return self.x.device if isinstance(self.x, Tensor) else torch.device(getattr(self.x, "device", "cpu"))

    def view(self, params: Mapping[str, Tensor], dtype=torch.float64) -> ParamView:
        """The flat view of ``params`` whose free entries are those of the trainable names."""
        return ParamView.of(self.model, params, self.fixed, dtype, self.device)

    def total(self, view: ParamView, theta: Tensor, x: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        """The loss summed over the rows given (``Σ wᵢℓᵢ`` when weighted)."""
        pred = view.predict(theta, x)
        return self.loss.total(pred, y) if w is None else self.loss.total(pred, y, w)

    def gradient(self, view: ParamView, theta: Tensor, rows: RowSource | None = None) -> Tensor:
        """The gradient of the summed loss at ``theta``, summed over the row chunks in float64."""
        return reduce(
            lambda x, y, w: gradient(lambda t: self.total(view, t, x, y, w), theta),
            rows if rows is not None else self.rows(),
        )

    def hvp(self, view: ParamView, theta: Tensor, v: Tensor, rows: RowSource | None = None) -> Tensor:
        """The Hessian of the summed loss at ``theta`` times ``v``, summed over the row chunks in float64 (zero
        where the loss has no second derivative)."""

        def part(x, y, w):
            hv = hvp(lambda t: self.total(view, t, x, y, w), theta, v)
            return torch.zeros_like(theta) if hv is None else hv

        return reduce(part, rows if rows is not None else self.rows())

    def normal_equations(self, view: ParamView, theta: Tensor, rows: RowSource | None = None) -> tuple[Tensor, Tensor]:
        """``(JᵀWJ, JᵀWr)`` at ``theta`` for one output per row (``W`` the row weights; the identity when none),
        summed over chunks whose Jacobian holds at most :data:`gradfit.rowpass.JACOBIAN_NUMBERS` numbers."""

        def part(x, y, w):
            J, r = view.jacobian(theta, x), view.residuals(theta, x, y)
            Jw = J if w is None else w[:, None] * J
            return Jw.T @ J, Jw.T @ r

        if rows is None:
            rows = self.rows(jacobian_rows(theta.numel(), chunk_size=self.chunk_size))
        return reduce(part, rows)
