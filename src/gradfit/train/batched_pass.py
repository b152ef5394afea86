"""The loss and gradient of K members over the same rows, in one pass.

Members are independent fits of one model to one set of rows; their parameters carry a leading K
dimension. Three ways to the K losses and gradients, the first that applies serving:

- **sufficient statistics** (:class:`gradfit.train.linear_stats.LinearStats`) when the model is linear in its
  free parameters under the mse: O(K p²) per step, whatever the number of rows, the path a single fit of
  such a model takes too;
- **compiled fused formula** (asked for with ``row_pass="compiled"``): the batched fused pass below (broadcast) through
  ``torch.compile`` (a compile for the first shape, and one with dynamic shapes at the second: another number of
  running members or the last call's rows; none after; seconds each, won back only by long sweeps), which writes
  no member-row temporaries; where the compile fails, the eager fused pass serves (``dynamic=True`` from the start
  fails in float32, where Inductor meets a symbolic float);
- **fused formula**: a formula's fused chunk pass (:mod:`gradfit.train.fused_pass`, the pass a single fit of the
  formula takes) for all members at once: by broadcasting each parameter as a ``(K, 1)`` column against the rows
  (:mod:`gradfit.train.member_formula`), or, for a loss without a member slope there or a function that does not
  broadcast, batched by ``torch.func.vmap``: no autograd graph, a few tensor operations per chunk for all members;
- **vmap**: ``torch.func.vmap`` of ``grad_and_value`` of one member's summed loss over a chunk of rows, so
  every member's predictions come from one batched forward over the chunk (the model's forward is batched
  by torch, not looped over members), and the chunks' sums are added in float64 as in
  :mod:`gradfit.rowpass`;
- **members one by one**: the same sums by plain autograd per member, for a model whose forward vmap
  cannot batch (Python control flow on values, ``.item()``); the fallback, and the reference the tests
  hold the vmap path to.

Each gives ``(losses (K,) float64, [gradient (K, ...) per free parameter, in its dtype])``, means over the rows
(weighted when the rows are), as :class:`gradfit.train.objective.Objective` does for one fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from gradfit.allocator import keep_freed_memory
from gradfit.rowpass import chunk_rows, reduce, row_count, rows_of
from gradfit.train.member_formula import member_formula

Sums = tuple[Tensor, list[Tensor]]
#: Member-rows (members x rows) of one chunk of the batched paths: their temporaries (1 MB in float64) stay in
#: the caches, and the allocator keeps their memory for the next chunk (:mod:`gradfit.allocator`; mapped afresh, it
#: cost 6-8x the arithmetic); 256 members x 512 rows measured fastest, 1.5x faster than 10^4 rows at once.
CHUNK_NUMBERS = 2**17
#: Member-rows of one call of the compiled pass, which writes no member-row temporaries (as
#: gradfit.train.compiled_pass.ROWS_PER_CALL for one fit).
COMPILED_NUMBERS = 2**20


class MemberRows:
    """The mean loss and its gradient for each of K members, over rows ``(x, y, w)`` held in memory.

    Parameters
    ----------
    model, loss
        The model (``model(params, x)``) and the loss (``loss.total(pred, y, w)``) of every member.
    x, y, w : Tensor
        The rows (``w`` None when unweighted).
    trainable : sequence of str
        The free parameters, in the order of the gradients returned.
    chunk_size : int, optional
        Rows per chunk (the fit's ``chunk_size``).
    stats : LinearStats, optional
        Sufficient statistics of these rows: then they answer, the rows are not read.
    fused : FusedPass, optional
        The formula's fused chunk pass (:func:`gradfit.train.fused_pass.fused_pass`), batched over the members.
    compiled : bool
        Take the fused pass through ``torch.compile`` (``row_pass="compiled"``).
    members : int
        K, which sets the rows per chunk of the batched paths (:data:`CHUNK_NUMBERS` member-rows, at most
        ``chunk_size`` rows).
    """

    def __init__(
        self,
        model,
        loss,
        x,
        y,
        w,
        trainable: Sequence[str],
        chunk_size=None,
        stats=None,
        fused=None,
        members=1,
        compiled=False,
    ):
        self.model, self.loss, self.x, self.y, self.w = model, loss, x, y, w
        self.trainable = list(trainable)
        self.chunk_size, self.stats, self.fused = chunk_size, stats, fused
        self.batched_rows = max(64, min(chunk_rows(chunk_size), CHUNK_NUMBERS // max(1, members)))
        self.count = row_count(x, w)
        self.path = "sufficient_statistics" if stats is not None else "fused formula" if fused is not None else "vmap"
        if self.path == "fused formula" and compiled:
            self.path = "compiled fused formula"
        self.compiled_rows = max(64, COMPILED_NUMBERS // max(1, members))
        self.broadcast = member_formula(fused, loss)
        keep_freed_memory()  # every chunk's (members x rows) temporaries reuse the last one's memory
        self._compiled: Callable | None = None
        self.failure: str | None = None  # why the compile failed, where it did

    # -- the public pair ---------------------------------------------------------------------------

    def value_and_grad(self, params: Mapping[str, Tensor], members: Tensor | None = None) -> Sums:
        """The K mean losses (float64) and their gradients with respect to the free parameters (``members``: which of
        the K these are, when not all; unused here: every member reads the same rows)."""
        if self.stats is not None:
            return self._stats(params, grad=True)
        if self.path == "compiled fused formula":
            try:
                if self._compiled is None:
                    eager = self.broadcast or _vmapped_fused(self.fused, self.trainable)
                    self._compiled = torch.compile(eager, dynamic=None)
                return self._sum(self._compiled, params, self.compiled_rows)
            except Exception as err:  # any failure of the compiler leaves the eager pass in charge
                self.failure = f"{type(err).__name__}: {err}"
                self.path = "fused formula"
        if self.path == "fused formula" and self.broadcast is not None:
            try:
                return self._sum(self.broadcast, params, self.batched_rows)
            except (RuntimeError, NotImplementedError, TypeError, ValueError):
                self.broadcast = None  # a formula whose functions do not broadcast: the vmapped fused pass
        if self.path == "fused formula":
            try:
                return self._sum(_vmapped_fused(self.fused, self.trainable), params, self.batched_rows)
            except (RuntimeError, NotImplementedError, TypeError, ValueError):
                self.path = "vmap"  # a formula the batched fused pass refuses: autograd, batched
        if self.path == "vmap":
            try:
                return self._sum(_vmapped(self._member_total), params, self.batched_rows)
            except (RuntimeError, NotImplementedError, TypeError, ValueError):
                self.path = "members"  # a forward vmap cannot batch: every later call goes member by member
        return self._sum(self._one_by_one, params, self.chunk_size)

    def value(self, params: Mapping[str, Tensor]) -> Tensor:
        """The K mean losses (float64), no gradient."""
        if self.stats is not None:
            return self._stats(params, grad=False)[0]
        return self.value_and_grad(params)[0]

    # -- the paths ---------------------------------------------------------------------------------

    def _stats(self, params: Mapping[str, Tensor], grad: bool) -> Sums:
        stats = self.stats
        theta = torch.cat([params[n].detach().double().reshape(params[n].shape[0], -1) for n in stats.names], 1)
        d = theta - stats.theta
        Ad = d @ stats.A  # A is symmetric: each row is A d
        total = stats.c + (d * (Ad - 2 * stats.g)).sum(1)
        if stats.overflow < float("inf"):  # a float32 fit's row sums overflow there; so does this
            total = torch.where(total > stats.overflow, torch.full_like(total, float("inf")), total)
        losses = total / stats.count
        if not grad:
            return losses, []
        half = (Ad - stats.g) * (2.0 / stats.count)
        sizes = [params[n][0].numel() for n in stats.names]
        by_name = dict(zip(stats.names, torch.split(half, sizes, dim=1)))
        return losses, [by_name[n].reshape(params[n].shape).to(params[n].dtype) for n in self.trainable]

    def _member_total(self, free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        """One member's summed loss over a chunk (vmap adds the members)."""
        pred = self.model({**rest, **free}, x)
        return self.loss.total(pred, y) if w is None else self.loss.total(pred, y, w)

    def _one_by_one(self, free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> Sums:
        totals, grads = [], []
        for k in range(next(iter(free.values())).shape[0] if free else 0):
            mine = {n: v[k].detach().requires_grad_(True) for n, v in free.items()}
            with torch.enable_grad():
                total = self._member_total(mine, {n: v[k] for n, v in rest.items()}, x, y, w)
                grads.append(torch.autograd.grad(total, list(mine.values()), allow_unused=True))
            totals.append(total.detach())
        stacked = [
            torch.stack([g if g is not None else torch.zeros_like(free[n][0]) for g in column])
            for n, column in zip(free, zip(*grads))
        ]
        return torch.stack(totals), stacked

    def _sum(self, per_chunk: Callable, params: Mapping[str, Tensor], chunk_size) -> Sums:
        """``per_chunk``'s sums over the chunks, added in float64, divided by the row count."""
        free = {n: params[n].detach() for n in self.trainable}
        rest = {n: v.detach() for n, v in params.items() if n not in free}

        def part(xc, yc, wc):
            total, grads = per_chunk(free, rest, xc, yc, wc)
            return (total, *grads)

        total, *acc = reduce(part, rows_of(self.x, self.y, self.w, chunk_size))
        return total / self.count, [(a / self.count).to(free[n].dtype) for a, n in zip(acc, self.trainable)]


def _vmapped(member_total: Callable) -> Callable:
    """Every member's summed loss and gradient over a chunk, in one batched call."""
    from torch.func import grad_and_value, vmap

    batched = vmap(grad_and_value(member_total), in_dims=(0, 0, None, None, None))

    def per_chunk(free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> Sums:
        grads, total = batched(free, rest, x, y, w)
        return total, [grads[n] for n in free]

    return per_chunk


def _vmapped_fused(fused: Callable, trainable: list[str]) -> Callable:
    """The fused chunk pass of every member over a chunk, in one batched call."""
    from torch.func import vmap

    def member(free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        return fused({**rest, **free}, trainable, x, y, w)

    batched = vmap(member, in_dims=(0, 0, None, None, None))

    def per_chunk(free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> Sums:
        total, grads = batched(free, rest, x, y, w)
        return total, list(grads)

    return per_chunk
