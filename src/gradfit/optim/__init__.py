"""Optimizers and learning-rate schedules by name."""

from gradfit.optim.registry import OPTIMIZERS, make_optimizer
from gradfit.optim.schedules import SCHEDULES, make_schedule

__all__ = ["OPTIMIZERS", "SCHEDULES", "make_optimizer", "make_schedule"]
