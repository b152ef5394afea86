"""``gradfit demo``: the seed tutorials, reproduced with the library.

- ``linear`` (seeds 000/001): SGD on 100 points above ``y = 3x + 2``, loss every 10 steps,
  then the fitted line against the true one and the least-squares one.
- ``rollercoaster`` (seed 002): 10 plain SGD steps on a quadratic, which stall, why they
  stall, and the same plain SGD converging once the problem is scaled (``scale=True``), checked
  against ``numpy.polyfit``; Levenberg-Marquardt is shown as the least-squares answer.
"""

from __future__ import annotations

import enum
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug, Force, Quiet, run_folder
from gradfit.cli.console import EXIT_FAILED, EXIT_OK, console, err_console, guarded

if TYPE_CHECKING:
    from gradfit.plots.display import Display
    from gradfit.plots.reel import Reel

__all__ = ["demo_command", "run_linear", "run_rollercoaster", "QUADRATIC", "CONVERGED_OPTIONS"]

QUADRATIC = "a*t**2 + b*t + c"

Out = Annotated[Path | None, run_folder("the demo's pictures and results", "gradfit-out/demo-NAME-NNN")]


class _Descent(TypedDict):
    """Keywords of :func:`gradfit.fit` that choose how it descends."""

    optimizer: str
    scale: bool
    lr: float
    steps: int


class _Start(TypedDict):
    """Keywords of :func:`gradfit.fit` that every run of seed 002 shares: the columns and the start."""

    x: str
    y: str
    init: str
    seed: int


# The converging run: the same plain SGD, on parameters whitened from the Jacobian at the start
# (gradfit.train.scaling), where every direction has the same curvature, so one lr suits them all.
# and float64 keeps the normal equations' round-off (condition number ~1e5) far below 1e-3.
CONVERGED_OPTIONS: _Descent = dict(optimizer="sgd", scale=True, lr=0.3, steps=200)
TOLERANCE = 1e-3


class DemoName(str, enum.Enum):
    linear = "linear"
    rollercoaster = "rollercoaster"


def demo_command(
    name: Annotated[
        DemoName, typer.Argument(help="linear (seeds 000/001) or rollercoaster (seed 002).", show_default=False)
    ],
    out: Out = None,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Re-run a seed tutorial and explain what it shows.

    linear writes OUT/result.json and OUT/history.csv, and the seeds' pictures: fit.png (the data with the start
    and the fitted line), loss.png, params.png, grid.png (successive fits), landscape.png (the path on the loss
    surface) and animation.gif (the line converging).

    rollercoaster writes the tutorial's 10 stalled SGD steps to OUT/ with grid.png (the seed's 1 x 4 row), fit.png
    and landscape.png (why it crawls), and the same SGD with --scale, which converges, to OUT/converged/ with its
    fit.png and loss.png.
    """
    with guarded(debug):
        from gradfit.run_folder import command_folder

        folder = command_folder(out, force=force, prefix=f"demo-{name.value}")
        if not quiet and (folder.automatic or folder.replaces or folder.others):
            console.print(Text(folder.describe()), soft_wrap=True)
        with folder.discarded_on_error():
            code = (run_linear if name is DemoName.linear else run_rollercoaster)(
                folder.path, quiet=quiet, folder=folder
            )
    raise typer.Exit(code)


def _say(quiet: bool, *lines: str) -> None:
    if not quiet:
        for line in lines:
            console.print(line, markup=False, soft_wrap=True)


def run_linear(out: Path, quiet: bool = False, folder=None) -> int:
    """Seeds 000/001: SGD with lr 0.1 for 100 steps from a = (1, 1). Returns the exit code.

    ``folder`` (a :class:`~gradfit.run_folder.RunFolder` for ``out``) has an earlier run there replaced.
    """
    import torch

    from gradfit.api import fit
    from gradfit.cli.fit_cmd import report_failure, save
    from gradfit.cli.progress import LossLines
    from gradfit.data.io import read_table
    from gradfit.outputs import check_out_dir

    out = check_out_dir(out) if folder is None else folder.path
    df = read_table("builtin:linear")
    _say(
        quiet,
        "Seeds 000/001: fit y = a[0]*x + a[1] to 100 points scattered above y = 3x + 2,",
        "with plain SGD (a -= lr * grad), lr 0.1, 100 steps, starting from a = (1, 1).",
        "",
    )
    callbacks = [] if quiet else [LossLines(console, 10, fmt=".4f")]
    result = fit(
        "linear",
        df,
        x="x",
        y="y",
        init={"a": [1.0, 1.0]},
        optimizer="sgd",
        lr=0.1,
        steps=100,
        seed=0,
        callbacks=callbacks,
    )
    x = torch.as_tensor(df["x"].to_numpy(), dtype=torch.float64)
    y = torch.as_tensor(df["y"].to_numpy(), dtype=torch.float64)
    best = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], dim=1), y[:, None]).solution[:, 0].tolist()
    fitted = list(result.flat_params.values())
    paths = save(result, out, folder, also=[out / name for name in LINEAR_PICTURES])
    if not quiet:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("", "slope a[0]", "intercept a[1]"):
            table.add_column(col, justify="right" if col else "left")
        table.add_row("fitted by SGD", f"{fitted[0]:.4f}", f"{fitted[1]:.4f}")
        table.add_row("true line", "3.0000", "2.0000")
        table.add_row(Text("least squares (lstsq on [x, 1])"), f"{best[0]:.4f}", f"{best[1]:.4f}")
        console.print()
        console.print(table)
        _say(
            quiet,
            "",
            "SGD has found the least-squares line, not the true one: the noise is uniform on [0, 1), with mean 0.5,",
            "so the best line sits about 0.5 above y = 3x + 2 and its intercept tends to 2.5.",
            f"Final loss {result.loss:.4f} after {result.steps} steps. Wrote {paths['result']} and {paths['history']}.",
        )
    if not result.success:
        report_failure(result, paths)
        return EXIT_FAILED
    _wrote(quiet, linear_pictures(result, df, out))
    return EXIT_OK


LINEAR_PICTURES = ("fit.png", "loss.png", "params.png", "grid.png", "landscape.png", "animation.gif")
ROLLERCOASTER_PICTURES = ("grid.png", "fit.png", "landscape.png", "converged/fit.png", "converged/loss.png")


def linear_pictures(result, df, out: Path) -> list[Path]:
    """The seeds' pictures of the linear run: before/after, successive fits, the path, the animation."""
    from gradfit.analysis.landscape import compute_landscape
    from gradfit.plots.animate import FitAnimation
    from gradfit.plots.fit import FitDisplay
    from gradfit.plots.grid import GridDisplay
    from gradfit.plots.landscape import LandscapeDisplay
    from gradfit.plots.loss import LossDisplay
    from gradfit.plots.params import ParamsDisplay

    pictures: list[Display | Reel] = [
        FitDisplay(result, df, show_start=True),
        LossDisplay(result),
        ParamsDisplay(result, df),
        GridDisplay(result, df, k=4),
        LandscapeDisplay(compute_landscape(result, df)),
        FitAnimation(result, df),
    ]
    return [picture.save(out / name) for picture, name in zip(pictures, LINEAR_PICTURES, strict=True)]


def rollercoaster_pictures(stalled, converged, df, out: Path) -> list[Path]:
    """Seed 002's row of successive fits, the stalled fit, its path on the landscape, and the converged fit."""
    from gradfit.analysis.landscape import compute_landscape
    from gradfit.plots.fit import FitDisplay
    from gradfit.plots.grid import GridDisplay
    from gradfit.plots.landscape import LandscapeDisplay
    from gradfit.plots.loss import LossDisplay

    # Wide enough to hold both the start and the least-squares answer: the long narrow valley between
    # them is why lr 1e-5 crawls.
    best = converged.flat_params
    lo_a, hi_a = min(-1.0, best["a"] - 1), max(2.0, best["a"] + 1)
    lo_b, hi_b = min(-16.0, best["b"] - 3), max(3.0, best["b"] + 3)
    land = compute_landscape(stalled, df, params=("a", "b"), n=151, span=((lo_a, hi_a), (lo_b, hi_b)))
    pictures = [
        GridDisplay(stalled, df, k=4),
        FitDisplay(stalled, df, show_start=True),
        LandscapeDisplay(land),
        FitDisplay(converged, df),
        LossDisplay(converged),
    ]
    return [picture.save(out / name) for picture, name in zip(pictures, ROLLERCOASTER_PICTURES, strict=True)]


def _wrote(quiet: bool, paths) -> None:
    _say(quiet, *(f"wrote {p}" for p in paths))


def run_rollercoaster(out: Path, quiet: bool = False, folder=None) -> int:
    """Seed 002: 10 SGD steps with lr 1e-5 that stall, then a converging fit. Returns the exit code.

    ``folder`` (a :class:`~gradfit.run_folder.RunFolder` for ``out``) has an earlier run there replaced.
    """
    import numpy as np

    from gradfit.api import fit
    from gradfit.cli.fit_cmd import report_failure, save
    from gradfit.cli.progress import ParamLines
    from gradfit.data.io import read_table
    from gradfit.errors import GradfitWarning
    from gradfit.outputs import RUN_FILES, check_out_dir

    out = check_out_dir(out) if folder is None else folder.path
    df = read_table("builtin:rollercoaster")
    t, speed = df["t"].to_numpy(np.float64), df["speed"].to_numpy(np.float64)
    _say(
        quiet,
        f"Seed 002: fit speed = {QUADRATIC} to the roller coaster's 20 points,",
        "from a random start (seed 0), with plain SGD, lr 1e-5, 10 steps.",
        "",
    )
    common: _Start = dict(x="t", y="speed", init="random", seed=0)
    with warnings.catch_warnings():  # not converging is the lesson, explained below, not a warning
        warnings.simplefilter("ignore", GradfitWarning)
        stalled = fit(
            QUADRATIC,
            df,
            optimizer="sgd",
            lr=1e-5,
            steps=10,
            callbacks=[] if quiet else [ParamLines(console)],
            **common,
        )
    # The converged run and the pictures are listed with the first save, so a later run replaces them all.
    planned = [out / "converged" / name for name in RUN_FILES] + [out / name for name in ROLLERCOASTER_PICTURES]
    stalled_paths = save(stalled, out, folder, also=planned)
    if stalled.stop_reason != "max_steps":  # not converging is the lesson; anything else is not
        report_failure(stalled, stalled_paths)
        return EXIT_FAILED

    design = np.stack([t**2, t, np.ones_like(t)], axis=1)
    curvature = np.linalg.eigvalsh(2 * design.T @ design / len(t))  # the Hessian of the MSE
    _say(
        quiet,
        "",
        f"Why it stalls: the problem is badly conditioned. The column t**2 reaches {t.max() ** 2:.0f} while the "
        f"constant column is 1, so the loss curves {curvature[-1] / curvature[0]:,.0f} times more sharply in its "
        f"steepest direction (mostly a) than in its flattest (mostly c). SGD must keep lr below "
        f"{2 / curvature[-1]:.2g} not to overshoot along a, and at that scale it moves along c so slowly "
        f"(about 1/{1 / (1e-5 * curvature[0]):,.0f} of the way per step at lr 1e-5) that it would need millions of steps.",
        "What to do instead: scale the problem (--scale: gradfit whitens the parameters from the Jacobian at the "
        "start, which is what standardising t does for this model, and maps them back), and the same plain SGD "
        "converges with lr 0.3 in 200 steps. Or let Levenberg-Marquardt (--optimizer lm) solve the least squares "
        "directly. Both from the same start:",
        "",
    )
    converged = fit(QUADRATIC, df, **CONVERGED_OPTIONS, **common)
    exact = fit(QUADRATIC, df, optimizer="lm", **common)
    converged_paths = save(converged, out / "converged")
    reference = np.polyfit(t, speed, 2)
    values = np.array(list(converged.flat_params.values()))
    error = float(np.max(np.abs(values - reference) / np.abs(reference)))
    if not quiet:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("parameter", "SGD, 10 steps", "SGD --scale, 200 steps", "LM", "numpy.polyfit"):
            table.add_column(col, justify="right")
        for name, s, c, e, r in zip(
            converged.flat_params,
            stalled.flat_params.values(),
            values,
            exact.flat_params.values(),
            reference,
            strict=True,
        ):
            table.add_row(Text(name), f"{s:.6g}", f"{c:.6g}", f"{e:.6g}", f"{r:.6g}")
        console.print(table)
        _say(
            quiet,
            "",
            f"Loss: {stalled.loss:.6g} after 10 SGD steps, {converged.loss:.6g} after {converged.steps} scaled SGD steps, "
            f"{exact.loss:.6g} after {exact.steps} LM iteration{'s' if exact.steps != 1 else ''}; "
            f"largest relative difference from numpy.polyfit: {error:.2g}.",
            f"Wrote the SGD run to {out} and the converged run to {out / 'converged'}.",
        )
    if not converged.success:
        report_failure(converged, converged_paths)
        return EXIT_FAILED
    _wrote(quiet, rollercoaster_pictures(stalled, converged, df, out))
    if not error <= TOLERANCE:
        err_console.print(
            f"Error: the converged fit differs from numpy.polyfit by {error:.3g} (relative), more than "
            f"{TOLERANCE:g}. This is a bug in gradfit; please report it.",
            markup=False,
            soft_wrap=True,
        )
        return EXIT_FAILED
    return EXIT_OK
