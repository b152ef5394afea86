"""``gradfit fit``: fit a model to a table and save the run.

A thin command: it parses the compound options, calls :func:`gradfit.fit`, writes the run
with :func:`gradfit.outputs.save_run` and prints a short report. torch and the library are
imported inside the command so that ``gradfit --help`` does not pay for them.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from gradfit.cli.common_options import Debug, Force, Quiet, run_folder
from gradfit.cli.console import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    abort,
    console,
    err_console,
    guarded,
    print_warnings,
)
from gradfit.cli.interruption import picture_names, saved_message
from gradfit.cli.paths import given_path
from gradfit.cli.read_options import (
    DateFormat,
    DateOrigin,
    Dates,
    DateUnit,
    DayFirst,
    Decimal,
    Encoding,
    NoHeader,
    Params,
    Sep,
    Thousands,
    read_options,
)
from gradfit.options import OPTIONS

__all__ = ["fit_command", "run_fit", "print_report", "report_failure", "FolderLine", "DEFAULT_OUT"]

DEFAULT_OUT = Path("gradfit-out")  # where runs without --out go, each in a new folder (gradfit.run_folder)

_DATA_HELP = (
    "The data: a CSV/TSV/Parquet file, or a built-in dataset: builtin:linear, builtin:rollercoaster, builtin:blobs, "
    "builtin:wells (one decay curve per well, for --group well)."
)
#: The fit options ``gradfit fit`` takes as flags: those of gradfit.options.OPTIONS with a CLI flag.
FIT_FLAGS = {name: option.cli for name, option in OPTIONS.items() if option.cli}

Out = Annotated[
    Path | None,
    run_folder(
        "result.json, history.csv, checkpoint.pt and the pictures", "gradfit-out/run-NNN, or the --resume folder"
    ),
]


def _help(name: str) -> str:
    """A flag's help: the option's line in gradfit.options.OPTIONS (one text for the CLI, the docstring, the table)."""
    return OPTIONS[name].help


_MODEL_HELP = (
    "A zoo name (linear, poly2, poly3, exponential, sigmoid, gaussian, power, sine, logistic, mlp; "
    "`gradfit models` describes them) or a formula such as 'a*t**2 + b*t + c' (names that are columns "
    "are inputs, the others parameters)."
)


def fit_command(
    data: Annotated[str, typer.Argument(help=_DATA_HELP, show_default=False)],
    y: Annotated[str, typer.Option("--y", help="The target column.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP, show_default=False)],
    x: Annotated[
        Optional[str],
        typer.Option(
            "--x",
            help="Input column(s), comma-separated. Default: the formula's "
            "names that are columns, else every column but --y.",
        ),
    ] = None,
    init: Annotated[
        Optional[list[str]],
        typer.Option(
            "--init",
            help="Initial values: a[0]=0.5,a[1]=0.75,b=2 (a name without index sets every entry), or 'random'.",
        ),
    ] = None,
    fix: Annotated[
        Optional[list[str]], typer.Option("--fix", help="Parameters held at their initial values, comma-separated.")
    ] = None,
    bound: Annotated[
        Optional[list[str]],
        typer.Option(
            "--bound", help="Limits NAME=LO:HI (repeatable; an empty side is unbounded: b=0: ), honoured by projection."
        ),
    ] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option(
            "--option", "-o", help="A model option KEY=VALUE, repeatable: degree=3, hidden=32,32, activation=tanh."
        ),
    ] = None,
    loss: Annotated[str, typer.Option(help=_help("loss"))] = OPTIONS["loss"].default,
    optimizer: Annotated[str, typer.Option(help=_help("optimizer"))] = OPTIONS["optimizer"].default,
    lr: Annotated[Optional[float], typer.Option(help=_help("lr"))] = None,
    momentum: Annotated[Optional[float], typer.Option(help=_help("momentum"))] = None,
    steps: Annotated[Optional[int], typer.Option(help=_help("steps"))] = None,
    epochs: Annotated[Optional[int], typer.Option(help=_help("epochs"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=_help("batch_size"))] = None,
    schedule: Annotated[Optional[str], typer.Option(help=_help("schedule"))] = None,
    val_split: Annotated[Optional[float], typer.Option(help=_help("val_split"))] = None,
    patience: Annotated[Optional[int], typer.Option(help=_help("patience"))] = None,
    target_loss: Annotated[Optional[float], typer.Option(help=_help("target_loss"))] = None,
    max_time: Annotated[Optional[float], typer.Option(help=_help("max_time"))] = None,
    tol: Annotated[Optional[float], typer.Option(help=_help("tol"))] = None,
    # A flag, not --scale/--no-scale: left out, the choice is automatic (scale=None).
    scale: Annotated[bool, typer.Option("--scale", help=_help("scale"))] = False,
    uncertainty: Annotated[
        Optional[bool], typer.Option("--uncertainty/--no-uncertainty", help=_help("uncertainty"), show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help=_help("seed"))] = OPTIONS["seed"].default,
    log_every: Annotated[Optional[int], typer.Option(help=_help("log_every"))] = None,
    dtype: Annotated[Optional[str], typer.Option(help=_help("dtype"))] = None,
    device: Annotated[str, typer.Option(help=_help("device"))] = OPTIONS["device"].default,
    drop_nan: Annotated[
        bool, typer.Option("--drop-nan", help="Drop rows with missing values instead of refusing them.")
    ] = False,
    stream: Annotated[
        Optional[bool],
        typer.Option(
            "--stream/--no-stream",
            help="Read the file batch by batch at every pass instead of loading it (Parquet, or CSV with a "
            "header): memory stays bounded whatever its size; full-batch steps give the same results, mini-batches "
            "are shuffled by blocks of rows within bounded windows (seeded). Left out: a file that would not fit "
            "in the memory budget is streamed for full-batch steps, with a note.",
            show_default=False,
        ),
    ] = None,
    dist_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--dist-timeout",
            help="Under torchrun: seconds a process waits for the others (to start, then at every step) before the "
            "fit ends with an error naming it. Default 300.",
        ),
    ] = None,
    memory_budget: Annotated[
        Optional[str],
        typer.Option(
            "--memory-budget",
            help="The memory this fit may take: a size (8GB, 512MB) or a share of the machine's (50%). Default: "
            "GRADFIT_MEMORY, else 80% of the machine's memory.",
        ),
    ] = None,
    param: Params = None,
    sep: Sep = None,
    decimal: Decimal = None,
    thousands: Thousands = None,
    encoding: Encoding = None,
    no_header: NoHeader = False,
    dates: Dates = None,
    date_unit: DateUnit = None,
    date_origin: DateOrigin = None,
    dayfirst: DayFirst = None,
    date_format: DateFormat = None,
    sigma: Annotated[
        Optional[str],
        typer.Option(
            "--sigma",
            help="Column of the targets' standard deviations (> 0), "
            "as curve_fit's sigma: rows weighted by 1/sigma², the report gives "
            "the chi-square; needs --loss mse.",
            show_default=False,
        ),
    ] = None,
    absolute_sigma: Annotated[
        bool,
        typer.Option(
            "--absolute-sigma",
            help="The --sigma values are absolute: the "
            "covariance is not scaled by the reduced chi-square (curve_fit's "
            "absolute_sigma).",
        ),
    ] = False,
    weights: Annotated[
        Optional[str],
        typer.Option(
            "--weights",
            help="Column of row weights (>= 0, 0 leaves a row out), as sklearn's sample_weight; not with --sigma.",
            show_default=False,
        ),
    ] = None,
    out: Out = None,
    force: Force = False,
    checkpoint_every: Annotated[Optional[int], typer.Option(help=_help("checkpoint_every"))] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            parser=given_path,
            metavar="PATH",
            help="Continue the fit saved in DIR/checkpoint.pt; give the same "
            "data, model and options (only --steps/--epochs, --max-time, "
            "--log-every and --checkpoint-every may change). The result equals an uninterrupted "
            "fit's.",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Also write fit.png, loss.png and params.png into --out.")
    ] = False,
    animate: Annotated[
        Optional[Path],
        typer.Option(
            parser=given_path,
            metavar="PATH",
            help="Write an animation of the fit: FILE.gif, FILE.mp4 (needs ffmpeg) or FILE.html (self-contained).",
            show_default=False,
        ),
    ] = None,
    landscape: Annotated[
        Optional[str],
        typer.Option(
            help="Write landscape.png: the loss over two parameters A,B with the fit's path (e.g. a[0],a[1]).",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        Optional[str],
        typer.Option(
            "--group",
            help="Fit the model to each group of rows (one fit per value of this column) by batched "
            "Levenberg-Marquardt (or batched gradient descent: --optimizer sgd|momentum|nesterov|adam with --lr); "
            "writes OUT/groups.csv (group, parameters, standard errors, loss, steps, status, "
            "message) and OUT/result.json (counts by status). Exit 1 only when no group converged.",
            show_default=False,
        ),
    ] = None,
    parquet: Annotated[bool, typer.Option("--parquet", help="With --group: also write OUT/groups.parquet.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit a model to a table by gradient descent; write OUT/result.json and OUT/history.csv.

    Exit status: 0 success; 1 the fit failed or diverged (result.json says why); 2 bad input (nothing written);
    130 interrupted by Ctrl-C or SIGTERM: the fit stops at the next step, the analysis and the pictures are skipped, and
    the run so far and OUT/checkpoint.pt are saved (continue with --resume OUT); a second signal stops at once, leaving
    only whole files. The message says what was saved.
    """
    options = dict(
        loss=loss,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        schedule=schedule,
        val_split=val_split,
        patience=patience,
        target_loss=target_loss,
        max_time=max_time,
        tol=tol,
        seed=seed,
        dtype=dtype,
        device=device,
        uncertainty=uncertainty,
        scale=scale or None,
        checkpoint_every=checkpoint_every,
        sigma=sigma,
        weights=weights,
        absolute_sigma=absolute_sigma or None,
    )
    if out is None and resume is not None:  # a resumed fit goes on writing where it was saved
        out = resume.parent if resume.is_file() else resume
    from gradfit.memory import given_budget
    from gradfit.train.interrupt import catch_interrupts

    # One interrupt window from the first step to the last file (gradfit.fit's own window joins it); a second
    # signal, SIGTERM too, raises so that every write cleans up after itself. --memory-budget: for this command, as
    # GRADFIT_MEMORY would set it (checked before any work), then undone.
    with guarded(debug), catch_interrupts(second="raise"), given_budget(memory_budget, "--memory-budget"):
        read = read_options(
            sep, decimal, thousands, encoding, no_header, dates, date_unit, date_origin, dayfirst, date_format
        )
        code = run_fit(
            data,
            dist_timeout=dist_timeout,
            model=model,
            y=y,
            x=x,
            init=init,
            fix=fix,
            bounds=bound,
            model_options=option,
            drop_nan=drop_nan,
            stream=stream,
            log_every=log_every,
            out=out,
            quiet=quiet,
            plot=plot,
            animate=animate,
            landscape=landscape,
            resume=resume,
            force=force,
            params=param,
            read=read,
            group_column=group,
            parquet=parquet,
            **options,
        )
    raise typer.Exit(code)


def run_fit(
    data: str,
    *,
    model: str,
    y: str,
    x: str | None = None,
    init: list[str] | None = None,
    fix: list[str] | None = None,
    bounds: list[str] | None = None,
    model_options: list[str] | None = None,
    drop_nan: bool = False,
    stream: bool | None = None,
    log_every: int | None = None,
    out: Path | None = None,
    quiet: bool = False,
    plot: bool = False,
    animate: Path | None = None,
    landscape: str | None = None,
    resume: Path | None = None,
    force: bool = False,
    params: list[str] | None = None,
    read: dict | None = None,
    dist_timeout: float | None = None,
    group_column: str | None = None,
    parquet: bool = False,
    **options: Any,
) -> int:
    """The body of ``gradfit fit``: returns the exit code; raises GradfitError for bad input.

    Every option is checked (by the library) before anything is written, so bad input leaves
    no output folder behind. Checkpoints go to ``out``, so an interrupted fit can be resumed from there.
    Without ``out`` the run goes to a new folder under ``gradfit-out/``; an ``out`` holding an
    earlier run gets this one instead, and one holding other files needs ``force``
    (:func:`gradfit.run_folder.command_folder`). Under torchrun, rank 0 alone writes and prints
    (:mod:`gradfit.cli.processes`).
    """
    from gradfit.api import fit
    from gradfit.cli.parsing import parse_bounds, parse_init, parse_model_options, parse_names
    from gradfit.cli.picture_options import parse_pair
    from gradfit.cli.processes import Silent, join, restarted_from, share, told
    from gradfit.cli.progress import LossLines, ProgressBar
    from gradfit.errors import GradfitWarning
    from gradfit.plots.run_pictures import check_animation_path
    from gradfit.run_folder import command_folder
    from gradfit.train.interrupt import StopRequest, current_request

    parsed_init = parse_init(init)
    parsed_fix = parse_names(fix, "--fix")
    parsed_bounds = parse_bounds(bounds)
    parsed_x = parse_names(x, "--x")
    parsed_params = parse_names(params, "--param")
    parsed_options = parse_model_options(model_options)
    pair = parse_pair(landscape)
    animation_path = check_animation_path(animate) if animate is not None else None
    given: dict[str, Any] = {"x": parsed_x, "y": y, "init": parsed_init, "fix": parsed_fix, "bounds": parsed_bounds}
    given.update(drop_nan=drop_nan, stream=stream, params=parsed_params, read=read, model_options=parsed_options)
    options = {k: v for k, v in options.items() if v is not None}
    if group_column is not None:  # one fit per group: a table, not a run (gradfit.cli.grouped_fit)
        from gradfit.cli.grouped_fit import run_grouped

        unused: dict[str, Any] = {"--plot": plot, "--animate": animate, "--landscape": landscape, "--resume": resume}
        unused.update({"--log-every": log_every, "--dist-timeout": dist_timeout})
        return run_grouped(data, model=model, group=group_column, parquet=parquet, out=out, force=force, quiet=quiet,
                           unused=unused, **given, **options)  # fmt: skip
    if parquet:
        from gradfit.errors import ConfigError

        raise ConfigError("--parquet writes the groups' table: it goes with --group COLUMN.")
    group = join(dist_timeout)  # torchrun's processes: one fit, rank 0 the writer
    if group is not None and group.rank != 0:  # the same fit, silent: rank 0 prints and writes
        out_dir, resume = told(group)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradfitWarning)
            result = fit(
                model,
                data,
                **given,
                callbacks=[Silent()],
                log_every=log_every,
                checkpoint_dir=out_dir,
                resume=resume,
                **options,
            )
        return EXIT_OK if result.success else EXIT_FAILED if result.stop_reason != "interrupted" else EXIT_INTERRUPTED
    resume = restarted_from(out, resume) if group is not None else resume
    folder = command_folder(out, force=force, resume=resume)
    out_dir = folder.path
    share(group, out_dir, resume)
    folder.check_inputs(fit_inputs(data, resume, folder), writes=fit_outputs(out_dir, plot, pair, animation_path))

    callbacks: list[Any] = [PictureCheck(pair)] if pair else []
    if not quiet and (folder.automatic or folder.replaces or folder.others):
        callbacks.append(FolderLine(folder))  # said when the fit starts, so bad input prints nothing
    if log_every and not quiet:
        callbacks.append(LossLines(console, log_every))  # fit() records log_every but leaves printing to it
    bar = ProgressBar(console) if (not quiet and console.is_terminal) else None
    if bar is not None:
        callbacks.append(bar)
    stop = current_request()  # the command's interrupt window (a request never set when called without one)
    stop = stop if stop is not None else StopRequest()
    # Until the first step nothing is worth keeping: a signal stops at once (gradfit.fit says when the steps start).
    stop.now("reading the data and preparing the fit", droppable=True)
    with (
        bar if bar is not None else contextlib.nullcontext(),
        warnings.catch_warnings(record=True) as caught,
        folder.discarded_on_error(),
    ):
        warnings.simplefilter("always", GradfitWarning)
        result = fit(
            model,
            data,
            **given,
            callbacks=callbacks,
            log_every=log_every,
            checkpoint_dir=out_dir,
            resume=resume,
            **options,
        )
    print_warnings(caught, skip=() if result.success else (result.message,))  # a failed fit's verdict is its error
    if not quiet:
        choice = result.diagnostics.get("choice") or {}
        if choice.get("reason"):
            console.print(Text(f"optimizer: {choice['optimizer']} ({choice['reason']})"), soft_wrap=True)
        for note in result.data.get("notes", []):
            console.print(Text(f"note: {note}"), soft_wrap=True)
    kinds = (
        (("fit", "loss", "params") if plot else ())
        + (("landscape",) if pair else ())
        + (("animation",) if animation_path else ())
    )
    pictures = [out_dir / f"{k}.png" for k in kinds if k != "animation"] + [animation_path]
    with stop.stage("saving the run"):  # a signal here lets the files be finished
        paths = save(result, out_dir, folder, also=pictures)
    undrawn = [p for p in pictures if p is not None] if kinds and result.stop_reason != "diverged" else []
    if undrawn and not stop:  # a fit short of the optimum is worth seeing too; after a signal, none is drawn
        with stop.stage(f"drawing {picture_names(undrawn)}", droppable=True):
            paths.update(draw(result, out_dir, kinds, paths, landscape=pair, animation_path=animation_path))
        undrawn = []
    folder.record(paths.values(), run_id=result.run_id)  # whatever save_run and the pictures wrote, under any name
    if not quiet:
        n, xs = result.data.get("n"), ", ".join(result.data.get("x", []))
        how = result.data.get("weights")
        weighted = f"; {how['kind']} {how['column']}" if how else ""
        print_report(result, paths, title=f"Fitted {model} to {data} ({n} rows; inputs {xs}; target {y}{weighted})")
    if stop or result.stop_reason == "interrupted":
        err_console.print(saved_message(result, paths, stop, undrawn), markup=False, soft_wrap=True, style="yellow")
        return EXIT_INTERRUPTED
    if not result.success:
        report_failure(result, paths)
        return EXIT_FAILED
    return EXIT_OK


def fit_inputs(data: str, resume: Path | None, folder) -> dict[str, Any]:
    """What a fit reads, for :meth:`~gradfit.run_folder.RunFolder.check_inputs`: the data file, and the checkpoint
    it continues unless that is the one in ``folder`` (a run resumed in place replaces its own checkpoint)."""
    from gradfit.input_files import same_file
    from gradfit.outputs import CHECKPOINT_NAME
    from gradfit.train.checkpoint import checkpoint_file

    inputs: dict[str, Any] = {"The data file": data}
    if resume is not None and not same_file(checkpoint_file(resume), folder.path / CHECKPOINT_NAME):
        inputs["The checkpoint to resume from"] = checkpoint_file(resume)
    return inputs


def fit_outputs(out_dir: Path, plot: bool, pair, animation_path: Path | None) -> list[Path | None]:
    """Every file a fit may write: the run's files, its checkpoint, the pictures asked for and the animation."""
    from gradfit.outputs import CHECKPOINT_NAME, RUN_FILES

    pictures = (("fit", "loss", "params") if plot else ()) + (("landscape",) if pair else ())
    return [
        *(out_dir / n for n in (*RUN_FILES, CHECKPOINT_NAME)),
        *(out_dir / f"{k}.png" for k in pictures),
        animation_path,
    ]


def save(result, out_dir: Path, folder=None, also=()) -> dict[str, Path]:
    """``save_run`` with an OS failure (disk full, permissions) turned into a clean exit 1.

    With ``folder`` (a :class:`~gradfit.run_folder.RunFolder`), the earlier run's files that this
    run has not rewritten are removed just before the new ``result.json`` is written, and the
    run's files (with ``also``: pictures still to be drawn) are listed in the folder.
    """
    from gradfit.outputs import RESULT_NAME, RUN_FILES, save_run

    def replace_earlier() -> None:
        folder.clear_earlier()
        # What is there now is this run's (the earlier files were just cleared): its history files and any
        # checkpoint; result.json comes next.
        written = [out_dir / n for n in (*RUN_FILES, "checkpoint.pt") if n == RESULT_NAME or (out_dir / n).exists()]
        folder.record([*written, *(p for p in also if p is not None)])

    try:
        return save_run(result, out_dir, before_result=replace_earlier if folder is not None else None)
    except OSError as exc:
        abort(
            f"Cannot write the results to {str(out_dir)!r}: {exc.strerror or exc}. "
            f"Free some space or give another folder with --out.",
            EXIT_FAILED,
        )


def draw(result, out_dir: Path, kinds, paths: dict[str, Path], **options) -> dict[str, Path]:
    """The pictures of a saved run; a picture that cannot be drawn is reported, and the run stays saved."""
    from gradfit.errors import GradfitError
    from gradfit.plots.run_pictures import save_pictures

    try:
        return save_pictures(result, out_dir, kinds, **options)
    except GradfitError as exc:
        abort(
            f"{exc} The fit itself succeeded and was saved to {str(paths['result'])!r}; redraw with "
            f"`gradfit plot {out_dir}`.",
            exc.exit_code,
        )


class PictureCheck:
    """A callback that checks ``--landscape`` against the model once it is built, before the fit starts."""

    def __init__(self, pair):
        self.pair = pair

    def on_model(self, model, fixed) -> None:
        from gradfit.plots.run_pictures import check_landscape

        check_landscape(model, fixed, self.pair)


class FolderLine:
    """A callback that says where the run goes when the fit starts (after every check has passed)."""

    def __init__(self, folder):
        self.folder, self.said = folder, False

    def on_start(self, total_steps: int) -> None:
        if not self.said:
            self.said = True
            console.print(Text(self.folder.describe()), soft_wrap=True)


def report_failure(result, paths: dict[str, Path]) -> None:
    """The stderr paragraph for a fit that ran but failed (diverged, stalled, worse than its start, or short of
    the optimum)."""
    what = (
        "did not converge" if result.stop_reason in ("max_steps", "max_epochs", "max_time", "converged") else "failed"
    )
    err_console.print(
        f"Error: the fit {what} ({result.stop_reason}). {result.message} "
        f"The run was saved to {str(paths['result'])!r}.",
        markup=False,
        soft_wrap=True,
        style="red",
    )


def print_report(result, paths: dict[str, Path], title: str = "") -> None:
    """Parameters table, final loss, steps, why it stopped, time taken and where files went."""
    if title:
        console.print(Text(title, style="bold"), soft_wrap=True)
    if result.report:
        from gradfit.cli.report_view import print_report_tables

        print_report_tables(console, result.report)
    else:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("parameter")
        table.add_column("value", justify="right")
        for name, value in result.flat_params.items():
            fixed = " (fixed)" if name.split("[")[0] in result.fixed else ""
            table.add_row(Text(name + fixed), Text(_fmt(value)))
        console.print(table)

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    if not result.report:  # the report's tables already hold these
        summary.add_row("final loss", _fmt(result.loss))
        summary.add_row("steps", f"{result.steps} ({result.epochs:.6g} epochs)")
        summary.add_row("stopped", Text(f"{result.stop_reason}: {result.message}"))
    if result.val_loss is not None:
        summary.add_row("val loss", _fmt(result.val_loss))
    summary.add_row("elapsed", f"{result.elapsed:.3g} s")
    console.print(summary)
    # Paths go outside the grid: a cell would cut a long path with an ellipsis.
    for path in paths.values():
        console.print(Text(f"wrote {path}"), soft_wrap=True)


def _fmt(value) -> str:
    value = float(value)
    return f"{value:.6g}" if math.isfinite(value) else str(value)
