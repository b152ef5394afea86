"""Regenerate the README's gallery (docs/gallery/) from the demos: ``python docs/make_gallery.py``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "gallery"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    gradfit = [sys.executable, "-m", "gradfit"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([*gradfit, "demo", "linear", "--out", str(tmp / "linear"), "--quiet"], check=True)
        subprocess.run([*gradfit, "demo", "rollercoaster", "--out", str(tmp / "roller"), "--quiet"], check=True)
        subprocess.run([*gradfit, "race", "builtin:linear", "--y", "y", "--model", "linear", "--init", "a=-1,a[1]=1",
                        "--optimizers", "sgd:0.1,momentum:0.1,adam:0.1", "--steps", "100", "--out", str(tmp / "race"),
                        "--quiet"], check=True)
        copies = {
            "linear/fit.png": "linear-fit.png", "linear/grid.png": "linear-grid.png",
            "linear/landscape.png": "linear-landscape.png", "linear/loss.png": "linear-loss.png",
            "linear/animation.gif": "linear-animation.gif", "roller/grid.png": "rollercoaster-grid.png",
            "roller/landscape.png": "rollercoaster-landscape.png", "race/race.png": "race.png",
        }
        for src, dst in copies.items():
            shutil.copyfile(tmp / src, HERE / dst)
            print(f"wrote {HERE / dst}")


if __name__ == "__main__":
    main()
