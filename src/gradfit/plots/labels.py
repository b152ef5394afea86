"""What the pictures call a run's steps and its step size, by the method that made them.

Gradient descent takes steps of a learning rate; Levenberg-Marquardt takes iterations (one
Jacobian each), and the history's ``lr`` column holds its damping λ instead (λ = 0 is a pure
Gauss-Newton step, a large λ a short step along the gradient; see ``gradfit.train.steppers.levenberg``).
Every picture names them from here, so an lm run is never labelled as a learning-rate run.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["RunLabels", "labels_of"]

LM = "lm"
LM_NAME = "Levenberg-Marquardt"


class RunLabels:
    """Words for one run's pictures.

    Attributes
    ----------
    lm : bool
        The run was fitted by Levenberg-Marquardt.
    method : str
        ``"Levenberg-Marquardt"``, else the optimizer's name (``"sgd"``, ``"adam"``...).
    step : str
        ``"iteration"`` for lm, else ``"step"``.
    rate : str
        What the history's ``lr`` column holds: ``"damping λ"`` or ``"learning rate"``.
    path : str
        The legend of a parameter's path: ``"Levenberg-Marquardt"`` or ``"gradient descent"``.
    scaled : bool
        The descent ran on scaled parameters (``scale=True``).
    """

    def __init__(self, config: Mapping | None):
        config = config or {}
        name = str(config.get("optimizer") or "sgd")
        self.lm = name == LM
        self.method = LM_NAME if self.lm else name
        self.step = "iteration" if self.lm else "step"
        self.rate = "damping λ" if self.lm else "learning rate"
        self.path = LM_NAME if self.lm else "gradient descent"
        self.scaled = bool(config.get("scale"))

    def at(self, step: int) -> str:
        """``"step 12"`` or ``"iteration 12"``."""
        return f"{self.step} {int(step)}"


def labels_of(result) -> RunLabels:
    """The :class:`RunLabels` of a FitResult (a History or anything without a config gets gradient descent's)."""
    return RunLabels(getattr(result, "config", None))
