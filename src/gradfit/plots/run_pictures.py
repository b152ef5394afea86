"""Pictures of a run, written into a folder: what ``gradfit fit --plot``, ``gradfit plot`` and
the demos draw.

Every picture is built first and saved afterwards, so an option that cannot be honoured (an
unknown parameter for the landscape, say) fails before any file is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gradfit.errors import ConfigError, GradfitError

KINDS = ("fit", "loss", "params", "grid", "landscape", "animation")
STATIC = ("fit", "loss", "params")
ANIMATION_SUFFIXES = (".gif", ".mp4", ".html")


def check_landscape(model, fixed, pair: tuple[str, str] | None) -> None:
    """A ModelError/ConfigError, before any fit, when ``pair`` (``--landscape``) names no two parameters of
    ``model``, or the model has fewer than two free parameters for a landscape."""
    from gradfit.analysis.landscape import landscape_pair

    free = sum(s.size for s in model.specs if s.name not in set(fixed))
    if free < 2:
        raise ConfigError(
            f"A loss landscape (--landscape) needs at least two free parameters; the model "
            f"{model.name!r} has {free}. Leave out --landscape."
        )
    try:
        landscape_pair(model, fixed, pair)
    except GradfitError as exc:
        # Without a pair it refuses only a model of fewer than two parameters, refused above.
        assert pair is not None
        raise ConfigError(f"The --landscape option ({','.join(pair)}): {exc}") from None


def check_animation_path(path: str | os.PathLike) -> Path:
    """The path, if an animation can be written there; else a ConfigError saying why (before any fit runs)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise ConfigError(f"Cannot save an animation as {target.name!r}: the extension must be .gif, .mp4 or .html.")
    if suffix == ".mp4":
        from matplotlib import animation

        if not animation.writers.is_available("ffmpeg"):
            raise ConfigError("Saving MP4 needs ffmpeg, which is not installed here; save as .gif or .html instead.")
    if target.parent.exists() and not target.parent.is_dir():
        raise ConfigError(
            f"Cannot save the animation to {str(target)!r}: {str(target.parent)!r} is a file, not a folder."
        )
    from gradfit.targets import check_file_target

    return check_file_target(target, "--animate", "animation")  # a folder there, a read-only mount, /proc...


def save_pictures(
    result,
    out: str | os.PathLike,
    kinds=STATIC,
    *,
    data: Any = None,
    landscape: tuple[str, str] | None = None,
    span=None,
    animation_path: str | os.PathLike | None = None,
    max_frames: int = 100,
    grid_k: int = 4,
) -> dict[str, Path]:
    """Draw ``kinds`` of ``result`` into ``out`` (``fit.png``, ``loss.png``, ``params.png``, ``grid.png``,
    ``landscape.png``, ``animation.gif``). Returns the paths written, by kind.

    ``landscape`` names the two parameters of the landscape (default: the first two free ones);
    ``animation_path`` overrides where the animation goes (its extension picks GIF, MP4 or HTML).
    """
    # Each kind imports its own module: a run that asks for the loss alone does not load the animation code.
    out = Path(out)
    n_params = len(result.flat_params) - len(result.fixed)
    land = None
    if "landscape" in kinds or ("animation" in kinds and landscape is not None):
        from gradfit.analysis.landscape import compute_landscape

        if n_params < 2:
            raise ConfigError(
                "A loss landscape needs at least two free parameters; this model has "
                f"{n_params}. Leave 'landscape' out of the pictures."
            )
        land = compute_landscape(result, data, params=landscape, span=span)
    pictures: dict[str, Any] = {}
    for kind in kinds:
        if kind == "fit":
            from gradfit.plots.fit import FitDisplay

            pictures[kind] = FitDisplay(result, data, show_start=True)
        elif kind == "loss":
            from gradfit.plots.loss import LossDisplay

            pictures[kind] = LossDisplay(result)
        elif kind == "params":
            from gradfit.plots.params import ParamsDisplay

            pictures[kind] = ParamsDisplay(result, data)
        elif kind == "grid":
            from gradfit.plots.grid import GridDisplay

            pictures[kind] = GridDisplay(result, data, k=grid_k)
        elif kind == "landscape":
            from gradfit.plots.landscape import LandscapeDisplay

            assert land is not None  # computed above for the landscape
            pictures[kind] = LandscapeDisplay(land)
        elif kind == "animation":
            from gradfit.plots.animate import FitAnimation

            pictures[kind] = FitAnimation(result, data, max_frames=max_frames, landscape=land, show_loss=True)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, picture in pictures.items():
        if kind == "animation":
            target = Path(animation_path) if animation_path is not None else out / "animation.gif"
            target.parent.mkdir(parents=True, exist_ok=True)
            written[kind] = picture.save(target)
        else:
            written[kind] = picture.save(out / f"{kind}.png")
    return written
