"""A checkpoint is resumed only if every field holds what the resuming fit needs (gradfit.train.checkpoint_schema).

The examples of issue 9: different data whose old fingerprint matched (two target values swapped), a
parameter removed (it resumed at its initial value), ``step=True`` (resumed as step 1), and eleven
kinds of damaged but loadable checkpoints that ended in an internal error. Each is now refused with
exit 2 and a message naming the field, and nothing is written. Checkpoints that are whole, from
every optimizer, schedule and stopping rule, still resume to the uninterrupted fit bit for bit.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.data.fingerprint import data_fingerprint
from gradfit.errors import ConfigError, DataError
from gradfit.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from gradfit.train.history import HistoryRecorder
from helpers.checkpoints import assert_same_fit, decay_curve, fit_stopped_at

runner = CliRunner()


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    t = np.linspace(0, 3, 150)
    path = tmp_path_factory.mktemp("data") / "decay.csv"
    pd.DataFrame({"t": t, "y": 2.0 * np.exp(-0.7 * t) + 0.3 + 0.02 * rng.standard_normal(150)}).to_csv(
        path, index=False
    )
    return path


FORMULA = "a*exp(-b*t) + c"
# Mini-batch Adam with a schedule, early stopping and tol: every part of the state is there.
ADAM = [
    "--y",
    "y",
    "--model",
    FORMULA,
    "--optimizer",
    "adam",
    "--lr",
    "0.05",
    "--batch-size",
    "16",
    "--schedule",
    "cosine",
    "--val-split",
    "0.2",
    "--patience",
    "50",
    "--tol",
    "1e-12",
    "--init",
    "a=1,b=0.2,c=0",
    "--no-uncertainty",
]
LM = ["--y", "y", "--model", FORMULA, "--optimizer", "lm", "--init", "a=5,b=3,c=-1", "--no-uncertainty"]


def fit_cli(table: Path, options: list[str], *more: str):
    return runner.invoke(app, ["fit", str(table), *options, *more, "--quiet"])


@pytest.fixture(scope="module")
def adam_run(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adam") / "run"
    done = fit_cli(table, ADAM, "--steps", "24", "--checkpoint-every", "8", "--out", str(out))
    assert done.exit_code in (0, 1), done.output
    assert load_checkpoint(out)["step"] == 24
    return out


@pytest.fixture(scope="module")
def lm_run(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "run"
    done = fit_cli(table, LM, "--steps", "3", "--checkpoint-every", "1", "--out", str(out))
    assert done.exit_code in (0, 1), done.output
    assert load_checkpoint(out)["step"] == 3
    return out


def damaged(run: Path, tmp_path: Path, change) -> Path:
    """A copy of ``run``'s checkpoint changed by ``change(state)`` (saved as torch.save would), in a folder of its own."""
    state = torch.load(run / CHECKPOINT_NAME, weights_only=True)
    change(state)
    folder = tmp_path / "damaged"
    folder.mkdir()
    torch.save(state, folder / CHECKPOINT_NAME)
    return folder


def assert_refused(result, folder: Path, out: Path, *expected: str) -> None:
    """Exit 2, one message naming the field, no traceback, no internal error, nothing written anywhere."""
    before = (folder / CHECKPOINT_NAME).read_bytes()
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "internal error" not in text and "Traceback" not in text
    for part in expected:
        assert part in text, (part, text)
    assert not out.exists()
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_NAME]
    assert (folder / CHECKPOINT_NAME).read_bytes() == before


# -- the examples ----------------------------------------------------------------------------


def test_different_data_with_two_targets_swapped_is_refused(table, adam_run, tmp_path):
    frame = pd.read_csv(table)
    frame.loc[[10, 90], "y"] = frame.loc[[90, 10], "y"].to_numpy()  # same sum, same first and last rows
    swapped = tmp_path / "swapped.csv"
    frame.to_csv(swapped, index=False)
    out = tmp_path / "out"
    res = fit_cli(swapped, ADAM, "--steps", "24", "--resume", str(adam_run), "--out", str(out))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "belongs to a different fit" in text and "data 'fingerprint'" in text and "internal error" not in text
    assert not out.exists()


def test_the_fingerprint_sees_every_value_in_order():
    x = torch.linspace(0, 1, 1000).reshape(-1, 1)
    y = torch.sin(7 * x[:, 0])
    base = data_fingerprint(x, y)
    swapped = y.clone()
    swapped[[100, 900]] = swapped[[900, 100]]
    last_bit = y.clone()
    last_bit[500] = torch.nextafter(last_bit[500], torch.tensor(2.0))
    assert (
        len(
            {
                base,
                data_fingerprint(x, swapped),
                data_fingerprint(x, last_bit),
                data_fingerprint(x.double(), y.double()),
                data_fingerprint(x[:-1], y[:-1]),
                data_fingerprint(x, y, w=torch.ones(1000)),
            }
        )
        == 6
    )
    assert data_fingerprint(x, y, block_bytes=8) == base  # read a few rows at a time: the same hash


def test_a_parameter_removed_is_refused(adam_run, table, tmp_path):
    folder = damaged(adam_run, tmp_path, lambda s: s["params"].pop("b"))
    out = tmp_path / "out"
    res = fit_cli(table, ADAM, "--steps", "24", "--resume", str(folder), "--out", str(out))
    assert_refused(res, folder, out, "is damaged: field 'params' lacks the parameter(s) 'b'")


def test_step_true_is_refused_not_read_as_step_1(adam_run, table, tmp_path):
    folder = damaged(adam_run, tmp_path, lambda s: s.update(step=True))
    out = tmp_path / "out"
    res = fit_cli(table, ADAM, "--steps", "24", "--resume", str(folder), "--out", str(out))
    assert_refused(res, folder, out, "is damaged: field 'step' is True, expected a whole number >= 0")


def _set(path: str, value):
    """A change that puts ``value`` at the dotted ``path`` of the state."""

    def change(state):
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        inner = state
        for k in keys[:-1]:
            inner = inner[k]
        inner[keys[-1]] = value(inner[keys[-1]]) if callable(value) else value

    return change


def _nan_first(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = math.nan
    return t


# The eleven kinds of damage the tester found (wrong shapes, bad generator or optimizer state, recorder columns,
# elapsed as a string or NaN, row_every 0), and their neighbours: each is named in the message.
DAMAGE = {
    "parameter of the wrong shape": (
        "params.a",
        lambda t: torch.zeros(2),
        "field 'params.a' has shape (2,), expected ()",
    ),
    "parameter NaN": ("params.c", _nan_first, "field 'params.c' holds NaN or infinite values"),
    "parameter of another dtype": (
        "params.a",
        lambda t: t.double(),
        "field 'params.a' has dtype float64, expected float32",
    ),
    "optimizer moment of the wrong shape": (
        "optimizer.state.0.exp_avg",
        lambda t: torch.zeros(3),
        "field 'optimizer.state.0.exp_avg' has shape (3,)",
    ),
    "optimizer moment NaN": (
        "optimizer.state.1.exp_avg_sq",
        _nan_first,
        "field 'optimizer.state.1.exp_avg_sq' holds NaN or infinite values",
    ),
    "optimizer step as text": ("optimizer.state.2.step", "12", "field 'optimizer.state.2.step' is '12'"),
    "optimizer option changed": (
        "optimizer.param_groups.0.betas",
        (0.5, 0.5),
        "field 'optimizer.param_groups.0.betas'",
    ),
    "optimizer groups missing": (
        "optimizer.param_groups",
        [],
        "field 'optimizer.param_groups' has 0 group(s), expected 1",
    ),
    "generator of the wrong size": (
        "generator",
        lambda t: t[:100],
        "field 'generator' has shape (100,), expected (5056,)",
    ),
    "generator as text": ("generator", "seed", "field 'generator' is 'seed', expected a tensor"),
    "recorder column missing": (
        "recorder.rows",
        lambda t: t[:, :6],
        "field 'recorder.rows' has shape (24, 6), expected (rows, 7)",
    ),
    "recorder rows cut": ("recorder.rows", lambda t: t[:10], "field 'recorder.rows.step' holds 10 step(s)"),
    "snapshots of the wrong width": (
        "recorder.snaps",
        lambda t: t[:, :2],
        "field 'recorder.snaps' has shape (24, 2), expected (24, 3)",
    ),
    "row_every 0": ("recorder.row_every", 0, "field 'recorder.row_every' is 0, expected a whole number >= 1"),
    "snapshot_every as text": (
        "recorder.snapshot_every",
        "1",
        "field 'recorder.snapshot_every' is '1', expected a whole number",
    ),
    "elapsed as text": ("elapsed", "3.5", "field 'elapsed' is '3.5', expected a finite number >= 0"),
    "elapsed NaN": ("elapsed", math.nan, "field 'elapsed' is nan, expected a finite number >= 0"),
    "schedule behind the step": (
        "scheduler.last_epoch",
        3,
        "field 'scheduler.last_epoch' is 3, expected the checkpoint's step 24",
    ),
    "schedule state as a list": ("scheduler", [1, 2], "field 'scheduler' is a list, expected a dict"),
    "early stopping's best NaN": ("early.best", math.nan, "field 'early.best' is nan"),
    "early stopping's best parameters reshaped": (
        "early.best_params.b",
        lambda t: torch.zeros(1, 1),
        "field 'early.best_params.b' has shape (1, 1), expected ()",
    ),
    "tolerance rule's running mean as text": ("rules.Tolerance.running", "x", "field 'rules.Tolerance.running' is 'x'"),
    "previous parameters of the wrong shape": (
        "previous.0",
        lambda t: torch.zeros(4),
        "field 'previous.0' has shape (4,)",
    ),
    "the schedule's budget as True": ("total", True, "field 'total' is True, expected a whole number"),
    "the schedule's budget negative": ("total", -1, "field 'total' is -1, expected a whole number >= 24"),
    "the schedule's rate changed": (
        "scheduler._last_lr.0",
        1.0,
        "field 'optimizer.param_groups.0.lr' is 0.0, but field "
        "'scheduler._last_lr.0', the rate the schedule set, is 1.0",
    ),
    "a run id that is not one": ("run", "abc", "field 'run' is 'abc', expected a run id of 16 hex digits"),
    "Levenberg-Marquardt's state in a gradient fit": (
        "lm",
        {"p": torch.zeros(3)},
        "field 'lm' holds Levenberg-Marquardt's",
    ),
}


@pytest.mark.parametrize("where, value, message", DAMAGE.values(), ids=DAMAGE)
def test_each_kind_of_damage_is_refused_naming_the_field(adam_run, table, tmp_path, where, value, message):
    folder = damaged(adam_run, tmp_path, _set(where, value))
    out = tmp_path / "out"
    res = fit_cli(table, ADAM, "--steps", "24", "--resume", str(folder), "--out", str(out))
    assert_refused(
        res,
        folder,
        out,
        "Cannot resume: the checkpoint",
        "is damaged:",
        message,
        "Start the fit afresh without --resume",
    )


LM_DAMAGE = {
    "iterate of the wrong size": ("lm.p", lambda t: t[:2], "field 'lm.p' has shape (2,), expected (3,)"),
    "iterate not the parameters": ("lm.p", lambda t: t + 1, "field 'lm.p' differs from the saved parameters"),
    "trust region NaN": ("lm.delta", math.nan, "field 'lm.delta' is nan"),
    "counter as a float": ("lm.n_jev", 2.0, "field 'lm.n_jev' is 2.0, expected a whole number"),
    "scaling negative": ("lm.diag", lambda t: -t, "field 'lm.diag' has entries <= 0"),
    # Found by the corpus: a zero trust radius was a ZeroDivisionError (internal error) in lmpar.
    "trust region zero": ("lm.delta", 0.0, "field 'lm.delta' is 0, expected a trust radius > 0"),
    "scaling zero": ("lm.diag", lambda t: t * 0, "field 'lm.diag' has entries <= 0"),
    # Found by the corpus: text in a gradient loop's field was an AttributeError after the check.
    "a gradient loop's previous parameters": (
        "previous",
        "x",
        "field 'previous' is 'x', but Levenberg-Marquardt keeps",
    ),
    "an optimizer's state": ("optimizer", {"state": {}}, "field 'optimizer' is a dict, but Levenberg-Marquardt keeps"),
}


@pytest.mark.parametrize("where, value, message", LM_DAMAGE.values(), ids=LM_DAMAGE)
def test_levenberg_marquardt_state_is_checked(lm_run, table, tmp_path, where, value, message):
    folder = damaged(lm_run, tmp_path, _set(where, value))
    out = tmp_path / "out"
    res = fit_cli(table, LM, "--steps", "10", "--resume", str(folder), "--out", str(out))
    assert_refused(res, folder, out, "is damaged:", message)


def test_the_library_raises_a_data_error_naming_the_field(adam_run, table, tmp_path):
    folder = damaged(adam_run, tmp_path, _set("recorder.row_every", 0))
    with pytest.raises(DataError, match=r"is damaged: field 'recorder.row_every' is 0"):
        gradfit.fit(
            FORMULA,
            str(table),
            y="y",
            optimizer="adam",
            lr=0.05,
            batch_size=16,
            schedule="cosine",
            val_split=0.2,
            patience=50,
            tol=1e-12,
            init={"a": 1, "b": 0.2, "c": 0},
            uncertainty=False,
            steps=24,
            resume=folder,
        )


def test_an_untouched_copy_resumes(adam_run, table, tmp_path):
    """The refusals above come from the damage: the same copy, unchanged, resumes."""
    folder = damaged(adam_run, tmp_path, lambda s: None)
    res = fit_cli(table, ADAM, "--steps", "24", "--resume", str(folder), "--out", str(tmp_path / "out"))
    assert res.exit_code in (0, 1) and "Cannot resume" not in res.output, res.output


# -- whole checkpoints still resume, bit for bit -----------------------------------------------------


@pytest.fixture(scope="module")
def curve() -> pd.DataFrame:
    data = decay_curve(90)
    return data.assign(w=1.0 + 0.5 * np.cos(3 * data["t"]))


RESUMABLE = {
    "momentum, onecycle, mini-batch": dict(optimizer="momentum", lr=0.05, schedule="onecycle", batch_size=16, epochs=5),
    "nesterov, step schedule": dict(optimizer="nesterov", lr=0.05, schedule="step", steps=30),
    "rmsprop, exponential, weights": dict(optimizer="rmsprop", lr=0.01, schedule="exponential", steps=30, weights="w"),
    "adagrad, a fixed parameter": dict(optimizer="adagrad", lr=0.1, steps=30, fix=["c"]),
    "adamw, scaled": dict(optimizer="adamw", lr=0.05, steps=30, scale=True),
    "lbfgs, bounds": dict(optimizer="lbfgs", steps=12, bounds={"b": (0.1, 5.0)}),
    "sgd, validation and patience": dict(optimizer="sgd", lr=0.05, steps=30, val_split=0.2, patience=100),
    "lm, float32, target loss": dict(optimizer="lm", steps=12, dtype="float32", target_loss=1e-12),
    "thinned snapshots": dict(optimizer="adam", lr=0.05, steps=60, max_snapshots=6),
}


@pytest.mark.parametrize("options", RESUMABLE.values(), ids=RESUMABLE)
def test_whole_checkpoints_resume_to_the_uninterrupted_fit(curve, tmp_path, options):
    common = dict(y="y", init={"a": 1.5, "b": 0.5, "c": 0.1}, seed=3, uncertainty=False, **options)
    full = gradfit.fit(FORMULA, curve, **common)
    k = max(2, full.steps // 2)
    stopped = fit_stopped_at(k, tmp_path, FORMULA, curve, **common)
    assert stopped.stop_reason == "interrupted" and load_checkpoint(tmp_path)["step"] == k + 1
    assert_same_fit(gradfit.fit(FORMULA, curve, resume=tmp_path, **common), full)


def test_thinned_rows_resume(curve, tmp_path, monkeypatch):
    """Past its row cap the recorder keeps every 2nd, 4th, ... row: such a checkpoint is whole and resumes."""
    defaults = list(HistoryRecorder.__init__.__defaults__)
    defaults[0] = 8  # max_rows
    monkeypatch.setattr(HistoryRecorder.__init__, "__defaults__", tuple(defaults))
    common = dict(y="y", optimizer="adam", lr=0.05, steps=40, seed=1, uncertainty=False)
    full = gradfit.fit(FORMULA, curve, **common)
    fit_stopped_at(29, tmp_path, FORMULA, curve, **common)
    saved = load_checkpoint(tmp_path)
    assert saved["recorder"]["row_every"] == 4 and saved["step"] == 30
    resumed = gradfit.fit(FORMULA, curve, resume=tmp_path, **common)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    assert resumed.flat_params == full.flat_params


def test_a_copy_of_the_state_is_not_changed_by_the_check(adam_run):
    """The trial step runs on copies: the loaded state is restored as it was read."""
    state = load_checkpoint(adam_run)
    kept = copy.deepcopy(state["optimizer"])
    from gradfit.train.checkpoint_schema import _trial_step

    leaves = [torch.zeros(()), torch.zeros(()), torch.zeros(())]
    opt = torch.optim.Adam([p.requires_grad_(True) for p in leaves], lr=0.05)
    _trial_step(opt, state["optimizer"], leaves)
    assert all(torch.equal(a, b) for a, b in zip(kept["state"][0].values(), state["optimizer"]["state"][0].values()))
    assert all(float(p) == 0.0 for p in leaves)


def test_a_scheduled_fit_resumes_with_its_own_budget(curve, tmp_path):
    """Found by the corpus: a one-cycle fit resumed with a larger budget stepped its schedule past its end (an
    internal error), and a cosine one would have annealed over the old budget. The budget is part of the schedule."""
    common = dict(y="y", optimizer="momentum", lr=0.05, schedule="onecycle", batch_size=16, seed=2, uncertainty=False)
    fit_stopped_at(5, tmp_path, FORMULA, curve, steps=12, **common)
    with pytest.raises(ConfigError, match=r"over a budget of 12 steps, and this one over 30.*--steps 12"):
        gradfit.fit(FORMULA, curve, steps=30, resume=tmp_path, **common)
    full = gradfit.fit(FORMULA, curve, steps=12, **common)
    resumed = gradfit.fit(FORMULA, curve, steps=12, resume=tmp_path, **common)
    assert resumed.flat_params == full.flat_params


class StopBeforeTheFirstStep:
    def on_start(self, total):
        from gradfit.train.interrupt import request_stop

        request_stop()


def test_a_levenberg_marquardt_checkpoint_from_before_the_first_step_resumes(curve, tmp_path):
    """Before its first iteration LM has no scaling and no trust radius yet (NaN): that is not damage."""
    common = dict(y="y", optimizer="lm", init={"a": 5, "b": 3, "c": -1}, uncertainty=False, steps=12)
    stopped = gradfit.fit(FORMULA, curve, checkpoint_dir=tmp_path, callbacks=[StopBeforeTheFirstStep()], **common)
    saved = load_checkpoint(tmp_path)
    assert stopped.steps == 0 and saved["lm"]["diag"] is None and math.isnan(saved["lm"]["delta"])
    resumed = gradfit.fit(FORMULA, curve, resume=tmp_path, **common)
    assert resumed.flat_params == gradfit.fit(FORMULA, curve, **common).flat_params and resumed.steps > 0


def test_lbfgs_scaling_as_a_list_is_refused(tmp_path):
    """Found by the corpus: L-BFGS's H_diag saved as a list passed the trial step (which overwrote it before use)
    and was a TypeError in the fit's own step (internal error). Each entry must be of the kind the optimizer keeps."""
    data = decay_curve(120)
    common = dict(y="y", optimizer="lbfgs", lr=0.1, init={"a": 5, "b": 3, "c": -1}, uncertainty=False, steps=12)
    fit_stopped_at(5, tmp_path, FORMULA, data, **common)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert "H_diag" in state["optimizer"]["state"][0]
    state["optimizer"]["state"][0]["H_diag"] = [1.0]
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(DataError, match=r"field 'optimizer.state.0.H_diag' is a list, expected a finite number or a "):
        gradfit.fit(FORMULA, data, resume=tmp_path, **common)
