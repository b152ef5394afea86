"""The exact least-squares optimum, where one exists in closed form.

When the loss is the mean squared error and the model is linear in its free parameters,
``f(x; theta) = f(x; 0) + J theta`` with a Jacobian ``J`` that does not depend on ``theta``,
the best parameters solve the linear least-squares problem ``J theta = y - f(x; 0)``. Pictures
draw that answer next to where gradient descent went, so a reader sees how close it got.

Linearity is checked, not assumed: ``J`` is taken at the fitted parameters and at a perturbed
copy and must agree to 1e-6 (relative). The solve runs in float64. A weighted fit's optimum is
the weighted one: rows of ``J`` and of the residuals are multiplied by ``sqrt(wᵢ)``.
"""

from __future__ import annotations

import torch

from gradfit.analysis.rundata import run_data
from gradfit.data.dataset import Dataset
from gradfit.models.base import flatten_params

CHECK_ROWS = 512          # rows used to test linearity (the Jacobian there decides)
MAX_PARAMS = 2_000        # beyond this the Jacobian is too costly for a picture's side note
DIRECT_ROWS = 200_000     # above this, solve the normal equations accumulated over chunks
RTOL = 1e-6


def least_squares_optimum(result, data=None) -> dict[str, float] | None:
    """The mse-optimal parameters of a model linear in its free parameters, else None.

    Parameters
    ----------
    result : FitResult
        Its loss must be ``"mse"`` and its model one output; fixed parameters stay at their values.
    data : optional
        The data, as for :func:`gradfit.analysis.rundata.run_data`. Every row is used, so with
        a validation split the optimum is that of all rows, not of the training rows alone.

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
    if model is None or result.config.get("loss", "mse") != "mse" or model.n_outputs != 1:
        return None
    weights = result.data.get("weights")
    if weights and weights.get("column") is None and not (isinstance(data, Dataset) and data.w is not None):
        return None  # weighted by an array the run did not keep: no optimum to compare with
    ds = data if isinstance(data, Dataset) else run_data(result, data)
    x = ds.x.detach().to("cpu", torch.float64)
    y = ds.y.detach().to("cpu", torch.float64)
    root = None if ds.w is None else ds.w.detach().to("cpu", torch.float64).sqrt()
    specs = model.specs
    flat = flatten_params(specs, result.params)
    names = list(flat)
    fixed = set(result.fixed)
    free = [n for s in specs if s.name not in fixed for n in s.flat_names()]
    if not free or len(free) > MAX_PARAMS:
        return None

    def predict(theta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        values = dict(flat)
        values.update(zip(free, theta.unbind()))
        params = {s.name: torch.stack([torch.as_tensor(values[n], dtype=torch.float64) for n in s.flat_names()])
                  .reshape(s.shape) for s in specs}
        return model(params, rows).reshape(-1)

    theta = torch.tensor([flat[n] for n in free], dtype=torch.float64)
    if not torch.isfinite(theta).all():
        return None
    probe = x[:CHECK_ROWS]
    gen = torch.Generator().manual_seed(0)
    other = theta + (0.5 + torch.rand(theta.shape, generator=gen, dtype=torch.float64)) * (theta.abs() + 1.0)
    try:
        j1 = _jacobian(predict, theta, probe)
        j2 = _jacobian(predict, other, probe)
    except (RuntimeError, TypeError, ValueError):
        return None  # a forward torch cannot differentiate here: no closed form to offer
    scale = float(torch.maximum(j1.abs().max(), j2.abs().max()))
    if not (torch.isfinite(j1).all() and torch.isfinite(j2).all()) or (j1 - j2).abs().max() > RTOL * max(scale, 1e-300):
        return None

    zero = torch.zeros_like(theta)
    if len(x) <= DIRECT_ROWS:
        J = _jacobian(predict, theta, x)
        with torch.no_grad():
            r = y - predict(zero, x)
        if root is not None:
            J, r = root[:, None] * J, root * r
        solution = torch.linalg.lstsq(J, r[:, None], driver="gelsd").solution[:, 0]
    else:
        solution = _normal_equations(predict, theta, zero, x, y, root=root)
    out = dict(flat)
    out.update(zip(free, solution.tolist()))
    return {n: float(out[n]) for n in names}


def _jacobian(predict, theta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(n, p)``: d predictions / d free parameters at ``theta``."""
    return torch.autograd.functional.jacobian(lambda t: predict(t, rows), theta, vectorize=True)


def _normal_equations(predict, theta, zero, x, y, chunk: int = 65_536, root=None) -> torch.Tensor:
    """Solve ``J^T J theta = J^T r`` accumulated over row chunks, so 10^8 rows never build a full Jacobian
    (``J`` and ``r`` with rows times ``root``, the square roots of the weights, when given)."""
    p = theta.numel()
    jtj = torch.zeros(p, p, dtype=torch.float64)
    jtr = torch.zeros(p, dtype=torch.float64)
    for start in range(0, len(x), chunk):
        rows = x[start:start + chunk]
        J = _jacobian(predict, theta, rows)
        with torch.no_grad():
            r = y[start:start + chunk] - predict(zero, rows)
        if root is not None:
            J, r = root[start:start + chunk, None] * J, root[start:start + chunk] * r
        jtj += J.T @ J
        jtr += J.T @ r
    return torch.linalg.lstsq(jtj, jtr[:, None], driver="gelsd").solution[:, 0]

