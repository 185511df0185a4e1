"""Measures of images that several layers share: the one radial spectrum, slant, stroke width,
and the InfoGAN code measures.

The radial spectrum is the toolkit's only definition (README's image convention): gray by
BT.601 luma (the weights of :func:`forensics.images.conform`), 2-D FFT, natural log of the
power + eps, averaged over rings of integer radius (corners included), low → high frequency;
bin ``r`` is ``r / min(H, W)`` cycles per pixel. The spectral detectors, ``detect --explain``,
the benchmark's mean spectra and the audit's spectral discrepancy all use it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from forensics.errors import ForensicsError

#: ITU-R BT.601 luma, the same weights as forensics.images.conform
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
CHUNK = 4096


def as_batch(images, what: str = "images") -> np.ndarray:
    """Check the toolkit's image convention and return a float32 (N, C, H, W) array."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ForensicsError(f"{what}: expected (N, C, H, W) with C in {{1, 3}}, "
                             f"got shape {array.shape}")
    if len(array) == 0:
        raise ForensicsError(f"{what}: no images")
    return array


def grayscale(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W) float32 (BT.601 luma for RGB)."""
    images = as_batch(images)
    if images.shape[1] == 1:
        return images[:, 0]
    return np.tensordot(images, LUMA, axes=([1], [0])).astype(np.float32)


@lru_cache(maxsize=16)
def ring_matrix(height: int, width: int, n_bins: int | None = None) -> np.ndarray:
    """(H·W, n_bins) matrix averaging an unshifted 2-D spectrum over rings of equal radius."""
    fy = np.fft.fftfreq(height) * height
    fx = np.fft.fftfreq(width) * width
    radius = np.hypot(fy[:, None], fx[None, :]).ravel()
    if n_bins is None:  # one ring per integer radius, corners included
        bins = np.floor(radius).astype(np.int64)
        n_bins = int(bins.max()) + 1
    else:
        bins = np.minimum((radius / (radius.max() + 1e-12) * n_bins).astype(np.int64), n_bins - 1)
    matrix = np.zeros((height * width, n_bins), dtype=np.float32)
    matrix[np.arange(height * width), bins] = 1.0
    matrix /= np.maximum(matrix.sum(0), 1.0)
    matrix.flags.writeable = False
    return matrix


def radial_spectrum(images: np.ndarray, n_bins: int | None = None,
                    eps: float = 1e-8) -> np.ndarray:
    """Azimuthally averaged log power spectrum, (N, n_bins) float32, low → high frequency."""
    from scipy import fft

    gray = grayscale(images)
    n, height, width = gray.shape
    matrix = ring_matrix(height, width, n_bins)
    out = np.empty((n, matrix.shape[1]), dtype=np.float32)
    for start in range(0, n, CHUNK):  # chunks bound memory; each is one batched FFT
        spectrum = fft.fft2(gray[start : start + CHUNK], workers=-1)
        power = np.log(spectrum.real**2 + spectrum.imag**2 + np.float32(eps))
        out[start : start + CHUNK] = power.reshape(len(power), -1) @ matrix
    return out


def slant(images: np.ndarray) -> np.ndarray:
    """Per-image slant ``mu11 / mu02`` from intensity moments (as ``cv2.moments``).

    The horizontal shift of the ink's centre per row going down: 0 = upright,
    negative = the top leans right. NaN for a blank image.
    """
    gray = np.asarray(images, dtype=np.float64).mean(1)
    _, height, width = gray.shape
    y, x = np.mgrid[:height, :width]
    mass = gray.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (gray * x).sum((1, 2)) / mass
        cy = (gray * y).sum((1, 2)) / mass
        dx = x[None] - cx[:, None, None]
        dy = y[None] - cy[:, None, None]
        return (gray * dx * dy).sum((1, 2)) / (gray * dy * dy).sum((1, 2))


def stroke_width(images: np.ndarray) -> np.ndarray:
    """Per-image stroke width proxy ``2 · ink area / ink boundary length`` in pixels.

    Ink = pixels > 0.5; the boundary counts ink/background pixel edges
    (4-neighbours, the image padded with background). A stroke of width w and
    length L ≫ w has area wL and boundary ≈ 2L. NaN for a blank image.
    """
    ink = np.asarray(images).mean(1) > 0.5
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    edges = (np.diff(padded, axis=1) != 0).sum((1, 2)) + (np.diff(padded, axis=2) != 0).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(edges > 0, 2.0 * ink.sum((1, 2)) / edges, np.nan)


def code_agreement(c1: np.ndarray, digits: np.ndarray) -> dict:
    """Accuracy after Hungarian matching of c1 values to digits, and NMI."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import normalized_mutual_info_score

    codes, code_index = np.unique(c1, return_inverse=True)
    confusion = np.zeros((len(codes), 10), dtype=np.int64)
    np.add.at(confusion, (code_index, digits), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return {
        "c1_hungarian_accuracy": float(confusion[rows, cols].sum() / len(c1)),
        "c1_to_digit": {str(int(codes[r])): int(c) for r, c in zip(rows, cols, strict=True)},
        "c1_nmi": float(normalized_mutual_info_score(c1, digits)),
        "confusion": confusion.tolist(), "confusion_rows": [int(c) for c in codes],
    }


def code_properties(cont: np.ndarray, images: np.ndarray) -> dict:
    """Spearman correlation of each continuous code with slant and stroke width."""
    from scipy.stats import spearmanr

    properties = {"slant": slant(images), "stroke_width": stroke_width(images)}
    table: dict[str, dict[str, float | None]] = {}
    for j in range(cont.shape[1]):
        table[f"c{j + 2}"] = {}
        for name, values in properties.items():
            keep = np.isfinite(values)
            rho = (spearmanr(cont[keep, j], values[keep]).statistic
                   if keep.sum() > 2 else float("nan"))
            table[f"c{j + 2}"][name] = float(rho)
    return {"spearman": table,
            "slant": "mu11/mu02 of the intensity moments (shift per row; 0 = upright)",
            "stroke_width": "2 * ink area / ink boundary length, ink = pixels > 0.5"}
