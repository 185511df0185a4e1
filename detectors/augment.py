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
    to 0.5–1× and back (area down, bilinear up), Gaussian noise σ ≤ 16/255, a straight motion
    blur of 2–5 px, sharpening, a tone change (black lifted, gain) and fewer gray levels, in the
    order resize → blur → motion blur → sharpen → tone → gray levels → noise → compression.
    Resize, blur and noise each p = 0.5, sharpening and tone p = 0.25, motion blur p = 0.2, gray
    levels p = 0.1 (:func:`forensics.domain.process_one`; without tone a real digit whose black
    was lifted by 8/255 was called fake every time, without motion blur 1.6 % of real digits
    smeared by 5 px were, above the 1 % cap, once blind to the tone); the compression is
    JPEG (p = 0.5) or else WebP (p = 0.25), and a compressed image is JPEG-compressed again
    with p = 0.25 (an image saved twice). The same count of numbers is drawn per image whatever
    happens (the motion blur, sharpening, WebP and second JPEG draw their strengths from a stream of their
    own), so the seed fixes the stream."""
    from forensics.domain import process_one

    cv2 = opencv()

    do_resize, scale = rng.random() < 0.5, rng.uniform(0.5, 1.0)
    do_noise, level = rng.random() < 0.5, rng.uniform(0.0, 16.0)
    noise_seed = int(rng.integers(2**31))
    do_sharpen, do_webp, again = rng.random() < 0.25, rng.random() < 0.5, rng.random() < 0.25
    do_tone, do_quantize, do_motion = rng.random() < 0.25, rng.random() < 0.1, rng.random() < 0.2
    steps = np.random.default_rng(int(rng.integers(2**31)))  # the strengths of those six
    out = image
    if do_resize and scale < 0.99:
        height, width = image.shape[:2]
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (width, height),
                         interpolation=cv2.INTER_LINEAR)
        out = out.reshape(image.shape)
    out = blur_jpeg_one(np.ascontiguousarray(out), rng, jpeg_prob=0.0)
    if do_motion:
        out = process_one(out, "motion", steps)
    if do_sharpen:
        out = process_one(out, "sharpen", steps)
    if do_tone:
        out = process_one(out, "tone", steps)
    if do_quantize:
        out = process_one(out, "quantize", steps)
    if do_noise and level > 0:
        noisy = out + np.random.default_rng(noise_seed).normal(0.0, level, out.shape)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    use_jpeg = rng.random() < 0.5
    out = blur_jpeg_one(out, rng, blur_prob=0.0, jpeg_prob=1.0 if use_jpeg else 0.0)
    if not use_jpeg and do_webp:
        out = process_one(out, "webp", steps)
    if (use_jpeg or do_webp) and again:
        out = process_one(out, "jpeg", steps)
    return out


def robust(images: np.ndarray, rng: np.random.Generator, share: float = 1.0) -> np.ndarray:
    """:func:`robust_one` over a float (N, C, H, W) batch in [0, 1] (training only); with
    ``share`` < 1 each image keeps its plain self with probability 1 − share (drawn after the
    augmentation, so share 1 draws what it always drew)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], not {share}")
    pixels = to_uint8(images)
    done = to_float(np.stack([robust_one(image, rng) for image in pixels]))
    if share < 1.0:
        plain = rng.random(len(images)) >= share
        done[plain] = images[plain]
    return done
