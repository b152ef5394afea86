"""gradfit.distributed: shards that cover the rows once, and real processes that add their sums, fail and time out.

The multi-process tests launch real processes on the loopback address (torchrun, or the script directly with
torchrun's variables), each bounded by a timeout, with a free port found by binding port 0; the oracle is the
single-process sum (float64, 1e-12), and for faults the exit code, the time taken and the messages.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gradfit
from gradfit import distributed
from gradfit.distributed import Group
from gradfit.errors import DistributedError, GradfitError
from gradfit.rowpass import MemoryRows, reduce

SRC = str(Path(gradfit.__file__).resolve().parents[1])


def descend(rows, combine=None, steps=25, lr=0.5):
    """Full-batch gradient descent of a line, every sum through the row pass: the one-process oracle, and with
    ``combine`` the ranks' fit (each on its shard; the script below runs this very function)."""
    theta = torch.zeros(2, dtype=torch.float64)
    for _ in range(steps):

        def pass_(xc, yc, wc, theta=theta):
            t = theta.detach().requires_grad_(True)
            loss = ((t[0] + t[1] * xc - yc) ** 2).sum()
            (grad,) = torch.autograd.grad(loss, t)
            return loss.detach(), grad, torch.tensor(float(xc.numel()), dtype=torch.float64)

        loss, grad, n = reduce(pass_, rows, combine=combine)
        theta = theta - lr * grad / n
    return theta, loss / n


# The processes' script: `mode` picks what the ranks do; a DistributedError ends a rank with its exit code and
# its message on stderr, the way a fit would end.
WORKER = r"""
import json, os, sys, time
from pathlib import Path

import torch

from gradfit import distributed
from gradfit.errors import DistributedError
from gradfit.rowpass import MemoryRows, reduce

mode, out, timeout = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
N = 1003
GROUPS = [100, 250, 3, 0, 400, 250]


def data():
    i = torch.arange(N, dtype=torch.float64)
    return torch.sin(i * 0.37) * 1e3 + i / 7, torch.cos(i * 0.11)


def note(group, text):
    # what a rank saw, in a file of its own: two ranks' prints into one pipe can interleave mid-line
    with open(out / f"seen-{group.rank}.txt", "a", encoding="utf-8") as f:
        f.write(text + "\n")


def main():
    group = distributed.init_from_env(timeout_s=timeout)
    print(f"rank {group.rank} of {group.world} ({group.backend}) started", flush=True)
    if mode == "sums":
        x, y = data()
        start, stop = distributed.shard(N, group)
        rows = MemoryRows(x[start:stop], y[start:stop], chunk_size=7)
        # the row pass's combine: one all-reduce of every sum of the pass
        s, sxy, n = reduce(lambda xc, yc, wc: (xc.sum(), (xc * yc).sum(), torch.tensor(float(xc.numel()))),
                           rows, combine=distributed.all_reduce_sums)
        first, stop_row = distributed.shard_row_groups(GROUPS, group)
        count = [torch.tensor(float(stop_row - first))]
        distributed.all_reduce_sums(count)
        distributed.same_everywhere([N, 2.0, float("nan")], "the row count", group)
        decision = distributed.broadcast_object({"stop": "converged", "rank": group.rank}, group)
        # any shapes and dtypes, in one call; a leaf that requires grad is overwritten without a graph
        mixed = [torch.full((2, 3), 1.5, dtype=torch.float32), torch.tensor(7), torch.tensor([0.1]) * (group.rank + 1),
                 torch.ones(2, dtype=torch.float64, requires_grad=True)]
        distributed.all_reduce_sums(mixed)
        mixed = [[t.dtype == d for t, d in zip(mixed, (torch.float32, torch.int64, torch.float32, torch.float64))],
                 mixed[0].tolist(), mixed[1].item(), mixed[2].item(), mixed[3].tolist()]
        result = {"sum": s.item(), "sum_xy": sxy.item(), "rows": n.item(), "group_rows": count[0].item(),
                  "decision": decision, "mixed": mixed, "first_row": first, "stop_row": stop_row}
        u = torch.arange(N, dtype=torch.float64) / N
        line = 2 - 3 * u + 0.1 * y
        theta, loss = descend(MemoryRows(u[start:stop], line[start:stop], chunk_size=64), distributed.all_reduce_sums)
        result.update(theta=theta.tolist(), loss=loss.item())
        note(group, f"result {json.dumps(result)}")
        if distributed.is_writer(group):
            (out / f"result-{group.rank}.json").write_text(json.dumps(result))
    elif mode == "disagree":
        distributed.same_everywhere([N, 3.0], "the parameter count", group)  # equal: passes
        try:
            distributed.same_everywhere([N, float(group.rank)], "the options' hash", group)
        except DistributedError as exc:
            note(group, f"refused: {exc}")
        try:
            distributed.same_everywhere([N] * (1 + group.rank), "the columns", group)
        except DistributedError as exc:
            note(group, f"refused: {exc}")
    elif mode in ("die", "stall"):
        distributed.same_everywhere([N], "the row count", group)
        if group.rank == 1:
            if mode == "die":
                time.sleep(1.0)
                os._exit(3)
            time.sleep(120)  # alive but silent: the other rank's collective must time out
        sums = [torch.ones(3, dtype=torch.float64)]
        distributed.all_reduce_sums(sums)
        (out / f"result-{group.rank}.json").write_text(json.dumps(sums[0].tolist()))


try:
    main()
except DistributedError as exc:
    print(f"DistributedError: {exc}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This tree's gradfit, one thread, and none of a surrounding launch's variables."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS and not k.startswith("TORCHELASTIC")}
    env.update(PYTHONPATH=SRC, OMP_NUM_THREADS="1", **extra)
    return env


def torchrun(tmp_path: Path, mode: str, timeout_s: float = 20.0, limit_s: float = 120.0):
    script = tmp_path / "worker.py"
    script.write_text(inspect.getsource(descend) + WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--max-restarts", "0"]
    command += [str(script), mode, str(tmp_path), str(timeout_s)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        env=clean_env(TMPDIR=str(tmp_path)),  # torchrun leaves its log folder there
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # torchrun and its workers in one process group, killed together past the limit
    )
    code, out, err = finish(proc, limit_s)
    return subprocess.CompletedProcess(command, code, out, err), time.perf_counter() - started


def direct(tmp_path: Path, mode: str, rank: int, world: int, port: int, timeout_s: float) -> subprocess.Popen:
    """One rank started as torchrun would start it, without torchrun (so nothing else is there to stop it)."""
    script = tmp_path / "worker.py"
    script.write_text(inspect.getsource(descend) + WORKER)
    env = clean_env(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env["LOCAL_RANK"] = str(rank)
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(tmp_path), str(timeout_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, limit_s: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and whatever it started
        out, err = proc.communicate()
        pytest.fail(f"ran past {limit_s} s (a hang): {out}\n{err}")
    return proc.returncode, out, err


def worker_data(n=1003):
    i = torch.arange(n, dtype=torch.float64)
    return torch.sin(i * 0.37) * 1e3 + i / 7, torch.cos(i * 0.11)


# --- one process ---------------------------------------------------------------------------------------------


def test_one_process_has_no_group_and_reduces_nothing():
    assert distributed.current() is None
    assert distributed.is_writer()
    sums = [torch.tensor([1.5, 2.5], dtype=torch.float64), torch.tensor(3.0)]
    distributed.all_reduce_sums(sums)
    assert sums[0].tolist() == [1.5, 2.5] and sums[1].item() == 3.0
    distributed.same_everywhere([1.0, 2.0], "anything")  # nothing to compare with
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}


def test_without_torchruns_variables_there_is_no_group(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() is None
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert distributed.init_from_env() is None  # one process: nothing to reduce, no group started
    assert distributed.current() is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR, MASTER_PORT missing"),
        ({"RANK": "zero", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK='zero'"),
        ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "rank 2 is outside"),
    ],
)
def test_a_half_set_launch_is_a_clear_error_before_any_wait(monkeypatch, env, needle):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match=needle) as info:
        distributed.init_from_env(timeout_s=1)
    assert isinstance(info.value, GradfitError) and info.value.exit_code == 1


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), "soon"])
def test_a_bad_timeout_is_refused_before_any_wait(monkeypatch, timeout):
    for name, value in zip(distributed.ENV_VARS, ("0", "2", "127.0.0.1", "1")):
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match="timeout must be a number of seconds > 0"):
        distributed.init_from_env(timeout_s=timeout)


def test_a_group_passed_without_an_initialised_one_is_a_clear_error():
    group = Group(1, 2, "gloo")
    for call in (
        lambda: distributed.all_reduce_sums([torch.zeros(2)], group),
        lambda: distributed.same_everywhere([1.0], "the row count", group),
        lambda: distributed.broadcast_object("stop", group),
    ):
        with pytest.raises(DistributedError, match="rank 1 of 2: no process group is initialised"):
            call()
    assert distributed.is_writer(Group(0, 2, "gloo")) and not distributed.is_writer(group)


def test_shards_cover_every_row_once_balanced_within_one_row():
    for world in range(1, 8):
        for n in [*range(0, 40), 97, 1000, 65_537, 10**7 + 3]:
            ranges = [distributed.shard(n, Group(rank, world, "gloo")) for rank in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, in rank order
            sizes = [stop - start for start, stop in ranges]
            assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
            assert sum(sizes) == n


def row_group_cases():
    generator = torch.Generator().manual_seed(0)
    cases = [[], [0], [5], [0, 0, 0], [10, 0, 10], [1] * 13, [1_000_000, 1, 1, 1], [3, 1_000_000, 3]]
    for _ in range(300):
        count = int(torch.randint(1, 25, (1,), generator=generator))
        top = int(torch.randint(1, 1000, (1,), generator=generator))
        cases.append(torch.randint(0, top, (count,), generator=generator).tolist())
    return cases


def test_row_group_shards_cover_every_group_once_balanced_within_one_group():
    for groups in row_group_cases():
        total, largest = sum(groups), max(groups, default=0)
        cumulative = [0]
        for n in groups:
            cumulative.append(cumulative[-1] + n)
        for world in range(1, 8):
            spans = [distributed.row_group_range(groups, Group(rank, world, "gloo")) for rank in range(world)]
            rows = [distributed.shard_row_groups(groups, Group(rank, world, "gloo")) for rank in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == len(groups)
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), (groups, world, spans)
            for (first, stop), (first_row, stop_row) in zip(spans, rows):
                assert first <= stop
                # whole groups, in file rows
                assert (first_row, stop_row) == (cumulative[first], cumulative[stop])
            assert rows[0][0] == 0 and rows[-1][1] == total
            for first_row, stop_row in rows:
                assert abs((stop_row - first_row) - total / world) <= largest, (groups, world, rows)


def test_even_row_groups_split_evenly():
    groups = [100] * 12
    for world in (1, 2, 3, 4, 6, 12):
        rows = [distributed.shard_row_groups(groups, Group(r, world, "gloo"))[1] for r in range(world)]
        assert rows == [1200 // world * (r + 1) for r in range(world)]


def test_bad_groups_and_sizes_are_clear_errors():
    with pytest.raises(DistributedError, match="outside a group of 2"):
        Group(2, 2, "gloo")
    with pytest.raises(DistributedError, match="world >= 1"):
        Group(0, 0, "gloo")
    with pytest.raises(DistributedError, match="-1 rows"):
        distributed.shard(-1, Group(0, 1, "gloo"))
    with pytest.raises(DistributedError, match=">= 0"):
        distributed.shard_row_groups([3, -1], Group(0, 1, "gloo"))


def test_digest_is_an_exact_float_that_tells_texts_apart():
    a, b = distributed.digest("lr=0.1;model=line"), distributed.digest("lr=0.2;model=line")
    assert a != b and a == distributed.digest("lr=0.1;model=line")
    assert a == int(a) and 0 <= a < 2**52  # exact in float64, so MAX == MIN across ranks means equal


# --- real processes ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_sum_their_shards_to_the_one_process_sum(tmp_path):
    done, _ = torchrun(tmp_path, "sums")
    assert done.returncode == 0, done.stdout + done.stderr
    x, y = worker_data()
    expected = {"sum": x.sum().item(), "sum_xy": (x * y).sum().item()}
    seen = [(tmp_path / f"seen-{rank}.txt").read_text(encoding="utf-8") for rank in (0, 1)]
    results = [json.loads(text.split("result ", 1)[1]) for text in seen]
    assert len(results) == 2  # both ranks hold the reduced sums
    for result in results:
        assert result["sum"] == pytest.approx(expected["sum"], rel=1e-12, abs=1e-12)
        assert result["sum_xy"] == pytest.approx(expected["sum_xy"], rel=1e-12, abs=1e-12)
        assert result["rows"] == 1003.0
        assert result["group_rows"] == 1003.0  # the row-group shards cover the file's rows once
        assert result["decision"] == {"stop": "converged", "rank": 0}  # rank 0's object on both
        dtypes, full, count, tenth, ones = result["mixed"]
        assert dtypes == [True] * 4 and full == [[3.0] * 3] * 2 and count == 14 and ones == [2.0, 2.0]
        assert tenth == pytest.approx(0.3, rel=1e-7)  # float32 in, float32 out, added in float64
    # a whole fit: every step's sums reduced across the ranks gives the one-process fit, the same on both ranks
    u = torch.arange(1003, dtype=torch.float64) / 1003
    theta, loss = descend(MemoryRows(u, 2 - 3 * u + 0.1 * y, chunk_size=100))
    assert results[0]["theta"] == results[1]["theta"] and results[0]["loss"] == results[1]["loss"]
    assert results[0]["theta"] == pytest.approx(theta.tolist(), rel=1e-10, abs=1e-12)
    assert results[0]["loss"] == pytest.approx(loss.item(), rel=1e-10)
    assert min(abs(v) for v in results[0]["theta"]) > 0.1  # the fit moved: not two starting points compared
    spans = sorted((r["first_row"], r["stop_row"]) for r in results)
    assert spans[0][0] == 0 and spans[0][1] == spans[1][0] and spans[1][1] == 1003
    # rank 0 alone writes
    assert sorted(p.name for p in tmp_path.glob("result-*.json")) == ["result-0.json"]
    written = json.loads((tmp_path / "result-0.json").read_text())
    assert written["sum"] == pytest.approx(expected["sum"], rel=1e-12)


@pytest.mark.slow
def test_ranks_that_disagree_both_refuse_to_start(tmp_path):
    done, _ = torchrun(tmp_path, "disagree")
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        refused = (tmp_path / f"seen-{rank}.txt").read_text(encoding="utf-8").splitlines()
        # both ranks raise, neither waits: the values differ, then the number of values
        assert len(refused) == 2, refused
        assert refused[0].startswith(f"refused: rank {rank} of 2: the ranks disagree on the options' hash")
        assert "value 1 ranges from 0 to 1 across ranks" in refused[0]
        assert refused[1].startswith(f"refused: rank {rank} of 2: the ranks disagree on the columns")
        assert "between 1 and 2 values" in refused[1]


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_torchrun_job_naming_it(tmp_path):
    done, elapsed = torchrun(tmp_path, "die", timeout_s=20.0, limit_s=90.0)
    assert done.returncode != 0
    assert elapsed < 60
    root = " ".join(done.stderr.split("Root Cause", 1)[-1].split())  # torchrun's report of the first failure
    assert "rank : 1 (local_rank: 1)" in root and "exitcode : 3" in root, done.stderr
    assert list(tmp_path.glob("result-*.json")) == []  # the survivor wrote nothing


@pytest.mark.slow
def test_a_peer_that_dies_mid_reduce_is_a_distributed_error_naming_this_rank(tmp_path):
    port = free_port()
    ranks = [direct(tmp_path, "die", rank, 2, port, timeout_s=20.0) for rank in (0, 1)]
    started = time.perf_counter()
    code0, _, err0 = finish(ranks[0], 60)
    code1, _, _ = finish(ranks[1], 60)
    assert time.perf_counter() - started < 60
    assert code1 == 3
    assert code0 == DistributedError.exit_code, err0
    assert "DistributedError: rank 0 of 2: the all-reduce of 3 sums failed (gloo)" in err0
    assert "Another rank probably died" in err0
    assert list(tmp_path.glob("result-*.json")) == []


@pytest.mark.slow
def test_a_silent_peer_times_out_instead_of_hanging(tmp_path):
    port = free_port()
    ranks = [direct(tmp_path, "stall", rank, 2, port, timeout_s=5.0) for rank in (0, 1)]
    try:
        started = time.perf_counter()
        code0, _, err0 = finish(ranks[0], 60)
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(ranks[1].pid, signal.SIGKILL)
        ranks[1].communicate()
    assert code0 == 1, err0
    assert "DistributedError: rank 0 of 2: the all-reduce" in err0
    assert elapsed < 40  # the group's 5 s timeout, plus start-up on a loaded machine
    assert list(tmp_path.glob("result-*.json")) == []


@pytest.mark.slow
def test_a_rendezvous_without_the_other_rank_times_out_with_what_to_check(tmp_path):
    port = free_port()
    started = time.perf_counter()
    code, _, err = finish(direct(tmp_path, "sums", 0, 2, port, timeout_s=5.0), 60)
    elapsed = time.perf_counter() - started
    assert code == 1, err
    assert f"rank 0 of 2 could not join the process group at 127.0.0.1:{port} (gloo) within 5 s" in err
    assert "Check that all 2 processes were started" in err and "reachable" in err
    assert elapsed < 40
    assert list(tmp_path.glob("result-*.json")) == []


def test_the_reduce_of_the_row_pass_takes_the_combine_once(tmp_path):
    """In one process the combine is called once per pass with every sum (what the all-reduce relies on)."""
    calls = []
    x, y = worker_data()
    sums = reduce(lambda xc, yc, wc: (xc.sum(), (xc * yc).sum()), MemoryRows(x, y, chunk_size=7), combine=calls.append)
    assert len(calls) == 1 and len(calls[0]) == 2
    assert sums[0].item() == pytest.approx(x.sum().item(), rel=1e-12)
