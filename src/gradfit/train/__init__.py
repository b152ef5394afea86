"""The training loop and what it produces."""

from gradfit.train.callbacks import Callback, PrintLoss
from gradfit.train.config import FitConfig
from gradfit.train.history import History
from gradfit.train.result import FitResult
from gradfit.train.stopping import REASONS, StepState

__all__ = ["Callback", "FitConfig", "FitResult", "History", "PrintLoss", "REASONS", "StepState"]
