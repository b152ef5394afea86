"""From what the user names (a zoo name, a formula, a callable, an nn.Module) to a Model.

Also decides which data columns are inputs when the user does not say: for a formula, the
names in it that are columns; for anything else, every column but the target.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch

from gradfit.aliases import closest
from gradfit.errors import ModelError
from gradfit.models.base import Model
from gradfit.models.formula import compile_formula
from gradfit.models.formula_model import FormulaModel
from gradfit.models.function import CallableModel, ModuleModel
from gradfit.models.names import check_formula_names, check_reserved_columns, no_input_message
from gradfit.models.zoo import ZOO_NAMES, is_zoo_name, make_zoo_model

ModelLike = str | Model | torch.nn.Module | Callable


def default_inputs(
    model: ModelLike,
    columns: Sequence[str],
    y: str | None,
    declared: Collection[str] = (),
    row_weights: Collection[str] = (),
) -> list[str]:
    """The input columns to use when the user gave none (``declared``: names declared parameters): a formula's names
    that are columns, else every column but ``y`` and the columns of row weights (``row_weights``: sigma or
    weights), which describe the rows, not the model's input."""
    if isinstance(model, Model):
        return list(model.inputs)
    if isinstance(model, str) and not is_zoo_name(model):
        formula = compile_formula(model)
        inputs = [n for n in formula.names if n in columns and n != y and n not in declared]
        if not inputs:
            close = closest(model.strip().lower(), ZOO_NAMES)
            hint = f" Did you mean the zoo model {close!r}?" if close else ""
            raise ModelError(no_input_message(formula, columns, y, declared) + hint)
        return inputs
    return [c for c in columns if c != y and c not in row_weights]


def check_names(
    model: ModelLike, columns: Sequence[str], y: str | None, x: Sequence[str] | None, declared: Collection[str] = ()
) -> None:
    """For a formula, refuse names whose meaning would silently change (see :mod:`gradfit.models.names`)."""
    if isinstance(model, str) and not is_zoo_name(model):
        check_reserved_columns(model, columns, y)  # a column named pi or exp, written bare
        check_formula_names(compile_formula(model), columns, y, x, declared)


def build_model(model: ModelLike, inputs: Sequence[str], n_outputs: int = 1, **options: Any) -> Model:
    """The Model for ``model`` reading the columns ``inputs``.

    Parameters
    ----------
    model : str, Model, nn.Module or callable
        A zoo name (``"linear"``, ``"poly3"``, ``"mlp"``...), a formula (``"a*exp(-b*x) + c"``),
        a ``Model``, a module, or a function ``f(x, a, b, ...)``.
    inputs : sequence of str
        The data columns the model reads, in order.
    n_outputs : int
        Number of outputs (classes, for cross-entropy).
    **options
        Zoo options (``degree``, ``hidden``, ``activation``).
    """
    if isinstance(model, Model):
        if options:
            raise ModelError(
                f"Model options ({', '.join(options)}) apply to zoo models, not to a {type(model).__name__}."
            )
        return model
    if isinstance(model, torch.nn.Module):
        return ModuleModel(model, inputs)
    if isinstance(model, str):
        if is_zoo_name(model):
            return make_zoo_model(model.strip().lower(), inputs, n_outputs=n_outputs, **options)
        if options:
            raise ModelError(f"Model options ({', '.join(options)}) apply to zoo models, not to the formula {model!r}.")
        return FormulaModel(model, inputs=list(inputs))
    if callable(model):
        return CallableModel(model, inputs)
    raise ModelError(
        f"The 'model' parameter must be a zoo name, a formula string, a function f(x, a, b, ...) or a torch.nn.Module. "
        f"Got {type(model).__name__} instead."
    )


def rebuild_model(spec: dict) -> Model | None:
    """The model described by ``Model.describe()``, or None when it cannot be rebuilt (callables, modules)."""
    kind = spec.get("kind")
    if kind == "formula":
        return FormulaModel.from_description(spec)
    if kind == "zoo":
        options = {k: v for k, v in spec.items() if k not in ("kind", "name", "inputs", "n_outputs")}
        if isinstance(options.get("hidden"), list):
            options["hidden"] = tuple(options["hidden"])
        return make_zoo_model(spec["name"], spec.get("inputs", []), n_outputs=spec.get("n_outputs", 1), **options)
    return None
