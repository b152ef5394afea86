"""The fit report: what was fitted, how well, how sure, and what to worry about.

:func:`report_dict` gathers it as JSON-able data (``result.json``'s ``"report"``); :func:`fit_report`
renders that as text in lmfit's style; ``gradfit.cli.report_view`` draws it as rich tables. All
three read the same dict, so they never disagree. Nothing here fits, prints or writes.

Statistics, on the training rows, with ``n`` rows and ``p`` free parameters:

- least squares: ``RSS``, ``R² = 1 - RSS/TSS``, reduced chi-square ``RSS/(n-p)``,
  ``AIC = n ln(RSS/n) + 2p``, ``BIC = n ln(RSS/n) + p ln n`` (lmfit's definitions);
- likelihood losses (bce, cross_entropy): ``AIC = 2 NLL + 2p``, ``BIC = 2 NLL + p ln n``, NLL the
  summed loss; no RSS or R²;
- other losses (mae, huber): the least-squares numbers of the residuals, AIC/BIC assuming Gaussian errors.

A weighted fit (``sigma`` or ``weights``, see :mod:`gradfit.data.weights`) states how it was weighted, and
its numbers are the weighted ones, with ``n`` the rows of positive weight: the chi-square
``χ² = Σ wᵢrᵢ²`` (``Σ (rᵢ/σᵢ)²`` for sigma), the reduced chi-square ``χ²/(n-p)``, the weighted
``R² = 1 - χ² / Σ wᵢ(yᵢ - ȳ_w)²`` with ``ȳ_w`` the weighted mean of ``y`` (statsmodels' WLS
``rsquared``), ``AIC = n ln(χ²/n) + 2p`` and ``BIC = n ln(χ²/n) + p ln n`` (lmfit's, from χ²), and the
summed weighted NLL ``Σ wᵢℓᵢ`` for likelihoods; ``rss`` stays the unweighted ``Σ rᵢ²``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gradfit.analysis.report_sections import metrics_text, tensor_summary, tensors_text
from gradfit.analysis.uncertainty import (
    BUDGET_REASONS,
    LIKELIHOODS,
    Uncertainty,
    bound_sentence,
    loss_trend,
    training_data,
    uncertainty_of,
)
from gradfit.rowpass import MemoryRows, reduce

__all__ = ["fit_report", "report_dict", "statistics", "CORRELATION_FLAG", "MAX_LISTED_PARAMS"]

CORRELATION_FLAG = 0.9
#: Above this many parameters the report summarises each tensor instead of listing every value.
MAX_LISTED_PARAMS = 48

STILL_FALLING = 1e-5  # relative fall of the loss over the last 10% of the steps that counts as "not converged"
LR_NAG = 0.5  # an lr below this fraction of the stability limit is worth a word when the fit is slow


def statistics(result, data=None, chunk_size: int | None = None) -> dict:
    """Goodness-of-fit numbers on the training rows: rss, tss, r2, redchi, aic, bic, n, p (None where undefined).

    Without ``data`` they come from the metrics stored in the result at fit time
    (``result.metrics["train"]``), so a result loaded with ``FitResult.from_json`` or ``load_run``
    keeps its R² even when it was fitted on data held in memory. A result without stored metrics
    (saved by an older gradfit) reads its data again, or, when it cannot, gives the least-squares
    numbers that follow from the final mse loss alone. The predictions are made ``chunk_size`` rows at a
    time and every sum is a row pass in those chunks, by default the fit's own (``result.config["chunk_size"]``).

    Examples
    --------
    >>> statistics(gradfit.fit("linear", "builtin:linear", y="y", lr=0.1))  # doctest: +SKIP
    {'n': 100, 'p': 2, 'rss': 84.2, 'tss': 1790.3, 'r2': 0.953, ...}
    """
    from gradfit.analysis.fitted_data import chunk_size_of
    from gradfit.errors import GradfitError
    from gradfit.losses import get_loss

    chunk_size = chunk_size_of(result, chunk_size)
    name = _loss_name(result)
    p = len(_free(result))
    weights = result.data.get("weights")
    out: dict[str, Any] = {
        "n": int(result.data.get("n_train", result.data.get("n", 0))),
        "p": p,
        "loss": name,
        "rss": None,
        "tss": None,
        "r2": None,
        "redchi": None,
        "nll": None,
        "aic": None,
        "bic": None,
        "kind": _kind(name),
    }
    if weights:
        out.update(chisqr=None, weighted=_weighted(weights))
    stored = (result.metrics or {}).get("train") if data is None else None
    if stored and stored.get("n") and not weights:  # computed at fit time: no need for the data, which may be gone
        return {**out, **_from_metrics(stored, name, p)}
    try:
        ds = training_data(result, data) if result.model is not None else None
    except GradfitError:
        ds = None
    if ds is None:
        if name == "mse" and math.isfinite(result.loss):
            if weights and weights.get("sum") is not None:  # the loss is χ² / Σw: χ² is recoverable, the rss not
                out.update(
                    _least_squares(result.loss * weights["sum"], None, out["n"], p),
                    rss=None,
                    chisqr=result.loss * weights["sum"],
                )
            elif not weights:
                out.update(_least_squares(result.loss * out["n"], None, out["n"], p))
        return out
    w = None if ds.w is None else ds.w.double()
    n = len(ds) if w is None else int((w > 0).sum())
    out["n"] = n
    params = {k: v.to(ds.x.device, torch.float64) for k, v in result.params.items()}
    loss = get_loss(name) if name in LIKELIHOODS else None
    rows = MemoryRows(ds.x, ds.y, w, chunk_size=chunk_size, dtype=torch.float64)
    with torch.no_grad():
        sums = reduce(lambda xc, yc, wc: _sums(result.model(params, xc), yc, wc, loss), rows)
    if sums is None or "mismatch" in sums:  # no rows, or several predictions per row for one target
        return out
    if loss is not None:
        nll = float(sums["nll"])
        out.update(nll=nll, aic=2 * nll + 2 * p, bic=2 * nll + p * math.log(n))
        return out
    # The targets' spread about their (weighted) mean, a second pass once the mean is known.
    mean = sums["y"] / (len(ds) if w is None else sums["w"])
    tss = float(
        reduce(
            lambda yc, _y, wc: ((yc - mean) ** 2).sum() if wc is None else (wc * (yc - mean) ** 2).sum(),
            MemoryRows(ds.y, None, w, chunk_size=chunk_size, dtype=torch.float64),
        )
    )
    if w is None:
        out.update(_least_squares(float(sums["rss"]), tss, n, p))
    else:
        chisqr = float(sums["chisqr"])
        out.update(_least_squares(chisqr, tss, n, p), chisqr=chisqr, rss=float(sums["rss"]))
    return out


def _sums(pred, y, w, loss) -> dict:
    """One chunk's share of :func:`statistics`: the summed (weighted) NLL of a likelihood ``loss``, else the
    residuals' sums of squares and the (weighted) sum of the targets."""
    if loss is not None:
        return {"nll": loss.total(pred, y) if w is None else loss.total(pred, y, w)}
    if pred.shape != y.shape:
        return {"mismatch": y.new_ones(())}
    r2 = (y - pred) ** 2
    if w is None:
        return {"rss": r2.sum(), "y": y.sum()}
    return {"rss": r2.sum(), "chisqr": (w * r2).sum(), "y": (w * y).sum(), "w": w.sum()}


def report_dict(result, uncertainty: Uncertainty | None = None, data=None, chunk_size: int | None = None) -> dict:
    """The report as JSON-able data: header, parameters, statistics, correlations, warnings.

    What it computes from the rows (the uncertainties when not given, the statistics) reads them
    ``chunk_size`` at a time, by default the fit's own (``result.config["chunk_size"]``).
    """
    from gradfit.errors import GradfitError

    warnings: list[str] = []
    if uncertainty is None and result.uncertainty:
        uncertainty = Uncertainty.from_dict(result.uncertainty)
    if uncertainty is None and result.model is not None:
        try:
            uncertainty = uncertainty_of(result, data, chunk_size=chunk_size)
        except GradfitError as exc:
            warnings.append(f"Uncertainties were not computed: {exc}")
    stats = statistics(result, data, chunk_size)
    at_bounds = set(result.diagnostics.get("at_bounds", ()))
    fixed = set(result.fixed)
    rows = []
    flat = result.flat_params
    tensors = tensor_summary(result.params) if len(flat) > MAX_LISTED_PARAMS else None
    for name, value in ({} if tensors is not None else flat).items():
        row = {
            "name": name,
            "value": _num(value),
            "stderr": None,
            "rel_err": None,
            "ci_low": None,
            "ci_high": None,
            "fixed": name in fixed or name.split("[")[0] in fixed,
            "at_bound": name in at_bounds,
        }
        if uncertainty is not None and name in uncertainty.names:
            i = uncertainty.names.index(name)
            se = _num(uncertainty.stderr[i])
            row.update(
                stderr=se,
                ci_low=_num(uncertainty.ci_low[i]),
                ci_high=_num(uncertainty.ci_high[i]),
                rel_err=None if se is None or value == 0 else 100 * se / abs(value),
            )
        rows.append(row)
    return {
        "schema": "gradfit.report/1",
        "model": result.model_spec.get("name") or getattr(result.model, "name", "model"),
        "data": {
            "source": result.data.get("source"),
            "path": result.data.get("path"),
            "n": stats["n"],
            "n_val": result.data.get("n_val", 0),
            "n_free": stats["p"],
            "weights": result.data.get("weights"),
        },
        "optimizer": result.config.get("optimizer"),
        "lr": result.config.get("lr"),
        "loss_name": _loss_name(result),
        "loss": _num(result.loss),
        "val_loss": _num(result.val_loss),
        "steps": result.steps,
        "stop_reason": result.stop_reason,
        "message": result.message,
        "parameters": rows,
        "n_params": len(flat),
        "tensors": tensors,
        "metrics": result.metrics,
        "statistics": {k: _num(v) if isinstance(v, float) else v for k, v in stats.items()},
        "statistics_note": _note(stats),
        "uncertainty": None
        if uncertainty is None
        else {
            "ok": uncertainty.ok,
            "method": uncertainty.method,
            "level": uncertainty.level,
            "dof": uncertainty.dof,
            "reason": uncertainty.reason,
        },
        "correlations": _correlations(uncertainty),
        "warnings": _warnings(result, uncertainty, warnings),
    }


def fit_report(result, uncertainty: Uncertainty | None = None, data=None, chunk_size: int | None = None) -> str:
    """The report as text, in lmfit's ``fit_report`` style (``chunk_size`` as for :func:`report_dict`).

    Examples
    --------
    >>> r = gradfit.fit("a*exp(-b*x)", df, y="y", optimizer="lm")  # doctest: +SKIP
    >>> print(fit_report(r))  # doctest: +SKIP
    [[Fit]]
        model              a*exp(-b*x)
        ...
    """
    return render_text(report_dict(result, uncertainty, data, chunk_size))


def render_text(rep: dict) -> str:
    """The text of a :func:`report_dict` (also for a report read back from result.json)."""
    d, st = rep["data"], rep["statistics"]
    where = d.get("path") or d.get("source") or "data"
    lines = [
        "[[Fit]]",
        f"    model              {rep['model']}",
        f"    data               {where}",
        f"    points             {d['n']}" + (f" (+ {d['n_val']} held out for validation)" if d.get("n_val") else ""),
        f"    free parameters    {d['n_free']}",
        *([f"    weighted           {_weighted(d['weights'])}"] if d.get("weights") else []),
        f"    optimizer          {rep['optimizer']}" + (f" (lr {_g(rep['lr'])})" if rep.get("lr") else ""),
        f"    steps              {rep['steps']}",
        f"    stopped            {rep['stop_reason']}: {rep['message']}",
        f"    final loss ({rep['loss_name']}) ".ljust(23) + _g(rep["loss"]),
    ]
    lines.append("[[Statistics]]")
    for key, label in (
        ("chisqr", "chi-square"),
        ("rss", "RSS"),
        ("tss", "TSS"),
        ("r2", "R-squared"),
        ("redchi", "reduced chi-square"),
        ("nll", "NLL (summed loss)"),
        ("aic", "AIC"),
        ("bic", "BIC"),
    ):
        if st.get(key) is not None:
            lines.append(f"    {label:<19}{_g(st[key])}")
    if rep.get("statistics_note"):
        lines.append(f"    ({rep['statistics_note']})")
    lines += metrics_text(rep.get("metrics"))
    if rep.get("tensors") is not None:
        return "\n".join(lines + tensors_text(rep) + _tail_text(rep))
    u = rep.get("uncertainty")
    level = f", {100 * u['level']:g}% intervals" if u else ""
    lines.append(f"[[Parameters]]  (value +/- standard error{level})")
    width = max([len(r["name"]) for r in rep["parameters"]] + [4])
    for r in rep["parameters"]:
        text = f"    {r['name']:<{width}}  {_g(r['value']):>12}"
        if r["stderr"] is not None:
            rel = f" ({r['rel_err']:.2f}%)" if r["rel_err"] is not None else ""
            text += f" +/- {_g(r['stderr'], 4):<10}{rel:<11} [{_g(r['ci_low'])}, {_g(r['ci_high'])}]"
        text += " (fixed)" if r["fixed"] else " (at bound)" if r["at_bound"] else ""
        lines.append(text.rstrip())
    return "\n".join(lines + _tail_text(rep))


def _tail_text(rep: dict) -> list[str]:
    lines = []
    if rep["correlations"]:
        lines.append(f"[[Correlations]]  (|r| > {CORRELATION_FLAG})")
        lines += [f"    {c['a']} and {c['b']} are correlated (r = {c['r']:.3f})" for c in rep["correlations"]]
    if rep["warnings"]:
        lines.append("[[Warnings]]")
        lines += [f"    - {w}" for w in rep["warnings"]]
    return lines


def _warnings(result, u: Uncertainty | None, extra: list[str]) -> list[str]:
    out = []
    verdict = result.diagnostics.get("verdict") or {}  # gradfit.analysis.convergence: what happened, what to do
    remedies = verdict.get("remedies") or []
    trend = loss_trend(result.history)
    slow = result.stop_reason in BUDGET_REASONS and trend is not None and trend > STILL_FALLING
    if result.stop_reason == "diverged":
        out.append(f"The fit diverged: {result.message}")
    elif slow:
        assert trend is not None  # slow needs a trend
        advice = (
            f"Try {'; or '.join(remedies)}."
            if remedies
            else f"Give more steps, a larger lr or {_faster_optimizer(result)}."
        )
        out.append(
            f"Not converged: the loss was still falling when the fit stopped ({result.stop_reason}), down "
            f"{100 * trend:.3g}% over the last 10% of the steps. {advice}"
        )
    unfinished = slow or verdict.get("converged") is False
    limit = _stability_limit(result.diagnostics.get("stability_limit"))
    lr = result.config.get("lr")
    if limit and lr and result.config.get("optimizer") == "sgd" and math.isfinite(limit):
        if lr > limit and result.stop_reason == "diverged":
            out.append(
                f"lr {lr:.3g} is above the stability limit {limit:.3g} (2 / largest curvature at the start): "
                f"gradient descent is expected to diverge there. Use lr < {limit:.3g}."
            )
        elif lr < LR_NAG * limit and (
            unfinished or (u is not None and any("not at a minimum" in w for w in u.warnings))
        ):
            out.append(
                f"lr {lr:.3g} is {limit / lr:.3g}x below the stability limit {limit:.3g}: a larger lr, up to "
                f"the limit, would converge faster."
            )
    for name in result.diagnostics.get("at_bounds", ()):
        lo, hi = _bound(result.bounds, name)
        out.append(
            f"{name} ended on its bound [{lo}, {hi}]: the best value may lie beyond it; its uncertainty is not defined."
        )
    if u is not None:
        # Parameters the verdict found flat because of the start (an underflowing exp) are not useless: the stop
        # reason says so and names the start; "remove it" would be wrong advice.
        flat = verdict.get("flat") or {}
        plateau = set(flat.get("vanishing") or ()) if flat.get("remedy") else set()
        out += [
            f"{n} has no effect on the predictions: the data say nothing about it; fix it or remove it from the model."
            for n in u.no_effect
            if n not in plateau
        ]
        reason = (u.reason or "").replace(bound_sentence(u.at_bound), "").strip()
        if plateau and set(u.no_effect) <= plateau:
            reason = f"{', '.join(u.no_effect)} have no effect at this point (a plateau; see why the fit stopped)."
        if not u.ok and reason:
            some = np.isfinite(u.stderr).any()
            out.append(f"{'Some uncertainties are' if some else 'Uncertainties are'} unavailable: {reason}")
        out += [
            w
            for w in u.warnings
            if not (
                unfinished
                and (w.startswith("The fit stopped on its budget") or w.startswith("The point is not at a minimum"))
            )
            and "is at a bound" not in w
            and "are at a bound" not in w
        ]
    return out + extra


def _correlations(u: Uncertainty | None) -> list[dict]:
    if u is None or u.corr is None:
        return []
    out = []
    for i in range(len(u.names)):
        for j in range(i + 1, len(u.names)):
            r = u.corr[i, j]
            if np.isfinite(r) and abs(r) > CORRELATION_FLAG:
                out.append({"a": u.names[i], "b": u.names[j], "r": float(r)})
    return sorted(out, key=lambda c: -abs(c["r"]))


def _least_squares(rss: float, tss: float | None, n: int, p: int) -> dict:
    ok = rss > 0 and n > 0
    return {
        "rss": rss,
        "tss": tss,
        "r2": None if not tss else 1 - rss / tss,
        "redchi": rss / (n - p) if n > p else None,
        "aic": n * math.log(rss / n) + 2 * p if ok else None,
        "bic": n * math.log(rss / n) + p * math.log(n) if ok else None,
    }


def _from_metrics(train: dict, name: str, p: int) -> dict:
    """The statistics from the training metrics stored at fit time."""
    n = int(train["n"])
    if name in LIKELIHOODS:
        nll = train.get("nll")
        if nll is None:
            return {"n": n}
        return {"n": n, "nll": nll, "aic": 2 * nll + 2 * p, "bic": 2 * nll + p * math.log(n)}
    if train.get("rss") is None:
        return {"n": n}
    return {"n": n, **_least_squares(train["rss"], train.get("tss"), n, p)}


def _note(stats: dict) -> str | None:
    notes = []
    if stats.get("weighted"):
        notes.append(
            f"weighted by {stats['weighted']}: "
            + (
                "NLL = Σ wᵢℓᵢ"
                if stats["kind"] == "likelihood"
                else "chi-square = Σ wᵢrᵢ², reduced chi-square = chi-square/(n-p), TSS = Σ wᵢ(yᵢ-ȳw)², R² = 1 - chi-square/TSS "
                "(weighted, as statsmodels' WLS), AIC and BIC from the chi-square; RSS unweighted"
            )
        )
    if stats["kind"] == "likelihood":
        notes.append(f"AIC and BIC from 2 x NLL: the {stats['loss']} loss is a negative log-likelihood")
    if stats["kind"] == "other" and stats["aic"] is not None:
        notes.append(
            f"AIC and BIC from the {'chi-square' if stats.get('weighted') else 'RSS'}, assuming Gaussian "
            f"errors, although the fit minimised {stats['loss']}"
        )
    return "; ".join(notes) or None


def _weighted(weights: dict) -> str:
    """``"1/sigma² (sigma column 'err', absolute)"``: how a fit's rows were weighted, from ``result.data["weights"]``."""
    kind = weights.get("kind", "weights")
    where = f"column '{weights['column']}'" if weights.get("column") is not None else "an array"
    absolute = ", absolute sigma" if weights.get("absolute_sigma") else ""
    return f"1/sigma² (sigma: {where}{absolute})" if kind == "sigma" else f"weights ({where})"


def _kind(name: str) -> str:
    return "least_squares" if name == "mse" else "likelihood" if name in LIKELIHOODS else "other"


def _loss_name(result) -> str:
    loss = result.config.get("loss", "mse")
    return loss if isinstance(loss, str) else getattr(loss, "name", "loss")


def _faster_optimizer(result) -> str:
    # Levenberg-Marquardt solves least squares only: never propose it for a likelihood or robust loss.
    return "optimizer='lm'" if _kind(_loss_name(result)) == "least_squares" else "optimizer='lbfgs'"


def _free(result) -> list[str]:
    fixed = set(result.fixed)
    return [n for n in result.flat_params if n not in fixed and n.split("[")[0] not in fixed]


def _stability_limit(value) -> float | None:
    if isinstance(value, dict):
        value = value.get("limit")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _bound(bounds: dict, name: str) -> tuple[str, str]:
    pair = bounds.get(name) or bounds.get(name.split("[")[0]) or [None, None]
    return ("-inf" if pair[0] is None else _g(pair[0])), ("inf" if pair[1] is None else _g(pair[1]))


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _g(v, digits: int = 6) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"
