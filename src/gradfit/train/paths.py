"""Which way a fit's sums over rows are taken: the choice made once, before the first step.

:class:`gradfit.train.objective.Objective` computes every loss and gradient of a fit. By default it runs
the model and eager autograd over each chunk of rows. :func:`prepare_paths` gives it faster ways where the
model and loss allow, and only where they pay for themselves within the fit's budget:

- **sufficient statistics** (a model linear in its free parameters, the mean squared error, full-batch
  steps): one float64 pass over the rows, after which each loss and gradient costs O(p²) whatever the
  number of rows (bound to the training rows, and to the validation rows when there are any);
- a **fused chunk pass** (formula models): value and gradient of each chunk from the formula's own
  derivative, without an autograd graph.

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
        _use_fused_pass(objective, model, loss, params)


def _use_fused_pass(objective: Objective, model, loss, params: dict) -> None:
    """A formula model's chunks by its own derivative (gradfit.train.fused_pass) instead of autograd."""
    from gradfit.train.fused_pass import fused_pass

    chunk_pass = fused_pass(model, loss, params)
    if chunk_pass is not None:
        objective.chunk_pass = chunk_pass
        objective.chunk_pass_name = chunk_pass.name
