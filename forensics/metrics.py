"""Metrics for detector benchmarks and synthetic-data audits, one definition each.

Detector metrics take ``labels`` (1 = fake, the positive class; 0 = real) and
``scores`` (higher = more likely fake). A sample is called fake when
``score >= threshold``. Every function is vectorised and returns plain Python
floats so results go straight into JSON.

Distribution metrics take feature matrices ``(N, D)``; memorisation helpers
take image batches of any shape ``(N, ...)`` and compare them as flattened
pixel vectors.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import numpy as np

# ---------------------------------------------------------------------------
# Detector metrics


def _binary(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("labels must contain both real (0) and fake (1) samples")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels, scores


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Full ROC of validated inputs: one point per distinct score, from (0, 0) at +inf.

    The same points as scikit-learn's ``roc_curve(drop_intermediate=False)``,
    computed without its input checks so bootstraps stay fast.
    """
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], labels[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(hits)[ends]
    fps = ends + 1 - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return fpr, tpr, np.r_[np.inf, ranked[ends]]


def _roc(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _curve(*_binary(labels, scores))


def _finite_threshold(threshold: float, scores) -> float:
    """+inf ("call nothing fake") as the smallest float above every score."""
    if np.isfinite(threshold):
        return float(threshold)
    return float(np.nextafter(np.max(scores), np.inf))


def _eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    gap = fpr - (1.0 - tpr)  # never decreases: −1 at the first point (0, 0), +1 at (1, 1)
    i = int(np.searchsorted(gap, 0.0, side="left"))  # first point with gap >= 0
    if gap[i] == 0.0:
        return float(fpr[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    i = int(np.searchsorted(fpr, target, side="right")) - 1  # last point with FPR <= target
    if fpr[i] == target or i == len(fpr) - 1:
        return float(tpr[i])
    t = (target - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + t * (tpr[i + 1] - tpr[i]))


def _best_accuracy(fpr, tpr, thresholds, labels, scores) -> tuple[float, float]:
    positives = labels.sum()
    accuracy = (tpr * positives + (1.0 - fpr) * (len(labels) - positives)) / len(labels)
    best = int(np.argmax(accuracy))
    return float(accuracy[best]), _finite_threshold(thresholds[best], scores)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(*_binary(labels, scores)))


def average_precision(labels, scores) -> float:
    """Average precision, fake as positive (scikit-learn's ``average_precision_score``)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(*_binary(labels, scores)))


def equal_error_rate(labels, scores) -> float:
    """Equal error rate: the point of the ROC where FPR = FNR (= 1 − TPR).

    Along the ROC, FPR − FNR never decreases; the EER is where it crosses
    zero, linearly interpolated between the two ROC points around the crossing.
    """
    return _eer(*_roc(labels, scores)[:2])


def accuracy_at(labels, scores, threshold: float) -> float:
    """Share of samples classified correctly when ``score >= threshold`` means fake."""
    labels, scores = _binary(labels, scores)
    return float(np.mean((scores >= threshold) == (labels == 1)))


def best_threshold_accuracy(labels, scores) -> tuple[float, float]:
    """The highest accuracy over all thresholds, and the threshold reaching it."""
    labels, scores = _binary(labels, scores)
    return _best_accuracy(*_curve(labels, scores), labels, scores)


def tpr_at_fpr(labels, scores, fpr: float = 0.01) -> float:
    """True-positive rate at a false-positive rate of ``fpr``, interpolated on the ROC.

    Where the ROC has a vertical step exactly at ``fpr``, the highest TPR of
    the step is taken (the best operating point with FPR <= ``fpr``).
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1], not {fpr}")
    return _tpr_at(*_roc(labels, scores)[:2], fpr)


def youden_threshold(labels, scores) -> float:
    """The threshold maximising Youden's J = TPR − FPR."""
    fpr, tpr, thresholds = _roc(labels, scores)
    return _finite_threshold(thresholds[int(np.argmax(tpr - fpr))], scores)


def _resamples(labels: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, N)`` stratified bootstrap indices: each class resampled to its own count."""
    if n_boot < 1:
        raise ValueError("n_boot must be positive")
    rng = np.random.default_rng(seed)
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    return np.concatenate([rng.choice(real, (n_boot, len(real))),
                           rng.choice(fake, (n_boot, len(fake)))], axis=1)


def _interval(values, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(metric_fn: Callable[[np.ndarray, np.ndarray], float], labels, scores, *,
                 n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap ``(1 − alpha)`` interval of ``metric_fn(labels, scores)``.

    Stratified: real and fake samples are resampled separately, each to its
    own count, so every resample keeps both classes and the class balance.
    """
    labels, scores = _binary(labels, scores)
    index = _resamples(labels, n_boot, seed)
    return _interval([metric_fn(labels[row], scores[row]) for row in index], alpha)


def _all_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric of :func:`binary_report` from one ROC (validated inputs)."""
    fpr, tpr, thresholds = _curve(labels, scores)
    positives = labels.sum()
    tp, fp = tpr[1:] * positives, fpr[1:] * (len(labels) - positives)
    accuracy, best = _best_accuracy(fpr, tpr, thresholds, labels, scores)
    return {
        "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2),  # trapezoids
        "average_precision": float(np.sum(np.diff(tpr) * tp / (tp + fp))),
        "eer": _eer(fpr, tpr),
        "accuracy_calibrated": float(np.mean((scores >= threshold) == (labels == 1))),
        "accuracy_best": accuracy,
        "best_threshold": best,
        "tpr_at_1pct_fpr": _tpr_at(fpr, tpr, 0.01),
        "youden_threshold": _finite_threshold(thresholds[int(np.argmax(tpr - fpr))], scores),
    }


def binary_report(labels, scores, threshold: float = 0.5, n_boot: int = 200,
                  seed: int = 0, alpha: float = 0.05) -> dict:
    """Every detector metric of this module with its stratified bootstrap CI (JSON-able).

    A flat dict: for each name ``auc``, ``average_precision``, ``eer``,
    ``accuracy_calibrated`` (at ``threshold``), ``accuracy_best``,
    ``best_threshold``, ``tpr_at_1pct_fpr`` and ``youden_threshold``, the value
    under ``name`` and its interval as ``[low, high]`` under ``name + "_ci"``
    (the same resamples as :func:`bootstrap_ci` with this seed); plus
    ``threshold``, ``n_real``, ``n_fake``, ``n_boot``, ``seed`` and ``alpha``.
    """
    labels, scores = _binary(labels, scores)
    point = _all_metrics(labels, scores, threshold)
    boots = [_all_metrics(labels[row], scores[row], threshold)
             for row in _resamples(labels, n_boot, seed)]
    report: dict[str, float | int | list[float]] = {
        "threshold": float(threshold), "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()), "n_boot": int(n_boot), "seed": int(seed),
        "alpha": float(alpha),
    }
    for name, value in point.items():
        report[name] = value
        report[f"{name}_ci"] = list(_interval([boot[name] for boot in boots], alpha))
    return report


# ---------------------------------------------------------------------------
# Distribution metrics on features


def _features(feat, name: str) -> np.ndarray:
    feat = np.asarray(feat, dtype=np.float64)
    if feat.ndim != 2 or len(feat) < 2:
        raise ValueError(f"{name} must be a (N >= 2, D) feature matrix, not {feat.shape}")
    return feat


def frechet_distance(feat_a, feat_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)``. When the matrix square root is
    not finite (singular covariances), ``eps`` is added to both diagonals; a
    tiny imaginary part from round-off is dropped, and the result is clipped at 0.
    """
    from scipy import linalg

    a, b = _features(feat_a, "feat_a"), _features(feat_b, "feat_b")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def kernel_inception_distance(feat_a, feat_b, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID): unbiased MMD² with ``k(x, y) = (x·y / d + 1)³``.

    Averaged over ``subsets`` random subsets of ``min(subset_size, Na, Nb)``
    rows of each set (drawn without replacement); returns ``(mean, std)``.
    """
    a, b = _features(feat_a, "feat_a"), _features(feat_b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs subsets of at least 2 rows")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[s] = off_diagonal - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


def precision_recall_density_coverage(real_feat, fake_feat, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) via ``prdc``.

    Manifolds are k-nearest-neighbour balls (``k``) in feature space; needs
    more than ``k`` rows in each set.
    """
    from prdc import compute_prdc

    real = _features(real_feat, "real_feat").astype(np.float32)
    fake = _features(fake_feat, "fake_feat").astype(np.float32)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} rows in each set")
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        found = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {key: float(value) for key, value in found.items()}


# ---------------------------------------------------------------------------
# Memorisation


def nearest_neighbour_distances(query, reference) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and its index.

    Images of any shape ``(N, ...)`` are compared as flattened pixel vectors.
    """
    from sklearn.neighbors import NearestNeighbors

    query = np.asarray(query, dtype=np.float64).reshape(len(query), -1)
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if query.shape[1] != reference.shape[1]:
        raise ValueError(f"sizes differ: {query.shape[1]} and {reference.shape[1]} values")
    search = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(reference)
    distances, index = search.kneighbors(query)
    return distances[:, 0], index[:, 0]


def memorisation_zu(generated_to_train, test_to_train) -> float:
    """Meehan et al. (2020) Z_U: are generated samples closer to train than held-out data?

    ``U`` is the Mann-Whitney statistic of the generated→train nearest-neighbour
    distances against the held-out test→train ones (the count of pairs where the
    generated distance is larger, ties counting ½), standardised with its null
    mean ``mn/2`` and std ``√(mn(m+n+1)/12)``. Negative: generated samples sit
    closer to the training data than fresh real data does (memorisation);
    about 0: no difference; positive: farther (under-fitting). This is the
    simple variant over the whole set, not the paper's per-cell partitioned test.
    """
    from scipy.stats import mannwhitneyu

    gen = np.asarray(generated_to_train, dtype=np.float64).ravel()
    test = np.asarray(test_to_train, dtype=np.float64).ravel()
    if len(gen) == 0 or len(test) == 0:
        raise ValueError("Z_U needs at least one distance in each set")
    m, n = len(gen), len(test)
    u = mannwhitneyu(gen, test, alternative="two-sided").statistic  # U of the first sample
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))
