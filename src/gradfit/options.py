"""Every option of a fit, declared once: name, kind, default, allowed range, help, CLI flag.

:class:`~gradfit.train.config.FitConfig` checks each option's kind and range from this table,
the options section of :func:`gradfit.fit`'s docstring is written from it, ``gradfit fit``'s flags
take their help (and the lists of names, such as the optimizers) from it, and the scikit-learn
estimators pass on the options it marks for them. A test checks that the four agree with it
(tests/test_options.py). ``gradfit race`` and ``gradfit lr-find`` take the flags they share with a
fit from it too, range check included (:func:`gradfit.cli.table_flags.table_flag`).

Examples
--------
>>> OPTIONS["momentum"].problem(1.5)
"The 'momentum' parameter must be in [0, 1). Got 1.5 instead."
>>> OPTIONS["steps"].cli, OPTIONS["steps"].default
('--steps', None)
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gradfit.seeds import MAX_SEED, SEED_RULE

__all__ = ["Option", "OPTIONS", "DEFAULT_STEPS", "MAX_WHOLE", "options_doc"]

DEFAULT_STEPS = 1000
#: Whole numbers are at most this (int64, as torch counts).
MAX_WHOLE = 2**63 - 1
# The names each option takes, as their registries list them; written out so that this table (and so the
# CLI's help) is read without importing torch. tests/test_options.py checks them against the registries.
OPTIMIZER_NAMES = ("auto", "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "lbfgs", "lm")
SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle")
LOSS_NAMES = ("mse", "mae", "huber", "cross_entropy", "bce")
MAX_SNAPSHOTS = 2_000  # gradfit.train.history.MAX_SNAPSHOTS


@dataclass(frozen=True)
class Option:
    """One option of a fit.

    ``kind`` is how a value is checked: ``whole`` (an int >= ``low``), ``number`` (a finite real within
    ``low``/``high``, each ``(bound, inclusive)`` or None), ``flag`` (True or False), ``auto flag`` (True,
    False or None: chosen automatically), ``choice`` (one of ``choices``), ``name`` (a name checked by its
    own resolver, which also takes aliases), ``mapping`` (a dict of options) or ``seed``.
    ``cli`` is the flag of ``gradfit fit`` (None: library only); ``sklearn`` marks the options the
    scikit-learn estimators take and pass on."""

    name: str
    kind: str
    default: Any
    help: str
    low: tuple[float, bool] | None = None
    high: tuple[float, bool] | None = None
    rule: str = ""
    choices: tuple[str, ...] = ()
    cli: str | None = None
    sklearn: bool = False

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` for this option (scikit-learn's wording), or None when it is usable.

        Options of kind ``name`` are checked by their resolvers (FitConfig.validate)."""
        if self.kind == "name" or value is None and self.kind in ("whole", "number", "auto flag", "choice"):
            return None  # None is "not given" (a whole number's or a real's default applies where it is used)
        if self.kind == "whole":
            assert self.low is not None, self.name  # every whole-number option has a lowest value
            if _int(value) and self.low[0] <= value <= MAX_WHOLE:
                return None
            big = " (at most 2**63 - 1)" if _int(value) and value > MAX_WHOLE else ""
            return f"The '{self.name}' parameter must be a whole number >= {self.low[0]}{big}. Got {value!r} instead."
        if self.kind == "number":
            ok = _finite(value) and _within(value, self.low, self.high)
        elif self.kind == "flag":
            ok = value is True or value is False
        elif self.kind == "auto flag":
            ok = value in (None, True, False)
        elif self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "seed":
            ok = _int(value) and 0 <= value <= MAX_SEED
        elif self.kind == "mapping":
            ok = isinstance(value, Mapping)
        else:
            ok = True
        return None if ok else f"The '{self.name}' parameter must be {self.rule}. Got {value!r} instead."


def _opt(name, kind, default, help, **more) -> Option:
    return Option(name, kind, default, help, **more)


_GD = "gradient-descent optimizers"
#: Every option of FitConfig, in the order they are documented and checked.
OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        _opt(
            "loss",
            "name",
            "mse",
            "mse, mae, huber, cross_entropy or bce (in Python, also a function f(pred, target)).",
            choices=LOSS_NAMES,
            cli="--loss",
            sklearn=True,
        ),
        _opt(
            "optimizer",
            "name",
            "auto",
            "auto (the default: Levenberg-Marquardt in float64 for least squares, L-BFGS "
            "on scaled parameters for other losses, Adam for mini-batches and networks; the choice and why are "
            "printed), lm (Levenberg-Marquardt, mse only), lbfgs, sgd (the seeds' p -= lr * grad), momentum, nesterov, "
            "adam, adamw, rmsprop or adagrad.",
            choices=OPTIMIZER_NAMES,
            cli="--optimizer",
            sklearn=True,
        ),
        _opt(
            "lr",
            "number",
            None,
            "Learning rate. Default: half the stability limit (2 / the largest curvature at the "
            "start) for sgd, momentum and nesterov; from the curvature for the automatic Adam; torch's for the others. "
            "Giving --lr without --optimizer means plain gradient descent (sgd).",
            low=(0.0, False),
            rule="a finite number > 0",
            cli="--lr",
            sklearn=True,
        ),
        _opt(
            "momentum",
            "number",
            None,
            "Momentum in [0, 1) for momentum/nesterov.",
            low=(0.0, True),
            high=(1.0, False),
            rule="in [0, 1)",
            cli="--momentum",
        ),
        _opt(
            "steps",
            "whole",
            None,
            f"Budget in updates (default {DEFAULT_STEPS}).",
            low=(0, True),
            cli="--steps",
            sklearn=True,
        ),
        _opt(
            "epochs",
            "whole",
            None,
            "Budget in passes over the data (instead of --steps).",
            low=(1, True),
            cli="--epochs",
        ),
        _opt(
            "batch_size",
            "whole",
            None,
            "Rows per step (default: all rows).",
            low=(1, True),
            cli="--batch-size",
            sklearn=True,
        ),
        _opt("shuffle", "flag", True, "Shuffle the rows before each epoch of mini-batches.", rule="True or False"),
        _opt(
            "schedule",
            "name",
            None,
            "constant, step, exponential, cosine or onecycle.",
            choices=SCHEDULES,
            cli="--schedule",
        ),
        _opt(
            "val_split",
            "number",
            None,
            "Fraction of rows held out for validation, e.g. 0.2.",
            low=(0.0, False),
            high=(1.0, False),
            rule="a fraction in (0, 1), e.g. 0.2",
            cli="--val-split",
        ),
        _opt(
            "patience",
            "whole",
            None,
            "Stop when the validation loss has not improved for P checks (needs --val-split).",
            low=(1, True),
            cli="--patience",
        ),
        _opt(
            "restore_best",
            "flag",
            True,
            "With early stopping, end on the parameters of the best validation loss.",
            rule="True or False",
        ),
        _opt(
            "target_loss",
            "number",
            None,
            "Stop once the loss is at or below L.",
            rule="a finite number",
            cli="--target-loss",
        ),
        _opt(
            "min_delta",
            "number",
            0.0,
            "The smallest fall of the validation loss that counts as an improvement.",
            low=(0.0, True),
            rule="a finite number >= 0",
        ),
        _opt(
            "tol",
            "number",
            None,
            "Stop when the loss improves by less than T (relative).",
            low=(0.0, False),
            rule="a number > 0",
            cli="--tol",
            sklearn=True,
        ),
        _opt(
            "max_time", "number", None, "Stop after S seconds.", low=(0.0, False), rule="a number > 0", cli="--max-time"
        ),
        _opt(
            "seed",
            "seed",
            0,
            "Seed of the random start, the shuffling and the validation split.",
            rule=SEED_RULE,
            cli="--seed",
            sklearn=True,
        ),
        _opt("log_every", "whole", None, "Print the loss every K steps.", low=(1, True), cli="--log-every"),
        _opt(
            "dtype",
            "choice",
            None,
            "float32 or float64 (default: chosen with the optimizer; float64 for lm and small "
            "lbfgs fits, float32 for gradient descent).",
            choices=("float32", "float64"),
            rule="'float32' or 'float64'",
            cli="--dtype",
            sklearn=True,
        ),
        _opt("device", "name", "cpu", "auto, cpu or cuda.", choices=("auto", "cpu", "cuda", "mps"), cli="--device"),
        _opt(
            "chunk_size",
            "whole",
            65536,
            "Rows per chunk where a sum over rows is taken in pieces (memory).",
            low=(1, True),
        ),
        _opt(
            "row_pass",
            "choice",
            "auto",
            "How sums over rows are taken: auto (sufficient statistics or a fused pass where the model and "
            "loss allow and they pay for themselves), compiled (as auto, and a formula's fused pass compiled by "
            "torch.compile for a full-batch fit whatever its length: a compile takes 15-75 s once per process) or "
            "autograd (the model and eager autograd on every chunk).",
            choices=("auto", "compiled", "autograd"),
            rule="'auto', 'compiled' or 'autograd'",
        ),
        _opt(
            "scale",
            "auto flag",
            None,
            "Descend on scaled parameters (whitened from the Jacobian at the start, like "
            "standardising the inputs) and map them back: plain sgd then converges on badly conditioned problems.",
            rule="True, False or None (automatic)",
            cli="--scale",
            sklearn=True,
        ),
        _opt(
            "uncertainty",
            "auto flag",
            None,
            "Compute the parameters' standard errors (default: when cheap).",
            rule="True, False or None (automatic)",
            cli="--uncertainty",
        ),
        _opt(
            "max_snapshots",
            "whole",
            MAX_SNAPSHOTS,
            "At most this many parameter snapshots kept in the history.",
            low=(1, True),
        ),
        _opt("snapshot_every", "whole", 1, "Keep the parameters of every N-th step in the history.", low=(1, True)),
        _opt(
            "checkpoint_every",
            "whole",
            None,
            "Save the fit's state to OUT/checkpoint.pt every N steps (an interrupted fit always saves it).",
            low=(1, True),
            cli="--checkpoint-every",
        ),
        _opt(
            "loss_options",
            "mapping",
            {},
            "Options of the loss by name, e.g. {'delta': 2.0} for huber.",
            rule="a dict of the loss's options",
        ),
        _opt(
            "optimizer_options",
            "mapping",
            {},
            "Options of the torch.optim class, e.g. {'weight_decay': 0.01}.",
            rule="a dict of the optimizer's options",
        ),
        _opt(
            "schedule_options",
            "mapping",
            {},
            "Options of the schedule, e.g. {'gamma': 0.5}.",
            rule="a dict of the schedule's options",
        ),
    )
}


def options_doc(indent: str = "    ") -> str:
    """The ``**options`` entries of :func:`gradfit.fit`'s docstring: one per option, its default and help.

    Examples
    --------
    >>> print(options_doc("").splitlines()[0])
    loss : default 'mse' (CLI: ``--loss``)
    """
    lines = []
    for o in OPTIONS.values():
        flag = f" (CLI: ``{o.cli}``)" if o.cli else ""
        lines.append(f"{indent}{o.name} : default {o.default!r}{flag}")
        lines += textwrap.wrap(o.help, 110, initial_indent=indent + "    ", subsequent_indent=indent + "    ")
    return "\n".join(lines)


def _within(v, low, high) -> bool:
    if low is not None and not (v >= low[0] if low[1] else v > low[0]):
        return False
    return high is None or (v <= high[0] if high[1] else v < high[0])


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
