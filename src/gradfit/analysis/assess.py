"""What gradfit.fit adds around the descent: a stability check before; error bars, a verdict and a report after.

Before the loop, full-batch gradient descent is checked against its stability limit
(2 / largest Hessian eigenvalue at the start) and a :class:`GradfitWarning` is raised when the
learning rate is above it. After the loop, the parameters' uncertainties and the fit report
are computed on the training rows already in memory, within a cost guard, and never fail a fit.
"""

from __future__ import annotations

import dataclasses
import warnings

from gradfit.errors import GradfitWarning

# Rows x free parameters above which error bars are not computed automatically (about 10 s on a CPU).
AUTO_UNCERTAINTY_BUDGET = 10_000_000
MAX_UNCERTAINTY_PARAMS = 500


def check_stability(model, loss, train, params, fixed, config, lr: float | None, choose: bool = False) -> dict | None:
    """The stability limit at the start (JSON-able, with ``suggested_lr``, half of it), warning when ``lr``
    exceeds it; None when it does not apply. The limit speaks of full-batch descent: with mini-batches it is
    measured only to ``choose`` an lr (mini-batch noise makes half the full-batch limit a safe start)."""
    if config.batch_size is not None and config.batch_size < len(train) and not choose:
        return None
    from gradfit.analysis.stability import check_lr, lr_limit, suggested_lr

    limit, warning = check_lr(model, loss, train.x, train.y, params, fixed, lr or 0.0, config.optimizer,
                              momentum=config.momentum, w=train.w)
    if warning:
        warnings.warn(warning, GradfitWarning, stacklevel=4)
    if limit is None:
        return None
    return {**limit.to_dict(), "lr_limit": lr_limit(limit, config.optimizer, config.momentum),
            "suggested_lr": suggested_lr(limit, config.optimizer, config.momentum)}


def assess(result, model, loss, train, fixed, config):
    """``result`` with ``uncertainty`` and ``report`` filled in (or the reason they are missing)."""
    from gradfit.analysis.convergence import judge, with_verdict
    from gradfit.analysis.report import report_dict
    from gradfit.analysis.uncertainty import BUDGET_REASONS, Uncertainty, compute_uncertainty, loss_trend

    n_free = sum(s.size for s in model.specs if s.name not in fixed)
    wanted = config.uncertainty
    cheap = len(train) * n_free <= AUTO_UNCERTAINTY_BUDGET and n_free <= MAX_UNCERTAINTY_PARAMS
    if wanted is False:
        unc = Uncertainty.unavailable(result.flat_params, "Not computed: the fit was run with uncertainty=False.")
    elif wanted is None and not cheap:
        unc = Uncertainty.unavailable(
            result.flat_params,
            f"Not computed automatically: {len(train):,} rows x {n_free:,} free parameters is above "
            f"{AUTO_UNCERTAINTY_BUDGET:.0e} (or more than {MAX_UNCERTAINTY_PARAMS} parameters). Pass uncertainty=True "
            f"(--uncertainty) or call gradfit.analysis.uncertainty.uncertainty_of(result, data).")
    else:
        trend = loss_trend(result.history)
        try:
            unc = compute_uncertainty(
                model, loss, train, result.params, fixed=fixed, at_bounds=result.diagnostics.get("at_bounds", ()),
                stopped_early=result.stop_reason in BUDGET_REASONS and (trend or 0) > 1e-5,
                diverged=result.stop_reason == "diverged",
                max_params=max(MAX_UNCERTAINTY_PARAMS, n_free) if wanted else MAX_UNCERTAINTY_PARAMS)
        except Exception as exc:  # error bars must never fail a fit that succeeded
            unc = Uncertainty.unavailable(result.flat_params, f"Could not be computed: {type(exc).__name__}: {exc}")
    verdict = judge(result, unc, model, loss, train)
    if verdict.warning:
        warnings.warn(verdict.warning, GradfitWarning, stacklevel=3)
    result = dataclasses.replace(with_verdict(result, verdict), uncertainty=unc.to_dict())
    return dataclasses.replace(result, report=report_dict(result, unc, data=train))
