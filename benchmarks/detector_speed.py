"""Benchmark: how fast detectors score 28×28 images on this machine.

Run: ``python -m benchmarks.detector_speed [--out benchmarks/results/detector_speed]``.

- feature extraction + scoring of the spectral detectors on 10,000 in-memory
  images, beside a per-image NumPy loop computing the same 1-D spectrum;
- the CNN (batched, in memory);
- ``forensics detect`` end to end (a fresh process) on a folder of 10,000 PNGs,
  and on one PNG.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def per_image_spectrum(image: np.ndarray, radius: np.ndarray, n_bins: int) -> np.ndarray:
    """The reference loop body: one image's azimuthally averaged log power spectrum."""
    power = np.log(np.abs(np.fft.fft2(image)) ** 2 + 1e-8)
    return np.bincount(radius.ravel(), weights=power.ravel(), minlength=n_bins)[:n_bins] / np.maximum(
        np.bincount(radius.ravel(), minlength=n_bins)[:n_bins], 1)


def _rate(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detector_speed"))
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()

    from benchmarks import reference
    from detectors.base import load_detector
    from detectors.registry import create, get
    from detectors.scan import DEFAULT_DETECTOR
    from forensics import atomic, provenance
    from forensics.data import load_split
    from forensics.images import png_bytes, to_uint8
    from forensics.measures import radial_spectrum

    train = load_split("mnist5k", "train").images
    rng = np.random.default_rng(0)
    images = train[rng.integers(0, len(train), args.n)]
    fake = np.clip(images + rng.normal(0, 0.05, images.shape).astype(np.float32), 0, 1)
    results: dict = {"machine": provenance.machine(), "versions": provenance.versions(),
                     "n_images": args.n, "created": provenance.now(), "images_per_second": {},
                     "reference_before": reference.measure()}
    rates = results["images_per_second"]

    gray = images[:, 0]
    yy, xx = np.indices(gray.shape[1:])
    centre = (np.array(gray.shape[1:]) - 1) / 2
    radius = np.hypot(yy - centre[0], xx - centre[1]).astype(int)
    n_bins = int(radius.max()) + 1
    rates["spectrum_per_image_numpy_loop"] = round(_rate(
        lambda: [per_image_spectrum(im, radius, n_bins) for im in gray], args.n))
    rates["spectrum_batched (features only)"] = round(_rate(lambda: radial_spectrum(images), args.n))
    for kind in ("spectral-fft", "spectral-dct", "pixel-logreg", "cnn", "npr", "surprisal"):
        # the torch families at their default sizes, trained for one epoch (scoring speed only)
        options = {"epochs": 1} if get(kind).torch_based else {}
        detector = create(kind, **options).fit(images[:2000], fake[:2000] if get(kind).needs_fakes else None)
        rates[f"{kind} (features + scoring)"] = round(_rate(lambda d=detector: d.predict_proba(images),
                                                            args.n))
    shipped = load_detector(DEFAULT_DETECTOR)
    rates[f"default detector: {shipped.name} (in memory)"] = round(
        _rate(lambda: shipped.predict_proba(images), args.n))
    rates["speedup_batched_vs_loop"] = round(
        rates["spectrum_batched (features only)"] / rates["spectrum_per_image_numpy_loop"], 1)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pngs"
        folder.mkdir()
        for i, image in enumerate(to_uint8(images)):
            (folder / f"{i:05d}.png").write_bytes(png_bytes(image))
        command = [sys.executable, "-m", "forensics.app.cli", "detect", "--json"]
        began = time.perf_counter()
        done = subprocess.run([*command, str(folder)], capture_output=True, text=True)
        results["detect_folder_seconds"] = round(time.perf_counter() - began, 2)
        results["detect_folder_records"] = done.stdout.count("\n")
        began = time.perf_counter()
        subprocess.run([*command, str(folder / "00000.png")], capture_output=True, check=True)
        results["detect_one_png_seconds"] = round(time.perf_counter() - began, 2)
    results["reference_after"] = reference.measure()
    before = results["reference_before"]
    folder_ratio = reference.ratio(results["detect_folder_seconds"], before)
    one_ratio = reference.ratio(results["detect_one_png_seconds"], before)
    atomic.write_json(args.out / "results.json", results)
    lines = ["# Detector speed (28×28 images)", "",
             f"Machine: {results['machine']['processor']}, {results['machine']['cpu_count']} cores, "
             "load average "
             f"{results['machine'].get('load_average_1m')} at the start; "
             f"torch {results['versions'].get('torch')}; {results['created']}. "
             "Reproduce: `python -m benchmarks.detector_speed`.", "",
             reference.sentence(before, results["reference_after"]), "",
             "| what | images/s |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in rates.items() if k != "speedup_batched_vs_loop"]
    lines += ["", f"Batched spectrum vs the per-image NumPy loop: {rates['speedup_batched_vs_loop']}×.",
              "", f"`forensics detect` (default detector, fresh process) on {args.n:,} PNGs: "
              f"{results['detect_folder_seconds']} s ({results['detect_folder_records']} records; "
              f"ratio {folder_ratio}); on one PNG: {results['detect_one_png_seconds']} s (ratio "
              f"{one_ratio}).", ""]
    atomic.write_text(args.out / "README.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
