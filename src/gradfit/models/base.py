"""The model protocol: a pure function of (named parameters, inputs).

A :class:`Model` knows its parameters (names, shapes, default initial values) and maps
``params`` (a mapping of name to tensor) and ``x`` (an ``(n, k)`` tensor whose columns are
``model.inputs`` in that order) to predictions: ``(n,)`` for one output, ``(n, c)`` for
``c`` outputs (class logits, say). State lives in the training loop, never in the model, so
the same forward function serves the autograd loop, Jacobians and vectorised grids.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gradfit.errors import ModelError


@dataclass(frozen=True)
class ParamSpec:
    """One named parameter: its shape and documented default initial value.

    ``default`` is a number (broadcast over the shape), or ``None`` for a seeded random
    initialisation (normal with standard deviation ``scale``, as seed 002 does with
    ``torch.randn``).
    """

    name: str
    shape: tuple[int, ...] = ()
    default: float | None = 1.0
    scale: float = 1.0
    doc: str = ""

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def flat_names(self) -> list[str]:
        """Names of the scalar entries: ``a`` for a scalar, ``a[0]``, ``a[1]`` for a vector."""
        if self.shape == ():
            return [self.name]
        idx = torch.arange(self.size).reshape(self.shape)
        out = []
        for flat in range(self.size):
            pos = [int(i) for i in (idx == flat).nonzero()[0]]
            out.append(f"{self.name}[{','.join(map(str, pos))}]")
        return out


class Model(abc.ABC):
    """Base class of every model. Subclasses define ``specs``, ``inputs`` and ``forward``.

    Attributes
    ----------
    name : str
        Short description shown in reports (``"a*t**2 + b*t + c"``, ``"linear"``).
    inputs : tuple of str
        The data columns the model reads, in the order of ``x``'s columns.
    n_outputs : int
        1 for a regression curve, the number of classes for logits.
    network : bool
        A neural network (many weights, no meaningful single optimum): ``optimizer="auto"`` gives it Adam.
    """

    name: str = "model"
    inputs: tuple[str, ...] = ()
    n_outputs: int = 1
    network: bool = False

    @property
    @abc.abstractmethod
    def specs(self) -> tuple[ParamSpec, ...]:
        """The parameters, in a fixed order."""

    @abc.abstractmethod
    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """Predictions for inputs ``x`` (``(n, len(inputs))``) under ``params``."""

    def __call__(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        return self.forward(params, x)

    # -- parameters -------------------------------------------------------------------------

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def spec(self, name: str) -> ParamSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise ModelError(
            f"The model {self.name!r} has no parameter {name!r}. "
            f"Its parameters are: {', '.join(self.param_names) or '(none)'}."
        )

    def flat_names(self) -> list[str]:
        return [n for s in self.specs for n in s.flat_names()]

    def guess(self, x: Tensor | None, y: Tensor | None) -> dict[str, float | Tensor]:
        """Data-informed starting values (override in models that can guess). Empty by default."""
        return {}

    def init_params(
        self,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        x: Tensor | None = None,
        y: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Initial values: the model's guess from the data if any, else each spec's default.

        Random defaults draw from ``generator`` in spec order, so a seed fixes them.
        """
        guessed = self.guess(x, y) if x is not None else {}
        out: dict[str, Tensor] = {}
        for s in self.specs:
            if s.name in guessed:
                out[s.name] = torch.as_tensor(guessed[s.name], dtype=dtype).expand(s.shape).clone()
            elif s.default is None:
                out[s.name] = torch.randn(s.shape, generator=generator, dtype=torch.float64).to(dtype) * s.scale
            else:
                out[s.name] = torch.full(s.shape, float(s.default), dtype=dtype)
        return out

    def describe(self) -> dict:
        """A JSON-able description; ``gradfit.models.build_model`` rebuilds it when possible."""
        return {"kind": type(self).__name__, "name": self.name, "inputs": list(self.inputs)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} params={list(self.param_names)} inputs={list(self.inputs)}>"


def flatten_params(specs: Sequence[ParamSpec], params: Mapping[str, Tensor]) -> dict[str, float]:
    """``{"a[0]": 3.0, "a[1]": 2.0, "b": 1.5}`` from named tensors."""
    out: dict[str, float] = {}
    for s in specs:
        values = torch.as_tensor(params[s.name]).detach().reshape(-1).double().cpu().tolist()
        out.update(zip(s.flat_names(), values))
    return out


def unflatten_params(specs: Sequence[ParamSpec], flat: Mapping[str, float], dtype=torch.float64) -> dict[str, Tensor]:
    """The inverse of :func:`flatten_params`."""
    out = {}
    for s in specs:
        values = [flat[n] for n in s.flat_names()]
        out[s.name] = torch.tensor(values, dtype=dtype).reshape(s.shape)
    return out
