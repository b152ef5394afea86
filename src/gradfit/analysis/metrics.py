"""Metrics: how well a fitted model's predictions match the targets, on the training and validation rows.

- regression (mse, mae, huber, a callable): ``r2 = 1 - RSS/TSS``, ``rmse = sqrt(RSS/n)``,
  ``mae = mean |y - prediction|``, with ``rss`` and ``tss`` themselves (what
  ``sklearn.metrics.r2_score``, ``mean_squared_error`` and ``mean_absolute_error`` give);
- classification (bce, cross_entropy): ``accuracy`` (the most probable class against the label),
  ``log_loss`` (the mean negative log-likelihood, from the logits, as ``sklearn.metrics.log_loss``
  without its clipping), ``nll`` (the summed one) and the ``confusion_matrix`` (rows: true class,
  columns: predicted class, classes ``0..C-1``, as ``sklearn.metrics.confusion_matrix``).

Everything is a sum over rows, accumulated over chunks in float64 (the targets' mean and spread
merged chunk by chunk, Chan's way), so memory stays bounded on any number of rows: no
``rows x rows`` array, and no ``rows x classes x classes`` one (the confusion matrix counts
``true * C + predicted`` with a bincount, and is kept for at most :data:`MAX_CONFUSION_CLASSES`
classes). Numbers that are not finite (a diverged fit) are stored as None. Nothing here fits.

Examples
--------
>>> acc = RegressionScore()
>>> acc.update(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 3.0]))
>>> {k: round(v, 4) for k, v in acc.result().items()}
{'n': 3, 'r2': 0.25, 'rmse': 0.8165, 'mae': 0.6667, 'rss': 2.0, 'tss': 2.6667}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F

from gradfit.rowpass import across, rows_of, rows_triple
from gradfit.rowpass import chunk_rows as rows_per_chunk
from gradfit.train.prediction import classes, model_outputs, task_of

__all__ = ["RegressionScore", "ClassificationScore", "score", "fit_metrics", "with_metrics", "MAX_CONFUSION_CLASSES"]

#: Classes up to which the confusion matrix is kept (C x C counts in result.json).
MAX_CONFUSION_CLASSES = 50


class RegressionScore:
    """Accumulates R², RMSE and MAE over chunks of ``(predictions, targets)``."""

    def __init__(self):
        self.n, self.mean, self.m2, self.sse, self.sae = 0, 0.0, 0.0, 0.0, 0.0

    def update(self, pred: torch.Tensor, y: torch.Tensor) -> None:
        pred, y = pred.detach().double().reshape(-1), y.detach().double().reshape(-1)
        k = y.numel()
        if k == 0:
            return
        mean_k = float(y.mean())
        m2_k = float(((y - mean_k) ** 2).sum())
        n = self.n + k
        delta = mean_k - self.mean
        self.mean += delta * k / n
        self.m2 += m2_k + delta * delta * self.n * k / n
        self.n = n
        err = pred - y
        self.sse += float((err * err).sum())
        self.sae += float(err.abs().sum())

    def merge(self, other: RegressionScore) -> None:
        """Add ``other``'s rows (another process's shard): the same combination as :meth:`update`'s."""
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.sse += other.sse
        self.sae += other.sae

    def result(self) -> dict:
        n, rss, tss = self.n, self.sse, self.m2
        return _clean(
            {
                "n": n,
                "r2": 1 - rss / tss if tss > 0 else None,
                "rmse": math.sqrt(rss / n) if n else None,
                "mae": self.sae / n if n else None,
                "rss": rss,
                "tss": tss,
            }
        )


class ClassificationScore:
    """Accumulates accuracy, log-loss and the confusion matrix over chunks of ``(logits, labels)``.

    Parameters
    ----------
    n_classes : int
        ``C``: 2 for a binary classifier (one logit, of class 1), the number of logits otherwise.
    binary : bool
        True for bce's one logit per row, False for cross-entropy's ``(n, C)`` logits.

    Binary targets that are probabilities rather than 0/1 labels have a log-loss (the
    cross-entropy against them) but no accuracy or confusion matrix.
    """

    def __init__(self, n_classes: int, binary: bool):
        self.n_classes, self.binary = int(n_classes), binary
        self.n, self.correct, self.nll, self.soft = 0, 0, 0.0, False
        self.counts = (
            torch.zeros(self.n_classes**2, dtype=torch.int64) if self.n_classes <= MAX_CONFUSION_CLASSES else None
        )

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        logits, y = logits.detach().double(), y.detach().double().reshape(-1)
        if y.numel() == 0:
            return
        self.n += y.numel()
        if self.binary:
            logits = logits.reshape(-1)
            self.nll += float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum"))
            self.soft = self.soft or bool(((y != 0) & (y != 1)).any())
        else:
            self.nll += float(F.cross_entropy(logits, y.long(), reduction="sum"))
        if self.soft:
            return
        truth, guess = y.long(), classes(logits, "binary" if self.binary else "multiclass")
        self.correct += int((truth == guess).sum())
        if self.counts is not None:
            self.counts += torch.bincount((truth * self.n_classes + guess).cpu(), minlength=self.n_classes**2)

    def merge(self, other: ClassificationScore) -> None:
        """Add ``other``'s rows (another process's shard)."""
        self.n += other.n
        self.correct += other.correct
        self.nll += other.nll
        self.soft = self.soft or other.soft
        if self.counts is not None and other.counts is not None:
            self.counts += other.counts

    def result(self) -> dict:
        n = self.n
        out: dict[str, Any] = {
            "n": n,
            "accuracy": None if self.soft or not n else self.correct / n,
            "log_loss": self.nll / n if n else None,
            "nll": self.nll,
            "labels": list(range(self.n_classes)),
            "confusion_matrix": None,
        }
        if self.counts is not None and not self.soft:
            out["confusion_matrix"] = self.counts.reshape(self.n_classes, self.n_classes).tolist()
        if self.soft:
            out["note"] = (
                "the targets are probabilities, not 0/1 labels: accuracy and the confusion matrix are not defined"
            )
        return _clean(out)


def score(model, params, dataset, task: str, chunk_rows: int | None = None) -> dict:
    """The metrics of ``model`` at ``params`` on ``dataset`` (float64, in chunks of rows)."""
    acc: RegressionScore | ClassificationScore
    if task == "regression":
        acc = RegressionScore()
    else:
        acc = ClassificationScore(2 if task == "binary" else int(getattr(model, "n_outputs", 2)), task == "binary")
    n_out = max(1, int(getattr(model, "n_outputs", 1)))
    step = max(1, min(rows_per_chunk(chunk_rows), (1 << 24) // n_out))
    xs, ys, _ = rows_triple(dataset)  # the weights play no part in the metrics
    source = rows_of(xs, ys, chunk_size=step)
    for x, y, _ in source.chunks():
        assert y is not None  # metrics are of a dataset with a target
        pred = model_outputs(model, params, x.double(), chunk_rows=step)
        if task == "regression" and pred.shape != y.shape:
            return {
                "n": len(dataset),
                "note": f"predictions of shape {tuple(pred.shape[1:])} per row cannot be "
                f"compared with one target per row",
            }
        acc.update(pred, y)
    first, *others = across(source, acc)  # a process's shard: every process's rows, in rank order
    for other in others:
        first.merge(other)
    return first.result()


def fit_metrics(model, params, loss, train, val=None, chunk_size: int | None = None) -> dict:
    """``{"task": ..., "train": {...}, "validation": {...} or None}`` for a fit with ``loss``, the rows read
    ``chunk_size`` at a time (the fit's ``FitConfig.chunk_size``; default :data:`gradfit.rowpass.CHUNK_ROWS`)."""
    task = task_of(loss)
    return {
        "task": task,
        "train": score(model, params, train, task, chunk_size),
        "validation": None if val is None or len(val) == 0 else score(model, params, val, task, chunk_size),
    }


def with_metrics(result, model, loss, train, val=None, chunk_size: int | None = None):
    """``result`` with its ``metrics`` filled in; they never fail a fit (the reason is stored instead)."""
    try:
        metrics = fit_metrics(model, result.params, loss, train, val, chunk_size)
    except Exception as exc:  # a metric must never cost the user a fit that succeeded
        metrics = {
            "task": task_of(loss),
            "train": None,
            "validation": None,
            "error": f"Could not be computed: {type(exc).__name__}: {exc}",
        }
    return dataclasses.replace(result, metrics=metrics)


def _clean(d: dict) -> dict:
    """JSON has no NaN: a number that is not finite becomes None."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}
