"""Open only what can be read: non-regular files are refused by what they are, before anything is read.

The hanging cases (a named pipe) run the CLI in a child process with a generous timeout, so a
regression fails the test instead of hanging the suite; nothing here measures time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gradfit.data.data_file import check_data_file, file_kind
from gradfit.data.io import open_data, read_table
from gradfit.errors import DataError

POSIX = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
HANG_GUARD = 300  # seconds: far more than any of these commands needs; only there to turn a hang into a failure


def gradfit(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "gradfit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_GUARD
    )


@POSIX
def test_a_named_pipe_is_refused_by_the_cli_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    run = gradfit("fit", "data.csv", "--y", "y", "--model", "linear", "--out", "out", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "'data.csv': it is a named pipe (FIFO), not a regular file" in run.stderr
    assert "Save the data to a file first" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


@POSIX
def test_a_named_pipe_being_written_is_not_called_empty(tmp_path):
    fifo = tmp_path / "live.csv"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)  # a writer holds the pipe open, as `cat data > live.csv &` would
    try:
        os.write(fd, b"x,y\n1,2\n2,4\n")
        with pytest.raises(DataError) as err:
            read_table(fifo)
    finally:
        os.close(fd)
    assert "named pipe (FIFO)" in str(err.value) and "empty" not in str(err.value)


@POSIX
def test_plot_refuses_a_run_whose_data_path_is_now_a_named_pipe(tmp_path):
    (tmp_path / "d.csv").write_text("x,y\n0,1\n1,3\n2,5\n3,7.1\n")
    fitted = gradfit(
        "fit", "d.csv", "--y", "y", "--model", "linear", "--optimizer", "lm", "--out", "run", "-q", cwd=tmp_path
    )
    assert fitted.returncode == 0, fitted.stderr
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    Path(saved["data"]["path"]).unlink()
    os.mkfifo(saved["data"]["path"])
    run = gradfit("plot", "run", "--kind", "fit", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "named pipe (FIFO)" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "fit.png").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_a_device_not_an_empty_file():
    with pytest.raises(DataError, match=r"'/dev/zero': it is a character device .*not a regular file") as err:
        read_table("/dev/zero")
    assert "empty" not in str(err.value)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_proc_file_holds_text_yet_reports_zero_bytes():
    assert os.stat("/proc/self/status").st_size == 0 and open("/proc/self/status", "rb").read(1)  # the premise
    with pytest.raises(DataError, match=r"reports its size as 0 bytes, yet it holds text.*/proc.*Copy it") as err:
        read_table("/proc/self/status")
    assert "empty (0 bytes)" not in str(err.value)


def test_a_really_empty_file_is_still_called_empty(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"the file is empty \(0 bytes\)"):
        read_table(tmp_path / "e.csv")


@POSIX
def test_a_loop_of_symbolic_links_is_a_data_error_not_an_internal_error(tmp_path):
    os.symlink(tmp_path / "b.csv", tmp_path / "a.csv")
    os.symlink(tmp_path / "a.csv", tmp_path / "b.csv")
    for call in (lambda: read_table(tmp_path / "a.csv"), lambda: open_data(str(tmp_path / "a.csv"))):
        with pytest.raises(DataError, match=r"a\.csv'.*symbolic link that leads back to itself"):
            call()
    run = gradfit("fit", "a.csv", "--y", "y", "--model", "linear", cwd=tmp_path)
    assert run.returncode == 2 and "leads back to itself" in run.stderr and "internal error" not in run.stderr


@POSIX
def test_a_link_to_nothing_names_its_target(tmp_path):
    os.symlink(tmp_path / "gone.csv", tmp_path / "link.csv")
    with pytest.raises(DataError, match=r"link\.csv'.*symbolic link to '.*gone\.csv', which does not exist"):
        read_table(tmp_path / "link.csv")


def test_a_path_through_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"part of the path before the file name is a file"):
        check_data_file(tmp_path / "f" / "data.csv")


@POSIX
def test_a_socket_is_refused(tmp_path):
    import socket

    path = tmp_path / "s.csv"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.bind(str(path))
        except OSError:
            pytest.skip("cannot bind a unix socket here")
        with pytest.raises(DataError, match=r"it is a socket, not a regular file"):
            read_table(path)


def test_file_kinds_in_words():
    import stat

    assert file_kind(stat.S_IFIFO) == "a named pipe (FIFO)"
    assert file_kind(stat.S_IFDIR) == "a folder" and file_kind(stat.S_IFREG) == "a regular file"
    assert file_kind(stat.S_IFBLK).startswith("a block device")


@POSIX
def test_the_check_never_opens_a_pipe(tmp_path, monkeypatch):
    # Opening a pipe without a writer blocks for ever: it must be refused from its stat alone. The
    # watcher records an open of the pipe and refuses it, so a regression fails instead of hanging.
    os.mkfifo(tmp_path / "p.csv")
    opened = threading.Event()
    real_open = open

    def watching_open(path, *args, **kwargs):
        if Path(path) == tmp_path / "p.csv":
            opened.set()
            raise OSError("the test refuses to open the pipe")
        return real_open(path, *args, **kwargs)

    import gradfit.data.data_file as data_file

    monkeypatch.setattr(data_file, "open", watching_open, raising=False)
    with pytest.raises(DataError, match="named pipe"):
        check_data_file(tmp_path / "p.csv")
    assert not opened.is_set()


@pytest.mark.parametrize(
    "path,message",
    [
        ("/dev/zero", "it is a character device (such as /dev/zero or a terminal), not a regular file"),
        ("/proc/self/status", "the system reports its size as 0 bytes, yet it holds text"),
    ],
)
def test_the_cli_refuses_devices_and_virtual_files_with_exit_2(tmp_path, path, message):
    if not os.path.exists(path):
        pytest.skip(f"needs {path}")
    from typer.testing import CliRunner

    from gradfit.cli.app import app

    result = CliRunner().invoke(app, ["fit", path, "--y", "y", "--model", "linear", "--out", str(tmp_path / "out")])
    output = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, output
    assert f"Cannot read '{path}': {message}" in output and "empty (0 bytes)" not in output
    assert not (tmp_path / "out").exists()
