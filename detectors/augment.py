"""Training augmentation of Wang et al. 2020 (blur + JPEG), through OpenCV.

Each image is blurred with probability 0.5 (Gaussian, sigma ~ U[0, 3]) and then
JPEG re-encoded with probability 0.5 (quality ~ U{30..100}). Four numbers are
drawn per image whatever happens, so the random stream is fixed by the seed.
"""

from __future__ import annotations

import numpy as np

from forensics.images import opencv, to_float, to_uint8


def blur_jpeg_one(image: np.ndarray, rng: np.random.Generator, *, blur_prob: float = 0.5,
                  max_sigma: float = 3.0, jpeg_prob: float = 0.5,
                  quality: tuple[int, int] = (30, 100)) -> np.ndarray:
    """Augment one (H, W, C) uint8 image with C in {1, 3}."""
    cv2 = opencv()

    do_blur, sigma = rng.random() < blur_prob, rng.uniform(0.0, max_sigma)
    do_jpeg, level = rng.random() < jpeg_prob, int(rng.integers(quality[0], quality[1] + 1))
    gray = image.shape[2] == 1
    out = image[:, :, 0] if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if do_blur and sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    if do_jpeg:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, level])
        if ok:
            out = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    return out[:, :, None] if gray else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def blur_jpeg(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augment a float (N, C, H, W) batch in [0, 1] image by image (training only)."""
    pixels = to_uint8(images)
    return to_float(np.stack([blur_jpeg_one(image, rng) for image in pixels]))
