"""``gradfit fit`` under torchrun: many processes, one fit, one writer.

Every process runs the same command. Each joins the process group (:func:`gradfit.distributed.init_from_env`),
reads its own row groups and takes the same steps (the library does both: see :mod:`gradfit.data.shard_rows`);
rank 0 alone chooses the output folder, prints and writes, and tells the others where its checkpoints go, so
they read the same one when the job resumes. A job that torchrun restarts (``--max-restarts``) after a failure
takes up the checkpoint of ``--out`` by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from gradfit.distributed import Group, broadcast_object, init_from_env

__all__ = ["Silent", "join", "restarted_from", "share", "told"]

#: Seconds a process waits for the others (the rendezvous, then every collective) by default.
DEFAULT_TIMEOUT = 300.0


def join(timeout_s: float | None) -> Group | None:
    """The process group of a torchrun launch (None for a command run by itself)."""
    return init_from_env(DEFAULT_TIMEOUT if timeout_s is None else timeout_s)


def restarted_from(out: Path | None, resume: Path | None) -> Path | None:
    """``resume``, or ``out`` when torchrun restarted this job (``TORCHELASTIC_RESTART_COUNT`` > 0) and a checkpoint
    is there: the restarted fit goes on from it and ends as one never stopped."""
    from gradfit.outputs import CHECKPOINT_NAME

    restarts = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if resume is None and out is not None and restarts.isdigit() and int(restarts) > 0:
        if (Path(out) / CHECKPOINT_NAME).is_file():
            return Path(out)
    return resume


def share(group: Group | None, out_dir: Path, resume: Path | None) -> None:
    """Rank 0 tells the others the output folder (their checkpoints' folder) and the checkpoint to resume from."""
    if group is not None:
        broadcast_object((str(out_dir), None if resume is None else str(resume)), group)


def told(group: Group) -> tuple[Path, Path | None]:
    """What rank 0 :func:`share` d, on another rank."""
    out_dir, resume = broadcast_object(None, group)
    return Path(out_dir), None if resume is None else Path(resume)


class Silent:
    """A callback for the ranks that do not write: it stands for the loss lines rank 0 prints (``prints_loss``), so
    the fit prints none of its own there."""

    prints_loss = True
