"""The exact least-squares optimum, where one exists in closed form.

When the loss is the mean squared error and the model is linear in its free parameters,
``f(x; theta) = f(x; 0) + J theta`` with a Jacobian ``J`` that does not depend on ``theta``,
the best parameters solve the linear least-squares problem ``J theta = y - f(x; 0)``. Pictures
draw that answer next to where gradient descent went, so a reader sees how close it got.

Linearity is checked, not assumed: ``J`` is taken at the fitted parameters and at a perturbed
copy and must agree to 1e-6 (relative). The solve runs in float64, over chunks of rows folded into
one triangular factor, so its memory is a chunk's Jacobian (at most 2^22 numbers) whatever the
number of rows. A weighted fit's optimum is the weighted one: rows of ``J`` and of the residuals
are multiplied by ``sqrt(wᵢ)``.
"""

from __future__ import annotations

import torch

from gradfit.analysis.fitted_data import chunk_size_of, run_data
from gradfit.data.dataset import Dataset
from gradfit.models.base import flatten_params
from gradfit.problem import ParamView
from gradfit.rowpass import MemoryRows, fold, jacobian_rows

CHECK_ROWS = 512  # rows used to test linearity (the Jacobian there decides)
MAX_PARAMS = 2_000  # beyond this the Jacobian is too costly for a picture's side note
RTOL = 1e-6


def least_squares_optimum(result, data=None, chunk_size: int | None = None) -> dict[str, float] | None:
    """The mse-optimal parameters of a model linear in its free parameters, else None.

    Parameters
    ----------
    result : FitResult
        Its loss must be ``"mse"`` and its model one output; fixed parameters stay at their values.
    data : optional
        The data, as for :func:`gradfit.analysis.fitted_data.run_data`. Every row is used, so with
        a validation split the optimum is that of all rows, not of the training rows alone.
    chunk_size : int, optional
        Rows per chunk of the solve (at least one more than the free parameters); default the fit's own
        (``result.config["chunk_size"]``).

    Returns
    -------
    dict of str to float or None
        Every flat parameter (``a[0]``, ``b``...) at the optimum, or None when the loss is not
        mse, the model is not linear in its free parameters, it has no model, or it was weighted
        by an array that the run did not keep (and ``data`` does not bring it back).

    Examples
    --------
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=50)  # doctest: +SKIP
    >>> least_squares_optimum(r)  # doctest: +SKIP
    {'a[0]': 3.07..., 'a[1]': 2.46...}
    """
    model = result.model
    chunk_size = chunk_size_of(result, chunk_size)
    if model is None or result.config.get("loss", "mse") != "mse" or model.n_outputs != 1:
        return None
    weights = result.data.get("weights")
    if weights and weights.get("column") is None and not (isinstance(data, Dataset) and data.w is not None):
        return None  # weighted by an array the run did not keep: no optimum to compare with
    ds = data if isinstance(data, Dataset) else run_data(result, data)
    assert ds.y is not None  # the least-squares optimum needs targets: those of the fit, or of the data given
    x, y, w = ds.x.detach(), ds.y.detach(), None if ds.w is None else ds.w.detach()
    flat = flatten_params(model.specs, result.params)
    names = list(flat)
    view = ParamView.of(model, result.params, result.fixed, device="cpu")
    free = view.names
    if not free or len(free) > MAX_PARAMS:
        return None
    theta = view.theta
    if not torch.isfinite(theta).all():
        return None
    probe = _float64(x[:CHECK_ROWS])
    gen = torch.Generator().manual_seed(0)
    other = theta + (0.5 + torch.rand(theta.shape, generator=gen, dtype=torch.float64)) * (theta.abs() + 1.0)
    try:
        j1 = view.jacobian(theta, probe)
        j2 = view.jacobian(other, probe)
    except (RuntimeError, TypeError, ValueError):
        return None  # a forward torch cannot differentiate here: no closed form to offer
    scale = float(torch.maximum(j1.abs().max(), j2.abs().max()))
    if not (torch.isfinite(j1).all() and torch.isfinite(j2).all()) or (j1 - j2).abs().max() > RTOL * max(scale, 1e-300):
        return None

    solution = _solve(view, theta, x, y, w, chunk_size)
    out = dict(flat)
    out.update(zip(free, solution.tolist()))
    return {n: float(out[n]) for n in names}


def _float64(t: torch.Tensor) -> torch.Tensor:
    return t.to("cpu", torch.float64)


def _solve(view: ParamView, theta, x, y, w=None, chunk_size: int | None = None) -> torch.Tensor:
    """The least-squares solution of ``J theta = y - f(x; 0)`` (rows times ``sqrt(w)`` when weighted), from the
    triangular factor of ``[J | r]`` accumulated over row chunks (``[R; J_chunk] = Q R'``, as
    :mod:`gradfit.analysis.curvature` does): memory chunk x parameters, whatever the number of rows, and none of
    the normal equations' squared condition number."""
    p = theta.numel()
    zero = torch.zeros_like(theta)

    def step(aug, xc, yc, wc):
        J = view.jacobian(theta, xc)
        with torch.no_grad():
            r = yc.reshape(-1) - view.predict(zero, xc).reshape(-1)
        if wc is not None:
            root = wc.sqrt()
            J, r = root[:, None] * J, root * r
        block = torch.cat([J, r[:, None]], dim=1)
        return torch.linalg.qr(block if aug is None else torch.cat([aug, block]), mode="r").R

    rows = MemoryRows(x, y, w, jacobian_rows(p, chunk_size=chunk_size), dtype=torch.float64, device="cpu")
    aug = fold(step, rows, None)
    if aug.shape[0] < p + 1:  # fewer rows than parameters: the factor's missing rows are zeros
        aug = torch.cat([aug, aug.new_zeros(p + 1 - aug.shape[0], p + 1)])
    # gelsd: the minimum-norm answer when the columns are dependent, as lstsq on J itself gives.
    return torch.linalg.lstsq(aug[:p, :p], aug[:p, p:], driver="gelsd").solution[:, 0]
