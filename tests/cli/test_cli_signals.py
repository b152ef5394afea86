"""One interrupt window for the whole `gradfit fit` command: a signal at any stage, and a second one.

Each test sends real signals to this process at a chosen point of the command (by wrapping the
function that runs there) and checks the exit code, the message, and that what it says was saved
is on disk whole, with no temporary file. Issue 9, "Data loss" (a signal after the last step but
before saving) and "Slow wind-down" (a second Ctrl-C).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app
from gradfit.outputs import load_run

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="POSIX signals"),
    pytest.mark.usefixtures("fallback_handlers"),
]  # tests/conftest.py: a missed signal fails the test
runner = CliRunner()
LINEAR = ["fit", "builtin:linear?n=300", "--y", "y", "--model", "linear", "--optimizer", "lm", "--quiet"]


def signalling(real, signum=signal.SIGINT, times: int = 1, then_spin: bool = False):
    """``real`` preceded by ``times`` signals to this process (and, with ``then_spin``, a long computation in Python
    that only a signal acting at once can cut short)."""

    def wrapper(*args, **kwargs):
        for _ in range(times):
            os.kill(os.getpid(), signum)
        if then_spin:
            end = time.monotonic() + 5
            while time.monotonic() < end:
                time.sleep(0.005)
            pytest.fail("the work went on for 5 s after the signal")
        return real(*args, **kwargs)

    return wrapper


def files(folder) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def no_temporaries(folder) -> bool:
    return not any(name.startswith(".tmp-") for name in files(folder))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_error_bars_saves_the_finished_fit(tmp_path, monkeypatch, signum):
    """The issue's example: `fit 'builtin:linear?n=3000000' --y y --model poly3 --steps 2 --uncertainty`, a signal
    during the uncertainty computation, gave exit 130 "before the run could be saved" (SIGTERM: 143) and no folder."""
    import gradfit.analysis.uncertainty as uncertainty

    monkeypatch.setattr(
        uncertainty, "compute_uncertainty", signalling(uncertainty.compute_uncertainty, signum, then_spin=True)
    )
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear?n=3000",
            "--y",
            "y",
            "--model",
            "poly3",
            "--steps",
            "2",
            "--uncertainty",
            "--out",
            str(out),
        ],
    )
    name = signal.Signals(signum).name
    assert res.exit_code == 130, res.output
    assert f"Interrupted ({name}) while analysing the fit, after the fit's last step." in res.stderr
    assert f"Saved whole in {str(out)!r}: result.json, history.csv and timings.csv." in res.stderr
    assert "could be saved" not in res.stderr and "Traceback" not in res.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["stop_reason"] == "interrupted" and saved["diagnostics"]["loop_stop_reason"] == "max_steps"
    assert saved["diagnostics"]["skipped"] == ["metrics", "uncertainty", "verdict", "report"]
    monkeypatch.undo()
    full = gradfit.fit("poly3", "builtin:linear?n=3000", y="y", steps=2, uncertainty=False)
    assert saved["params"] == full.flat_params and saved["steps"] == 2  # the finished fit, bit for bit
    assert no_temporaries(out)


def test_a_signal_while_drawing_says_the_run_was_saved(tmp_path, monkeypatch):
    """The issue: "During picture drawing the run was saved but the message says it was not"."""
    import gradfit.plots.run_pictures as run

    monkeypatch.setattr(run, "save_pictures", signalling(run.save_pictures, then_spin=True))
    out = tmp_path / "run"
    res = runner.invoke(app, [*LINEAR, "--plot", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "Interrupted (SIGINT) while drawing fit.png, loss.png and params.png." in res.stderr
    assert f"Written whole before it, in {str(out)!r}: " in res.stderr and "result.json" in res.stderr
    assert "The run is saved; draw any missing picture with `gradfit plot" in res.stderr
    assert "could be saved" not in res.stderr
    assert files(out) == [".gradfit-run.json", "history.csv", "result.json", "timings.csv"]
    assert load_run(out).success  # the fit converged; only the pictures are missing


def test_a_signal_while_saving_finishes_the_run_and_skips_the_pictures(tmp_path, monkeypatch):
    import gradfit.outputs as outputs

    monkeypatch.setattr(outputs, "save_run", signalling(outputs.save_run, signal.SIGTERM))
    out = tmp_path / "run"
    res = runner.invoke(app, [*LINEAR, "--plot", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "Interrupted (SIGTERM) once the fit and its analysis were over (converged" in res.stderr
    assert f"Saved whole in {str(out)!r}: result.json, history.csv and timings.csv." in res.stderr
    assert f"Not drawn: fit.png, loss.png and params.png; draw them with `gradfit plot {out}`." in res.stderr
    assert files(out) == [".gradfit-run.json", "history.csv", "result.json", "timings.csv"]
    assert load_run(out).success


def test_a_signal_between_the_analysis_and_the_save_loses_nothing(tmp_path, monkeypatch):
    import gradfit.api as api

    real = api.analyse

    def analysed_then_signal(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # the callbacks' on_end and the CLI's printing are still to come
        return result

    monkeypatch.setattr(api, "analyse", analysed_then_signal)
    out = tmp_path / "run"
    res = runner.invoke(app, [*LINEAR, "--plot", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "Interrupted (SIGINT) once the fit and its analysis were over (converged" in res.stderr
    assert files(out) == [".gradfit-run.json", "history.csv", "result.json", "timings.csv"]
    assert load_run(out).success and load_run(out).report is not None


def test_a_signal_while_reading_the_data_stops_at_once_and_writes_nothing(tmp_path, monkeypatch):
    import gradfit.data.io as io

    monkeypatch.setattr(io, "load_builtin", signalling(io.load_builtin, then_spin=True))
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, LINEAR)  # without --out: a new folder under gradfit-out/, removed again
    assert res.exit_code == 130, res.output
    assert "Interrupted (SIGINT) while reading the data and preparing the fit. Nothing was written." in res.stderr
    assert files(tmp_path) == []


def test_a_signal_during_the_loop_saves_the_run_and_its_checkpoint_and_skips_analysis_and_pictures(
    tmp_path, monkeypatch
):
    import gradfit.cli.progress as progress

    real = progress.LossLines.on_step

    def on_step(self, state):
        if state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, state)

    monkeypatch.setattr(progress.LossLines, "on_step", on_step)
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "fit",
            "builtin:linear?n=300",
            "--y",
            "y",
            "--model",
            "linear",
            "--optimizer",
            "sgd",
            "--lr",
            "0.01",
            "--steps",
            "500",
            "--log-every",
            "1",
            "--plot",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 130, res.output
    assert "Interrupted (SIGINT) at step 4" in res.stderr and f"--resume {str(out)!r}" in res.stderr
    assert "The analysis after the fit (metrics, error bars, verdict and report) was skipped." in res.stderr
    assert "result.json, history.csv, timings.csv and checkpoint.pt." in res.stderr
    assert "Not drawn: fit.png, loss.png and params.png" in res.stderr
    assert files(out) == [".gradfit-run.json", "checkpoint.pt", "history.csv", "result.json", "timings.csv"]
    assert load_run(out).steps == 4


def test_a_second_signal_while_writing_the_history_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
    import gradfit.outputs as outputs

    out = tmp_path / "run"
    assert runner.invoke(app, [*LINEAR, "--out", str(out)]).exit_code == 0
    before = {name: (out / name).read_bytes() for name in files(out)}
    monkeypatch.setattr(outputs, "write_csv", signalling(outputs.write_csv, times=2))
    res = runner.invoke(app, [*LINEAR, "--seed", "1", "--init", "a=5", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "Interrupted a second time (SIGINT) while saving the run. Nothing was written." in res.stderr
    assert {name: (out / name).read_bytes() for name in files(out)} == before  # no temporary file either


def test_a_second_signal_while_one_run_replaces_another_waits_for_the_new_run(tmp_path, monkeypatch):
    """Between removing the earlier result.json and writing the new one the folder holds neither run: a signal there
    is acted on once the new run is whole."""
    from gradfit.run_folder import RunFolder

    out = tmp_path / "run"
    (out / "sub").mkdir(parents=True)
    assert runner.invoke(app, [*LINEAR, "--plot", "--out", str(out), "--force"]).exit_code == 0
    monkeypatch.setattr(RunFolder, "clear_earlier", signalling(RunFolder.clear_earlier, times=2))
    res = runner.invoke(app, [*LINEAR, "--init", "a=5", "--out", str(out), "--force"])
    assert res.exit_code == 130, res.output
    assert "Interrupted a second time (SIGINT) while saving the run." in res.stderr
    assert "The run is saved" in res.stderr
    assert files(out) == [".gradfit-run.json", "history.csv", "result.json", "sub", "timings.csv"]  # old pictures gone
    new = load_run(out)
    assert new.init_params == {"a[0]": 5.0, "a[1]": 5.0} and new.success


@pytest.mark.parametrize("code, leaves_now", [(130, True), (0, False), (1, False), (2, False)])
def test_an_interrupted_command_ends_the_process_at_once_with_its_output_flushed(monkeypatch, capsys, code, leaves_now):
    import gradfit.cli.app as cli

    ended = []

    def command(prog_name):
        print("the last words", end="")  # unflushed text must still come out
        raise SystemExit(code)

    def fake_exit(status):
        ended.append((status, capsys.readouterr().out))
        raise SystemExit(status)

    monkeypatch.setattr(cli, "app", command)
    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == code
    # Ctrl-C: no interpreter shutdown (a second or two with torch) after the files are written and said
    assert ended == ([(130, "the last words")] if leaves_now else [])
