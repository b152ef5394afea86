"""The model zoo: ready-made models by name (``linear``, ``poly3``, ``gaussian``, ``mlp``, ...).

Every zoo model documents its formula, parameters and default initial values, and the
one-input curves guess starting values from the data so a fit from defaults usually
converges: each curve is linear in some parameters once the others are fixed, so the guess
tries a grid of the nonlinear ones and solves for the linear ones by least squares. ``describe()`` returns the keyword
arguments of :func:`make_zoo_model` plus ``kind``, so a description rebuilds its model.

Examples
--------
>>> model = make_zoo_model("linear", ["x"])
>>> params = {"a": torch.tensor([3.0, 2.0])}
>>> model(params, torch.tensor([[0.0], [1.0]])).tolist()
[2.0, 5.0]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradfit.aliases import ALIASES, closest
from gradfit.errors import ModelError
from gradfit.models.base import Model, ParamSpec
from gradfit.models.guess import guess_exponential, guess_gaussian, guess_power, guess_sigmoid, guess_sine

ZOO_NAMES: tuple[str, ...] = (
    "linear",
    "poly",
    "exponential",
    "sigmoid",
    "gaussian",
    "power",
    "sine",
    "logistic",
    "mlp",
)
"""The zoo's names; ``polyN`` (``poly2``, ``poly3``, ...) is a polynomial of degree N."""

_ALIASES = ALIASES["model"]
_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "gelu": torch.nn.functional.gelu}


class ZooModel(Model):
    """Base of the zoo models: option checking, input counting and ``describe()``."""

    zoo_name = ""
    options: dict = {}  # the accepted options and their defaults
    one_input = True
    multi_output = False

    def __init__(self, inputs: Sequence[str], n_outputs: int = 1, **options):
        if isinstance(inputs, str):
            inputs = [inputs]
        self.inputs = tuple(str(i) for i in inputs)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise ModelError(
                f"The zoo model {self.zoo_name!r} got unknown option(s) {', '.join(map(repr, unknown))}. "
                f"Its options are: {accepted}."
            )
        if self.one_input and len(self.inputs) != 1:
            raise ModelError(
                f"The zoo model {self.zoo_name!r} takes exactly one input column. Got "
                f"{len(self.inputs)} ({', '.join(self.inputs) or 'none'}) instead; pick one x column, "
                f"or use 'linear' or 'mlp' for several inputs."
            )
        if not self.inputs:
            raise ModelError(f"The zoo model {self.zoo_name!r} needs at least one input column. Got none.")
        if len(set(self.inputs)) != len(self.inputs):
            raise ModelError(f"The input columns must be distinct. Got {list(self.inputs)} instead.")
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
            raise ModelError(f"The 'n_outputs' parameter must be an integer >= 1. Got {n_outputs!r} instead.")
        if n_outputs != 1 and not self.multi_output:
            raise ModelError(
                f"The zoo model {self.zoo_name!r} has one output. Got n_outputs={n_outputs} instead; "
                f"use 'linear', 'logistic' or 'mlp' for several outputs."
            )
        self.n_outputs = n_outputs
        self.opts = {**self.options, **options}
        self._specs = self._make_specs()
        self.name = self.zoo_name
        check_size(
            self.zoo_name,
            sum(s.size for s in self._specs),
            len(self._specs),
            self._size_words(),
            "Use fewer input columns or outputs (cross_entropy makes one output per class 0..C-1).",
        )

    def _size_words(self) -> str:
        """What makes the model this big, for a memory message."""
        return f"{self.n_outputs:,} outputs" if self.n_outputs > 1 else ""

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return self._specs

    def _make_specs(self) -> tuple[ParamSpec, ...]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "kind": "zoo",
            "name": self.zoo_name,
            "inputs": list(self.inputs),
            "n_outputs": self.n_outputs,
            **self.opts,
        }


#: Memory a named parameter costs beyond its numbers (its spec, names, 0-d tensors, autograd nodes and optimizer
#: state): measured 6.8 kB for each scalar coefficient of a degree-100,000 polynomial through one Adam step.
SPEC_BYTES = 8192


def check_size(name: str, n_values: int, n_specs: int, why: str = "", advice: str = "") -> None:
    """Refuse, before any tensor exists, a model whose parameters alone exceed the memory budget (in float32, the
    least a fit holds; :mod:`gradfit.train.footprint` then counts the whole fit)."""
    from gradfit.memory import require

    require(
        [("their values in float32", 4 * n_values), ("one Python object per named parameter", SPEC_BYTES * n_specs)],
        f"the zoo model {name!r}{f' with {why}' if why else ''}, which has {n_values:,} parameters",
        advice,
    )


class _Affine(ZooModel):
    one_input = False
    multi_output = True
    param = "a"

    def row_width(self) -> int:
        return len(self.inputs) + 1 + 3 * self.n_outputs  # [x, 1], the outputs and their gradients

    def _make_specs(self):
        k = len(self.inputs) + 1
        shape = (k,) if self.n_outputs == 1 else (k, self.n_outputs)
        labels = coefficient_labels(self.inputs) if self.n_outputs == 1 else None
        return (ParamSpec(self.param, shape, 0.0, doc="weights of the inputs, then the bias (last)", labels=labels),)

    def forward(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        return torch.cat([x, ones], dim=1) @ params[self.param]


def coefficient_labels(inputs: Sequence[str]) -> tuple[str, ...] | None:
    """Labels for the weights of ``inputs`` and the intercept: ``("bmi", "bp", "intercept")``.

    None (entries named by position, ``a[0]``, ``a[1]``) when the columns carry no more than their
    position: the seeds' single column ``x`` (``y = x @ a``, where ``a[0]`` is the slope and
    ``a[1]`` the intercept) and the ``x0, x1, ...`` gradfit gives the columns of an unnamed array.
    Also None when a label could not be written back unambiguously (empty, a number, holding
    ``[ ] , =``, or twice the same, e.g. a column called ``intercept``).
    """
    inputs = tuple(str(i) for i in inputs)
    if inputs == ("x",) or inputs == tuple(f"x{i}" for i in range(len(inputs))):
        return None
    labels = (*inputs, "intercept")
    if len(set(labels)) != len(labels) or any(
        not label.strip() or label != label.strip() or label.isdigit() or set(label) & set("[],=") for label in labels
    ):
        return None
    return labels


class Linear(_Affine):
    """``linear``: ``y = [x, 1] @ a`` (the seeds' model), for any number of inputs.

    Parameter ``a`` of shape ``(k + 1,)`` (``(k + 1, n_outputs)`` for several outputs): one weight
    per input column, then the intercept (the ones column is last). The entries are named after
    their columns, ``a[bmi]``, ``a[bp]``, ..., ``a[intercept]`` (see :func:`coefficient_labels`);
    ``a[0]``, ``a[1]``, ... name them by position everywhere a user names an entry. For the seeds'
    one column ``x``, ``a[0]`` is the slope and ``a[1]`` the intercept. Default initial value 0.
    """

    zoo_name = "linear"


class Logistic(_Affine):
    """``logistic``: logistic regression, logits ``[x, 1] @ w``, for any number of inputs.

    With ``n_outputs=1`` the output is ``(n,)`` logits of class 1 (use the ``bce`` loss) and the
    entries of ``w`` are named after their columns as ``linear``'s are; with
    ``n_outputs=C >= 2``, ``w`` has shape ``(k + 1, C)`` and the output is ``(n, C)`` logits (use
    ``cross_entropy``). Default initial value 0.
    """

    zoo_name = "logistic"
    param = "w"


class Poly(ZooModel):
    """``polyN``: ``y = c0 + c1*x + ... + cN*x**N`` (one input; ``poly`` takes ``degree``, default 2).

    Scalar parameters ``c0 .. cN``, ``c_k`` multiplying ``x**k``. Default initial value 0.
    """

    zoo_name = "poly"
    options = {"degree": 2}

    def _make_specs(self):
        degree = self.opts["degree"]
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ModelError(f"The 'degree' of a polynomial must be an integer >= 1. Got {degree!r} instead.")
        check_size(
            f"poly{degree}",
            degree + 1,
            degree + 1,
            f"degree {degree:,}",  # before a spec per coefficient
            "Choose a lower degree (a polynomial of high degree is also ill-conditioned: a spline or another "
            "curve fits better).",
        )
        # A canonical name (poly3, no options) so describe() round-trips either spelling.
        self.zoo_name, self.opts = f"poly{degree}", {}
        return tuple(ParamSpec(f"c{k}", (), 0.0, doc=f"coefficient of x**{k}") for k in range(degree + 1))

    def forward(self, params, x):
        t = x[:, 0]
        names = self.param_names
        out = params[names[-1]] * torch.ones_like(t)
        for name in reversed(names[:-1]):  # Horner: fewer roundings than summing powers
            out = out * t + params[name]
        return out


class Exponential(ZooModel):
    """``exponential``: ``y = a * exp(b * x) + c``.

    Defaults ``a=1, b=1, c=0``. Guess: for each rate ``b`` on a grid scaled to the x range,
    ``a`` and ``c`` by linear least squares; the best-fitting triple.
    """

    zoo_name = "exponential"

    def _make_specs(self):
        return (
            ParamSpec("a", (), 1.0, doc="scale"),
            ParamSpec("b", (), 1.0, doc="rate"),
            ParamSpec("c", (), 0.0, doc="offset"),
        )

    def forward(self, params, x):
        return params["a"] * torch.exp(params["b"] * x[:, 0]) + params["c"]

    def guess(self, x, y):
        return guess_exponential(x, y)


class Sigmoid(ZooModel):
    """``sigmoid``: the logistic curve ``y = L / (1 + exp(-k * (x - x0))) + c`` (regression).

    Defaults ``L=1, k=1, x0=0, c=0``. Guess: a grid of midpoints ``x0`` (x quantiles) and positive
    steepnesses ``k``; ``L`` and ``c`` by linear least squares (a falling curve gets ``L < 0``).
    """

    zoo_name = "sigmoid"

    def _make_specs(self):
        return (
            ParamSpec("L", (), 1.0, doc="height"),
            ParamSpec("k", (), 1.0, doc="steepness"),
            ParamSpec("x0", (), 0.0, doc="midpoint"),
            ParamSpec("c", (), 0.0, doc="offset"),
        )

    def forward(self, params, x):
        return params["L"] / (1 + torch.exp(-params["k"] * (x[:, 0] - params["x0"]))) + params["c"]

    def guess(self, x, y):
        return guess_sigmoid(x, y)


class Gaussian(ZooModel):
    """``gaussian``: ``y = a * exp(-(x - mu)**2 / (2 * sigma**2)) + c``.

    Defaults ``a=1, mu=0, sigma=1, c=0``. Guess: a grid of centres ``mu`` across the x range and
    widths ``sigma`` from 1/200 of the range to the range; ``a`` and ``c`` by least squares (a dip
    gets ``a < 0``).
    """

    zoo_name = "gaussian"

    def _make_specs(self):
        return (
            ParamSpec("a", (), 1.0, doc="height"),
            ParamSpec("mu", (), 0.0, doc="centre"),
            ParamSpec("sigma", (), 1.0, doc="width"),
            ParamSpec("c", (), 0.0, doc="offset"),
        )

    def forward(self, params, x):
        z = x[:, 0] - params["mu"]
        return params["a"] * torch.exp(-(z**2) / (2 * params["sigma"] ** 2)) + params["c"]

    def guess(self, x, y):
        return guess_gaussian(x, y)


class Power(ZooModel):
    """``power``: ``y = a * x**b`` (``+ c`` with option ``offset=True``); x > 0 for non-integer b.

    Defaults ``a=1, b=1`` (``c=0``). Guess: exponents ``b`` on a grid in [-4, 4] using the rows with
    ``x > 0``; ``a`` (and ``c``) by linear least squares.
    """

    zoo_name = "power"
    options = {"offset": False}

    def _make_specs(self):
        if not isinstance(self.opts["offset"], bool):
            raise ModelError(f"The 'offset' option of 'power' must be True or False. Got {self.opts['offset']!r}.")
        specs = (ParamSpec("a", (), 1.0, doc="scale"), ParamSpec("b", (), 1.0, doc="exponent"))
        return specs + ((ParamSpec("c", (), 0.0, doc="offset"),) if self.opts["offset"] else ())

    def forward(self, params, x):
        out = params["a"] * x[:, 0] ** params["b"]
        return out + params["c"] if self.opts["offset"] else out

    def guess(self, x, y):
        return guess_power(x, y, self.opts["offset"])


class Sine(ZooModel):
    """``sine``: ``y = a * sin(w * x + phi) + c``.

    Defaults ``a=1, w=1, phi=0, c=0``. Guess: angular frequencies ``w`` from half a cycle to
    (about) half a cycle per data point across the x range, refined around the best; for each,
    ``a sin(wx + phi) = A sin(wx) + B cos(wx)`` makes ``A, B, c`` a linear least-squares problem.
    """

    zoo_name = "sine"

    def _make_specs(self):
        return (
            ParamSpec("a", (), 1.0, doc="amplitude"),
            ParamSpec("w", (), 1.0, doc="angular frequency"),
            ParamSpec("phi", (), 0.0, doc="phase"),
            ParamSpec("c", (), 0.0, doc="offset"),
        )

    def forward(self, params, x):
        return params["a"] * torch.sin(params["w"] * x[:, 0] + params["phi"]) + params["c"]

    def guess(self, x, y):
        return guess_sine(x, y)


class MLP(ZooModel):
    """``mlp``: a multilayer perceptron ``x -> [W0, b0] -> act -> ... -> [Wl, bl] -> outputs``.

    Options ``hidden=(16, 16)`` (layer widths, a tuple or a string ``"16,16"``) and
    ``activation="tanh"`` (``tanh``, ``relu``, ``sigmoid``, ``gelu``). Parameters ``W0, b0, W1, b1,
    ...`` with ``W_i`` of shape ``(fan_in, fan_out)``; default initial values: random normal, standard
    deviation ``1/sqrt(fan_in)``, drawn from the run's generator (a seed fixes them). Any number of
    inputs; ``n_outputs`` output units, squeezed to ``(n,)`` for one.
    """

    zoo_name = "mlp"
    network = True
    one_input = False
    multi_output = True
    options = {"hidden": (16, 16), "activation": "tanh"}

    def _make_specs(self):
        hidden = self.opts["hidden"]
        try:
            if isinstance(hidden, str):
                hidden = [h for h in hidden.replace(" ", "").split(",") if h]
            elif isinstance(hidden, int):
                hidden = [hidden]
            if any(isinstance(h, (bool, float)) for h in hidden):
                raise ValueError
            hidden = [int(h) for h in hidden]
            if any(h < 1 for h in hidden):
                raise ValueError
        except (TypeError, ValueError):
            raise ModelError(
                f"The 'hidden' option of 'mlp' must be layer widths >= 1 like (16, 16) or "
                f"'16,16'. Got {self.opts['hidden']!r} instead."
            ) from None
        act = str(self.opts["activation"]).lower()
        if act not in _ACTIVATIONS:
            raise ModelError(
                f"The 'activation' option of 'mlp' must be one of {', '.join(_ACTIVATIONS)}. "
                f"Got {self.opts['activation']!r} instead."
            )
        self.opts = {"hidden": hidden, "activation": act}
        sizes = [len(self.inputs), *hidden, self.n_outputs]
        # Counted before the specs: a width of 10^12 must be refused, not listed in a shape.
        check_size(
            "mlp",
            sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])),
            2 * (len(sizes) - 1),
            f"hidden={','.join(map(str, hidden))}",
            "Choose fewer or narrower hidden layers (--option hidden=32,32, say).",
        )
        specs = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            scale = 1 / math.sqrt(fan_in)
            specs += [
                ParamSpec(f"W{i}", (fan_in, fan_out), None, scale, doc=f"layer {i} weights"),
                ParamSpec(f"b{i}", (fan_out,), None, scale, doc=f"layer {i} biases"),
            ]
        return tuple(specs)

    def _size_words(self) -> str:
        return f"hidden={','.join(map(str, self.opts['hidden']))}"

    def row_width(self) -> int:
        # Each hidden unit holds its pre-activation, its activation and their gradients.
        return len(self.inputs) + 4 * sum(self.opts["hidden"]) + 3 * self.n_outputs

    def forward(self, params, x):
        act = _ACTIVATIONS[self.opts["activation"]]
        n_layers = len(self._specs) // 2
        h = x
        for i in range(n_layers):
            h = h @ params[f"W{i}"] + params[f"b{i}"]
            if i < n_layers - 1:
                h = act(h)
        return h[:, 0] if self.n_outputs == 1 else h


_REGISTRY: dict[str, type[ZooModel]] = {
    cls.zoo_name: cls for cls in (Linear, Poly, Exponential, Sigmoid, Gaussian, Power, Sine, Logistic, MLP)
}


def is_zoo_name(name: str) -> bool:
    """True for a zoo name, alias or ``polyN``; anything else is read as a formula."""
    key = str(name).strip().lower()
    return (
        key in ZOO_NAMES
        or key in _ALIASES
        or key == "polynomial"
        or re.fullmatch(r"poly(?:nomial)?\d+", key) is not None
    )


def make_zoo_model(name: str, inputs: Sequence[str], n_outputs: int = 1, **options) -> ZooModel:
    """Build a zoo model by name.

    Parameters
    ----------
    name : str
        One of :data:`ZOO_NAMES` (case-insensitive), or ``polyN`` for a polynomial of degree N.
    inputs : sequence of str
        The input columns, in the order of ``x``'s columns.
    n_outputs : int, default 1
        Output units (``linear``, ``logistic`` and ``mlp`` only).
    **options
        Model options: ``degree`` (``poly``), ``offset`` (``power``), ``hidden`` and ``activation`` (``mlp``).

    Raises
    ------
    ModelError
        Unknown name (with the closest match), wrong number of inputs, unknown or bad options.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    match = re.fullmatch(r"poly(?:nomial)?(\d+)", key)
    if match:
        if "degree" in options and options["degree"] != int(match.group(1)):
            raise ModelError(f"The model name {name!r} and degree={options['degree']!r} disagree; give one of them.")
        key, options = "poly", {**options, "degree": int(match.group(1))}
    if key == "polynomial":
        key = "poly"
    if key not in _REGISTRY:
        close = closest(key, list(ZOO_NAMES) + list(_ALIASES), cutoff=0.5)
        hint = f" Did you mean {close!r}?" if close else ""
        raise ModelError(
            f"Unknown zoo model {name!r}.{hint} The zoo has: {', '.join(ZOO_NAMES)} "
            f"(and polyN for a polynomial of degree N, e.g. 'poly3')."
        )
    return _REGISTRY[key](inputs, n_outputs, **options)
