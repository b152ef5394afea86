"""``gradfit.fit``, the library's front door (in a module of its own name so it never shadows the function)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import torch

from gradfit.analysis.fit_analysis import analyse, check_stability
from gradfit.data.dataset import Dataset
from gradfit.data.fingerprint import dataset_fingerprint
from gradfit.data.weights import check_training_rows
from gradfit.errors import ConfigError, DataError
from gradfit.losses import check_weighting, get_loss
from gradfit.models.builder import ModelLike, build_model
from gradfit.models.names import check_declared, declared_params
from gradfit.optim.registry import default_lr
from gradfit.options import options_doc
from gradfit.preparation import (
    constant_notes,
    device_of,
    dtype_of,
    fit_config,
    n_outputs_of,
    narrowed,
    open_rows,
    plan_fit,
    weight_sum,
)
from gradfit.rowpass import RowSet, is_row_set, rows_triple
from gradfit.run_schema import new_run_id
from gradfit.train.bounds import Bounds
from gradfit.train.callbacks import PrintLoss, call
from gradfit.train.config import FitConfig
from gradfit.train.footprint import check_fit_memory
from gradfit.train.initial_values import fixed_names, initial_params
from gradfit.train.interrupt import catch_interrupts
from gradfit.train.loop import run_loop
from gradfit.train.result import FitResult
from gradfit.train.row_sets import (
    check_row_set_plan,
    check_weights,
    target_values,
)
from gradfit.train.row_sets import check_targets as check_row_targets

if TYPE_CHECKING:
    from gradfit.train.grouped_result import GroupedResult


@overload
def fit(model: ModelLike, data: Any = None, *, group: None = None, **kwargs: Any) -> FitResult: ...


@overload
def fit(model: ModelLike, data: Any = None, *, group: str, **kwargs: Any) -> GroupedResult: ...


def fit(
    model: ModelLike,
    data: Any = None,
    *,
    x: str | Sequence[str] | None = None,
    y: str | None = None,
    init: Mapping[str, Any] | str | None = None,
    params: Iterable[str] | str | None = None,
    fix: Iterable[str] | str | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    model_options: Mapping[str, Any] | None = None,
    drop_nan: bool = False,
    read: Mapping[str, Any] | None = None,
    stream: bool | None = None,
    sigma: str | Any = None,
    absolute_sigma: bool = False,
    weights: str | Any = None,
    callbacks: Sequence[Any] = (),
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
    catch_signals: bool = True,
    group: str | None = None,
    **options: Any,
) -> FitResult | GroupedResult:
    """Fit ``model`` to ``data`` by gradient descent.

        Parameters
        ----------
        model : str, callable, nn.Module or Model
            A zoo name (``"linear"``, ``"poly2"``, ``"exponential"``, ``"logistic"``, ``"mlp"``...), a formula
            (``"a*t**2 + b*t + c"``: names that are data columns are inputs, the others parameters), a function
            ``f(x, a, b, ...)`` written with torch operations, or a ``torch.nn.Module``.
        data : path, DataFrame, dict, array, tensor, (X, y) tuple or Dataset
            CSV/Parquet paths and ``"builtin:linear"`` / ``"builtin:rollercoaster"`` are read for you.
        x, y : column names
            Inputs (default: the formula's names that are columns, else every column but ``y``) and target.
        init : mapping or "random"
            Initial values by name (``{"a": [0.5, 0.75]}``, ``{"a[0]": 0.5}``, ``{"a[bmi]": 0.5}``); defaults are
            the model's. A name given a value is declared a parameter (see ``params``).
        params : names, optional
            Formula names declared parameters. A formula name that is not a column but is close to one (``bpp``
            for a column ``bp``, ``BMI`` for ``bmi``; see :mod:`gradfit.data.spelling`) is refused with "did you
            mean", as is a column left out of ``x``, unless declared here (or in ``init``); a declared name that is
            also a column is a parameter, not an input.
        fix : names
            Parameters held at their initial values.
        bounds : mapping
            Limits by name or entry, ``{"b": (0, None), "a[0]": (-1, 1)}`` (None: unbounded on that side). Every
            optimizer honours them by projection: after each update, parameters are clipped into their box, and
            an entry on a bound whose gradient points outward is held there.
        drop_nan : bool
            Drop rows with missing values in the used columns (the count is in ``result.data["notes"]``)
            instead of refusing them.
        stream : bool, optional
            Read the file batch by batch at every pass instead of loading it: memory stays bounded by one chunk
            of rows, whatever the file's size (a Parquet file, or a plain CSV file with a header row). Every
            sum over the rows is the same as in memory, so the results of full-batch steps are too. Mini-batches
            (``batch_size``) are shuffled by blocks of rows and within bounded windows, seeded
            (:mod:`gradfit.train.stream_batches`: other batches than in memory, the same for the same seed), and
            ``val_split`` holds out whole blocks of rows; the fit's guesses and probes read evenly spaced rows.
            None (the default) streams a full-batch fit on a file that would
            not fit in the memory budget (:mod:`gradfit.memory`), with a note saying so; False never does.
            ``data`` may also be a :class:`gradfit.rowpass.RowSet` itself, such as
            :class:`gradfit.data.file_rows.FileRows`.
        read : mapping, optional
            How to read a file (see :func:`gradfit.data.io.read_table`): ``{"sep": ";", "decimal": ",",
            "thousands": ".", "encoding": "latin-1", "header": False, "dates": ["when"]}``; separator, decimal mark
            and thousands are detected when not given. What was used is in ``result.data["read"]``, so
            ``read_table(path, **result.data["read"])`` reads the same numbers again. Date columns (``dates``, and the
            datetime columns of a DataFrame) become numbers in a stated unit since a stated origin (a note says
            which; ``result.data["dates"]`` holds them per column).
        sigma : column name or array, optional
            The targets' standard deviations, one per row (> 0), as ``scipy.optimize.curve_fit``'s ``sigma``:
            rows are weighted by ``1/sigma²``, the mse is their weighted mean (``Σ wᵢrᵢ²/Σ wᵢ``; the report
            gives the chi-square ``Σ (rᵢ/σᵢ)²`` and the reduced chi-square), Levenberg-Marquardt minimises the
            chi-square, and the covariance is curve_fit's ``pcov``. Needs ``loss="mse"``. The column is not an
            input of the model.
        absolute_sigma : bool
            With ``sigma``: the sigmas are absolute, so the covariance is ``(JᵀWJ)⁻¹``, not scaled by the reduced
            chi-square (curve_fit's ``absolute_sigma``).
        weights : column name or array, optional
            Row weights >= 0, not all 0 (as scikit-learn's ``sample_weight``; 0 leaves a row out), for any built-in
            loss: the loss is ``Σ wᵢℓᵢ / Σ wᵢ``. Exclusive with ``sigma`` (weights = 1/sigma²). See
            :mod:`gradfit.data.weights`.
        model_options : mapping
            Zoo options such as ``{"degree": 3}`` or ``{"hidden": (32, 32)}``.
        callbacks : sequence
            Objects with ``on_model``/``on_start``/``on_step``/``on_end`` hooks (see :mod:`gradfit.train.callbacks`).
        checkpoint_dir : path, optional
            Folder of ``checkpoint.pt``: written every ``checkpoint_every`` steps, at the end of the budget, and
            whenever the fit is interrupted (see :mod:`gradfit.train.checkpoint`).
        resume : path, optional
            A folder (or ``checkpoint.pt``) to continue from. Model, data and options must be those of the saved
            fit (only ``steps``/``epochs``, ``max_time``, ``log_every`` and ``checkpoint_every`` may change);
            the result equals, bit for bit, that of a fit never stopped. Checkpoints go on being written there
            unless ``checkpoint_dir`` says otherwise.
        catch_signals : bool
            While the loop runs, Ctrl-C (SIGINT) or SIGTERM stops it at the next step boundary and the fit
            returns with ``stop_reason="interrupted"`` (a second Ctrl-C raises KeyboardInterrupt as usual).
            False leaves signals alone.
        group : column name, optional
            Fit the model to each group of rows (one fit per value of this column) by batched
            Levenberg-Marquardt, and return a :class:`~gradfit.train.grouped_result.GroupedResult`: one row per
            group with its parameters, standard errors, loss, steps, status and message (see docs/groups.md).
            ``init`` may give one value per group (arrays in the order of the sorted group keys).
        **options
            The options of :class:`FitConfig`, declared in :data:`gradfit.options.OPTIONS` (this list is written
            from it; ``None``: not given, chosen or computed as the help says):

    {options}

        The result's ``success`` is False, and a :class:`~gradfit.errors.GradfitWarning` says why and what to try,
        when the fit diverged, stalled, ended with the loss above its start, or ran out of budget short of the
        optimum (see :mod:`gradfit.analysis.convergence`).

        Returns
        -------
        FitResult

        Examples
        --------
        >>> import gradfit
        >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=1000)
        >>> [round(v, 2) for v in r.flat_params.values()]
        [3.08, 2.46]
    """
    config = fit_config(options)
    if group is not None:
        refused: dict[str, Any] = {"stream": stream, "callbacks": list(callbacks)}
        refused.update(checkpoint_dir=checkpoint_dir, resume=resume)
        return _grouped(model, data, group, config, options, refused, x=x, y=y, init=init, params=params, fix=fix,
                        bounds=bounds, model_options=model_options, drop_nan=drop_nan, read=read, sigma=sigma,
                        absolute_sigma=absolute_sigma, weights=weights)  # fmt: skip
    started = time.perf_counter()
    loss = get_loss(config.loss, **config.loss_options)
    device = device_of(config.device)

    declared = declared_params(params, init)
    dataset, sample, origin, reading, notes, stream = open_rows(
        data, model, x, y, declared, config, stream, read, drop_nan, sigma, weights, absolute_sigma
    )
    check_weighting(loss, dataset.weighting)
    if dataset.y_name is None or sample.y is None:
        raise DataError("A fit needs targets: name the target column with y=... (--y COLUMN in the CLI).")
    # A classification loss reads every row's label (a row set's rare label may be missing from its sample).
    reads = getattr(loss, "reads_targets", False) and is_row_set(dataset)
    n_outputs = n_outputs_of(loss, target_values(dataset) if reads else sample.y, len(dataset.x_names))
    built = build_model(model, dataset.x_names, n_outputs=n_outputs, **dict(model_options or {}))
    check_declared(built, params)
    notes += constant_notes(built)
    loss.check_targets(sample.y, built.n_outputs)
    if reads:
        check_row_targets(loss, dataset, built.n_outputs)
    fixed = fixed_names(built, fix)
    callbacks = list(callbacks)
    call(callbacks, "on_model", built, fixed)  # a front end's own options checked against the model, at the door
    choice = plan_fit(config, loss, built, fixed, dataset)
    config = dataclasses.replace(config, optimizer=choice.optimizer, dtype=choice.dtype, scale=choice.scale)
    dtype = dtype_of(choice.dtype)
    generator = torch.Generator().manual_seed(config.seed)
    train: Dataset | RowSet
    if is_row_set(dataset):
        check_row_set_plan(dataset, config, device, built)
        dataset = dataset.columns(list(built.inputs)).with_dtype(dtype)
        sample = narrowed(sample.columns(list(built.inputs)), device, dtype)
        # A streamed file is split by whole blocks of its rows, drawn from the generator as in memory (a row set
        # that cannot be split was refused by check_row_set).
        split = getattr(dataset, "split", None)
        train, val = split(config.val_split, generator) if split and config.val_split else (dataset, None)
    else:
        assert isinstance(dataset, Dataset)  # as_dataset's, since data was no row set
        check_fit_memory(built, dataset, config, 8 if dtype == torch.float64 else 4, fixed, device)  # before a copy
        sample = dataset = narrowed(dataset.columns(list(built.inputs)), device, dtype)
        train, val = dataset.split(config.val_split, generator) if config.val_split else (dataset, None)
        sample = train
    check_weights(train) if is_row_set(train) else check_training_rows(train)
    built = built.with_data(rows_triple(train)[0])  # a formula's sum()/mean() over all training rows
    start = initial_params(built, init, generator, dtype, x=sample.x, y=sample.y)
    start = {k: v.to(device) for k, v in start.items()}
    box = Bounds(built, bounds)
    box.check_start(start)
    start_flat = {k: v for k, v in _flat(built, start).items()}
    problem = _Problem.prepare(built, loss, train, start, fixed, config, box, sample)
    config, stability = problem.learning_rate(config, choice)
    run_id = new_run_id()  # in the checkpoints and the saved result.json (gradfit.run_schema)
    checkpoints = _checkpointer(config, checkpoint_dir, resume, built, dataset, start_flat, fixed, box, run_id)

    if config.log_every and not any(getattr(cb, "prints_loss", False) for cb in callbacks):
        callbacks.insert(0, PrintLoss(config.log_every))
    with catch_interrupts(catch_signals) as stop_request:  # in the CLI, this joins the command's window
        stop_request.now(
            "fitting"
        )  # from the first step, work is kept: Ctrl-C / SIGTERM end the loop at a step boundary
        out = problem.descend(val, config, callbacks, generator, checkpoints=checkpoints, stop_request=stop_request)
    weights, total_weight = None, weight_sum(train)
    if total_weight is not None:
        assert dataset.weighting is not None  # as_dataset records how the weights of every dataset were given
        weights = dataset.weighting.to_dict(total_weight)
    result = FitResult(
        params={k: v.cpu() for k, v in out.params.items()},
        loss=out.loss,
        steps=out.steps,
        epochs=out.epochs,
        stop_reason=out.stop_reason,
        message=out.message,
        history=out.history,
        model=built,
        model_spec=built.describe(),
        init_params=start_flat,
        fixed=tuple(sorted(fixed)),
        val_loss=out.val_loss,
        best_step=out.best_step,
        bounds=box.to_dict(),
        diagnostics={
            "at_bounds": box.at_bounds(out.params),
            "stability_limit": stability,
            "choice": {**choice.to_dict(), "lr": config.lr},
            "start_loss": out.start_loss,
            **out.diagnostics,
        },
        config={**config.to_dict(), "lr": config.lr, "optimizer_requested": options.get("optimizer", "auto")},
        data={
            "source": dataset.source,
            "path": origin,
            "n": len(dataset),
            "n_train": len(train),
            "n_val": 0 if val is None else len(val),
            "x": list(dataset.x_names),
            "y": dataset.y_name,
            "dtype": config.resolved_dtype,
            "device": str(device),
            "notes": notes,
            # gradfit plot checks the data read again against it (a row set is not read again)
            "fingerprint": None if is_row_set(dataset) else dataset_fingerprint(dataset),
            "weights": weights,
            **({"stream": True} if stream else {}),
            **reading,
        },
        timings={
            "elapsed": time.perf_counter() - started,
            "loop": out.elapsed,
            "steps_per_second": out.steps / out.elapsed if out.elapsed > 0 else 0.0,
        },
        run_id=run_id,
    )
    # Metrics (before assess: the report shows them), error bars, verdict; skipped, and said so, on Ctrl-C / SIGTERM.
    result = analyse(result, stop_request, built, loss, train, val, fixed, config, catch_signals, sums=out.sums)
    for cb in callbacks:
        if hasattr(cb, "on_end"):
            cb.on_end(result)
    return result


if fit.__doc__:  # None under python -OO
    fit.__doc__ = fit.__doc__.replace("{options}", options_doc(" " * 8))


def _grouped(model, data, group, config: FitConfig, options: dict, refused: dict, **given: Any) -> GroupedResult:
    """One fit per group (:mod:`gradfit.train.grouped`), its options checked before any reading."""
    from gradfit.train.grouped import check_grouped, fit_groups

    solver = check_grouped(config, options, refused)
    return fit_groups(model, data, group, solver, config, chunk_rows=options.get("chunk_size"), **given)


class _Problem:
    """What is descended: the model, loss, start and box, on scaled parameters when ``config.scale``.

    ``sample``: the training rows in memory, or evenly spaced rows of a row set, which the learning-rate rules
    read (they take at most that many evenly spaced rows of the training rows)."""

    def __init__(self, model, loss, train, params, fixed, box, sample, scaling=None):
        self.model, self.loss, self.train, self.params, self.fixed, self.box = model, loss, train, params, fixed, box
        self.sample, self.scaling = sample, scaling

    @classmethod
    def prepare(cls, model, loss, train, params, fixed, config: FitConfig, box, sample) -> _Problem:
        if not config.scale:
            return cls(model, loss, train, params, fixed, box, sample)
        from gradfit.train.scaling import Scaling

        x, y, w = rows_triple(train)
        s = Scaling.prepare(model, loss, x, y, params, fixed, bounds=box, w=w)
        return cls(s.model, s.loss, train, s.internal_start(), fixed, s.internal_bounds(box), sample, s)

    def learning_rate(self, config: FitConfig, choice) -> tuple[FitConfig, dict | None]:
        """``config`` with its lr set (given, from the stability limit or from the curvature) and the stability
        limit at the start (JSON-able, None where it does not apply); warns when a given lr exceeds the limit."""
        lr = config.lr
        if lr is None and choice.lr_rule == "curvature":
            from gradfit.analysis.stability import adam_lr

            lr = adam_lr(
                self.model,
                self.loss,
                self.sample.x,
                self.sample.y,
                self.params,
                self.fixed,
                w=self.sample.w,
                chunk_size=config.chunk_size,
            )
        stability = check_stability(
            self.model,
            self.loss,
            self.sample,
            self.params,
            self.fixed,
            config,
            lr,
            choose=lr is None and choice.lr_rule == "stability",
        )
        if lr is None and stability is not None and choice.lr_rule == "stability":
            lr = stability.get("suggested_lr")
        if lr is None:
            lr = default_lr(config.optimizer)
        return dataclasses.replace(config, lr=lr), stability

    def descend(self, val, config: FitConfig, callbacks, generator, **loop_options):
        """Run the loop; returns its output in the model's own units."""
        scaling, callbacks = self.scaling, list(callbacks)
        if scaling is not None:
            f = scaling.loss_factor
            callbacks = scaling.wrap_callbacks(callbacks)
            config = dataclasses.replace(
                config,
                target_loss=None if config.target_loss is None else config.target_loss / f,
                min_delta=config.min_delta / f,
            )
        out = _runner(config, self.loss)(
            self.model,
            self.loss,
            self.train,
            val,
            self.params,
            self.fixed,
            config,
            callbacks,
            generator,
            bounds=self.box,
            **loop_options,
        )
        if scaling is None:
            return out
        f = scaling.loss_factor
        return dataclasses.replace(
            out,
            sums=None,  # taken in the scaled parameters: not the model's own Jacobian
            params=scaling.to_external(out.params),
            loss=out.loss * f,
            start_loss=None if out.start_loss is None else out.start_loss * f,
            val_loss=None if out.val_loss is None else out.val_loss * f,
            history=scaling.history_to_external(out.history),
            diagnostics={**out.diagnostics, "scaling": scaling.describe()},
        )


def _runner(config: FitConfig, loss):
    """The loop for the chosen optimizer: torch.optim's, or Levenberg-Marquardt's for least squares."""
    return run_loop  # one loop; it picks Levenberg-Marquardt's stepper or torch.optim's (gradfit.train.steppers)


def _checkpointer(config: FitConfig, directory, resume, model, dataset, start, fixed, box, run_id: str = ""):
    """Where checkpoints go and the state to resume from, checked against this fit (None: neither)."""
    from gradfit.outputs import check_out_dir
    from gradfit.train.checkpoint import Checkpointer, check_identity, checkpoint_file, fit_identity, load_checkpoint

    if directory is None and resume is None:
        if config.checkpoint_every is not None:
            raise ConfigError(
                "checkpoint_every needs a folder to write to: give checkpoint_dir=... (the CLI uses --out)."
            )
        return None

    def identity() -> dict:  # computed only when needed: the data's fingerprint reads every row
        return fit_identity(model.describe(), dataset, config.to_dict(), start, fixed, box.to_dict())

    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        check_identity(state["identity"], identity(), resume)
    directory = directory if directory is not None else checkpoint_file(resume).parent
    return Checkpointer(check_out_dir(directory), config.checkpoint_every, identity, state, run_id=run_id)


def _flat(model, params) -> dict[str, float]:
    from gradfit.models.base import flatten_params

    return flatten_params(model.specs, params)
