"""DCT detector (Frank et al. 2020): log-magnitude 2-D DCT + logistic regression.

Up-sampling artefacts form a grid of peaks in the DCT spectrum, which a linear
model on the standardised log-DCT coefficients picks up directly.
"""

from __future__ import annotations

import numpy as np

from detectors.registry import register
from detectors.spectral import FeatureDetector
from forensics.measures import CHUNK, grayscale


def log_dct(images: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(N, C, H, W) → (N, H, W) log |DCT-II| (orthonormal) of the grayscale images."""
    from scipy import fft

    gray = grayscale(images)
    out = np.empty(gray.shape, dtype=np.float32)
    for start in range(0, len(gray), CHUNK):
        coeffs = fft.dctn(gray[start : start + CHUNK], type=2, axes=(-2, -1), norm="ortho",
                          workers=-1)
        out[start : start + CHUNK] = np.log(np.abs(coeffs) + np.float32(eps))
    return out


@register("spectral-dct")
class SpectralDCT(FeatureDetector):
    """Frank et al. 2020: flattened log-DCT coefficients → StandardScaler → LogisticRegression."""

    def __init__(self, *, C: float = 1.0, eps: float = 1e-8, seed: int = 0,
                 balance: bool = True) -> None:
        self.balance = balance
        self.C = C
        self.eps = eps
        self.seed = seed

    def features(self, images: np.ndarray) -> np.ndarray:
        return log_dct(images, self.eps).reshape(len(images), -1)

    def mean_difference_map(self, real: np.ndarray, fake: np.ndarray) -> np.ndarray:
        """(H, W) mean log-DCT of the fakes minus that of the reals (for a plot)."""
        return log_dct(fake, self.eps).mean(0) - log_dct(real, self.eps).mean(0)
