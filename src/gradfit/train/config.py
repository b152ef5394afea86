"""FitConfig: every option of a fit, validated in one place.

The constructor holds no logic (as in scikit-learn); :meth:`FitConfig.validate` checks ranges
and contradictions and raises one :class:`ConfigError` listing every problem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from gradfit.errors import ConfigError
from gradfit.optim.registry import optimizer_name
from gradfit.train.history import MAX_SNAPSHOTS
from gradfit.optim.schedules import schedule_name

DEFAULT_STEPS = 1000


@dataclass(frozen=True)
class FitConfig:
    """Options of a fit. See :func:`gradfit.fit` for their meaning."""

    loss: str | Callable = "mse"
    optimizer: str = "auto"  # chosen from the problem (gradfit.optim.auto) unless named
    lr: float | None = None
    momentum: float | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    shuffle: bool = True
    schedule: str | None = None
    val_split: float | None = None
    patience: int | None = None
    restore_best: bool = True
    min_delta: float = 0.0
    target_loss: float | None = None
    tol: float | None = None
    max_time: float | None = None
    seed: int = 0
    log_every: int | None = None
    dtype: str | None = None  # chosen with the optimizer unless given (see resolved_dtype)
    device: str = "cpu"
    chunk_size: int = 65536
    scale: bool | None = None  # descend on whitened / Jacobi-scaled parameters (gradfit.train.scaling); None: auto
    uncertainty: bool | None = None  # None: computed when cheap (see gradfit.analysis.assess)
    max_snapshots: int = MAX_SNAPSHOTS
    snapshot_every: int = 1
    checkpoint_every: int | None = None  # save the loop's state every N steps (gradfit.train.checkpoint)
    loss_options: dict[str, Any] = field(default_factory=dict)
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    schedule_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "FitConfig":
        """Return self if every option is usable, else raise ConfigError naming each problem."""
        problems: list[str] = []

        def need(cond: bool, msg: str) -> None:
            if not cond:
                problems.append(msg)

        for name in ("optimizer", "schedule"):
            try:
                (optimizer_name if name == "optimizer" else schedule_name)(getattr(self, name))
            except ConfigError as exc:
                problems.append(str(exc))
        if self.lr is not None:
            need(_finite(self.lr) and self.lr > 0, f"The 'lr' parameter must be a finite number > 0. Got {self.lr!r} instead.")
        if self.momentum is not None:
            need(_finite(self.momentum) and 0 <= self.momentum < 1, f"The 'momentum' parameter must be in [0, 1). Got {self.momentum!r} instead.")
        need(not (self.steps is not None and self.epochs is not None),
             "Give a budget in steps or in epochs, not both (got steps=%r and epochs=%r)." % (self.steps, self.epochs))
        for name in ("steps", "epochs", "batch_size", "patience", "log_every", "chunk_size", "max_snapshots", "snapshot_every",
                     "checkpoint_every"):
            value = getattr(self, name)
            if value is not None:
                need(_int(value) and value >= (0 if name == "steps" else 1),
                     f"The '{name}' parameter must be a whole number >= {0 if name == 'steps' else 1}. Got {value!r} instead.")
        if self.val_split is not None:
            need(_finite(self.val_split) and 0 < self.val_split < 1,
                 f"The 'val_split' parameter must be a fraction in (0, 1), e.g. 0.2. Got {self.val_split!r} instead.")
        need(self.patience is None or self.val_split is not None,
             "Early stopping ('patience') watches the validation loss: also give 'val_split' (e.g. 0.2).")
        for name in ("target_loss", "min_delta"):
            value = getattr(self, name)
            need(value is None or _finite(value), f"The '{name}' parameter must be a finite number. Got {value!r} instead.")
        for name in ("tol", "max_time"):
            value = getattr(self, name)
            need(value is None or (_finite(value) and value > 0), f"The '{name}' parameter must be a number > 0. Got {value!r} instead.")
        need(self.scale in (None, True, False),
             f"The 'scale' parameter must be True, False or None (automatic). Got {self.scale!r} instead.")
        need(not (self.scale is True and _optimizer_key(self.optimizer) == "lm"),
             "scale=True is for the gradient-descent optimizers; Levenberg-Marquardt ('lm') scales its own steps. "
             "Leave out scale.")
        need(self.uncertainty in (None, True, False),
             f"The 'uncertainty' parameter must be True, False or None (automatic). Got {self.uncertainty!r} instead.")
        need(_int(self.seed) and self.seed >= 0, f"The 'seed' parameter must be a whole number >= 0. Got {self.seed!r} instead.")
        need(self.dtype in (None, "float32", "float64"),
             f"The 'dtype' parameter must be 'float32' or 'float64'. Got {self.dtype!r} instead.")
        need(str(self.device).split(":")[0] in ("auto", "cpu", "cuda", "mps"),
             f"The 'device' parameter must be 'auto', 'cpu' or 'cuda'. Got {self.device!r} instead.")
        if problems:
            raise ConfigError("Invalid options:\n- " + "\n- ".join(problems) if len(problems) > 1 else problems[0])
        return self

    @property
    def resolved_dtype(self) -> str:
        """The dtype given, else float64 for Levenberg-Marquardt (whose normal equations need it) and, until
        :func:`gradfit.optim.auto.plan_optimizer` has chosen and set ``dtype``, for ``auto`` and ``lbfgs``
        (so data read in float64 is not rounded before the choice), else float32."""
        if self.dtype is not None:
            return self.dtype
        return "float64" if optimizer_name(self.optimizer) in ("lm", "auto", "lbfgs") else "float32"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able options (a callable loss is recorded by its name)."""
        out = asdict(self)
        out["dtype"] = self.resolved_dtype
        if callable(self.loss):
            out["loss"] = getattr(self.loss, "__name__", "custom")
        return out


def _optimizer_key(name) -> str | None:
    try:
        return optimizer_name(name)
    except ConfigError:
        return None  # reported by the optimizer check


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
