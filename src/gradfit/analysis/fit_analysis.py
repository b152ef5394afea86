"""What gradfit.fit adds around the descent: a stability check before; error bars, a verdict and a report after.

Before the loop, full-batch gradient descent is checked against its stability limit
(2 / largest Hessian eigenvalue at the start) and a :class:`GradfitWarning` is raised when the
learning rate is above it. After the loop, the parameters' uncertainties and the fit report
are computed on the training rows already in memory, within a cost guard, and never fail a fit. Every
pass over the rows, before and after, is in the fit's chunks (``config.chunk_size``).
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

    limit, warning = check_lr(
        model,
        loss,
        train.x,
        train.y,
        params,
        fixed,
        lr or 0.0,
        config.optimizer,
        momentum=config.momentum,
        w=train.w,
        chunk_size=config.chunk_size,
    )
    if warning:
        warnings.warn(warning, GradfitWarning, stacklevel=4)
    if limit is None:
        return None
    return {
        **limit.to_dict(),
        "lr_limit": lr_limit(limit, config.optimizer, config.momentum),
        "suggested_lr": suggested_lr(limit, config.optimizer, config.momentum),
    }


def assess(result, model, loss, train, fixed, config, sums=None):
    """``result`` with ``uncertainty`` and ``report`` filled in (or the reason they are missing).

    ``sums``: what the optimizer summed over the rows at its final point (:class:`gradfit.optim.lm.PointSums`), which
    the error bars reuse when that point is the fitted one."""
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
            f"(--uncertainty) or call gradfit.analysis.uncertainty.uncertainty_of(result, data).",
        )
    else:
        trend = loss_trend(result.history)
        try:
            unc = compute_uncertainty(
                model,
                loss,
                train,
                result.params,
                fixed=fixed,
                at_bounds=result.diagnostics.get("at_bounds", ()),
                stopped_early=result.stop_reason in BUDGET_REASONS and (trend or 0) > 1e-5,
                diverged=result.stop_reason == "diverged",
                max_params=max(MAX_UNCERTAINTY_PARAMS, n_free) if wanted else MAX_UNCERTAINTY_PARAMS,
                chunk_size=config.chunk_size,
                sums=sums,
            )
        except Exception as exc:  # error bars must never fail a fit that succeeded
            unc = Uncertainty.unavailable(result.flat_params, f"Could not be computed: {type(exc).__name__}: {exc}")
    verdict = judge(result, unc, model, loss, train, chunk_size=config.chunk_size, sums=sums)
    if verdict.warning:
        warnings.warn(verdict.warning, GradfitWarning, stacklevel=4)  # assess <- analyse <- fit <- the caller
    result = dataclasses.replace(with_verdict(result, verdict), uncertainty=unc.to_dict())
    # The statistics follow from the training metrics just computed, unless weighted (the metrics are unweighted):
    # no second pass over the rows.
    stored = (result.metrics or {}).get("train")
    data = None if stored and stored.get("n") and not result.data.get("weights") else train
    return dataclasses.replace(result, report=report_dict(result, unc, data=data, chunk_size=config.chunk_size))


#: What the analysis after the fit adds to a result (what an interruption leaves out).
ANALYSIS = ("metrics", "uncertainty", "verdict", "report")


def analyse(result, stop, model, loss, train, val, fixed, config, catch_signals: bool = True, sums=None):
    """``result`` with its metrics, error bars, verdict and report, unless a signal says to stop.

    The analysis loses nothing when thrown away, so it runs as a droppable stage of the interrupt
    window (:mod:`gradfit.train.interrupt`): a first Ctrl-C or SIGTERM during it ends it at once,
    and one that came during the loop (``stop`` is set) skips it. Either way the result says so
    (:func:`without_analysis`). A second signal is not caught here. ``sums``: as for :func:`assess`.
    """
    from gradfit.analysis.metrics import with_metrics
    from gradfit.train.interrupt import Interrupted, catch_interrupts

    if not stop:
        with catch_interrupts(catch_signals) as stop:  # in the CLI: the command's own window
            try:
                with stop.stage("analysing the fit", droppable=True):
                    measured = with_metrics(result, model, loss, train, val, chunk_size=config.chunk_size)
                    return assess(measured, model, loss, train, fixed, config, sums)
            except Interrupted as exc:
                if exc.second:
                    raise
    return without_analysis(result, stop.reason, stop.during)


def without_analysis(result, by: str | None, during: str | None = None):
    """``result`` as an interruption leaves it: no metrics, error bars, verdict or report, and a message saying so.

    A fit whose loop had ended on its own is ``interrupted`` too, unless it had already failed
    (diverged, stalled): it was never checked against the optimum, so it cannot count as a success.
    ``diagnostics["loop_stop_reason"]`` keeps why the loop ended.
    """
    from gradfit.analysis.uncertainty import Uncertainty
    from gradfit.train.stopping import SUCCESS

    diagnostics = {**result.diagnostics, "interrupted_by": by, "skipped": list(ANALYSIS)}
    if result.stop_reason == "interrupted":  # stopped in the loop: its message says where and what was saved
        reason = "interrupted"
        message = f"{result.message} The analysis after the fit (metrics, error bars, verdict and report) was skipped."
    else:
        reason = "interrupted" if result.stop_reason in SUCCESS else result.stop_reason
        diagnostics["loop_stop_reason"] = result.stop_reason
        again = (
            "fit again, or resume from the checkpoint (--resume), to have them"
            if result.diagnostics.get("checkpoint")
            else "fit again to have them"
        )
        message = (
            f"Interrupted ({by}) while {during or 'analysing the fit'}, after the fit's last step. {result.message} "
            f"The metrics, error bars, verdict and report were skipped, so whether these parameters are the "
            f"optimum was not checked; {again}."
        )
    unc = Uncertainty.unavailable(result.flat_params, f"Not computed: the fit was interrupted ({by}).")
    return dataclasses.replace(
        result, stop_reason=reason, message=message, diagnostics=diagnostics, uncertainty=unc.to_dict()
    )
