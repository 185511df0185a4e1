"""Score files and folders with one or more saved detectors (``forensics detect``).

Files stream through in batches (bounded memory, see :mod:`forensics.batches`).
Images of another size or channel count are conformed to each detector's
training shape by the one policy of :func:`forensics.images.conform` — the same
code path as training — and flagged so the caller can warn. With several
detectors the combined score is the mean P(fake) and the combined verdict
compares it with the mean of their calibrated thresholds.

Each image is first checked against every detector's domain
(:meth:`forensics.domain.Domain.assess`, on the file's own shape and the conformed
pixels): it is in domain only if it is for every detector. Out of domain, the record
says why (``domain_reason``), its verdict is ``out-of-domain`` and it carries no score
or source, unless ``force`` (scored anyway, ``in_domain`` still false).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.errors import ForensicsError
from forensics.images import display_name
from forensics.shard import Shard
from forensics.text import capped, parse_json

if TYPE_CHECKING:  # forensics.batches imports torch, which `forensics merge` does without
    from forensics.batches import Batch

#: What every record holds (the writers of :mod:`detectors.output` rely on it).
RECORD_KEYS = frozenset({"file", "p_fake", "verdict", "threshold", "threshold_rule", "scores", "source",
                         "in_domain", "domain_reason", "provenance_tag"})
#: The verdict of an image outside a detector's domain (not judged).
OUT_OF_DOMAIN = "out-of-domain"

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


def resolve_threshold(detectors: dict[str, Any], spec: str | None = None) -> tuple[float, str]:
    """The combined threshold and the rule it came from, for ``detect --threshold``.

    ``None``: the mean of the detectors' saved thresholds, rule as recorded (``saved`` for a
    detector that records none); ``"fpr:RATE"``: each detector's threshold at that
    false-positive rate derived from its real validation scores, averaged; a number: that.
    """
    from detectors.training import threshold_at_fpr

    values = list(detectors.values())
    if spec is None:
        rules = dict.fromkeys(d.calibration_.get("threshold_rule", "saved") for d in values)
        return float(np.mean([d.threshold_ for d in values])), "+".join(rules)
    spec = spec.strip()
    if spec.lower().startswith("fpr:"):
        try:
            rate = float(spec[4:])
        except ValueError:
            raise ForensicsError(f"--threshold {spec!r}: fpr:RATE needs a number, e.g. fpr:0.005") from None
        each = []
        for name, detector in detectors.items():
            try:
                each.append(threshold_at_fpr(detector.calibration_.get("real_val_scores"), rate))
            except ForensicsError as error:
                raise ForensicsError(f"--threshold {spec}: detector {name}: {error}") from None
        return float(np.mean(each)), f"fpr:{rate:g}"
    try:
        value = float(spec)
    except ValueError:
        raise ForensicsError(f"--threshold {spec!r}: give a number in [0, 1] or fpr:RATE") from None
    if not 0.0 <= value <= 1.0:
        raise ForensicsError(f"--threshold {spec}: a P(fake) threshold lies in [0, 1]")
    return value, "value"


def scan(paths: Iterable[str | Path], detectors: dict[str, Any], *, workers: int = 0,
         shard: Shard = Shard(), batch_size: int = 512, force: bool = False,
         threshold: tuple[float, str] | None = None) -> Iterator[list[Entry]]:
    """Score every readable image of ``shard`` under ``paths``; yield each batch's entries by index.

    ``threshold``: ``(value, rule)`` from :func:`resolve_threshold` (default: the saved ones).
    ``force``: score images outside a detector's domain too.
    """
    from forensics.batches import iter_batches

    # the first detector's shape is the one ``resized`` counts against (and the CLI names)
    shapes = [tuple(d.input_shape_) for d in detectors.values()]
    threshold = threshold or resolve_threshold(detectors)
    for batch in iter_batches(paths, shapes[0], None, batch_size, also=shapes[1:], workers=workers,
                              shard=shard):
        entries = [Entry(index, problem=problem) for index, problem in batch.problems]
        if batch.paths:
            entries += _score(batch, detectors, threshold, force)
        yield sorted(entries, key=lambda entry: entry.index)


def _reasons(batch: Batch, detectors: dict[str, Any]) -> list[str | None]:
    """Why each image is outside some detector's domain (None: inside all of them)."""
    per = {name: d.domain().assess(batch.at(d.input_shape_), batch.shapes) for name, d in detectors.items()}
    reasons: list[str | None] = []
    for i in range(len(batch.paths)):
        failed = [(name, r[i]) for name, r in per.items() if r[i] is not None]
        if not failed:
            reasons.append(None)
        elif len(detectors) == 1:
            reasons.append(failed[0][1])
        else:
            reasons.append("; ".join(f"{name}: {reason}" for name, reason in failed))
    return reasons


def _score(batch: Batch, detectors: dict[str, Any], rule: tuple[float, str], force: bool) -> list[Entry]:
    threshold, rule_name = rule
    reasons = _reasons(batch, detectors)
    scores: dict[str, np.ndarray] = {}
    sources: list[str] | None = None
    for name, detector in detectors.items():
        images = batch.at(detector.input_shape_)
        if sources is None:  # the first detector that names sources (attribution, or an
            # ensemble with an attribution member) does, in the pass that scores
            scores[name], sources = detector.scores_and_sources(images)
        else:
            scores[name] = detector.predict_proba(images)
    entries = []
    for i, path in enumerate(batch.paths):
        judged = reasons[i] is None or force
        per = {name: float(s[i]) for name, s in scores.items()}
        combined = float(np.mean(list(per.values())))
        fake = combined >= threshold
        record = {
            "file": display_name(path), "p_fake": round(combined, 6) if judged else None,
            "verdict": ("fake" if fake else "real") if judged else OUT_OF_DOMAIN,
            "threshold": round(threshold, 6), "threshold_rule": rule_name,
            "scores": {k: round(v, 6) if judged else None for k, v in per.items()},
            # the source is asked only of images judged fake: which generator is likeliest
            "source": (sources[i] if fake else "real") if sources and judged else None,
            "in_domain": reasons[i] is None, "domain_reason": reasons[i],
            "provenance_tag": _parse(batch.tags[i]),
        }
        # ``resized`` warns that a judged image was conformed; an unjudged one was not used
        entries.append(Entry(batch.indices[i], record, resized=batch.conformed[i] and judged, path=path))
    return entries


def _parse(tag: str | None) -> Any:
    """A provenance tag (capped when read) as JSON of bounded depth, else the string itself."""
    return parse_json(capped(tag) if tag is not None else None)
