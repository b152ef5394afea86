"""A sweep's members prepared as :func:`gradfit.fit` prepares one fit, then run as one batched fit.

The preparation is the front door's, step by step and with its own checks (reading, the dataset, the model,
the optimizer's dtype, the start drawn from each member's seed), so a member starts where its own fit would;
then :func:`gradfit.train.batched_loop.run_members` runs them all.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from gradfit.errors import ConfigError, DataError


@dataclass
class Members:
    """What :func:`fit_members` returns to :func:`gradfit.experiments.sweeps.sweep`."""

    rows: list[dict]
    history: np.ndarray
    param_names: list[str]
    row_pass: str


def fit_members(model, data, configs: list[dict], common: dict, options: dict) -> Members:
    """Prepare the rows, model and starts once, run every member of ``configs`` and tabulate them."""
    from gradfit.train.batched_loop import Rules, run_members
    from gradfit.train.batched_pass import MemberRows
    from gradfit.train.batched_steps import KINDS, BatchedUpdates
    from gradfit.train.config import DEFAULT_STEPS
    from gradfit.train.paths import linear_statistics

    first = configs[0]["config"]
    prepared = _prepare(model, data, common, first)
    built, loss, train, fixed, dtype = (prepared[k] for k in ("model", "loss", "train", "fixed", "dtype"))
    starts = {seed: _start(prepared, common, seed) for seed in sorted({c["seed"] for c in configs})}
    K = len(configs)
    params = {s.name: torch.stack([starts[c["seed"]][s.name] for c in configs]).contiguous() for s in built.specs}
    trainable = [n for n in built.param_names if n not in fixed]
    total = first.epochs if first.epochs is not None else (DEFAULT_STEPS if first.steps is None else first.steps)
    _check_memory(K, total, params, dtype)
    x, y, w = train.x, train.y, train.w
    one = {n: v[0] for n, v in params.items()}
    stats = linear_statistics(built, loss, train, one, fixed, first, total)
    fused = _fused(built, loss, one, first) if stats is None else None
    compiled = wants_compile(first.row_pass, fused is not None, K * len(x), total)
    rows = MemberRows(built, loss, x, y, w, trainable, first.chunk_size, stats, fused, K, compiled)
    momentum = [_momentum(c) for c in configs]
    kinds = [c["optimizer"] for c in configs]
    assert all(k in KINDS for k in kinds)
    updates = BatchedUpdates(
        kinds, [c["lr"] for c in configs], momentum, [params[n].shape for n in trainable], dtype, x.device
    )
    out = run_members(rows, params, trainable, updates, Rules(total, first.tol, first.target_loss))
    budget = "max_epochs" if first.epochs is not None else "max_steps"
    names = built.flat_names()
    flat = torch.cat([out.params[s.name].reshape(K, -1).double() for s in built.specs], 1).cpu().tolist()
    table = _table(configs, out, flat, names, budget, prepared["dtype_name"])
    return Members(table, out.history.cpu().numpy(), names, rows.path)


def _check_memory(K: int, total: int, params: dict, dtype) -> None:
    """A MemoryBudgetError before a sweep whose histories (K x steps, float64) and per-member state would not fit."""
    from gradfit.memory import require

    size = sum(v[0].numel() for v in params.values())
    item = 8 if dtype == torch.float64 else 4
    require(
        [
            ("the members' loss histories (members x steps, float64)", 8.0 * K * (total + 1)),
            ("the members' parameters and optimizer state", 6.0 * K * size * item),
        ],  # fmt: skip
        f"a sweep of {K} members over {total} steps",
        "Use fewer members (learning rates, optimizers, seeds) or fewer steps.",
    )


def _fused(model, loss, params: dict, config):
    """The formula's fused chunk pass where a fit of it would take one (never with ``row_pass="autograd"``)."""
    from gradfit.train.fused_pass import FusedPass, fused_pass

    if config.row_pass == "autograd":
        return None
    found = fused_pass(model, loss, params)
    return found if isinstance(found, FusedPass) else None


def _table(configs, out, flat, names, budget: str, dtype_name: str) -> list[dict]:
    from gradfit.train.batched_loop import REASONS

    losses, starts = out.losses.cpu().tolist(), out.start.cpu().tolist()
    steps, codes = out.steps.cpu().tolist(), out.codes.cpu().tolist()
    table = []
    for k, c in enumerate(configs):
        reason = REASONS[codes[k]]
        reason = budget if reason == "budget" else reason
        reason = _verdict(reason, steps[k], starts[k], losses[k], dtype_name)
        row = {"member": k, "optimizer": c["optimizer"], "lr": c["lr"], "seed": c["seed"]}
        row.update(loss=losses[k], start_loss=starts[k], steps=steps[k], stop_reason=reason)
        row.update(zip(names, flat[k]))
        table.append(row)
    return table


def wants_compile(row_pass: str, fused: bool, member_rows: int, steps: int) -> bool:
    """Whether the members' fused formula pass goes through ``torch.compile``: when asked (``row_pass="compiled"``),
    or by the rule a single fit follows (:func:`gradfit.train.compiled_pass.pays_back`) when its work, members x
    rows x steps, wins the compile back twice over (``"auto"``); never for ``"autograd"`` or without a fused pass."""
    from gradfit.train.compiled_pass import pays_back

    if not fused or row_pass == "autograd":
        return False
    return row_pass == "compiled" or pays_back(member_rows, steps)


def _verdict(reason: str, steps: int, start: float, final: float, dtype_name: str) -> str:
    """``loss_increased`` where the fit's verdict says so (gradfit.analysis.convergence): a loss that ended above
    its finite start by more than the dtype's slack; the loop's reason otherwise."""
    if reason == "diverged" or (reason in ("max_steps", "max_epochs") and steps == 0) or not math.isfinite(start):
        return reason
    slack = (1e-6 if dtype_name == "float32" else 1e-12) * max(abs(start), 1e-300)
    return "loss_increased" if not math.isfinite(final) or final > start + slack else reason


def _momentum(c: dict) -> float:
    from gradfit.train.batched_steps import KINDS

    given = c["config"].momentum
    return KINDS[c["optimizer"]] if given is None else float(given)


def _prepare(model, data, common: dict, config) -> dict:
    """The rows, model, loss and dtype of the sweep, as :func:`gradfit.fit` prepares them (its own steps,
    :mod:`gradfit.preparation`)."""
    from gradfit.data.weights import check_training_rows
    from gradfit.losses import check_weighting, get_loss
    from gradfit.models.builder import build_model
    from gradfit.models.names import check_declared, declared_params
    from gradfit.preparation import device_of, dtype_of, n_outputs_of, narrowed, open_rows, plan_fit
    from gradfit.rowpass import is_row_set
    from gradfit.train.footprint import check_fit_memory
    from gradfit.train.initial_values import fixed_names

    if is_row_set(data):
        raise ConfigError("A sweep reads its rows into memory: give a file, a table or arrays, not a row set.")
    loss = get_loss(config.loss, **config.loss_options)
    declared = declared_params(common["params"], common["init"])
    opened = open_rows(
        data, model, common["x"], common["y"], declared, config, False, common["read"], common["drop_nan"],
        common["sigma"], common["weights"], common["absolute_sigma"],
    )  # fmt: skip
    dataset = opened[0]
    check_weighting(loss, dataset.weighting)
    if dataset.y_name is None or dataset.y is None:
        raise DataError("A fit needs targets: name the target column with y=... (--y COLUMN in the CLI).")
    built = build_model(model, dataset.x_names, n_outputs=n_outputs_of(loss, dataset.y, len(dataset.x_names)),
                        **dict(common["model_options"] or {}))  # fmt: skip
    check_declared(built, common["params"])
    loss.check_targets(dataset.y, built.n_outputs)
    fixed = fixed_names(built, common["fix"])
    choice = plan_fit(config, loss, built, fixed, dataset)
    config = dataclasses.replace(config, optimizer=choice.optimizer, dtype=choice.dtype, scale=choice.scale)
    dtype, device = dtype_of(choice.dtype), device_of(config.device)
    check_fit_memory(built, dataset, config, 8 if dtype == torch.float64 else 4, fixed, device)
    train = narrowed(dataset.columns(list(built.inputs)), device, dtype)
    check_training_rows(train)
    built = built.with_data(train.x)
    return {"model": built, "loss": loss, "train": train, "fixed": fixed, "dtype": dtype,
            "dtype_name": choice.dtype, "device": device}  # fmt: skip


def _start(prepared: dict, common: dict, seed: int) -> dict:
    """The start :func:`gradfit.fit` would take with this seed (drawn from its generator when random)."""
    from gradfit.train.bounds import Bounds
    from gradfit.train.initial_values import initial_params

    built, train = prepared["model"], prepared["train"]
    generator = torch.Generator().manual_seed(seed)
    start = initial_params(built, common["init"], generator, prepared["dtype"], x=train.x, y=train.y)
    start = {k: v.to(prepared["device"]) for k, v in start.items()}
    Bounds(built, None).check_start(start)
    return start
