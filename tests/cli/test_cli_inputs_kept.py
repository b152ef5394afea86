"""Nothing lost: a command never writes over, replaces or removes a file it reads, and an empty path is refused.

Issue 9's examples: the data file in the output folder under a name the run writes
(``history.csv``, ``timings.csv``), reached directly, through an earlier run in the folder, or
through a link; ``--out ''`` (which was the current folder); a stale ``.tmp-*-checkpoint.pt``
left by ``kill -9``. Each refusal is exit 2 with a message naming the input, and leaves every
file as it was (compared byte for byte).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gradfit
from gradfit import outputs
from gradfit.cli.app import app
from gradfit.data.synthetic import linear
from gradfit.errors import ConfigError
from gradfit.outputs import save_run

runner = CliRunner()
LINEAR = ["--y", "y", "--x", "x", "--model", "linear", "--optimizer", "lm", "--no-uncertainty", "-q"]
# A noisy line that Levenberg-Marquardt fits with a success (exit 0).
TABLE = linear(30).to_csv(index=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # rich boxes wrap long messages


def assert_refused(code: int, output: str, before: dict, folder: Path, what: str) -> None:
    assert code == 2, output
    assert f"{what} would be lost: it is" in output or f"{what} (the same file as" in output, output
    assert "would be lost: it is among the files this command would write, replace or remove" in output
    assert "An input is never overwritten" in output and "internal error" not in output
    assert snapshot(folder) == before


@pytest.mark.parametrize("name", ["history.csv", "timings.csv"])
def test_a_data_file_named_like_a_run_file_in_the_output_folder_is_kept(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text(TABLE)
    before = snapshot(tmp_path)
    code, output = invoke("fit", out / name, *LINEAR, "--out", out, "--force")
    assert_refused(code, output, before, tmp_path, f"The data file '{out / name}'")
    assert "give another folder with --out" in output


def test_fitting_an_earlier_runs_history_into_that_run_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text(TABLE)
    code, output = invoke("fit", tmp_path / "d.csv", *LINEAR, "--out", tmp_path / "run")
    assert code == 0, output
    before = snapshot(tmp_path)
    # The earlier run is replaced without --force, so its history.csv would go with it.
    code, output = invoke(
        "fit",
        tmp_path / "run" / "history.csv",
        "--y",
        "loss",
        "--x",
        "step",
        "--model",
        "linear",
        "--optimizer",
        "lm",
        "--no-uncertainty",
        "-q",
        "--out",
        tmp_path / "run",
    )
    assert_refused(code, output, before, tmp_path, f"The data file '{tmp_path / 'run' / 'history.csv'}'")


def test_a_link_to_a_run_file_is_the_same_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.csv").write_text(TABLE)
    os.symlink(out / "history.csv", tmp_path / "data.csv")
    before = snapshot(tmp_path)
    code, output = invoke("fit", tmp_path / "data.csv", *LINEAR, "--out", out, "--force")
    assert_refused(code, output, before, tmp_path, f"The data file '{tmp_path / 'data.csv'}'")
    assert f"(the same file as '{out / 'history.csv'}')" in output


def test_the_default_out_never_touches_an_earlier_runs_history(tmp_path, monkeypatch):
    # The likely case: a curve fitted to gradfit-out/run-001/history.csv, without --out.
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(TABLE)
    assert invoke("fit", "d.csv", *LINEAR)[0] == 0
    history = Path("gradfit-out/run-001/history.csv")
    kept = history.read_bytes()
    code, output = invoke(
        "fit", history, "--y", "loss", "--x", "step", "--model", "linear", "--optimizer", "lm", "--no-uncertainty", "-q"
    )
    assert code in (0, 1), output
    assert history.read_bytes() == kept
    assert Path("gradfit-out/run-002/history.csv").is_file()


def test_steps_csv_onto_a_file_of_the_run_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text(TABLE)
    assert invoke("fit", tmp_path / "d.csv", *LINEAR, "--out", tmp_path / "run")[0] == 0
    before = snapshot(tmp_path)
    code, output = invoke("steps", tmp_path / "run", "--csv", tmp_path / "run" / "history.csv")
    assert_refused(code, output, before, tmp_path, f"The run's history.csv '{tmp_path / 'run' / 'history.csv'}'")
    assert "give another file to --csv" in output
    code, output = invoke("steps", tmp_path / "run", "--csv", tmp_path / "d.csv")
    assert_refused(code, output, before, tmp_path, f"The data file '{tmp_path / 'd.csv'}'")


def test_race_and_lr_find_keep_their_data(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "race.png").write_text(TABLE)  # a data file with a picture's name: unlikely, and still never lost
    (out / "lr_find.json").write_text(TABLE)
    before = snapshot(tmp_path)
    code, output = invoke(
        "race",
        out / "race.png",
        "--y",
        "y",
        "--x",
        "x",
        "--model",
        "linear",
        "--optimizers",
        "sgd,adam",
        "--out",
        out,
        "--force",
    )
    assert_refused(code, output, before, tmp_path, f"The data file '{out / 'race.png'}'")
    code, output = invoke(
        "lr-find", out / "lr_find.json", "--y", "y", "--x", "x", "--model", "linear", "--out", out, "--force"
    )
    assert_refused(code, output, before, tmp_path, f"The data file '{out / 'lr_find.json'}'")


def test_save_run_refuses_to_replace_the_fits_own_data(tmp_path):
    (tmp_path / "history.csv").write_text(TABLE)
    result = gradfit.fit("linear", tmp_path / "history.csv", y="y", x="x", optimizer="lm", uncertainty=False)
    before = snapshot(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"The fit's data file '.*history\.csv' would be lost.*save the run to "
        r"another folder",
    ):
        save_run(result, tmp_path)
    assert snapshot(tmp_path) == before
    assert save_run(result, tmp_path / "elsewhere")["history"].is_file()


# -- empty paths --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "d.csv", *LINEAR, "--out", ""],
        ["fit", "d.csv", *LINEAR, "--out", "  "],
        ["fit", "d.csv", *LINEAR, "--resume", ""],
        ["fit", "d.csv", *LINEAR, "--animate", ""],
        ["race", "d.csv", "--y", "y", "--x", "x", "--model", "linear", "--optimizers", "sgd,adam", "--out", ""],
        ["lr-find", "d.csv", "--y", "y", "--x", "x", "--model", "linear", "--out", ""],
    ],
    ids=["fit --out", "fit --out blanks", "fit --resume", "fit --animate", "race --out", "lr-find --out"],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(TABLE)
    before = snapshot(tmp_path)
    code, output = invoke(*args)
    assert code == 2, output
    assert "the path is empty" in output and "Give a name, or '.' for the current folder" in output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["plot", "", "--kind", "fit"],
        ["steps", ""],
        ["predict", "", "d.csv"],
        ["plot", ".", "--animate", ""],
        ["steps", ".", "--csv", ""],
        ["predict", ".", "d.csv", "--out", ""],
        ["demo", "linear", "--out", ""],
    ],
    ids=["plot RUN", "steps RUN", "predict RUN", "plot --animate", "steps --csv", "predict --out", "demo --out"],
)
def test_an_empty_path_to_a_saved_run_or_its_outputs_is_refused(tmp_path, monkeypatch, args):
    # A run in the current folder: '' would have reached it (and `plot ''` drew into it).
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(TABLE)
    assert invoke("fit", "d.csv", *LINEAR, "--out", ".", "--force")[0] == 0
    before = snapshot(tmp_path)
    code, output = invoke(*args)
    assert code == 2, output
    assert "the path is empty" in output and snapshot(tmp_path) == before


def test_dot_still_means_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(TABLE)
    code, output = invoke("fit", "d.csv", *LINEAR, "--out", ".", "--force")
    assert code == 0, output
    assert Path("result.json").is_file() and Path("d.csv").read_text() == TABLE


def test_the_library_refuses_an_empty_output_folder(tmp_path):
    result = gradfit.fit("linear", "builtin:linear?n=50", y="y", optimizer="lm", uncertainty=False)
    with pytest.raises(ConfigError, match=r"The output folder is an empty path \(''\)"):
        save_run(result, "")


# -- a killed writer's leftovers ---------------------------------------------------------------------------


def test_a_checkpoint_temporary_left_by_kill_9_is_cleaned_by_the_next_run(tmp_path):
    # A run killed while writing its first checkpoint leaves only the temporary file in its folder.
    (tmp_path / "d.csv").write_text(TABLE)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".tmp-0123456789ab-checkpoint.pt"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 2 * outputs.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    code, output = invoke("fit", tmp_path / "d.csv", *LINEAR, "--out", out)  # no --force: a leftover is no user file
    assert code == 0, output
    assert not stale.exists() and (out / "result.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_a_replaced_run_takes_its_checkpoint_temporaries_with_it(tmp_path):
    (tmp_path / "d.csv").write_text(TABLE)
    out = tmp_path / "out"
    assert invoke("fit", tmp_path / "d.csv", *LINEAR, "--out", out)[0] == 0
    for name in (".tmp-0123456789ab-checkpoint.pt", ".tmp-fedcba987654-checkpoint.pt"):
        (out / name).write_bytes(b"half a checkpoint")
    code, output = invoke("fit", tmp_path / "d.csv", *LINEAR, "--out", out)
    assert code == 0, output
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_writing_a_checkpoint_cleans_its_own_stale_temporaries(tmp_path):
    from gradfit.outputs import atomic_write_bytes

    old = time.time() - 2 * outputs.STALE_TEMP_SECONDS
    stale, other = tmp_path / ".tmp-0123456789ab-checkpoint.pt", tmp_path / ".tmp-0123456789ab-notes.txt"
    for path in (stale, other):
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    atomic_write_bytes(tmp_path / "checkpoint.pt", b"new")
    assert not stale.exists() and other.exists()
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"new"
