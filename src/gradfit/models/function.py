"""Models from a Python function (``f(x, a, b, ...)``, as scipy's curve_fit) or a ``torch.nn.Module``.

Examples
--------
>>> def decay(t, a, k=0.5):
...     return a * torch.exp(-k * t)
>>> model = CallableModel(decay, ["t"])
>>> model.param_names, [s.default for s in model.specs]
(('a', 'k'), [1.0, 0.5])
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from gradfit.errors import ModelError
from gradfit.models.base import Model, ParamSpec

_FORM = "f(x, a, b, ...): the inputs first, then one scalar parameter per argument"
_TORCH_HINT = (
    "The function must compute with torch operations (torch.exp instead of numpy.exp or "
    "math.exp) and return a tensor, so gradients can flow through it."
)


def _check_inputs(inputs: Sequence[str]) -> tuple[str, ...]:
    inputs = (inputs,) if isinstance(inputs, str) else tuple(str(i) for i in inputs)
    if not inputs or len(set(inputs)) != len(inputs):
        raise ModelError(f"The 'inputs' parameter must name one or more distinct columns. Got {list(inputs)} instead.")
    return inputs


class CallableModel(Model):
    """A model from a function ``f(x, a, b, ...)`` written with torch operations.

    The first positional parameter receives the inputs: ``x[:, 0]`` (shape ``(n,)``) when there is
    one input column, else the ``(n, k)`` tensor. Every further positional parameter is a scalar
    parameter of the fit; its default value in the signature is its initial value (1.0 when it has
    none). Keyword-only parameters keep their defaults and are not fitted.

    Parameters
    ----------
    f : callable
        ``f(x, a, b, ...) -> Tensor`` of shape ``(n,)`` (or a scalar, broadcast to ``(n,)``).
    inputs : sequence of str
        The input columns, in the order of ``x``'s columns.

    Raises
    ------
    ModelError
        ``f`` takes ``*args``/``**kwargs``, fewer than two positional parameters, keyword-only
        parameters without defaults, or a default that is not a number.
    """

    def __init__(self, f: Callable[..., Tensor], inputs: Sequence[str]):
        if not callable(f):
            raise ModelError(f"The model must be a callable of the form {_FORM}. Got {type(f).__name__} instead.")
        self.f = f
        self.name = getattr(f, "__name__", type(f).__name__)
        self.inputs = _check_inputs(inputs)
        self.n_outputs = 1
        try:
            signature = inspect.signature(f)
        except (TypeError, ValueError) as err:
            raise ModelError(f"Cannot read the signature of {self.name!r} ({err}). Write it as {_FORM}.") from None
        positional, problems = [], []
        for p in signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                problems.append(f"it takes {'*' if p.kind == p.VAR_POSITIONAL else '**'}{p.name}")
            elif p.kind == p.KEYWORD_ONLY and p.default is p.empty:
                problems.append(f"its keyword-only parameter {p.name!r} has no default")
            elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional.append(p)
        if len(positional) < 2:
            problems.append(f"it has {len(positional)} positional parameter(s), at least 2 are needed")
        if problems:
            raise ModelError(
                f"The function {self.name!r} cannot be a model: {'; '.join(problems)}. "
                f"Write it as {_FORM}, e.g. def f(x, a, b=0.0): return a * torch.exp(-x) + b."
            )
        specs = []
        for p in positional[1:]:
            default = 1.0 if p.default is p.empty else p.default
            if isinstance(default, Tensor) and default.numel() == 1:
                default = default.item()
            if isinstance(default, bool) or not isinstance(default, numbers.Real):
                raise ModelError(
                    f"The default of parameter {p.name!r} of {self.name!r} must be a number "
                    f"(its initial value). Got {p.default!r} instead."
                )
            specs.append(ParamSpec(p.name, (), float(default)))
        self._specs = tuple(specs)

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return self._specs

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        n = x.shape[0]
        arg = x[:, 0] if len(self.inputs) == 1 else x
        try:
            out = self.f(arg, *(params[s.name] for s in self._specs))
        except (TypeError, ValueError, RuntimeError) as err:
            text = str(err).lower()
            if "numpy" in text or "python scalar" in text:
                raise ModelError(f"The function {self.name!r} failed: {err}. {_TORCH_HINT}") from err
            raise
        if not isinstance(out, Tensor):
            raise ModelError(
                f"The function {self.name!r} returned {type(out).__name__}, not a torch tensor. {_TORCH_HINT}"
            )
        if out.shape not in ((), (1,), (n,)):
            raise ModelError(
                f"The function {self.name!r} must return one value per row, shape ({n},). "
                f"Got shape {tuple(out.shape)} instead."
            )
        return out.expand(n).to(x.dtype)

    def describe(self) -> dict:
        return {"kind": "callable", "name": self.name, "inputs": list(self.inputs)}


class ModuleModel(Model):
    """A model from a ``torch.nn.Module`` that maps an ``(n, k)`` tensor to ``(n,)``, ``(n, 1)`` or ``(n, c)``.

    The parameters are the module's trainable ``named_parameters()`` (names like ``0.weight``,
    shapes kept); their initial values are copies of the module's current values. The module is
    never mutated: the forward pass is ``torch.func.functional_call`` with the given parameters and
    private copies of the buffers and frozen (``requires_grad=False``) parameters, which stay fixed.
    Put the module in ``eval()`` mode first if it has dropout or batch norm.

    Parameters
    ----------
    module : torch.nn.Module
    inputs : sequence of str
        The input columns, in the order of ``x``'s columns.
    n_outputs : int, optional
        Output units; inferred by running the module on a ``(2, k)`` zero tensor when omitted.
    """

    network = True

    def __init__(self, module: torch.nn.Module, inputs: Sequence[str], n_outputs: int | None = None):
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"The model must be a torch.nn.Module. Got {type(module).__name__} instead.")
        self.module = module
        self.name = type(module).__name__
        self.inputs = _check_inputs(inputs)
        trainable = {k: p for k, p in module.named_parameters() if p.requires_grad}
        if not trainable:
            raise ModelError(f"The module {self.name!r} has no trainable parameters, so there is nothing to fit.")
        self._initial = {k: p.detach().clone() for k, p in trainable.items()}
        self._specs = tuple(
            ParamSpec(k, tuple(p.shape), None, doc="copied from the module") for k, p in trainable.items()
        )
        fixed: dict[str, Tensor] = {k: p for k, p in module.named_parameters() if not p.requires_grad}
        fixed.update(dict(module.named_buffers()))
        self._fixed = {k: t.detach().clone() for k, t in fixed.items()}
        self._fixed_cache: dict = {}
        if n_outputs is None:
            first = next(iter(self._initial.values()))
            probe = torch.zeros(2, len(self.inputs), dtype=first.dtype, device=first.device)
            try:
                with torch.no_grad():
                    out = self._call({k: v.clone() for k, v in self._initial.items()}, probe)
            except Exception as err:  # any failure here means the module does not fit the data's shape
                raise ModelError(
                    f"The module {self.name!r} failed on a (2, {len(self.inputs)}) input "
                    f"tensor (one column per input {list(self.inputs)}): {err}"
                ) from err
            n_outputs = 1 if out.ndim == 1 or out.shape[1:] == (1,) else int(out.shape[1])
        self.n_outputs = int(n_outputs)

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return self._specs

    def init_params(self, generator=None, dtype: torch.dtype = torch.float32, x=None, y=None) -> dict[str, Tensor]:
        """Copies of the module's parameter values (as they were when the model was built)."""
        return {k: v.clone().to(dtype) for k, v in self._initial.items()}

    def _fixed_for(self, x: Tensor) -> dict[str, Tensor]:
        key = (x.dtype, x.device)
        if key not in self._fixed_cache:
            self._fixed_cache[key] = {
                k: (t.to(x.device, x.dtype) if t.is_floating_point() else t.to(x.device)).clone()
                for k, t in self._fixed.items()
            }
        return self._fixed_cache[key]

    def _call(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        out = torch.func.functional_call(self.module, {**self._fixed_for(x), **params}, (x,))
        if not isinstance(out, Tensor) or out.ndim not in (1, 2) or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ModelError(
                f"The module {self.name!r} must return an (n,) or (n, c) tensor for n rows. "
                f"Got {shape} for {x.shape[0]} rows instead."
            )
        return out

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        out = self._call(params, x)
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

    def describe(self) -> dict:
        return {"kind": "module", "name": self.name, "inputs": list(self.inputs), "n_outputs": self.n_outputs}
