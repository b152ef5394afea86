"""gradfit: fit any differentiable model to data by gradient descent, and watch it learn.

>>> import gradfit
>>> result = gradfit.fit("a*x + b", "builtin:linear", y="y", lr=0.1, steps=500)
>>> result.stop_reason
'max_steps'

The public API is listed below, name by name, twice: as imports that type checkers and IDEs
read (under ``TYPE_CHECKING``), and as the map the module's ``__getattr__`` (PEP 562) loads each
name from on first use, so ``import gradfit`` and ``gradfit --help`` do not pay for importing
torch until it is needed. ``tests/test_public_api.py`` checks that the two lists agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.lazy_exports import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:  # static analysers and IDEs see the real names (the ``as`` form re-exports them)
    from gradfit.api import fit as fit
    from gradfit.data import synthetic as datasets
    from gradfit.data import synthetic as synthetic
    from gradfit.data.convert import as_dataset as as_dataset
    from gradfit.data.dataset import Dataset as Dataset
    from gradfit.data.io import read_table as read_table
    from gradfit.errors import ConfigError as ConfigError
    from gradfit.errors import DataError as DataError
    from gradfit.errors import DivergenceError as DivergenceError
    from gradfit.errors import FormulaError as FormulaError
    from gradfit.errors import GradfitError as GradfitError
    from gradfit.errors import GradfitWarning as GradfitWarning
    from gradfit.errors import MemoryBudgetError as MemoryBudgetError
    from gradfit.errors import ModelError as ModelError
    from gradfit.experiments.sweeps import SweepResult as SweepResult
    from gradfit.experiments.sweeps import sweep as sweep
    from gradfit.losses import Loss as Loss
    from gradfit.losses import get_loss as get_loss
    from gradfit.models.base import Model as Model
    from gradfit.models.base import ParamSpec as ParamSpec
    from gradfit.models.builder import build_model as build_model
    from gradfit.models.formula import Formula as Formula
    from gradfit.models.formula import compile_formula as compile_formula
    from gradfit.models.formula_model import FormulaModel as FormulaModel
    from gradfit.models.function import CallableModel as CallableModel
    from gradfit.models.function import ModuleModel as ModuleModel
    from gradfit.models.zoo import ZOO_NAMES as ZOO_NAMES
    from gradfit.models.zoo import make_zoo_model as make_zoo_model
    from gradfit.optim.registry import OPTIMIZERS as OPTIMIZERS
    from gradfit.optim.schedules import SCHEDULES as SCHEDULES
    from gradfit.train.callbacks import Callback as Callback
    from gradfit.train.callbacks import PrintLoss as PrintLoss
    from gradfit.train.config import FitConfig as FitConfig
    from gradfit.train.grouped_result import GroupedResult as GroupedResult
    from gradfit.train.history import History as History
    from gradfit.train.result import FitResult as FitResult
    from gradfit.train.stopping import StepState as StepState

_EXPORTS: dict[str, str] = {
    # the front door
    "fit": "gradfit.api",
    "FitResult": "gradfit.train.result",
    "FitConfig": "gradfit.train.config",
    "GroupedResult": "gradfit.train.grouped_result",
    "History": "gradfit.train.history",
    # many configurations of one fit, as one batched fit
    "sweep": "gradfit.experiments.sweeps",
    "SweepResult": "gradfit.experiments.sweeps",
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
    "build_model": "gradfit.models.builder",
    # losses, optimizers, schedules
    "Loss": "gradfit.losses",
    "get_loss": "gradfit.losses",
    "OPTIMIZERS": "gradfit.optim.registry",
    "SCHEDULES": "gradfit.optim.schedules",
    # the loop's extension points
    "Callback": "gradfit.train.callbacks",
    "PrintLoss": "gradfit.train.callbacks",
    "StepState": "gradfit.train.stopping",
    # errors and the warning a fit that did not converge gives
    "GradfitError": "gradfit.errors",
    "DataError": "gradfit.errors",
    "ModelError": "gradfit.errors",
    "FormulaError": "gradfit.errors",
    "ConfigError": "gradfit.errors",
    "DivergenceError": "gradfit.errors",
    "MemoryBudgetError": "gradfit.errors",
    "GradfitWarning": "gradfit.errors",
}
# Modules exposed as attributes: gradfit.datasets.linear(n=..., seed=...).
_MODULES: dict[str, str] = {"datasets": "gradfit.data.synthetic", "synthetic": "gradfit.data.synthetic"}

# A literal list, so that type checkers read it without running the module.
__all__ = [
    "CallableModel",
    "Callback",
    "ConfigError",
    "DataError",
    "Dataset",
    "DivergenceError",
    "FitConfig",
    "FitResult",
    "Formula",
    "FormulaError",
    "FormulaModel",
    "GradfitError",
    "GradfitWarning",
    "GroupedResult",
    "History",
    "Loss",
    "MemoryBudgetError",
    "Model",
    "ModelError",
    "ModuleModel",
    "OPTIMIZERS",
    "ParamSpec",
    "PrintLoss",
    "SCHEDULES",
    "StepState",
    "SweepResult",
    "ZOO_NAMES",
    "__version__",
    "as_dataset",
    "build_model",
    "compile_formula",
    "datasets",
    "fit",
    "get_loss",
    "make_zoo_model",
    "read_table",
    "sweep",
    "synthetic",
]


# Hidden from type checkers, which would otherwise take any attribute (a typo too) for a lazy name.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _MODULES, __all__)
