"""Train a detector without leakage, calibrate its threshold, and report on held-out images.

Real images arrive already split (the toolkit's one seeded split of the data
set); each fake set is shuffled and split 80/10/10 here with a seed. The
detector is fitted on train, its threshold set on validation, and it is scored on test.

Two thresholds are computed on validation (:func:`calibrate`): Youden's J (the one
that maximises balanced accuracy; needs fakes) and the false-positive-rate rule, the
lowest threshold that keeps the rate of real images called fake at most ``target_fpr``
(default 1 %) with probability ``confidence`` (default 95 %: :func:`allowed_above`; on 500
real validation images, at most one of them above it), plain *and under each ordinary processing* alone
(:data:`forensics.domain.PROCESSINGS`: JPEG, WebP, blur, resize and back, noise, PNG re-save,
sharpening, a tone change, fewer gray levels, two of them in a row, each at random strengths;
and JPEG, blur, motion blur, resize, noise, tone and gray levels at each strength of :data:`STRENGTH_GRID`
alone), as a false accusation costs more than a miss:
pooling the processed
copies would let one processing (say JPEG) reach several times the target while the pool
keeps it. The FPR rule is the default and the only one for real-only detectors
(``needs_fakes = False``). The real validation scores' quantiles are kept (at each level
the highest over plain and the processings) so another rate can be derived later
(:func:`threshold_at_fpr`, ``detect --threshold fpr:RATE``). A
:class:`forensics.domain.Domain` is fitted on the real train/val images too.

The raw score is not a probability. With fakes, Platt's rule is fitted on the validation
images plain and under each ordinary processing, reals and fakes alike (:func:`fit_platt`:
P(fake) = sigmoid(a · logit(score) + b), real and fake weighted equally, so it is the
probability under equal priors, for an image that may have been compressed, resized, blurred
or re-saved, as the threshold assumes; fitted on plain images alone it gave a real digit
saved as JPEG 60 a P(fake) of 0.99 below the threshold) and stored as
``probability`` beside the threshold; verdicts still compare the raw score with the
threshold. The report gives, on test, the balanced accuracy, TPR and FPR at the saved
threshold, the TPR of each fake source and, for attribution, each class's recall, and
``class_balance``: the training counts per class and whether the loss was balanced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Detector, as_batch, score_logit, sigmoid
from detectors.registry import create
from forensics.data import split_parts, stable_seed
from forensics.domain import PROCESSINGS, Domain, process
from forensics.errors import ForensicsError
from forensics.metrics import best_threshold_accuracy, youden_threshold

PARTS = ("train", "val", "test")
RULES = ("fpr", "youden")
DEFAULT_TARGET_FPR = 0.01
#: how sure the FPR rule is that its rate holds on new real images (:func:`allowed_above`)
DEFAULT_CONFIDENCE = 0.95
#: The levels at which the real validation scores' quantiles are recorded: dense in the upper tail.
QUANTILE_LEVELS = np.unique(np.r_[np.linspace(0, 0.9, 19), np.linspace(0.9, 0.99, 19),
                                  np.linspace(0.99, 1.0, 41)].round(6))


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


def allowed_above(n: int, target: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """How many of ``n`` real validation images may score at or above the FPR rule's threshold
    so that the rate on new real images stays at most ``target`` with probability ``confidence``.

    A threshold just above the (a+1)-th highest of ``n`` scores leaves a population rate
    above ``target`` with probability P(Binomial(n, target) ≤ a) (the order statistic's
    distribution; the Neyman–Pearson umbrella algorithm, Tong, Feng & Li 2018): the largest
    ``a`` with that at most 1 − ``confidence``, or 0 when even ``a = 0`` misses it (too few
    images: :func:`rule_confidence` says how sure the rule then is). Reading the quantile
    itself (``a = ⌊target · n⌋``) holds its rate only about half the time: on 500 real
    validation digits at 1 %, 38 % of the time; the quick suite's ensemble so set (2026-12-04)
    called 2.4 % of real test digits blurred at σ 0.5 fake, 5 of 500 validation ones.
    """
    from scipy.stats import binom

    if not 0.0 < target < 1.0:
        raise ForensicsError(f"the target false-positive rate must lie in (0, 1), not {target}")
    if not 0.0 < confidence < 1.0:
        raise ForensicsError(f"the confidence of the fpr rule must lie in (0, 1), not {confidence}")
    cdf = binom.cdf(np.arange(n + 1), n, target)
    return max(0, int(np.searchsorted(cdf, 1.0 - confidence + 1e-12, side="right")) - 1)


def rule_confidence(n: int, target: float, allowed: int) -> float:
    """The probability that a threshold leaving ``allowed`` of ``n`` real validation images
    at or above it keeps the rate on new real images at most ``target``."""
    from scipy.stats import binom

    return float(1.0 - binom.cdf(allowed, n, target))


def images_needed(target: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The fewest real validation images with which the FPR rule can hold ``target`` at
    ``confidence`` (a threshold above all of them: (1 − target)^n ≤ 1 − confidence)."""
    return int(np.ceil(np.log(1.0 - confidence) / np.log1p(-target)))


def fpr_threshold(real_scores: np.ndarray, target: float,
                  confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The lowest threshold (score >= threshold is fake) that keeps the rate on new real images
    at most ``target`` with probability ``confidence`` (:func:`allowed_above` of the scores may
    lie at or above it)."""
    ordered = np.sort(np.asarray(real_scores, dtype=np.float64))[::-1]
    allowed = allowed_above(len(ordered), target, confidence)
    if allowed >= len(ordered):
        return float(ordered[-1])
    # just above the (allowed+1)-th highest score; ties above it stay below the threshold too
    return float(np.nextafter(ordered[allowed], np.inf))


#: how many of the highest real validation scores the record keeps exactly (:func:`score_quantiles`)
TOP_KEPT = 200


def score_quantiles(real_scores: np.ndarray | dict[str, np.ndarray]) -> dict[str, Any]:
    """The record of the real validation scores (their log-odds, :meth:`Detector.log_odds`)
    that :func:`threshold_at_fpr` reads. Several sets of scores (``{name: scores}``, e.g.
    plain and each processing): each level's highest quantile over the sets, so a threshold
    read from the record keeps its rate on every set; and ``top``, the highest :data:`TOP_KEPT`
    order statistics exactly (``top[j]``: the highest over the sets of each one's (j+1)-th
    highest score), where the rule reads at low rates and the levels' interpolation is coarse."""
    sets = real_scores if isinstance(real_scores, dict) else {"real": real_scores}
    values = np.max([np.quantile(np.asarray(scores, dtype=np.float64), QUANTILE_LEVELS, method="higher")
                     for scores in sets.values()], axis=0)
    n = min(len(scores) for scores in sets.values())
    top = np.max([np.sort(np.asarray(scores, dtype=np.float64))[::-1][: min(n, TOP_KEPT)]
                  for scores in sets.values()], axis=0)
    return {"n": n,
            "levels": [float(v) for v in QUANTILE_LEVELS],
            "quantiles": [float(v) for v in np.maximum.accumulate(values)],
            "top": [float(v) for v in top],
            "what": "real validation images (" + ", ".join(sets) + "): the highest quantile "
                    "at each level, and the highest order statistics", "space": "log-odds"}


def threshold_at_fpr(record: dict[str, Any] | None, rate: float,
                     confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The log-odds threshold that keeps the false-positive rate at most ``rate`` with
    probability ``confidence`` (:func:`allowed_above`; with too few recorded images, above all
    of them: :func:`fpr_confidence` says how sure it then is), from recorded quantiles
    (:func:`score_quantiles`; a record of raw scores, from a detector calibrated before
    log-odds, gives the logit of its raw-score threshold)."""
    if not record:
        raise ForensicsError("the detector records no real validation scores; retrain it "
                             "(train-detector) to use --threshold fpr:RATE")
    if not 0.0 < rate < 1.0:
        raise ForensicsError(f"fpr:RATE needs 0 < RATE < 1, not {rate}")
    n = int(record["n"])
    # too few images for the confidence: above all of them (fpr_confidence says how sure)
    allowed = allowed_above(n, rate, confidence)
    top = record.get("top") or []
    if allowed < len(top):  # the (allowed+1)-th highest score, exactly as fpr_threshold reads it
        value = float(top[allowed])
    else:  # the quantile "higher" method's level of the (allowed+1)-th highest of n scores
        value = float(np.interp((n - 1 - allowed) / max(n - 1, 1), record["levels"], record["quantiles"]))
    value = float(np.nextafter(value, np.inf))
    return value if record.get("space") == "log-odds" else float(score_logit(value))


def fpr_confidence(n: int, rate: float, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """How sure the FPR rule's threshold set on ``n`` real validation images (:func:`fpr_threshold`,
    or :func:`threshold_at_fpr` from a record of them) is to hold ``rate``: ``confidence``, or
    less where ``n`` is too few."""
    return rule_confidence(n, rate, allowed_above(n, rate, confidence))


def calibration_reals(real: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"plain": real, kind: real under that processing, …}`` for every ordinary processing
    of :data:`forensics.domain.PROCESSINGS` (random strengths, seeded); the Platt rule takes
    the validation fakes through it too."""
    return {"plain": real, **{kind: process(real, np.random.default_rng([seed, 15485863, i]), kind)
                              for i, kind in enumerate(PROCESSINGS)}}


#: strengths the FPR rule also holds at one by one (``process``'s ``strength``: JPEG quality,
#: blur σ in pixels at 28 px, resize scale, noise σ in 1/255, tone's lift of black in 1/255,
#: quantize's gray levels), beside each processing at random
#: strengths: a detector's response need not be monotonic in the strength, and a cap held on the
#: random mix lets the strengths it rarely draws exceed it. The default ensemble with its
#: threshold set on random JPEG qualities alone (2026-12-03): 4.2 % of real test digits called
#: fake at quality 40, 3.8 % at 70, 0.0 % at 50; the quick suite's ensemble with blur and resize at
#: random strengths alone (2026-12-04): 2.6 % of real digits blurred at σ 0.5, 1.4 % resized to
#: 0.75×. Each strength lies within the random draw's range (:func:`forensics.domain.process`)
STRENGTH_GRID: dict[str, tuple[float, ...]] = {
    "jpeg": (30, 40, 50, 60, 70, 80, 90),
    "blur": (0.3, 0.5, 0.75, 1.0, 1.5, 2.0),
    "motion": (3, 5),  # a straight motion blur of 3 and 5 px (a third of the random blurs)
    "resize": (0.5, 0.6, 0.75, 0.9),
    "noise": (2, 4, 8, 16),
    "tone": (4, 8, 16, 24),  # black lifted by 4…24/255
    "quantize": (2, 4, 16),  # gray levels (2: thresholded at 128)
}


def threshold_reals(real: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`calibration_reals` and real images at each strength of :data:`STRENGTH_GRID`
    (``"jpeg@40"``, ``"blur@0.5"``, …): the sets the FPR rule holds on, each alone."""
    grid = {f"{kind}@{strength}": process(real, np.random.default_rng(seed), kind, strength)
            for kind, strengths in STRENGTH_GRID.items() for strength in strengths}
    return {**calibration_reals(real, seed), **grid}


def threshold_sets(per_set: dict[str, float]) -> dict[str, Any]:
    """The report of each real validation set's own FPR-rule threshold (:func:`calibrate`):
    ``set_by`` names the set whose cut is the rule's (the highest), ``plain`` the plain images'
    alone, ``by_set`` every set's (scores, as ``thresholds`` shows them)."""
    by_set = {kind: float(sigmoid(value)) for kind, value in per_set.items()}
    return {"set_by": max(per_set, key=per_set.get), "plain": by_set["plain"], "by_set": by_set}


def calibrate(detector: Detector, real_val: np.ndarray, fakes_val: list[np.ndarray],
              rule: str = "fpr", target_fpr: float = DEFAULT_TARGET_FPR, seed: int = 0,
              confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Set both thresholds on validation, keep ``rule``'s as ``threshold_``; return it.

    Youden's J on plain real vs fake validation images (only with fakes); the FPR rule on
    the real validation images plain and under each ordinary processing: the highest of
    their :func:`fpr_threshold` at ``target_fpr`` and ``confidence`` (:func:`threshold_reals`:
    each ordinary processing at random strengths, and JPEG, blur, resize and noise at each
    strength of :data:`STRENGTH_GRID`).
    Both are found
    on the scores' log-odds (:meth:`Detector.log_odds`: a score that saturates to 1.0 in
    float still ranks), kept as ``threshold_log_odds_``; ``threshold_`` and the recorded
    ``thresholds`` are their sigmoids, for display. Recorded in ``detector.calibration_``
    with the real validation scores' quantiles (log-odds).
    """
    if rule not in RULES:
        raise ForensicsError(f"unknown threshold rule {rule!r}; choose {' or '.join(RULES)}")
    if rule == "youden" and not fakes_val:
        raise ForensicsError("the youden rule needs fake images; a real-only detector uses fpr")
    real_scores = {kind: detector.log_odds(images)
                   for kind, images in threshold_reals(real_val, seed).items()}
    # each set's own cut: the highest is the rule's; which set it is tells what the threshold
    # guards against (recorded for the report, ``threshold_sets``)
    per_set = {kind: fpr_threshold(scores, target_fpr, confidence) for kind, scores in real_scores.items()}
    cuts: dict[str, float | None] = {"fpr": max(per_set.values()), "youden": None}
    probability = None
    if fakes_val:
        # the fakes plain and under the same processings (other random strengths); the reals'
        # are scored above
        fake_scores = {kind: detector.log_odds(images) for kind, images
                       in calibration_reals(np.concatenate(fakes_val), seed + 1).items()}
        labels = np.r_[np.zeros(len(real_val)), np.ones(len(fake_scores["plain"]))]
        cuts["youden"] = youden_threshold(labels, np.r_[real_scores["plain"], fake_scores["plain"]])
        every_real, every_fake = (np.concatenate([side[kind] for kind in fake_scores])
                                  for side in (real_scores, fake_scores))
        probability = fit_platt(sigmoid(np.r_[every_real, every_fake]),
                                np.r_[np.zeros(len(every_real)), np.ones(len(every_fake))],
                                what="validation images, plain and under each ordinary processing")
    thresholds: dict[str, float | None] = {
        key: None if value is None else float(sigmoid(value)) for key, value in cuts.items()}
    thresholds["target_fpr"] = float(target_fpr)
    # every set holds the validation reals once, so one count of them may lie above each set's cut
    thresholds["confidence"] = float(confidence)
    thresholds["achieved_confidence"] = fpr_confidence(len(real_val), target_fpr, confidence)
    detector.threshold_log_odds_ = float(cuts[rule])
    detector.threshold_ = float(thresholds[rule])
    detector.calibration_ = {"thresholds": thresholds, "threshold_rule": rule,
                             "real_val_scores": score_quantiles(real_scores),
                             "fpr_by_set": per_set}
    if probability is not None and probability["a"] > 0:  # a score that falls with fakeness is no rule
        detector.calibration_["probability"] = probability
    return detector.threshold_


def fit_platt(scores: np.ndarray, labels: np.ndarray, what: str = "plain validation images"
              ) -> dict[str, Any]:
    """Platt's rule on validation scores: ``a``, ``b`` of sigmoid(a · logit(score) + b).

    Fitted by weighted log-loss with Platt's smoothed targets ((N₊ + 1)/(N₊ + 2) and
    1/(N₋ + 2), which keep a and b finite on separable scores), each class weighing the
    same in total: the result is P(fake) when real and fake are equally likely a priori.
    (:func:`calibrate` passes each validation image plain and processed, so N counts copies:
    the smoothing is that much weaker, which at hundreds of images changes a and b little.)
    """
    from scipy.optimize import minimize

    x, y = score_logit(scores), np.asarray(labels, dtype=np.float64)
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        raise ForensicsError("Platt calibration needs real and fake validation images")
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    weight = np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * negatives))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * x + params[1]
        # log(1 + e^z) − t z, stable for large |z|
        value = weight * (np.logaddexp(0.0, z) - target * z)
        gradient = weight * (1.0 / (1.0 + np.exp(-z)) - target)
        return float(value.sum()), np.array([(gradient * x).sum(), gradient.sum()])

    found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in found.x)
    return {"method": "platt", "a": a, "b": b, "prior": "equal (real and fake weighted equally)",
            "fitted_on": {"real": int(negatives), "fake": int(positives),
                          "what": what}}


def real_fpr(detector: Detector, real: np.ndarray, threshold: float, seed: int = 1) -> dict[str, Any]:
    """Share of real images called fake (log-odds at or above ``threshold``): plain, after a
    random ordinary processing each (``processed``), under each processing alone
    (``by_processing``) and the highest of those (``processed_worst``, ``worst_processing``)."""
    def called(images: np.ndarray) -> float:
        return float(np.mean(detector.log_odds(images) >= threshold))

    processed = process(real, np.random.default_rng([seed, 104723]))
    each = {kind: called(images) for kind, images in calibration_reals(real, seed + 1).items()
            if kind != "plain"}
    worst = max(each, key=each.get)
    return {"plain": called(real), "processed": called(processed), "by_processing": each,
            "processed_worst": each[worst], "worst_processing": worst}


def train_detector(kind: str, real_train: np.ndarray, real_val: np.ndarray,
                   real_test: np.ndarray, fakes: dict[str, np.ndarray],
                   options: dict[str, Any] | None = None, seed: int = 0, *,
                   rule: str = "fpr", target_fpr: float = DEFAULT_TARGET_FPR,
                   confidence: float = DEFAULT_CONFIDENCE) -> tuple[Detector, dict[str, Any]]:
    """Fit ``kind`` on train, set ``threshold_`` on val by ``rule``, and report test metrics.

    Report keys: ``auc``, ``accuracy`` (at the calibrated threshold),
    ``balanced_accuracy``, ``tpr`` and ``fpr`` (at the threshold), ``best_accuracy``,
    ``threshold``, ``threshold_rule``, ``thresholds``, ``real_fpr`` (test reals called
    fake, plain and processed), ``per_source_auc``, ``per_source_tpr``, ``class_balance``
    and the image counts ``n``; a real-only detector trained without fakes reports only
    what needs no fakes. The detector's ``metrics_`` is set to it and
    its ``domain_`` fitted on the real train/val images.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from detectors.registry import get

    needs_fakes = get(kind).needs_fakes
    if not fakes and needs_fakes:
        raise ForensicsError(f"no fake images to train on: {kind} needs --fake")
    if "real" in fakes:
        raise ForensicsError('"real" cannot name a fake source')
    if rule not in RULES:
        raise ForensicsError(f"unknown threshold rule {rule!r}; choose {' or '.join(RULES)}")
    if not fakes and rule != "fpr":
        raise ForensicsError("without fakes the only threshold rule is fpr")
    if not 0.0 < target_fpr < 1.0:
        raise ForensicsError(f"--target-fpr must lie in (0, 1), not {target_fpr}")
    real = {"train": as_batch(real_train, "real train images"),
            "val": as_batch(real_val, "real validation images"),
            "test": as_batch(real_test, "real test images")}
    split = split_fakes(fakes, seed) if fakes else {}
    detector = create(kind, **(options or {}))
    train_fakes = {source: parts["train"] for source, parts in split.items()}
    if detector.fits_sources:
        detector.fit_sources({"real": real["train"], **train_fakes})
    elif not train_fakes:
        detector.fit(real["train"], None)
    else:
        detector.fit(real["train"], np.concatenate(list(train_fakes.values())))
    detector.domain_ = Domain.fit(real["train"], real["val"], seed=seed)

    threshold = calibrate(detector, real["val"], [parts["val"] for parts in split.values()],
                          rule=rule, target_fpr=target_fpr, seed=seed, confidence=confidence)
    calibration = detector.calibration_
    cut = detector.threshold_log_odds_  # what verdicts compare (threshold is its sigmoid)
    common = {"threshold": threshold, "threshold_rule": rule, "thresholds": calibration["thresholds"],
              "threshold_sets": threshold_sets(calibration["fpr_by_set"]),
              "real_fpr": real_fpr(detector, real["test"], cut, seed), "seed": seed,
              "class_balance": class_balance(detector, real["train"], train_fakes)}
    if not split:
        report = {**common, "n": {part: {"real": len(real[part])} for part in PARTS}}
        detector.threshold_ = threshold
        detector.metrics_ = report
        return detector, report
    images, labels = _labelled(real["test"], [parts["test"] for parts in split.values()])
    scores = detector.log_odds(images)  # ranks where the raw score saturates
    real_scores, fake_scores = scores[: len(real["test"])], scores[len(real["test"]):]
    per_source, per_source_tpr, start = {}, {}, 0
    for source, parts in split.items():
        own = fake_scores[start : start + len(parts["test"])]
        start += len(own)
        per_source[source] = float(roc_auc_score(
            np.r_[np.zeros(len(real_scores)), np.ones(len(own))], np.r_[real_scores, own]))
        per_source_tpr[source] = float(np.mean(own >= cut))
    # what the processings cost: the fakes caught at the cut plain real images alone would allow
    common["threshold_sets"]["tpr_at_plain"] = float(np.mean(
        fake_scores >= calibration["fpr_by_set"]["plain"]))
    predicted = scores >= cut
    report = {
        "auc": float(roc_auc_score(labels, scores)),
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "tpr": float(np.mean(fake_scores >= cut)),
        "fpr": float(np.mean(real_scores >= cut)),
        "best_accuracy": best_threshold_accuracy(labels, scores)[0],
        **common,
        "per_source_auc": per_source,
        "per_source_tpr": per_source_tpr,
        "n": {part: {"real": len(real[part]),
                     **{source: len(parts[part]) for source, parts in split.items()}}
              for part in PARTS},
    }
    if detector.multiclass:  # attribution: which source made each test image
        matrix, names = detector.confusion_matrix(
            {"real": real["test"], **{source: parts["test"] for source, parts in split.items()}})
        recall = np.diag(matrix) / np.maximum(matrix.sum(1), 1)
        report["confusion_matrix"] = {"labels": names, "rows_true_columns_predicted": matrix.tolist(),
                                      "accuracy": float(np.trace(matrix) / matrix.sum()),
                                      "recall": dict(zip(names, map(float, recall), strict=True)),
                                      "balanced_accuracy": float(recall.mean())}
    detector.threshold_ = threshold
    detector.metrics_ = report
    return detector, report


#: A training set whose largest class outnumbers its smallest by more than this is reported.
IMBALANCE = 3.0


def class_balance(detector: Detector, real: np.ndarray, fakes: dict[str, np.ndarray]
                  ) -> dict[str, Any]:
    """The training counts per class (per source for a multi-class detector, else real vs
    fake), their largest-to-smallest ratio, and whether training balanced them."""
    if detector.multiclass:
        counts = {"real": len(real), **{source: len(images) for source, images in fakes.items()}}
    else:
        counts = {"real": len(real), **({"fake": sum(map(len, fakes.values()))} if fakes else {})}
    sizes = [n for n in counts.values() if n > 0]
    balanced = bool(detector.get_params().get("balance")) if detector.balances else None
    return {"counts": counts, "ratio": float(max(sizes) / min(sizes)) if sizes else 1.0,
            "balanced": balanced,
            "method": "class-weighted loss (N / (K n_k) per class)" if balanced else None}


def save_detector(detector: Detector, folder: str | Path, extra: dict[str, Any] | None = None,
                  *, force: bool = False) -> Path:
    """Write a detector folder atomically (all files or none); ``extra`` joins detector.json."""
    from forensics import digest
    from forensics.atomic import staging_dir

    with staging_dir(folder, force=force) as tmp:
        detector.save(tmp, extra=extra)
        digest.record(tmp)  # every file's sha256 (detector.json's too), for `forensics verify`
    return Path(folder)


def attach_domain(folder: str | Path, *, data_root: str | None = None) -> Domain:
    """Fit and write the domain record of an existing detector folder (``detector.json`` only).

    Computed exactly as :func:`train_detector` does: on the train/val images of the real
    data set the folder records (its seeded split), with the recorded seed. The model
    files and their hashes are untouched.
    """
    from detectors.storage import HEADER, read_header
    from forensics import atomic, digest
    from forensics.checkpoint import read_json
    from forensics.data import load, split_indices

    header = read_header(folder)
    recorded = header.get("data", {}).get("real", {}) if isinstance(header.get("data"), dict) else {}
    name = recorded.get("name") if isinstance(recorded, dict) else None
    if not isinstance(name, str):
        raise ForensicsError(f"{folder}: detector.json records no real data set")
    dataset = load(name, root=data_root)
    if recorded.get("sha256") and dataset.fingerprint() != recorded["sha256"]:
        raise ForensicsError(f"{folder}: the real data set {name!r} is not the one it was trained on")
    parts = split_indices(dataset.labels)
    seed = header.get("seed", 0)
    domain = Domain.fit(dataset.images[parts["train"]], dataset.images[parts["val"]],
                        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)
    if list(domain.shape) != header["input_shape"]:
        raise ForensicsError(f"{folder}: {name} is {list(domain.shape)}, the detector "
                             f"{header['input_shape']}")
    path = Path(folder) / HEADER
    atomic.write_json(path, {**read_json(path), "domain": domain.to_dict()})
    if (Path(folder) / digest.RECORD).is_file():
        digest.record(folder)  # the header changed; a folder without a record gets none here
    return domain
