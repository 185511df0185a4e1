"""Score files and folders with one or more saved detectors (``forensics detect``).

Files stream through in batches (bounded memory). Images of another size or
channel count are conformed to each detector's training shape by the one
policy of :func:`forensics.images.conform` — the same code path as training —
and counted so the caller can warn. With several detectors the combined score
is the mean P(fake) and the combined verdict compares it with the mean of their
calibrated thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.batches import Problems, iter_batches
from forensics.images import display_name, png_text
from forensics.provenance import PROVENANCE_KEY

DEFAULT_DETECTOR = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"


@dataclass
class ScanResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    resized: int = 0


def scan(paths: Iterable[str | Path], detectors: dict[str, Any], *,
         callback: Callable[[int], None] | None = None, batch_size: int = 512) -> ScanResult:
    """Score every readable image under ``paths`` with each detector."""
    result = ScanResult()
    paths = list(paths)
    # the first detector's shape is the one ``resized`` counts against (and the CLI names)
    shapes = [tuple(d.input_shape_) for d in detectors.values()]
    for batch in iter_batches(paths, shapes[0], result.problems, batch_size, also=shapes[1:]):
        result.resized += batch.resized
        scores = {name: det.predict_proba(batch.at(det.input_shape_))
                  for name, det in detectors.items()}
        sources = _sources(detectors, batch)
        for i, path in enumerate(batch.paths):
            per = {name: float(s[i]) for name, s in scores.items()}
            combined = float(np.mean(list(per.values())))
            threshold = float(np.mean([d.threshold_ for d in detectors.values()]))
            tag = png_text(path).get(PROVENANCE_KEY)
            result.paths.append(path)
            result.records.append({
                "file": display_name(path), "p_fake": round(combined, 6),
                "verdict": "fake" if combined >= threshold else "real",
                "threshold": round(threshold, 6),
                "scores": {k: round(v, 6) for k, v in per.items()},
                # the source is asked only of images judged fake: which generator is likeliest
                "source": (sources[i] if combined >= threshold else "real") if sources else None,
                "provenance_tag": _parse(tag),
            })
        if callback:
            callback(len(batch.paths))
    return result


def _sources(detectors: dict[str, Any], batch) -> list[str] | None:
    """The likeliest generator (non-real class) per image, from the first attribution detector."""
    for detector in detectors.values():
        if hasattr(detector, "predict_source_proba"):
            proba = detector.predict_source_proba(batch.at(detector.input_shape_))
            return [detector.classes_[1 + k] for k in proba[:, 1:].argmax(1)]
    return None


def _parse(tag: str | None) -> Any:
    if tag is None:
        return None
    try:
        return json.loads(tag)
    except ValueError:
        return tag
