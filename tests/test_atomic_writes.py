"""Atomic outputs: a writer killed (SIGKILL) or failing mid-way never leaves a partial file.

The oracle is the pair of complete contents A and B written in turn: after each kill every
output file must equal one of them byte for byte. Temporary files may survive a SIGKILL (a
killed process cannot clean up): they must be hidden, named ``.tmp-<hex>-<target>``, ignored by
``load_run`` and removed by the next ``save_run`` once stale.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gradfit  # noqa: E402
from gradfit import outputs  # noqa: E402
from gradfit.outputs import atomic_write_bytes, is_temp_name, load_run, remove_stale_temps, save_run  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not hasattr(os, "fork"), reason="POSIX only")

RUN_FILES = ("result.json", "history.csv", "timings.csv")

# A child that rewrites one file forever, alternating two 4 MB contents; it says "ready" once the
# first write is complete, so every kill lands in the middle of a later write cycle.
BYTES_WRITER = """
import sys
from gradfit.outputs import atomic_write_bytes
target, size = sys.argv[1], int(sys.argv[2])
contents = [bytes([i % 251 for i in range(256)]) * (size // 256), b"B" * size + b"end"]
i = 0
while True:
    atomic_write_bytes(target, contents[i % 2])
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def _leftovers(folder: Path, keep=RUN_FILES) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_sigkill_during_atomic_write_bytes_leaves_old_or_new_never_partial(tmp_path):
    size = 4 * 2**20
    a = bytes([i % 251 for i in range(256)]) * (size // 256)
    b = b"B" * size + b"end"
    target = tmp_path / "big.bin"
    target.write_bytes(b)
    rng = random.Random(5)
    seen, mid_write = set(), 0
    for _ in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", BYTES_WRITER, str(target), str(size)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            child.kill()  # SIGKILL: no handler, no finally, no cleanup in the child
            child.communicate()
        assert child.returncode == -signal.SIGKILL
        content = target.read_bytes()
        assert content in (a, b), f"partial file: {len(content)} bytes"
        seen.add(content[:1])
        left = _leftovers(tmp_path, keep=("big.bin",))
        assert all(name.startswith(".tmp-") and is_temp_name(name, "big.bin") for name in left), left
        mid_write += bool(left)
        for name in left:
            (tmp_path / name).unlink()
    assert mid_write >= 1  # the kills did land mid-write, so the check above was put to the test


# A child that saves two distinguishable runs, A and B, as references, then forks writers that
# save_run B, A, B, ... into one folder until it kills them at random moments, copying the
# folder's state after each kill for the test to judge.
RUN_WRITER = """
import os, random, shutil, signal, sys, time
from dataclasses import replace
from pathlib import Path
import numpy as np
import gradfit
from gradfit.outputs import save_run
from gradfit.train.history import History

root, kills = Path(sys.argv[1]), int(sys.argv[2])
base = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=3)

def run(seed, n=20_000):  # about 0.2 s a save_run
    rng = np.random.default_rng(seed)
    cols = {c: rng.normal(size=n) for c in ("epoch", "loss", "val_loss", "lr", "grad_norm", "time")}
    cols["step"] = np.arange(n, dtype=np.float64)
    snaps = np.arange(0, n, 10)
    h = History(cols, base.history.param_names, snaps, rng.normal(size=(len(snaps), len(base.history.param_names))))
    return replace(base, history=h, message=f"run {seed}")

runs = {"A": run(1), "B": run(2)}
for name, r in runs.items():
    save_run(r, root / "ref" / name)
target = root / "target"
save_run(runs["A"], target)
rng = random.Random(7)
for k in range(kills):
    pid = os.fork()
    if pid == 0:
        i = 0
        while True:
            save_run(runs["B" if i % 2 == 0 else "A"], target)
            i += 1
    time.sleep(rng.uniform(0.0, 0.35))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    shutil.copytree(target, root / "after" / str(k))
    for p in target.iterdir():
        if p.name.startswith(".tmp-"):
            p.unlink()
print("done", flush=True)
"""


def test_sigkill_during_save_run_leaves_each_file_whole_and_the_run_consistent(tmp_path):
    kills = 8
    done = subprocess.run(
        [sys.executable, "-c", RUN_WRITER, str(tmp_path), str(kills)], capture_output=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout == b"done\n", done.stderr.decode()[-3000:]
    refs = {name: {f: (tmp_path / "ref" / name / f).read_bytes() for f in RUN_FILES} for name in "AB"}
    assert refs["A"]["history.csv"] != refs["B"]["history.csv"] and refs["A"]["result.json"] != refs["B"]["result.json"]
    expected = {name: load_run(tmp_path / "ref" / name) for name in "AB"}
    mid_write = 0
    for k in range(kills):
        after = tmp_path / "after" / str(k)
        origin = {}
        for f in RUN_FILES:
            if (after / f).exists():
                content = (after / f).read_bytes()
                matches = [name for name in "AB" if refs[name][f] == content]
                assert matches, f"kill {k}: {f} is partial ({len(content)} bytes)"
                origin[f] = matches[0]
        left = _leftovers(after)
        assert all(any(is_temp_name(name, f) for f in RUN_FILES) for name in left), left
        mid_write += bool(left)
        # The earlier result.json goes before the new files replace the old: result.json, when
        # present, always describes the history beside it.
        if "result.json" in origin:
            assert origin["history.csv"] == origin["timings.csv"] == origin["result.json"], (k, origin)
            loaded, want = load_run(after), expected[origin["result.json"]]  # temp leftovers are ignored
            assert loaded.message == want.message
            np.testing.assert_array_equal(loaded.history.loss, want.history.loss)
            np.testing.assert_array_equal(loaded.history.snapshots, want.history.snapshots)
        else:
            with pytest.raises(gradfit.DataError, match="result.json is missing"):
                load_run(after)
    assert mid_write >= 1


# -- errors while writing ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result():
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, lr=0.1, steps=6)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_error_while_writing_the_history_leaves_the_earlier_run_untouched(tmp_path, result, monkeypatch):
    save_run(result, tmp_path)
    before = _snapshot(tmp_path)
    calls = []

    def half_then_fail(table, path):
        calls.append(path)
        outputs.write_numbers_csv(table, path)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        _disk_full()

    monkeypatch.setattr(outputs, "write_csv", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_run(replace(result, message="newer"), tmp_path)
    assert calls and _snapshot(tmp_path) == before  # no temp file, every old file byte for byte


def test_error_while_making_the_json_touches_nothing(tmp_path, result, monkeypatch):
    save_run(result, tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(type(result), "to_json", _disk_full)
    with pytest.raises(OSError):
        save_run(result, tmp_path)
    assert _snapshot(tmp_path) == before


def test_error_while_drawing_a_picture_keeps_the_old_picture(tmp_path, result, monkeypatch):
    from matplotlib.figure import Figure

    from gradfit.plots.loss import LossDisplay

    path = LossDisplay(result).save(tmp_path / "loss.png")
    before = _snapshot(tmp_path)

    def half_then_fail(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        _disk_full()

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError):
        LossDisplay(result).save(path)
    assert _snapshot(tmp_path) == before


def test_error_while_writing_an_animation_keeps_the_old_animation(tmp_path, result, monkeypatch):
    from matplotlib import animation

    from gradfit.plots.animate import FitAnimation

    path = FitAnimation(result, max_frames=2).save(tmp_path / "fit.gif")
    before = _snapshot(tmp_path)

    def half_then_fail(self, filename, *args, **kwargs):
        self._draw_was_started = True  # it did start drawing, as the real save would have
        Path(filename).write_bytes(b"GIF89a half")
        _disk_full()

    monkeypatch.setattr(animation.Animation, "save", half_then_fail)
    with pytest.raises(OSError):
        FitAnimation(result, max_frames=2).save(path)
    assert _snapshot(tmp_path) == before
    assert before["fit.gif"].startswith(b"GIF89a") and len(before["fit.gif"]) > 100


def test_error_while_writing_bytes_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new" * 1000)
    assert _snapshot(tmp_path) == {"f.bin": b"old"}


# -- leftovers of a killed writer ---------------------------------------------------------------------


def test_load_run_ignores_temp_leftovers(tmp_path, result):
    save_run(result, tmp_path)
    clean = load_run(tmp_path)
    (tmp_path / ".tmp-0123456789ab-result.json").write_text('{"steps": 99, "par')
    (tmp_path / ".tmp-ba9876543210-history.csv").write_text("step,epoch,loss\n0,0.0,1.")
    loaded = load_run(tmp_path)
    assert loaded.to_json() == clean.to_json()
    np.testing.assert_array_equal(loaded.history.loss, clean.history.loss)


def test_save_run_removes_only_its_own_stale_temps(tmp_path, result):
    old = time.time() - 2 * outputs.STALE_TEMP_SECONDS
    names = {
        "stale": ".tmp-0123456789ab-history.csv",
        "stale_result": ".tmp-00112233aabb-result.json",
        "fresh": ".tmp-fedcba987654-result.json",
        "picture": ".tmp-0123456789ab-fit.png",
        "user": ".tmp-notes.txt",
        "hidden": ".history.csv",
    }
    for key, name in names.items():
        (tmp_path / name).write_text("x")
        if key != "fresh":
            os.utime(tmp_path / name, (old, old))
    save_run(result, tmp_path)
    assert _leftovers(tmp_path) == sorted(names[k] for k in ("fresh", "picture", "user", "hidden"))
    assert remove_stale_temps(tmp_path, older_than=-1.0) == [tmp_path / names["fresh"]]


def test_temp_names_are_hidden_and_recognisable():
    assert is_temp_name(".tmp-0123456789ab-history.csv", "history.csv")
    assert not is_temp_name(".tmp-0123456789ab-history.csv", "result.json")
    assert not is_temp_name(".tmp-0123456789aZ-history.csv")
    assert not is_temp_name("tmp-0123456789ab-history.csv") and not is_temp_name("history.csv")


def test_save_run_writes_history_without_wall_clock_and_timings_apart(tmp_path, result):
    paths = save_run(result, tmp_path)
    header = paths["history"].read_text().splitlines()[0].split(",")
    assert header == ["step", "epoch", "loss", "val_loss", "lr", "grad_norm", "a[0]", "a[1]"]
    timings = paths["timings"].read_text().splitlines()
    assert timings[0] == "step,time" and len(timings) == len(result.history) + 1
    back = load_run(tmp_path).history
    np.testing.assert_array_equal(back["time"], result.history["time"])
    assert json.loads(paths["result"].read_text())["steps"] == 6
