"""Score files and folders with one or more saved detectors (``forensics detect``).

Files stream through in batches (bounded memory, see :mod:`forensics.batches`).
Images of another size or channel count are conformed to each detector's
training shape by the one policy of :func:`forensics.images.conform` — the same
code path as training — and flagged (with the file's own size) so the caller can warn.

Each detector judges by its own threshold (its saved one, or ``--threshold``): fake
when its raw score is at or above it, compared in log-odds
(:meth:`detectors.base.Detector.log_odds`: the logit before a detector's sigmoid, so a
score that rounds to 1.0 in float still ranks; the threshold shown is its sigmoid).
With several detectors, the combined verdict follows a rule (:data:`COMBINE_RULES`, ``--combine``):

* ``any`` (the default): fake when at least one detector says fake;
* ``majority``: fake when more than half of them say fake (a tie is real);
* ``mean``: fake when the mean over detectors of logit(score) − logit(threshold),
  each detector's log-odds above its own threshold, is at or above 0; scale-free, so a detector whose
  threshold is 0.0008 weighs as much as one at 0.5.

With one detector every rule is its verdict. ``disagree`` is true when the detectors'
verdicts differ. ``p_fake`` is the raw score (the mean raw score with several; kept for
old scripts: it is not a probability); ``probability`` the calibrated P(fake) of a
detector that stores Platt's rule (:meth:`detectors.base.Detector.probability`; the
mean with several, when all store one), else null.

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
RECORD_KEYS = frozenset({"file", "p_fake", "probability", "verdict", "threshold", "threshold_rule",
                         "scores", "probabilities", "verdicts", "thresholds", "disagree", "combine",
                         "source", "in_domain", "domain_reason", "provenance_tag", "error"})
#: How several detectors' verdicts combine (see the module doc); the first is the default.
COMBINE_RULES = ("any", "majority", "mean")
#: The verdict of an image outside a detector's domain (not judged).
OUT_OF_DOMAIN = "out-of-domain"

DEFAULT_DETECTOR = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"


@dataclass
class Entry:
    """One entry of the walk over the inputs: a scored image's record, or why a file was skipped.

    ``index`` is the entry's place in the walk (bad files count), the key every merge
    sorts on. ``resized``: the image was conformed to the first detector's shape, from
    ``size`` (the file's own ``[H, W, C]``). ``file``: a skipped entry's display name.
    ``path`` is known only to the process that read the file (it is never written).
    """

    index: int
    record: dict[str, Any] | None = None
    problem: str | None = None
    resized: bool = False
    path: Path | None = None
    file: str | None = None
    size: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as one JSON object (a line of a shard file)."""
        if self.record is None:
            return {"index": self.index, "problem": self.problem, "file": self.file}
        return {"index": self.index, "record": self.record, "resized": self.resized, "size": self.size}

    def error_record(self) -> dict[str, Any]:
        """A skipped file as a record: every key null but ``file`` and ``error`` (the reason)."""
        return {**dict.fromkeys(sorted(RECORD_KEYS)), "file": self.file or "", "error": self.problem}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Rebuild an entry from :meth:`to_dict`; ValueError when it is not one."""
        index = data.get("index") if isinstance(data, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError("no entry index")
        record, resized, size = data.get("record"), data.get("resized"), data.get("size")
        if isinstance(record, dict) and RECORD_KEYS <= record.keys() and isinstance(resized, bool):
            ok = isinstance(size, list) and all(isinstance(v, int) for v in size)
            return cls(index, record=record, resized=resized, size=size if ok else None)
        if isinstance(data.get("problem"), str):
            file = data.get("file")
            return cls(index, problem=data["problem"], file=file if isinstance(file, str) else None)
        raise ValueError(f"entry {index} holds neither a record nor a problem")


def resolve_threshold(detectors: dict[str, Any], spec: str | None = None
                      ) -> tuple[dict[str, float], str]:
    """Each detector's threshold, in log-odds (what verdicts compare, see
    :meth:`detectors.base.Detector.log_odds`), and the rule they came from, for ``detect --threshold``.

    ``None``: the saved thresholds, rule as recorded (``saved`` for a detector that
    records none; rules of several detectors joined by ``+``); ``"fpr:RATE"``: each
    detector's threshold at that false-positive rate derived from its real validation
    scores; a number: that raw-score threshold for every detector.
    """
    from detectors.training import DEFAULT_CONFIDENCE, fpr_confidence, threshold_at_fpr

    if spec is None:
        rules = dict.fromkeys(d.calibration_.get("threshold_rule", "saved") for d in detectors.values())
        return {name: float(d.threshold_log_odds_) for name, d in detectors.items()}, "+".join(rules)
    spec = spec.strip()
    if spec.lower().startswith("fpr:"):
        try:
            rate = float(spec[4:])
        except ValueError:
            raise ForensicsError(f"--threshold {spec!r}: fpr:RATE needs a number, e.g. fpr:0.005") from None
        each, sure = {}, 1.0
        for name, detector in detectors.items():
            record = detector.calibration_.get("real_val_scores")
            try:
                each[name] = threshold_at_fpr(record, rate)
            except ForensicsError as error:
                raise ForensicsError(f"--threshold {spec}: detector {name}: {error}") from None
            sure = min(sure, fpr_confidence(int(record["n"]), rate))
        # held with 95 % confidence; where a detector's validation images are too few for it
        # (the threshold then lies above all of them), the rule's name says how sure it is
        held = "" if sure >= DEFAULT_CONFIDENCE else f" at {sure:.0%} confidence"
        return each, f"fpr:{rate:g}{held}"
    try:
        value = float(spec)
    except ValueError:
        raise ForensicsError(f"--threshold {spec!r}: give a number in [0, 1] or fpr:RATE") from None
    if not 0.0 <= value <= 1.0:
        raise ForensicsError(f"--threshold {spec}: a score threshold lies in [0, 1]")
    from detectors.base import score_logit

    return dict.fromkeys(detectors, float(score_logit(value))), "value"


def combine(verdicts: dict[str, bool], scores: dict[str, float], thresholds: dict[str, float],
            rule: str) -> bool:
    """The combined verdict (True: fake) of several detectors by ``rule`` (see the module doc);
    ``scores`` and ``thresholds`` in log-odds."""
    if rule not in COMBINE_RULES:
        raise ForensicsError(f"--combine must be one of {', '.join(COMBINE_RULES)}, not {rule!r}")
    votes = list(verdicts.values())
    if len(votes) == 1:
        return votes[0]
    if rule == "any":
        return any(votes)
    if rule == "majority":
        return 2 * sum(votes) > len(votes)
    names = list(verdicts)
    margins = np.array([scores[n] - thresholds[n] for n in names])
    return bool(margins.mean() >= 0.0)


def scan(paths: Iterable[str | Path], detectors: dict[str, Any], *, workers: int = 0,
         shard: Shard = Shard(), batch_size: int = 512, force: bool = False,
         threshold: tuple[dict[str, float], str] | None = None, rule: str = COMBINE_RULES[0]
         ) -> Iterator[list[Entry]]:
    """Score every readable image of ``shard`` under ``paths``; yield each batch's entries by index.

    ``threshold``: ``({name: value}, rule)`` from :func:`resolve_threshold` (default: the
    saved ones); ``rule``: how several detectors combine (:data:`COMBINE_RULES`).
    ``force``: score images outside a detector's domain too.
    """
    from forensics.batches import iter_batches

    if rule not in COMBINE_RULES:
        raise ForensicsError(f"--combine must be one of {', '.join(COMBINE_RULES)}, not {rule!r}")
    # the first detector's shape is the one ``resized`` counts against (and the CLI names)
    shapes = [tuple(d.input_shape_) for d in detectors.values()]
    threshold = threshold or resolve_threshold(detectors)
    for batch in iter_batches(paths, shapes[0], None, batch_size, also=shapes[1:], workers=workers,
                              shard=shard):
        files = batch.problem_files or [None] * len(batch.problems)
        entries = [Entry(index, problem=problem, file=file)
                   for (index, problem), file in zip(batch.problems, files, strict=True)]
        if batch.paths:
            entries += _score(batch, detectors, threshold, force, rule)
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


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _score(batch: Batch, detectors: dict[str, Any], thresholds: tuple[dict[str, float], str],
           force: bool, rule: str) -> list[Entry]:
    from detectors.base import sigmoid

    limits, rule_name = thresholds  # log-odds
    # shown as raw scores: the saved threshold itself where it is the one used
    # (12 significant digits: a --threshold 0.25 given by the user reads 0.25 after its log-odds)
    shown = {name: float(detectors[name].threshold_ if value == detectors[name].threshold_log_odds_
                         else f"{sigmoid(value):.12g}") for name, value in limits.items()}
    reasons = _reasons(batch, detectors)
    log_odds: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    calibrated: dict[str, np.ndarray | None] = {}
    sources: list[str] | None = None
    for name, detector in detectors.items():
        images = batch.at(detector.input_shape_)
        if sources is None:  # the first detector that names sources (attribution, or an
            # ensemble with an attribution member) does, in the pass that scores
            log_odds[name], sources = detector.log_odds_and_sources(images)
        else:
            log_odds[name] = detector.log_odds(images)
        scores[name] = sigmoid(log_odds[name])  # the raw score, shown
        calibrated[name] = detector.probability(scores[name])
    several = len(detectors) > 1
    entries = []
    for i, path in enumerate(batch.paths):
        judged = reasons[i] is None or force
        per = {name: float(s[i]) for name, s in scores.items()}
        odds = {name: float(z[i]) for name, z in log_odds.items()}
        verdicts = {name: odds[name] >= limits[name] for name in odds}
        fake = combine(verdicts, odds, limits, rule)
        chances = {name: None if p is None else float(p[i]) for name, p in calibrated.items()}
        known = [p for p in chances.values() if p is not None]
        probability = float(np.mean(known)) if known and len(known) == len(chances) else None
        record = {
            "file": display_name(path),
            "p_fake": _round(np.mean(list(per.values()))) if judged else None,
            "probability": _round(probability) if judged else None,
            "verdict": ("fake" if fake else "real") if judged else OUT_OF_DOMAIN,
            # thresholds unrounded: one just above 1 (nothing is fake) must not read as 1
            "threshold": None if several else shown[next(iter(shown))],
            "threshold_rule": rule_name,
            "thresholds": dict(shown),
            "scores": {k: _round(v) if judged else None for k, v in per.items()},
            "probabilities": {k: _round(v) if judged else None for k, v in chances.items()},
            "verdicts": {k: ("fake" if v else "real") if judged else None for k, v in verdicts.items()},
            "disagree": len(set(verdicts.values())) > 1 if judged else None,
            "combine": rule,
            # the source is asked only of images judged fake: which generator is likeliest
            "source": (sources[i] if fake else "real") if sources and judged else None,
            "in_domain": reasons[i] is None, "domain_reason": reasons[i],
            "provenance_tag": _parse(batch.tags[i]),
            "error": None,
        }
        # ``resized`` warns that a judged image was conformed; an unjudged one was not used
        size = list(batch.sizes[i]) if batch.sizes else None
        entries.append(Entry(batch.indices[i], record, resized=batch.conformed[i] and judged, path=path,
                             size=size))
    return entries


def _parse(tag: str | None) -> Any:
    """A provenance tag (capped when read) as JSON of bounded depth, else the string itself."""
    return parse_json(capped(tag) if tag is not None else None)
