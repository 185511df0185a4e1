"""Test-time perturbations: what images go through before a detector sees them.

Each perturbation maps a batch (N, C, H, W) in [0, 1] to a batch of the same
shape, with OpenCV on 8-bit images, and returns the per-image parameters it
drew so the perturbed test set can be rebuilt exactly.
"""

from __future__ import annotations

import numpy as np

from forensics.images import opencv, to_float, to_uint8

cv2 = opencv()

Params = list[dict[str, float]]


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    # OpenCV reads colour arrays as BGR: swap so the JPEG luma/chroma split is the
    # one any other encoder applies to these RGB images
    colour = image.shape[2] == 3
    encoded = np.ascontiguousarray(image[:, :, ::-1]) if colour else image
    ok, data = cv2.imencode(".jpg", encoded, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    out = cv2.imdecode(data, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out[:, :, ::-1]) if colour else out[:, :, None]


def _keep_channels(out: np.ndarray) -> np.ndarray:
    return out[:, :, None] if out.ndim == 2 else out


def _crop_resize(image: np.ndarray, share: float, rng: np.random.Generator) -> tuple:
    height, width = image.shape[:2]
    ch, cw = max(1, round(height * (1 - share))), max(1, round(width * (1 - share)))
    top, left = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
    crop = image[top : top + ch, left : left + cw]
    out = _keep_channels(cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR))
    return out, {"top": top, "left": left, "crop_h": ch, "crop_w": cw}


def apply(name: str, strength: float, images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, Params]:
    """Apply perturbation ``name`` at ``strength``; return images and per-image params."""
    rng = np.random.default_rng(seed)
    out, params = [], []
    for image in to_uint8(images):
        if name == "jpeg":
            result, p = _jpeg(image, int(strength)), {"quality": int(strength)}
        elif name == "blur":
            result = _keep_channels(cv2.GaussianBlur(image, (0, 0), float(strength)))
            p = {"sigma": float(strength)}
        elif name == "downscale":
            h, w = image.shape[:2]
            small = cv2.resize(image, (max(1, round(w * strength)), max(1, round(h * strength))),
                               interpolation=cv2.INTER_AREA)
            result = _keep_channels(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
            p = {"factor": float(strength)}
        elif name == "noise":
            noise = rng.normal(0.0, float(strength), image.shape)
            result = np.clip(image + noise + 0.5, 0, 255).astype(np.uint8)
            p = {"sigma_255": float(strength), "noise_seed": seed}
        elif name == "crop":
            result, p = _crop_resize(image, float(strength), rng)
        elif name == "png":  # a lossless re-save: an actual PNG encode and decode
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
            result = _keep_channels(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
            p = {"png": 1.0}
        elif name == "chain":  # as images see when shared online: crop, resize, re-encode
            cropped, p = _crop_resize(image, 0.1, rng)
            result = _jpeg(cropped, int(strength))
            p["quality"] = int(strength)
        else:
            raise ValueError(f"unknown perturbation {name!r}")
        out.append(result)
        params.append(p)
    return to_float(np.stack(out)), params


#: the robustness protocol: name → strengths (units: JPEG quality, blur σ in px,
#: scale factor, noise σ on the 0–255 scale, crop share, chain JPEG quality)
DEFAULT = {
    "jpeg": [95, 75, 50, 30],
    "blur": [0.5, 1.0, 2.0],
    "downscale": [0.5],
    "noise": [5.0, 10.0],
    "crop": [0.1],
    "chain": [75],
}

#: what each strength may be: (integers only, low, high, low open, description)
RANGES = {
    "jpeg": (True, 1, 100, False, "JPEG quality, an integer 1-100"),
    "blur": (False, 0.0, 50.0, True, "blur sigma in pixels, > 0"),
    "downscale": (False, 0.0, 1.0, True, "a scale factor in (0, 1]"),
    "noise": (False, 0.0, 255.0, True, "noise sigma on the 0-255 scale, > 0"),
    "crop": (False, 0.0, 0.99, True, "the share cropped away, in (0, 0.99]"),
    "chain": (True, 1, 100, False, "the chain's JPEG quality, an integer 1-100"),
}


def check_strengths(perturbations: dict) -> list[str]:
    """One line per perturbation of a suite that is unknown or has a strength out of range."""
    errors = []
    for name, strengths in perturbations.items():
        if name not in RANGES:
            errors.append(f"unknown perturbation(s) {name}; known: {', '.join(DEFAULT)}")
            continue
        # a string would otherwise be read one character at a time ("50" → 5.0, 0.0)
        if not isinstance(strengths, list) or not strengths or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in strengths):
            errors.append(f"perturbation {name} needs a list of numbers, not {strengths!r}")
            continue
        integers, low, high, open_low, what = RANGES[name]
        bad = [v for v in strengths
               if (integers and int(v) != v) or v > high or v < low or (open_low and v == low)]
        if bad:
            errors.append(f"perturbation {name}: {', '.join(map(str, bad))} out of range "
                          f"({what})")
    return errors
