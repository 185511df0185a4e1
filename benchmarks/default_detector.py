r"""Rebuild the detector that ships with forensics (``forensics detect`` with no --detector).

Run: ``python -m benchmarks.default_detector [--work runs/default]``. It is the
same as these commands, in order::

    forensics train ae --seed 0 --out WORK/runs/ae          # every generator of the registry
    forensics generate WORK/runs/ae --n 2000 --seed 1 --out WORK/fakes/ae
    forensics generate WORK/runs/diffusion --n 2000 --seed 2 --sampler ddim --steps 25 \
        --out WORK/fakes/diffusion-ddim-25              # each other sampling the class names
    forensics train-detector ensemble --real mnist5k --fake WORK/fakes/ae \
        --fake WORK/fakes/diffusion --fake WORK/fakes/diffusion-ddim-25 ... \
        --set members=attribution,surprisal --set robust=true \
        --set member_options='{"attribution": {...}, "surprisal": {"levels": 256}}' \
        --seed 0 --out forensics/assets/default_detector

with the detector of :data:`DETECTOR`.

Each step is skipped when its output already exists, so an interrupted rebuild continues.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ASSET = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"
#: the quick suite's ``ensemble`` entry (``benchmarks/results/quick/``), chosen after each re-run
#: from the summary's AUC and threshold columns together: in the latest run (2026-12-04 17:32,
#: with ``stretch``) it ranks first by worst-case LOGO AUC (0.876, on diffusion; 0.822 on the GAN
#: without ``stretch`` that morning), mean cross-generator AUC 0.895, 0.0 % processed-real FPR;
#: the real-only ``surprisal`` is second (0.804). ``stretch`` (both members
#: judge images after auto-levels) joined on 2026-12-04: without it the threshold had to sit above
#: real digits with a lifted black (both members scored them like fakes) and caught 0.7 % of the
#: test fakes; with it 18.4 % but 1.6 % of real digits under a 5-px motion blur called fake; with
#: motion blurs in the threshold's strengths and the augmentation, 14.7 % at 0.0 % under each
#: of the processing benchmark's 36 processings; rebuilt on InfoGAN's 16-d-noise fakes, 13.8 %;
#: on the fakes of the bf16 trainings (diffusion 34 epochs, 18 steps), 5.6 % (README)
DETECTOR = {"kind": "ensemble", "seed": 0, "options": {
    "members": "attribution,surprisal", "robust": True, "stretch": True,
    "member_options": '{"attribution": {"robust": true, "robust_share": 0.5, "epochs": 15}, '
                      '"surprisal": {"levels": 256}}'}}


#: each fake set's size and ``generate`` seed
FAKE_COUNT, FAKE_SEED = 2000, 1


def generator_names() -> list[str]:
    """Every generator family of the registry."""
    from generators.registry import list_generators

    return list_generators()


def detector_args(detector: dict = DETECTOR) -> list[str]:
    """``train-detector`` arguments for a ``DETECTOR``-like entry."""
    def text(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    options = [arg for key, value in detector.get("options", {}).items()
               for arg in ("--set", f"{key}={text(value)}")]
    return [detector["kind"], *options, "--seed", str(detector.get("seed", 0))]


def _finished(run: Path) -> bool:
    """The run folder holds every epoch its config asks for."""
    import json

    try:
        epochs = json.loads((run / "config.json").read_text())["epochs"]
        return len((run / "metrics.jsonl").read_text().splitlines()) >= epochs
    except (OSError, ValueError, KeyError):
        return False


def _stale(run: Path, name: str) -> str | None:
    """What differs between the run folder's recorded options and today's defaults (a run
    kept from before a default changed would otherwise be reused silently), or None. Sampling
    options are not compared: the fakes are drawn with today's (:func:`default_sampling`)."""
    import json

    import torch

    from generators.registry import get
    from generators.runs import saved_options
    from generators.training import new_run_precision, run_precision

    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    cls = get(name)
    now = cls.Options.from_dict({}).to_dict()
    then = cls.Options.from_dict(saved_options(config)).to_dict()
    changed = [f"{key} {then.get(key)!r} (default now {value!r})" for key, value in now.items()
               if then.get(key) != value and key not in cls.sampling_options]
    if config.get("epochs") != cls.default_epochs:
        changed.append(f"epochs {config.get('epochs')!r} (default now {cls.default_epochs})")
    precision = new_run_precision(torch.device("cpu"))  # the rebuild trains with --device cpu
    if run_precision(config) != precision:
        changed.append(f"precision {run_precision(config)!r} (default now {precision!r})")
    return ", ".join(changed) or None


def default_sampling(name: str) -> dict[str, object]:
    """Today's default sampling options of ``name`` (a run records the sampler it was trained
    with; a newer default sampler applies without retraining)."""
    from generators.registry import get

    cls = get(name)
    defaults = cls.Options.from_dict({}).to_dict()
    return {key: defaults[key] for key in cls.sampling_options}


def fake_sets(name: str) -> list[tuple[str, dict[str, object], int]]:
    """``(folder name, sampling options, seed)`` of each fake set drawn from ``name``'s run: its
    default sampling, and each other sampling its class names (``benchmark_samplings``: DDIM
    beside the diffusion model's default sampler, the course's prior beside the VAE's mixture),
    so the detector meets the same generator's samplers as sources of their own. Each set has
    a seed of its own: two samplers of one model from the same x_T would draw the same digits,
    and the split could put one in training and its twin in the test."""
    from generators.registry import get

    others = [(f"{name}-" + "-".join(str(value) for value in sampling.values()), dict(sampling),
               FAKE_SEED + k) for k, sampling in enumerate(get(name).benchmark_samplings, 1)]
    return [(name, default_sampling(name), FAKE_SEED), *others]


def sampling_args(sampling: dict[str, object]) -> list[str]:
    """``generate`` arguments for sampling options (``--sampler X --steps N``)."""
    return [arg for key, value in sampling.items() for arg in (f"--{key}", str(value))]


def _stale_fakes(run: Path, fakes: Path, sampling: dict[str, object], seed: int = FAKE_SEED
                 ) -> str | None:
    """What differs between a kept fake folder and what the rebuild would draw now (its run's
    weights, seed, count, sampling), or None; a folder without a readable manifest differs."""
    from forensics import provenance
    from forensics.manifest import ManifestError, read_manifest
    from generators.runs import WEIGHTS
    from generators.training import load_run

    try:
        header = read_manifest(fakes).header
    except (ManifestError, OSError):
        return "no readable manifest"
    model = load_run(run).model
    model.set_sampling(**sampling)
    expected = {"seed": seed, "n": FAKE_COUNT, "sampling": model.sampling(),
                "checkpoint_sha256": provenance.sha256_file(run / WEIGHTS)}
    changed = [f"{key} {header.get(key)!r} (now {value!r})" for key, value in expected.items()
               if header.get(key) != value]
    return ", ".join(changed) or None


def forensics(*args: str) -> None:
    print("+ forensics", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "forensics.app.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/default"))
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()
    names = generator_names()
    for name in names:
        run = args.work / "runs" / name
        stale = _stale(run, name)
        if stale:
            folders = ", ".join(str(args.work / "fakes" / label) for label, _, _ in fake_sets(name))
            raise SystemExit(f"{run} was trained with other options than today's defaults ({stale}): "
                             f"remove it and {folders}, or use another --work")
        if not _finished(run):  # new, or interrupted: continue from its last finished epoch
            resume = ["--resume"] if (run / "config.json").exists() else []
            forensics("train", name, "--seed", "0", "--device", "cpu", "--out", str(run), *resume)
        for label, sampling, seed in fake_sets(name):
            fakes = args.work / "fakes" / label
            stale = _stale_fakes(run, fakes, sampling, seed) if fakes.exists() else None
            if stale:
                raise SystemExit(f"{fakes} was drawn otherwise than the rebuild draws now ({stale}): "
                                 "remove it, or use another --work")
            if not fakes.exists():
                forensics("generate", str(run), "--n", str(FAKE_COUNT), "--seed", str(seed),
                          *sampling_args(sampling), "--out", str(fakes))
    fake_args = [arg for name in names for label, _, _ in fake_sets(name)
                 for arg in ("--fake", str(args.work / "fakes" / label))]
    forensics("train-detector", *detector_args(), "--real", "mnist5k", *fake_args, "--out", str(args.out),
              "--force")


if __name__ == "__main__":
    main()
