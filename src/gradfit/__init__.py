"""gradfit: fit any differentiable model to data by gradient descent, and watch it learn.

>>> import gradfit
>>> result = gradfit.fit("a*x + b", "builtin:linear", y="y", lr=0.1, steps=500)
>>> result.stop_reason
'max_steps'
"""

from gradfit.data import Dataset, as_dataset, read_table, synthetic
from gradfit.data import synthetic as datasets
from gradfit.errors import ConfigError, DataError, DivergenceError, FormulaError, GradfitError, ModelError
from gradfit.fit import fit
from gradfit.losses import Loss, get_loss
from gradfit.models import (
    CallableModel,
    FormulaModel,
    Model,
    ModuleModel,
    ParamSpec,
    ZOO_NAMES,
    build_model,
    compile_formula,
    make_zoo_model,
)
from gradfit.optim import OPTIMIZERS, SCHEDULES
from gradfit.train import Callback, FitConfig, FitResult, History, PrintLoss, StepState

__version__ = "0.1.0"

__all__ = [
    "CallableModel", "Callback", "ConfigError", "DataError", "Dataset", "DivergenceError", "FitConfig", "FitResult",
    "FormulaError", "FormulaModel", "GradfitError", "History", "Loss", "Model", "ModelError", "ModuleModel",
    "OPTIMIZERS", "ParamSpec", "PrintLoss", "SCHEDULES", "StepState", "ZOO_NAMES", "__version__", "as_dataset",
    "build_model", "compile_formula", "datasets", "fit", "get_loss", "make_zoo_model", "read_table", "synthetic",
]
