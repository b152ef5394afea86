"""How long each picture of a 100-row fit takes to draw and save, and a 100-frame GIF.

Each picture is saved ``--repeat`` times after one warm-up (fonts, caches) and the median is
reported. With ``--baseline SRC`` (the ``src`` folder of another checkout, e.g. made with
``git archive main src | tar -x -C /tmp/base``) the same measurements run on that code too, in
alternating subprocesses, and the table gives both and their ratio: absolute times depend on the
machine and its load, the ratio is the number to compare.

    python bench/bench_plots.py --baseline /tmp/base/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PICTURES = ("fit", "loss", "params", "grid", "landscape", "animation")


def make_run(folder: Path):
    """A 100-row exponential fit by Adam, 300 steps: 301 snapshots, so the animation has 100 frames."""
    import numpy as np
    import pandas as pd

    import gradfit
    from gradfit.outputs import save_run

    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 5.0, 100)
    frame = pd.DataFrame({"x": x, "y": 2.0 * np.exp(0.8 * x) + rng.normal(0.0, 1.0, x.size)})
    csv = folder / "exp100.csv"
    frame.to_csv(csv, index=False)
    result = gradfit.fit(
        "a*exp(b*x)", str(csv), y="y", optimizer="adam", lr=0.05, steps=300, init={"a": 1.0, "b": 0.5}, dtype="float64"
    )
    save_run(result, folder / "run")
    return folder / "run"


def measure(run: Path, repeat: int) -> dict[str, float]:
    """Median seconds to build and save each picture of the saved run."""
    import matplotlib

    matplotlib.use("Agg")
    from gradfit.analysis.landscape import compute_landscape
    from gradfit.outputs import load_run
    from gradfit.plots.animate import FitAnimation
    from gradfit.plots.fit import FitDisplay
    from gradfit.plots.grid import GridDisplay
    from gradfit.plots.landscape import LandscapeDisplay
    from gradfit.plots.loss import LossDisplay
    from gradfit.plots.params import ParamsDisplay

    result = load_run(run)
    land = compute_landscape(result, params=("a", "b"))
    makers = {
        "fit": lambda: FitDisplay(result, show_start=True).save(run / "fit.png"),
        "loss": lambda: LossDisplay(result).save(run / "loss.png"),
        "params": lambda: ParamsDisplay(result).save(run / "params.png"),
        "grid": lambda: GridDisplay(result).save(run / "grid.png"),
        "landscape": lambda: LandscapeDisplay(land).save(run / "landscape.png"),
        "animation": lambda: FitAnimation(result, landscape=land, show_loss=True).save(run / "animation.gif"),
    }
    out = {}
    for name, make in makers.items():
        make()  # warm-up
        times = []
        for _ in range(repeat if name != "animation" else max(1, repeat // 2)):
            start = time.perf_counter()
            make()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def worker(src: str | None, run: Path, repeat: int) -> dict[str, float]:
    env = dict(os.environ, MPLBACKEND="Agg")
    if src:
        env["PYTHONPATH"] = src
    text = subprocess.run(
        [sys.executable, __file__, "--worker", str(run), "--repeat", str(repeat)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(text.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="the src folder of the code to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per code (the best is kept)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.repeat)))
        return
    here = str(HERE.parent / "src")
    sys.path.insert(0, here)  # this checkout's gradfit makes the run, whatever is installed
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        codes = {"this": here} | ({"baseline": args.baseline} if args.baseline else {})
        best: dict[str, dict[str, float]] = {k: {} for k in codes}
        for _ in range(args.rounds):
            for name, src in codes.items():
                for pic, t in worker(src, run, args.repeat).items():
                    best[name][pic] = min(t, best[name].get(pic, float("inf")))
    print(f"{'picture':<12}" + "".join(f"{k:>12}" for k in codes) + ("       ratio" if args.baseline else ""))
    for pic in PICTURES:
        row = f"{pic:<12}" + "".join(f"{best[k][pic]:>11.2f}s" for k in codes)
        if args.baseline:
            row += f"{best['baseline'][pic] / best['this'][pic]:>11.1f}x"
        print(row)


if __name__ == "__main__":
    main()
