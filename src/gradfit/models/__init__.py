"""Models: pure functions of (named parameters, inputs)."""

from gradfit.models.base import Model, ParamSpec
from gradfit.models.builder import build_model
from gradfit.models.formula import Formula, compile_formula
from gradfit.models.formula_model import FormulaModel
from gradfit.models.function import CallableModel, ModuleModel
from gradfit.models.zoo import ZOO_NAMES, make_zoo_model

__all__ = [
    "CallableModel",
    "Formula",
    "FormulaModel",
    "Model",
    "ModuleModel",
    "ParamSpec",
    "ZOO_NAMES",
    "build_model",
    "compile_formula",
    "make_zoo_model",
]
