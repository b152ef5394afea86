"""``optimizer="auto"``, the default: the optimizer, precision and scaling that fit the problem.

Nobody types ``--optimizer lm --dtype float64`` on a first try, so the default has to reach the
optimum by itself. The rules, first match wins:

1. A learning rate, momentum or schedule was given: gradient descent with it (``sgd``, or
   ``momentum``), the seeds' step, in float32. Giving an lr is asking for gradient descent.
2. Mini-batches or a neural network (an ``nn.Module``, the zoo ``mlp``, or more free parameters than
   Levenberg-Marquardt and L-BFGS handle well): Adam, in float32, with a learning rate taken from the
   curvature of the loss at the start (:func:`gradfit.analysis.stability.adam_lr`).
3. Least squares (``mse``) on rows in memory, within Levenberg-Marquardt's cost budget: ``lm`` in
   float64 (MINPACK's trust region; converges in a few dozen Jacobians where gradient descent needs
   thousands of steps, and is indifferent to badly scaled columns).
4. Anything else (mae, huber, cross_entropy, bce, a loss function, or least squares too large for
   lm): L-BFGS with scaling (``scale=True``), in float64 when the problem is small.

A named optimizer keeps its own rules (:func:`plan_optimizer`): float32 unless it is ``lm``, or
``lbfgs`` on a small problem. The choice and its reason go into ``result.diagnostics["choice"]``
and are printed by the CLI.

Examples
--------
>>> c = choose_optimizer(loss_name="mse", least_squares=True, rows=442, free=11)
>>> c.optimizer, c.dtype
('lm', 'float64')
>>> choose_optimizer(loss_name="cross_entropy", least_squares=False, rows=300, free=9).optimizer
'lbfgs'
>>> choose_optimizer(loss_name="mse", least_squares=True, rows=100, free=2, lr_given=True).optimizer
'sgd'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

AUTO = "auto"
LM_COST = 4e9  # rows x free² per Levenberg-Marquardt iteration (a few seconds on one core)
MAX_QUASI_NEWTON = 5_000  # free parameters beyond which a network's descent is Adam's business
SMALL = 1e8  # rows x free: float64 costs little below this


@dataclass(frozen=True)
class Choice:
    """What ``auto`` chose, and why.

    Attributes
    ----------
    optimizer : str
        A canonical optimizer name (``lm``, ``lbfgs``, ``adam``, ``sgd``, ``momentum``).
    dtype : str
        ``float64`` or ``float32`` (the dtype given by the user wins; ``dtype`` is then that one).
    scale : bool
        Whether the descent runs on scaled parameters.
    lr_rule : str or None
        How the learning rate is set when none was given: ``"stability"`` (half the stability limit),
        ``"curvature"`` (Adam's, from the curvature along its first step), or None (no lr: lm, lbfgs).
    reason : str
        One sentence for people.
    """

    optimizer: str
    dtype: str
    scale: bool
    lr_rule: str | None
    reason: str

    def to_dict(self) -> dict:
        # Plain strings, booleans and None (asdict's answer without its recursive copy), asdict otherwise.
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out if all(v is None or type(v) in (bool, str) for v in out.values()) else asdict(self)


def choose_optimizer(
    *,
    loss_name: str,
    least_squares: bool,
    rows: int,
    free: int,
    batch_size: int | None = None,
    network: bool = False,
    lr_given: bool = False,
    momentum_given: bool = False,
    schedule_given: bool = False,
    dtype: str | None = None,
    scale: bool | None = None,
    streamed: bool = False,
) -> Choice:
    """The optimizer for a problem; see the module docstring for the rules.

    Parameters
    ----------
    loss_name : str
        The loss's name (for the reason).
    least_squares : bool
        The loss is a mean of squared residuals.
    rows, free : int
        Training rows and free (trainable) parameter entries.
    batch_size : int or None
        Rows per step; None or >= rows is full batch.
    network : bool
        The model is a neural network (nn.Module or the zoo mlp).
    lr_given, momentum_given, schedule_given : bool
        The user gave a learning rate / momentum / learning-rate schedule.
    streamed : bool
        The rows are read from a file at every pass, not held in memory (said in the reason).
    dtype : str or None
        The user's dtype, which is kept; None lets the rule choose.
    scale : bool or None
        The user's ``scale``; None lets the rule choose.
    """
    mini_batch = batch_size is not None and batch_size < rows
    size = f"{rows:,} rows x {free:,} free parameters"
    if lr_given or momentum_given or schedule_given:
        name = "momentum" if momentum_given else "sgd"
        given = " and ".join(
            w
            for w, g in (("a learning rate", lr_given), ("momentum", momentum_given), ("a schedule", schedule_given))
            if g
        )
        return Choice(
            name,
            dtype or "float32",
            bool(scale),
            None if lr_given else "stability",
            f"{given} given, so gradient descent ({name}) with {'them' if ' and ' in given else 'it'}; "
            f"leave {'them' if ' and ' in given else 'it'} out for the automatic choice",
        )
    if mini_batch or network or free > MAX_QUASI_NEWTON:
        why = (
            f"mini-batches of {batch_size:d} rows"
            if mini_batch
            else "a neural network"
            if network
            else f"{free:,} free parameters"
        )
        return Choice(
            "adam",
            dtype or "float32",
            bool(scale),
            "curvature",
            f"{why}: Adam in {dtype or 'float32'}, its learning rate from the curvature of the loss at the start",
        )
    if least_squares and rows * free * free <= LM_COST and not scale:
        return Choice(
            "lm",
            dtype or "float64",
            False,
            None,
            f"least squares ({loss_name}) on {size} {'read from the file at every pass' if streamed else 'in memory'}: "
            f"Levenberg-Marquardt in {dtype or 'float64'}, "
            f"which converges in few iterations whatever the scale of the columns",
        )
    chosen = dtype or ("float64" if rows * max(free, 1) <= SMALL else "float32")
    why = (
        f"least squares on {size}, above Levenberg-Marquardt's budget"
        if least_squares and not scale
        else "scale was asked for"
        if least_squares
        else f"the {loss_name} loss"
    )
    return Choice(
        "lbfgs", chosen, True if scale is None else bool(scale), None, f"{why}: L-BFGS on scaled parameters in {chosen}"
    )


def plan_optimizer(
    requested: str,
    *,
    rows: int,
    free: int,
    lr_given: bool = False,
    dtype: str | None = None,
    scale: bool | None = None,
    **facts,
) -> Choice:
    """The :class:`Choice` for an optimizer as requested: ``auto`` by :func:`choose_optimizer`, a named one as
    named, with its dtype (the user's, else float64 for ``lm`` and for a small ``lbfgs`` problem, whose line
    search stalls on float32 rounding, else float32) and its lr rule (half the stability limit for plain and
    momentum gradient descent when no lr was given)."""
    from gradfit.optim.registry import optimizer_name

    key = optimizer_name(requested)
    if key == AUTO:
        return choose_optimizer(rows=rows, free=free, lr_given=lr_given, dtype=dtype, scale=scale, **facts)
    small = rows * max(free, 1) <= SMALL
    chosen = dtype or ("float64" if key == "lm" or (key == "lbfgs" and small) else "float32")
    rule = "stability" if key in ("sgd", "momentum", "nesterov") and not lr_given else None
    return Choice(key, chosen, bool(scale), rule, f"{key} as asked, in {chosen}")
