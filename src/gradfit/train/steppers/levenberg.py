"""The Levenberg-Marquardt stepper: :mod:`gradfit.optim.lm` inside the one loop.

One history row per LM iteration, i.e. per Jacobian: row ``k`` holds the state after ``k``
accepted steps (steps rejected inside an iteration are not rows; an iteration ends when a step is
accepted or a convergence test fires). In that row ``loss`` is the mse at those parameters,
``grad_norm`` the norm of the mse's gradient ``2 Jᵀr / m`` (entries held on a bound left out) and
the ``lr`` column holds the damping λ of the step that left them: LM has no learning rate, and λ
is its counterpart (λ = 0 is a pure Gauss-Newton step; a large λ a short gradient step).

The budget ``steps`` (or ``epochs``: LM is full batch, so they coincide) counts iterations, hence
Jacobian evaluations. Options: ``optimizer_options={"ftol": ..., "xtol": ..., "gtol": ...,
"factor": ...}`` (see :class:`gradfit.optim.lm.LMOptions`); ``tol`` sets ``ftol``. Counters
(Jacobian and residual evaluations, the test that fired) go to ``result.diagnostics["lm"]``, with ``"jacobian"``:
where the Jacobians came from. A formula model's come from its derivative graph in one pass
(:mod:`gradfit.train.formula_jacobian`, ``"formula derivative"``), and its residuals from the same graph; other
models, and ``row_pass="autograd"``, keep autograd's (``"autograd"``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from gradfit.optim.lm import (
    TESTS,
    ChunkedResiduals,
    Iteration,
    LevenbergMarquardt,
    LMOptions,
    PointSums,
    checked_options,
)
from gradfit.problem import pack, unflatten
from gradfit.rowpass import row_count, rows_of, rows_triple
from gradfit.train.formula_jacobian import FormulaJacobian, formula_jacobian
from gradfit.train.steppers import Look, StepReport

_OPTIONS = tuple(f.name for f in dataclasses.fields(LMOptions))


class LMStepper:
    """Levenberg-Marquardt on all rows of ``train`` over the free entries of ``params`` (changed in place).

    Parameters as for :class:`~gradfit.train.steppers.gradient.TorchStepper`, less the budget (LM has no
    schedule) and with the loss, whose shape checks run once on the first row.
    """

    loop_fields: tuple[str, ...] = ("step", "previous", "elapsed")
    checks_rise = False
    takes_tol = True  # as ftol: the loop adds no Tolerance rule

    def __init__(self, model, loss, train, params: dict, fixed: frozenset, config, bounds, objective):
        self.options = _options(config)
        self.model, self.params = model, params
        self.trainable = [n for n in model.param_names if n not in fixed]
        self.specs = {s.name: s for s in model.specs}
        # The mse divides the sum of squares by the number of residuals (weighted: by the sum of the weights).
        x, y, w = rows_triple(train)  # rows in memory, or a row set read chunk by chunk
        self.m = row_count(x, w)
        first_x, first_y, _ = next(iter(rows_of(x, y, chunk_size=1).chunks()))
        float(objective.value(params, first_x, first_y))  # the loss's own shape checks, with its messages
        self._base = {k: v.detach() for k, v in params.items()}
        self._free_specs = [self.specs[n] for n in self.trainable]
        trainable = self.trainable
        p0 = pack(params, trainable, detach=True) if trainable else torch.zeros(0, dtype=train.dtype)
        self.dtype = p0.dtype
        lower, upper = _box(bounds, trainable)
        # A formula's Jacobian in one pass from its derivative graph; autograd for other models, or when asked.
        self.formula: FormulaJacobian | None = None
        if config.row_pass != "autograd" and trainable:
            self.formula = formula_jacobian(model, trainable)
        augmented = None if self.formula is None else self._augmented
        # residuals times sqrt(w)
        self.res = ChunkedResiduals(self._residuals, x, y, config.chunk_size, w=w, augmented=augmented)
        self.lm = LevenbergMarquardt(self.res, p0, self.options, lower, upper)
        self.start_loss = self.lm.sum_squares / self.m  # before a resume overwrites the iterate
        self.it: Iteration | None = None  # the last iteration: its tests, held and dead columns
        self._source = (model, x, y, w)

    def _unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.formula is not None:  # scalar parameters only: one entry each, no views to shape
            return {**self._base, **dict(zip(self.trainable, flat.unbind()))}
        return {**self._base, **unflatten(self._free_specs, flat)}

    def _residuals(self, flat, xc, yc):
        if self.formula is not None:  # the predictions of the graph whose Jacobian LM takes: the same numbers
            return self.formula.predict(self._unflatten(flat), xc) - yc.reshape(-1)
        return (self.model(self._unflatten(flat), xc) - yc).reshape(-1)

    def _augmented(self, flat, xc, yc):
        """``[J | r]`` of the rows ``xc`` from the formula's derivative graph, in one buffer."""
        assert self.formula is not None  # only passed to the residuals when there is one
        pred, block = self.formula(self._unflatten(flat), xc, extra=1)
        torch.sub(pred, yc.reshape(-1), out=block[:, -1])
        return block

    # -- a step ----------------------------------------------------------------------------------

    def refusal(self) -> tuple[str, str] | None:
        if math.isfinite(self.lm.sum_squares):
            return None
        return (
            "diverged",
            "The fit could not start: at the initial parameters the residuals are not finite. Check "
            "the initial values (--init) and the data (for example log or sqrt of negative numbers, or division "
            "by zero).",
        )

    def look(self, k: int, batch: tuple) -> Look:
        """One iteration up to its accepted step (or a test); LM is full batch, so ``batch`` is all rows."""
        if not self.trainable:
            return Look(math.nan, math.nan, math.nan, "converged", "Nothing to fit: every parameter is fixed.", False)
        try:
            self.it = it = self.lm.iterate()
        except FloatingPointError as exc:
            return Look(
                math.nan,
                math.nan,
                math.nan,
                "diverged",
                row=False,
                message=(
                    f"The fit stopped at iteration {k}: {exc}, so no step can be computed. Kept the parameters of "
                    f"iteration {k}, whose residuals are finite. Try other initial values or bounds that keep the "
                    f"model away from where it overflows."
                ),
            )
        return Look(it.sum_squares / self.m, 2 * float(np.linalg.norm(it.projected_gradient)) / self.m, it.lam)

    def snapshot(self) -> None:
        return None  # a rejected trial never leaves the iterate: nothing to roll back to

    def step(self, k: int, previous) -> StepReport:
        it = self.it
        assert it is not None, "step() follows look()"
        if it.trial is not None:
            self.lm.accept(it)
            _write(self.params, self._unflatten(self.lm.tensor(self.lm.p)), self.trainable)
            k += 1
        if not it.test:
            return StepReport(advanced=it.trial is not None, moved=it.trial is not None)
        reason = "converged" if it.test in TESTS and not it.dead else "stalled"
        return StepReport(it.trial is not None, it.trial is not None, reason, self._test_message(k))

    # -- the loop's helpers ----------------------------------------------------------------------

    def put_back(self, previous: list | None) -> None:  # never called: snapshot() is None
        raise AssertionError("Levenberg-Marquardt keeps no previous parameters")

    def finite(self) -> bool:
        return True  # an accepted step has a finite sum of squares

    def assign(self, values: dict) -> None:
        _write(self.params, values, list(values))

    def finish(self, reason: str, message: str) -> str:
        if self.dtype != torch.float64 and reason != "diverged":
            message += " (Computed in float32: ask for dtype='float64', the default for lm, for full precision.)"
        return message

    def diagnostics(self, notes: dict, step: int, still: int, enough: int) -> dict:
        it, names = self.it, self._flat_names()
        held: list[int] = list(it.held) if it else []
        dead: list[int] = list(it.dead) if it else []
        counters = {
            "n_jacobian": self.res.n_jev,
            "n_function": self.res.n_fev,
            "test": it.test if it else None,
            "lambda": self.lm.lam,
            "held": [names[j] for j in held],
            "no_effect": [names[j] for j in dead],
            "jacobian": "autograd" if self.formula is None else self.formula.name,
        }
        return {"lm": counters, **notes}

    def row_passes(self) -> list[str]:
        """How this fit's rows were passed, for ``diagnostics["row_pass"]``: by the solver's own residual and
        Jacobian passes (the objective only gave the loss at the start)."""
        return ["autograd" if self.formula is None else self.formula.name]

    def final_loss(self) -> float | None:
        """The mse at the parameters as they are now, ``Σ r² / m``, when the solver has it: its iterate is where they
        are (to the bit), it summed in float64, from a formula's predictions, unweighted: then it is the number a
        pass of the loss over the rows gives (the same predictions, the same sums). Else None: the loop sums."""
        if self.formula is None or self.res.root_w is not None or self.dtype != torch.float64 or not self.trainable:
            return None
        now = pack(self.params, self.trainable, detach=True).double().cpu().numpy()
        if now.tobytes() != self.lm.p.tobytes() or not math.isfinite(self.lm.sum_squares):
            return None
        return self.lm.sum_squares / self.m

    def final_sums(self) -> PointSums | None:
        """The float64 sums of ``[J | r]`` at the current iterate, when the solver holds them (it took them there:
        the last accepted trial, or the last Jacobian) and they were computed in float64; else None. The error bars
        reuse them (:mod:`gradfit.analysis.curvature`) after checking they are at the fitted parameters."""
        if self.dtype != torch.float64 or not self.trainable:
            return None
        sums = self.res.sums_at(self.lm.tensor(self.lm.p))
        if sums is None:
            return None
        block, gram, total = sums
        names = tuple(self._flat_names())
        jacobian = "autograd" if self.formula is None else self.formula.name
        return PointSums(names, self.lm.p.copy(), block, gram, total, self._source, jacobian)

    def _flat_names(self) -> list[str]:
        return [n for name in self.trainable for n in self.specs[name].flat_names()]

    def _test_message(self, step: int) -> str:
        it, options, names = self.it, self.options, self._flat_names()
        assert it is not None and it.test is not None
        if it.test == "stalled":
            return (
                f"Stalled at iteration {step}: {options.max_rejections} steps in a row failed to reduce the sum of "
                f"squares although the gradient is not zero. The model may not be differentiable here or may "
                f"overflow nearby; try other initial values."
            )
        test = TESTS[it.test].format(**{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})
        text = f"Converged at iteration {step}: " + test + "."
        if it.dead:
            dead = ", ".join(names[j] for j in it.dead)
            text = (
                f"Stopped at iteration {step} on a plateau, not a minimum: {dead} no longer change(s) the "
                f"predictions (the Jacobian column vanished), so {test.split(' (')[0]} without the fit being "
                f"found. Try initial values closer to the answer, or bounds that keep {dead} in a sensible range."
            )
        if it.held:
            text += f" Held at a bound: {', '.join(names[j] for j in it.held)}."
        return text

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"lm": ...}``: the solver's own :meth:`~gradfit.optim.lm.LevenbergMarquardt.state_dict` (the iterate in
        float64, sum of squares, trust radius, damping, scaling and counters)."""
        return {"lm": self.lm.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        self.lm.load_state_dict(saved["lm"])

    def resumable(self) -> dict:
        return {"solver": {"trainable": self.trainable}}

    def check_resume(self, saved: dict, total: int) -> None:
        return None  # no schedule: any budget continues the same iterations


def _options(config) -> LMOptions:
    return LMOptions(**checked_options(config.optimizer_options, config.tol, _OPTIONS))


def _box(bounds, trainable: list[str]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if not bounds or not trainable:
        return None, None
    return pack(bounds.lower, trainable), pack(bounds.upper, trainable)


def _write(params: dict[str, torch.Tensor], values: dict[str, torch.Tensor], names) -> None:
    with torch.no_grad():
        for name in names:
            params[name].requires_grad_(False)
            params[name].copy_(values[name])
