"""Spectral detector (Durall et al. 2020): a 1-D power spectrum and a linear classifier.

Up-sampling layers leave periodic traces that show up as a bump in the high
frequencies of the azimuthally averaged power spectrum. Features: grayscale →
2-D FFT over the whole batch → log(|F|² + eps) → mean over rings of equal
radius (a matrix product with a precomputed ring-averaging matrix).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import Detector
from detectors.registry import register
from forensics.errors import ForensicsError
from forensics.measures import radial_spectrum

CLASSIFIERS = ("logreg", "svm")


def linear_classifier(classifier: str = "logreg", C: float = 1.0, seed: int = 0,
                      balance: bool = True):
    """StandardScaler → logistic regression, or a linear SVM with sigmoid-calibrated output;
    ``balance``: classes weighted inversely to their counts (scikit-learn's "balanced")."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if classifier not in CLASSIFIERS:
        raise ForensicsError(f"classifier must be one of {', '.join(CLASSIFIERS)}")
    if C <= 0:
        raise ForensicsError("C must be positive")
    weight = "balanced" if balance else None
    if classifier == "logreg":
        model = LogisticRegression(C=C, max_iter=2000, class_weight=weight)
    else:
        model = CalibratedClassifierCV(LinearSVC(C=C, random_state=seed, class_weight=weight),
                                       method="sigmoid", cv=3)
    return make_pipeline(StandardScaler(), model)


class FeatureDetector(Detector):
    """Fixed features + a scikit-learn linear classifier (subclasses define ``features``)."""

    classifier = "logreg"
    C = 1.0
    seed = 0
    balance = True
    balances = True

    def features(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, real: np.ndarray, fake: np.ndarray) -> FeatureDetector:
        real, fake = self._start_fit(real, fake)
        model = linear_classifier(self.classifier, self.C, self.seed, self.balance)
        x = np.concatenate([self.features(real), self.features(fake)])
        y = np.r_[np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)]
        self.pipeline_ = model.fit(x, y)
        self._end_fit(real)
        return self

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return self.pipeline_.predict_proba(self.features(images))[:, 1]

    def _state(self) -> tuple[None, Any, dict[str, Any]]:
        return None, self.pipeline_, {}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        if sklearn is None or not hasattr(sklearn, "predict_proba"):
            raise ValueError("no scikit-learn classifier in model.skops")
        self.pipeline_ = sklearn


@register("spectral-fft")
class SpectralFFT(FeatureDetector):
    """Durall et al. 2020: azimuthal average of the log power spectrum + linear classifier."""

    def __init__(self, *, n_bins: int | None = None, classifier: str = "logreg", C: float = 1.0,
                 eps: float = 1e-8, seed: int = 0, balance: bool = True) -> None:
        self.n_bins = n_bins
        self.balance = balance
        self.classifier = classifier
        self.C = C
        self.eps = eps
        self.seed = seed

    def features(self, images: np.ndarray) -> np.ndarray:
        if self.n_bins is not None and self.n_bins < 1:
            raise ForensicsError("n_bins must be positive")
        return radial_spectrum(images, self.n_bins, self.eps)
