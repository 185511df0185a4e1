"""Rebuild the detector that ships with forensics (``forensics detect`` with no --detector).

Run: ``python -m benchmarks.default_detector [--work runs/default]``. It is the
same as these commands, in order::

    forensics train ae --seed 0 --out WORK/runs/ae          # and vae, gan, infogan
    forensics generate WORK/runs/ae --n 2000 --seed 1 --out WORK/fakes/ae
    forensics train-detector attribution --real mnist5k --fake WORK/fakes/ae \\
        --fake WORK/fakes/vae --fake WORK/fakes/gan --fake WORK/fakes/infogan \\
        --set epochs=12 --set augment=false --seed 0 --out forensics/assets/default_detector

Each step is skipped when its output already exists, so an interrupted rebuild continues.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

GENERATORS = ("ae", "vae", "gan", "infogan")
ASSET = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"
DETECTOR = ["attribution", "--set", "epochs=12", "--set", "augment=false", "--seed", "0"]


def forensics(*args: str) -> None:
    print("+ forensics", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "forensics.app.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/default"))
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()
    for name in GENERATORS:
        run = args.work / "runs" / name
        if not (run / "model.safetensors").exists():
            forensics("train", name, "--seed", "0", "--device", "cpu", "--out", str(run))
        fakes = args.work / "fakes" / name
        if not fakes.exists():
            forensics("generate", str(run), "--n", "2000", "--seed", "1", "--out", str(fakes))
    fake_args = [arg for name in GENERATORS for arg in ("--fake", str(args.work / "fakes" / name))]
    forensics("train-detector", *DETECTOR, "--real", "mnist5k", *fake_args, "--out", str(args.out),
              "--force")


if __name__ == "__main__":
    main()
