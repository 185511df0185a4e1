"""Benchmark: real digits through processing, as an analyst receives them — how often is a
real image called fake, and how often does the detector abstain?

Run: ``python -m benchmarks.processing [--detector DIR] [--out benchmarks/results/processing]``.

The 500 held-out real test digits of mnist5k (never seen in training or calibration) go
through each processing below at a fixed strength, as 8-bit images (OpenCV), and through the
detector (default: the shipped one). For each: the share of the judged images called fake at
the detector's saved threshold (with its 95 % Wilson interval), the share abstained on
(out of its domain), and the median calibrated P(fake). ``seen`` marks the processings the
detector's training and threshold cover (:data:`forensics.domain.PROCESSINGS`, at random
strengths; JPEG, blur, resize and noise also at each strength of
:data:`detectors.training.STRENGTH_GRID`); the others
(gamma, contrast, rotation, shift, zoom, median filter, dilation, erosion, flip, bilateral
filter, JPEG 10, …) it never
met, and the threshold promises nothing for them. The same fixed strengths are applied to the
fakes of every fake set of the default detector's recipe when ``--fakes DIR`` gives their
folders (one sub-folder per fake set), for the TPR under each processing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def processings() -> dict[str, tuple[bool, Any]]:
    """label → (seen by training and calibration, function on one uint8 (H, W) image)."""
    from forensics.domain import process_one
    from forensics.images import opencv

    cv2 = opencv()

    def own(kind: str, strength: float):
        """The toolkit's own processing (what training and calibration apply) at a fixed strength;
        one seeded stream per processing, drawn image after image (noise)."""
        rng = np.random.default_rng(0)
        return lambda a: process_one(a[:, :, None], kind, rng, strength=strength)[:, :, 0]

    def jpeg(q: int):
        return own("jpeg", q)

    def affine(angle: float = 0.0, shift: float = 0.0, scale: float = 1.0):
        def apply(a: np.ndarray) -> np.ndarray:
            h, w = a.shape
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
            m[0, 2] += shift
            return cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR)
        return apply

    def unsharp(a: np.ndarray) -> np.ndarray:
        soft = cv2.GaussianBlur(a, (0, 0), 1.0).astype(np.float32)
        return np.clip(a + 1.0 * (a - soft) + 0.5, 0, 255).astype(np.uint8)

    def down_up(factor: float, method: int):
        def apply(a: np.ndarray) -> np.ndarray:
            h, w = a.shape
            small = cv2.resize(a, (round(w * factor), round(h * factor)), interpolation=method)
            return cv2.resize(small, (w, h), interpolation=method)
        return apply

    kernel = np.ones((2, 2), np.uint8)
    motion = np.zeros((5, 5), np.float32)
    motion[2] = 1 / 5
    laplacian = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    table: dict[str, tuple[bool, Any]] = {"none (PNG)": (True, lambda a: a)}
    table.update({f"JPEG {q}": (True, jpeg(q)) for q in (30, 50, 75, 95)})
    table.update({
        "JPEG 20": (False, jpeg(20)),
        "JPEG 90 then 70": (True, lambda a: jpeg(70)(jpeg(90)(a))),
        "WebP 50": (True, own("webp", 50)),
        "Gaussian blur σ 1": (True, own("blur", 1.0)),
        "Gaussian blur σ 2": (True, own("blur", 2.0)),
        "resize 0.5× and back (area, bilinear)": (True, own("resize", 0.5)),
        "noise σ 8/255": (True, own("noise", 8.0)),
        "unsharp mask (σ 1, amount 1)": (True, unsharp),
        "resize 0.5× and back (bicubic)": (False, down_up(0.5, cv2.INTER_CUBIC)),
        "noise σ 16/255": (True, own("noise", 16.0)),
        "noise σ 24/255": (False, own("noise", 24.0)),
        "gamma 0.6": (False, lambda a: np.clip(255 * (a / 255.0) ** 0.6 + 0.5, 0, 255).astype(np.uint8)),
        "gamma 1.6": (False, lambda a: np.clip(255 * (a / 255.0) ** 1.6 + 0.5, 0, 255).astype(np.uint8)),
        "contrast 0.8×": (False, lambda a: (a * 0.8 + 0.5).astype(np.uint8)),
        "rotate 10°": (False, affine(angle=10)),
        "shift 2 px": (False, affine(shift=2)),
        "zoom 1.1×": (False, affine(scale=1.1)),
        "median filter 3×3": (False, lambda a: cv2.medianBlur(a, 3)),
        "dilate 2×2": (False, lambda a: cv2.dilate(a, kernel)),
        "erode 2×2": (False, lambda a: cv2.erode(a, kernel)),
        "horizontal flip": (False, lambda a: np.ascontiguousarray(a[:, ::-1])),
        # seen since 2026-12-04 (tone, gray levels, motion blur, stronger sharpening)
        "black lifted to 8/255": (True, own("tone", 8)),
        "black lifted to 16/255": (True, own("tone", 16)),
        "16 gray levels": (True, own("quantize", 16)),
        "thresholded at 128": (True, own("quantize", 2)),
        "thresholded at 64": (True, lambda a: np.where(a >= 64, 255, 0).astype(np.uint8)),
        "motion blur 5 px": (True, lambda a: cv2.filter2D(a, -1, motion)),
        "Laplacian sharpening": (True, lambda a: cv2.filter2D(a, -1, laplacian)),
        "JPEG 10": (False, jpeg(10)),
        "bilateral filter": (False, lambda a: cv2.bilateralFilter(a, 5, 50, 5)),
        "posterize 4 bits (PIL)": (False, lambda a: (a >> 4) << 4),
    })
    return table


def wilson(k: int, n: int) -> list[float]:
    """95 % Wilson interval of k of n (scipy)."""
    from scipy.stats import binomtest

    if n == 0:
        return [0.0, 1.0]
    interval = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def measure(detector, images: np.ndarray) -> dict[str, Any]:
    """Share called fake among the judged, share abstained, median P(fake) of the judged."""
    inside = np.array([reason is None for reason in detector.domain().assess(images)])
    judged = images[inside]
    called = detector.log_odds(judged) >= detector.threshold_log_odds_ if len(judged) else np.zeros(0, bool)
    out: dict[str, Any] = {"n": len(images), "abstained": float(1 - inside.mean()),
                           "called_fake": float(called.mean()) if len(judged) else None,
                           "called_fake_ci95": wilson(int(called.sum()), len(judged))}
    if len(judged) and detector.calibration_.get("probability"):
        out["median_p_fake"] = float(np.median(detector.probability(detector.predict_proba(judged))))
    return out


def _through(apply, images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) images through ``apply``, as float (N, 1, H, W) in [0, 1]."""
    return np.stack([apply(image) for image in images])[:, None].astype(np.float32) / 255.0


def main() -> None:
    from datetime import UTC, datetime

    from detectors.base import load_detector
    from forensics import atomic
    from forensics.data import load, load_split
    from forensics.images import to_uint8
    from forensics.provenance import versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default=str(Path(__file__).resolve().parent.parent / "forensics"
                                                  / "assets" / "default_detector"))
    parser.add_argument("--fakes", type=Path, default=None,
                        help="a folder of generated-image folders, one per generator (TPR under processing)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/processing"))
    args = parser.parse_args()
    detector = load_detector(args.detector)
    pixels = to_uint8(load_split("mnist5k", "test").images)[..., 0]
    fakes = {}
    if args.fakes:
        fakes = {folder.name: to_uint8(load(f"folder:{folder}").images[:200])[..., 0]
                 for folder in sorted(args.fakes.iterdir()) if folder.is_dir()}
    rows = {}
    for label, (seen, apply) in processings().items():
        rows[label] = {"seen": seen, "real": measure(detector, _through(apply, pixels)),
                       "fakes": {name: measure(detector, _through(apply, images))
                                 for name, images in fakes.items()}}
        real = rows[label]["real"]
        print(f"{label:40s} called fake {real['called_fake']:.3f}  abstained {real['abstained']:.3f}",
              flush=True)
    header = json.loads((Path(args.detector) / "detector.json").read_text())
    results = {"created": datetime.now(UTC).isoformat(timespec="seconds"), "detector": str(args.detector),
               "detector_created": header.get("created"), "threshold": detector.threshold_,
               "versions": versions(), "fakes": str(args.fakes) if args.fakes else None,
               "processings": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic.write_text(args.out / "README.md", markdown(results))


def markdown(results: dict[str, Any]) -> str:
    fakes = sorted({name for row in results["processings"].values() for name in row["fakes"]})
    lines = ["# Real digits through processing: false accusations and abstentions", "",
             f"Detector: `{Path(results['detector']).name}` (built {results['detector_created']}), "
             f"threshold {results['threshold']:.4f}; measured {results['created']}; "
             f"torch {results['versions'].get('torch')}. The 500 held-out real test digits of mnist5k "
             "through each processing at a fixed strength. 'Seen': the processing family is in the "
             "detector's robust training and threshold calibration (at random strengths); the "
             "others it never met. Reproduce: `python -m benchmarks.processing`.", "",
             *([f"TPR columns: the first 200 images of each folder under `{results['fakes']}`, through the "
                "same processing. When those are the folders the detector was built from (the "
                "default detector's rebuild keeps them), most of them were its training images: "
                "read the TPR as an upper bound.", ""] if results.get("fakes") else []),
             "| processing | seen | real called fake (95 % CI) | abstained | median P(fake) |"
             + "".join(f" TPR {name} |" for name in fakes),
             "|---|---|---|---|---|" + "---|" * len(fakes)]
    for label, row in results["processings"].items():
        real = row["real"]
        low, high = real["called_fake_ci95"]
        called = "–" if real["called_fake"] is None else f"{real['called_fake']:.1%} ({low:.1%}–{high:.1%})"
        median = real.get("median_p_fake")
        cells = [label, "yes" if row["seen"] else "no", called, f"{real['abstained']:.1%}",
                 "–" if median is None else f"{median:.2f}"]
        for name in fakes:
            rate = row["fakes"][name]["called_fake"]
            cells.append("–" if rate is None else f"{rate:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
