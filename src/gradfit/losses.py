"""Losses: ``(predictions, targets) -> scalar``, by name or from a function.

Every :class:`Loss` gives the per-row values, their sum (``total``, so the training loop can add
up chunks and divide by the row count itself) and their mean (calling the loss). Sums use
``torch.sum``, whose pairwise summation keeps a float32 chunk of 65,536 rows accurate.

With row weights ``w`` (``weight=``, see :mod:`gradfit.data.weights`) ``total`` is ``Σ wᵢ ℓᵢ`` and the
mean is ``Σ wᵢ ℓᵢ / Σ wᵢ``, as scikit-learn's ``sample_weight`` and torch's weighted ``"mean"`` reduction.

Examples
--------
>>> loss = get_loss("mse")
>>> float(loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])))
2.0
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfit import rowpass
from gradfit.aliases import closest
from gradfit.errors import ConfigError, DataError

LOSS_NAMES: tuple[str, ...] = ("mse", "mae", "huber", "cross_entropy", "bce")


class Loss:
    """Base class: subclasses define ``per_row`` (and ``check_targets`` where targets are special).

    Attributes
    ----------
    name : str
    least_squares : bool
        True when the loss is a mean of squared residuals (Levenberg-Marquardt applies).
    options : dict
        The options it was built with (``{"delta": 1.0}`` for huber).
    """

    name = "loss"
    least_squares = False

    def __init__(self):
        self.options: dict = {}

    def per_row(self, pred: Tensor, target: Tensor) -> Tensor:
        """The loss of each row, shape ``(n,)``."""
        raise NotImplementedError

    def total(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """The sum over rows (a scalar), each row times its ``weight`` when given."""
        rows = self.per_row(pred, target)
        return rows.sum() if weight is None else (rows * weight.to(rows.dtype)).sum()

    def __call__(self, pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """The mean over rows (a scalar): ``Σ wᵢ ℓᵢ / Σ wᵢ`` when ``weight`` is given."""
        if weight is None:
            return self.per_row(pred, target).mean()
        return self.total(pred, target, weight) / weight.sum()

    #: Whether :meth:`check_targets` reads the targets' values (a check over every row of data not in memory).
    reads_targets = False

    def check_targets(self, y: Tensor, n_outputs: int, first_row: int = 0) -> None:
        """Raise DataError when the targets do not suit this loss, ConfigError when the model's outputs do not.

        The regression losses need one output per row; their targets can be any finite number. ``first_row``: the
        row number of ``y[0]`` in messages (a chunk of rows read one after another).
        """
        if n_outputs != 1:
            raise ConfigError(
                f"The {self.name!r} loss compares one prediction per row with the target, but the "
                f"model has {n_outputs} outputs. Use 'cross_entropy' for class logits, or a model "
                f"with n_outputs=1."
            )

    def describe(self) -> dict:
        return {"name": self.name, **self.options}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"<Loss {self.name!r}{opts}>"


def _same_shape(name: str, pred: Tensor, target: Tensor) -> None:
    # Broadcasting (n,) against (n, 1) would silently build an (n, n) loss.
    if pred.shape != target.shape:
        raise ConfigError(
            f"The {name!r} loss needs predictions and targets of the same shape. "
            f"Got {tuple(pred.shape)} and {tuple(target.shape)} instead."
        )


def _rows(values: Tensor) -> Tensor:
    return values if values.ndim == 1 else values.reshape(values.shape[0], -1).mean(dim=1)


def _first_bad(y: Tensor, bad: Tensor, first_row: int = 0) -> tuple[int, float]:
    row = int(bad.nonzero()[0, 0])
    return first_row + row, float(y[row])


class MSE(Loss):
    """``mse``: mean of ``(pred - target)**2``; least squares."""

    name = "mse"
    least_squares = True

    def per_row(self, pred, target):
        _same_shape(self.name, pred, target)
        return _rows((pred - target) ** 2)


class MAE(Loss):
    """``mae``: mean of ``|pred - target|`` (robust to outliers)."""

    name = "mae"

    def per_row(self, pred, target):
        _same_shape(self.name, pred, target)
        return _rows((pred - target).abs())


class Huber(Loss):
    """``huber``: squared error (halved) within ``delta`` of the target, absolute error beyond it."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not delta > 0:
            raise ConfigError(f"The 'delta' parameter of the huber loss must be a number > 0. Got {delta!r} instead.")
        super().__init__()
        self.options = {"delta": float(delta)}

    def per_row(self, pred, target):
        _same_shape(self.name, pred, target)
        return _rows(F.huber_loss(pred, target, reduction="none", delta=self.options["delta"]))


class CrossEntropy(Loss):
    """``cross_entropy``: multi-class, from ``(n, C)`` logits and class labels 0..C-1 (floats are fine)."""

    name = "cross_entropy"

    def per_row(self, pred, target):
        if pred.ndim != 2 or pred.shape[0] != target.shape[0]:
            raise ConfigError(
                f"The 'cross_entropy' loss needs (n, C) class logits for n = {target.shape[0]} rows. "
                f"Got predictions of shape {tuple(pred.shape)}; use a model with n_outputs = C >= 2 "
                f"(or 'bce' with one output for two classes)."
            )
        return F.cross_entropy(pred, target.long(), reduction="none")

    def n_classes(self, y: Tensor, n_inputs: int = 1, chunk_rows: int | None = None) -> int:
        """The number of classes the labels ask for: the largest label + 1 (at least 2).

        Labels are class indices, so a stray large label (a year, an id) asks for that many outputs:
        refused (:class:`~gradfit.errors.MemoryBudgetError`) when their logits and weights exceed
        the memory budget, naming the label.
        """
        from gradfit.memory import fits, require

        finite = y[torch.isfinite(y)]
        top = float(finite.max()) if finite.numel() else 0.0
        if top < 1:
            return 2
        classes = int(top) + 1
        rows = min(rowpass.chunk_rows(chunk_rows), y.shape[0])
        need = [
            (f"the logits of {rows:,} rows and their gradients", 3.0 * 8 * rows * classes),
            (
                f"{n_inputs + 1} weights per class, with gradients and optimizer state",
                4.0 * 4 * (n_inputs + 1) * classes,
            ),
        ]
        if fits(sum(b for _, b in need)):
            return classes
        distinct = int(torch.unique(finite).numel())
        require(
            need,
            f"the 'cross_entropy' loss with {classes:,} classes",
            f"cross_entropy takes each label as a class index 0..C-1, so the largest label, {top:g}, asks for "
            f"{classes:,} classes (one output each), while {distinct:,} distinct labels occur. Number the classes "
            f"0..{distinct - 1} (in pandas: y.rank(method='dense') - 1), or use 'mse' to predict a number.",
        )
        return classes

    reads_targets = True

    def check_targets(self, y, n_outputs, first_row: int = 0):
        if n_outputs < 2:
            raise ConfigError(
                "The 'cross_entropy' loss needs a model with one output per class (n_outputs >= 2). "
                "Got n_outputs=1; set n_outputs to the number of classes, or use 'bce' for two classes."
            )
        bad = ~torch.isfinite(y) | (y != torch.round(y))
        if bool(bad.any()):
            row, value = _first_bad(y, bad, first_row)
            raise DataError(
                f"The 'cross_entropy' loss needs class labels that are whole numbers 0..{n_outputs - 1}. "
                f"Found {value:g} at row {row}. Use 'mse' to predict a number instead."
            )
        bad = (y < 0) | (y > n_outputs - 1)
        if bool(bad.any()):
            row, value = _first_bad(y, bad, first_row)
            raise DataError(
                f"The 'cross_entropy' loss needs class labels 0..{n_outputs - 1} for a model with "
                f"{n_outputs} outputs. Found {value:g} at row {row}; set n_outputs to the number of "
                f"classes or renumber the labels from 0."
            )


class BCE(Loss):
    """``bce``: binary cross-entropy from ``(n,)`` logits and targets 0/1 (or probabilities in [0, 1])."""

    name = "bce"

    def per_row(self, pred, target):
        _same_shape(self.name, pred, target)
        return F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype), reduction="none")

    reads_targets = True

    def check_targets(self, y, n_outputs, first_row: int = 0):
        if n_outputs != 1:
            raise ConfigError(
                f"The 'bce' loss needs a model with one output (the logit of class 1). Got "
                f"n_outputs={n_outputs}; use 'cross_entropy' for several classes."
            )
        bad = ~((y >= 0) & (y <= 1))  # written so that NaN counts as bad
        if bool(bad.any()):
            row, value = _first_bad(y, bad, first_row)
            raise DataError(
                f"The 'bce' loss needs targets that are 0/1 labels or probabilities in [0, 1]. "
                f"Found {value:g} at row {row}. Use 'cross_entropy' for more than two classes."
            )


class CallableLoss(Loss):
    """A loss from ``f(pred, target) -> scalar``, which must be a MEAN over rows.

    ``total`` is ``f(pred, target) * n``, so chunked and mini-batch evaluation is exact only when ``f``
    averages over rows. ``per_row`` returns that mean repeated for each row.
    """

    def __init__(self, f: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.f = f
        self.name = getattr(f, "__name__", type(f).__name__)

    def __call__(self, pred, target, weight=None):
        if weight is not None:
            raise ConfigError(unweighted_message(self.name))
        out = self.f(pred, target)
        if not isinstance(out, Tensor):
            raise ConfigError(
                f"The loss function {self.name!r} returned {type(out).__name__}, not a torch tensor. "
                f"It must compute with torch operations (torch.mean, not numpy.mean) so gradients "
                f"can flow."
            )
        if out.numel() != 1:
            raise ConfigError(
                f"The loss function {self.name!r} must return a scalar (the mean over rows). "
                f"Got shape {tuple(out.shape)} instead."
            )
        return out.reshape(())

    def per_row(self, pred, target):
        return self(pred, target).expand(pred.shape[0])

    def total(self, pred, target, weight=None):
        if weight is not None:
            raise ConfigError(unweighted_message(self.name))
        return self(pred, target) * pred.shape[0]

    def check_targets(self, y, n_outputs, first_row: int = 0):
        return None

    def describe(self) -> dict:
        return {"name": self.name, "kind": "callable"}


def unweighted_message(name: str) -> str:
    return (
        f"The loss function {name!r} returns a mean over rows, which cannot be weighted row by row, so it cannot "
        f"be used with sigma or weights. Use a built-in loss ({', '.join(LOSS_NAMES)}), or leave the weights out."
    )


def check_weighting(loss: Loss, weighting) -> None:
    """Raise ConfigError when ``loss`` cannot use the row weighting (a :class:`gradfit.data.weights.Weighting`).

    sigma defines a chi-square, so it needs the mse; any built-in loss takes weights; a loss function
    (a mean over rows) takes neither.
    """
    if weighting is None:
        return
    if isinstance(loss, CallableLoss) or isinstance(getattr(loss, "inner", None), CallableLoss):
        raise ConfigError(unweighted_message(loss.name))
    if weighting.kind == "sigma" and not loss.least_squares:
        raise ConfigError(
            f"sigma (the targets' standard deviations) weights squared residuals by 1/sigma², which "
            f"makes the mse a chi-square; the {loss.name!r} loss is not a sum of squares. Use loss='mse', "
            f"or give per-row weights with weights=... (--weights COLUMN) instead."
        )


_BY_KEY: dict[str, type[Loss]] = {
    "mse": MSE,
    "l2": MSE,
    "meansquarederror": MSE,
    "mae": MAE,
    "l1": MAE,
    "meanabsoluteerror": MAE,
    "huber": Huber,
    "crossentropy": CrossEntropy,
    "ce": CrossEntropy,
    "bce": BCE,
    "binarycrossentropy": BCE,
}


def get_loss(name_or_callable: str | Callable | Loss, **options) -> Loss:
    """A :class:`Loss` by name, from a function, or as given.

    Parameters
    ----------
    name_or_callable : str, callable or Loss
        A name from :data:`LOSS_NAMES` (case-insensitive; ``-``, ``_`` and spaces ignored; aliases
        ``ce``, ``l1``, ``l2``, ``binary_cross_entropy``), or ``f(pred, target) -> scalar`` that
        returns the MEAN over rows (see :class:`CallableLoss`).
    **options
        Loss options: ``delta`` for huber (default 1.0).

    Raises
    ------
    ConfigError
        Unknown name (with the closest match) or options the loss does not take.
    """
    if isinstance(name_or_callable, Loss) or (callable(name_or_callable) and not isinstance(name_or_callable, str)):
        if options:
            raise ConfigError(
                f"Options {sorted(options)} only apply to a loss given by name. Got a "
                f"{type(name_or_callable).__name__}; set them on it instead."
            )
        return name_or_callable if isinstance(name_or_callable, Loss) else CallableLoss(name_or_callable)
    if not isinstance(name_or_callable, str):
        raise ConfigError(
            f"The loss must be a name ({', '.join(LOSS_NAMES)}) or a function f(pred, target). "
            f"Got {type(name_or_callable).__name__} instead."
        )
    key = "".join(ch for ch in name_or_callable.lower() if ch not in "-_ ")
    if key not in _BY_KEY:
        close = closest(key, list(_BY_KEY), cutoff=0.5)
        hint = f" Did you mean {_BY_KEY[close].name!r}?" if close else ""
        raise ConfigError(f"Unknown loss {name_or_callable!r}.{hint} The losses are: {', '.join(LOSS_NAMES)}.")
    cls = _BY_KEY[key]
    try:
        return cls(**options)
    except TypeError:
        raise ConfigError(
            f"The {cls.name!r} loss got unknown option(s) {sorted(options)}. "
            f"{'Its only option is delta.' if cls is Huber else 'It takes no options.'}"
        ) from None
