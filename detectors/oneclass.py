"""Shared by the real-only (one-class) detectors: a held-out share of the reals, robust z, two-sided score.

A one-class detector computes k statistics per image (reconstruction errors,
coding-cost gaps, ...). A generator can err either way — too smooth as well as
too rough — so the score is two-sided: each statistic is standardised against
a held-out share of the real training images by a robust z (median, and
1.4826·MAD as the scale), and the score is the monotone map q / (q + k) of
q = Σ z² (the chi-square statistic of the k z's). It is in [0, 1), 1/2 at
q = k (each z about ±1), and never saturates, so the ranking of far outliers
survives; only the ranking matters, as the caller calibrates the threshold.
The logit of the score is log(q / k).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import Detector, as_batch
from forensics.errors import ForensicsError

MAD_TO_SIGMA = 1.4826


def robust_location_scale(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: median and 1.4826·MAD (the std where the MAD is 0; floored at 1e-6)."""
    center = np.median(stats, axis=0)
    scale = MAD_TO_SIGMA * np.median(np.abs(stats - center), axis=0)
    scale = np.where(scale > 0, scale, stats.std(axis=0))
    return center, np.maximum(scale, 1e-6)


def two_sided_score(z: np.ndarray) -> np.ndarray:
    """(N, k) z's → q / (q + k) with q = Σ z² per row (see module doc)."""
    q = np.square(np.asarray(z, dtype=np.float64)).sum(axis=1)
    return q / (q + z.shape[1])


class RealOnlyDetector(Detector):
    """Fit on reals only; subclasses give ``_train(images)``, ``_statistics(images)`` and the state."""

    needs_fakes = False
    #: the held-out share of the reals used to standardise the statistics
    holdout: float = 0.1
    seed: int = 0
    #: also learn from (and standardise against) the reals after ordinary processing
    #: (forensics.domain.process), so a JPEG'd or resized real image is not surprising
    robust: bool = False

    def fit(self, real: np.ndarray, fake: np.ndarray | None = None) -> RealOnlyDetector:
        """Learn from ``real`` alone; ``fake`` is ignored (it is accepted for the common contract)."""
        real = as_batch(real, "real images")
        self.__dict__.pop("input_shape_", None)
        if not 0.0 < self.holdout < 1.0:
            raise ForensicsError("holdout must be between 0 and 1")
        n_held = max(2, int(round(self.holdout * len(real))))
        if len(real) < n_held + 2:
            raise ForensicsError(f"{self.name} needs at least {n_held + 2} real images")
        order = np.random.default_rng([self.seed, 104729]).permutation(len(real))
        held, train = real[np.sort(order[:n_held])], real[np.sort(order[n_held:])]
        if self.robust:
            from forensics.domain import process

            rng = np.random.default_rng([self.seed, 104743])
            train = np.concatenate([train, process(train, rng)])
            held = np.concatenate([held, process(held, rng)])
        self._train(train)
        center, scale = robust_location_scale(self._statistics(held))
        self.center_, self.scale_ = center.astype(np.float64), scale.astype(np.float64)
        self._end_fit(real)
        return self

    def z_scores(self, images: np.ndarray) -> np.ndarray:
        """(N, k) robust z of each statistic against the held-out reals (signed: < 0 too regular)."""
        images = self._check_input(images)
        return (self._statistics(images) - self.center_) / self.scale_

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return two_sided_score((self._statistics(images) - self.center_) / self.scale_)

    # subclasses -------------------------------------------------------------
    def _train(self, images: np.ndarray) -> None:
        raise NotImplementedError

    def _statistics(self, images: np.ndarray) -> np.ndarray:
        """(N, k) float64 statistics per image."""
        raise NotImplementedError

    def _calibration_state(self) -> dict[str, Any]:
        return {"center": [float(v) for v in self.center_], "scale": [float(v) for v in self.scale_]}

    def _restore_calibration(self, state: dict[str, Any]) -> None:
        center = np.asarray(state["center"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if center.ndim != 1 or center.shape != scale.shape or not np.all(scale > 0):
            raise ValueError("bad calibration (center/scale)")
        self.center_, self.scale_ = center, scale
