"""The picture options of the CLI: fit --plot/--landscape/--animate, plot DIR, race, demo figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.cli.picture_options import parse_kinds, parse_pair
from gradfit.outputs import load_run
from gradfit.plots.run_pictures import KINDS, check_animation_path

runner = CliRunner()
# Whitened sgd with lr 0.5 reaches the optimum in one step, so a 20-step fit converges (a fit short of it exits 1).
FIT = [
    "fit",
    "builtin:linear",
    "--y",
    "y",
    "--model",
    "linear",
    "--optimizer",
    "sgd",
    "--scale",
    "--lr",
    "0.5",
    "--steps",
    "20",
    "--quiet",
]


def png_size(path):
    with Image.open(path) as im:
        return im.format, im.size


def test_fit_plot_landscape_and_animation(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app, [*FIT, "--out", str(out), "--plot", "--landscape", "a[0],a[1]", "--animate", str(out / "anim.gif")]
    )
    assert res.exit_code == 0, res.output
    for name, size in [("fit.png", (640, 440)), ("loss.png", (640, 440)), ("landscape.png", (640, 500))]:
        assert png_size(out / name) == ("PNG", size)
    assert png_size(out / "params.png")[0] == "PNG"
    with Image.open(out / "anim.gif") as im:
        assert im.format == "GIF" and im.n_frames == 21  # every snapshot of a 20-step fit, start included


def test_plot_redraws_a_saved_run_without_refitting(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, [*FIT, "--out", str(out)]).exit_code == 0
    before = (out / "result.json").read_text()
    res = runner.invoke(app, ["plot", str(out), "--kind", "fit,grid,landscape", "--quiet"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} >= {"fit.png", "grid.png", "landscape.png"}
    assert (out / "result.json").read_text() == before
    res = runner.invoke(app, ["plot", str(out), "--kind", "animation", "--animate", str(out / "a.html"), "--quiet"])
    assert res.exit_code == 0, res.output
    page = (out / "a.html").read_text()
    assert page.startswith("<!doctype html>") and "https://" not in page and "http://" not in page


@pytest.mark.parametrize(
    "args, match",
    [
        (["--kind", "fit,pie"], "Unknown picture kind"),
        (["--landscape", "a[0]"], "two different parameter names"),
        (["--landscape", "a[0],q"], "q"),
        (["--animate", "movie.avi"], "must be .gif, .mp4 or .html"),
    ],
)
def test_plot_bad_options_exit_2_without_traceback(tmp_path, args, match):
    out = tmp_path / "run"
    assert runner.invoke(app, [*FIT, "--out", str(out)]).exit_code == 0
    res = runner.invoke(app, ["plot", str(out), *args])
    assert res.exit_code == 2
    assert match in res.output and "Traceback" not in res.output


def test_plot_of_a_folder_without_a_run(tmp_path):
    res = runner.invoke(app, ["plot", str(tmp_path)])
    assert res.exit_code == 2 and "result.json is missing" in res.output


def test_fit_with_a_bad_landscape_name_is_refused_before_fitting(tmp_path):
    """Issue 9: the name was caught only after the fit had been written; now at the door, nothing written."""
    out = tmp_path / "run"
    res = runner.invoke(app, [*FIT, "--out", str(out), "--landscape", "a[0],nope"])
    assert res.exit_code == 2, res.output
    assert "The --landscape option (a[0],nope): The model 'linear' has no parameter 'nope'" in res.output
    assert "Its parameters are: a[0], a[1]" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_fit_refuses_a_bad_animation_path_before_fitting(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, [*FIT, "--out", str(out), "--animate", str(tmp_path / "x.avi")])
    assert res.exit_code == 2 and ".gif, .mp4 or .html" in res.output
    assert not out.exists()


def test_race_writes_the_figure_and_one_row_per_run(tmp_path):
    out = tmp_path / "race"
    res = runner.invoke(
        app,
        [
            "race",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizers",
            "sgd:0.1,momentum:0.1,adam:0.1",
            "--steps",
            "30",
            "--init",
            "a=-1,a[1]=1",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert png_size(out / "race.png")[0] == "PNG"
    for label in ("sgd, lr 0.1", "momentum, lr 0.1", "adam, lr 0.1"):
        assert label in res.output
    res = runner.invoke(app, ["race", "builtin:linear", "--y", "y", "--model", "linear", "--out", str(out)])
    assert res.exit_code == 2 and "Say what to race" in res.output


def test_demo_linear_writes_the_seeds_pictures(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "linear", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    for name in ("fit.png", "loss.png", "params.png", "grid.png", "landscape.png"):
        assert png_size(out / name)[0] == "PNG"
    result = load_run(out)
    with Image.open(out / "animation.gif") as im:
        assert len(result.history.snapshot_steps) == 101 and im.n_frames == 100  # capped at max_frames=100


def test_picture_option_parsing():
    assert parse_kinds(None) == ("fit", "loss", "params")
    assert parse_kinds("all") == KINDS
    assert parse_pair("a[0],a[1]") == ("a[0]", "a[1]")
    assert parse_pair("W[0,1],b") == ("W[0,1]", "b")
    assert check_animation_path("x/y.gif").name == "y.gif"
    if not matplotlib.animation.writers.is_available("ffmpeg"):
        with pytest.raises(Exception, match="needs ffmpeg"):
            check_animation_path("a.mp4")
    np.testing.assert_equal(len(KINDS), 6)


def test_a_large_models_run_redraws_and_steps_from_its_npz(tmp_path):
    out = tmp_path / "mlp"
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "mlp",
            "--option",
            "hidden=8,8",
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--steps",
            "15",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "history_params.npz").is_file() and "W0[0,0]" not in (out / "history.csv").read_text()
    res = runner.invoke(app, ["plot", str(out), "--kind", "all", "--quiet"])
    assert res.exit_code == 0, res.output
    for name in ("fit.png", "loss.png", "params.png", "grid.png", "landscape.png"):
        assert png_size(out / name)[0] == "PNG"
    with Image.open(out / "animation.gif") as im:
        assert im.n_frames == 16  # every kept snapshot, start included
    res = runner.invoke(app, ["steps", str(out)])
    assert res.exit_code == 0, res.output
    assert "W0[0,0]" in res.output and "97" in res.output  # the walk-through reads the snapshots from the npz


def test_race_with_lm_draws_its_path(tmp_path):
    out = tmp_path / "race"
    res = runner.invoke(
        app,
        [
            "race",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizers",
            "adam:0.05,lm",
            "--steps",
            "30",
            "--init",
            "a=-1,a[1]=1",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert png_size(out / "race.png")[0] == "PNG"
    assert "adam, lr 0.05" in res.output and "converged" in res.output
    res = runner.invoke(
        app,
        [
            "race",
            "builtin:linear",
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizers",
            "adam:0.05,lm:0.1",
            "--out",
            str(tmp_path / "other"),
        ],
    )
    assert res.exit_code == 2 and "has no learning rate" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "other").exists()


def test_race_prints_each_runs_warning_as_a_line_naming_the_run(tmp_path):
    """As gradfit fit prints its verdict: 'Warning: <run>: ...' on stderr, not Python's file:line warning form."""
    res = CliRunner().invoke(
        app,
        ["race", "builtin:linear", "--y", "y", "--model", "linear", "--optimizers", "sgd:0.01,adam:0.001"]
        + ["--steps", "5", "--out", str(tmp_path / "race"), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    assert "Warning: sgd, lr 0.01: " in res.stderr and "Warning: adam, lr 0.001: " in res.stderr
    assert "race.py" not in res.output and "GradfitWarning" not in res.output
