"""Which way a fit's sums over rows are taken: the choice made once, before the first step.

:class:`gradfit.train.objective.Objective` computes every loss and gradient of a fit. By default it runs
the model and eager autograd over each chunk of rows. :func:`prepare_paths` gives it faster ways where the
model and loss allow, and only where they pay for themselves within the fit's budget:

- **sufficient statistics** (a model linear in its free parameters, the mean squared error, full-batch
  steps): one float64 pass over the rows, after which each loss and gradient costs O(p²) whatever the
  number of rows (bound to the training rows, and to the validation rows when there are any);
- a **fused chunk pass** (formula models): value and gradient of each chunk from the formula's own
  derivative, without an autograd graph (:mod:`gradfit.train.fused_pass`); for a full-batch fit whose rows x
  steps win a compile back, the same pass through ``torch.compile`` (:mod:`gradfit.train.compiled_pass`).

Every other case keeps the autograd pass, and so does every fit with ``row_pass="autograd"`` (the option that
turns the fast paths off). ``result.diagnostics["row_pass"]`` lists the paths that ran.
"""

from __future__ import annotations

from gradfit.train.objective import Objective


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
    if config.row_pass == "auto":
        _use_fused_pass(objective, model, loss, train, params, fixed, config, total, full_batch)


def _use_fused_pass(objective: Objective, model, loss, train, params: dict, fixed, config, total: int, full_batch):
    """A formula model's chunks by its own derivative (gradfit.train.fused_pass) instead of autograd, compiled
    (gradfit.train.compiled_pass) where the fit is large enough to win the compile back."""
    from gradfit.train.fused_pass import FusedPass, fused_pass

    chunk_pass = fused_pass(model, loss, params)
    if chunk_pass is None:
        return
    objective.chunk_pass, objective.chunk_pass_name = chunk_pass, chunk_pass.name
    from gradfit.optim.registry import optimizer_name
    from gradfit.train.compiled_pass import compiled_pass, pays_back

    descends = optimizer_name(config.optimizer) != "lm"  # Levenberg-Marquardt takes no gradient from the rows
    if isinstance(chunk_pass, FusedPass) and descends and full_batch and pays_back(train.x.shape[0], total):
        trainable = [n for n in model.param_names if n not in fixed]
        compiled = compiled_pass(chunk_pass, model, loss, params, trainable, train, objective.chunk_size)
        if isinstance(compiled, str):  # the compiler failed: the eager fused pass, and why
            objective.chunk_pass_name = f"{chunk_pass.name} (torch.compile failed: {compiled})"
        else:
            objective.chunk_pass, objective.chunk_pass_name = compiled, compiled.name
