"""The option table (gradfit.options) against the four places that use it, and the alias registry.

Each of FitConfig, fit()'s docstring, ``gradfit fit``'s flags and the scikit-learn estimators must know
every option the table declares, with the table's default and choices: a test here fails when one of
them misses an option or disagrees. ``gradfit race`` and ``gradfit lr-find`` must take the flags they share
with a fit from the table too: its name, kind, default (unless the command's OWN_DEFAULTS says otherwise),
help and range check.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.aliases import ALIASES, canonical, closest, near_miss, unknown_name
from gradfit.cli.app import app
from gradfit.cli.fit_cmd import FIT_FLAGS
from gradfit.errors import ConfigError
from gradfit.options import OPTIONS
from gradfit.train.config import FitConfig

runner = CliRunner()


# -- the table against the registries it names -------------------------------------------------------------


def test_the_tables_names_are_the_registries():
    from gradfit.losses import LOSS_NAMES
    from gradfit.optim.registry import OPTIMIZER_NAMES
    from gradfit.optim.schedules import SCHEDULES
    from gradfit.train.history import MAX_SNAPSHOTS

    assert set(OPTIONS["optimizer"].choices) == set(OPTIMIZER_NAMES)
    assert "lm" in OPTIONS["optimizer"].choices
    assert OPTIONS["schedule"].choices == SCHEDULES
    assert OPTIONS["loss"].choices == LOSS_NAMES
    assert OPTIONS["max_snapshots"].default == MAX_SNAPSHOTS


# -- 1. FitConfig -------------------------------------------------------------------------------------------


def test_fitconfig_has_every_option_with_the_tables_default():
    fields = {f.name: f for f in dataclasses.fields(FitConfig)}
    assert set(fields) == set(OPTIONS)
    for name, option in OPTIONS.items():
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert default == option.default, name


def test_every_option_is_checked_by_validate():
    # A value of the wrong kind for each option that is checked by kind: validate must name the option.
    wrong = {
        "whole": -5,
        "number": float("nan"),
        "flag": "yes",
        "auto flag": "yes",
        "choice": "float16",
        "seed": -1,
        "mapping": 3,
    }
    for name, option in OPTIONS.items():
        if option.kind == "name":
            continue
        with pytest.raises(ConfigError, match=f"The '{name}' parameter must be"):
            FitConfig(**{name: wrong[option.kind]}).validate()
        assert option.problem(option.default) is None, name  # the default itself passes


def test_ranges_follow_the_table():
    assert OPTIONS["momentum"].problem(0.0) is None and OPTIONS["momentum"].problem(1.0) is not None
    assert OPTIONS["val_split"].problem(0.0) is not None and OPTIONS["val_split"].problem(0.5) is None
    assert OPTIONS["steps"].problem(0) is None and OPTIONS["epochs"].problem(0) is not None
    assert OPTIONS["min_delta"].problem(0.0) is None and OPTIONS["min_delta"].problem(-1e-9) is not None
    with pytest.raises(ConfigError, match=r"The 'lr' parameter must be a finite number > 0\. Got -1 instead\."):
        FitConfig(lr=-1).validate()


@pytest.mark.parametrize("alias", ["lm", "marquardt", "Marquardt", "levenberg-marquardt", "levenberg_marquardt"])
def test_scale_with_levenberg_marquardt_is_refused_by_any_name(alias):
    with pytest.raises(ConfigError, match="Levenberg-Marquardt \\('lm'\\) scales its own steps"):
        FitConfig(optimizer=alias, scale=True).validate()


# -- 2. fit()'s docstring -----------------------------------------------------------------------------------


def test_fit_docstring_documents_every_option_with_its_default():
    doc = gradfit.fit.__doc__
    section = doc[doc.index("**options") : doc.index("Returns\n")]
    for name, option in OPTIONS.items():
        assert f"        {name} : default {option.default!r}" in section, name
        assert " ".join(option.help.split()[:4]) in " ".join(section.split()), name


def test_fit_refuses_an_unknown_option_with_the_registrys_suggestion():
    expected = r"'learning_rate' \(did you mean 'lr'\?\), 'stpes' \(did you mean 'steps'\?\)"
    with pytest.raises(ConfigError, match=expected):
        gradfit.fit("linear", "builtin:linear", y="y", learning_rate=0.1, stpes=3)


# -- 3. the CLI ---------------------------------------------------------------------------------------------


def _flags():
    """The fit command's options as click sees them: {parameter name: (flag names, default, help)}."""
    import typer

    command = typer.main.get_command(app).commands["fit"]
    return {p.name: (tuple(p.opts), p.default, p.help) for p in command.params if p.opts[0].startswith("--")}


def test_cli_flags_are_the_tables():
    flags = _flags()
    for name, flag in FIT_FLAGS.items():
        assert name in flags, f"gradfit fit has no flag for {name}"
        decls, default, help_text = flags[name]
        assert flag in decls, (name, decls)
        assert help_text == OPTIONS[name].help, name
        if name == "scale":  # a flag: left out means automatic (None in the table)
            assert default is False and OPTIONS[name].default is None
        else:
            assert default == OPTIONS[name].default, name
    # and no fit option is a flag without being declared one in the table
    assert not {n for n in flags if n in OPTIONS} - set(FIT_FLAGS)


def test_fit_help_lists_every_optimizer_including_lm_and_every_choice():
    text = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "300"}).stdout
    words = set(text.replace(",", " ").replace("(", " ").replace(")", " ").replace(".", " ").split())
    for name in ("optimizer", "schedule", "loss", "dtype"):
        for choice in OPTIONS[name].choices:
            assert choice in words, (name, choice)
    for flag in FIT_FLAGS.values():
        assert flag in text


def test_cli_passes_every_flag_to_fit(tmp_path, monkeypatch):
    seen = {}

    def fake_run_fit(data, **kwargs):
        seen.update(kwargs)
        return 0

    monkeypatch.setattr("gradfit.cli.fit_cmd.run_fit", fake_run_fit)
    res = runner.invoke(app, ["fit", "builtin:linear", "--y", "y", "--model", "linear"])
    assert res.exit_code == 0, res.output
    assert set(FIT_FLAGS) <= set(seen)


# -- 3b. the other commands that run fits: race and lr-find -------------------------------------------------

#: A value each kind of option refuses, as a command-line word (the kinds a resolver checks have none here).
_BAD_WORD = {"whole": "-1", "number": "nan", "seed": "-1", "choice": "float16"}
_COMMANDS = {
    "race": ("gradfit.cli.race_cmd", "gradfit.experiments.race.run_race"),
    "lr-find": ("gradfit.cli.lr_find_cmd", "gradfit.experiments.lr_finder.find_lr"),
}


def _command_flags(command_name):
    """A command's options as click sees them: {parameter name: click.Option}."""
    import typer

    command = typer.main.get_command(app).commands[command_name]
    return {p.name: p for p in command.params if p.opts[0].startswith("--")}


@pytest.mark.parametrize("command_name", list(_COMMANDS))
def test_race_and_lr_find_take_the_tables_flags(command_name):
    import importlib

    own_defaults = importlib.import_module(_COMMANDS[command_name][0]).OWN_DEFAULTS
    flags = _command_flags(command_name)
    shared = {n for n in flags if n in OPTIONS}
    assert {"optimizer", "steps", "seed", "loss", "dtype", "batch_size"} <= shared  # what both took before
    assert set(own_defaults) <= shared
    table_flags = {o.cli: n for n, o in OPTIONS.items() if o.cli}
    for name, p in flags.items():
        # no flag of the table under another parameter name
        assert all(table_flags.get(d, name) == name for d in p.opts), (name, p.opts)
    kinds = {"whole": int, "seed": int, "number": float, "choice": str, "name": str}
    for name in shared:
        option, p = OPTIONS[name], flags[name]
        assert p.opts == [option.cli], name
        assert p.type_descriptor.annotation is kinds[option.kind], name
        assert p.default == own_defaults.get(name, option.default), name
        # the table's help; a command's own note (another default or role) only after it
        assert p.help == option.help or p.help.startswith(option.help + " Here: "), (name, p.help)
        if name in own_defaults:
            assert f"default {own_defaults[name]}" in p.help.removeprefix(option.help), name


@pytest.mark.parametrize("command_name", list(_COMMANDS))
def test_race_and_lr_find_check_the_tables_ranges_before_any_work(command_name, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(_COMMANDS[command_name][1], lambda *a, **k: called.append(k))
    args = [command_name, "builtin:linear", "--y", "y", "--model", "linear", "--out", str(tmp_path / "never")]
    args += ["--optimizers", "sgd,adam"] if command_name == "race" else []
    checked = 0
    for name in _command_flags(command_name).keys() & OPTIONS.keys():
        option = OPTIONS[name]
        if option.kind not in _BAD_WORD:
            continue
        word = _BAD_WORD[option.kind]
        value = {"-1": -1, "nan": float("nan")}.get(word, word)
        message = option.problem(value)
        assert message is not None, name
        res = runner.invoke(app, [*args, option.cli, word])
        assert res.exit_code == 2, (name, res.output)
        assert res.stderr.strip() == f"Error: {message}", (name, res.stderr)
        checked += 1
    assert checked >= 4 and not called and not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["race", "--optimizers", "sgd,adam", "--steps", "-1"],
            "The 'steps' parameter must be a whole number >= 0. Got -1 instead.",
        ),
        (
            ["race", "--optimizers", "sgd,adam", "--epochs", "0"],
            "The 'epochs' parameter must be a whole number >= 1. Got 0 instead.",
        ),
        (["lr-find", "--seed", "-1"], "The 'seed' parameter must be a whole number from 0 to 2**64 - 1"),
        (["lr-find", "--batch-size", "0"], "The 'batch_size' parameter must be a whole number >= 1. Got 0 instead."),
    ],
)
def test_race_and_lr_find_refuse_out_of_range_values_with_the_tables_message(args, message, tmp_path):
    out = tmp_path / "never"
    res = runner.invoke(app, [args[0], "builtin:linear", "--y", "y", "--model", "linear", *args[1:], "--out", str(out)])
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output, res.output
    assert not out.exists()


def test_lr_finds_own_defaults_are_find_lrs():
    from gradfit.cli.lr_find_cmd import OWN_DEFAULTS
    from gradfit.experiments.lr_finder import find_lr

    params = inspect.signature(find_lr).parameters
    for name, default in OWN_DEFAULTS.items():
        assert params[name].default == default, name


@pytest.mark.parametrize("command_name", list(_COMMANDS))
def test_race_and_lr_find_help_lists_the_tables_flags(command_name):
    res = runner.invoke(app, [command_name, "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    for name in _command_flags(command_name).keys() & OPTIONS.keys():
        assert OPTIONS[name].cli in res.stdout
        assert " ".join(OPTIONS[name].help.split()[:4]) in res.stdout, name


# -- 4. scikit-learn ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["GradfitRegressor", "GradfitClassifier"])
def test_sklearn_passes_the_tables_options_with_their_defaults(name):
    pytest.importorskip("sklearn")
    import gradfit.sklearn as sk

    cls = getattr(sk, name)
    params = inspect.signature(cls.__init__).parameters
    passed = [p for p in sk.PASSED if p != "loss" or name == "GradfitRegressor"]  # the classifier picks its loss
    assert set(passed) == set(OPTIONS) & set(params)
    for p in passed:
        assert params[p].default == sk.OWN_DEFAULTS.get(p, OPTIONS[p].default), p
        assert p in cls.__doc__, p


def test_sklearn_hands_each_option_to_fit(monkeypatch):
    pytest.importorskip("sklearn")
    import numpy as np

    import gradfit.sklearn as sk

    seen = {}
    real = gradfit.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(gradfit, "fit", spy)
    X = np.arange(8.0).reshape(-1, 1)
    sk.GradfitRegressor(steps=7, seed=3, tol=1e-3).fit(X, 2 * X[:, 0] + 1)
    assert seen["steps"] == 7 and seen["seed"] == 3 and seen["tol"] == 1e-3 and seen["optimizer"] == "lbfgs"
    assert set(sk.PASSED) - {"scale"} <= set(seen)


# -- the alias registry and the one "did you mean" rule -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("optimizer", "marquardt", "lm"),
        ("optimizer", " Levenberg-Marquardt ", "lm"),
        ("optimizer", "L-BFGS", "lbfgs"),
        ("optimizer", "gd", "sgd"),
        ("optimizer", "adam", "adam"),
        ("schedule", "one_cycle", "onecycle"),
        ("schedule", "none", "constant"),
        ("model", "cubic", "poly3"),
        ("option", "random_state", "seed"),
        ("read option", "delimiter", "sep"),
        ("nothing", "Adam", "adam"),
    ],
)
def test_canonical_resolves_aliases(kind, name, expected):
    assert canonical(kind, name) == expected


def test_every_alias_points_at_a_real_name():
    from gradfit.data.read_options import READ_KEYS
    from gradfit.models.zoo import is_zoo_name

    assert set(ALIASES["optimizer"].values()) <= set(OPTIONS["optimizer"].choices)
    assert set(ALIASES["schedule"].values()) <= set(OPTIONS["schedule"].choices)
    assert set(ALIASES["option"].values()) <= set(OPTIONS)
    assert set(ALIASES["read option"].values()) <= set(READ_KEYS)
    assert all(is_zoo_name(v) for v in ALIASES["model"].values())


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("BMI", ["age", "bmi"], "bmi"),  # another case, always
        ("bpp", ["bp", "age"], "bp"),  # one edit, 3+ characters
        ("tmep", ["temp", "time"], "temp"),  # a swap is one edit
        ("temprature", ["temperture", "x"], "temperture"),  # two edits, both 7+
        ("a", ["ab", "x1"], None),  # short names: case only
        ("b1", ["x1"], None),
    ],
)
def test_near_miss_rule(name, candidates, expected):
    assert near_miss(name, candidates) == expected


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("adamm", ["sgd", "adam", "adamw"], "adam"),
        ("sgdd", ["auto", "sgd", "lm"], "sgd"),
        ("cosin", ["constant", "step", "cosine"], "cosine"),
        ("lineer", ["linear", "rollercoaster", "blobs"], "linear"),  # a near miss
        ("crossentropi", ["mse", "crossentropy"], "crossentropy"),  # difflib's ratio where edits are too many
        ("zzz", ["mse", "mae"], None),
    ],
)
def test_closest(name, candidates, expected):
    assert closest(name, candidates) == expected


def test_closest_cutoff_is_difflibs():
    assert closest("expo", ["exponential"], cutoff=0.5) == "exponential"
    assert closest("expo", ["exponential"]) is None


def test_unknown_name_message():
    assert unknown_name("schedule", "cosin", ("constant", "cosine"), given="Cosin") == (
        "The 'schedule' parameter must be one of constant, cosine. Got 'Cosin' instead. Did you mean 'cosine'?"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FitConfig(optimizer="adamm").validate(), "Did you mean 'adam'?"),
        (lambda: FitConfig(schedule="cosin").validate(), "Did you mean 'cosine'?"),
        (lambda: gradfit.losses.get_loss("hubber"), "Did you mean 'huber'?"),
        (lambda: gradfit.models.zoo.make_zoo_model("gausian", ["x"]), "Did you mean 'gaussian'?"),
        (lambda: gradfit.data.synthetic.load_builtin("lineer"), "Did you mean 'linear'?"),
        (lambda: gradfit.data.read_options.check_read({"seperator": ";"}), "(did you mean 'sep'?)"),
    ],
)
def test_resolvers_suggest_through_the_registry(call, message):
    with pytest.raises(gradfit.errors.GradfitError) as info:
        call()
    assert message in str(info.value)
