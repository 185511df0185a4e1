"""The reference baseline of every benchmark table: logistic regression on raw pixels."""

from __future__ import annotations

import numpy as np

from detectors.registry import register
from detectors.spectral import FeatureDetector


@register("pixel-logreg")
class PixelLogReg(FeatureDetector):
    """Standardised raw pixels → logistic regression (no artefact-specific features)."""

    def __init__(self, *, C: float = 0.1, seed: int = 0, balance: bool = True) -> None:
        self.balance = balance
        self.classifier = "logreg"
        self.C = C
        self.seed = seed

    def get_params(self) -> dict:
        return {"C": self.C, "seed": self.seed, "balance": self.balance}

    def features(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images, dtype=np.float32).reshape(len(images), -1)
