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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gradfit.errors import ModelError
from gradfit.rowpass import RowSet


@dataclass(frozen=True)
class ParamSpec:
    """One named parameter: its shape and documented default initial value.

    ``default`` is a number (broadcast over the shape), or ``None`` for a seeded random
    initialisation (normal with standard deviation ``scale``, as seed 002 does with
    ``torch.randn``). ``labels`` names the entries of a vector parameter (``("bmi", "bp",
    "intercept")``): they are then called ``a[bmi]``, ``a[bp]``, ``a[intercept]`` everywhere
    (results, history, reports), and ``a[0]``, ``a[1]``, ... is still accepted wherever a user
    names an entry.
    """

    name: str
    shape: tuple[int, ...] = ()
    default: float | None = 1.0
    scale: float = 1.0
    doc: str = ""
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.labels is not None and (len(self.shape) != 1 or len(self.labels) != self.shape[0]):
            raise ValueError(
                f"labels of {self.name!r} must name each entry of a vector; got {len(self.labels)} "
                f"labels for shape {self.shape}"
            )

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def flat_names(self) -> list[str]:
        """Names of the scalar entries: ``a`` for a scalar, ``a[0]``, ``a[1]`` for a vector."""
        if self.shape == ():
            return [self.name]
        if self.labels is not None:
            return [f"{self.name}[{label}]" for label in self.labels]
        # Row-major positions, as reshape(-1) orders the values; linear in the size (an MLP's
        # 256 x 256 weight has 65,536 entries).
        index = np.unravel_index(np.arange(self.size), self.shape)
        return [f"{self.name}[{','.join(map(str, pos))}]" for pos in zip(*(i.tolist() for i in index))]


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

    def entry(self, key: str) -> tuple[str, tuple[int, ...] | None]:
        """``"a"`` -> ``("a", None)``; ``"a[1]"`` or ``"a[bp]"`` (a labelled entry) -> ``("a", (1,))``.

        The name is not checked (callers say which option named it); an index is returned as
        written, and a label that is not one of the parameter's raises ModelError.
        """
        key = str(key).strip()
        m = _ENTRY.match(key)
        if not m:
            return key, None
        name, inner = m["name"].strip(), m["inner"].strip()
        if _INDEX.match(inner):
            return name, tuple(int(i) for i in inner.split(","))
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            return name, None
        if spec.labels is not None and inner in spec.labels:
            return name, (spec.labels.index(inner),)
        known = ", ".join(spec.flat_names()[:12]) + (", ..." if spec.size > 12 else "")
        raise ModelError(
            f"{key!r} names no entry of the parameter {name!r}. Its entries are: {known} "
            f"(or by position, {name}[0], {name}[1], ...)."
        )

    def flat_key(self, key: str) -> str:
        """The name results use for the entry ``key``: ``"a[0]"`` -> ``"a[bmi]"`` when entries are labelled.

        A key that names no entry is returned unchanged, for the caller's own message.
        """
        try:
            name, index = self.entry(key)
        except ModelError:
            return str(key).strip()
        spec = next((s for s in self.specs if s.name == name), None)
        if (
            spec is None
            or index is None
            or len(index) != len(spec.shape)
            or any(not 0 <= i < d for i, d in zip(index, spec.shape))
        ):
            return str(key).strip()
        return spec.flat_names()[sum(i * k for i, k in zip(index, _strides(spec.shape)))] if index else name

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

    def row_width(self) -> int:
        """About how many numbers one row holds in a forward pass (inputs, intermediate values, outputs).

        An estimate for the memory budget (:mod:`gradfit.memory`): a chunk of ``m`` rows holds
        about ``m * row_width()`` numbers, and autograd keeps them for the backward pass.
        """
        return len(self.inputs) + 2 * self.n_outputs + 8

    def with_data(self, x: Tensor | RowSet) -> Model:
        """The model to fit on the rows ``x``: itself, or a copy holding what it computes over all of them.

        A formula's ``sum()``/``mean()`` of data columns are such statistics (see
        :mod:`gradfit.models.formula_model`): computed here once, they stay the same in every chunk
        and batch the fit evaluates. ``gradfit.fit`` calls this with the training rows.
        """
        return self

    def describe(self) -> dict:
        """A JSON-able description; ``gradfit.models.build_model`` rebuilds it when possible."""
        return {"kind": type(self).__name__, "name": self.name, "inputs": list(self.inputs)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} params={list(self.param_names)} inputs={list(self.inputs)}>"


_ENTRY = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<inner>[^\[\]]+)\]$")
_INDEX = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")


def _strides(shape: tuple[int, ...]) -> list[int]:
    return [math.prod(shape[i + 1 :]) for i in range(len(shape))]


def index_names(spec: ParamSpec) -> list[str]:
    """The entries' names by position (``a[0]``, ``a[1]``), whether or not the parameter has labels."""
    return ParamSpec(spec.name, spec.shape).flat_names()


class ParamValues(dict):
    """Flat parameter values by name that also answer to the index form of labelled entries.

    ``values["a[0]"]`` is ``values["a[bmi]"]`` when the entries of ``a`` are labelled; the keys
    (and so iteration, JSON and equality) are the labelled names only.
    """

    def __init__(self, values: Mapping[str, float], aliases: Mapping[str, str]):
        super().__init__(values)
        self.aliases = dict(aliases)

    def __missing__(self, key):
        if key in self.aliases:
            return self[self.aliases[key]]
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or key in self.aliases

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __reduce__(self):
        return (type(self), (dict(self), self.aliases))


def flatten_params(specs: Sequence[ParamSpec], params: Mapping[str, Tensor]) -> dict[str, float]:
    """``{"a[0]": 3.0, "a[1]": 2.0, "b": 1.5}`` from named tensors (labelled entries by label, see ParamValues)."""
    out: dict[str, float] = {}
    aliases: dict[str, str] = {}
    for s in specs:
        values = torch.as_tensor(params[s.name]).detach().reshape(-1).double().cpu().tolist()
        out.update(zip(s.flat_names(), values))
        if s.labels is not None:
            aliases.update(zip(index_names(s), s.flat_names()))
    return ParamValues(out, aliases) if aliases else out


def unflatten_params(specs: Sequence[ParamSpec], flat: Mapping[str, float], dtype=torch.float64) -> dict[str, Tensor]:
    """The inverse of :func:`flatten_params`; labelled entries may also be given by index (runs saved before labels)."""
    out = {}
    for s in specs:
        names = s.flat_names()
        if s.labels is not None and not all(n in flat for n in names):
            names = index_names(s)
        values = [flat[n] for n in names]
        out[s.name] = torch.tensor(values, dtype=dtype).reshape(s.shape)
    return out
