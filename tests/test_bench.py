"""The benchmark table (bench/run.py) keeps running: a quick run on tiny sizes, checked for shape and agreement.

Nothing here is timed: the times are only checked to be positive and the ratios to be the times' quotients. What is
checked is what makes a ratio mean something: gradfit and each peer computed the same numbers (the seeds' loop, the
numpy loop and curve_fit as oracles), and the table holds every row asked for.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench(monkeypatch):
    """bench/run.py as a module (bench/ is a folder of scripts that import each other by name)."""
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("run", "peers", "timing"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module("run")


def quick_table(bench, tmp_path, rows: str) -> dict:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--max-rows", "2000", "--floor-mb", "4", "--rows", rows, "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def check_lines(table: dict, rows: str) -> None:
    lines = table["lines"]
    assert sorted({line["row"] for line in lines}) == rows.split(",")
    for line in lines:
        assert line["seconds"] > 0 and line["peer_seconds"] > 0, line
        assert math.isclose(line["ratio"], line["seconds"] / line["peer_seconds"]), line
        assert line["met"] == (None if line["target"] is None else line["ratio"] <= line["target"]), line
        assert line["agree"] in (True, None), line  # every comparison made agreed
    assert table["markdown"].count("\n") == len(lines) + 1  # a header, a rule and one line each
    assert table["threads"] >= 1 and table["torch"] and table["bandwidth_bytes_per_s"] > 0


def test_quick_table_of_the_in_process_rows(bench, tmp_path, capsys):
    table = quick_table(bench, tmp_path, "1,2,3,4,5")
    check_lines(table, "1,2,3,4,5")
    peers = {(line["row"], line["peer"]) for line in table["lines"]}
    assert {("1", "memory floor"), ("1", "seeds' torch loop"), ("1", "numpy loop"), ("5", "curve_fit")} <= peers
    gradfit_lines = [line for line in table["lines"] if line["subject"].startswith("gradfit")]
    assert all(re.fullmatch(r"gradfit \(\w.*\)", line["subject"]) for line in gradfit_lines)  # the path that ran
    agreed = [line for line in table["lines"] if line["agree"]]
    assert {line["row"] for line in agreed} == {"1", "2", "3", "4", "5"}  # each row compared gradfit with an oracle
    floor = next(line for line in table["lines"] if line["peer"] == "memory floor")
    assert floor["floor_rows"] == 2000  # capped by --max-rows
    assert math.isclose(floor["peer_seconds"], 2000 * 8 / table["bandwidth_bytes_per_s"])  # x and y, float32
    assert table["markdown"] in capsys.readouterr().out


@pytest.mark.slow
def test_quick_table_of_the_cli_row(bench, tmp_path):
    table = quick_table(bench, tmp_path, "6")
    check_lines(table, "6")
    assert table["lines"][0]["agree"] is True  # the CLI fit exited 0 and wrote its result.json


@pytest.mark.parametrize(
    "argv, message",
    [(["--rows", "1,9"], "unknown rows 9"), (["--repeats", "0"], "--repeats"), (["--max-rows", "-5"], "--max-rows")],
)
def test_bad_options_are_refused_before_measuring(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_interleaved_alternates_and_takes_medians(bench):
    timing = importlib.import_module("timing")
    calls, times = [], {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 7.0, 6.0])}

    def measure(name):
        def run():
            calls.append(name)
            return next(times[name]), name

        return run

    medians, outputs = timing.interleaved({"a": measure("a"), "b": measure("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert medians == {"a": statistics.median([3.0, 1.0, 2.0]), "b": statistics.median([5.0, 7.0, 6.0])}
    assert outputs == {"a": "a", "b": "b"}


def test_an_interrupted_fit_stops_the_bench(bench, monkeypatch, capsys):
    """Ctrl-C or SIGTERM ends gradfit's fit early (stop_reason "interrupted"): the bench stops, not the fit alone."""
    peers = importlib.import_module("peers")
    monkeypatch.setattr(peers.gradfit, "fit", lambda *a, **k: SimpleNamespace(stop_reason="interrupted"))
    assert bench.main(["--quick", "--max-rows", "100", "--floor-mb", "1", "--rows", "4"]) == 130
    captured = capsys.readouterr()
    assert "interrupted: no table" in captured.err and "| row |" not in captured.out


def test_the_sweep_benchmark_runs_and_its_members_agree_with_the_fits(monkeypatch):
    """bench/bench_sweep.py on tiny sizes: every sampled fit equals its sweep member, the ratio is the quotient."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "bench_sweep", raising=False)
    lines = importlib.import_module("bench_sweep").main(
        ["--rows", "300", "--lrs", "8", "--steps", "20", "--sample", "3", "--repeats", "1"]
    )
    assert [line["model"] for line in lines] == ["linear", "a*exp(-b*x) + c"]
    for line in lines:
        assert line["agreement"] < 1e-9
        assert line["loop"] > 0 and line["sweep"] > 0 and line["ratio"] == line["loop"] / line["sweep"]


@pytest.mark.slow  # a torch.compile of the formula: seconds, more with a cold compile cache
def test_the_gpu_step_benchmark_runs_on_the_cpu_and_each_path_agrees_with_float64(monkeypatch, tmp_path):
    """bench/bench_gpu.py (prepared for a device machine, bench/device_checks.sh) on tiny sizes on the CPU: every
    model x row pass gives a line, the path asked for is the one that ran (a linear formula takes its statistics),
    and each path's float32 parameters agree with the CPU's float64 autograd fit."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "bench_gpu", raising=False)
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--rows", "3000", "--steps", "3", "--bandwidth-numbers", "100000", "--json", str(out)]
    lines = importlib.import_module("bench_gpu").main(argv)
    assert [(line["model"], line["asked"]) for line in lines] == [
        (model, row_pass) for model in ("a*exp(-b*x) + c", "a*x + b") for row_pass in ("auto", "compiled", "autograd")
    ]
    paths = {(line["model"], line["asked"]): line["row_pass"] for line in lines}
    assert paths[("a*exp(-b*x) + c", "auto")] == ["fused formula"]
    assert paths[("a*exp(-b*x) + c", "autograd")] == ["autograd"]
    assert paths[("a*x + b", "auto")] == ["sufficient_statistics"]
    for line in lines:
        assert "error" not in line, line
        assert line["step_ms"] > 0 and line["x_floor"] == pytest.approx(line["step_ms"] / line["floor_ms"])
        assert line["max_rel_diff_vs_cpu_float64"] < 1e-4, line
    assert json.loads(out.read_text(encoding="utf-8"))["lines"] == json.loads(json.dumps(lines))
