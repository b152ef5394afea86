"""RaceDisplay: one loss curve and one path per run, in the same colour in both panels."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image

import gradfit
from gradfit.experiments.race import run_race
from gradfit.plots.race import RaceDisplay, plot_race, visible_prefix

COMMON = {"y": "y", "init": {"a": [-1.0, 1.0]}, "steps": 40}


@pytest.fixture(scope="module")
def race():
    data = gradfit.datasets.linear(n=100, seed=0)
    return run_race("linear", data, optimizers=["sgd:0.1", "momentum:0.1", "adam:0.1"], n=21, **COMMON)


@pytest.fixture(scope="module")
def panels(race):
    fig = RaceDisplay(race).figure()
    losses, paths = fig.axes[0], fig.axes[1]
    return losses, paths


def by_prefix(ax, prefix):
    return [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]


def test_one_loss_curve_per_run_equal_to_its_history(race, panels):
    losses, _ = panels
    curves = losses.get_lines()
    assert len(curves) == 3
    for curve, label, result in zip(curves, race.labels, race.results):
        np.testing.assert_array_equal(curve.get_xdata(), result.history.step)
        np.testing.assert_array_equal(curve.get_ydata(), result.history.loss)
        assert curve.get_label() == f"{label}: {result.loss:.3g}"
    assert losses.get_yscale() == "log"  # 7.8 down to 0.078: two decades
    assert [t.get_text() for t in losses.get_legend().get_texts()] == [c.get_label() for c in curves]


def test_one_path_per_run_in_the_same_colour_as_its_curve(race, panels):
    losses, paths = panels
    for i, (label, result) in enumerate(zip(race.labels, race.results)):
        (path,) = by_prefix(paths, f"_path {label}")
        np.testing.assert_array_equal(path.get_xdata(), result.history.snapshots[:, 0])
        np.testing.assert_array_equal(path.get_ydata(), result.history.snapshots[:, 1])
        (end,) = by_prefix(paths, f"_end {label}")
        assert (end.get_xdata()[0], end.get_ydata()[0]) == tuple(result.history.snapshots[-1])
        assert to_hex(path.get_color()) == to_hex(losses.get_lines()[i].get_color()) == to_hex(end.get_color())
    colours = {to_hex(ln.get_color()) for ln in losses.get_lines()}
    assert len(colours) == 3
    (start,) = by_prefix(paths, "_start")
    assert (start.get_xdata()[0], start.get_ydata()[0]) == (-1.0, 1.0)


def test_a_path_that_blows_up_is_cut_where_it_leaves_the_frame(race):
    land = race.landscape
    far = np.array([[0.0, 2.0], [1.0, 2.5], [1e6, -1e6], [-1e9, 1e9], [np.nan, np.nan]])
    np.testing.assert_array_equal(visible_prefix(far, land), far[:3])
    np.testing.assert_array_equal(visible_prefix(race.paths[0], land), race.paths[0])


def test_png_size_and_single_panel(race, tmp_path):
    with Image.open(RaceDisplay(race).save(tmp_path / "race.png", dpi=50)) as img:
        assert img.size == (600, 250)
    ax = Figure().add_subplot()
    display = plot_race(race, ax=ax)
    assert len(by_prefix(ax, "_path")) == 3 and display.race is race


# -- the landscape covers the runs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wild():
    """A run that converges, one that overshoots for 12 steps (ends above its start, nearby) and one that blows up."""
    import warnings

    data = gradfit.datasets.linear(n=100, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lr 1.05 is past the stability limit, on purpose
        return run_race(
            "linear",
            data,
            y="y",
            init={"a": [-1.0, 1.0]},
            n=21,
            runs=[
                {"optimizer": "sgd", "lr": 0.1, "steps": 30},
                {"optimizer": "sgd", "lr": 1.05, "steps": 12},
                {"optimizer": "sgd", "lr": 1.05, "steps": 100},
            ],
        )


def inside(path, land):
    return bool(
        np.all(
            (path[:, 0] >= land.a[0])
            & (path[:, 0] <= land.a[-1])
            & (path[:, 1] >= land.b[0])
            & (path[:, 1] <= land.b[-1])
        )
    )


def test_the_landscape_covers_every_path_but_the_one_that_blew_up(wild):
    from gradfit.experiments.race import descended

    land = wild.landscape
    assert [descended(r) for r in wild.results] == [True, False, False]
    assert inside(wild.paths[0], land)
    assert inside(wild.paths[1], land)  # it overshot without descending, and is still drawn whole
    assert not inside(wild.paths[2], land)  # to 1e4: covering it would shrink the others to a dot
    assert np.ptp(land.a) < 20 and np.ptp(land.b) < 20
    losses, paths = RaceDisplay(wild).figure().axes[:2]
    labels = [t.get_text() for t in losses.get_legend().get_texts()]
    assert [label.endswith("(path leaves the map)") for label in labels] == [False, False, True]
    (overshoot,) = by_prefix(paths, f"_path {wild.labels[1]}")
    assert len(overshoot.get_xdata()) == len(wild.paths[1])  # not cut short


def test_the_race_animation_fills_its_panel_with_the_landscape(wild):
    from gradfit.plots.animate import RaceAnimation

    fig, _ = RaceAnimation(wild, max_frames=5).make_figure(dpi=40)
    land = wild.landscape
    ax = next(a for a in fig.axes if any(ln.get_gid() == "current" for ln in a.get_lines()))
    assert ax.get_xlim() == (land.a[0], land.a[-1]) and ax.get_ylim() == (land.b[0], land.b[-1])
