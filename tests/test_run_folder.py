"""gradfit.run_folder: one run per folder, named without collisions, replaced whole, other files never touched."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

import gradfit
from gradfit import run_folder as rf
from gradfit.errors import ConfigError
from gradfit.outputs import atomic_write_bytes, save_run
from gradfit.run_folder import MANIFEST_NAME, RunFolder, new_run_folder, open_run_folder, read_manifest


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def result():
    return gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=0.1, steps=5, uncertainty=False)


def a_run(folder: Path, result, extra=("fit.png", "landscape.png", "checkpoint.pt"), listed=()) -> Path:
    """An earlier run in ``folder``: save_run's files, gradfit-named extras and ``listed`` files named in its manifest."""
    save_run(result, folder)
    for name in (*extra, *listed):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"earlier " + name.encode())
    RunFolder(folder).record([folder / n for n in ("result.json", "history.csv", "timings.csv", *extra, *listed)])
    return folder


# -- automatic names -------------------------------------------------------------------------------


def test_automatic_folders_are_numbered_per_command_after_the_highest(tmp_path):
    root = tmp_path / "gradfit-out"
    assert [new_run_folder("run", root).path.name for _ in range(3)] == ["run-001", "run-002", "run-003"]
    (root / "run-041").mkdir()
    (root / "run-notes").mkdir()  # not a number: ignored
    assert new_run_folder("run", root).path.name == "run-042"  # after the highest, never filling a gap
    assert new_run_folder("race", root).path.name == "race-001"
    assert new_run_folder("demo-linear", root).path.name == "demo-linear-001"
    folder = new_run_folder("run", root)
    assert folder.automatic and folder.path.is_dir() and not any(folder.path.iterdir())
    assert folder.describe() == f"Writing to {folder.path}{os.sep} (a new folder)"


def test_a_name_taken_by_another_process_meanwhile_is_skipped(tmp_path, monkeypatch):
    root = tmp_path / "out"
    root.mkdir()
    real_mkdir, raced = os.mkdir, []

    def mkdir(path, *args):
        # Another process creates run-001 and run-002 between our look at the folder and our mkdir.
        if Path(path).name in ("run-001", "run-002") and not Path(path).exists():
            real_mkdir(path)
            raced.append(Path(path).name)
        return real_mkdir(path, *args)

    monkeypatch.setattr(os, "mkdir", mkdir)
    assert new_run_folder("run", root).path.name == "run-003"
    assert raced == ["run-001", "run-002"]


def _claim(root, barrier, queue):
    barrier.wait()  # every process looks at the folder at the same moment
    queue.put(new_run_folder("run", root).path.name)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_started_at_the_same_moment_get_different_folders(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(tmp_path, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    names = sorted(queue.get(timeout=60) for _ in range(n))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert names == [f"run-{i:03d}" for i in range(1, n + 1)]


def test_automatic_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "gradfit-out").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        new_run_folder("run", tmp_path / "gradfit-out")


def test_a_failed_command_leaves_no_empty_folder_behind(tmp_path):
    root = tmp_path / "a" / "gradfit-out"
    folder = new_run_folder("run", root)
    with pytest.raises(ValueError), folder.discarded_on_error():
        raise ValueError("bad input")
    assert not (tmp_path / "a" / "gradfit-out").exists() and (tmp_path / "a").exists() is False
    kept = new_run_folder("run", tmp_path / "out")
    with pytest.raises(ValueError), kept.discarded_on_error():
        (kept.path / "checkpoint.pt").write_bytes(b"x")  # written before the failure: kept
        raise ValueError("late failure")
    assert (kept.path / "checkpoint.pt").exists()


# -- what a folder holds ------------------------------------------------------------------------------


def test_a_new_or_empty_folder_is_accepted_and_nothing_is_created(tmp_path):
    folder = open_run_folder(tmp_path / "new")
    assert folder == RunFolder(tmp_path / "new") and not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert not open_run_folder(tmp_path / "empty").replaces
    assert open_run_folder(tmp_path / "new").describe() == f"Writing to {tmp_path / 'new'}{os.sep}"


def test_a_run_folder_is_replaced_and_its_files_are_the_listed_and_gradfit_named_ones(tmp_path, result):
    run = a_run(tmp_path / "run", result, listed=("fit.gif", "converged/result.json", "converged/fit.png"))
    (run / ".DS_Store").write_bytes(b"")  # the operating system's, ignored
    (run / ".tmp-0123456789ab-fit.png").write_bytes(b"half")  # a killed writer's leftover
    before = snapshot(run)
    folder = open_run_folder(run)
    assert folder.replaces and folder.others == ()
    assert set(folder.earlier) == {
        "result.json",
        "history.csv",
        "timings.csv",
        "fit.png",
        "landscape.png",
        "checkpoint.pt",
        "fit.gif",
        "converged/result.json",
        "converged/fit.png",
        ".tmp-0123456789ab-fit.png",
        MANIFEST_NAME,
    }
    assert snapshot(run) == before  # looking writes nothing
    assert "replacing the earlier run there" in folder.describe()


def test_other_files_are_refused_naming_them_and_force(tmp_path, result):
    run = a_run(tmp_path / "run", result)
    for name in ("notes.txt", "data.csv", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt"):
        (run / name).write_text("mine")
    (run / "plots").mkdir()
    before = snapshot(run)
    with pytest.raises(ConfigError) as err:
        open_run_folder(run)
    message = str(err.value)
    assert "besides an earlier run" in message and "--force" in message and "gradfit-out" in message
    assert "b.txt, c.txt, d.txt, data.csv, e.txt and 3 more" in message  # a few, sorted, and how many others
    assert snapshot(run) == before
    forced = open_run_folder(run, force=True)
    assert set(forced.others) == {"notes.txt", "data.csv", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "plots/"}
    assert "fit.png" in forced.earlier and "notes.txt" not in forced.earlier
    assert "leaving 8 other files alone" in forced.describe()


def test_gradfit_names_without_a_run_are_someone_elses(tmp_path):
    (tmp_path / "fit.png").write_bytes(b"my own picture")  # no result.json, history or list: not a run
    with pytest.raises(ConfigError, match="fit.png"):
        open_run_folder(tmp_path)
    assert open_run_folder(tmp_path, force=True).earlier == {}


def test_a_subfolder_is_the_runs_only_if_everything_in_it_is_listed(tmp_path, result):
    run = a_run(tmp_path / "run", result, listed=("converged/result.json",))
    (run / "converged" / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match="converged/"):
        open_run_folder(run)


def test_symlinks_are_never_a_runs_file(tmp_path, result):
    run = a_run(tmp_path / "run", result)
    (tmp_path / "precious.txt").write_text("keep")
    (run / "loss.png").symlink_to(tmp_path / "precious.txt")
    with pytest.raises(ConfigError, match="loss.png"):
        open_run_folder(run)
    open_run_folder(run, force=True).clear_earlier()
    assert (tmp_path / "precious.txt").read_text() == "keep" and (run / "loss.png").is_symlink()


def test_a_manifest_cannot_reach_outside_the_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / MANIFEST_NAME).write_text(
        json.dumps({"format": "gradfit.run-files/1", "files": ["../outside.txt", "/etc/passwd", "ok.png", 3]})
    )
    assert read_manifest(tmp_path / "run") == ["ok.png"]
    (tmp_path / "run" / MANIFEST_NAME).write_text("{not json")
    assert read_manifest(tmp_path / "run") == []


# -- replacing -----------------------------------------------------------------------------------------


def test_clear_earlier_removes_what_the_new_run_did_not_rewrite_and_nothing_else(tmp_path, result):
    run = a_run(tmp_path / "run", result, listed=("fit.gif", "converged/result.json", "converged/fit.png"))
    (run / "notes.txt").write_text("mine")
    folder = open_run_folder(run, force=True)
    atomic_write_bytes(run / "checkpoint.pt", b"the new run's checkpoint")  # rewritten while the new run ran
    removed = folder.clear_earlier()
    assert {p.relative_to(run).as_posix() for p in removed} == {
        "result.json",
        "history.csv",
        "timings.csv",
        "fit.png",
        "landscape.png",
        "fit.gif",
        MANIFEST_NAME,
        "converged/result.json",
        "converged/fit.png",
    }
    assert snapshot(run) == {"checkpoint.pt": b"the new run's checkpoint", "notes.txt": b"mine"}
    assert not (run / "converged").exists()  # emptied, so removed


def test_save_run_replaces_the_earlier_run_between_removing_its_result_and_writing_the_new(tmp_path, result):
    """The order that keeps a folder with result.json from ever holding files of two runs."""
    run = a_run(tmp_path / "run", result)
    folder = open_run_folder(run)
    seen = {}

    def before_result():
        seen["result.json present"] = (run / "result.json").exists()
        seen["history is new"] = (run / "history.csv").stat().st_ino != folder.earlier["history.csv"][0]
        folder.clear_earlier()
        folder.record([run / n for n in ("result.json", "history.csv", "timings.csv")])

    save_run(result, run, before_result=before_result)
    assert seen == {"result.json present": False, "history is new": True}
    assert sorted(snapshot(run)) == [MANIFEST_NAME, "history.csv", "result.json", "timings.csv"]
    assert read_manifest(run) == ["history.csv", "result.json", "timings.csv"]


def test_a_failed_save_leaves_the_earlier_run_whole(tmp_path, result, monkeypatch):
    from gradfit import outputs

    run = a_run(tmp_path / "run", result)
    folder = open_run_folder(run)
    before = snapshot(run)

    def disk_full(frame, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_csv", disk_full)
    with pytest.raises(OSError):
        save_run(result, run, before_result=folder.clear_earlier)
    assert snapshot(run) == before


def test_record_keeps_paths_inside_the_folder_and_merges(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.record([tmp_path / "run" / "fit.png", tmp_path / "elsewhere.gif", "relative-outside.png"])
    folder.record([tmp_path / "run" / "sub" / "a.html"])
    assert read_manifest(tmp_path / "run") == ["fit.png", "sub/a.html"]
    assert rf.KNOWN_FILES >= rf.RUN_MARKERS


def test_every_picture_the_cli_draws_is_a_known_run_file():
    from gradfit.plots.run_pictures import KINDS

    assert {f"{k}.png" for k in KINDS if k != "animation"} | {"animation.gif"} <= rf.KNOWN_FILES
