"""The zoo's catalogue: what ``gradfit models`` shows, read from the zoo's own definitions.

Nothing here is written by hand a second time: the formula and the starting-value rule come from
each zoo class's docstring, the parameters (names, shapes, default initial values, meaning) from
the :class:`~gradfit.models.base.ParamSpec` of a model built on one input column ``x``, the options
from the class's ``options`` table, and whether the start is guessed from whether the class
overrides :meth:`~gradfit.models.base.Model.guess`. A new zoo model appears here by itself.

Examples
--------
>>> entry = zoo_entry("exponential")
>>> entry.formula, [p.name for p in entry.params], entry.guesses
('y = a * exp(b * x) + c', ['a', 'b', 'c'], True)
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from gradfit.models import zoo
from gradfit.models.base import Model

__all__ = ["ZooEntry", "ParamEntry", "zoo_catalog", "zoo_entry"]

_EXAMPLE_INPUT = "x"  # the input column the catalogue's models are built on


@dataclass(frozen=True)
class ParamEntry:
    """One parameter of a zoo model, as built on one input column ``x``."""

    name: str
    shape: tuple[int, ...]
    default: float | None  # None: random normal with standard deviation ``scale``, from the run's seed
    scale: float
    doc: str

    @property
    def start(self) -> str:
        """The default initial value in words: ``"1"``, or ``"random normal, sd 0.25"``."""
        if self.default is None:
            return f"random normal, sd {self.scale:.3g}"
        return f"{self.default:g}"

    @property
    def shape_text(self) -> str:
        return "scalar" if self.shape == () else str(tuple(self.shape))


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model described for people: formula, parameters, options and how it starts.

    Attributes
    ----------
    name : str
        The zoo's name for it (``poly`` also answers to ``polyN``).
    model_name : str
        The name of the model built (``poly3`` for ``zoo_entry("poly3")``, ``poly2`` for ``poly``).
    summary : str
        The docstring's first paragraph, without reStructuredText markup.
    formula : str
        The model's equation, from its docstring (``y = a * exp(b * x) + c``).
    params : tuple of ParamEntry
        For a model built on one input column ``x`` (shapes grow with the inputs where the model takes several).
    options : dict
        Accepted model options (``--option KEY=VALUE``) and their defaults.
    guesses : bool
        Whether the starting values are guessed from the data.
    start_rule : str
        How the start is chosen, from the docstring (the sentences about defaults and guesses).
    one_input, multi_output : bool
        Whether the model takes exactly one input column; whether it can have several outputs.
    aliases : tuple of str
        Other names ``--model`` accepts for it.
    doc : str
        The whole docstring, without markup.
    """

    name: str
    model_name: str
    summary: str
    formula: str
    params: tuple[ParamEntry, ...]
    options: dict
    guesses: bool
    start_rule: str
    one_input: bool
    multi_output: bool
    aliases: tuple[str, ...]
    doc: str

    @property
    def start(self) -> str:
        """The starting values in a few words, for a table."""
        if self.guesses:
            return "guessed from the data"
        if all(p.default is None for p in self.params):
            return "random normal (seeded)"
        values = {p.start for p in self.params}
        return values.pop() if len(values) == 1 else ", ".join(f"{p.name}={p.start}" for p in self.params)

    @property
    def names(self) -> str:
        """The name as typed, with its family: ``poly, polyN``."""
        return "poly, polyN" if self.name == "poly" else self.name


def zoo_catalog() -> tuple[ZooEntry, ...]:
    """Every zoo model, in the zoo's order (:data:`gradfit.models.zoo.ZOO_NAMES`)."""
    return tuple(zoo_entry(name) for name in zoo.ZOO_NAMES)


def zoo_entry(name: str, **options) -> ZooEntry:
    """The catalogue entry of one zoo model, by any name ``--model`` accepts (``poly3``, ``quadratic``...).

    ``options`` are model options (``degree=3``, ``hidden=(8,)``), as ``--option`` gives them.
    Raises :class:`~gradfit.errors.ModelError` (with the closest name) for an unknown name.
    """
    model = zoo.make_zoo_model(name, [_EXAMPLE_INPUT], **options)
    cls = type(model)
    doc = inspect.cleandoc(cls.__doc__ or "")
    plain = _plain(doc)
    summary = plain.split("\n\n")[0].replace("\n", " ")
    canonical = cls.zoo_name
    aliases = tuple(
        sorted(
            a
            for a, target in getattr(zoo, "_ALIASES", {}).items()
            if target == canonical or (canonical == "poly" and target.startswith("poly"))
        )
    )
    params = tuple(ParamEntry(s.name, tuple(s.shape), s.default, float(s.scale), s.doc) for s in model.specs)
    return ZooEntry(
        name=canonical,
        model_name=model.name,
        summary=summary,
        formula=_formula(doc, canonical),
        params=params,
        options=dict(cls.options),
        guesses=cls.guess is not Model.guess,
        start_rule=_start_rule(plain),
        one_input=bool(cls.one_input),
        multi_output=bool(cls.multi_output),
        aliases=aliases,
        doc=plain,
    )


def _formula(doc: str, name: str) -> str:
    """The first literal after the ``name``: prefix of the docstring's first line."""
    first = doc.split("\n\n")[0].replace("\n", " ")
    head, _, rest = first.partition(":")
    literals = re.findall(r"``(.+?)``", rest if rest else first)
    return literals[0] if literals else _plain(first)


def _start_rule(plain: str) -> str:
    """The docstring's sentences about default initial values and the guess, joined."""
    sentences = re.split(r"(?<=\.)\s+(?=[A-Z(])", " ".join(plain.split()))
    keep = [s for s in sentences if re.search(r"\b(Defaults?|default initial values?|Guess)\b", s)]
    return " ".join(keep)


def _plain(text: str) -> str:
    """Docstring text without reStructuredText markup (````code````, ``:role:`x```)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")
