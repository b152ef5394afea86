"""gradfit.outputs: atomic writes and saving a run."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit.errors import ConfigError
from gradfit.outputs import atomic_path, atomic_write_bytes, atomic_write_text, check_out_dir, save_run


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_atomic_write_text_writes_and_replaces(tmp_path):
    target = tmp_path / "a.txt"
    assert atomic_write_text(target, "first\n") == target
    assert target.read_text() == "first\n"
    atomic_write_text(target, "second ü\n")
    assert target.read_bytes() == "second ü\n".encode()
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes(tmp_path):
    data = bytes(range(256)) * 3
    atomic_write_bytes(tmp_path / "b.bin", data)
    assert (tmp_path / "b.bin").read_bytes() == data


def test_atomic_path_is_a_sibling_with_the_same_suffix(tmp_path):
    target = tmp_path / "history.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv" and tmp != target
        assert not target.exists()  # nothing visible until the block succeeds
        tmp.write_text("x\n1\n")
    assert target.read_text() == "x\n1\n"
    assert _leftovers(tmp_path) == []


def test_atomic_path_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_without_a_written_file_fails_cleanly(tmp_path):
    target = tmp_path / "never.txt"
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass
    assert not target.exists() and _leftovers(tmp_path) == []


def test_fsync_happens_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    atomic_write_text(tmp_path / "c.txt", "x")
    assert events.index("fsync") < events.index("replace")


def test_failed_rename_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "d.txt"
    target.write_text("old")

    def refuse(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def result():
    return gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=7)


def test_save_run_writes_result_and_history(tmp_path, result):
    out = tmp_path / "runs" / "one"
    paths = save_run(result, out)
    assert paths == {"result": out / "result.json", "history": out / "history.csv", "timings": out / "timings.csv"}
    saved = json.loads(paths["result"].read_text())
    record = saved.pop("run")  # the run's id and its files' digests (gradfit.run_schema), last
    assert saved == json.loads(result.to_json())
    assert record["id"] == result.run_id and sorted(record["files"]) == ["history.csv", "timings.csv"]
    assert record["files"]["history.csv"]["sha256"] == hashlib.sha256(paths["history"].read_bytes()).hexdigest()
    history = pd.read_csv(paths["history"])
    expected = result.history.to_frame()
    assert len(history) == result.steps + 1 == 8
    pd.testing.assert_frame_equal(history, expected, check_dtype=False)
    assert _leftovers(out) == []


def test_save_run_replaces_an_earlier_run(tmp_path, result):
    (tmp_path / "result.json").write_text("{}")
    (tmp_path / "history.csv").write_text("stale\n")
    save_run(result, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 7
    assert pd.read_csv(tmp_path / "history.csv")["step"].tolist() == list(range(8))


def test_check_out_dir(tmp_path):
    new = tmp_path / "a" / "b"
    assert check_out_dir(new) == new and not new.exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_out_dir(tmp_path / "file" / "sub")


@pytest.fixture(scope="module")
def mlp_result():
    """An MLP of 1 + 16*16 + ... parameters: above MAX_PARAM_COLUMNS, so its snapshots get a file of their own."""
    return gradfit.fit(
        "mlp", "builtin:linear", y="y", model_options={"hidden": (16, 16)}, optimizer="adam", lr=0.01, steps=12
    )


def test_large_model_snapshots_go_to_an_npz_and_load_back_exactly(tmp_path, mlp_result):
    from gradfit.outputs import load_run
    from gradfit.train.snapshots import MAX_PARAM_COLUMNS

    h = mlp_result.history
    assert len(h.param_names) == 16 + 16 + 256 + 16 + 16 + 1 > MAX_PARAM_COLUMNS
    paths = save_run(mlp_result, tmp_path)
    assert paths["snapshots"] == tmp_path / "history_params.npz"
    assert list(pd.read_csv(paths["history"]).columns) == ["step", "epoch", "loss", "val_loss", "lr", "grad_norm"]
    with np.load(paths["snapshots"], allow_pickle=False) as z:
        assert z["values"].dtype == np.float32  # a float32 fit: stored exactly in float32
        np.testing.assert_array_equal(z["values"].astype(np.float64), h.snapshots)
        assert tuple(z["names"]) == h.param_names and z["step"].tolist() == h.snapshot_steps.tolist()
    loaded = load_run(tmp_path)
    assert loaded.history.param_names == h.param_names
    np.testing.assert_array_equal(loaded.history.snapshots, h.snapshots)
    np.testing.assert_array_equal(loaded.history.snapshot_steps, h.snapshot_steps)
    np.testing.assert_array_equal(loaded.history.loss, h.loss)
    assert _leftovers(tmp_path) == []


def test_snapshot_file_is_smaller_than_the_csv_and_its_bytes_repeat(tmp_path, mlp_result):
    save_run(mlp_result, tmp_path / "a")
    save_run(mlp_result, tmp_path / "b")
    npz = (tmp_path / "a" / "history_params.npz").read_bytes()
    assert npz == (tmp_path / "b" / "history_params.npz").read_bytes()
    wide = mlp_result.history.to_frame().to_csv(index=False, lineterminator="\n").encode()
    assert len(npz) + (tmp_path / "a" / "history.csv").stat().st_size < len(wide) / 2


def test_float64_snapshots_stay_float64(tmp_path):
    from gradfit.train.snapshots import read_snapshots, snapshots_bytes

    values = np.array([[0.1, 1 / 3], [np.nan, 2.0]])
    (tmp_path / "s.npz").write_bytes(snapshots_bytes(("a", "b"), [0, 4], values))
    names, steps, back = read_snapshots(tmp_path / "s.npz")
    assert names == ("a", "b") and steps.tolist() == [0, 4]
    np.testing.assert_array_equal(back, values)
    with np.load(tmp_path / "s.npz") as z:
        assert z["values"].dtype == np.float64


def test_small_run_saved_over_a_large_one_drops_its_snapshots(tmp_path, result, mlp_result):
    from gradfit.outputs import load_run

    save_run(mlp_result, tmp_path)
    assert (tmp_path / "history_params.npz").is_file()
    paths = save_run(result, tmp_path)
    assert "snapshots" not in paths and not (tmp_path / "history_params.npz").exists()
    assert load_run(tmp_path).history.param_names == ("a[0]", "a[1]")


def test_snapshots_of_another_run_or_a_damaged_file_are_refused(tmp_path, mlp_result):
    from gradfit.errors import DataError
    from gradfit.outputs import load_run
    from gradfit.train.snapshots import snapshots_bytes

    save_run(mlp_result, tmp_path)
    (tmp_path / "history_params.npz").write_bytes(snapshots_bytes(("p", "q"), [0], [[1.0, 2.0]]))
    with pytest.raises(DataError, match="history_params.npz' is not the file run '[0-9a-f]{16}' saved in"):
        load_run(tmp_path)  # result.json's digest of the file says so first
    # A run saved before result.json sealed its files is still checked by what the files hold.
    saved = json.loads((tmp_path / "result.json").read_text())
    del saved["run"]
    (tmp_path / "result.json").write_text(json.dumps(saved))
    with pytest.raises(DataError, match="belong to different runs"):
        load_run(tmp_path)
    (tmp_path / "history_params.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not a gradfit parameter history"):
        load_run(tmp_path)
