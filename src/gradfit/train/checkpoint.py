"""Checkpoints: the complete state of a loop between two steps, saved so a fit can continue exactly.

A checkpoint is taken at the top of a step, before anything of that step happens, and holds
everything the rest of the fit depends on: the parameters, the optimizer's and the schedule's
state, the step, the random generator's state at the start of the current epoch (its shuffling
order is drawn again from it on resume), the stopping rules' and early stopping's state, the
history so far and the loop's elapsed time. With it goes the fit's identity (model, data
fingerprint, options, starting values), checked on resume so that a checkpoint is never applied
to a different fit. Resuming therefore replays the same batches and gives the same parameters,
bit for bit, as a fit that was never stopped.

The file is ``DIR/checkpoint.pt``, written with :func:`torch.save` through
:func:`gradfit.atomic_files.atomic_path` and read back with ``weights_only=True``: only tensors and
plain data, so loading a checkpoint never runs code from the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from gradfit.data.fingerprint import data_fingerprint, rows_fingerprint
from gradfit.distributed import is_writer
from gradfit.errors import ConfigError, DataError
from gradfit.rowpass import is_row_set

__all__ = [
    "FORMAT",
    "CHECKPOINT_NAME",
    "MAY_CHANGE",
    "Checkpointer",
    "fit_identity",
    "load_checkpoint",
    "check_identity",
    "checkpoint_file",
]

FORMAT = "gradfit.checkpoint/2"  # 2: the data's fingerprint covers every value, every field is checked
CHECKPOINT_NAME = "checkpoint.pt"
# Options that do not change the path of the descent, so a resumed fit may set them anew (the budget, not when a
# learning-rate schedule is laid over it: see gradfit.train.steppers.gradient.TorchStepper.check_resume).
MAY_CHANGE = ("steps", "epochs", "max_time", "log_every", "checkpoint_every")
#: What a fit's identity (:func:`fit_identity`) holds.
IDENTITY_FIELDS = ("model", "data", "options", "start", "fixed", "bounds")


def checkpoint_file(path: str | Path) -> Path:
    """``DIR/checkpoint.pt`` for a folder, the path itself for a file."""
    p = Path(path)
    return p if p.suffix == ".pt" and not p.is_dir() else p / CHECKPOINT_NAME


def fit_identity(model_spec: dict, dataset, config: dict, start: dict, fixed, bounds: dict) -> dict:
    """What a checkpoint must agree with to be resumed: model, data, options (less MAY_CHANGE), start."""
    if is_row_set(dataset):  # rows read chunk by chunk: a pass over them
        weights, fingerprint = dataset.weight_total(), rows_fingerprint(dataset)
    else:
        weights, fingerprint = dataset.w, data_fingerprint(dataset.x, dataset.y, w=dataset.w)
    data = {"rows": len(dataset), "columns": [*dataset.x_names, dataset.y_name], "fingerprint": fingerprint}
    if weights is not None:  # only then, so the checkpoints of unweighted fits keep their identity
        data["weights"] = dataset.weighting.to_dict() if dataset.weighting is not None else "array"
    return {  # IDENTITY_FIELDS
        "model": model_spec,
        "data": data,
        "options": {k: v for k, v in config.items() if k not in MAY_CHANGE},
        "start": dict(start),
        "fixed": sorted(fixed),
        "bounds": bounds,
    }


class Checkpointer:
    """Where and when a loop saves its state, and the state it resumes from.

    Parameters
    ----------
    directory : path or None
        Folder of ``checkpoint.pt``; None saves nothing.
    every : int or None
        Save at every step that is a multiple of ``every`` (and at the end of the budget).
    identity : dict or callable
        :func:`fit_identity` of this fit, stored with every checkpoint (a callable is called at the first save,
        so a fit that never saves never pays for the data's fingerprint).
    resume : dict or None
        A loaded checkpoint to continue from (:func:`load_checkpoint`).
    run_id : str
        The id of the run that saves (:mod:`gradfit.run_schema`), kept in every checkpoint it writes.
    """

    def __init__(
        self, directory=None, every: int | None = None, identity=None, resume: dict | None = None, run_id: str = ""
    ):
        self.directory = None if directory is None else Path(directory)
        self.run_id = run_id
        self.every = every
        self.identity = identity if identity is not None else {}
        self.resume = resume
        self.start_step = int(resume["step"]) if resume else 0
        self.saved: Path | None = None
        self.writes = is_writer()  # rank 0 of a fit spread over processes (or the only process)

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / CHECKPOINT_NAME

    def due(self, step: int) -> bool:
        """A periodic checkpoint at this step (never at the step just resumed from)."""
        return bool(self.directory and self.every and step % self.every == 0 and step != self.start_step)

    def wants_final(self, interrupted: bool) -> bool:
        """A checkpoint where the loop stopped: always after a signal, at the budget's end when saving periodically."""
        return bool(self.directory and (interrupted or self.every))

    def save(self, state: dict[str, Any]) -> Path:
        """Write ``state`` (plus format and identity) to ``DIR/checkpoint.pt`` atomically."""
        from gradfit.atomic_files import atomic_path

        if callable(self.identity):  # on every process of a fit spread over processes: its fingerprint is theirs
            self.identity = self.identity()
        path = self.path
        if not self.writes:  # another process writes it
            assert path is not None  # as below
            self.saved = path
            return path
        # The loop saves only when due() or wants_final(), both False without a directory.
        assert self.directory is not None and path is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "identity": json.dumps(self.identity, sort_keys=True, default=repr),
            "run": self.run_id,
            **state,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        self.saved = path
        return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :class:`Checkpointer`; DataError if missing, damaged or foreign."""
    file = checkpoint_file(path)
    if not file.is_file():
        raise DataError(
            f"Cannot resume: there is no checkpoint at {str(file)!r}. A fit writes DIR/{CHECKPOINT_NAME} "
            f"when run with --checkpoint-every N (library: checkpoint_every=N, checkpoint_dir=DIR) or when "
            f"it is interrupted; give that folder, or start the fit afresh without --resume."
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a zip, pickle refused...: all mean the same to the user
        # torch's own text is about its internals (and suggests weights_only=False, which would run the file's code).
        raise DataError(
            f"Cannot resume: the checkpoint {str(file)!r} is damaged (e.g. cut short) or not a gradfit "
            f"checkpoint; torch.load refused it ({type(exc).__name__}). Resume from another folder or start "
            f"the fit afresh without --resume."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        older = isinstance(found, str) and found.startswith("gradfit.checkpoint/")
        why = (
            " It was written by an earlier gradfit, whose checkpoints recorded too little of the data to be checked."
            if older
            else ""
        )
        raise DataError(
            f"Cannot resume: {str(file)!r} is not a checkpoint this gradfit can read (format {found!r}, "
            f"expected {FORMAT!r}).{why} Start the fit afresh without --resume."
        )
    missing = [k for k in ("identity", "step", "params", "recorder", "elapsed") if k not in state]
    if missing:
        raise DataError(
            f"Cannot resume: the checkpoint {str(file)!r} is damaged: field {missing[0]!r} is missing"
            f"{' (and ' + ', '.join(map(repr, missing[1:])) + ')' if missing[1:] else ''}. Start the fit "
            f"afresh without --resume."
        )
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise DataError(
            f"Cannot resume: the checkpoint {str(file)!r} is damaged: field 'step' is {step!r}, expected a "
            f"whole number >= 0. Start the fit afresh without --resume."
        )
    try:
        identity = json.loads(state["identity"]) if isinstance(state["identity"], str) else None
    except (ValueError, RecursionError):
        identity = None
    if not isinstance(identity, dict) or set(identity) != set(IDENTITY_FIELDS):
        raise DataError(
            f"Cannot resume: the checkpoint {str(file)!r} is damaged: field 'identity' is not the "
            f"description of a fit. Start the fit afresh without --resume."
        )
    state["identity"] = identity
    state["file"] = str(file)  # for the messages of gradfit.train.checkpoint_schema
    return state


def check_identity(saved: dict, current: dict, path) -> None:
    """Raise ConfigError listing every way the checkpoint's fit differs from this one."""
    now = json.loads(json.dumps(current, sort_keys=True, default=repr))  # compare like with like: as stored
    diffs = [
        f"{where}: the checkpoint has {_show(a)}, this fit has {_show(b)}" for where, a, b in _differences(saved, now)
    ]
    if diffs:
        may = ", ".join(MAY_CHANGE)
        raise ConfigError(
            f"Cannot resume from {str(checkpoint_file(path))!r}: it belongs to a different fit.\n- "
            + "\n- ".join(diffs)
            + f"\nResume with the same model, data and options (only {may} may change), or start afresh."
        )


def _differences(a, b, where: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            label = (
                {
                    "options": "option",
                    "data": "data",
                    "model": "model",
                    "start": "initial value",
                    "bounds": "bounds",
                    "fixed": "fixed parameters",
                }.get(key, key)
                if not where
                else f"{where} {key!r}"
            )
            if key in a and key in b:
                out += _differences(a[key], b[key], label)
            else:
                out.append((label, a.get(key, "(nothing)"), b.get(key, "(nothing)")))
        return out
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [(where, a, b)]


def _show(v) -> str:
    text = json.dumps(v, default=repr) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
