"""Score files and folders with one or more saved detectors (``forensics detect``).

Files stream through in batches (bounded memory, see :mod:`forensics.batches`).
Images of another size or channel count are conformed to each detector's
training shape by the one policy of :func:`forensics.images.conform` — the same
code path as training — and flagged so the caller can warn. With several
detectors the combined score is the mean P(fake) and the combined verdict
compares it with the mean of their calibrated thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.images import display_name
from forensics.shard import Shard

if TYPE_CHECKING:  # forensics.batches imports torch, which `forensics merge` does without
    from forensics.batches import Batch

#: What every record holds (the writers of :mod:`detectors.output` rely on it).
RECORD_KEYS = frozenset({"file", "p_fake", "verdict", "threshold", "scores", "source", "provenance_tag"})

DEFAULT_DETECTOR = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"


@dataclass
class Entry:
    """One entry of the walk over the inputs: a scored image's record, or why a file was skipped.

    ``index`` is the entry's place in the walk (bad files count), the key every merge
    sorts on. ``resized``: the image was conformed to the first detector's shape.
    ``path`` is known only to the process that read the file (it is never written).
    """

    index: int
    record: dict[str, Any] | None = None
    problem: str | None = None
    resized: bool = False
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as one JSON object (a line of a shard file)."""
        if self.record is None:
            return {"index": self.index, "problem": self.problem}
        return {"index": self.index, "record": self.record, "resized": self.resized}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Rebuild an entry from :meth:`to_dict`; ValueError when it is not one."""
        index = data.get("index") if isinstance(data, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError("no entry index")
        record, resized = data.get("record"), data.get("resized")
        if isinstance(record, dict) and RECORD_KEYS <= record.keys() and isinstance(resized, bool):
            return cls(index, record=record, resized=resized)
        if isinstance(data.get("problem"), str):
            return cls(index, problem=data["problem"])
        raise ValueError(f"entry {index} holds neither a record nor a problem")


def scan(paths: Iterable[str | Path], detectors: dict[str, Any], *, workers: int = 0,
         shard: Shard = Shard(), batch_size: int = 512) -> Iterator[list[Entry]]:
    """Score every readable image of ``shard`` under ``paths``; yield each batch's entries by index."""
    from forensics.batches import iter_batches

    # the first detector's shape is the one ``resized`` counts against (and the CLI names)
    shapes = [tuple(d.input_shape_) for d in detectors.values()]
    threshold = float(np.mean([d.threshold_ for d in detectors.values()]))
    for batch in iter_batches(paths, shapes[0], None, batch_size, also=shapes[1:], workers=workers,
                              shard=shard):
        entries = [Entry(index, problem=problem) for index, problem in batch.problems]
        if batch.paths:
            entries += _score(batch, detectors, threshold)
        yield sorted(entries, key=lambda entry: entry.index)


def _score(batch: Batch, detectors: dict[str, Any], threshold: float) -> list[Entry]:
    scores: dict[str, np.ndarray] = {}
    sources: list[str] | None = None
    for name, detector in detectors.items():
        images = batch.at(detector.input_shape_)
        if sources is None and hasattr(detector, "predict_source_proba"):
            # the first attribution detector: one forward pass gives P(fake) and the likeliest
            # generator (non-real class) per image
            proba = detector.predict_source_proba(images)
            scores[name] = detector.fake_probability(proba)
            sources = [detector.classes_[1 + k] for k in proba[:, 1:].argmax(1)]
        else:
            scores[name] = detector.predict_proba(images)
    entries = []
    for i, path in enumerate(batch.paths):
        per = {name: float(s[i]) for name, s in scores.items()}
        combined = float(np.mean(list(per.values())))
        record = {
            "file": display_name(path), "p_fake": round(combined, 6),
            "verdict": "fake" if combined >= threshold else "real",
            "threshold": round(threshold, 6),
            "scores": {k: round(v, 6) for k, v in per.items()},
            # the source is asked only of images judged fake: which generator is likeliest
            "source": (sources[i] if combined >= threshold else "real") if sources else None,
            "provenance_tag": _parse(batch.tags[i]),
        }
        entries.append(Entry(batch.indices[i], record, resized=batch.conformed[i], path=path))
    return entries


def _parse(tag: str | None) -> Any:
    if tag is None:
        return None
    try:
        return json.loads(tag)
    except ValueError:
        return tag
