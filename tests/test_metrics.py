"""Metric functions against known values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from forensics import metrics


def gaussian_scores(d: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real ~ N(−d/2, 1), fake ~ N(+d/2, 1)."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(-d / 2, 1, n), rng.normal(d / 2, 1, n)])
    return np.repeat([0, 1], n), scores


def test_disjoint_scores_are_perfect() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert metrics.roc_auc(labels, scores) == 1.0
    assert metrics.equal_error_rate(labels, scores) == 0.0
    assert metrics.tpr_at_fpr(labels, scores, 0.01) == 1.0
    accuracy, threshold = metrics.best_threshold_accuracy(labels, scores)
    assert accuracy == 1.0 and 0.3 < threshold <= 0.7
    assert metrics.accuracy_at(labels, scores, threshold) == 1.0
    assert 0.3 < metrics.youden_threshold(labels, scores) <= 0.7


def test_equal_error_rate_of_two_gaussians() -> None:
    d = 2.0
    labels, scores = gaussian_scores(d, 20_000)
    assert metrics.equal_error_rate(labels, scores) == pytest.approx(norm.cdf(-d / 2), abs=0.01)
    # the two halves of the same distribution: chance
    assert metrics.equal_error_rate(*gaussian_scores(0.0, 20_000)) == pytest.approx(0.5, abs=0.01)


def test_tpr_at_fpr_exact_case() -> None:
    real = np.arange(100.0)  # one real score above 98.9: FPR steps of 0.01
    fake = np.concatenate([np.full(30, 100.5), np.full(20, 98.5), np.full(50, -5.0)])
    labels, scores = np.repeat([0, 1], 100), np.concatenate([real, fake])
    assert metrics.tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.3)
    assert metrics.tpr_at_fpr(labels, scores, 0.005) == pytest.approx(0.3)
    assert metrics.tpr_at_fpr(labels, scores, 0.01) == pytest.approx(0.5)  # top of the step
    assert metrics.tpr_at_fpr(labels, scores, 1.0) == 1.0


def test_tpr_at_fpr_of_two_gaussians() -> None:
    d = 2.0
    labels, scores = gaussian_scores(d, 50_000, seed=1)
    expected = 1 - norm.cdf(norm.ppf(0.99) - d)
    assert metrics.tpr_at_fpr(labels, scores, 0.01) == pytest.approx(expected, abs=0.02)


def test_sklearn_metrics_and_ties() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.3 * labels, 1)  # many ties
    for ours, theirs in zip(metrics._roc(labels, scores),
                            roc_curve(labels, scores, drop_intermediate=False), strict=True):
        np.testing.assert_allclose(ours, theirs)
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores))
    accuracy, threshold = metrics.best_threshold_accuracy(labels, scores)
    brute = max(np.mean((scores >= t) == labels) for t in np.unique(scores))
    assert accuracy == pytest.approx(brute)
    assert metrics.accuracy_at(labels, scores, threshold) == pytest.approx(accuracy)


def test_single_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        metrics.roc_auc([1, 1, 1], [0.1, 0.5, 0.9])


def test_bootstrap_ci_contains_estimate_and_narrows() -> None:
    small = gaussian_scores(1.0, 50, seed=4)
    large = gaussian_scores(1.0, 2000, seed=4)
    low_s, high_s = metrics.bootstrap_ci(metrics.roc_auc, *small, n_boot=200, seed=0)
    low_l, high_l = metrics.bootstrap_ci(metrics.roc_auc, *large, n_boot=200, seed=0)
    assert low_s <= metrics.roc_auc(*small) <= high_s
    assert low_l <= metrics.roc_auc(*large) <= high_l
    assert high_l - low_l < (high_s - low_s) / 3
    assert metrics.bootstrap_ci(metrics.roc_auc, *small, seed=7) == metrics.bootstrap_ci(
        metrics.roc_auc, *small, seed=7)


def test_binary_report_is_plain_json() -> None:
    import json

    labels, scores = gaussian_scores(1.0, 100)
    report = metrics.binary_report(labels, scores, threshold=0.0, n_boot=20)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    names = ("auc", "average_precision", "eer", "accuracy_calibrated", "accuracy_best",
             "best_threshold", "tpr_at_1pct_fpr", "youden_threshold")
    for name in names:
        low, high = report[f"{name}_ci"]
        assert type(report[name]) is float and type(low) is float and low <= high
    # one shared ROC gives the same numbers as the single-metric functions
    assert report["auc"] == pytest.approx(metrics.roc_auc(labels, scores))
    assert report["average_precision"] == pytest.approx(metrics.average_precision(labels, scores))
    assert report["eer"] == metrics.equal_error_rate(labels, scores)
    assert report["accuracy_calibrated"] == metrics.accuracy_at(labels, scores, 0.0)
    assert (report["accuracy_best"], report["best_threshold"]) == pytest.approx(
        metrics.best_threshold_accuracy(labels, scores))
    assert report["youden_threshold"] == metrics.youden_threshold(labels, scores)
    assert report["auc_ci"] == pytest.approx(
        metrics.bootstrap_ci(metrics.roc_auc, labels, scores, n_boot=20))
    assert report["n_real"] == report["n_fake"] == 100


def test_frechet_distance_known_values() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(400, 16))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # b = 2a + 1: (Σa Σb)^½ = 2 Σa, so FD = |μa + 1|² + tr Σa exactly
    b = 2 * a + 1
    cov = np.cov(a, rowvar=False)
    expected = np.sum((a.mean(0) + 1) ** 2) + np.trace(cov)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    # rank-deficient features (more dimensions than samples) still give a finite value
    assert np.isfinite(metrics.frechet_distance(a[:10], a[10:20]))


def test_kernel_distance_same_vs_shifted() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same, same_std = metrics.kernel_inception_distance(a, b, subsets=20, subset_size=500)
    shifted, _ = metrics.kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=500)
    assert abs(same) < 0.02 and same_std < 0.02
    assert shifted > 0.2


def test_prdc_identical_and_disjoint() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(size=(300, 8))
    same = metrics.precision_recall_density_coverage(a, a, k=5)
    assert same["coverage"] == pytest.approx(1.0) and same["precision"] == pytest.approx(1.0)
    far = metrics.precision_recall_density_coverage(a, a + 100.0, k=5)
    assert far["precision"] == 0.0 and far["coverage"] == 0.0
    assert all(type(value) is float for value in same.values())


def test_nearest_neighbour_distances_on_images() -> None:
    rng = np.random.default_rng(8)
    reference = rng.random((50, 1, 4, 4))
    distances, index = metrics.nearest_neighbour_distances(reference[[3, 7]] + 0.01, reference)
    assert index.tolist() == [3, 7]
    assert distances == pytest.approx([0.04, 0.04])  # √16 · 0.01


def test_memorisation_zu() -> None:
    rng = np.random.default_rng(9)
    train, test = rng.random((600, 1, 8, 8)), rng.random((200, 1, 8, 8))
    test_d, _ = metrics.nearest_neighbour_distances(test, train)
    copies = train[:200] + rng.normal(0, 1e-3, (200, 1, 8, 8))
    copies_d, _ = metrics.nearest_neighbour_distances(copies, train)
    fresh_d, _ = metrics.nearest_neighbour_distances(rng.random((200, 1, 8, 8)), train)
    assert metrics.memorisation_zu(copies_d, test_d) < -15
    assert abs(metrics.memorisation_zu(fresh_d, test_d)) < 3
