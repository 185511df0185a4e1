"""What a detector's real training data looked like, and whether an image belongs to it.

A detector trained on 28×28 gray digits has no notion of a photograph: asked about one,
it answers anyway, often "fake" with P(fake) 1.000. :class:`Domain` is the record that
lets ``forensics detect`` abstain instead. It is fitted on the real training images
(:meth:`Domain.fit`) and kept in ``detector.json`` (:meth:`Domain.to_dict`). For each
image :meth:`Domain.assess` gives one printable reason why it is out of the domain, or
None:

- another channel count than training (a 3-channel image whose channels agree within
  :data:`GRAY_TOLERANCE` counts as gray) or another size (H, W), judged on the file's
  own shape before it is conformed (:func:`original_shape`);
- atypical content: a Mahalanobis distance ("typicality") over cheap per-image features
  (the intensity CDF at a few levels, mean and spread, the border ring's mean, the
  centroid and spread of the intensity mass, a few low-frequency bins of the radial
  spectrum) exceeds the in-domain limit.

The typicality model is fitted on the real training images *and processed copies of
them* (:func:`process`, each single processing of :data:`SINGLE`: JPEG, WebP, blur, resize
and back, noise, PNG re-save, sharpening, a tone change, fewer gray levels; chains of two are
left out on purpose, see
:data:`SINGLE`, so a real image processed twice over may now and then be abstained on), with a
Ledoit-Wolf shrinkage covariance, so a compressed, resized or blurred image of the domain
stays typical: it is a hard case to be judged, not another domain. The limit is the
99.9th percentile of the real validation images (plain and processed) times
:data:`MARGIN`. Only numpy and scikit-learn (and OpenCV for :func:`process`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forensics.errors import ForensicsError

#: A 3-channel image is gray when no pixel's channels differ by more than this (0..255 units).
GRAY_TOLERANCE = 8
#: The in-domain limit is the real validation images' ``LIMIT_QUANTILE`` typicality times this.
MARGIN = 1.25
LIMIT_QUANTILE = 0.999
#: Intensity levels at which the per-image CDF (share of pixels at or below) is a feature.
LEVELS = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)
#: Coarse histogram bins recorded in the domain (for reports; not used by assess).
HISTOGRAM_BINS = 16
#: Quantiles of the real validation typicality recorded (for reports and audit).
REPORT_QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)
FORMAT = 1
#: Features besides the CDF levels and the spectrum bins (see :func:`features`).
N_OTHER = 11


def original_shape(image: np.ndarray) -> tuple[int, int, int]:
    """``(C, H, W)`` of a decoded ``(H, W, C)`` uint8 image, C = 1 for a gray-looking RGB file."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    if channels == 3:
        wide = image.astype(np.int16)
        spread = np.abs(wide[:, :, 0] - wide[:, :, 1]).max(initial=0), \
            np.abs(wide[:, :, 1] - wide[:, :, 2]).max(initial=0)
        if max(spread) <= GRAY_TOLERANCE:
            channels = 1
    return int(channels), int(height), int(width)


def _gray(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ForensicsError(f"domain: expected (N, C, H, W) images with C 1 or 3, not {images.shape}")
    if images.shape[1] == 1:
        return images[:, 0]
    return np.tensordot(images, np.array([0.299, 0.587, 0.114], np.float32), axes=([1], [0]))


def _low_bins(height: int, width: int) -> int:
    """How many low-frequency rings (after DC) enter the features: 4 for 28×28, 2 for 8×8."""
    return max(2, min(4, min(height, width) // 6))


def features(images: np.ndarray) -> np.ndarray:
    """``(N, k)`` float64 typicality features of ``(N, C, H, W)`` images in [0, 1] (vectorised)."""
    from forensics.measures import radial_spectrum

    gray = _gray(images)
    n, height, width = gray.shape
    flat = gray.reshape(n, -1)
    cdf = [(flat <= level).mean(1) for level in LEVELS]
    mean, std = flat.mean(1), flat.std(1)
    ring = max(1, round(min(height, width) / 10))
    mask = np.ones((height, width), bool)
    mask[ring:-ring, ring:-ring] = False
    border = flat[:, mask.ravel()].mean(1)
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / height
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / width
    mass = np.maximum(flat.sum(1), 1e-6)
    rows, cols = gray.sum(2), gray.sum(1)  # (N, H), (N, W)
    cy, cx = rows @ y / mass, cols @ x / mass
    sy = np.sqrt(np.maximum(rows @ (y**2) / mass - cy**2, 0))
    sx = np.sqrt(np.maximum(cols @ (x**2) / mass - cx**2, 0))
    # the ink relative to the image's own peak (robust to blur and contrast): how bright it is,
    # how much of it is bright, and how stroke-like the bright part is (boundary / sqrt(area))
    peak = np.maximum(flat.max(1), 1e-3)
    inked = flat > 0.1 * peak[:, None]
    n_ink = np.maximum(inked.sum(1), 1)
    brightness = (flat * inked).sum(1) / n_ink / peak
    bright = gray >= 0.5 * peak[:, None, None]
    bright_share = bright.reshape(n, -1).sum(1) / n_ink
    edges = (bright[:, 1:] != bright[:, :-1]).sum((1, 2)) \
        + (bright[:, :, 1:] != bright[:, :, :-1]).sum((1, 2))
    stroke = edges / np.sqrt(np.maximum(bright.reshape(n, -1).sum(1), 1))
    spectrum = radial_spectrum(gray[:, None], eps=1e-4)
    low = spectrum[:, 1 : 1 + _low_bins(height, width)] - spectrum[:, :1]  # relative to DC
    return np.column_stack([*cdf, mean, std, border, cy, cx, sy, sx, peak, brightness, bright_share,
                            stroke, low]).astype(np.float64)


#: the ordinary processings of :func:`process`, in the order of its random draw
PROCESSINGS = ("jpeg", "blur", "resize", "noise", "png", "sharpen", "webp", "tone", "quantize", "chain")
#: each processing but the chain: what ``chain`` draws its two steps from, and what the domain's
#: typicality model sees (a chain of two strong steps on an 8×8 digit looks like noise: with it
#: the tiny suite's domain took 99 % of uniform-noise images for digits; without it, 11 %)
SINGLE = PROCESSINGS[:-1]


#: what :func:`process` takes as ``kind``: the processings, and a straight motion blur alone
#: (random draws meet it as a third of the blurs), so that a threshold can hold at its lengths
KINDS = (*PROCESSINGS, "motion")


def _motion_blur(hwc: np.ndarray, length: int, angle: float) -> np.ndarray:
    """A straight motion blur of ``length`` pixels (at least 2) at ``angle`` degrees, as OpenCV filters."""
    from forensics.images import opencv

    cv2 = opencv()
    height, width = hwc.shape[:2]
    length = max(2, int(length))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0 / length
    centre = ((length - 1) / 2, (length - 1) / 2)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle, 1.0), (length, length))
    return cv2.filter2D(hwc, -1, kernel / max(float(kernel.sum()), 1e-6)).reshape(height, width, -1)


def process_one(hwc: np.ndarray, kind: str, rng: np.random.Generator,
                strength: float | None = None) -> np.ndarray:
    """One uint8 ``(H, W, C)`` image through ``kind`` at a random strength, or at ``strength``
    fixed: JPEG's or WebP's quality, blur's σ (pixels of a 28-px image; Gaussian, where a random
    one is a straight motion blur a third of the time), motion's length in pixels, resize's scale,
    noise's σ in 1/255, tone's lift of black in 1/255, quantize's number of gray levels
    (sharpening, PNG and the chain take none: ignored)."""
    from forensics.images import opencv

    cv2 = opencv()
    height, width = hwc.shape[:2]
    colour = hwc.shape[2] == 3
    if kind in ("jpeg", "webp"):
        flag = (cv2.IMWRITE_JPEG_QUALITY, ".jpg") if kind == "jpeg" else (cv2.IMWRITE_WEBP_QUALITY, ".webp")
        ok, data = cv2.imencode(flag[1], hwc[:, :, ::-1] if colour else hwc,
                                [flag[0], int(rng.integers(30, 96)) if strength is None else int(strength)])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is None:
            raise ForensicsError(f"{kind}: OpenCV could not encode and decode a {hwc.shape} image")
        return (decoded[:, :, ::-1] if colour else decoded).reshape(height, width, -1)
    if kind == "blur":
        # σ in pixels of a 28-px image, scaled down for smaller ones (σ 2 would erase an 8×8 digit)
        drawn = float(rng.uniform(0.3, 2.0)) if strength is None else float(strength)
        sigma = max(0.3, drawn * min(1.0, min(height, width) / 28))
        if strength is None and rng.random() < 1 / 3:  # a straight motion blur of about 2σ + 1 px
            return _motion_blur(hwc, round(2 * sigma + 1), float(rng.uniform(0, 180)))
        return cv2.GaussianBlur(hwc, (0, 0), sigma).reshape(height, width, -1)
    if kind == "motion":  # drawn at random only inside blur; alone, for the fixed strengths
        length = int(rng.integers(2, 6)) if strength is None else int(strength)
        return _motion_blur(hwc, length, float(rng.uniform(0, 180)))
    if kind == "resize":
        scale = float(rng.uniform(0.5, 0.9)) if strength is None else float(strength)
        small = cv2.resize(hwc, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
    if kind == "noise":
        noise = rng.normal(0, rng.uniform(0.5, 16.0) if strength is None else float(strength), hwc.shape)
        return np.clip(hwc + noise, 0, 255).round().astype(np.uint8)
    if kind == "sharpen":  # unsharp mask: x + amount · (x − blur(x)); small σ ≈ a Laplacian kernel
        sigma, amount = float(rng.uniform(0.3, 1.5)), float(rng.uniform(0.3, 2.5))
        soft = cv2.GaussianBlur(hwc, (0, 0), sigma).reshape(height, width, -1).astype(np.float32)
        return np.clip(hwc + amount * (hwc - soft) + 0.5, 0, 255).astype(np.uint8)
    if kind == "tone":  # black lifted and the range rescaled: a gray background, a dimmer stroke
        lift = float(rng.uniform(1.0, 24.0)) if strength is None else float(strength)
        gain = float(rng.uniform(0.8, 1.1))
        return np.clip(hwc.astype(np.float32) * gain + lift + 0.5, 0, 255).astype(np.uint8)
    if kind == "quantize":  # fewer gray levels, evenly spaced from black to white; 2: thresholded
        levels = int(rng.choice([2, 4, 8, 16, 32])) if strength is None else int(strength)
        if levels == 2:
            cut = float(rng.uniform(64, 192)) if strength is None else 128.0
            return np.where(hwc >= cut, 255, 0).astype(np.uint8)
        step = np.floor(hwc.astype(np.float32) * levels / 256.0)
        return np.clip(step * 255.0 / (levels - 1) + 0.5, 0, 255).astype(np.uint8)
    if kind == "chain":  # two steps in a row (e.g. JPEG saved again as JPEG, resize then WebP)
        first, second = rng.integers(len(SINGLE), size=2)
        return process_one(process_one(hwc, SINGLE[first], rng), SINGLE[second], rng)
    return hwc  # png: the 8-bit rounding alone


def process(images: np.ndarray, rng: np.random.Generator, kind: str | None = None,
            strength: float | None = None, among: tuple[str, ...] = PROCESSINGS) -> np.ndarray:
    """Each image through one ordinary processing (OpenCV), as uint8 would go through files:
    a random one of ``among`` (default :data:`PROCESSINGS`) per image, or ``kind`` for every
    image (its strength random, or ``strength`` fixed, as :func:`process_one` reads it).

    JPEG or WebP quality 30–95, Gaussian blur σ 0.3–2 (× side / 28 below 28 px, at least 0.3), resize
    0.5–0.9× and back (area down, bilinear up), Gaussian noise σ 0.5–16/255, a plain PNG re-save
    (8-bit rounding), sharpening (unsharp mask, σ 0.3–1.5, amount 0.3–2.5), a tone change (black
    lifted by 1–24/255, gain 0.8–1.1), a reduction to 2–32 gray levels (2: thresholded at 64–192),
    or a chain of two of these in a row (the same twice too: an image saved as JPEG again); each
    followed by 8-bit rounding; a third of the random blurs are straight motion blurs. ``(N, C, H, W)``
    float32 in [0, 1] in and out. Sharpening, WebP, the chain, blur above σ 1.5 and noise above
    4/255 joined on 2026-12-03, after the shipped detector called 13 % of sharpened and 7 % of
    twice-compressed real test digits fake and abstained on 15 % of digits blurred at σ 2; noise
    above 8/255 later that day, after detectors trained to 8/255 called 6–48 % of real digits
    with noise σ 16/255 fake. Tone, quantization, motion blur and stronger sharpening joined on
    2026-12-04, after the shipped detector called every real test digit with its black lifted by
    8/255 fake (26 % at 4/255), 12–41 % of thresholded ones, 12 % of Laplacian-sharpened and 6 %
    of motion-blurred ones.
    """
    if kind is not None and kind not in KINDS:
        raise ForensicsError(f"unknown processing {kind!r}; choose from {', '.join(KINDS)}")
    images = np.asarray(images, dtype=np.float32)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        hwc = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
        drawn = among[int(rng.integers(len(among)))] if kind is None else kind
        out[i] = process_one(hwc, drawn, rng, strength).transpose(2, 0, 1).astype(np.float32) / 255.0
    return out


def _finite_list(value: Any, what: str, length: int | None = None) -> np.ndarray:
    if not isinstance(value, list) or (length is not None and len(value) != length) \
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        size = "" if length is None else f" of {length}"
        raise ForensicsError(f"domain: {what} must be a list{size} numbers")
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ForensicsError(f"domain: {what} holds a number that is not finite")
    return array


class Domain:
    """The real training data's shape and typicality; see the module doc.

    Attributes: ``shape`` (C, H, W); ``intensity`` (mean, std, histogram); ``spectrum``
    (per-bin mean and std of the radial spectrum); ``mean`` and ``precision`` of the
    typicality features; ``limit``; ``val_quantiles`` (real validation typicality).
    A Domain with ``mean`` None checks only the shape (an older detector folder).
    """

    def __init__(self, shape: tuple[int, int, int], *, mean: np.ndarray | None = None,
                 precision: np.ndarray | None = None, limit: float | None = None,
                 intensity: dict | None = None, spectrum: dict | None = None,
                 val_quantiles: dict | None = None, n: dict | None = None) -> None:
        self.shape = tuple(int(v) for v in shape)
        self.mean, self.precision, self.limit = mean, precision, limit
        self.intensity, self.spectrum = intensity or {}, spectrum or {}
        self.val_quantiles, self.n = val_quantiles or {}, n or {}

    @property
    def typical(self) -> bool:
        """Whether this record has a typicality model (not only the shape)."""
        return self.mean is not None

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, real_train: np.ndarray, real_val: np.ndarray, seed: int = 0) -> Domain:
        """Fit on real train images plus processed copies; set the limit on real val (plain + processed)."""
        from sklearn.covariance import LedoitWolf

        from forensics.measures import radial_spectrum

        real_train = np.asarray(real_train, dtype=np.float32)
        real_val = np.asarray(real_val, dtype=np.float32)
        if real_train.ndim != 4 or len(real_train) < 10 or real_val.shape[1:] != real_train.shape[1:] \
                or len(real_val) < 10:
            raise ForensicsError("domain: need at least 10 real train and 10 real validation images "
                                 "of one (C, H, W) shape")
        rng = np.random.default_rng([seed, 7919])
        train = np.concatenate([real_train, process(real_train, rng, among=SINGLE)])
        feats = features(train)
        model = LedoitWolf().fit(feats)
        domain = cls(tuple(real_train.shape[1:]), mean=model.location_,
                     precision=model.precision_, limit=1.0)
        val = np.concatenate([real_val, process(real_val, rng, among=SINGLE),
                              process(real_val, rng, among=SINGLE)])
        distance = domain.typicality(val)
        domain.limit = float(np.quantile(distance, LIMIT_QUANTILE) * MARGIN)
        domain.val_quantiles = {str(q): float(np.quantile(distance, q)) for q in REPORT_QUANTILES}
        gray = _gray(real_train)
        hist = np.histogram(gray, bins=HISTOGRAM_BINS, range=(0, 1))[0]
        domain.intensity = {"mean": float(gray.mean()), "std": float(gray.std()),
                            "histogram": [float(v) for v in hist / hist.sum()]}
        spectrum = radial_spectrum(real_train)
        domain.spectrum = {"mean": [float(v) for v in spectrum.mean(0)],
                           "std": [float(v) for v in spectrum.std(0)]}
        domain.n = {"train": len(real_train), "train_processed": len(real_train),
                    "val": len(real_val), "val_processed": 2 * len(real_val)}
        return domain

    # -- judging ----------------------------------------------------------------------------
    def typicality(self, images: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each image's features from the real training data's."""
        if not self.typical:
            raise ForensicsError("domain: this record has no typicality model")
        centred = features(images) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0))

    def assess(self, images: np.ndarray, original_shapes: list[tuple[int, int, int]] | None = None
               ) -> list[str | None]:
        """One reason per image why it is out of this domain, or None where it is in it.

        ``images``: ``(N, C, H, W)`` conformed to :attr:`shape`; ``original_shapes``: each
        file's ``(C, H, W)`` before conforming (:func:`original_shape`), None: as ``images``.
        """
        images = np.asarray(images, dtype=np.float32)
        n = len(images)
        if original_shapes is None:
            original_shapes = [tuple(images.shape[1:])] * n
        if len(original_shapes) != n:
            raise ValueError("one original shape per image")
        c, h, w = self.shape
        judged = f"this detector judges {c}-channel {h}×{w}"
        reasons: list[str | None] = [None] * n
        for i, (oc, oh, ow) in enumerate(original_shapes):
            if oc != c:
                what = "3-channel colour" if oc == 3 else f"{oc}-channel gray" if oc == 1 else f"{oc}-channel"
                reasons[i] = f"{what} image; {judged}"
            elif (oh, ow) != (h, w):
                reasons[i] = f"{oh}×{ow} image; {judged}"
        if self.typical and n and tuple(images.shape[1:]) == self.shape:
            left = [i for i, r in enumerate(reasons) if r is None]
            if left:
                distance = self.typicality(images[left])
                for i, d in zip(left, distance, strict=True):
                    if not d <= self.limit:  # NaN too
                        reasons[i] = (f"atypical for the detector's real data "
                                      f"(typicality {d:.1f} > limit {self.limit:.1f})")
        elif not self.typical:
            reasons = [r and f"{r} (shape check only: the detector records no domain)" for r in reasons]
        return reasons

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "shape": list(self.shape)}
        if self.typical:
            data["typicality"] = {
                "features": "intensity CDF at " + ", ".join(map(str, LEVELS)) + "; mean; std; border "
                            "ring mean; mass centroid y, x; mass spread y, x; peak; ink brightness, "
                            "bright share and stroke ratio relative to the peak; low radial-spectrum bins",
                "mean": [float(v) for v in self.mean],
                "precision": [[float(v) for v in row] for row in self.precision],
                "limit": float(self.limit), "margin": MARGIN, "limit_quantile": LIMIT_QUANTILE,
                "val_quantiles": self.val_quantiles}
            data.update(intensity=self.intensity, spectrum=self.spectrum, n=self.n)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Domain:
        """Rebuild from :meth:`to_dict`; one-line ForensicsError for anything malformed."""
        if not isinstance(data, dict):
            raise ForensicsError("domain must be a JSON object")
        shape = data.get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65536 for v in shape)):
            raise ForensicsError(f"domain: 'shape' must be [C, H, W] with C 1 or 3, not {shape!r:.40}")
        typ = data.get("typicality")
        if typ is None:
            return cls(tuple(shape))
        if not isinstance(typ, dict):
            raise ForensicsError("domain: 'typicality' must be a JSON object")
        mean = _finite_list(typ.get("mean"), "typicality mean")
        k = len(mean)
        h, w = shape[1:]
        expected = len(LEVELS) + N_OTHER + _low_bins(h, w)
        if k != expected:
            raise ForensicsError(f"domain: typicality mean has {k} features, not {expected}")
        rows = typ.get("precision")
        if not isinstance(rows, list) or len(rows) != k:
            raise ForensicsError(f"domain: typicality precision must be {k}×{k}")
        precision = np.stack([_finite_list(row, "typicality precision row", k) for row in rows])
        if not np.allclose(precision, precision.T, rtol=1e-6, atol=1e-9) \
                or np.linalg.eigvalsh(precision).min() < -1e-9:
            raise ForensicsError("domain: typicality precision must be symmetric positive semi-definite")
        limit = typ.get("limit")
        if not isinstance(limit, int | float) or isinstance(limit, bool) or not math.isfinite(limit) \
                or limit <= 0:
            raise ForensicsError(f"domain: typicality limit must be a positive number, not {limit!r:.40}")
        quantiles = typ.get("val_quantiles") or {}
        if not isinstance(quantiles, dict):
            raise ForensicsError("domain: val_quantiles must be a JSON object")
        extra = {key: data.get(key) or {} for key in ("intensity", "spectrum", "n")}
        if not all(isinstance(v, dict) for v in extra.values()):
            raise ForensicsError("domain: intensity, spectrum and n must be JSON objects")
        return cls(tuple(shape), mean=mean, precision=precision, limit=float(limit),
                   val_quantiles=quantiles, **extra)
