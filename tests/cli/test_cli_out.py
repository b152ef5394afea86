"""Output folders on the command line: a new folder per run, earlier runs replaced whole, other files refused."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.run_folder import MANIFEST_NAME

runner = CliRunner()
# Levenberg-Marquardt solves this in a step or two, a success; the number of rows tells the runs apart.
LINEAR = ["--y", "y", "--model", "linear", "--no-uncertainty"]
# Mini-batches, so that checkpoints are written along the way.
MINIBATCH = [*LINEAR, "--optimizer", "momentum", "--lr", "0.01", "--batch-size", "20", "--checkpoint-every", "10"]
RUN = {"history.csv", "result.json", "timings.csv", MANIFEST_NAME}


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def printed_folder(stdout: str) -> Path:
    match = re.search(r"^Writing to (.+)[/\\] \(a new folder\)$", stdout, flags=re.M)
    assert match, stdout
    return Path(match.group(1))


def fit(n: int, *options) -> list[str]:
    return ["fit", f"builtin:linear?n={n}", *LINEAR, "--optimizer", "lm", *options]


def rows(folder: Path) -> int:
    return json.loads((folder / "result.json").read_text())["data"]["n"]


def steps(folder: Path) -> int:
    return json.loads((folder / "result.json").read_text())["steps"]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the automatic folders are relative to the working directory
    return tmp_path


def test_each_run_without_out_gets_a_new_folder_and_says_which(cwd):
    first = runner.invoke(app, fit(50))
    second = runner.invoke(app, fit(70))
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    a, b = printed_folder(first.stdout), printed_folder(second.stdout)
    assert (a, b) == (Path("gradfit-out/run-001"), Path("gradfit-out/run-002"))
    assert f"wrote {a / 'result.json'}" in first.stdout
    assert rows(a) == 50 and rows(b) == 70  # the first run is untouched by the second
    assert files(a) == files(b) == RUN
    quiet = runner.invoke(app, [*fit(30), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stdout == "" and rows(cwd / "gradfit-out" / "run-003") == 30


def test_bad_input_without_out_creates_no_folder(cwd):
    res = runner.invoke(app, ["fit", "builtin:linear", "--y", "nope", "--model", "linear"])
    assert res.exit_code == 2 and "nope" in res.stderr and res.stdout == ""
    assert not (cwd / "gradfit-out").exists()
    (cwd / "gradfit-out").mkdir()
    res = runner.invoke(app, fit(50, "--steps", "-1"))
    assert res.exit_code == 2 and list((cwd / "gradfit-out").iterdir()) == []


def test_a_run_replaces_an_earlier_run_and_its_stale_files(tmp_path):
    out = tmp_path / "run1"
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear",
            *MINIBATCH,
            "--steps",
            "40",
            "--plot",
            "--landscape",
            "a[0],a[1]",
            "--animate",
            str(out / "fit.gif"),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert files(out) == RUN | {"fit.png", "loss.png", "params.png", "landscape.png", "fit.gif", "checkpoint.pt"}
    res = runner.invoke(app, fit(60, "--out", str(out)))
    assert res.exit_code == 0, res.output
    assert f"Writing to {out}{os.sep} (replacing the earlier run there)" in res.stdout
    assert files(out) == RUN and rows(out) == 60  # no stale picture, animation or checkpoint of the first run
    assert json.loads((out / MANIFEST_NAME).read_text())["files"] == sorted(RUN - {MANIFEST_NAME})


def test_a_folder_with_other_files_is_refused_before_fitting_and_force_leaves_them_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "data").mkdir()
    (out / "data" / "raw.csv").write_text("x,y\n")
    res = runner.invoke(app, fit(50, "--out", str(out)))
    assert res.exit_code == 2 and "Traceback" not in res.output and res.stdout == ""
    assert "data/, notes.txt" in res.stderr and "--force" in res.stderr
    assert snapshot(out) == {"notes.txt": b"my notes", "data/raw.csv": b"x,y\n"}

    res = runner.invoke(app, fit(50, "--plot", "--out", str(out), "--force"))
    assert res.exit_code == 0, res.output
    assert "leaving 2 other files alone" in res.stdout
    assert files(out) == RUN | {"fit.png", "loss.png", "params.png", "notes.txt", "data/raw.csv"}
    # Once a run is there, the other files still need --force; with it, the run is replaced and they stay.
    assert runner.invoke(app, fit(60, "--out", str(out))).exit_code == 2
    res = runner.invoke(app, fit(60, "--out", str(out), "--force"))
    assert res.exit_code == 0 and rows(out) == 60
    assert files(out) == RUN | {"notes.txt", "data/raw.csv"} and (out / "notes.txt").read_text() == "my notes"


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    res = runner.invoke(app, fit(50, "--out", str(tmp_path / "f")))
    assert res.exit_code == 2 and "is an existing file" in res.stderr and (tmp_path / "f").read_text() == "x"


def test_resume_continues_the_run_in_its_folder(tmp_path):
    out = tmp_path / "run"
    base = ["fit", "builtin:linear", *MINIBATCH, "--quiet"]
    assert runner.invoke(app, [*base, "--steps", "20", "--plot", "--out", str(out)]).exit_code == 0
    (out / "notes.txt").write_text("added by hand after the first part")
    checkpoint = (out / "checkpoint.pt").read_bytes()
    res = runner.invoke(app, [*base, "--steps", "40", "--resume", str(out)])  # --out defaults to the --resume folder
    assert res.exit_code == 0, res.output
    assert steps(out) == 40 and (out / "checkpoint.pt").read_bytes() != checkpoint  # the resumed run's checkpoint
    assert files(out) == RUN | {"checkpoint.pt", "notes.txt"}  # the first part's pictures are stale: gone
    # Resuming into another folder: that folder follows the usual rules, and the first one is not touched.
    before = snapshot(out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    res = runner.invoke(app, [*base, "--steps", "50", "--resume", str(out), "--out", str(other)])
    assert res.exit_code == 2 and "x.txt" in res.stderr
    res = runner.invoke(
        app, [*base, "--steps", "50", "--resume", str(out / "checkpoint.pt"), "--out", str(tmp_path / "third")]
    )
    assert res.exit_code == 0 and steps(tmp_path / "third") == 50 and snapshot(out) == before


def test_plot_adds_its_pictures_to_the_run_and_a_later_run_removes_them(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, fit(50, "--out", str(out), "--quiet")).exit_code == 0
    res = runner.invoke(
        app, ["plot", str(out), "--kind", "fit,grid,animation", "--animate", str(out / "a.html"), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert files(out) == RUN | {"fit.png", "grid.png", "a.html"}
    assert runner.invoke(app, fit(60, "--out", str(out), "--quiet")).exit_code == 0
    assert files(out) == RUN


def test_race_and_lr_find_get_folders_of_their_own(cwd):
    race = ["race", "builtin:linear", "--y", "y", "--model", "linear", "--optimizers", "sgd:0.1,lm", "--steps", "10"]
    res = runner.invoke(app, race)
    assert res.exit_code == 0, res.output
    assert printed_folder(res.stdout) == Path("gradfit-out/race-001")
    assert files(cwd / "gradfit-out" / "race-001") == {"race.png", MANIFEST_NAME}
    out = cwd / "r"
    assert runner.invoke(app, [*race, "--out", str(out), "--animate", str(out / "race.gif")]).exit_code == 0
    assert files(out) == {"race.png", "race.gif", MANIFEST_NAME}
    res = runner.invoke(app, [*race, "--out", str(out)])
    assert res.exit_code == 0 and files(out) == {"race.png", MANIFEST_NAME}  # the stale animation is gone

    res = runner.invoke(app, ["lr-find", "builtin:linear", "--y", "y", "--model", "linear", "--steps", "30"])
    assert res.exit_code == 0, res.output
    folder = cwd / printed_folder(res.stdout)
    assert folder == cwd / "gradfit-out" / "lr-find-001"
    assert files(folder) == {"lr_find.json", "lr_find.png", MANIFEST_NAME}
    res = runner.invoke(app, ["race", "builtin:linear", "--y", "y", "--model", "linear", "--optimizers", "lm:0.1"])
    assert res.exit_code == 2 and sorted(p.name for p in (cwd / "gradfit-out").iterdir()) == ["lr-find-001", "race-001"]


def test_a_demo_replaces_another_demo_whole(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "rollercoaster", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert {"converged/result.json", "converged/fit.png", "grid.png", "landscape.png"} <= files(out)
    res = runner.invoke(app, ["demo", "linear", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "replacing the earlier run there" in res.stdout
    assert files(out) == RUN | {"fit.png", "loss.png", "params.png", "grid.png", "landscape.png", "animation.gif"}
    assert not (out / "converged").exists()


def test_a_large_models_snapshot_file_goes_with_its_run(tmp_path):
    out = tmp_path / "run"
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
            "--no-uncertainty",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert files(out) == RUN | {"history_params.npz"}
    assert "history_params.npz" in json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert runner.invoke(app, fit(40, "--out", str(out), "--quiet")).exit_code == 0
    assert files(out) == RUN and rows(out) == 40
