"""The optimizer race: every run equals a separate gradfit.fit with the same options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradfit
from gradfit.errors import ConfigError
from gradfit.experiments.race import descended, parse_run, run_race

COMMON = {"y": "y", "init": {"a": [-1.0, 1.0]}, "steps": 30}


@pytest.fixture(scope="module")
def data():
    return gradfit.datasets.linear(n=100, seed=0)


@pytest.fixture(scope="module")
def race(data):
    return run_race("linear", data, optimizers=["sgd:0.1", "momentum:0.05", "adam"], n=21, **COMMON)


def _inside(path, land):
    return (
        land.a[0] <= path[:, 0].min()
        and path[:, 0].max() <= land.a[-1]
        and land.b[0] <= path[:, 1].min()
        and path[:, 1].max() <= land.b[-1]
    )


def test_each_run_equals_a_separate_fit(race, data):
    assert race.labels == ("sgd, lr 0.1", "momentum, lr 0.05", "adam, lr 0.001")
    for result, options in zip(
        race.results, [{"optimizer": "sgd", "lr": 0.1}, {"optimizer": "momentum", "lr": 0.05}, {"optimizer": "adam"}]
    ):
        alone = gradfit.fit("linear", data, **COMMON, **options)
        assert torch.equal(result.params["a"], alone.params["a"])
        np.testing.assert_array_equal(result.history.loss, alone.history.loss)
    # Same start for all: step 0 of every path is the initial guess.
    for path in race.paths:
        np.testing.assert_array_equal(path[0], [-1.0, 1.0])


def test_paths_are_the_snapshots_and_the_grid_spans_them_all(race):
    assert len(race.paths) == 3 and race.landscape.loss.shape == (21, 21)
    for path, steps, result in zip(race.paths, race.path_steps, race.results):
        np.testing.assert_array_equal(path, result.history.snapshots)
        np.testing.assert_array_equal(steps, result.history.snapshot_steps)
        assert _inside(path, race.landscape)
    np.testing.assert_array_equal(race.landscape.path, race.paths[0])


def test_learning_rates_of_one_optimizer_and_a_divergent_run(data):
    r = run_race("linear", data, lrs=[0.05, 0.9, 3.0], n=11, optimizer="sgd", y="y", init={"a": [-1.0, 1.0]}, steps=60)
    assert r.labels == ("sgd, lr 0.05", "sgd, lr 0.9", "sgd, lr 3 (diverged)")
    assert r.diverged == (False, False, True)
    assert [res.config["lr"] for res in r.results] == [0.05, 0.9, 3.0]
    # The diverged run is kept, path and all, but the grid spans only the runs that descended.
    np.testing.assert_array_equal(r.paths[2], r.results[2].history.snapshots)
    assert _inside(r.paths[0], r.landscape) and _inside(r.paths[1], r.landscape)
    assert not _inside(r.paths[2], r.landscape)
    assert [descended(x) for x in r.results] == [True, True, False]


def test_explicit_runs_with_labels(data):
    r = run_race(
        "linear", data, runs=[{"lr": 0.1, "label": "slow"}, {"optimizer": "nesterov", "lr": 0.05}], n=5, **COMMON
    )
    assert r.labels == ("slow", "nesterov, lr 0.05")
    alone = gradfit.fit("linear", data, optimizer="nesterov", lr=0.05, **COMMON)
    assert torch.equal(r.results[1].params["a"], alone.params["a"])


def test_duplicate_labels_are_numbered(data):
    r = run_race("linear", data, optimizers=["sgd:0.1", "sgd:0.1"], n=5, **COMMON)
    assert r.labels == ("sgd, lr 0.1 #1", "sgd, lr 0.1 #2")


def test_parse_run():
    assert parse_run("adam") == {"optimizer": "adam"}
    assert parse_run("adam:0.1") == {"optimizer": "adam", "lr": 0.1}
    with pytest.raises(ConfigError, match="must be a number"):
        parse_run("adam:fast")


def test_bad_races_are_refused(data):
    with pytest.raises(ConfigError, match="A race needs runs"):
        run_race("linear", data, **COMMON)
    with pytest.raises(ConfigError, match="Give one of"):
        run_race("linear", data, runs=[{}], lrs=[0.1], **COMMON)
    with pytest.raises(ConfigError, match="same length"):
        run_race("linear", data, optimizers=["sgd"], lrs=[0.1, 0.2], **COMMON)
    with pytest.raises(ConfigError, match="'optimizer' parameter must be one of"):
        run_race("linear", data, optimizers=["adma"], **COMMON)


# -- Levenberg-Marquardt in a race: no learning rate, its path drawn like any other ----------------


def test_lm_races_without_a_learning_rate_and_equals_a_separate_fit(data):
    r = run_race("linear", data, optimizers=["adam:0.05", "lm"], n=11, **COMMON)
    assert r.labels == ("adam, lr 0.05", "lm")
    alone = gradfit.fit("linear", data, optimizer="lm", **COMMON)
    assert torch.equal(r.results[1].params["a"], alone.params["a"])
    assert r.results[1].config["lr"] is None
    # The oracle: least squares on [x, 1] (lm solves this linear problem exactly).
    X = torch.tensor(np.stack([data["x"], np.ones(len(data["x"]))], axis=1), dtype=torch.float64)
    best = torch.linalg.lstsq(X, torch.tensor(data["y"], dtype=torch.float64)[:, None]).solution[:, 0]
    np.testing.assert_allclose(r.results[1].params["a"].numpy(), best.numpy(), rtol=1e-9)
    # Its path is its snapshots (the history's lr column, the damping, plays no part), from the shared start.
    np.testing.assert_array_equal(r.paths[1], r.results[1].history.snapshots)
    np.testing.assert_array_equal(r.paths[1][0], [-1.0, 1.0])
    assert _inside(r.paths[1], r.landscape) and descended(r.results[1])


def test_a_shared_learning_rate_is_not_given_to_lm(data):
    r = run_race("linear", data, optimizers=["sgd", "lm"], lr=0.1, n=5, **COMMON)
    assert r.labels == ("sgd, lr 0.1", "lm")
    assert r.results[0].config["lr"] == 0.1 and r.results[1].config["lr"] is None


def test_a_learning_rate_for_lm_is_refused(data):
    assert parse_run("lm") == {"optimizer": "lm"} and parse_run("levenberg-marquardt") == {
        "optimizer": "levenberg-marquardt"
    }
    with pytest.raises(ConfigError, match="has no learning rate"):
        parse_run("lm:0.1")
    with pytest.raises(ConfigError, match="no learning rate to race"):
        run_race("linear", data, lrs=[0.1, 0.2], optimizer="lm", **COMMON)
    with pytest.raises(ConfigError, match="no learning rate to race"):
        run_race("linear", data, runs=[{"optimizer": "lm", "lr": 0.1}], **COMMON)


def test_labels_say_what_ran_including_an_automatic_choice(data):
    r = run_race("linear", data, runs=[{}, {"optimizer": "auto"}, {"optimizer": "sgd"}, {"lr": 0.1}], n=5, **COMMON)
    ran = [res.config["optimizer"] for res in r.results]
    lrs = [res.config["lr"] for res in r.results]
    assert ran[0] == ran[1] and ran[2] == ran[3] == "sgd" and lrs[3] == 0.1
    auto = f"auto ({ran[0]})" + (f", lr {lrs[0]:.3g}" if lrs[0] is not None else "")
    assert r.labels[:2] == (f"{auto} #1", f"{auto} #2")  # the same run twice, numbered
    assert r.labels[2] == f"sgd, lr {lrs[2]:.3g}" and r.labels[3] == "sgd, lr 0.1"  # the lr sgd used, not a guess


def test_each_runs_warning_names_the_run(data):
    """A race's fits warn as gradfit.fit does, each verdict prefixed with its run's label."""
    with pytest.warns(gradfit.GradfitWarning) as caught:
        race = run_race("linear", data, optimizers=["sgd:0.01", "adam:0.001"], steps=5, y="y", seed=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, gradfit.GradfitWarning)]
    for label in race.labels:
        assert any(m.startswith(f"{label}: ") and "Not converged" in m for m in messages), (label, messages)
    assert all(any(m.startswith(f"{label}: ") for label in race.labels) for m in messages)
