"""The compiled chunk pass: a formula's fused pass (:mod:`gradfit.train.fused_pass`) through ``torch.compile``.

``torch.compile`` (Inductor, with the C++ compiler on a CPU) turns the fused pass of one chunk into one loop that
reads each column once and keeps the intermediate values in registers: no row-length temporary is written, so a
call takes :data:`ROWS_PER_CALL` rows (not the objective's chunk size, which bounds eager temporaries) and the
per-call overhead (~25 µs) stays small beside the work. Inductor sums a float reduction in cascade (pieces summed
separately, then combined), so the float32 sum over a call's million rows stays accurate to ~1e-7, and the calls'
sums are accumulated in float64 as every chunk's are. On one CPU thread a full-batch step of
``a*exp(-b*x) + c`` on 10^7 float32 rows took ~4.3 ms against ~28 ms for the eager fused pass (about 2x the
memory floor against 14x; ``bench/run.py --rows 3``).

One compile takes 15-75 s of a CPU in a fresh process (most of it the compiler's own start; later compiles in the
same process take a few seconds), so a fit takes it by itself only when the time saved over its whole budget
(rows × steps) is well beyond that (:func:`pays_back`): never for small problems. ``row_pass="compiled"`` asks
for it whatever the budget (a user who knows the fit is long, or runs many fits of one formula). Full-batch fits
only, whose calls have two shapes (:data:`ROWS_PER_CALL` and the remainder), each compiled once. The compiled
functions are kept per formula, parameters, loss, dtype and device for the rest of the process.

Where ``torch.compile`` is unavailable or fails (no compiler, an unsupported operation), the fit keeps the eager
fused pass and its ``diagnostics["row_pass"]`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from gradfit.train.fused_pass import FusedPass

#: Seconds one compile is expected to take, on the safe side (15-75 s measured on 2 shared cores).
COMPILE_SECONDS = 60.0
#: Seconds the compiled pass saves per row and step over the eager fused pass, on the safe side (~2.4 ns measured
#: on one thread for ``a*exp(-b*x) + c``; formulas with more operations save more).
SAVED_PER_ROW_STEP = 2e-9
#: Rows per call of the compiled pass: the call's overhead is ~1% of its work, and nothing row-sized is allocated.
ROWS_PER_CALL = 2**20
NAME = "compiled formula"

_CACHE: dict[tuple, Callable] = {}


def pays_back(rows: int, steps: int) -> bool:
    """Whether compiling saves more than twice its own cost over ``steps`` full-batch steps of ``rows`` rows."""
    return rows * steps * SAVED_PER_ROW_STEP > 2 * COMPILE_SECONDS


class CompiledPass:
    """The chunk pass of ``fused`` through ``torch.compile``, for the parameters ``trainable``.

    Call :meth:`warm_up` before the fit: it compiles for the chunks' shapes and says whether that worked.
    """

    name = NAME
    rows_per_call = ROWS_PER_CALL

    def __init__(self, fused: FusedPass, key: tuple, trainable: Sequence[str]):
        self.fused, self.key, self.trainable = fused, key, tuple(trainable)
        self.failure: str | None = None

    def _compiled(self) -> Callable:
        compiled = _CACHE.get(self.key)
        if compiled is None:
            fused, trainable = self.fused, self.trainable

            def chunk(params: Mapping[str, Tensor], x: Tensor, y: Tensor, w: Tensor | None):
                return fused(params, trainable, x, y, w)

            compiled = _CACHE[self.key] = torch.compile(chunk, dynamic=False)
        return compiled

    def warm_up(self, params: Mapping[str, Tensor], chunks: Sequence[tuple[Tensor, Tensor, Tensor | None]]) -> bool:
        """Compile for each chunk shape in ``chunks``; False (and :attr:`failure` set) when torch.compile fails."""
        try:
            compiled = self._compiled()
            for x, y, w in chunks:  # as the objective calls it (grad mode on), so the compiled guards hold
                compiled(params, x, y, w)
        except Exception as err:  # any failure of the compiler leaves the eager pass in charge
            self.failure = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            _CACHE.pop(self.key, None)
            return False
        return True

    def __call__(
        self, params: Mapping[str, Tensor], trainable: Sequence[str], x: Tensor, y: Tensor, w: Tensor | None
    ) -> tuple[Tensor, list[Tensor]]:
        if tuple(trainable) != self.trainable:
            return self.fused(params, trainable, x, y, w)
        return self._compiled()(params, x, y, w)


def compiled_pass(fused: FusedPass, model, loss, params: Mapping[str, Tensor], trainable, train):
    """The compiled pass of ``fused`` warmed up on ``train``'s call shapes, or the reason it could not be had."""
    chunk_size = CompiledPass.rows_per_call
    first = train.x[:chunk_size]
    key = (
        model.formula.text,
        tuple(model.inputs),
        tuple(sorted((model.aggregates or {}).items())),
        tuple(trainable),
        repr(loss.describe()),
        first.dtype,
        str(first.device),
        train.w is not None,
    )
    shapes = [(first, train.y[:chunk_size], None if train.w is None else train.w[:chunk_size])]
    rest = train.x.shape[0] % chunk_size
    if rest and train.x.shape[0] > chunk_size:
        tail = slice(train.x.shape[0] - rest, None)
        shapes.append((train.x[tail], train.y[tail], None if train.w is None else train.w[tail]))
    # The fit's parameters as its stepper will hold them (trainable ones require grad): what the guards compare.
    probe = {n: p.detach().clone().requires_grad_(n in trainable) for n, p in params.items()}
    chunk = CompiledPass(fused, key, trainable)
    return chunk if chunk.warm_up(probe, shapes) else chunk.failure
