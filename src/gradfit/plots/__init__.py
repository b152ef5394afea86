"""Pictures of fits: the only package that imports matplotlib.

Every picture is a display object, computed once and drawn many times (``plot(ax=None)``,
``figure()``, ``save(path)``, inline in Jupyter), made from a :class:`~gradfit.FitResult`, live
or loaded with :func:`gradfit.outputs.load_run`:

>>> from gradfit.plots import FitDisplay, LossDisplay, FitAnimation   # doctest: +SKIP
>>> FitDisplay(result, show_start=True, residuals=True).save("fit.png")   # doctest: +SKIP

Names load on first use (see :mod:`gradfit.lazy_exports`), so ``import gradfit.plots`` does not
import matplotlib until a picture is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.lazy_exports import lazy_exports

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from gradfit.plots.animate import FitAnimation as FitAnimation
    from gradfit.plots.animate import RaceAnimation as RaceAnimation
    from gradfit.plots.display import Display as Display
    from gradfit.plots.fit import FitDisplay as FitDisplay
    from gradfit.plots.fit import plot_fit as plot_fit
    from gradfit.plots.grid import GridDisplay as GridDisplay
    from gradfit.plots.grid import plot_grid as plot_grid
    from gradfit.plots.landscape import LandscapeDisplay as LandscapeDisplay
    from gradfit.plots.landscape import plot_landscape as plot_landscape
    from gradfit.plots.loss import LossDisplay as LossDisplay
    from gradfit.plots.loss import plot_loss as plot_loss
    from gradfit.plots.lr_finder import LRFinderDisplay as LRFinderDisplay
    from gradfit.plots.params import ParamsDisplay as ParamsDisplay
    from gradfit.plots.params import plot_params as plot_params
    from gradfit.plots.race import RaceDisplay as RaceDisplay
    from gradfit.plots.race import plot_race as plot_race
    from gradfit.plots.sweep import SweepDisplay as SweepDisplay

_EXPORTS: dict[str, str] = {
    "Display": "gradfit.plots.display",  # the base: plot(ax=None), figure(), save(path)
    "FitDisplay": "gradfit.plots.fit",  # data, the fitted curve, the start, residuals
    "plot_fit": "gradfit.plots.fit",
    "LossDisplay": "gradfit.plots.loss",  # loss per step, validation loss, lr
    "plot_loss": "gradfit.plots.loss",
    "ParamsDisplay": "gradfit.plots.params",  # each parameter per step, the least-squares optimum
    "plot_params": "gradfit.plots.params",
    "GridDisplay": "gradfit.plots.grid",  # the seeds' row of successive fits
    "plot_grid": "gradfit.plots.grid",
    "LandscapeDisplay": "gradfit.plots.landscape",  # exact loss over two parameters, with the path
    "plot_landscape": "gradfit.plots.landscape",
    "RaceDisplay": "gradfit.plots.race",  # several optimizers' losses and paths
    "plot_race": "gradfit.plots.race",
    "LRFinderDisplay": "gradfit.plots.lr_finder",
    "SweepDisplay": "gradfit.plots.sweep",  # a sweep's final loss against the learning rate
    "FitAnimation": "gradfit.plots.animate",  # .save("fit.gif" | "fit.mp4" | "fit.html")
    "RaceAnimation": "gradfit.plots.animate",
}

__all__ = [
    "Display",
    "FitAnimation",
    "FitDisplay",
    "GridDisplay",
    "LRFinderDisplay",
    "LandscapeDisplay",
    "LossDisplay",
    "ParamsDisplay",
    "RaceAnimation",
    "RaceDisplay",
    "SweepDisplay",
    "plot_fit",
    "plot_grid",
    "plot_landscape",
    "plot_loss",
    "plot_params",
    "plot_race",
]

# Hidden from type checkers, which would otherwise take any attribute (a typo too) for a lazy name.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, None, __all__)
