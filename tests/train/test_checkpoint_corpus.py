"""A generated corpus of damaged checkpoints (issue 9, item 10; the whole corpus is slow: ``pytest -m slow``).

Every field of a real checkpoint, taken when a fit was interrupted half-way through its budget,
from four kinds of fit (mini-batch Adam with a schedule, early stopping and tol; momentum with the
one-cycle policy; L-BFGS; Levenberg-Marquardt), is removed,
retyped, reshaped, made NaN, emptied or pushed out of range, one at a time (every field, every
change), and hypothesis then draws combinations of up to three changes. ``gradfit fit --resume``
on each must exit 0, 1 or 2, never with an internal error or a traceback; exit 2 must name the
field; and nothing may be half-written: no temporary file anywhere, and after exit 2 no output
folder and the checkpoint as it was. The default run keeps a small part: every top-level field of
the Adam checkpoint removed or retyped, and every tensor in it made NaN.
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.train.checkpoint import CHECKPOINT_NAME
from helpers.checkpoints import decay_curve, fit_stopped_at

runner = CliRunner()
FORMULA = "a*exp(-b*t) + c"
FITS = {  # options of gradfit.fit; the CLI gets the same as flags
    "adam": dict(
        init="a=1,b=0.2,c=0",
        optimizer="adam",
        lr=0.05,
        batch_size=16,
        schedule="cosine",
        val_split=0.2,
        patience=50,
        tol=1e-12,
    ),
    "momentum": dict(init="a=1,b=0.2,c=0", optimizer="momentum", lr=0.02, batch_size=32, schedule="onecycle"),
    "lbfgs": dict(init="a=5,b=3,c=-1", optimizer="lbfgs", lr=0.1),
    "lm": dict(init="a=5,b=3,c=-1", optimizer="lm", target_loss=1e-12),
}
SAVED_AT, BUDGET = 6, 12


def flags(options: dict) -> list[str]:
    return [text for k, v in options.items() for text in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per kind of fit, built when first asked for: the data, and a folder holding its checkpoint at step SAVED_AT
    of BUDGET (interrupted)."""
    root = tmp_path_factory.mktemp("corpus")
    table = root / "decay.csv"
    decay_curve(120).to_csv(table, index=False)
    made: dict[str, tuple[Path, Path]] = {}

    def run(name: str) -> tuple[Path, Path]:
        if name not in made:
            options, folder = FITS[name], root / name
            init = dict(kv.split("=") for kv in options["init"].split(","))
            fit_stopped_at(
                SAVED_AT - 1,
                folder,
                FORMULA,
                str(table),
                y="y",
                uncertainty=False,
                steps=BUDGET,
                **{**options, "init": {k: float(v) for k, v in init.items()}},
            )
            assert torch.load(folder / CHECKPOINT_NAME, weights_only=True)["step"] == SAVED_AT, name
            made[name] = (table, folder)
        return made[name]

    return run


def fields(value, path=(), ends_only=False):
    """Every field of a checkpoint, containers included, as key paths.

    ``ends_only``: of a list or tuple, only the first and last entries (L-BFGS keeps one entry a step in
    four lists; the entries between are checked the same way, and the corpus has a time budget in CI).
    """
    if path:
        yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from fields(v, (*path, k), ends_only)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if not ends_only or i in (0, len(value) - 1):
                yield from fields(v, (*path, i), ends_only)


def changes(value) -> list[tuple[str, object]]:
    """The ways to damage one field holding ``value`` (``"removed"`` removes it)."""
    out = [("removed", None), ("none", None), ("text", "abc"), ("true", True), ("list", [1.0]), ("dict", {"k": 1})]
    if isinstance(value, torch.Tensor):
        out += [
            ("longer", torch.zeros(value.numel() + 1, dtype=value.dtype)),
            ("float16", value.to(torch.float16)),
            ("2-d", value.reshape(1, -1) if value.numel() else torch.zeros(1, 1)),
        ]
        if value.is_floating_point() and value.numel():
            nan = value.clone()
            nan.view(-1)[-1] = math.nan
            out += [("nan", nan), ("inf", torch.full_like(value, math.inf))]
        if value.dim() and len(value):
            out.append(("cut", value[: len(value) // 2]))
    elif isinstance(value, bool):
        out.append(("flipped", not value))
    elif isinstance(value, int):
        out += [("negative", -1), ("zero", 0), ("huge", 10**30), ("float", float(value) + 0.5)]
    elif isinstance(value, float):
        out += [("nan", math.nan), ("inf", math.inf), ("negative", -abs(value) - 1.0), ("zero", 0.0)]
    elif isinstance(value, (list, tuple)):
        out += [("emptied", type(value)()), ("longer", type(value)([*value, *value[:1]]))]
    elif isinstance(value, dict):
        out += [("emptied", {}), ("extra key", {**value, "extra": 1})]
    return out


def apply(state: dict, path: tuple, how: str, new) -> bool:
    """Damage ``state`` in place; False where the field cannot take it (a tuple's entry)."""
    inner = state
    for k in path[:-1]:
        inner = inner[k]
    if isinstance(inner, tuple):
        return False
    if how == "removed":
        if isinstance(inner, list):
            inner.pop(path[-1])
        else:
            del inner[path[-1]]
    else:
        inner[path[-1]] = copy.deepcopy(new)
    return True


def resume(table: Path, name: str, state: dict, where: Path):
    """Save ``state`` as a checkpoint in ``where/in`` and resume from it into ``where/out``; return the outcome."""
    shutil.rmtree(where, ignore_errors=True)
    folder, out = where / "in", where / "out"
    folder.mkdir(parents=True)
    torch.save(state, folder / CHECKPOINT_NAME)
    before = (folder / CHECKPOINT_NAME).read_bytes()
    res = runner.invoke(
        app,
        [
            "fit",
            str(table),
            "--y",
            "y",
            "--model",
            FORMULA,
            "--no-uncertainty",
            *flags(FITS[name]),
            "--steps",
            str(BUDGET),
            "--resume",
            str(folder),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    return res, folder, out, before


def check(res, folder: Path, out: Path, before: bytes, damaged: list[tuple]) -> None:
    text = " ".join(res.output.split())
    label = [".".join(map(str, p)) + ":" + how for p, how in damaged]
    assert res.exit_code in (0, 1, 2), (label, res.exit_code, text)
    assert "internal error" not in text and "Traceback" not in text, (label, text)
    assert not [p for p in folder.parent.rglob(".tmp-*")], label  # nothing half-written
    if res.exit_code == 2:
        # The message names one of the damaged fields (its top-level name at least).
        assert any(str(p[0]) in text for p, _ in damaged), (label, text)
        assert not out.exists(), label
        assert (folder / CHECKPOINT_NAME).read_bytes() == before, label


@pytest.mark.slow
@pytest.mark.parametrize("name", FITS)
def test_every_field_damaged_every_way(runs, tmp_path, name):
    table, folder = runs(name)
    base = torch.load(folder / CHECKPOINT_NAME, weights_only=True)
    tried = refused = 0
    for path in list(fields(base, ends_only=True)):
        value = base
        for k in path:
            value = value[k]
        for how, new in changes(value):
            state = copy.deepcopy(base)
            if not apply(state, path, how, new):
                continue
            res, inner, out, before = resume(table, name, state, tmp_path / "case")
            check(res, inner, out, before, [(path, how)])
            tried += 1
            refused += res.exit_code == 2
    # Not all: L-BFGS's history may be shorter or longer, a last loss any number, a schedule's rate any rate.
    assert tried > 150 and refused > 0.7 * tried, (tried, refused)


def test_each_top_level_field_removed_retyped_or_nan(runs, tmp_path):
    """The default run's share of the corpus: every top-level field removed or made text, every tensor made NaN;
    each refused (exit 2) naming its field, nothing written."""
    table, folder = runs("adam")
    base = torch.load(folder / CHECKPOINT_NAME, weights_only=True)
    cases = [((k,), how, new) for k in base for how, new in changes(base[k]) if how in ("removed", "text")]
    cases += [(p, "nan", new) for p in fields(base) for how, new in changes(_at(base, p)) if how == "nan"]
    assert len(cases) > 30
    for path, how, new in cases:
        state = copy.deepcopy(base)
        if not apply(state, path, how, new):
            continue
        res, inner, out, before = resume(table, "adam", state, tmp_path / "case")
        check(res, inner, out, before, [(path, how)])
        assert res.exit_code == 2, (path, how, res.output)


def _at(state, path):
    for k in path:
        state = state[k]
    return state


def damage(draw, base: dict) -> list[tuple]:
    """Up to three fields of ``base``, each with one way to damage it, drawn with ``draw``."""
    paths = list(fields(base))
    picked = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True))
    out = []
    for path in picked:
        value = base
        try:
            for k in path:
                value = value[k]
        except (KeyError, IndexError, TypeError):
            continue
        how, new = draw(st.sampled_from(changes(value)))
        out.append((path, how, new))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", FITS)
def test_random_combinations_of_damage(runs, tmp_path_factory, name):
    table, folder = runs(name)
    base = torch.load(folder / CHECKPOINT_NAME, weights_only=True)
    where = tmp_path_factory.mktemp(f"combo-{name}")

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def run(data):
        changes_drawn = damage(data.draw, base)
        state, applied = copy.deepcopy(base), []
        for path, how, new in changes_drawn:
            try:
                if apply(state, path, how, new):
                    applied.append((path, how))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed or retyped this field's container
        if not applied:
            return
        res, inner, out, before = resume(table, name, state, where / "case")
        check(res, inner, out, before, applied)

    run()
