"""The zoo's catalogue is read from the zoo itself, and what it says about starts is what the models do."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from gradfit.errors import ModelError
from gradfit.models import zoo
from gradfit.models.base import Model
from gradfit.models.catalog import zoo_catalog, zoo_entry


def test_every_zoo_model_is_in_the_catalogue_in_the_zoo_order():
    entries = zoo_catalog()
    assert [e.name for e in entries] == list(zoo.ZOO_NAMES)
    assert {e.name for e in entries} == set(zoo._REGISTRY)  # no class of the zoo is left out


@pytest.mark.parametrize("name", zoo.ZOO_NAMES)
def test_an_entry_is_the_models_own_definition(name):
    entry = zoo_entry(name)
    model = zoo.make_zoo_model(name, ["x"])
    cls = type(model)
    assert [p.name for p in entry.params] == list(model.param_names)
    assert [p.shape for p in entry.params] == [s.shape for s in model.specs]
    assert [p.doc for p in entry.params] == [s.doc for s in model.specs]
    assert entry.options == cls.options
    assert f"``{entry.formula}``" in cls.__doc__  # the formula is quoted from the docstring, not retyped
    assert entry.guesses == (cls.guess is not Model.guess)
    assert entry.one_input == cls.one_input and entry.multi_output == cls.multi_output
    # The default starts shown are the ones the model uses without data.
    start = model.init_params(torch.Generator().manual_seed(0), torch.float64)
    for p in entry.params:
        if p.default is not None:
            assert torch.all(start[p.name] == p.default), p.name
        else:  # random normal with the stated standard deviation
            assert p.start == f"random normal, sd {p.scale:.3g}"
    assert entry.start_rule and entry.start_rule in " ".join(entry.doc.split())


def test_guessed_starts_are_said_so_and_the_others_start_from_their_defaults():
    x = torch.linspace(0.1, 3, 60, dtype=torch.float64)[:, None]
    y = 2.5 * torch.exp(-1.3 * x[:, 0]) + 0.4
    for entry in zoo_catalog():
        if entry.name in ("logistic", "mlp"):
            continue  # need classes or several inputs; their starts do not look at the data
        model = zoo.make_zoo_model(entry.name, ["x"])
        from_data = model.init_params(None, torch.float64, x=x, y=y)
        defaults = model.init_params(None, torch.float64)
        moved = any(not torch.equal(from_data[k], defaults[k]) for k in defaults)
        assert moved == entry.guesses, entry.name
        assert (entry.start == "guessed from the data") == entry.guesses


def test_names_aliases_and_options():
    assert zoo_entry("poly3").model_name == "poly3" and [p.name for p in zoo_entry("poly3").params] == [
        "c0",
        "c1",
        "c2",
        "c3",
    ]
    assert zoo_entry("quadratic").model_name == "poly2"
    assert "exp" in zoo_entry("exponential").aliases
    mlp = zoo_entry("mlp", hidden=(8,))
    assert [(p.name, p.shape) for p in mlp.params] == [("W0", (1, 8)), ("b0", (8,)), ("W1", (8, 1)), ("b1", (1,))]
    np.testing.assert_allclose([p.scale for p in mlp.params], [1, 1, 8**-0.5, 8**-0.5])
    with pytest.raises(ModelError, match="Did you mean 'exp'"):
        zoo_entry("expo")


def test_the_catalogue_module_is_documented():
    from gradfit.models import catalog

    assert inspect.getdoc(catalog.zoo_entry) and inspect.getdoc(catalog.ZooEntry)
