"""gradfit: fit any differentiable model to data by gradient descent, and watch it learn.

>>> import gradfit
>>> result = gradfit.fit("a*x + b", "builtin:linear", y="y", lr=0.1, steps=500)
>>> result.stop_reason
'max_steps'

The public API is listed below, name by name. Names are imported on first use (PEP 562), so
``import gradfit`` and ``gradfit --help`` do not pay for importing torch until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the front door
    "fit": "gradfit.api",
    "FitResult": "gradfit.train.result",
    "FitConfig": "gradfit.train.config",
    "History": "gradfit.train.history",
    # data
    "Dataset": "gradfit.data.dataset",
    "as_dataset": "gradfit.data.convert",
    "read_table": "gradfit.data.io",
    # models
    "Model": "gradfit.models.base",
    "ParamSpec": "gradfit.models.base",
    "Formula": "gradfit.models.formula",
    "compile_formula": "gradfit.models.formula",
    "FormulaModel": "gradfit.models.formula_model",
    "CallableModel": "gradfit.models.function",
    "ModuleModel": "gradfit.models.function",
    "ZOO_NAMES": "gradfit.models.zoo",
    "make_zoo_model": "gradfit.models.zoo",
    "build_model": "gradfit.models.resolve",
    # losses, optimizers, schedules
    "Loss": "gradfit.losses",
    "get_loss": "gradfit.losses",
    "OPTIMIZERS": "gradfit.optim.registry",
    "SCHEDULES": "gradfit.optim.schedules",
    # the loop's extension points
    "Callback": "gradfit.train.callbacks",
    "PrintLoss": "gradfit.train.callbacks",
    "StepState": "gradfit.train.stopping",
    # errors
    "GradfitError": "gradfit.errors",
    "DataError": "gradfit.errors",
    "ModelError": "gradfit.errors",
    "FormulaError": "gradfit.errors",
    "ConfigError": "gradfit.errors",
    "DivergenceError": "gradfit.errors",
    "MemoryBudgetError": "gradfit.errors",
}
# Modules exposed as attributes: gradfit.datasets.linear(n=..., seed=...).
_MODULES = {"datasets": "gradfit.data.synthetic", "synthetic": "gradfit.data.synthetic"}

__all__ = sorted([*_EXPORTS, *_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'gradfit' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from gradfit.data import synthetic as datasets  # noqa: F401
    from gradfit.data.convert import as_dataset  # noqa: F401
    from gradfit.api import fit  # noqa: F401
    from gradfit.train.result import FitResult  # noqa: F401
