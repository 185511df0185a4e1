"""Train a detector without leakage, calibrate its threshold, and report on held-out images.

Real images arrive already split (the toolkit's one seeded split of the data
set); each fake set is shuffled and split 80/10/10 here with a seed. The
detector is fitted on train, its threshold set on validation (Youden's J:
the threshold that maximises balanced accuracy), and it is scored on test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Detector, as_batch
from detectors.registry import create
from forensics.data import split_parts, stable_seed
from forensics.errors import ForensicsError
from forensics.metrics import best_threshold_accuracy, youden_threshold

PARTS = ("train", "val", "test")


def split_fakes(fakes: dict[str, np.ndarray], seed: int = 0
                ) -> dict[str, dict[str, np.ndarray]]:
    """``{source: {"train"|"val"|"test": images}}``: shuffled, disjoint, 80/10/10 per source."""
    parts: dict[str, dict[str, np.ndarray]] = {}
    for source in sorted(fakes):
        images = as_batch(fakes[source], f"fake set {source!r}")
        # seeded by the source's name, not its place among the sources: a source splits
        # the same way whatever is beside it (the benchmark's leave-one-out relies on it)
        cuts = split_parts(len(images), [seed, stable_seed(source)])
        if len(cuts["val"]) == 0 or len(cuts["test"]) == 0:
            raise ForensicsError(f"fake set {source!r} has {len(images)} images; "
                                 "at least 10 are needed for a train/val/test split")
        parts[source] = {part: images[cuts[part]] for part in PARTS}
    return parts


def _labelled(real: np.ndarray, fakes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    fake = np.concatenate(fakes)
    return np.concatenate([real, fake]), np.r_[np.zeros(len(real)), np.ones(len(fake))]


def calibrate(detector: Detector, real_val: np.ndarray, fakes_val: list[np.ndarray]) -> float:
    """Set ``detector.threshold_`` to the Youden threshold on validation images; return it."""
    images, labels = _labelled(real_val, fakes_val)
    detector.threshold_ = youden_threshold(labels, detector.predict_proba(images))
    return detector.threshold_


def train_detector(kind: str, real_train: np.ndarray, real_val: np.ndarray,
                   real_test: np.ndarray, fakes: dict[str, np.ndarray],
                   options: dict[str, Any] | None = None, seed: int = 0
                   ) -> tuple[Detector, dict[str, Any]]:
    """Fit ``kind`` on train, set ``threshold_`` on val, and report test metrics.

    Report keys: ``auc``, ``accuracy`` (at the calibrated threshold),
    ``balanced_accuracy``, ``best_accuracy``, ``threshold``, ``per_source_auc``
    and the image counts ``n``. The detector's ``metrics_`` is set to it.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    if not fakes:
        raise ForensicsError("no fake images to train on")
    if "real" in fakes:
        raise ForensicsError('"real" cannot name a fake source')
    real = {"train": as_batch(real_train, "real train images"),
            "val": as_batch(real_val, "real validation images"),
            "test": as_batch(real_test, "real test images")}
    split = split_fakes(fakes, seed)
    detector = create(kind, **(options or {}))
    train_fakes = {source: parts["train"] for source, parts in split.items()}
    if hasattr(detector, "fit_sources"):
        detector.fit_sources({"real": real["train"], **train_fakes})
    else:
        detector.fit(real["train"], np.concatenate(list(train_fakes.values())))

    threshold = calibrate(detector, real["val"], [parts["val"] for parts in split.values()])
    images, labels = _labelled(real["test"], [parts["test"] for parts in split.values()])
    scores = detector.predict_proba(images)
    real_scores, fake_scores = scores[: len(real["test"])], scores[len(real["test"]):]
    per_source, start = {}, 0
    for source, parts in split.items():
        own = fake_scores[start : start + len(parts["test"])]
        start += len(own)
        per_source[source] = float(roc_auc_score(
            np.r_[np.zeros(len(real_scores)), np.ones(len(own))], np.r_[real_scores, own]))
    predicted = scores >= threshold
    report = {
        "auc": float(roc_auc_score(labels, scores)),
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "best_accuracy": best_threshold_accuracy(labels, scores)[0],
        "threshold": threshold,
        "per_source_auc": per_source,
        "n": {part: {"real": len(real[part]),
                     **{source: len(parts[part]) for source, parts in split.items()}}
              for part in PARTS},
        "seed": seed,
    }
    if hasattr(detector, "confusion_matrix"):  # attribution: which source made each test image
        matrix, names = detector.confusion_matrix(
            {"real": real["test"], **{source: parts["test"] for source, parts in split.items()}})
        report["confusion_matrix"] = {"labels": names, "rows_true_columns_predicted": matrix.tolist(),
                                      "accuracy": float(np.trace(matrix) / matrix.sum())}
    detector.threshold_ = threshold
    detector.metrics_ = report
    return detector, report


def save_detector(detector: Detector, folder: str | Path, extra: dict[str, Any] | None = None,
                  *, force: bool = False) -> Path:
    """Write a detector folder atomically (all files or none); ``extra`` joins detector.json."""
    from forensics.atomic import staging_dir

    with staging_dir(folder, force=force) as tmp:
        detector.save(tmp, extra=extra)
    return Path(folder)
