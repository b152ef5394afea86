"""FitConfig: every option of a fit, validated in one place.

The constructor holds no logic (as in scikit-learn); :meth:`FitConfig.validate` checks each option's
kind and range as declared in :data:`gradfit.options.OPTIONS`, then the combinations that cannot
work together, and raises one :class:`ConfigError` listing every problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from gradfit.errors import ConfigError
from gradfit.optim.registry import optimizer_name
from gradfit.optim.schedules import schedule_name
from gradfit.options import DEFAULT_STEPS, MAX_WHOLE, OPTIONS
from gradfit.rowpass import CHUNK_ROWS
from gradfit.train.history import MAX_SNAPSHOTS

if TYPE_CHECKING:  # torch is imported where a device is resolved, not to read a config
    import torch

__all__ = ["FitConfig", "DEFAULT_STEPS", "MAX_WHOLE", "resolve_device"]


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
    chunk_size: int = CHUNK_ROWS  # rows per chunk of every pass over the rows (gradfit.rowpass)
    row_pass: str = "auto"  # "compiled": compile a formula's pass; "autograd": no fast path (gradfit.train.paths)
    scale: bool | None = None  # descend on whitened / Jacobi-scaled parameters (gradfit.train.scaling); None: auto
    uncertainty: bool | None = None  # None: computed when cheap (see gradfit.analysis.fit_analysis)
    max_snapshots: int = MAX_SNAPSHOTS
    snapshot_every: int = 1
    checkpoint_every: int | None = None  # save the loop's state every N steps (gradfit.train.checkpoint)
    loss_options: dict[str, Any] = field(default_factory=dict)
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    schedule_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> FitConfig:
        """Return self if every option is usable, else raise ConfigError naming each problem.

        Each option is checked against its kind and range in :data:`gradfit.options.OPTIONS`, then the combinations that cannot work together (a budget in steps and
        epochs, early stopping without a validation split, an optimizer and a schedule or momentum it
        cannot use)."""
        problems: list[str] = []

        def need(cond: bool, msg: str) -> None:
            if not cond:
                problems.append(msg)

        for name in ("optimizer", "schedule"):
            try:
                (optimizer_name if name == "optimizer" else schedule_name)(getattr(self, name))
            except ConfigError as exc:
                problems.append(str(exc))
        problems += self._declared(*_of_kind("number"))
        need(
            not (self.steps is not None and self.epochs is not None),
            f"Give a budget in steps or in epochs, not both (got steps={self.steps!r} and epochs={self.epochs!r}).",
        )
        problems += self._declared(*_of_kind("whole"))
        need(
            self.patience is None or self.val_split is not None,
            "Early stopping ('patience') watches the validation loss: also give 'val_split' (e.g. 0.2).",
        )
        problems += self._declared("scale")
        need(
            not (self.scale is True and _optimizer_key(self.optimizer) == "lm"),
            "scale=True is for the gradient-descent optimizers; Levenberg-Marquardt ('lm') scales its own steps. "
            "Leave out scale.",
        )
        problems += self._declared("uncertainty", "seed", "dtype", "row_pass", *_of_kind("flag"), *_of_kind("mapping"))
        problems += _device_problems(self.device) + _pair_problems(self)
        if problems:
            raise ConfigError("Invalid options:\n- " + "\n- ".join(problems) if len(problems) > 1 else problems[0])
        return self

    def _declared(self, *names: str) -> list[str]:
        """The problems of the options ``names`` with their declared kind and range."""
        return [p for p in (OPTIONS[n].problem(getattr(self, n)) for n in names) if p is not None]

    @property
    def resolved_dtype(self) -> str:
        """The dtype given, else float64 for Levenberg-Marquardt (whose normal equations need it) and, until
        :func:`gradfit.optim.auto.plan_optimizer` has chosen and set ``dtype``, for ``auto`` and ``lbfgs``
        (so data read in float64 is not rounded before the choice), else float32."""
        if self.dtype is not None:
            return self.dtype
        return "float64" if optimizer_name(self.optimizer) in ("lm", "auto", "lbfgs") else "float32"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able options (a callable loss is recorded by its name).

        ``asdict``'s recursive copy only where a value is not a plain number, string or None, or a dict of those (the
        options dicts, copied here as asdict copies them): otherwise (a loss function, nested options) the same
        dict as asdict's, at a fraction of the cost on every fit."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if all(
            _plain(v) or (type(v) is dict and all(_plain(k) and _plain(x) for k, x in v.items())) for v in out.values()
        ):
            out = {k: dict(v) if type(v) is dict else v for k, v in out.items()}
        else:
            out = asdict(self)
        out["dtype"] = self.resolved_dtype
        if callable(self.loss):
            out["loss"] = getattr(self.loss, "__name__", "custom")
        return out


def _plain(value) -> bool:
    """A value asdict returns as it is (immutable, not a container)."""
    return value is None or type(value) in (bool, int, float, str)


def _optimizer_key(name) -> str | None:
    try:
        return optimizer_name(name)
    except ConfigError:
        return None  # reported by the optimizer check


def _device_problems(device) -> list[str]:
    """What is wrong with a device name, checked here and now: its spelling, and that this machine has it."""
    try:
        resolve_device(device)
    except ConfigError as exc:
        return [str(exc)]
    return []


def resolve_device(name) -> torch.device:
    """The torch device for ``name`` ("auto", "cpu", "cuda", "cuda:1", "mps"), or a ConfigError when it is
    misspelt or not available on this machine."""
    import torch

    allowed = "'auto', 'cpu', 'cuda' or 'cuda:N' (a GPU's index), or 'mps' (Apple GPUs)"
    given, name = name, name.strip().lower() if isinstance(name, str) else name
    if not isinstance(name, str) or name.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
        raise ConfigError(f"The 'device' parameter must be {allowed}. Got {given!r} instead.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"The 'device' parameter must be {allowed}. Got {given!r} instead.") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"The device {name!r} was requested but no CUDA GPU is available here. Use --device cpu or auto."
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"The device {name!r} was requested but this machine has {count} CUDA GPU"
                f"{'s' if count != 1 else ''} (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})."
            )
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"The device {name!r} (Apple's Metal GPUs) is not available here. Use --device cpu or auto.")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ConfigError(f"The device {name!r} names a CPU by index; there is one CPU device. Use --device cpu.")
    return device


def _pair_problems(config: FitConfig) -> list[str]:
    """Options that are each fine but do not go together with the optimizer named."""
    key = _optimizer_key(config.optimizer)
    out = []
    if key == "lbfgs" and config.schedule is not None and _schedule_key(config.schedule) not in (None, "constant"):
        out.append(
            f"L-BFGS ('lbfgs') chooses each step's length by a line search, so a learning-rate schedule "
            f"({config.schedule!r}) does not apply to it. Leave out schedule, or choose a gradient-descent "
            f"optimizer (sgd, momentum, adam, ...)."
        )
    if config.momentum is not None and key in ("sgd", "adam", "adamw", "adagrad", "lbfgs"):
        own = {
            "adam": "its own momentum is betas[0]",
            "adamw": "its own momentum is betas[0]",
            "sgd": "sgd is the plain step p -= lr * grad",
        }.get(key, f"{key!r} has none")
        out.append(
            f"The 'momentum' parameter applies to the optimizers momentum, nesterov and rmsprop; {own}. "
            f"Leave out momentum, or use --optimizer momentum (or nesterov)."
        )
    return out


def _schedule_key(name) -> str | None:
    try:
        return schedule_name(name)
    except ConfigError:
        return None  # reported by the schedule check


def _of_kind(kind: str) -> tuple[str, ...]:
    return tuple(name for name, option in OPTIONS.items() if option.kind == kind)
