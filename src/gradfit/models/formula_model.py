"""FormulaModel: a model from a formula string; data columns are inputs, other names parameters.

``sum()`` and ``mean()`` of an expression of data columns (``a*(x - mean(x)) + b``) are over all
the rows the model is fitted on, whatever the chunks and batches the fit evaluates: the fit
calls :meth:`FormulaModel.with_data` with its training rows, which computes them once, in
float64, over chunks of rows, and keeps them (in ``describe()``, so a saved run predicts new rows
with the same values, as a fitted scaler would). A ``sum()``/``mean()`` over rows of an
expression with a parameter (``sum(a*x)``) would need every row at every evaluation, which a
chunked or mini-batch fit cannot give, so it is refused.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradfit.errors import FormulaError, ModelError
from gradfit.models.base import Model, ParamSpec
from gradfit.models.formula import Formula, compile_formula
from gradfit.rowpass import RowSet, reduce, rows_of


class FormulaModel(Model):
    """A model from a formula: data columns are inputs, every other free name is a parameter.

    Parameters
    ----------
    formula : str or Formula
        E.g. ``"a*t**2 + b*t + c"``.
    columns : sequence of str, optional
        The data's column names; the formula names among them become the inputs.
    inputs : sequence of str, optional
        The inputs, explicitly (each must occur in the formula); overrides ``columns``.

    Every parameter is a scalar starting at 1.0 (as scipy's ``curve_fit`` does).

    Examples
    --------
    >>> m = FormulaModel("a*t**2 + b*t + c", columns=["t", "y"])
    >>> m.inputs, m.param_names
    (('t',), ('a', 'b', 'c'))
    """

    n_outputs = 1

    def __init__(
        self, formula: str | Formula, columns: Sequence[str] | None = None, inputs: Sequence[str] | None = None
    ):
        self.formula = formula if isinstance(formula, Formula) else compile_formula(formula)
        self.name = self.formula.text.strip()
        names = self.formula.names
        if inputs is not None:
            inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
            for name in inputs:
                if name not in names:
                    raise ModelError(
                        f"The input {name!r} does not occur in the formula {self.name!r}. "
                        f"The formula's names are: {', '.join(names) or '(none)'}. "
                        "Pass only names the formula uses as inputs."
                    )
            if len(set(inputs)) != len(inputs):
                raise ModelError(f"The inputs must be distinct. Got {list(inputs)} instead.")
            self.inputs = inputs
        else:
            data_columns = {columns} if isinstance(columns, str) else set(columns or ())
            self.inputs = tuple(n for n in names if n in data_columns)
        params = [n for n in names if n not in self.inputs]
        if not params:
            raise ModelError(
                f"The formula {self.name!r} has no free parameter to fit; names that are data "
                f"columns are inputs: {', '.join(self.inputs) or '(none)'}. Add a parameter "
                "(a name that is not a column), e.g. 'a*x + b'."
            )
        self._specs = tuple(ParamSpec(n, (), default=1.0) for n in params)
        self.aggregates: dict[int, float] | None = None
        self._over_rows = self._row_reductions(params)

    def _row_reductions(self, params: list[str]) -> tuple[int, ...]:
        """The reductions that run over rows (their argument uses a data column); refuses those with a parameter."""
        over = []
        inputs = set(self.inputs)
        for r in self.formula.reductions:
            if not inputs & set(r.row_names):
                continue  # a reduction of parameters or numbers: a scalar, the same for every chunk
            used = [n for n in r.names if n in params]
            if used:
                raise FormulaError(
                    f"{r.text} runs over rows and depends on the parameter{'s' if len(used) > 1 else ''} "
                    f"{', '.join(used)}. {r.function}() of data columns is computed once over all the rows the model is "
                    f"fitted on; one that changes with the parameters would need every row at every step, which "
                    f"chunks of rows and mini-batches cannot give. Take the parameters outside ({r.function}(x)*a, "
                    f"not {r.function}(a*x)) or write the model as a Python function.",
                    formula=self.formula.text,
                    offset=r.span[0],
                    length=r.span[1],
                )
            over.append(r.index)
        return tuple(over)

    def row_width(self) -> int:
        return len(self.inputs) + self.formula.size + 2

    def with_data(self, x: Tensor | RowSet) -> FormulaModel:
        """This model with its ``sum()``/``mean()`` over rows computed over all the rows of ``x`` (a copy).

        The sums run in float64 over chunks of :data:`gradfit.rowpass.CHUNK_ROWS` rows; the model is returned
        unchanged when it has no such reduction.

        Examples
        --------
        >>> m = FormulaModel("a*(t - mean(t))", columns=["t"]).with_data(torch.tensor([[1.0], [2.0], [6.0]]))
        >>> m.aggregates, m({"a": torch.tensor(1.0)}, torch.tensor([[0.0]])).tolist()
        ({0: 3.0}, [-3.0])
        """
        if not self._over_rows:
            return self
        values: dict[int, float] = {}
        for k in self._over_rows:  # inner ones first: an outer sum uses their values

            def part(xc, _y, _w, k=k):
                env = {name: xc[:, i] for i, name in enumerate(self.inputs)}
                total, n = self.formula.reduction_total(
                    k, env, dtype=xc.dtype if xc.is_floating_point() else None, aggregates=values
                )
                return total.cpu(), torch.tensor(float(n), dtype=torch.float64)

            total, count = reduce(part, rows_of(x)) or (torch.zeros((), dtype=torch.float64), 0)
            reduction = self.formula.reductions[k]
            values[k] = float(total / count) if reduction.function == "mean" else float(total)
            if not math.isfinite(values[k]):
                raise ModelError(
                    f"{reduction.text} over the {len(x):,} rows is {values[k]} (float64 overflows "
                    f"or the rows give no number), so the formula {self.name!r} cannot be fitted to "
                    f"them. Rescale the columns it uses."
                )
        return self._with_aggregates(values)

    def _with_aggregates(self, values: Mapping[int, float]) -> FormulaModel:
        out = copy.copy(self)
        out.aggregates = dict(values)
        return out

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return self._specs

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """Predictions ``(n,)`` for ``x`` of shape ``(n, len(inputs))``."""
        if x.ndim != 2 or x.shape[1] != len(self.inputs):
            raise ModelError(
                f"The model {self.name!r} expects x of shape (n, {len(self.inputs)}) with columns "
                f"{list(self.inputs)}. Got shape {tuple(x.shape)} instead."
            )
        env: dict[str, Tensor | float] = dict(params)
        env.update({name: x[:, i] for i, name in enumerate(self.inputs)})
        dtype = x.dtype if x.is_floating_point() else None
        out = self.formula.evaluate(env, dtype=dtype, device=x.device, aggregates=self.aggregates)
        try:
            # A constant or reduced formula gives a scalar: one prediction per row, still differentiable.
            return out.broadcast_to((x.shape[0],))
        except RuntimeError:
            raise ModelError(
                f"The formula {self.name!r} gave values of shape {tuple(out.shape)}; expected one "
                f"value per row ({x.shape[0]},). Are the parameters scalars?"
            ) from None

    def describe(self) -> dict:
        out: dict[str, object] = {"kind": "formula", "formula": self.name, "inputs": list(self.inputs)}
        if self.aggregates is not None:  # what with_data computed, so a saved run predicts with the same values
            out["aggregates"] = [
                {"text": self.formula.reductions[k].text, "value": v} for k, v in sorted(self.aggregates.items())
            ]
        return out

    @classmethod
    def from_description(cls, spec: Mapping) -> FormulaModel:
        """The model :meth:`describe` described, its aggregates included."""
        model = cls(spec["formula"], inputs=spec.get("inputs"))
        saved = spec.get("aggregates")
        if saved is None:
            return model
        if (
            not isinstance(saved, list)
            or len(saved) != len(model._over_rows)
            or not all(isinstance(a, Mapping) and isinstance(a.get("value"), (int, float)) for a in saved)
        ):
            raise ModelError(
                f"The saved aggregates of the formula {model.name!r} do not match its sum()/mean() over "
                f"rows ({len(model._over_rows)} expected). Refit to save them again."
            )
        return model._with_aggregates({k: float(a["value"]) for k, a in zip(model._over_rows, saved)})
