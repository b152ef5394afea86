"""Many processes, one fit: the process group, each rank's shard of the rows, and the one all-reduce per pass.

Every quantity a fit needs is a sum over rows, so a fit spread over processes is the same fit once each
process sums its own rows and the partial sums are added across processes: one ``all_reduce(SUM)`` of a
float64 buffer per pass (p+2 numbers for gradient descent, p(p+1)/2+p+2 for Levenberg-Marquardt), after
which every rank holds the same sums and takes the same step. Nothing else is needed: torch.distributed
(launched by ``torchrun``) does the rendezvous, the transport (gloo on CPU, nccl on GPU) and the timeouts;
this module only

- starts the default process group from torchrun's environment (:func:`init_from_env`), turning a
  rendezvous that fails into a :class:`~gradfit.errors.DistributedError` that says what to check;
- splits the rows (:func:`shard`) or a Parquet file's row groups (:func:`shard_row_groups`) into
  contiguous, balanced ranges, one per rank, so that no rank reads the whole file;
- adds the sums of a pass across ranks in one collective (:func:`all_reduce_sums`, the ``combine`` of
  :func:`gradfit.rowpass.reduce`), and checks cheaply that the ranks fit the same thing
  (:func:`same_everywhere`) and agree on a decision (:func:`broadcast_object`);
- says which rank writes the outputs (:func:`is_writer`: rank 0 alone, so files are never half-written
  by two processes).

A peer that dies or stops answering makes the collective fail within the group's timeout; the failure
becomes a :class:`~gradfit.errors.DistributedError` naming this rank, never a hang.

Examples
--------
Outside a process group everything is the single-process fit: no group, no reduction, one writer.

>>> current() is None, is_writer()
(True, True)
>>> shard(10, Group(rank=1, world=3, backend="gloo"))
(4, 7)
"""

from __future__ import annotations

import atexit
import bisect
import datetime
import gc
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradfit.errors import DistributedError

__all__ = [
    "Group",
    "current",
    "init_from_env",
    "all_reduce_sums",
    "StopVote",
    "shard",
    "row_group_range",
    "shard_row_groups",
    "is_writer",
    "same_everywhere",
    "digest",
    "broadcast_object",
    "gather_objects",
    "close",
]

#: torchrun's variables that :func:`init_from_env` needs (TORCHELASTIC_* ones are read by torch itself).
ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Group:
    """This process's place in the default process group: its ``rank`` among ``world`` processes, and the
    ``backend`` ("gloo" or "nccl") that carries the collectives."""

    rank: int
    world: int
    backend: str

    def __post_init__(self):
        if not (isinstance(self.world, int) and self.world >= 1 and isinstance(self.rank, int)):
            raise DistributedError(
                f"a process group needs an integer world >= 1, got rank={self.rank!r}, world={self.world!r}"
            )
        if not 0 <= self.rank < self.world:
            raise DistributedError(
                f"rank {self.rank} is outside a group of {self.world} processes (0..{self.world - 1})"
            )


def _dist():
    """torch.distributed, or None where this build of torch has none (some mobile and macOS builds)."""
    import torch.distributed as dist

    return dist if dist.is_available() else None


def current() -> Group | None:
    """The initialised default process group, or None when there is none or it has one process (the fit is
    then the single-process fit: no reduction, every output written)."""
    dist = _dist()
    if dist is None or not dist.is_initialized():
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    return Group(rank=dist.get_rank(), world=world, backend=str(dist.get_backend()))


def _env_int(name: str) -> int:
    text = os.environ[name]
    try:
        return int(text)
    except ValueError:
        raise DistributedError(
            f"the environment variable {name}={text!r} is not an integer; torchrun sets it, "
            "or set it to this process's rank / the number of processes"
        ) from None


def init_from_env(timeout_s: float = 300.0, device: str | torch.device | None = None) -> Group | None:
    """Start the default process group from torchrun's environment; None when this is not such a launch.

    With ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set (torchrun sets them, and the
    ``TORCHELASTIC_*`` ones that let rank 0 use the agent's store), the group is initialised once (an
    already initialised one is returned as it is): nccl when ``device`` is a CUDA device and CUDA is
    available, else gloo. ``timeout_s`` bounds the rendezvous and every later collective, so a process that
    never arrives or dies ends the fit with a :class:`DistributedError` instead of a hang. A world of one
    process gives None (nothing to reduce). Some of the variables without the others is an error: a launch
    half set up should not silently fit alone.
    """
    dist = _dist()
    present = [name for name in ENV_VARS if os.environ.get(name)]
    if not present:
        return None
    if len(present) < len(ENV_VARS):
        missing = [name for name in ENV_VARS if name not in present]
        raise DistributedError(
            f"{', '.join(present)} set but {', '.join(missing)} missing: launch with torchrun "
            "(which sets all four), or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT together"
        )
    if dist is None:
        raise DistributedError(
            "torch.distributed is not available in this build of torch; install a build with it "
            "(the Linux wheels from pytorch.org have it) or run in one process"
        )
    if dist.is_initialized():
        return current()
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if world <= 1:
        return None
    Group(rank=rank, world=world, backend="gloo")  # checks 0 <= rank < world before any network wait
    try:
        seconds = float(timeout_s)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise DistributedError(f"the process group's timeout must be a number of seconds > 0, got {timeout_s!r}")
    cuda = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, ValueError, OSError) as exc:
        raise DistributedError(
            f"rank {rank} of {world} could not join the process group at {address} ({backend}) within "
            f"{seconds:g} s: {_first_line(exc)}. Check that all {world} processes were started (with the same "
            f"WORLD_SIZE, distinct ranks 0..{world - 1}), that {address} is rank 0's address and reachable from "
            "this host (firewall, the right network interface), and that the port is free on rank 0."
        ) from exc
    # A process that exits with the group alive aborts in gloo's teardown ("terminate called without an active
    # exception", SIGABRT), which torchrun reports as a failed rank: close it on the way out.
    atexit.register(close)
    return current()


def close() -> None:
    """End the default process group if there is one (idempotent; :func:`init_from_env` registers it at exit)."""
    dist = _dist()
    if dist is not None and dist.is_initialized():
        # Collectives' work objects still held (a traceback's frames, a cycle) go first, while the interpreter is
        # whole: freed during its finalisation, they can abort in gloo's threads.
        gc.collect()
        dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    """torch's errors carry a C++ stack after the first line; the user needs the first line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _group(group: Group | None) -> Group | None:
    """The group to use: the one given (which must be the initialised default group's), else :func:`current`."""
    if group is None:
        return current()
    dist = _dist()
    if dist is None or not dist.is_initialized():
        raise DistributedError(
            f"rank {group.rank} of {group.world}: no process group is initialised in this process; start it with "
            "gradfit.distributed.init_from_env() (under torchrun) before passing a Group"
        )
    return group


def _device(group: Group) -> torch.device:
    """Where a collective's buffer must live: the current CUDA device for nccl, the CPU for gloo."""
    if group.backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _failed(group: Group, what: str, exc: BaseException) -> DistributedError:
    return DistributedError(
        f"rank {group.rank} of {group.world}: {what} failed ({group.backend}): {_first_line(exc)}. Another rank "
        "probably died, or did not reach this call within the group's timeout; its own output (torchrun names "
        "the first rank that failed) says why."
    )


class StopVote:
    """A stop any process may ask for, which all of them learn at the same pass.

    A signal reaches each process at its own moment, and the processes must leave a fit's loop at the same step (the
    others would wait in the next all-reduce). The flag, ``asked()`` (set by the loop), rides on the passes' sums:
    :func:`all_reduce_sums` adds one number to its buffer and ORs the result into ``seen``, so a fit spread over
    processes pays no collective of its own per step. A step that made no pass (a linear model's steps read only
    its sufficient statistics) votes in :meth:`look`, by one all-reduce of that number alone.
    """

    def __init__(self, group: Group | None):
        self.group = group
        self.asked: Callable[[], bool] = lambda: False
        self.seen = False
        self.carried = False  # whether a pass carried the flag since the last look

    def start(self, asked: Callable[[], bool]) -> None:
        """A new fit's vote: ``asked()`` says whether this process wants to stop; nothing seen yet."""
        self.asked, self.seen, self.carried = asked, False, False

    def look(self) -> bool:
        """Whether any process asked to stop, by the last pass's all-reduce or by one of its own when none passed."""
        if not self.carried:
            all_reduce_sums([], self.group, self)
        self.carried = False
        return self.seen


def all_reduce_sums(sums: list[Tensor], group: Group | None = None, vote: StopVote | None = None) -> None:
    """Add ``sums`` across all ranks, in place, in float64, with one collective call.

    The sums (any shapes and dtypes) are flattened into one float64 buffer, all-reduced with SUM, and
    copied back, so a pass costs one round trip whatever the number of sums. Without a group (one
    process) nothing happens. This is the ``combine`` of :func:`gradfit.rowpass.reduce`. With ``vote``, its
    flag is one more number of the buffer (:class:`StopVote`).
    """
    group = _group(group)
    if group is None and vote is not None:  # one process: its own flag is everyone's
        vote.seen, vote.carried = vote.seen or vote.asked(), True
    if group is None or (not sums and vote is None):
        return
    dist = _dist()
    device = _device(group)
    with torch.no_grad():  # one cat and one split, whatever the number of sums: ~10 us on the CPU
        parts = [s.reshape(-1).to(device=device, dtype=torch.float64) for s in sums]
        if vote is not None:
            parts.append(torch.tensor([1.0 if vote.asked() else 0.0], dtype=torch.float64, device=device))
        buffer = torch.cat(parts)
        try:
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        except (RuntimeError, OSError) as exc:
            raise _failed(group, f"the all-reduce of {buffer.numel()} sums", exc) from exc
        counts = [s.numel() for s in sums]
        for s, piece in zip(sums, buffer[: sum(counts)].split(counts)):
            s.copy_(piece.view(s.shape))
        if vote is not None:
            vote.seen = vote.seen or bool(buffer[-1] > 0)
            vote.carried = True


def shard(n_rows: int, group: Group) -> tuple[int, int]:
    """This rank's rows ``[start, stop)`` of ``n_rows``: contiguous, in rank order, sizes differing by at most one."""
    if n_rows < 0:
        raise DistributedError(f"cannot shard {n_rows} rows: the number of rows must be >= 0")
    base, extra = divmod(int(n_rows), group.world)
    start = group.rank * base + min(group.rank, extra)
    return start, start + base + (1 if group.rank < extra else 0)


def row_group_range(row_group_rows: Sequence[int], group: Group) -> tuple[int, int]:
    """This rank's row groups ``[first, stop)``: contiguous, in rank order, balanced by rows.

    Rank r's groups start at the group boundary nearest to r/world of the rows (the lower one on a tie),
    so each rank's rows are within one row group of the even share; a rank can get no group when there are
    fewer groups than ranks.
    """
    sizes = [int(n) for n in row_group_rows]
    if any(n < 0 for n in sizes):
        raise DistributedError(f"row group sizes must be >= 0, got {sizes}")
    cumulative = [0]
    for n in sizes:
        cumulative.append(cumulative[-1] + n)

    def boundary(rank: int) -> int:
        if rank >= group.world:
            return len(sizes)
        if rank == 0:
            return 0
        target = cumulative[-1] * rank / group.world
        i = bisect.bisect_left(cumulative, target)  # first boundary at or above the target
        if i > 0 and target - cumulative[i - 1] <= cumulative[i] - target:
            i = bisect.bisect_left(cumulative, cumulative[i - 1])  # the lowest index of that boundary's rows
        return i

    return boundary(group.rank), max(boundary(group.rank), boundary(group.rank + 1))


def shard_row_groups(row_group_rows: Sequence[int], group: Group) -> tuple[int, int]:
    """This rank's rows ``[first_row, stop_row)`` in file rows when it reads whole row groups
    (:func:`row_group_range`): a Parquet file's groups are split without any rank reading another's."""
    first, stop = row_group_range(row_group_rows, group)
    before = sum(int(n) for n in row_group_rows[:first])
    return before, before + sum(int(n) for n in row_group_rows[first:stop])


def is_writer(group: Group | None = None) -> bool:
    """Whether this process writes the outputs: rank 0, or the only process. The others write nothing."""
    group = group if group is not None else current()
    return group is None or group.rank == 0


def digest(text: str) -> float:
    """A 52-bit hash of ``text`` as an exact float64, for :func:`same_everywhere` (the options, the columns)."""
    return float(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 12)


def same_everywhere(values: Sequence[float] | Tensor, what: str, group: Group | None = None) -> None:
    """Check that every rank passes the same ``values`` (the row count, the parameter count, a
    :func:`digest` of the options) before a fit starts; raise :class:`DistributedError` on every rank if not.

    Two small collectives (MAX and MIN of the count, then of the values), so all ranks raise together
    rather than some waiting forever in a later step. NaN compares equal to NaN.
    """
    group = _group(group)
    if group is None:
        return
    dist = _dist()
    device = _device(group)
    mine = torch.as_tensor(values, dtype=torch.float64).reshape(-1).to(device)
    # MAX of (n, -n) gives the largest and smallest count in one call.
    counts = torch.tensor([mine.numel(), -mine.numel()], dtype=torch.float64, device=device)
    nan = torch.isnan(mine)
    marked = torch.where(nan, torch.full_like(mine, float("inf")), mine)
    try:
        dist.all_reduce(counts, op=dist.ReduceOp.MAX)
    except (RuntimeError, OSError) as exc:
        raise _failed(group, f"the check of {what}", exc) from exc
    if counts[0] != -counts[1]:
        raise DistributedError(
            f"rank {group.rank} of {group.world}: the ranks disagree on {what}: they pass between "
            f"{int(-counts[1])} and {int(counts[0])} values (this rank {mine.numel()}); every rank must "
            "fit the same model on the same data with the same options"
        )
    both = torch.cat([marked, -marked, nan.to(torch.float64), -nan.to(torch.float64)])
    try:
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
    except (RuntimeError, OSError) as exc:
        raise _failed(group, f"the check of {what}", exc) from exc
    n = mine.numel()
    high, low = both[:n], -both[n : 2 * n]
    some_nan, all_nan = both[2 * n : 3 * n] > 0, -both[3 * n :] > 0
    differ = (high != low) | (some_nan != all_nan)
    if bool(differ.any()):
        i = int(torch.nonzero(differ)[0])
        raise DistributedError(
            f"rank {group.rank} of {group.world}: the ranks disagree on {what}: value {i} ranges from "
            f"{low[i].item():.17g} to {high[i].item():.17g} across ranks (this rank: {mine[i].item():.17g}); every "
            "rank must fit the same model on the same data with the same options"
        )


def broadcast_object(obj: Any, group: Group | None = None) -> Any:
    """Rank 0's ``obj`` on every rank (a stop reason, a decision only rank 0 may take); ``obj`` itself without
    a group. The object is pickled by torch between the fit's own processes, never read from a user."""
    group = _group(group)
    if group is None:
        return obj
    dist = _dist()
    box = [obj if group.rank == 0 else None]
    try:
        if group.backend == "nccl":
            dist.broadcast_object_list(box, src=0, device=_device(group))
        else:
            dist.broadcast_object_list(box, src=0)
    except (RuntimeError, OSError) as exc:
        raise _failed(group, "the broadcast from rank 0", exc) from exc
    return box[0]


def gather_objects(obj: Any, group: Group | None = None) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` without a group): small things a pass cannot
    add up, such as each shard's triangular factor or its evenly spaced rows. Pickled by torch between the fit's
    own processes, never read from a user."""
    group = _group(group)
    if group is None:
        return [obj]
    dist = _dist()
    out: list[Any] = [None] * group.world
    try:
        dist.all_gather_object(out, obj)
    except (RuntimeError, OSError) as exc:
        raise _failed(group, "the gathering of every rank's part", exc) from exc
    return out
