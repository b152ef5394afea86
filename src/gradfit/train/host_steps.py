"""Blocks of steps in Python floats, for small fits served by sufficient statistics.

On 100 rows a step's arithmetic is a few dozen flops; what costs is the machinery around it: tensors made and read
back, torch.optim's call, the history's row. When nothing observes the steps in between (no callback, no
bounds), :class:`HostBlocks` runs up to :data:`BLOCK_STEPS` steps in one call: the loss and gradient from
:meth:`gradfit.train.linear_stats.LinearStats.host_sums` (and the validation loss, with early stopping, where the
validation rows have statistics too), the gradient rounded to the parameters' dtype, the optimizer's update (SGD
with momentum, dampening or Nesterov, and Adam: :mod:`gradfit.train.host_updates`) rounded as torch rounds it
(:mod:`gradfit.train.host_arith`), the stopping rules and early stopping asked at every step, and the rows,
snapshots, parameters and the optimizer's state written once per block. The numbers are those of stepping one
at a time, bit for bit. Adam's first step is the loop's own (it makes the optimizer's state).

A block never decides an unusual step: a non-finite loss or gradient, an update that overflows or leaves the
dtype's range end the block at the top of that step, and the loop's own step takes it (rollback and messages
included). A block ends before the next periodic checkpoint and at the budget, and is short, so Ctrl-C is seen
within a fraction of a millisecond; at its end the fit is in the state of a whole step.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from gradfit.rowpass import rows_triple
from gradfit.train.host_arith import Arith, arithmetic
from gradfit.train.host_updates import flat_entries, host_update, split_entries
from gradfit.train.linear_stats import LinearStats
from gradfit.train.steppers.gradient import TorchStepper, _hooked
from gradfit.train.stopping import StepState

__all__ = ["BLOCK_STEPS", "ENABLED", "NOT_RUN", "HostBlocks"]

#: Steps in one block at most (about a millisecond on a small fit: an interrupt waits no longer).
BLOCK_STEPS = 256
#: Whether fits may step in blocks (tests turn it off to compare with the step-at-a-time path).
ENABLED = True
NOT_RUN = "not run"  # HostBlocks.advance: nothing done, take the loop's own step


class HostBlocks:
    """The blocks of one fit (``fit``: the loop's :class:`gradfit.train.loop._Fit`); build with :meth:`of`."""

    def __init__(self, fit, arith: list[Arith], update):
        self.fit, self.update = fit, update
        self.stepper: TorchStepper = fit.stepper
        self.optimizer = self.stepper.optimizer
        self.leaves = self.stepper.leaves
        self.arith = arith  # per free entry
        self.sizes = [p.numel() for p in self.leaves]
        self.steps = 0  # steps taken in blocks
        self.columns: tuple[np.ndarray, np.ndarray] | None = None  # _snapshot_columns, at the first flush
        self.by_schedule = getattr(self.optimizer.step, "_wrapped_by_lr_sched", False)
        self.seen = StepState(0, 0.0, math.nan, math.nan, math.nan, math.nan, 0.0, fit.state.total, fit.params)

    @classmethod
    def of(cls, fit) -> HostBlocks | None:
        """The blocks for ``fit``, or None where its steps must be taken one at a time."""
        stepper = fit.stepper
        if (
            not ENABLED
            or fit.callbacks
            or not isinstance(stepper, TorchStepper)
            or stepper.bounds
            or stepper.optimizer is None
            or not _bound_statistics(fit)
            or fit.batches.batch < fit.batches.rows
            or fit.batches.per_epoch != 1
        ):
            return None
        arith = []
        for p in stepper.leaves:
            a = arithmetic(p.dtype) if p.device.type == "cpu" and 1 <= p.numel() <= 2 else None
            if a is None:
                return None
            arith.extend([a] * p.numel())
        update = host_update(stepper.optimizer, arith)
        # Settings no block computes (weight decay, amsgrad, ...) do not change during a fit: without this check
        # every step would ask advance() and be told NOT_RUN (a block still checks them, as a schedule may not).
        return cls(fit, arith, update) if update is not None and update.ready() else None

    def _snapshot_columns(self, fit) -> tuple[np.ndarray, np.ndarray]:
        """The snapshot row's values and its free columns: every entry of every parameter (spec order), fixed
        ones too, whose columns are set once; the free entries' columns are filled per step. Taken at the first
        block that records rows (a resumed fit's parameters are loaded by then) and kept: fixed parameters do not
        change during a fit."""
        row: list[float] = []
        free: list[int] = []
        at = 0
        trainable = set(self.stepper.trainable)
        for name in fit.spec_names:
            values = fit.params[name].detach().reshape(-1).to("cpu", torch.float64).tolist()
            if name in trainable:
                free.extend(range(at, at + len(values)))
            row.extend(values)
            at += len(values)
        return np.asarray(row, dtype=np.float64), np.asarray(free, dtype=np.int64)

    def _stats(self, data, grad: bool) -> LinearStats | None:
        """The host statistics that serve ``data``'s rows now (they are bound once, before the first step)."""
        path = self.fit.objective._path(*rows_triple(data), grad=grad)
        return path if isinstance(path, LinearStats) and path.host and path.names == self.stepper.trainable else None

    def _group(self) -> dict | None:
        """The optimizer's settings when its update is one the block computes (now: a schedule may change them,
        a hook may have been registered since), else None."""
        if not self.update.ready() or _hooked(self.optimizer) or self.stepper._step is self.optimizer.step:
            return None
        return self.optimizer.param_groups[0]

    def advance(self, fit) -> tuple[str, str] | None | str:
        """Steps from ``fit.state.step`` on, as :meth:`_Fit.advance` would take them: a ``(reason, message)`` that
        ends the fit, None to go on, or :data:`NOT_RUN` where the loop's own step must take this one."""
        stats, group = self._stats(fit.train, grad=True), self._group()
        val = self._stats(fit.val, grad=False) if fit.val is not None else None
        if stats is None or group is None or (fit.val is not None and val is None):
            return NOT_RUN
        state = fit.state
        end = min(state.total, state.step + BLOCK_STEPS)
        checkpoints = fit.checkpoints
        if checkpoints.directory and checkpoints.every:  # stop where the loop saves the next one
            end = min(end, (state.step // checkpoints.every + 1) * checkpoints.every)
        block = _Block(self, stats, val, group, state.step)
        outcome = block.run(end)
        if block.k == state.step and outcome is None and not block.rows:
            return NOT_RUN
        self._flush(block)
        return outcome

    def _flush(self, block: _Block) -> None:
        """Write the block's rows, snapshots, parameters, momentum buffers and loop state."""
        fit, state = self.fit, self.fit.state
        if block.rows:
            norms = torch.tensor(block.squares, dtype=torch.float64).sqrt_().tolist()  # torch's sqrt, as _norm's
            for row, norm in zip(block.rows, norms):
                row[5] = norm
            fit.recorder.add_rows(block.rows)
            if self.columns is None:
                self.columns = self._snapshot_columns(fit)
            fixed_row, free_columns = self.columns
            snaps = np.tile(fixed_row, (len(block.snaps), 1))
            snaps[:, free_columns] = block.snaps
            fit.recorder.add_snapshots([int(r[0]) for r in block.rows], snaps)
            fit.batches.take(int(block.rows[-1][0]))
            state.lr = block.rows[-1][4]
        moved = block.k - state.step
        if moved:
            with torch.no_grad():
                for p, values in zip(self.leaves, self._split(block.theta)):
                    p.copy_(torch.tensor(values, dtype=p.dtype).reshape(p.shape))
            state.previous = [
                torch.tensor(values, dtype=p.dtype).reshape(p.shape)
                for p, values in zip(self.leaves, self._split(block.previous))
            ]
            self.update.write(self.leaves, block.opt_state)
            state.still = block.still
            state.step = block.k
            self.steps += moved

    def _split(self, flat: list) -> list[list]:
        return split_entries(flat, self.leaves)


class _Block:
    """One block's running state: the free entries, momentum buffers, rows and snapshots so far."""

    def __init__(self, blocks: HostBlocks, stats: LinearStats, val: LinearStats | None, group: dict, k: int):
        self.blocks, self.stats, self.val, self.group, self.k = blocks, stats, val, group, k
        self.theta = flat_entries(p.detach() for p in blocks.leaves)
        self.previous = self.theta
        self.opt_state = blocks.update.read(blocks.leaves)
        self.still = blocks.fit.state.still
        self.rows: list[list] = []
        self.squares: list[float] = []
        self.snaps: list[list[float]] = []

    def run(self, end: int) -> tuple[str, str] | None:
        """Steps until ``end``, a stop, or a step the loop must take itself (then None, the block ends before it)."""
        blocks, stats, group = self.blocks, self.stats, self.group
        fit = blocks.fit
        arith, sizes = blocks.arith, blocks.sizes
        rules = fit.rules if fit.rules.rules else None
        val, early = self.val, fit.early
        seen, started, per_epoch = blocks.seen, fit.state.started, fit.batches.per_epoch
        scale = 2.0 / stats.count
        scheduler = blocks.stepper.scheduler
        while self.k < end:
            k, theta = self.k, self.theta
            loss, half = stats.host_sums(theta)
            try:
                grads = [a.rnd(scale * h) for a, h in zip(arith, half)]
            except OverflowError:
                return None
            squares = _squares(grads, sizes)
            if not (math.isfinite(loss) and math.isfinite(squares)):
                return None
            lr = group["lr"]
            update = self._update(grads, lr)
            if update is None:
                return None
            val_k = val.host_sums(theta)[0] if val is not None else math.nan
            elapsed = time.perf_counter() - started
            self.rows.append([k, k / per_epoch, loss, val_k, lr, math.nan, elapsed])
            self.squares.append(squares)
            self.snaps.append(theta)
            if early is not None and math.isfinite(val_k) and early.update(k, val_k, _ParamsAt(blocks, theta)):
                return "early_stopped", ""
            if rules is not None:
                seen.step, seen.epoch, seen.loss, seen.lr, seen.elapsed = k, k / per_epoch, loss, lr, elapsed
                seen.grad_norm = math.sqrt(squares)  # what the rules read of it: zero or not
                hit = rules.check(seen)
                if hit:
                    return hit, ""
            new, self.opt_state = update
            self.still = self.still + 1 if new == theta else 0
            self.previous, self.theta = theta, new
            if scheduler is not None:
                if blocks.by_schedule:
                    blocks.optimizer._opt_called = True
                scheduler.step()
            self.k = k + 1
        return None

    def _update(self, grads: list[float], lr: float) -> tuple[list[float], object] | None:
        """The optimizer's update of every free entry and its state (None where the loop's own step must take it:
        no state yet, a scalar beyond the dtype's range, a parameter that would leave the finite)."""
        try:
            update = self.blocks.update.step(self.theta, grads, lr, self.opt_state)
        except OverflowError:
            return None
        if update is None or not all(map(math.isfinite, update[0])):
            return None
        return update


def _bound_statistics(fit) -> bool:
    """Whether host statistics were bound to the training rows (before the first step, by gradfit.train.paths)."""
    x, y, w = rows_triple(fit.train)
    return any(isinstance(p, LinearStats) and p.host and p.serves(x, y, w) for p in fit.objective._bound)


class _ParamsAt:
    """The parameters at a step of the block, as tensors, made only when asked for (early stopping keeps the best
    parameters: a copy of each at the steps where the validation loss improved)."""

    def __init__(self, blocks: HostBlocks, theta: list[float]):
        self.blocks, self.theta = blocks, theta

    def items(self):
        blocks = self.blocks
        free = dict(zip(blocks.stepper.trainable, zip(blocks.leaves, blocks._split(self.theta))))
        for name, value in blocks.fit.params.items():
            if name in free:
                leaf, values = free[name]
                yield name, torch.tensor(values, dtype=leaf.dtype).reshape(leaf.shape)
            else:
                yield name, value


def _squares(grads: list[float], sizes: list[int]) -> float:
    """The float64 sum of squares :func:`gradfit.train.steppers.gradient._norm` takes (tensors of 1 or 2 entries),
    in its order: per tensor ``g0*g0 (+ g1*g1)``, added to the total tensor by tensor."""
    total, at = 0.0, 0
    for n in sizes:
        g0 = grads[at]
        total += g0 * g0 + grads[at + 1] * grads[at + 1] if n == 2 else g0 * g0
        at += n
    return total
