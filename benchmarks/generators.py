"""Benchmark: default training of every generator on mnist5k, and what it makes.

Run: ``python -m benchmarks.generators [--out benchmarks/results/generators]``.
Each generator is trained by the real CLI in a subprocess (wall time and peak
RSS measured there), 1,000 samples are drawn, and the shipped digit classifier
says how many it recognises with confidence ≥ 0.9 and which digits they are.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIDENT = 0.9


def generator_names() -> list[str]:
    """Every generator family of the registry (a new family is benchmarked without edits)."""
    from generators.registry import list_generators

    return list_generators()


def _train(name: str, run: Path, seed: int) -> dict:
    command = [sys.executable, "-m", "forensics.app.cli", "train", name, "--out", str(run),
               "--seed", str(seed), "--device", "cpu"]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode:
        raise SystemExit(f"training {name} failed:\n{result.stderr[-2000:]}")
    # ru_maxrss of children is the largest child so far: train in order of size
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"train_seconds": round(seconds, 1), "peak_rss_mb_so_far": round(peak_mb)}


def _quality(run: Path, n: int, seed: int) -> tuple[dict, np.ndarray]:
    from forensics.classifier import load_digit_classifier
    from generators.base import seeded
    from generators.training import load_run

    images = load_run(run).model.sample(n, seeded(seed, 0))[0].numpy()
    proba = load_digit_classifier().predict_proba(images)
    digits = proba.argmax(1)
    confident = proba.max(1) >= CONFIDENT
    histogram = np.bincount(digits[confident], minlength=10)
    return {
        "samples": n,
        "confident_share": round(float(confident.mean()), 3),
        "digit_histogram_confident": histogram.tolist(),
        "digits_present": int((histogram > 0).sum()),
    }, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generators"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()

    from forensics import atomic, provenance
    from forensics.classifier import load_digit_classifier
    from forensics.data import load_split
    from forensics.images import save_grid

    results: dict = {"machine": provenance.machine(), "versions": provenance.versions(),
                     "seed": args.seed, "created": provenance.now(), "generators": {}}
    real = load_split("mnist5k", "test")
    proba = load_digit_classifier().predict_proba(real.images)
    results["real_test_reference"] = {
        "confident_share": round(float((proba.max(1) >= CONFIDENT).mean()), 3),
        "classifier_accuracy": round(float((proba.argmax(1) == real.labels).mean()), 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in generator_names():
            run = Path(tmp) / name
            entry = _train(name, run, args.seed)
            quality, images = _quality(run, args.n, args.seed)
            entry.update(quality)
            entry["epochs"] = json.loads((run / "config.json").read_text())["epochs"]
            save_grid(images[:100], args.out / f"samples_{name}.png", title=name)
            results["generators"][name] = entry
            print(name, entry, flush=True)
    results["total_train_seconds"] = round(
        sum(g["train_seconds"] for g in results["generators"].values()), 1)
    _histogram_figure(results, args.out / "digit_histograms.png")
    atomic.write_json(args.out / "results.json", results)
    atomic.write_text(args.out / "README.md", _markdown(results))


def _histogram_figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forensics.plots import save_figure

    names = list(results["generators"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3), sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, names, strict=True):
        entry = results["generators"][name]
        ax.bar(range(10), entry["digit_histogram_confident"])
        ax.set(title=f"{name}: {entry['confident_share']:.0%} confident", xticks=range(10),
               xlabel="digit (classifier)")
    axes[0].set_ylabel("samples (confidence ≥ 0.9)")
    save_figure(fig, path)


def _markdown(results: dict) -> str:
    ref = results["real_test_reference"]
    lines = [
        "# Generators on mnist5k: training cost and sample quality", "",
        f"Machine: {results['machine']['processor']}, {results['machine']['cpu_count']} cores, "
        f"{results['machine']['platform']}; load average {results['machine'].get('load_average_1m')} "
        f"at the start (the machine was shared); torch {results['versions'].get('torch')}; "
        f"seed {results['seed']}; measured {results['created']}.", "",
        "Reproduce: `python -m benchmarks.generators`.", "",
        "| generator | epochs | train wall time (s) | peak RSS so far (MB) | confident share "
        "| digits present |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in results["generators"].items():
        lines.append(f"| {name} | {g['epochs']} | {g['train_seconds']} | {g['peak_rss_mb_so_far']} "
                     f"| {g['confident_share']:.1%} | {g['digits_present']}/10 |")
    lines += [
        "", f"All four: {results['total_train_seconds']} s (targets: ≤ 180 s each, ≤ 600 s total).",
        "", f"Reference: held-out real test images are recognised with confidence ≥ 0.9 in "
        f"{ref['confident_share']:.1%} of cases (classifier accuracy {ref['classifier_accuracy']:.1%}).",
        "", "'Confident share' = share of 1,000 samples the shipped digit classifier assigns "
        "a digit with probability ≥ 0.9; the histogram counts those digits.", "",
        "![histograms](digit_histograms.png)", "",
    ]
    lines += [f"![{name}](samples_{name}.png)" for name in results["generators"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
