"""FormulaModel: a model from a formula string; data columns are inputs, other names parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from gradfit.errors import ModelError
from gradfit.models.base import Model, ParamSpec
from gradfit.models.formula import Formula, compile_formula


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

    def __init__(self, formula: str | Formula, columns: Sequence[str] | None = None,
                 inputs: Sequence[str] | None = None):
        self.formula = formula if isinstance(formula, Formula) else compile_formula(formula)
        self.name = self.formula.text.strip()
        names = self.formula.names
        if inputs is not None:
            inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
            for name in inputs:
                if name not in names:
                    raise ModelError(f"The input {name!r} does not occur in the formula {self.name!r}. "
                                     f"The formula's names are: {', '.join(names) or '(none)'}. "
                                     "Pass only names the formula uses as inputs.")
            if len(set(inputs)) != len(inputs):
                raise ModelError(f"The inputs must be distinct. Got {list(inputs)} instead.")
            self.inputs = inputs
        else:
            columns = {columns} if isinstance(columns, str) else set(columns or ())
            self.inputs = tuple(n for n in names if n in columns)
        params = [n for n in names if n not in self.inputs]
        if not params:
            raise ModelError(f"The formula {self.name!r} has no free parameter to fit; names that are data "
                             f"columns are inputs: {', '.join(self.inputs) or '(none)'}. Add a parameter "
                             "(a name that is not a column), e.g. 'a*x + b'.")
        self._specs = tuple(ParamSpec(n, (), default=1.0) for n in params)

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return self._specs

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """Predictions ``(n,)`` for ``x`` of shape ``(n, len(inputs))``."""
        if x.ndim != 2 or x.shape[1] != len(self.inputs):
            raise ModelError(f"The model {self.name!r} expects x of shape (n, {len(self.inputs)}) with columns "
                             f"{list(self.inputs)}. Got shape {tuple(x.shape)} instead.")
        env: dict[str, Tensor | float] = dict(params)
        env.update({name: x[:, i] for i, name in enumerate(self.inputs)})
        dtype = x.dtype if x.is_floating_point() else None
        out = self.formula.evaluate(env, dtype=dtype, device=x.device)
        try:
            # A constant or reduced formula gives a scalar: one prediction per row, still differentiable.
            return out.broadcast_to((x.shape[0],))
        except RuntimeError:
            raise ModelError(f"The formula {self.name!r} gave values of shape {tuple(out.shape)}; expected one "
                             f"value per row ({x.shape[0]},). Are the parameters scalars?") from None

    def describe(self) -> dict:
        return {"kind": "formula", "formula": self.name, "inputs": list(self.inputs)}
