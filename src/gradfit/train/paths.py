"""Which way a fit's sums over rows are taken: the choice made once, before the first step.

:class:`gradfit.train.objective.Objective` computes every loss and gradient of a fit. By default it runs
the model and eager autograd over each chunk of rows. :func:`prepare_paths` gives it faster ways where the
model and loss allow, and only where they pay for themselves within the fit's budget:

- **sufficient statistics** (a model linear in its free parameters, the mean squared error, full-batch
  steps): one float64 pass over the rows, after which each loss and gradient costs O(p²) whatever the
  number of rows (bound to the training rows, and to the validation rows when there are any);
- a **fused chunk pass** (formula models): value and gradient of each chunk from the formula's own
  derivative, without an autograd graph (:mod:`gradfit.train.fused_pass`); for a full-batch fit whose rows x
  steps win a compile back, or with ``row_pass="compiled"``, the same pass through ``torch.compile``
  (:mod:`gradfit.train.compiled_pass`).

Every other case keeps the autograd pass, and so does every fit with ``row_pass="autograd"`` (the option that
turns the fast paths off). ``result.diagnostics["row_pass"]`` lists the paths that ran.
"""

from __future__ import annotations

import math

import torch

from gradfit.losses import MSE
from gradfit.memory import fits
from gradfit.optim.registry import optimizer_name
from gradfit.rowpass import is_row_set, rows_triple
from gradfit.train.compiled_pass import compiled_pass, pays_back
from gradfit.train.fused_pass import FusedPass, fused_pass
from gradfit.train.linear_stats import LinearStats
from gradfit.train.objective import Objective
from gradfit.train.scaling import ScaledLoss


def prepare_paths(
    objective: Objective, model, loss, train, val, params: dict, fixed: frozenset, config, total: int, full_batch: bool
) -> None:
    """Bind the fast paths that apply to this fit to ``objective`` (see the module); nothing when none does.

    Parameters
    ----------
    objective : Objective
        The fit's objective, changed in place.
    model, loss, train, val, params, fixed, config
        As given to :func:`gradfit.train.loop.run_loop`.
    total : int
        The fit's budget in steps: a path whose set-up costs more than it saves over ``total`` steps is not taken.
    full_batch : bool
        Whether every step sees every training row (bound paths serve only whole datasets).
    """
    if config.row_pass == "autograd":
        return
    bound = _bind_statistics(objective, model, loss, train, val, params, fixed, config, total, full_batch)
    # Steps the statistics serve read no rows: a compile for them would never be won back.
    _use_fused_pass(objective, model, loss, train, params, fixed, config, total, full_batch and not bound)


#: What building the statistics costs, in row passes beyond the Jacobian's p: the forwards of the first pass, the
#: second pass (forward and backward) and the autograd pass at the start that checks them.
STATS_PASSES = 7
#: Row passes of one autograd step (forward and backward) and of one validation loss (forward).
STEP_PASSES, VALUE_PASSES = 3, 1
#: Free entries beyond which the statistics are not built: A is p x p float64 (32 MB at 2,000).
MAX_STATS_PARAMS = 2_000


def _bind_statistics(objective, model, loss, train, val, params, fixed, config, total, full_batch) -> bool:
    """Bind :class:`~gradfit.train.linear_stats.LinearStats` to the training rows, and to the validation rows,
    when the model is linear in its free parameters under the mse, each step sees every row, and the budget pays
    for the build; each set of statistics is bound only where its loss at the start equals the autograd pass's.
    True when the training rows are bound."""
    inner, factor = (loss.inner, loss.factor) if isinstance(loss, ScaledLoss) else (loss, 1.0)
    p = sum(params[s.name].numel() for s in model.specs if s.name not in fixed)
    if (
        config.row_pass == "autograd"
        or not full_batch
        or type(inner) is not MSE
        or model.n_outputs != 1
        or optimizer_name(config.optimizer) == "lm"
        or not 0 < p <= MAX_STATS_PARAMS
        or not fits(3 * 8 * p * p)
    ):
        return False
    bound = False
    for data, per_step in ((train, STEP_PASSES), (val, VALUE_PASSES)):
        if data is None or len(data) == 0 or total * per_step < p + STATS_PASSES:
            continue
        stats = LinearStats.build(model, *rows_triple(data), params, fixed, config.chunk_size, factor)
        if stats is None:
            return bound  # not linear: the validation rows would say the same
        if _agrees(objective, stats, params, fixed, data):
            objective.bind(stats)
            bound = bound or data is train
    return bound


def _agrees(objective, stats, params, fixed, data) -> bool:
    """The statistics' loss and gradient at ``params`` equal one autograd pass's, to the accuracy of the
    parameters' dtype (a badly conditioned model whose statistics cannot reproduce the rows is not bound)."""
    trainable = [n for n in stats.names if n not in fixed]
    rtol = max(1e-9, math.sqrt(torch.finfo(params[trainable[0]].dtype).eps))
    # A fresh objective: the check's pass is not one of the fit's (describe() lists those).
    autograd = Objective(objective.model, objective.loss, objective.chunk_size)
    leaves = {n: v.detach().requires_grad_(n in trainable) for n, v in params.items()}
    value, grads = autograd.value_and_grad(leaves, trainable, *rows_triple(data))
    mine, my_grads = stats.value_and_grad(params, trainable)
    if not bool(torch.isfinite(value) and torch.isfinite(mine)) or abs(float(mine - value)) > rtol * abs(float(value)):
        return False
    auto, fast = (torch.cat([g.double().reshape(-1) for g in gs]) for gs in (grads, my_grads))
    # The gradient's rounding is relative to |r|·|J| (Cauchy-Schwarz), not to the gradient, which is ~0 at the optimum.
    scale = 2 * math.sqrt(max(float(value), 0.0) * float(stats.A.trace()) / stats.count)
    return bool(torch.isfinite(fast).all()) and float((auto - fast).norm()) <= rtol * max(float(auto.norm()), scale)


def _use_fused_pass(objective: Objective, model, loss, train, params: dict, fixed, config, total: int, full_batch):
    """A formula model's chunks by its own derivative (gradfit.train.fused_pass) instead of autograd, compiled
    (gradfit.train.compiled_pass) where the fit is large enough to win the compile back. Not for
    Levenberg-Marquardt, which takes no gradient from the objective (its Jacobians are its own)."""
    if optimizer_name(config.optimizer) == "lm":
        return
    chunk_pass = fused_pass(model, loss, params)
    if chunk_pass is None:
        return
    objective.chunk_pass, objective.chunk_pass_name = chunk_pass, chunk_pass.name
    asked = config.row_pass == "compiled"
    # A row set's chunks come from a file as they are read: reading, not arithmetic, sets its pace (no compile).
    in_memory = not is_row_set(train)
    if isinstance(chunk_pass, FusedPass) and full_batch and in_memory and (asked or pays_back(len(train), total)):
        trainable = [n for n in model.param_names if n not in fixed]
        compiled = compiled_pass(chunk_pass, model, loss, params, trainable, train)
        if isinstance(compiled, str):  # the compiler failed: the eager fused pass, and why
            objective.chunk_pass_name = f"{chunk_pass.name} (torch.compile failed: {compiled})"
        else:
            objective.chunk_pass, objective.chunk_pass_name = compiled, compiled.name


def linear_statistics(model, loss, train, params, fixed, config, total: int) -> LinearStats | None:
    """The sufficient statistics a full-batch fit of ``model`` to ``train`` from ``params`` would take its sums
    from (None where it would take the row pass): the same rule and checks as :func:`prepare_paths`, for callers
    that run many fits of these rows at once (:mod:`gradfit.experiments.sweeps`)."""
    objective = Objective(model, loss, config.chunk_size)
    if not _bind_statistics(objective, model, loss, train, None, params, fixed, config, total, True):
        return None
    stats = objective._bound[0]
    return stats if isinstance(stats, LinearStats) else None
