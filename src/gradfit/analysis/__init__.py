"""Analysis of fits: pure functions of a result (report, uncertainties, landscape, step table).

>>> from gradfit.analysis import fit_report, uncertainty_of   # doctest: +SKIP
>>> print(fit_report(result))   # doctest: +SKIP

Each takes a :class:`~gradfit.FitResult` (live or loaded with :func:`gradfit.outputs.load_run`)
and, where the result does not hold them, the fit's data. The learning-rate finder and the race
run new fits; they are not listed here because they move above the front door (issue 10).
Names load on first use (see :mod:`gradfit.lazy_exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.lazy_exports import lazy_exports

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from gradfit.analysis.convergence import Verdict as Verdict
    from gradfit.analysis.fitted_data import run_data as run_data
    from gradfit.analysis.landscape import Landscape as Landscape
    from gradfit.analysis.landscape import compute_landscape as compute_landscape
    from gradfit.analysis.optimum import least_squares_optimum as least_squares_optimum
    from gradfit.analysis.report import fit_report as fit_report
    from gradfit.analysis.report import report_dict as report_dict
    from gradfit.analysis.report import statistics as statistics
    from gradfit.analysis.stability import StabilityLimit as StabilityLimit
    from gradfit.analysis.stability import stability_limit_of as stability_limit_of
    from gradfit.analysis.uncertainty import Uncertainty as Uncertainty
    from gradfit.analysis.uncertainty import uncertainty_of as uncertainty_of
    from gradfit.analysis.walkthrough import step_table as step_table

_EXPORTS: dict[str, str] = {
    "fit_report": "gradfit.analysis.report",  # the lmfit-style text report
    "report_dict": "gradfit.analysis.report",  # the same, as data (result.json's "report")
    "statistics": "gradfit.analysis.report",  # RSS, R², chi-square, AIC/BIC
    "uncertainty_of": "gradfit.analysis.uncertainty",  # covariance, standard errors, intervals
    "Uncertainty": "gradfit.analysis.uncertainty",
    "Verdict": "gradfit.analysis.convergence",  # result.diagnostics' verdict on the optimum
    "least_squares_optimum": "gradfit.analysis.optimum",  # the closed-form optimum, where there is one
    "stability_limit_of": "gradfit.analysis.stability",  # 2 / the largest curvature of the loss
    "StabilityLimit": "gradfit.analysis.stability",
    "compute_landscape": "gradfit.analysis.landscape",  # exact loss over two parameters
    "Landscape": "gradfit.analysis.landscape",
    "step_table": "gradfit.analysis.walkthrough",  # the seeds' walk-through: params, gradient, update, loss
    "run_data": "gradfit.analysis.fitted_data",  # the data a saved run was fitted on, read again and checked
}

__all__ = [
    "Landscape",
    "StabilityLimit",
    "Uncertainty",
    "Verdict",
    "compute_landscape",
    "fit_report",
    "least_squares_optimum",
    "report_dict",
    "run_data",
    "stability_limit_of",
    "statistics",
    "step_table",
    "uncertainty_of",
]

# Hidden from type checkers, which would otherwise take any attribute (a typo too) for a lazy name.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, None, __all__)
