"""The stability limit of plain gradient descent: ``lr < 2 / lambda_max``.

Near a point where the loss is roughly quadratic, one full-batch step ``p -= lr * grad`` multiplies
the error along each eigenvector of the Hessian by ``1 - lr * lambda``. Along the steepest
direction (the largest eigenvalue ``lambda_max``) that factor leaves [-1, 1] once
``lr > 2 / lambda_max``: the iterates oscillate with growing amplitude and the fit diverges. The
same bound, scaled, holds for momentum: ``2 (1 + beta) / lambda_max`` for heavy ball and
``2 (1 + beta) / ((1 + 2 beta) lambda_max)`` for Nesterov (torch's formulations).

``lambda_max`` is found without forming the Hessian: power iteration on Hessian-vector products
(double backward through the model), accumulated over row chunks in float64, from a seeded random
start, so the answer is deterministic and the memory is that of one chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from gradfit.errors import ConfigError, ModelError
from gradfit.problem import ParamView, Problem
from gradfit.rowpass import chunk_rows, evenly_spaced

__all__ = ["StabilityLimit", "adam_lr", "check_lr", "lr_limit", "stability_limit", "stability_limit_of", "suggested_lr"]

MAX_CHECK_PARAMS = 10_000  # check_lr skips larger models: their power iteration costs as much as many steps
CHECK_ROWS = 10_000  # check_lr's subsample: a warning needs the eigenvalue to a few percent, not to 1e-4
_MOMENTUM_DEFAULT = 0.9  # what gradfit's 'momentum' and 'nesterov' use when no momentum is given


@dataclass(frozen=True)
class StabilityLimit:
    """The largest Hessian eigenvalue of the mean loss and the lr beyond which plain GD diverges.

    Attributes
    ----------
    lam_max : float
        Largest eigenvalue of the Hessian of the mean loss w.r.t. the free parameters.
    limit : float
        ``2 / lam_max``: full-batch gradient descent diverges above it on a quadratic (inf when
        ``lam_max <= 0``, where no step size is unstable along the curvature).
    iterations : int
        Hessian-vector products taken by the power iteration.
    rows_used : int
        Rows the Hessian was averaged over (at most ``max_rows``).
    converged : bool
        Whether successive Rayleigh quotients agreed to ``tol`` (relative).
    """

    lam_max: float
    limit: float
    iterations: int
    rows_used: int
    converged: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["limit"] = d["limit"] if math.isfinite(d["limit"]) else "inf"  # JSON has no inf
        return d


def stability_limit(
    model,
    loss,
    x: Tensor,
    y: Tensor,
    params: Mapping[str, Tensor],
    fixed: Iterable[str] = (),
    max_rows: int = 100_000,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    w: Tensor | None = None,
    chunk_size: int | None = None,
) -> StabilityLimit:
    """``lambda_max`` of the Hessian of the mean loss at ``params``, and the limit ``2 / lambda_max``.

    Parameters
    ----------
    model : gradfit Model
    loss : gradfit Loss or a loss name ("mse", ...)
    x, y : Tensor
        ``(n, k)`` inputs and ``(n,)`` targets; computed in float64 whatever their dtype.
    params : mapping of name to Tensor
        The point to look at (not modified).
    fixed : names
        Parameters held fixed: not part of the Hessian.
    max_rows : int
        At most this many rows, evenly spaced over the data, are used. Beyond that the result
        is an estimate of the full data's eigenvalue (good when the rows are not sorted by
        something the curvature depends on strongly).
    iters, tol : int, float
        Power-iteration budget and relative tolerance on the eigenvalue.
    seed : int
        Seed of the random starting vector.
    w : Tensor, optional
        ``(n,)`` row weights: the Hessian is that of the weighted mean loss ``Σ wᵢℓᵢ / Σ wᵢ``.
    chunk_size : int, optional
        Rows per chunk of each Hessian-vector product (a fit's ``FitConfig.chunk_size``; default
        :data:`gradfit.rowpass.CHUNK_ROWS`).

    Returns
    -------
    StabilityLimit

    Examples
    --------
    >>> import torch
    >>> from gradfit.models.builder import build_model
    >>> x = torch.linspace(-1, 1, 50)[:, None]
    >>> s = stability_limit(build_model("linear", ("x",)), "mse", x, 3 * x[:, 0], {"a": torch.zeros(2)})
    >>> round(s.lam_max, 3), round(s.limit, 3)   # 2/n X^T X has eigenvalues 2*mean(x^2)=0.694 and 2
    (2.0, 1.0)
    """
    if isinstance(loss, str):
        from gradfit.losses import get_loss

        loss = get_loss(loss)
    for name, value, low in (("max_rows", max_rows, 1), ("iters", iters, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"The '{name}' parameter must be a whole number >= {low}. Got {value!r} instead.")
    fixed = frozenset(fixed)
    n = x.shape[0]
    if n == 0:
        raise ConfigError("The stability limit needs at least one row of data.")
    if n > max_rows:
        rows = evenly_spaced(n, max_rows, x.device)
        x, y = x[rows], y[rows]
        w = None if w is None else w[rows]
    x, y = x.double(), y.double()
    w = None if w is None else w.double()
    count = len(x) if w is None else max(float(w.sum()), 1e-300)
    problem = Problem(model, loss, x, y, w, fixed, chunk_size=chunk_size)
    view = problem.view(params)
    p, theta = view.theta.numel(), view.theta
    if p == 0:
        return StabilityLimit(0.0, math.inf, 0, len(x), True)

    def hvp(v: Tensor) -> Tensor:
        return problem.hvp(view, theta, v) / count

    gen = torch.Generator().manual_seed(int(seed))
    v0 = torch.randn(p, generator=gen, dtype=torch.float64).to(x.device)
    lam, used, converged = _power(hvp, v0, 0.0, iters, tol)
    if not math.isfinite(lam):
        raise ModelError(
            "The loss's curvature at these parameters is not finite (NaN or inf): the stability limit "
            "cannot be computed there. Check the initial values and the data."
        )
    if lam < 0:
        # Power iteration finds the eigenvalue largest in magnitude; when that one is negative, shifting by it
        # makes the largest (algebraic) eigenvalue the dominant one.
        mu, more, converged = _power(hvp, v0, -lam, iters, tol)
        lam, used = mu + lam, used + more
    return StabilityLimit(float(lam), 2.0 / lam if lam > 0 else math.inf, used, len(x), converged)


def _power(hvp, v: Tensor, shift: float, iters: int, tol: float) -> tuple[float, int, bool]:
    """Largest-magnitude eigenvalue of ``H + shift I`` by power iteration (Rayleigh quotients)."""
    v = v / v.norm()
    lam = math.nan
    for i in range(1, iters + 1):
        w = hvp(v) + shift * v
        new = float(v @ w)
        norm = float(w.norm())
        if not math.isfinite(norm):
            return math.nan, i, False
        if norm == 0.0:
            return 0.0, i, True  # v lies in the null space; H (shifted) is zero along every direction tried
        if math.isfinite(lam) and abs(new - lam) <= tol * abs(new):
            return new, i, True
        lam, v = new, w / norm
    return lam, iters, False


def stability_limit_of(result, data=None, chunk_size: int | None = None, **options) -> StabilityLimit:
    """The stability limit of a fit at its INITIAL parameters (``result.init_params``), on all its rows.

    ``data`` as for :func:`gradfit.analysis.fitted_data.run_data` (needed when the fit was given data in
    memory). With a validation split the Hessian is that of every row, not of the training rows alone.
    The rows are read in the fit's chunks (``result.config["chunk_size"]``) unless ``chunk_size`` says
    otherwise. ``options`` go to :func:`stability_limit`.
    """
    from gradfit.analysis.fitted_data import chunk_size_of, run_data
    from gradfit.losses import get_loss
    from gradfit.models.base import unflatten_params

    if result.model is None:
        raise ModelError(
            "This result has no model (loaded from JSON with a callable or nn.Module model): pass "
            "model=... to FitResult.from_json to compute its stability limit."
        )
    name = result.config.get("loss", "mse")
    try:
        loss = get_loss(name, **(result.config.get("loss_options") or {}))
    except ConfigError:
        raise ConfigError(
            f"The run's loss {name!r} cannot be rebuilt by name (a custom loss function?), so its "
            f"stability limit cannot be computed from the saved run."
        ) from None
    ds = run_data(result, data, weighted=True)
    assert ds.y is not None  # run_data reads the fit's target column (result.data["y"]): a fit has one
    params = unflatten_params(result.model.specs, result.init_params)
    return stability_limit(
        result.model,
        loss,
        ds.x,
        ds.y,
        params,
        result.fixed,
        **{"w": ds.w, "chunk_size": chunk_size_of(result, chunk_size), **options},
    )


def lr_limit(limit: StabilityLimit, optimizer: str = "sgd", momentum: float | None = None) -> float | None:
    """The largest stable lr on a quadratic for ``optimizer``, or None when no such bound applies.

    ``sgd``: ``2/lam``; ``momentum`` (heavy ball, torch's form): ``2(1+b)/lam``; ``nesterov``:
    ``2(1+b)/((1+2b) lam)``, with ``b`` the momentum (0.9 by default). Adaptive optimizers rescale
    the gradient per parameter, so the bound says nothing about their lr: None.
    """
    from gradfit.optim.registry import optimizer_name

    key = optimizer_name(optimizer)
    b = _MOMENTUM_DEFAULT if momentum is None else float(momentum)
    if key == "sgd":
        return limit.limit
    if key == "momentum":
        return limit.limit * (1 + b)
    if key == "nesterov":
        return limit.limit * (1 + b) / (1 + 2 * b)
    return None


def check_lr(
    model,
    loss,
    x: Tensor,
    y: Tensor,
    params: Mapping[str, Tensor],
    fixed: Iterable[str],
    lr: float,
    optimizer: str,
    momentum: float | None = None,
    max_params: int = MAX_CHECK_PARAMS,
    max_rows: int = CHECK_ROWS,
    w: Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[StabilityLimit | None, str | None]:
    """The stability limit at the start of a fit and, when ``lr`` exceeds it, the warning to give.

    Returns ``(None, None)`` when the bound does not apply (an optimizer other than sgd, momentum or
    nesterov; more than ``max_params`` free parameters; a curvature that cannot be computed there),
    ``(limit, None)`` when ``lr`` is within it, and ``(limit, text)`` when it is not. It is cheap enough
    to run before every fit: at most ``max_rows`` evenly spaced rows, 30 Hessian-vector products, and a
    relative tolerance of 1e-3 on the eigenvalue, the rows read ``chunk_size`` at a time (the fit's).

    Examples
    --------
    >>> import torch
    >>> from gradfit.models.builder import build_model
    >>> x = torch.linspace(-1, 1, 50)[:, None]
    >>> lim, text = check_lr(build_model("linear", ("x",)), "mse", x, 3 * x[:, 0], {"a": torch.zeros(2)}, (), 1.5, "sgd")
    >>> print(text)  # doctest: +ELLIPSIS
    The learning rate 1.5 exceeds the stability limit of gradient descent here, 1 (= 2 / 2, ...
    """
    from gradfit.optim.registry import optimizer_name

    key = optimizer_name(optimizer)
    if key not in ("sgd", "momentum", "nesterov"):
        return None, None
    fixed = frozenset(fixed)
    if sum(s.size for s in model.specs if s.name not in fixed) > max_params:
        return None, None
    try:
        limit = stability_limit(
            model, loss, x, y, params, fixed, max_rows=max_rows, iters=30, tol=1e-3, w=w, chunk_size=chunk_size
        )
    except (ModelError, RuntimeError):
        return None, None  # the fit itself will report a non-finite start; this check must never block it
    bound = lr_limit(limit, key, momentum)
    if bound is None or not math.isfinite(bound) or lr <= bound:
        return limit, None
    how = (
        f"= 2 / {limit.lam_max:.4g}, the largest curvature of the loss at the start"
        if key == "sgd"
        else f"for {key} with momentum {_MOMENTUM_DEFAULT if momentum is None else momentum:g}; "
        f"largest curvature {limit.lam_max:.4g}"
    )
    text = (
        f"The learning rate {lr:.4g} exceeds the stability limit of gradient descent here, {bound:.4g} ({how}). "
        f"Full-batch {key} is likely to oscillate and diverge; try lr < {bound:.3g}, for example "
        f"lr={0.5 * bound:.2g}, or an adaptive optimizer such as adam, or scale the data."
    )
    return limit, text


def suggested_lr(limit: StabilityLimit, optimizer: str = "sgd", momentum: float | None = None) -> float | None:
    """Half the stability limit of ``optimizer`` (``1 / lam_max`` for sgd): the default lr of gradient descent.

    On a quadratic, ``lr = 1 / lam_max`` takes the steepest direction to its minimum in one step and
    every other direction monotonically towards it; half the limit also leaves room for curvature
    that grows as the fit moves. None when no finite bound applies (no curvature, adaptive optimizers).

    Examples
    --------
    >>> suggested_lr(StabilityLimit(2.0, 1.0, 10, 50, True))
    0.5
    """
    bound = lr_limit(limit, optimizer, momentum)
    return 0.5 * bound if bound is not None and math.isfinite(bound) and bound > 0 else None


def adam_lr(
    model,
    loss,
    x: Tensor,
    y: Tensor,
    params: Mapping[str, Tensor],
    fixed: Iterable[str] = (),
    max_rows: int = CHECK_ROWS,
    w: Tensor | None = None,
    chunk_size: int | None = None,
) -> float | None:
    """A learning rate for Adam from the curvature of the loss along Adam's first step.

    Adam's first update moves every free entry by ``lr`` against the sign of its gradient: ``d = -lr s``
    with ``s = sign(g)``. Along that line the loss is ``f - t |g|_1 + t² sᵀHs / 2``, lowest at
    ``t* = |g|_1 / sᵀHs`` and no lower than the start again past ``2 t*``. Adam keeps stepping by about
    ``lr`` while the signs agree, so ``lr = t* / 10`` reaches that minimum in about ten steps without
    overshooting it. None when the curvature along ``s`` is not positive and finite (then the caller
    keeps torch's default). At most ``max_rows`` evenly spaced rows, in float64, in chunks of ``chunk_size``
    rows (the fit's; default :data:`gradfit.rowpass.CHUNK_ROWS`).
    """
    if isinstance(loss, str):
        from gradfit.losses import get_loss

        loss = get_loss(loss)
    fixed = frozenset(fixed)
    specs = [s for s in model.specs if s.name not in fixed]
    if not specs or x.shape[0] == 0:
        return None
    if x.shape[0] > max_rows:
        rows = evenly_spaced(x.shape[0], max_rows, x.device)
        x, y, w = x[rows], y[rows], None if w is None else w[rows]
    x, y, w = x.double(), y.double(), None if w is None else w.double()
    count = x.shape[0] if w is None else max(float(w.sum()), 1e-300)
    if x.shape[0] > chunk_rows(chunk_size):
        return _adam_lr_in_chunks(Problem(model, loss, x, y, w, fixed, chunk_size=chunk_size), params, count)
    view = ParamView.of(model, params, fixed, device=x.device)
    theta = view.theta.requires_grad_(True)
    with torch.enable_grad():
        pred = view.predict(theta, x)
        mean = (loss.total(pred, y) if w is None else loss.total(pred, y, w)) / count
        if not mean.requires_grad:
            return None
        (g,) = torch.autograd.grad(mean, theta, create_graph=True)
        s = torch.sign(g.detach())
        if not g.requires_grad or not torch.isfinite(g).all() or not s.any():
            return None
        (hs,) = torch.autograd.grad(g, theta, grad_outputs=s, allow_unused=True)
    if hs is None:
        return None
    return _tenth_of_newton(float(s @ hs), float(g.detach().abs().sum()))


def _adam_lr_in_chunks(problem: Problem, params: Mapping[str, Tensor], count: float) -> float | None:
    """:func:`adam_lr` over more rows than one chunk: the gradient, then the curvature along its signs, each
    summed over the chunks (one chunk takes :func:`adam_lr`'s single pass, whose numbers this reproduces to
    rounding)."""
    view = problem.view(params)
    try:
        g = problem.gradient(view, view.theta) / count
    except RuntimeError:  # the loss does not depend on the free parameters
        return None
    s = torch.sign(g)
    if not torch.isfinite(g).all() or not s.any():
        return None
    hs = problem.hvp(view, view.theta, s) / count  # zero where the loss is linear in them: no curvature
    return _tenth_of_newton(float(s @ hs), float(g.abs().sum()))


def _tenth_of_newton(curvature: float, slope: float) -> float | None:
    """A tenth of the Newton step along the signs, ``|g|_1 / sᵀHs``; None unless both are positive and finite."""
    if not (math.isfinite(curvature) and curvature > 0 and math.isfinite(slope) and slope > 0):
        return None
    return 0.1 * slope / curvature
