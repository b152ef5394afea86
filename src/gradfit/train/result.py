"""FitResult: the outcome of a fit, as data.

A frozen record of the fitted parameters, the loss, why and when the fit stopped, and the
history, with a JSON round-trip (``to_json`` / ``from_json``) so pictures and reports can be
made later without refitting. Wall-clock timings live in ``timings``, apart from the rest, so
two runs of the same fit give the same JSON apart from that field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradfit.errors import ConfigError, ModelError
from gradfit.models.base import Model, flatten_params, unflatten_params
from gradfit.problem import pack
from gradfit.train.history import History
from gradfit.train.stopping import SUCCESS

SCHEMA = "gradfit.result/1"


@dataclass(frozen=True)
class FitResult:
    """What a fit found.

    Attributes
    ----------
    params : dict of str to Tensor
        Fitted values by parameter name, with the model's shapes (on the CPU).
    loss : float
        Mean training loss at ``params`` (whole training set).
    steps : int
        Updates applied to reach ``params``.
    epochs : float
        Passes over the training data (``steps * batch_size / n``).
    stop_reason : str
        One of :data:`gradfit.train.stopping.REASONS`.
    message : str
        One sentence saying why the fit stopped and, if it failed, what to try.
    history : History
    model : Model or None
        The model (None after ``from_json`` when it cannot be rebuilt from its description).
    metrics : dict or None
        How well the predictions match the targets, computed once at fit time on the training
        rows and the validation rows (see :mod:`gradfit.analysis.metrics`): R², RMSE and MAE for
        a regression; accuracy, log-loss and the confusion matrix for a classifier.
    run_id : str
        This run's id, new for every fit (:mod:`gradfit.run_schema`): written into its checkpoints and,
        by :func:`gradfit.outputs.save_run`, into ``result.json``'s ``run`` field, not into ``to_json()``,
        which stays the same when the fit is repeated.
    """

    params: dict[str, torch.Tensor]
    loss: float
    steps: int
    epochs: float
    stop_reason: str
    message: str
    history: History
    model: Model | None = field(default=None, compare=False, repr=False)
    model_spec: dict = field(default_factory=dict)
    init_params: dict[str, float] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()
    val_loss: float | None = None
    best_step: int | None = None
    bounds: dict[str, list] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    uncertainty: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    run_id: str = field(default="", compare=False)  # this run's id (gradfit.run_schema): in result.json's "run" field

    # -- convenience -------------------------------------------------------------------------

    @property
    def success(self) -> bool:
        """False when the fit diverged, stalled, made the loss worse, was interrupted, or ended short of the
        optimum (``converged`` is False)."""
        return self.stop_reason in SUCCESS and self.converged is not False

    @property
    def converged(self) -> bool | None:
        """Whether the parameters are at the optimum (see :mod:`gradfit.analysis.convergence`); None where that
        was not judged (interrupted, early stopping, a target loss, a mini-batch or network budget)."""
        return (self.diagnostics.get("verdict") or {}).get("converged")

    @property
    def flat_params(self) -> dict[str, float]:
        """``{"a[0]": 2.99, "a[1]": 2.51}``: every scalar entry by name."""
        if self.model is not None:
            return flatten_params(self.model.specs, self.params)
        return dict(zip(self.history.param_names, _flat_values(self.params)))

    @property
    def elapsed(self) -> float:
        return self.timings.get("elapsed", math.nan)

    @property
    def task(self) -> str:
        """``"regression"``, ``"binary"`` (fitted with bce) or ``"multiclass"`` (cross_entropy)."""
        from gradfit.train.prediction import task_of

        return task_of(self.config.get("loss", "mse"))

    def predict(self, x=None, kind: str = "output"):
        """Predictions of the fitted model for new rows.

        Parameters
        ----------
        x : DataFrame, dict, path, array or tensor
            A DataFrame or dict holding the input columns (``data["x"]``; other columns are
            ignored), a CSV/Parquet path (read as the training data was), or an array/tensor of
            shape ``(n,)`` or ``(n, k)`` with the columns in ``data["x"]`` order.
        kind : {"output", "class", "proba"}
            ``"output"``: the model's outputs, shape ``(n,)`` (or ``(n, C)`` logits for
            cross-entropy; logits of class 1 for bce). For a classifier, ``"class"``: the most
            probable class of each row, ``0..C-1``; ``"proba"``: the class probabilities, shape
            ``(n, C)`` (``(n, 2)`` for bce), as ``GradfitClassifier.predict_proba``.

        Returns
        -------
        ndarray or Tensor
            A tensor when ``x`` is a tensor, else a NumPy array. A row with a missing input
            (NaN) gets a NaN prediction; with ``kind="class"`` the array is then float with NaN
            there (else int64).

        Raises
        ------
        DataError
            An input column is missing (the message lists the columns found), holds text or
            infinities, or the array has the wrong number of columns.

        Examples
        --------
        >>> r = gradfit.fit("logistic", "builtin:blobs", y="label", loss="cross_entropy")  # doctest: +SKIP
        >>> r.predict("new.csv", kind="class")  # doctest: +SKIP
        array([0, 2, 1, ...])
        """
        from gradfit.train.prediction import (
            KINDS,
            classes,
            finite_rows,
            input_matrix,
            model_outputs,
            probabilities,
            read_rows,
        )

        if kind not in KINDS:
            raise ConfigError(
                f"The 'kind' parameter must be one of {', '.join(map(repr, KINDS))}. Got {kind!r} instead."
            )
        if self.model is None:
            raise ModelError(
                "This result has no model to predict with (it was loaded from JSON with a callable or "
                "nn.Module model): pass model=... to FitResult.from_json."
            )
        task = self.task
        if kind != "output" and task == "regression":
            raise ConfigError(
                f"kind={kind!r} is for classifiers (a fit with loss 'bce' or 'cross_entropy'); this "
                f"result was fitted with {self.config.get('loss', 'mse')!r}. Use kind='output'."
            )
        as_tensor = isinstance(x, torch.Tensor)
        source = None
        if isinstance(x, (str, Path)):
            source, x = str(x), read_rows(x, self.data)
        dtype = torch.float64 if self.data.get("dtype") == "float64" else torch.float32
        X = input_matrix(x, self.model.inputs, dtype, source=source)
        out = model_outputs(self.model, self.params, X)
        if kind == "proba":
            out = probabilities(out, task)
        elif kind == "class":
            ok = finite_rows(out)
            out = classes(out, task) if bool(ok.all()) else torch.where(ok, classes(out, task).double(), torch.nan)
        return out if as_tensor else out.cpu().numpy()

    def predict_proba(self, x):
        """Class probabilities ``(n, C)`` of a classifier: ``predict(x, kind="proba")``."""
        return self.predict(x, kind="proba")

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "params": self.flat_params,
            "loss": _num(self.loss),
            "val_loss": _num(self.val_loss),
            "steps": self.steps,
            "epochs": self.epochs,
            "stop_reason": self.stop_reason,
            "success": self.success,
            "converged": self.converged,
            "message": self.message,
            "model": self.model_spec,
            "optimizer": self.config.get("optimizer"),
            "lr": self.config.get("lr"),
            "seed": self.config.get("seed"),
            "init_params": self.init_params,
            "fixed": list(self.fixed),
            "best_step": self.best_step,
            "bounds": self.bounds,
            "diagnostics": self.diagnostics,
            "uncertainty": self.uncertainty,
            "metrics": self.metrics,
            "report": self.report,
            "config": self.config,
            "data": self.data,
            "param_shapes": {k: list(v.shape) for k, v in self.params.items()},
            "timings": self.timings,
        }

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The result as JSON text (also written to ``path`` when given)."""
        text = json.dumps(json_safe(self.to_dict()), indent=indent, allow_nan=False, default=_default)
        if path is not None:
            from gradfit.atomic_files import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path, model: Model | None = None, history: History | None = None) -> FitResult:
        """Rebuild a result from ``to_json`` output (text or a file path).

        The model is rebuilt from its description when it is a formula or zoo model; pass
        ``model=`` for a callable or module. The history comes from ``history`` (e.g.
        ``History.from_frame(pandas.read_csv("history.csv"))``), else it is empty.
        """
        text = Path(source).read_text() if not str(source).lstrip().startswith("{") else str(source)
        d = json.loads(text)
        if model is None:
            from gradfit.models.builder import rebuild_model

            model = rebuild_model(d["model"])
        shapes = d.get("param_shapes", {})
        d["params"] = {k: _unnum(v) for k, v in d["params"].items()}
        d["init_params"] = {k: _unnum(v) for k, v in (d.get("init_params") or {}).items()}
        if model is not None:
            params = {
                k: v.float() if d.get("data", {}).get("dtype") != "float64" else v
                for k, v in unflatten_params(model.specs, d["params"]).items()
            }
        else:
            params = {
                k: torch.tensor(d["params"][k], dtype=torch.float64).reshape(shapes.get(k, [])) for k in d["params"]
            }
        names = tuple(d["params"])
        return cls(
            params=params,
            loss=_unnum(d["loss"]),
            steps=d["steps"],
            epochs=d["epochs"],
            stop_reason=d["stop_reason"],
            message=d["message"],
            history=history
            or History(
                {c: np.zeros(0) for c in ("step", "epoch", "loss", "val_loss", "lr", "grad_norm", "time")},
                names,
                np.zeros(0, np.int64),
                np.zeros((0, len(names))),
            ),
            model=model,
            model_spec=d["model"],
            init_params=d.get("init_params", {}),
            fixed=tuple(d.get("fixed", ())),
            val_loss=_unnum(d.get("val_loss")),
            best_step=d.get("best_step"),
            bounds=d.get("bounds", {}),
            diagnostics=d.get("diagnostics", {}),
            uncertainty=d.get("uncertainty"),
            metrics=d.get("metrics"),
            report=d.get("report"),
            config=d.get("config", {}),
            data=d.get("data", {}),
            timings=d.get("timings", {}),
            run_id=str((d.get("run") if isinstance(d.get("run"), dict) else {}).get("id", "")),
        )

    def save_history(self, path: str | Path) -> None:
        """Write the history as CSV or Parquet, chosen by the file's extension."""
        from gradfit.atomic_files import atomic_path
        from gradfit.numbers_csv import write_csv

        with atomic_path(path) as tmp:  # the temporary file keeps the suffix, so the format follows it
            if str(path).endswith((".parquet", ".pq")):
                self.history.to_frame().to_parquet(tmp, index=False)
            else:  # the text of history.csv (gradfit.outputs.save_run)
                write_csv(self.history.table(), tmp)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in list(self.flat_params.items())[:8])
        more = ", ..." if len(self.flat_params) > 8 else ""
        return f"FitResult({shown}{more}; loss={self.loss:.6g}, steps={self.steps}, stop_reason={self.stop_reason!r})"


def _flat_values(params) -> list[float]:
    return pack(params, list(params), torch.float64, "cpu").tolist()


def _num(v):
    """JSON has no NaN/inf: write them as strings so the file stays valid JSON."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else str(v)


def _unnum(v):
    return None if v is None else float(v)


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def json_safe(obj):
    """``obj`` with every non-finite float written as the string ``"nan"``, ``"inf"`` or ``"-inf"``.

    JSON has no NaN or Infinity, and ``result.json`` must stay valid JSON whatever the fit did (a diverged loss
    is inf; a loss that could not be evaluated is nan). Readers turn the strings back with ``float``.

    Examples
    --------
    >>> json_safe({"a": [1.0, float("inf")], "b": {"c": float("nan")}, "d": "x"})
    {'a': [1.0, 'inf'], 'b': {'c': 'nan'}, 'd': 'x'}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float):
        return str(o)
    return str(o)
