"""What runs new fits: the learning-rate finder, the race and the sweeps.

These sit above the front door: each calls :func:`gradfit.fit` once per trial and compares the
results, so ``gradfit.analysis`` below them stays a set of pure functions of one result.

>>> from gradfit.experiments import find_lr, run_race   # doctest: +SKIP

Names load on first use (see :mod:`gradfit.lazy_exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.lazy_exports import lazy_exports

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from gradfit.experiments.lr_finder import LRFinderResult as LRFinderResult
    from gradfit.experiments.lr_finder import find_lr as find_lr
    from gradfit.experiments.race import Race as Race
    from gradfit.experiments.race import run_race as run_race
    from gradfit.experiments.sweeps import SweepResult as SweepResult
    from gradfit.experiments.sweeps import sweep as sweep

_EXPORTS: dict[str, str] = {
    "find_lr": "gradfit.experiments.lr_finder",  # a short fit per learning rate, swept exponentially
    "LRFinderResult": "gradfit.experiments.lr_finder",
    "run_race": "gradfit.experiments.race",  # optimizers from the same start, on the same data
    "Race": "gradfit.experiments.race",  # the runs, their results, a shared landscape
    "sweep": "gradfit.experiments.sweeps",  # lr x optimizer x seed as one batched fit
    "SweepResult": "gradfit.experiments.sweeps",
}

__all__ = ["LRFinderResult", "Race", "SweepResult", "find_lr", "run_race", "sweep"]

# Hidden from type checkers, which would otherwise take any attribute (a typo too) for a lazy name.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, None, __all__)
