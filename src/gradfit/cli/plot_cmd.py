"""``gradfit plot``: redraw the pictures of a saved run, without refitting."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gradfit.cli.common_options import Debug, Quiet
from gradfit.cli.console import console, guarded, print_warnings
from gradfit.cli.paths import given_path

__all__ = ["plot_command"]


def plot_command(
    run: Annotated[
        Path,
        typer.Argument(
            parser=given_path,
            metavar="RUN",
            help="The folder of a saved run (the --out of `gradfit fit`).",
            show_default=False,
        ),
    ],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            "-k",
            help="What to draw, comma-separated: fit, loss, "
            "params, grid, landscape, animation, or all (default fit,loss,params).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="The fit's data, when it was not a file or built-in dataset that can be read again."
        ),
    ] = None,
    landscape: Annotated[
        str | None,
        typer.Option(help="The landscape's two parameters A,B (default: the first two free ones).", show_default=False),
    ] = None,
    animate: Annotated[
        Path | None,
        typer.Option(
            parser=given_path,
            metavar="PATH",
            help="Where the animation goes: FILE.gif, FILE.mp4 or FILE.html (default RUN/animation.gif).",
            show_default=False,
        ),
    ] = None,
    max_frames: Annotated[int, typer.Option(help="Most frames in an animation (evenly sampled snapshots).")] = 100,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Draw the pictures of a saved run into its folder (fit.png, loss.png, params.png, grid.png, landscape.png,
    animation.gif).

    The pictures become part of that run: a later run written to the folder replaces them with the rest.

    The run is checked first: a history.csv cut short or changed since the fit, or data changed since
    (read again from the fit's file), is refused; data given with --data that are not the fit's get a warning.

    Exit status: 0 success, 2 bad input (no run in the folder, a damaged run, data changed since the fit, unknown
    kind or parameter, unreadable data, a folder another command is writing to).
    """
    with guarded(debug):
        from gradfit.cli.picture_options import parse_kinds, parse_pair
        from gradfit.errors import GradfitWarning
        from gradfit.folder_lock import lock_folder
        from gradfit.outputs import load_run, run_inputs
        from gradfit.plots.run_pictures import check_animation_path, save_pictures
        from gradfit.run_folder import RunFolder

        kinds = parse_kinds(kind)
        pair = parse_pair(landscape)
        if pair is not None and "landscape" not in kinds and "animation" not in kinds:
            kinds = (*kinds, "landscape")  # naming the landscape's parameters asks for it
        if animate is not None:
            check_animation_path(animate)
            kinds = kinds if "animation" in kinds else (*kinds, "animation")
        if run.is_dir():
            lock_folder(run)  # no fit replaces the run while its pictures are drawn into it
        result = load_run(run)
        RunFolder(run).check_inputs(
            run_inputs(run, data or result.data.get("path")),
            writes=[*(run / f"{k}.png" for k in kinds if k != "animation"), animate or run / "animation.gif"],
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradfitWarning)
            written = save_pictures(
                result, run, kinds, data=data, landscape=pair, animation_path=animate, max_frames=max_frames
            )
        print_warnings(caught)
        RunFolder(run).record(written.values(), run_id=result.run_id)  # the pictures are the run's now (an
        # animation elsewhere is not)
        if not quiet:
            for path in written.values():
                console.print(Text(f"wrote {path}"), soft_wrap=True)
