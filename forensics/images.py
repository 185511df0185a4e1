"""Reading, conforming and writing images, safely.

Every image that enters the toolkit from disk goes through :func:`read_image`
and every image that enters a model goes through :func:`conform`, so training
and detection never preprocess differently.

Conform policy (documented once, used everywhere): an image of another size is
resized so its *shorter* side equals the target (area interpolation when
shrinking, bilinear when growing), then centre-cropped to the target square;
RGB becomes grayscale by ITU-R BT.601 luma and grayscale becomes RGB by
repeating the channel.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from forensics.errors import ForensicsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
#: Images declaring more pixels than this are refused before decoding.
MAX_PIXELS = int(os.environ.get("FORENSICS_MAX_PIXELS", 40_000_000))
#: Files larger than this many bytes are refused before reading.
MAX_BYTES = int(os.environ.get("FORENSICS_MAX_BYTES", 200 * 1024 * 1024))


class ImageReadError(ForensicsError):
    """One file could not be read as an image; the message names the file."""


def _display(path: Path) -> str:
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


def read_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one image file to ``uint8`` of shape ``(H, W, C)`` with C in {1, 3}.

    Handles 16-bit, palette, alpha (composited on black), CMYK, EXIF rotation
    and animated files (first frame). Raises :class:`ImageReadError` with a
    one-line reason for anything else.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    name = _display(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        info = path.stat()
    except OSError as error:
        raise ImageReadError(f"{name}: cannot access ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError(f"{name}: not a regular file")
    if info.st_size == 0:
        raise ImageReadError(f"{name}: empty file")
    if info.st_size > MAX_BYTES:
        raise ImageReadError(f"{name}: file larger than the {MAX_BYTES}-byte limit")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageReadError(f"{name}: cannot read ({error.strerror or error})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limit:
                raise ImageReadError(
                    f"{name}: {width}x{height} pixels exceeds the limit of {limit} "
                    "(set FORENSICS_MAX_PIXELS to change it)"
                )
            if width < 1 or height < 1:
                raise ImageReadError(f"{name}: image has no pixels")
            image.seek(0)
            image = ImageOps.exif_transpose(image) or image
            array = _to_uint8(image)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{name}: not a readable image ({type(error).__name__})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, IndexError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageReadError(f"{name}: corrupt or truncated image ({reason})") from None
    return array


def _to_uint8(image) -> np.ndarray:
    """Bring any PIL mode to uint8 L or RGB (alpha composited on black)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        raw = np.asarray(image, dtype=np.float64)
        top = 65535.0 if raw.max(initial=0) > 255 else 255.0
        array = np.clip(raw / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return array[:, :, None]
    if mode == "F":
        raw = np.nan_to_num(np.asarray(image, dtype=np.float64))
        return np.clip(raw * (255.0 if raw.max(initial=0) <= 1 else 1.0), 0, 255).astype(
            np.uint8
        )[:, :, None]
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8)[:, :, None]
    if mode in ("LA", "La", "PA", "RGBA", "RGBa", "P") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        rgb = rgba[:, :, :3] * (rgba[:, :, 3:] / 255.0)
        array = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        if mode in ("LA", "La"):
            return array[:, :, :1]
        return array
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Bring ``(H, W, C)`` uint8 images to ``(size, size, channels)`` (see module doc)."""
    import cv2

    image = images
    height, width = image.shape[:2]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        new_h = max(size, round(height * scale))
        new_w = max(size, round(width * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        if image.ndim == 2:
            image = image[:, :, None]
        top = (new_h - size) // 2
        left = (new_w - size) // 2
        image = image[top : top + size, left : left + size]
    if image.shape[2] != channels:
        if channels == 1:
            image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
        else:
            image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def to_float(batch_hwc: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` uint8 → ``(N, C, H, W)`` float32 in [0, 1]."""
    return np.ascontiguousarray(batch_hwc.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_uint8(batch_nchw) -> np.ndarray:
    """``(N, C, H, W)`` float in [0, 1] → ``(N, H, W, C)`` uint8 (round half up)."""
    array = np.asarray(batch_nchw, dtype=np.float32)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def png_bytes(image_hwc: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Encode one uint8 image as PNG, with optional ``tEXt`` chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    mode = "L" if image_hwc.shape[2] == 1 else "RGB"
    pil = Image.fromarray(image_hwc[:, :, 0] if mode == "L" else image_hwc, mode=mode)
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (provenance tags), or {} when there are none."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except Exception:  # a tag is reported, never required
        return {}


def iter_image_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Expand files and folders (recursively, sorted) into image paths.

    Yields ``(path, problem)``; ``problem`` is a one-line reason when the path
    cannot be used (missing, unreadable folder), else ``None``. Symlink loops
    are not followed.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path, onerror=None, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_SUFFIXES):
                        yield Path(root) / name, None
                for name in dirs:
                    if name.lower().endswith(IMAGE_SUFFIXES):
                        yield Path(root) / name, f"{_display(Path(root) / name)}: is a directory"
        elif path.exists() or path.is_symlink():
            yield path, None
        else:
            yield path, f"{_display(path)}: no such file or directory"


def save_grid(images, path: str | Path, *, nrow: int = 10, title: str | None = None) -> None:
    """Write a grid of ``(N, C, H, W)`` images in [0, 1] as a PNG (atomically)."""
    import torch
    from torchvision.utils import make_grid

    from forensics.atomic import write_bytes

    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32))
    grid = make_grid(tensor, nrow=nrow, padding=2, pad_value=0.5)
    array = to_uint8(grid[None].numpy())[0]
    if array.shape[2] == 3 and tensor.shape[1] == 1:
        array = array[:, :, :1]
    write_bytes(path, png_bytes(array, {"forensics:title": title} if title else None))
