"""Uncertainties of fitted parameters: covariance, standard errors, correlations, confidence intervals.

Which covariance, by loss (``method``):

- ``"jacobian"`` (mse): ``cov = s² (JᵀJ)⁻¹`` with ``s² = RSS / (n - p)`` and ``J`` the Jacobian of the
  predictions w.r.t. the free parameters, exactly ``scipy.optimize.curve_fit``'s ``pcov`` with
  ``absolute_sigma=False``. ``J`` is taken by autograd in row chunks and folded into the triangular
  factor ``R`` of its QR decomposition, so the inverse is taken from ``R``'s SVD and the condition
  number is never squared.
- ``"hessian"`` (bce, cross_entropy: negative log-likelihoods): ``cov = H⁻¹``, ``H`` the autograd
  Hessian of the summed loss; normal confidence intervals. For a loss given as a function the same
  formula is used, valid only when its sum over rows is a negative log-likelihood (a warning says so).
- ``"sandwich"`` (huber, an M-estimator): ``cov = n/(n-p) H⁻¹ B H⁻¹`` with ``B = Σ gᵢgᵢᵀ`` over the
  per-row loss gradients (Huber-White), approximate.
- ``"sandwich-lad"`` (mae): its Hessian is zero almost everywhere, so ``H`` is replaced by its
  expectation ``2 f(0) JᵀJ``, ``f(0)`` the residuals' density at zero (Siddiqui's quantile difference
  with the Hall-Sheather bandwidth, as in quantile regression): ``cov = n/(n-p) (JᵀJ)⁻¹ / (4 f(0)²)``,
  the asymptotic covariance of least absolute deviations under i.i.d. errors.

Row weights (``sigma`` or ``weights``, see :mod:`gradfit.data.weights`) enter as they did in the fit:

- ``"jacobian"``: ``J`` and the residuals are multiplied by ``sqrt(wᵢ)``, so ``cov = s² (JᵀWJ)⁻¹`` with
  ``s² = Σ wᵢrᵢ² / (n - p)``, curve_fit's ``pcov`` with ``sigma`` (and statsmodels' WLS); with
  ``absolute_sigma=True`` ``s² = 1``, curve_fit's ``pcov`` with ``absolute_sigma=True``.
- ``"hessian"``: ``H`` of ``Σ wᵢℓᵢ``, so weights count as frequencies (a row of weight 2 is two rows), as
  statsmodels' GLM ``freq_weights``; a warning says so when the weights are not whole numbers.
- ``"sandwich"`` and ``"sandwich-lad"``: the sandwich of the weighted estimator, rows independent:
  ``A⁻¹ B A⁻¹`` with ``A`` the (expected) Hessian of ``Σ wᵢℓᵢ`` and ``B = Σ wᵢ² gᵢgᵢᵀ``.

``n`` counts the rows of positive weight (a row of weight 0 carries no information).

When something cannot be estimated the result says exactly why (``ok=False``, ``reason``) and still
holds every number that is valid: parameters at a bound are held there and the rest estimated; in a
singular problem the estimable parameters (orthogonal to the null space) keep their errors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import torch

from gradfit import memory
from gradfit.analysis import curvature as cv
from gradfit.rowpass import counted_rows, jacobian_rows, rows_device, rows_dtype, rows_triple

__all__ = ["Uncertainty", "compute_uncertainty", "uncertainty_of", "training_data", "loss_trend"]

LIKELIHOODS = ("bce", "cross_entropy")
BUDGET_REASONS = ("max_steps", "max_epochs", "max_time", "interrupted")
SINGULAR = 1e-10  # singular values of the column-scaled Jacobian (or sqrt of H's eigenvalues) below this, relative
NEWTON_WARN = 0.5  # a Newton step longer than this many standard errors: not at a minimum


@dataclass(frozen=True)
class Uncertainty:
    """Uncertainties of every flat parameter (``names``), NaN where not estimated.

    ``cov``/``corr`` span all ``names`` (NaN rows for held or non-estimable parameters) or are None
    when nothing could be computed. ``held`` names the parameters fixed or at a bound, ``at_bound``
    those on a bound, ``no_effect`` those the loss does not depend on.

    Examples
    --------
    >>> u = uncertainty_of(result)  # doctest: +SKIP
    >>> dict(zip(u.names, u.stderr))  # doctest: +SKIP
    {'a': 0.012, 'b': 0.004}
    """

    names: tuple[str, ...]
    values: np.ndarray
    stderr: np.ndarray
    cov: np.ndarray | None
    corr: np.ndarray | None
    ci_low: np.ndarray
    ci_high: np.ndarray
    level: float
    dof: int
    method: str
    ok: bool
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    held: tuple[str, ...] = field(default=())
    no_effect: tuple[str, ...] = ()
    at_bound: tuple[str, ...] = ()
    newton_distance: float | None = None  # the largest move of one Newton step from here, in standard errors

    def to_dict(self) -> dict:
        """JSON-able: arrays as (nested) lists, NaN as None."""
        return {
            "names": list(self.names),
            "values": _list(self.values),
            "stderr": _list(self.stderr),
            "cov": None if self.cov is None else _list(self.cov),
            "corr": None if self.corr is None else _list(self.corr),
            "ci_low": _list(self.ci_low),
            "ci_high": _list(self.ci_high),
            "level": self.level,
            "dof": self.dof,
            "method": self.method,
            "ok": self.ok,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "held": list(self.held),
            "no_effect": list(self.no_effect),
            "at_bound": list(self.at_bound),
            "newton_distance": _list([math.nan if self.newton_distance is None else self.newton_distance])[0],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Uncertainty:
        arr = _floats
        return cls(
            names=tuple(d["names"]),
            values=arr(d["values"]),
            stderr=arr(d["stderr"]),
            cov=arr(d.get("cov")),
            corr=arr(d.get("corr")),
            ci_low=arr(d["ci_low"]),
            ci_high=arr(d["ci_high"]),
            level=float(d["level"]),
            dof=int(d["dof"]),
            method=d["method"],
            ok=bool(d["ok"]),
            reason=d.get("reason"),
            warnings=tuple(d.get("warnings", ())),
            held=tuple(d.get("held", ())),
            no_effect=tuple(d.get("no_effect", ())),
            at_bound=tuple(d.get("at_bound", ())),
            newton_distance=d.get("newton_distance"),
        )

    @classmethod
    def unavailable(cls, flat_params: dict, reason: str, method: str = "jacobian", level: float = 0.95) -> Uncertainty:
        """A record that says why nothing was computed (e.g. a cost guard skipped it)."""
        names = tuple(flat_params)
        return _failed(names, np.array(list(flat_params.values()), dtype=np.float64), level, method, (), (), -1, reason)

    def __getitem__(self, name: str) -> float:
        """The standard error of ``name``."""
        return float(self.stderr[self.names.index(name)])


def compute_uncertainty(
    model,
    loss,
    dataset,
    params,
    fixed=(),
    at_bounds=(),
    level: float = 0.95,
    stopped_early: bool = False,
    max_params: int = 500,
    diverged: bool = False,
    chunk_size: int | None = None,
    sums=None,
) -> Uncertainty:
    """Uncertainties of ``params`` for ``model`` under ``loss`` on ``dataset`` (all its rows).

    Parameters
    ----------
    model : Model
    loss : Loss
    dataset : Dataset
        The rows the fit used.
    params : mapping of str to Tensor
        The fitted values.
    fixed : names
        Held parameters: spec names (``"a"``) or flat names (``"a[0]"``).
    at_bounds : flat names
        Entries on a bound: held there, named in ``reason``.
    level : float
        Confidence level of the intervals, in (0, 1).
    stopped_early : bool
        The fit stopped on its budget while the loss still fell: computed, with a warning.
    max_params : int
        Refuse more free parameters than this (the cost grows as rows x params²).
    diverged : bool
        The fit diverged: nothing is computed.
    chunk_size : int, optional
        Rows per chunk of the passes over ``dataset`` (the fit's ``FitConfig.chunk_size``; default
        :data:`gradfit.rowpass.CHUNK_ROWS`). A Jacobian chunk has at least ``p + 1`` rows.
    sums : PointSums, optional
        Levenberg-Marquardt's sums of ``[J | r]`` at its final point (:class:`gradfit.optim.lm.PointSums`): least
        squares takes its curvature from them, without a pass over the rows, when they were taken of this model, data
        and free parameters at exactly these values (else they are ignored).

    Examples
    --------
    >>> u = compute_uncertainty(r.model, get_loss("mse"), dataset, r.params)  # doctest: +SKIP
    """
    from gradfit.models.base import flatten_params

    flat = flatten_params(model.specs, params)
    names = tuple(flat)
    values = np.array(list(flat.values()), dtype=np.float64)
    held_fixed = [n for n in names if n in set(fixed) or n.split("[")[0] in set(fixed)]
    bound = [n for n in names if n in set(at_bounds) and n not in held_fixed]
    free = [i for i, n in enumerate(names) if n not in held_fixed and n not in bound]
    n, p = counted_rows(dataset), len(free)
    name = getattr(loss, "name", "loss")
    method = (
        "jacobian"
        if loss.least_squares
        else "sandwich-lad"
        if name == "mae"
        else "sandwich"
        if name == "huber"
        else "hessian"
    )
    warnings: list[str] = []
    base = dict(
        names=names, values=values, level=level, method=method, held=tuple(held_fixed + bound), at_bound=tuple(bound)
    )

    if not 0 < level < 1:
        raise ValueError(f"The 'level' parameter must be in (0, 1). Got {level!r} instead.")
    if diverged:
        return _failed(
            **base,
            dof=n - p,
            reason="The fit diverged, so its parameters are not at a minimum of the loss "
            "and have no uncertainty. Fit again with a smaller learning rate or another optimizer.",
        )
    if not np.isfinite(values).all():
        bad = [k for k, v in flat.items() if not math.isfinite(v)]
        return _failed(**base, dof=n - p, reason=f"The parameter(s) {_join(bad)} are not finite.")
    if p == 0:
        return _failed(**base, dof=n, reason="No parameter is free: every one is fixed or at a bound.")
    if p > max_params:
        return _failed(
            **base,
            dof=n - p,
            reason=f"The model has {p} free parameters, more than max_params={max_params}; "
            f"the cost grows as rows x params². Pass max_params={p} (or more) to compute them anyway.",
        )
    # The matrices are p x p (the covariance and correlations over every parameter): weigh them first.
    need = 8.0 * (6 * len(names) ** 2 + 4 * p * p + jacobian_rows(p, chunk_size=chunk_size) * p)
    if not memory.fits(need):
        return _failed(
            **base,
            dof=n - p,
            reason=f"Not computed: the covariance of {p:,} free parameters needs about "
            f"{memory.format_bytes(need)}, more than the memory budget of {memory.budget()}. Fix some "
            f"parameters or fit a smaller model.",
        )
    if n <= p:
        return _failed(
            **base,
            dof=n - p,
            reason=f"No degrees of freedom: {n} data point(s) for {p} free parameter(s). "
            f"Uncertainties need more points than parameters; add data or fix parameters.",
        )
    if bound:
        warnings.append(
            f"{_join(bound)} {'is' if len(bound) == 1 else 'are'} at a bound: no uncertainty there; the "
            f"others were computed with {'it' if len(bound) == 1 else 'them'} held at the bound."
        )
    if stopped_early:
        warnings.append(
            "The fit stopped on its budget while the loss was still falling: the uncertainties describe "
            "the current point, which is not a minimum."
        )
    if name not in LIKELIHOODS and method == "hessian":
        warnings.append(
            f"The loss {name!r} is a user function: cov = H⁻¹ is right only if its sum over rows is a "
            f"negative log-likelihood."
        )
    if method.startswith("sandwich"):
        warnings.append(f"The {name} loss is not a likelihood: the covariance is an approximate {method} estimate.")
    w = rows_triple(dataset)[2]  # a row set's weights are read only in its chunks: not checked here
    if method == "hessian" and w is not None and not bool((w == torch.round(w)).all()):
        warnings.append(
            "The weights are not whole numbers: cov = H⁻¹ of the weighted loss counts them as frequencies "
            "(a row of weight 2 as two rows), so the standard errors scale as 1/sqrt of the weights."
        )

    if name in LIKELIHOODS and float(_mean_loss(model, loss, dataset, params, chunk_size)) < 1e-8:
        return _failed(
            **base,
            dof=n - p,
            warnings=tuple(warnings),
            reason=(
                f"The {name} loss is ~0: the classes are perfectly separated, so the maximum-likelihood estimate lies at "
                f"infinity and the parameters have no finite uncertainty. Add a penalty or more (overlapping) data."
            ),
        )
    problem = cv.DatasetView(model, dataset, values, free, chunk_size, sums=sums, n=n)
    try:
        curv = cv.curvature(problem, loss, method)
    except cv.NotComputable as exc:
        return _failed(**base, dof=n - p, reason=str(exc), warnings=tuple(warnings))
    free_names = [names[i] for i in free]
    inv = cv.invert(curv, SINGULAR)
    cov_free = inv.cov * curv.scale
    if curv.meat is not None:  # the sandwich A⁻¹ B A⁻¹, on the estimable parameters only
        bread = np.nan_to_num(inv.cov)
        cov_free = np.where(np.isfinite(inv.cov), bread @ curv.meat @ bread * curv.scale, np.nan)
    reasons = []
    if inv.no_effect:
        reasons.append(
            f"{_join([free_names[i] for i in inv.no_effect])} "
            f"{'has' if len(inv.no_effect) == 1 else 'have'} no effect on the loss (a zero column of the "
            f"{'Jacobian' if curv.sqrt else 'Hessian'}): fix or remove {'it' if len(inv.no_effect) == 1 else 'them'}."
        )
    if inv.null:
        groups = "; ".join(
            f"{_join([free_names[i] for i in sorted(g)])} are not separately identifiable" for g in inv.null
        )
        reasons.append(
            f"{groups}: the data constrain only {'a combination' if len(inv.null) == 1 else 'combinations'} of "
            f"them (condition number {inv.condition:.2g}). Fix one "
            f"{'of them' if len(inv.null) == 1 else 'parameter of each group'} or reparametrise the model."
        )
    if inv.negative:
        reasons.append(
            f"The Hessian is not positive definite (along {_join([free_names[i] for i in inv.negative])}): "
            f"the point is not a minimum of the loss."
        )
    if bound:
        reasons.append(bound_sentence(bound))

    dof = n - p
    cov = np.full((len(names), len(names)), np.nan)
    cov[np.ix_(free, free)] = cov_free
    stderr = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(stderr, stderr)
    q = _quantile((1 + level) / 2, None if method == "hessian" else dof)
    step = np.nan_to_num(inv.cov) @ curv.gradient  # the Newton (or Gauss-Newton) step from here, in parameter units
    with np.errstate(invalid="ignore", divide="ignore"):
        # Far from the minimum the residuals, hence s² and the errors, are inflated: measure the step in the
        # errors the minimum would have (Gauss-Newton's predicted RSS there) so a distant point is not called near.
        shrink = _predicted_rss(curv, step) / curv.rss if method == "jacobian" and curv.rss > 0 else 1.0
        sigmas = np.abs(step) / (stderr[free] * math.sqrt(shrink))
    distance = float(np.nanmax(sigmas, initial=0.0)) if np.isfinite(sigmas).any() else None
    if np.nanmax(sigmas, initial=0.0) > NEWTON_WARN:
        k = int(np.nanargmax(sigmas))
        warnings.append(
            f"The point is not at a minimum: one Newton step from here would move {free_names[k]} by "
            f"{sigmas[k]:.2g} standard errors. Fit longer (or with optimizer="
            f"{'lm' if loss.least_squares else 'lbfgs'!r}) before trusting these."
        )
    if curv.rss == 0.0 and loss.least_squares:
        warnings.append("The model fits every point exactly (RSS = 0): the standard errors are zero.")
    return Uncertainty(
        names=names,
        values=values,
        stderr=stderr,
        cov=cov,
        corr=corr,
        ci_low=values - q * stderr,
        ci_high=values + q * stderr,
        level=level,
        dof=dof,
        method=method,
        ok=not reasons,
        reason=" ".join(reasons) or None,
        warnings=tuple(warnings),
        held=tuple(held_fixed + bound),
        no_effect=tuple(free_names[i] for i in inv.no_effect),
        at_bound=tuple(bound),
        newton_distance=distance,
    )


def uncertainty_of(
    result, data=None, level: float = 0.95, max_params: int = 500, chunk_size: int | None = None
) -> Uncertainty:
    """:func:`compute_uncertainty` for a :class:`~gradfit.train.result.FitResult`, on the rows it was trained on.

    ``data`` as for :func:`gradfit.analysis.fitted_data.run_data` (a Dataset is used as given). The
    validation split, if any, is redrawn from the seed, so the rows are the training rows. The rows are
    read in the fit's chunks (``result.config["chunk_size"]``) unless ``chunk_size`` says otherwise.
    """
    from gradfit.analysis.fitted_data import chunk_size_of
    from gradfit.errors import ModelError
    from gradfit.losses import get_loss

    if result.model is None:
        raise ModelError(
            "This result has no model (loaded from JSON with a callable model): rebuild it with "
            "FitResult.from_json(..., model=...)."
        )
    loss = get_loss(result.config.get("loss", "mse"), **result.config.get("loss_options", {}))
    dataset = training_data(result, data)
    trend = loss_trend(result.history)
    early = result.stop_reason in BUDGET_REASONS and trend is not None and trend > 1e-5
    return compute_uncertainty(
        result.model,
        loss,
        dataset,
        result.params,
        fixed=result.fixed,
        at_bounds=result.diagnostics.get("at_bounds", ()),
        level=level,
        stopped_early=early,
        max_params=max_params,
        diverged=result.stop_reason == "diverged",
        chunk_size=chunk_size_of(result, chunk_size),
    )


def bound_sentence(names) -> str:
    """The part of ``reason`` that names the parameters on a bound ("" for none)."""
    names = list(names)
    return (
        f"{_join(names)} {'is' if len(names) == 1 else 'are'} at a bound, where the uncertainty is not defined."
        if names
        else ""
    )


def training_data(result, data=None):
    """The rows ``result`` was trained on: ``data`` itself if a Dataset, else the run's data with the
    validation split (if any) redrawn from the seed, as :func:`gradfit.fit` drew it."""
    from gradfit.analysis.fitted_data import run_data
    from gradfit.data.dataset import Dataset

    if isinstance(data, Dataset):
        return data
    dataset = run_data(result, data, weighted=True)
    if result.config.get("val_split"):
        dataset, _ = dataset.split(
            result.config["val_split"], torch.Generator().manual_seed(result.config.get("seed", 0))
        )
    return dataset


def loss_trend(history, fraction: float = 0.1) -> float | None:
    """Relative fall of the loss over the last ``fraction`` of the recorded steps (None if too short)."""
    loss = np.asarray(history.columns.get("loss", ()), dtype=np.float64) if history is not None else np.zeros(0)
    loss = loss[np.isfinite(loss)]
    if len(loss) < 3:
        return None
    start = loss[int((len(loss) - 1) * (1 - fraction))]
    return float((start - loss[-1]) / max(abs(loss[-1]), 1e-300))


def _predicted_rss(curv, step: np.ndarray) -> float:
    """The RSS one Gauss-Newton step from here predicts, ``RSS - (Jᵀr)ᵀ step``, kept within [0, RSS]."""
    drop = float(np.nan_to_num(curv.gradient) @ np.nan_to_num(step))
    return min(max(curv.rss - drop, 0.0), curv.rss)


@torch.no_grad()
def _mean_loss(model, loss, dataset, params, chunk_size: int | None = None) -> float:
    from gradfit.train.objective import Objective

    cast = {k: torch.as_tensor(v).to(rows_device(dataset), rows_dtype(dataset)) for k, v in params.items()}
    return float(Objective(model, loss, chunk_size).value(cast, *rows_triple(dataset)))


def _failed(names, values, level, method, held, at_bound, dof, reason, warnings=()) -> Uncertainty:
    nan = np.full(len(names), np.nan)
    return Uncertainty(
        names=names,
        values=values,
        stderr=nan,
        cov=None,
        corr=None,
        ci_low=nan,
        ci_high=nan,
        level=level,
        dof=dof,
        method=method,
        ok=False,
        reason=reason,
        warnings=tuple(warnings),
        held=held,
        at_bound=at_bound,
    )


def _join(names, most: int = 6) -> str:
    names = list(names)
    if len(names) > most:  # a 161-parameter network's null direction is not worth 161 names
        return ", ".join(names[:most]) + f" and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@overload
def _floats(v: None) -> None: ...
@overload
def _floats(v: object) -> np.ndarray: ...
def _floats(v):
    """A saved list of numbers as a float64 array (None in it -> nan); None stays None."""
    return None if v is None else np.array(v, dtype=np.float64)


def _list(a):
    return [None if not math.isfinite(v) else float(v) for v in a] if np.ndim(a) == 1 else [_list(r) for r in a]


@functools.lru_cache(maxsize=256)
def _quantile(p: float, dof: float | None) -> float:
    """The normal (``dof`` None) or Student-t quantile at ``p``: ``scipy.stats``' ``norm.ppf``/``t.ppf``, to ~1e-13.

    Kept per ``(p, dof)``: a function of those numbers alone, and fits of one size ask for the same one again.

    Computed in :mod:`gradfit.analysis.quantiles` (pure Python): importing even ``scipy.special`` for this one
    number cost a command-line fit of a small file a noticeable part of its start-up.
    """
    from gradfit.analysis.quantiles import t_quantile

    return t_quantile(p, dof)
