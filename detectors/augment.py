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


def robust_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`blur_jpeg_one`'s blur and JPEG plus what ``detect`` meets in the wild: a resize
    to 0.5–1× and back (area down, bilinear up) and Gaussian noise σ ≤ 4/255, each p = 0.5, in
    random order of resize → blur → noise → JPEG. Eight numbers are drawn per image."""
    cv2 = opencv()

    do_resize, scale = rng.random() < 0.5, rng.uniform(0.5, 1.0)
    do_noise, level = rng.random() < 0.5, rng.uniform(0.0, 4.0)
    noise_seed = int(rng.integers(2**31))
    out = image
    if do_resize and scale < 0.99:
        height, width = image.shape[:2]
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (width, height),
                         interpolation=cv2.INTER_LINEAR)
        out = out.reshape(image.shape)
    out = blur_jpeg_one(np.ascontiguousarray(out), rng, jpeg_prob=0.0)
    if do_noise and level > 0:
        noisy = out + np.random.default_rng(noise_seed).normal(0.0, level, out.shape)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return blur_jpeg_one(out, rng, blur_prob=0.0)


def robust(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`robust_one` over a float (N, C, H, W) batch in [0, 1] (training only)."""
    pixels = to_uint8(images)
    return to_float(np.stack([robust_one(image, rng) for image in pixels]))
