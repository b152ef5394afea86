"""The loop's parts (issue 10, item 1): steppers, batches, stopping rules, early stopping and the history
recorder each own ``state_dict`` / ``load_state_dict``; a part rebuilt from its state continues exactly as the
uninterrupted one (the oracle), and a checkpoint is composed of the parts under the fields of today's format."""

from __future__ import annotations

import ast
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.data.convert import as_dataset
from gradfit.data.synthetic import linear
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.train.batches import Batches
from gradfit.train.checkpoint import Checkpointer
from gradfit.train.config import FitConfig
from gradfit.train.history import HistoryRecorder
from gradfit.train.interrupt import StopRequest
from gradfit.train.loop import LoopState, run_loop
from gradfit.train.objective import Objective
from gradfit.train.steppers import Stepper, make_stepper
from gradfit.train.steppers.gradient import TorchStepper
from gradfit.train.steppers.levenberg import LMStepper
from gradfit.train.stopping import EarlyStopping, MaxTime, StepState, StoppingRules, Target, Tolerance

TRAIN = pathlib.Path(gradfit.__file__).parent / "train"


def _problem(dtype=torch.float64):
    """A curved least-squares problem: a few iterations for every optimizer, none ends at once."""
    x = np.linspace(0.0, 3.0, 40)
    frame = pd.DataFrame({"x": x, "y": 2.0 * np.exp(0.7 * x) + 0.1 * np.sin(7.0 * x)})
    ds = as_dataset(frame, x=["x"], y="y", dtype=dtype)
    model = build_model("a*exp(b*x)", ds.x_names)
    return model, ds, {"a": torch.tensor(1.0, dtype=dtype), "b": torch.tensor(0.2, dtype=dtype)}


def _stepper(optimizer, params, total=20, dtype=torch.float64, **options):
    model, ds, _ = _problem(dtype=dtype)
    lr = {"lm": None, "lbfgs": 0.5}.get(optimizer, 0.003)
    config = FitConfig(optimizer=optimizer, lr=lr, steps=total, **options).validate()
    objective = Objective(model, get_loss("mse"), config.chunk_size)
    return make_stepper(model, get_loss("mse"), ds, params, frozenset(), config, total, None, objective), ds


# -- structure ---------------------------------------------------------------------------------------


def test_no_function_under_train_is_longer_than_80_lines():
    long = []
    for path in sorted(TRAIN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(TRAIN)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_one_loop_function_drives_every_optimizer():
    """No second loop for one fit: nothing under train/ defines a run_* function besides run_loop, and
    run_members (train/batched_loop.py), the loop of many members at once, whose stopping mirrors run_loop's and is
    held to it member by member by tests/experiments/test_sweep.py."""
    runners = sorted(
        node.name
        for path in TRAIN.rglob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("run_")
    )
    assert runners == ["run_loop", "run_members"]


@pytest.mark.parametrize(
    "optimizer, cls", [("sgd", TorchStepper), ("lbfgs", TorchStepper), ("lm", LMStepper), ("marquardt", LMStepper)]
)
def test_make_stepper_picks_the_stepper_and_it_has_the_whole_protocol(optimizer, cls):
    stepper, _ = _stepper(optimizer, _problem()[2])
    assert type(stepper) is cls
    members = [m for m in dir(Stepper) if not m.startswith("_")] + list(Stepper.__annotations__)
    assert [m for m in members if not hasattr(stepper, m)] == []


# -- steppers: a stepper rebuilt from its state continues as the uninterrupted one ---------------------


@pytest.mark.parametrize(
    "optimizer, options", [("adam", {}), ("sgd", {"schedule": "cosine"}), ("lbfgs", {}), ("lm", {})]
)
def test_stepper_state_dict_continues_bit_for_bit(optimizer, options):
    """Three steps, state_dict, a fresh stepper loads it and takes three more: the uninterrupted six, to the bit."""

    def run(stepper, ds, steps):
        trace = []
        for k in steps:
            look = stepper.look(k, (ds.x, ds.y, ds.w))
            report = stepper.step(k, stepper.snapshot())
            trace.append((look.loss, look.grad_norm, look.lr, report.advanced, report.moved, report.stop))
        return trace

    whole_params = _problem()[2]
    whole, ds = _stepper(optimizer, whole_params, **options)
    want = run(whole, ds, range(6))
    # Real moves (L-BFGS's line searches reach the minimum in two), no test fired.
    moves = 2 if optimizer == "lbfgs" else 6
    assert [t[4] for t in want] == [True] * moves + [False] * (6 - moves)
    assert all(t[3] and t[5] is None for t in want)

    params = _problem()[2]
    first, _ = _stepper(optimizer, params, **options)
    got = run(first, ds, range(3))
    saved = {**first.state_dict(), "params": {k: v.detach().clone() for k, v in params.items()}}
    params = _problem()[2]
    second, _ = _stepper(optimizer, params, **options)
    with torch.no_grad():
        for name, value in saved["params"].items():
            params[name].copy_(value)
    second.load_state_dict(saved)
    got += run(second, ds, range(3, 6))
    assert got == want
    assert all(torch.equal(params[n], whole_params[n]) for n in whole_params)


def test_lm_stepper_state_dict_holds_the_iterate_in_float64():
    params = _problem(dtype=torch.float32)[2]
    stepper, _ = _stepper("lm", params, dtype=torch.float32)
    state = stepper.state_dict()
    assert set(state) == {"lm"}
    assert set(state["lm"]) == {"p", "sum_squares", "delta", "lam", "diag", "n_fev", "n_jev"}
    p = torch.stack([params["a"], params["b"]])
    assert state["lm"]["p"].dtype == torch.float64 and torch.equal(state["lm"]["p"].float(), p)


# -- the other parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 4, 5, 6, 9])
def test_batches_resumed_anywhere_give_the_uninterrupted_batches(cut):
    ds = as_dataset(linear(n=23, seed=0), x=["x"], y="y", dtype=torch.float64)
    whole = Batches(ds, 5, True, torch.Generator().manual_seed(7))  # 5 steps an epoch, the last of 3 rows
    want = [whole.take(k)[1].tolist() for k in range(12)]
    first = Batches(ds, 5, True, torch.Generator().manual_seed(7))
    got = [first.take(k)[1].tolist() for k in range(cut)]
    state = first.state_dict()
    second = Batches(ds, 5, True, torch.Generator().manual_seed(123))
    second.load_state_dict(state)
    got += [second.take(k)[1].tolist() for k in range(cut, 12)]
    assert got == want
    assert sorted(v for k in range(5) for v in want[k]) == sorted(ds.y.tolist())  # an epoch sees every row once


def test_full_batch_takes_every_row_and_never_draws():
    ds = as_dataset(linear(n=23, seed=0), x=["x"], y="y", dtype=torch.float64)
    generator = torch.Generator().manual_seed(7)
    before = generator.get_state()
    batches = Batches(ds, None, True, generator)
    x, y, w = batches.take(3)
    assert x is ds.x and y is ds.y and w is None and batches.per_epoch == 1
    assert torch.equal(generator.get_state(), before) and torch.equal(batches.state_dict(), before)


def _state(step, loss, epoch_end=True, grad_norm=1.0):
    return StepState(step, step, loss, math.nan, 0.1, grad_norm, 0.0, 100, {}, epoch_end=epoch_end)


def test_stopping_rules_state_dict_names_each_rule_and_continues_the_running_mean():
    losses = [5.0, 4.0, 3.9, 3.0, 2.9, 2.0, 1.9, 1.9, 1.9, 1.9]
    ends = [k % 2 == 1 for k in range(len(losses))]

    def rules():
        return StoppingRules([Target(0.5), Tolerance(1e-3), None, MaxTime(1e9)])

    whole = rules()
    want = [whole.check(_state(k, v, e)) for k, (v, e) in enumerate(zip(losses, ends))]
    assert want[-1] == "converged" and want[:-1] == [None] * 9
    first = rules()
    got = [first.check(_state(k, v, e)) for k, (v, e) in enumerate(zip(losses[:4], ends[:4]))]
    state = first.state_dict()
    assert state == {"Target": {}, "Tolerance": {"previous": pytest.approx(3.45), "running": []}, "MaxTime": {}}
    second = rules()
    second.load_state_dict(state)
    got += [second.check(_state(k, v, e)) for k, (v, e) in enumerate(zip(losses[4:], ends[4:]), 4)]
    assert got == want


def test_early_stopping_state_dict_continues_its_count():
    vals = [3.0, 2.0, 2.5, 1.0, 1.5, 1.4, 1.2]

    def run(early, pairs):
        return [early.update(k, v, {"a": torch.tensor([float(k)])}) for k, v in pairs]

    whole = EarlyStopping(3)
    want = run(whole, enumerate(vals))
    assert want[-1] == "early_stopped" and whole.best_step == 3
    first = EarlyStopping(3)
    got = run(first, list(enumerate(vals))[:5])
    state = first.state_dict()
    assert list(state) == ["patience", "min_delta", "best", "best_step", "best_params", "bad"]
    second = EarlyStopping(3)
    second.load_state_dict(state)
    got += run(second, list(enumerate(vals))[5:])
    assert got == want and second.best_step == whole.best_step
    assert torch.equal(second.best_params["a"], torch.tensor([3.0]))


def test_history_recorder_round_trip_after_thinning():
    names = ["a[0]", "a[1]"]
    whole = HistoryRecorder(names, max_rows=8, max_snapshots=4)
    for k in range(25):
        whole.add_row(k, k / 2, 1.0 / (k + 1), math.nan, 0.1, 2.0 / (k + 1), 0.01 * k)
        if whole.wants_snapshot(k):
            whole.add_snapshot(k, np.array([k, -k], dtype=float))
    state = whole.state_dict()
    again = HistoryRecorder(names, max_rows=8, max_snapshots=4)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.table(), whole.table())
    assert again.snap_steps == whole.snap_steps and again.row_every == whole.row_every > 1
    np.testing.assert_array_equal(np.stack(again.snaps), np.stack(whole.snaps))
    assert state["rows"].shape == (len(whole), 7) and state["snaps"].dtype == torch.float64


def test_loop_state_round_trip_moves_previous_to_the_device():
    state = LoopState(total=10, started=0.0, step=4, previous=[torch.tensor([1.0, 2.0])], still=2)
    saved = state.state_dict()
    assert set(saved) == {"step", "total", "previous", "still", "elapsed"} and saved["elapsed"] > 0
    again = LoopState(total=10, started=0.0)
    again.load_state_dict(saved, torch.device("cpu"))
    assert (again.step, again.still) == (4, 2) and torch.equal(again.previous[0], state.previous[0])


# -- the checkpoint is composed of the parts, under today's fields ------------------------------------

GD_FIELDS = [
    "step",
    "total",
    "params",
    "optimizer",
    "scheduler",
    "generator",
    "previous",
    "still",
    "early",
    "rules",
    "recorder",
    "elapsed",
]
LM_FIELDS = ["step", "params", "lm", "generator", "previous", "early", "rules", "recorder", "elapsed"]


@pytest.mark.parametrize("optimizer, fields", [("adam", GD_FIELDS), ("lm", LM_FIELDS)])
def test_checkpoint_fields_are_todays(tmp_path, optimizer, fields):
    model, ds, params = _problem()
    config = FitConfig(optimizer=optimizer, lr=0.003 if optimizer != "lm" else None, steps=4, tol=1e-3).validate()
    stop = StopRequest()
    callbacks = [type("StopAtOnce", (), {"on_start": lambda self, total: stop.set()})()]
    out = run_loop(
        model,
        get_loss("mse"),
        ds,
        None,
        params,
        frozenset(),
        config,
        callbacks=callbacks,
        generator=torch.Generator().manual_seed(0),
        checkpoints=Checkpointer(tmp_path),
        stop_request=stop,
    )  # a request (as by Ctrl-C) before step 0: the state is saved there
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert [k for k in saved if k not in ("format", "identity", "run")] == fields
    assert saved["step"] == out.steps == 0 and out.stop_reason == "interrupted"
    # LM applies tol itself (as ftol): only gradient descent carries a Tolerance rule.
    assert ("Tolerance" in saved["rules"]) == (optimizer != "lm")


def test_a_checkpoint_saved_again_right_after_a_mid_epoch_resume_still_resumes_exactly(tmp_path):
    """Resumed mid-epoch and saved at once (here: at the end of its budget), the checkpoint holds the generator
    of the epoch's start, not the fresh fit's, so resuming it once more gives the uninterrupted fit (the oracle).
    Before the shuffling generator owned its state, the second resume drew another order."""
    frame = linear(n=200, seed=0)
    kw = dict(y="y", init={"a": [1.0, 1.0]}, optimizer="sgd", lr=0.05, batch_size=32, seed=5)  # 7 steps an epoch
    full = gradfit.fit("linear", frame, steps=30, **kw)
    gradfit.fit("linear", frame, steps=10, checkpoint_every=5, checkpoint_dir=tmp_path, **kw)  # saved at step 10
    gradfit.fit("linear", frame, steps=10, checkpoint_every=5, checkpoint_dir=tmp_path, resume=tmp_path, **kw)
    again = gradfit.fit("linear", frame, steps=30, resume=tmp_path, **kw)
    assert again.steps == full.steps == 30
    assert all(torch.equal(torch.as_tensor(again.params[k]), torch.as_tensor(full.params[k])) for k in full.params)
