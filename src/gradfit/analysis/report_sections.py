"""Two sections of the fit report: the metrics table, and the per-tensor summary of a large model.

:func:`tensor_summary` gives, for each parameter tensor, its shape, norm, mean, standard deviation,
extremes and (for small ones) its values, which is what a reader can take in for an MLP's
thousands of weights; :func:`metrics_text` and :func:`tensors_text` write the report's text for
them (``gradfit.cli.report_view`` draws the same data as rich tables).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "METRIC_ROWS",
    "SHOWN_CLASSES",
    "SHOWN_VALUES",
    "metrics_text",
    "tensors_text",
    "tensor_summary",
    "shape_text",
]

#: A summarised tensor of at most this many entries also shows its values.
SHOWN_VALUES = 8

#: (key, label) of the metrics shown, by task.
METRIC_ROWS = {
    "regression": (("r2", "R-squared"), ("rmse", "RMSE"), ("mae", "MAE")),
    "binary": (("accuracy", "accuracy"), ("log_loss", "log-loss")),
    "multiclass": (("accuracy", "accuracy"), ("log_loss", "log-loss")),
}
#: Classes up to which the text and the CLI draw the confusion matrix (result.json keeps up to 50).
SHOWN_CLASSES = 20


def metrics_text(metrics: dict | None) -> list[str]:
    """The ``[[Metrics]]`` lines (train and validation columns) and the confusion matrices of ``result.metrics``."""
    if not metrics or not metrics.get("train"):
        return ["[[Metrics]]", f"    ({metrics['error']})"] if metrics and metrics.get("error") else []
    train, val = metrics["train"], metrics.get("validation")
    head = "    " + " " * 19 + f"{'train':>12}" + (f"  {'validation':>12}" if val else "")
    lines = ["[[Metrics]]", head]
    for key, label in METRIC_ROWS.get(metrics.get("task", ""), ()):
        if key in train:
            lines.append(f"    {label:<19}{_g(train.get(key)):>12}" + (f"  {_g(val.get(key)):>12}" if val else ""))
    lines += [f"    ({part['note']})" for part in (train, val) if part and part.get("note")][:1]
    for title, part in (("train", train), ("validation", val)):
        lines += _confusion_text(part, title)
    return lines


def _confusion_text(part: dict | None, title: str) -> list[str]:
    part = part or {}
    m = part.get("confusion_matrix")
    if not m or len(m) > SHOWN_CLASSES:
        return []
    labels = [str(v) for v in part.get("labels", range(len(m)))]
    width = max(5, *(len(str(v)) for row in m for v in row), *(len(v) for v in labels))
    lines = [
        f"[[Confusion matrix]]  ({title}: rows true class, columns predicted)",
        "    " + "true".ljust(6) + "".join(f"{v:>{width + 1}}" for v in labels),
    ]
    lines += ["    " + lab.ljust(6) + "".join(f"{v:>{width + 1}}" for v in row) for lab, row in zip(labels, m)]
    return lines


def tensors_text(rep: dict) -> list[str]:
    """The ``[[Parameters]]`` lines of a report that summarises its parameters per tensor."""
    tensors = rep["tensors"]
    lines = [
        f"[[Parameters]]  ({rep.get('n_params', sum(t['size'] for t in tensors)):,} values in {len(tensors)} "
        f"tensors, summarised; every value is in the result's params)"
    ]
    width = max([len(t["name"]) for t in tensors] + [6])
    lines.append(f"    {'tensor':<{width}}  {'shape':<12}{'norm':>12}{'mean':>12}{'std':>12}{'min':>12}{'max':>12}")
    for t in tensors:
        text = (
            f"    {t['name']:<{width}}  {shape_text(t['shape']):<12}{_g(t['norm'], 5):>12}{_g(t['mean'], 5):>12}"
            f"{_g(t['std'], 5):>12}{_g(t['min'], 5):>12}{_g(t['max'], 5):>12}"
        )
        if t.get("values") is not None:
            text += "  [" + ", ".join(_g(v, 5) for v in t["values"]) + "]"
        lines.append(text)
    return lines


def shape_text(shape) -> str:
    """``(32, 16)`` as ``32x16``; a scalar as ``scalar``."""
    return "x".join(str(int(k)) for k in shape) if len(shape) else "scalar"


def tensor_summary(params) -> list[dict]:
    """One row per parameter tensor: name, shape, size, norm, mean, std, min, max, and the values of small ones.

    Examples
    --------
    >>> tensor_summary({"b": torch.tensor([3.0, 4.0])})[0]["norm"]
    5.0
    """
    rows = []
    for name, value in params.items():
        t = torch.as_tensor(value).detach().double().cpu().reshape(-1)
        size = t.numel()
        rows.append(
            {
                "name": name,
                "shape": list(torch.as_tensor(value).shape),
                "size": size,
                "norm": _num(torch.linalg.vector_norm(t)) if size else 0.0,
                "mean": _num(t.mean()) if size else None,
                "std": _num(t.std(unbiased=False)) if size else None,
                "min": _num(t.min()) if size else None,
                "max": _num(t.max()) if size else None,
                "values": [_num(v) for v in t.tolist()] if size <= SHOWN_VALUES else None,
            }
        )
    return rows


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _g(v, digits: int = 6) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"
