"""What a checkpoint must hold to be resumed: every field checked against the fit that resumes it.

:func:`gradfit.train.checkpoint.load_checkpoint` reads only tensors and plain data, and
:func:`gradfit.train.checkpoint.check_identity` makes sure the checkpoint belongs to this fit
(model, data, options, start). What is left is the state itself, which a damaged or edited
file can get wrong in ways that torch would notice only deep inside a step, or never: a
parameter missing (it would resume at its initial value), ``step`` saved as ``True`` (read as
step 1), an optimizer moment of the wrong shape, a NaN in the elapsed time, a history with a
column too few, a row interval of 0.

:func:`check_resumable` checks every field for presence, type, shape, dtype, finiteness and
range against the loop about to resume, before anything is restored, and loads the optimizer,
schedule and generator states into throwaway copies first (the optimizer takes one trial step
there), so whatever passes restores and steps without error. A failure is a
:class:`~gradfit.errors.DataError` that names the field: "the checkpoint ... is damaged: field
'recorder.row_every' is 0, ...".
"""

from __future__ import annotations

import copy
import inspect
import math

import torch

from gradfit.errors import DataError
from gradfit.problem import pack
from gradfit.train.checkpoint_values import (
    Damaged,
    describe,
    field,
    finite_number,
    first_line,
    integer,
    like,
    number,
    tensor,
)

__all__ = ["check_resumable"]

#: What a schedule moves in an optimizer's options, and the range it keeps them in.
_SCHEDULED = {"lr": (0.0, math.inf), "momentum": (0.0, 1.0), "betas": (0.0, 1.0)}
#: What a schedule's state holds about where it is, not how it is laid: everything else must be this fit's.
_SCHEDULE_POSITION = ("last_epoch", "_step_count", "_last_lr", "_is_initial", "_get_lr_called_within_step")


def check_resumable(
    saved: dict,
    *,
    params: dict,
    optimizer=None,
    scheduler=None,
    generator=None,
    early=None,
    rules=(),
    recorder=None,
    solver: dict | None = None,
) -> None:
    """Raise DataError naming the first field of ``saved`` that the loop cannot resume from.

    Parameters
    ----------
    saved : dict
        A checkpoint read by :func:`~gradfit.train.checkpoint.load_checkpoint`.
    params : dict of str to Tensor
        The loop's parameters (names, shapes and dtype the checkpoint must match).
    optimizer, scheduler, generator, early, rules, recorder
        The loop's own objects, freshly made (None where the loop has none).
    solver : dict, optional
        For Levenberg-Marquardt, whose state replaces the optimizer's: ``{"trainable": the free parameters'
        names}`` (its iterate is kept in float64 whatever the fit's dtype).
    """
    try:
        _check(saved, params, optimizer, scheduler, generator, early, rules, recorder, solver)
    except Damaged as exc:
        where = saved.get("file", "the checkpoint")
        raise DataError(
            f"Cannot resume: the checkpoint {where!r} is damaged: field {exc.field!r} {exc.problem}. "
            f"Start the fit afresh without --resume, or resume from an intact checkpoint."
        ) from None


def _check(saved, params, optimizer, scheduler, generator, early, rules, recorder, solver) -> None:
    step = integer(saved, "step", 0)
    run = field(saved, "run", str)  # the id of the run that wrote it (gradfit.run_schema.new_run_id), or none
    if run and not (len(run) == 16 and all(c in "0123456789abcdef" for c in run)):
        raise Damaged("run", f"is {run[:40]!r}, expected a run id of 16 hex digits")
    number(saved, "elapsed", 0.0)
    _params(field(saved, "params", dict), params, "params")
    if generator is not None:
        _generator(saved, generator)
    if solver is None:
        _optimizer(saved, optimizer, scheduler, step)
        _scheduler(saved, scheduler, step)
        leaves = [] if optimizer is None else [p for g in optimizer.param_groups for p in g["params"]]
        _previous(saved, leaves, step)
        integer(saved, "still", 0, step)
        integer(saved, "total", step)
        if saved.get("lm") is not None:
            raise Damaged("lm", "holds Levenberg-Marquardt's state, but this fit descends by gradient")
    else:
        _solver(field(saved, "lm", dict), solver, saved["params"])
        for key in ("optimizer", "scheduler", "previous", "still", "total"):  # what only a gradient descent keeps
            if saved.get(key) is not None:
                raise Damaged(key, f"is {describe(saved[key])}, but Levenberg-Marquardt keeps no such state")
    _early(saved, early, params, step)
    _rules(saved, rules)
    if recorder is not None:
        _recorder(field(saved, "recorder", dict), recorder, step)


# -- the fields ------------------------------------------------------------------------------------


def _params(value: dict, expected: dict, where: str) -> None:
    missing = [n for n in expected if n not in value]
    if missing:
        raise Damaged(where, f"lacks the parameter(s) {', '.join(map(repr, missing))}")
    extra = [str(n) for n in value if n not in expected]
    if extra:
        raise Damaged(where, f"holds parameter(s) this model does not have: {', '.join(map(repr, extra))}")
    for name, t in expected.items():
        tensor(value[name], f"{where}.{name}", shape=tuple(t.shape), dtype=t.dtype)


def _generator(saved: dict, generator: torch.Generator) -> None:
    reference = generator.get_state()
    state = tensor(field(saved, "generator"), "generator", shape=tuple(reference.shape), dtype=reference.dtype)
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise Damaged("generator", f"is not a random generator's state ({first_line(exc)})") from None


def _optimizer(saved: dict, optimizer, scheduler, step: int) -> None:
    if optimizer is None:
        if saved.get("optimizer") is not None:
            raise Damaged("optimizer", "holds a state, but every parameter of this fit is fixed")
        return
    state = field(saved, "optimizer", dict)
    groups = field(state, "param_groups", list, "optimizer.param_groups")
    reference = optimizer.state_dict()
    if len(groups) != len(reference["param_groups"]):
        raise Damaged(
            "optimizer.param_groups", f"has {len(groups)} group(s), expected {len(reference['param_groups'])}"
        )
    # The options are this fit's (the identity says so); only what a schedule moves may differ, within its range.
    moved = (
        set()
        if scheduler is None
        else {"lr", "momentum", "betas"}
        if getattr(scheduler, "cycle_momentum", False)
        else {"lr"}
    )  # the one-cycle policy cycles the momentum too
    for i, (group, ref) in enumerate(zip(groups, reference["param_groups"])):
        where = f"optimizer.param_groups.{i}"
        like(group, ref, where, exact=tuple(k for k in ref if k not in moved))
        for key in moved & set(ref):
            for v in group[key] if isinstance(group[key], (list, tuple)) else [group[key]]:
                lo, hi = _SCHEDULED[key]
                if not lo <= v < hi:
                    raise Damaged(f"{where}.{key}", f"is {group[key]!r}, expected values in [{lo}, {hi})")
    leaves = [p for g in optimizer.param_groups for p in g["params"]]
    flat = sum(p.numel() for p in leaves)
    per_param = field(state, "state", dict, "optimizer.state")
    # What the optimizer keeps per parameter: as built (step 0), or as one step leaves it (Adam's moments...).
    made = reference["state"] if step == 0 else _trial_step(optimizer, None, leaves)
    expected = {i: sorted(map(str, entry)) for i, entry in made.items()}
    found = {
        i: sorted(map(str, entry)) if isinstance(entry, dict) else describe(entry) for i, entry in per_param.items()
    }
    if found != expected:
        raise Damaged(
            "optimizer.state",
            f"holds {_summary(found)}; {type(optimizer).__name__} at step {step} keeps {_summary(expected)}",
        )
    for index, entry in per_param.items():
        where = f"optimizer.state.{index}"
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(leaves):
            raise Damaged(where, f"is the state of parameter number {index!r}; this fit has {len(leaves)}")
        if not isinstance(entry, dict):
            raise Damaged(where, f"is {describe(entry)}, expected a dict")
        # L-BFGS keeps flat vectors over all parameters (with the first one); the others, tensors like their own.
        shapes = {(), (1,), (flat,) if isinstance(optimizer, torch.optim.LBFGS) else tuple(leaves[index].shape)}
        for key, value in entry.items():
            # A list where the optimizer keeps one (L-BFGS's directions), a number or tensor elsewhere: the trial
            # step below may overwrite a value before using it (L-BFGS's H_diag), so it cannot be the only check.
            listed = isinstance(made.get(index, {}).get(key), (list, tuple))
            if listed != isinstance(value, (list, tuple)):
                raise Damaged(
                    f"{where}.{key}",
                    f"is {describe(value)}, expected {'a list' if listed else 'a finite number or a tensor'}",
                )
            _optimizer_value(value, f"{where}.{key}", shapes)
    _trial_step(optimizer, state, leaves)


def _optimizer_value(value, where: str, shapes: set) -> None:
    """An entry of an optimizer's per-parameter state: tensors of the parameter's (or the flat) shape, numbers."""
    if isinstance(value, (list, tuple)):  # L-BFGS keeps lists of directions (with None in unused slots)
        for i, item in enumerate(value):
            if item is not None:
                _optimizer_value(item, f"{where}.{i}", shapes)
    elif isinstance(value, torch.Tensor):
        if tuple(value.shape) not in shapes:
            raise Damaged(where, f"has shape {tuple(value.shape)}, expected one of {sorted(shapes, key=len)}")
        tensor(value, where)
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Damaged(where, f"is {describe(value)}, expected a finite number or a tensor")


def _trial_step(optimizer, state: dict | None, leaves: list) -> dict:
    """One step of a copy of the optimizer over copies of the parameters, from ``state`` (None: as built).

    Returns the copy's per-parameter state after the step.
    """
    copies = [p.detach().clone().requires_grad_(True) for p in leaves]
    # A toy loss whose minimum is one unit away from every entry: its gradient is never zero, so every optimizer
    # takes a whole step (L-BFGS at its minimum returns before keeping its directions: at the default start of
    # all ones, a minimum at 1 made a sound checkpoint look damaged).
    targets = [p.detach() + 1.0 for p in leaves]
    try:
        accepted = inspect.signature(type(optimizer).__init__).parameters  # AdamW's defaults hold more than it takes
        trial = type(optimizer)(copies, **{k: v for k, v in optimizer.defaults.items() if k in accepted})
        if state is not None:
            trial.load_state_dict(copy.deepcopy(state))

        def closure():
            trial.zero_grad()
            loss = sum(((c - t) ** 2).sum() for c, t in zip(copies, targets))
            loss.backward()
            return loss

        trial.step(closure)
    except Exception as exc:  # noqa: BLE001 - whatever torch says, the state cannot be resumed
        raise Damaged(
            "optimizer",
            f"cannot be loaded into {type(optimizer).__name__} or stepped ({type(exc).__name__}: {first_line(exc)})",
        ) from None
    if not all(bool(torch.isfinite(c).all()) for c in copies):
        raise Damaged("optimizer", "makes a step to non-finite parameters")
    return trial.state_dict()["state"]


def _summary(state: dict) -> str:
    if not state:
        return "no state"
    return "; ".join(f"parameter {i}: {', '.join(v) if isinstance(v, list) else v}" for i, v in state.items())


def _scheduler(saved: dict, scheduler, step: int) -> None:
    if scheduler is None:
        if saved.get("scheduler") is not None:
            raise Damaged("scheduler", "holds a schedule's state, but this fit has none")
        return
    state = field(saved, "scheduler", dict)
    # Laid over the same budget (TorchStepper.check_resume), a schedule's settings are this fit's to the bit;
    # only its position moves.
    reference = scheduler.state_dict()
    like(state, reference, "scheduler", exact=tuple(k for k in reference if k not in _SCHEDULE_POSITION))
    if state["last_epoch"] != step:
        raise Damaged("scheduler.last_epoch", f"is {state['last_epoch']}, expected the checkpoint's step {step}")
    # The schedule's last rates are the optimizer's rates (it sets them at every step).
    last = state.get("_last_lr")
    for i, group in enumerate(saved["optimizer"]["param_groups"] if isinstance(last, list) else ()):
        if group["lr"] != last[i]:
            raise Damaged(
                f"optimizer.param_groups.{i}.lr",
                f"is {group['lr']!r}, but field 'scheduler._last_lr.{i}', "
                f"the rate the schedule set, is {last[i]!r}: one of them was changed",
            )


def _previous(saved: dict, leaves: list, step: int) -> None:
    """The parameters before the last update (what a divergence on the next step falls back to)."""
    previous = saved.get("previous")
    if previous is None:
        if step > 0 and leaves:
            raise Damaged(
                "previous", "is missing: a checkpoint after the first step keeps the parameters before the last update"
            )
        return
    if not isinstance(previous, list) or len(previous) != len(leaves):
        raise Damaged("previous", f"is {describe(previous)}, expected None or a list of {len(leaves)} tensor(s)")
    for i, (value, leaf) in enumerate(zip(previous, leaves)):
        tensor(value, f"previous.{i}", shape=tuple(leaf.shape), dtype=leaf.dtype)


def _solver(state: dict, solver: dict, params: dict) -> None:
    """Levenberg-Marquardt's iterate, trust region and counters; its iterate is the saved free parameters."""
    free = pack(params, solver["trainable"])
    p = tensor(field(state, "p", where="lm.p"), "lm.p", shape=(free.numel(),), dtype=torch.float64)
    if not torch.equal(p.to(free.dtype), free):  # the parameters are the iterate, in the fit's dtype
        raise Damaged("lm.p", "differs from the saved parameters")
    if "diag" not in state:
        raise Damaged("lm.diag", "is missing")
    if state["diag"] is not None:
        # The scaling D is a running maximum of the Jacobian's column norms, zeros replaced by 1, and the trust
        # radius is laid in the norm it scales: both strictly positive once the first iteration has set them.
        diag = tensor(state["diag"], "lm.diag", shape=(free.numel(),), dtype=torch.float64)
        if not bool((diag > 0).all()):
            raise Damaged("lm.diag", "has entries <= 0, expected the Jacobian's column norms (> 0)")
        if number(state, "delta", 0.0, where="lm.delta") == 0.0:
            raise Damaged("lm.delta", "is 0, expected a trust radius > 0")
    elif not isinstance(field(state, "delta", where="lm.delta"), float):  # set afresh by the first iteration
        raise Damaged("lm.delta", f"is {describe(state['delta'])}, expected a number")
    for key in ("sum_squares", "lam"):
        number(state, key, 0.0, where=f"lm.{key}")
    for key in ("n_fev", "n_jev"):
        integer(state, key, 0, where=f"lm.{key}")


def _early(saved: dict, early, params: dict, step: int) -> None:
    state = saved.get("early")
    if early is None:
        if state is not None:
            raise Damaged("early", "holds early stopping's state, but this fit does not stop early")
        return
    state = field(saved, "early", dict)
    reference = vars(early)
    for key in ("patience", "min_delta"):
        if field(state, key, where=f"early.{key}") != reference[key]:
            raise Damaged(f"early.{key}", f"is {state[key]!r}, but this fit has {reference[key]!r}")
    best = field(state, "best", where="early.best")
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best) or best == -math.inf:
        raise Damaged("early.best", f"is {describe(best)}, expected a number (inf before the first check)")
    integer(state, "best_step", 0, step, where="early.best_step")
    integer(state, "bad", 0, early.patience, where="early.bad")
    if state.get("best_params") is not None:
        _params(field(state, "best_params", dict, "early.best_params"), params, "early.best_params")
    elif "best_params" not in state:
        raise Damaged("early.best_params", "is missing")


def _rules(saved: dict, rules) -> None:
    state = field(saved, "rules", dict)
    by_name = {type(r).__name__: r for r in rules}
    unknown = sorted(str(k) for k in state if k not in by_name)
    if unknown:
        raise Damaged("rules", f"names rules this fit does not have: {', '.join(map(repr, unknown))}")
    for name, rule in by_name.items():
        expected = {k for k in ("previous", "running") if hasattr(rule, k)}
        if not expected and name not in state:
            continue  # a rule without state (a target loss, a time limit)
        entry = field(state, name, dict, f"rules.{name}")
        if set(entry) != expected:
            raise Damaged(f"rules.{name}", f"holds {sorted(map(str, entry))}, expected {sorted(expected)}")
        if "previous" in entry:
            v = entry["previous"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
                raise Damaged(f"rules.{name}.previous", f"is {describe(v)}, expected a number (inf before the first)")
        if "running" in entry:
            running = entry["running"]
            if not isinstance(running, list) or not all(finite_number(v) for v in running):
                raise Damaged(f"rules.{name}.running", f"is {describe(running)}, expected a list of finite numbers")


def _recorder(state: dict, recorder, step: int) -> None:
    from gradfit.train.history import COLUMNS

    row_every = integer(state, "row_every", 1, where="recorder.row_every")
    if row_every & (row_every - 1):
        raise Damaged("recorder.row_every", f"is {row_every}, expected a power of two (the rows are thinned by halves)")
    snapshot_every = integer(state, "snapshot_every", 1, where="recorder.snapshot_every")
    ratio, rest = divmod(snapshot_every, recorder.snapshot_every)
    if rest or ratio & (ratio - 1):
        raise Damaged(
            "recorder.snapshot_every", f"is {snapshot_every}, expected {recorder.snapshot_every} times a power of two"
        )
    rows = tensor(field(state, "rows", where="recorder.rows"), "recorder.rows", dtype=torch.float64, finite=False)
    if rows.dim() != 2 or rows.shape[1] != len(COLUMNS):
        raise Damaged(
            "recorder.rows",
            f"has shape {tuple(rows.shape)}, expected (rows, {len(COLUMNS)}): the columns {', '.join(COLUMNS)}",
        )
    for i, name in enumerate(COLUMNS):
        if name not in ("val_loss", "lr") and not bool(torch.isfinite(rows[:, i]).all()):
            raise Damaged(f"recorder.rows.{name}", "holds NaN or infinite values")
    _steps(rows[:, 0], "recorder.rows.step", row_every, step)
    names = len(recorder.param_names)
    snap_steps = tensor(
        field(state, "snap_steps", where="recorder.snap_steps"), "recorder.snap_steps", dtype=torch.int64
    )
    if snap_steps.dim() != 1:
        raise Damaged("recorder.snap_steps", f"has shape {tuple(snap_steps.shape)}, expected (snapshots,)")
    _steps(snap_steps, "recorder.snap_steps", snapshot_every, step)
    tensor(
        field(state, "snaps", where="recorder.snaps"),
        "recorder.snaps",
        shape=(len(snap_steps), names),
        dtype=torch.float64,
    )


def _steps(steps: torch.Tensor, where: str, every: int, step: int) -> None:
    """The steps of the kept rows (or snapshots): every multiple of ``every`` before the checkpoint's step, as the
    recorder keeps them (it thins by doubling ``every``), so a row removed, added or moved is seen."""
    expected = torch.arange(0, step, every, dtype=torch.float64)
    values = steps.to(torch.float64)
    if values.shape != expected.shape or not torch.equal(values, expected):
        raise Damaged(
            where,
            f"holds {len(values)} step(s) ({_span(values)}); at step {step}, keeping every {every}, "
            f"the recorder holds {len(expected)} ({_span(expected)})",
        )


def _span(values: torch.Tensor) -> str:
    if not len(values):
        return "none"
    shown = ", ".join(f"{v:g}" for v in values[:3].tolist())
    return shown + (f", ..., {values[-1].item():g}" if len(values) > 3 else "")
