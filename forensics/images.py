"""Reading, conforming and writing images, safely.

Every image that enters the toolkit from disk goes through :func:`read_image`
and every image that enters a model goes through :func:`conform`, so training
and detection never preprocess differently.

Files come from strangers, so reading never crashes, hangs or blows memory:
anything that is not a decodable image within the limits raises
:class:`ImageReadError` with a one-line message naming the file. Files are
opened non-blocking and checked to be regular files (a FIFO named ``x.png``
cannot hang a run), only a few well-known formats are parsed, and an image
declaring more than the pixel limit (``FORENSICS_MAX_PIXELS``, default
40,000,000, or the ``max_pixels`` argument) is refused before it is decoded.

Conform policy (documented once, used everywhere): an image of another size is
centre-cropped to a square on its longer side, then resized to the target
(area interpolation when shrinking, bilinear when growing) — the same as
resizing the shorter side to the target and centre-cropping, up to sub-pixel
rounding, but memory never grows with the aspect ratio. RGB becomes grayscale
by ITU-R BT.601 luma and grayscale becomes RGB by repeating the channel.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from forensics.errors import ForensicsError
from forensics.text import capped_chunks, printable

PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]

#: what a folder walk reads; a file named on the command line is read whatever its suffix
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff",
                  ".pgm", ".ppm", ".pbm", ".pnm")
#: The only formats Pillow is allowed to parse (no EPS/Ghostscript, no exotic parsers); PPM is
#: netpbm's PBM / PGM / PPM (the format of many digit and face sets)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF", "PPM")  # JPEG covers MPO
#: Default limit: images declaring more pixels are refused before decoding.
#: ``FORENSICS_MAX_PIXELS`` (read at each call) or ``max_pixels=`` override it.
MAX_PIXELS = 40_000_000
#: Default limit: files larger than this many bytes are refused before reading.
#: ``FORENSICS_MAX_BYTES`` (read at each call) overrides it.
MAX_BYTES = 200 * 1024 * 1024

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO or device must not block the open
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageReadError(ForensicsError):
    """One file could not be read as an image; the message names the file."""


def _as_path(raw: PathArg) -> Path:
    """A Path for str, bytes (undecodable bytes kept by surrogateescape) or PathLike."""
    return Path(os.fsdecode(raw))


_printable = printable  # one printable line: control characters and lone surrogates escaped


def display_name(path: str | os.PathLike) -> str:
    """The file name as one printable UTF-8 line, whatever bytes it is made of."""
    return _printable(os.fsdecode(path))


def _env_limit(variable: str, default: int, name: str) -> int:
    value = os.environ.get(variable)
    if value is None or not value.strip():
        return default
    try:
        limit = int(value.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ImageReadError(
            f"{name}: {variable}={_printable(repr(value))} is not a positive integer"
        )
    return limit


def _os_reason(error: OSError | ValueError, path: Path) -> str:
    """A short reason for a failed open or stat."""
    if isinstance(error, ValueError):  # e.g. an embedded NUL byte
        return f"invalid file name ({_printable(str(error))})"
    code = error.errno
    if code == errno.ENOENT:
        return "dangling symbolic link" if os.path.islink(path) else "no such file or directory"
    if code == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EISDIR:
        return "is a directory"
    return f"cannot open ({_printable(error.strerror or type(error).__name__).lower()})"


def read_image(path: PathArg, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one image file to ``uint8`` of shape ``(H, W, C)`` with C in {1, 3}.

    Handles 16-bit (scaled to 8 bits), palette, alpha (composited on black),
    CMYK, EXIF rotation and animated files (first frame). Raises
    :class:`ImageReadError` with a one-line reason naming the file for
    anything else, including images over the pixel limit (``max_pixels``, else
    ``FORENSICS_MAX_PIXELS``, else :data:`MAX_PIXELS`), which are refused
    before decoding.
    """
    return _read(path, max_pixels, None)


def read_image_with_text(path: PathArg, *, max_pixels: int | None = None
                         ) -> tuple[np.ndarray, dict[str, str]]:
    """:func:`read_image` and the PNG text chunks (provenance tags) in one read of the file.

    The text is what :func:`png_text` finds; {} for other formats.
    """
    text: dict[str, str] = {}
    return _read(path, max_pixels, text), text


def _read(path: PathArg, max_pixels: int | None, text: dict[str, str] | None) -> np.ndarray:
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) < 1):
        raise ValueError(f"max_pixels must be a positive integer, not {max_pixels!r}")
    path = _as_path(path)
    name = display_name(path)
    limit = (
        int(max_pixels)
        if max_pixels is not None
        else _env_limit("FORENSICS_MAX_PIXELS", MAX_PIXELS, name)
    )
    max_bytes = _env_limit("FORENSICS_MAX_BYTES", MAX_BYTES, name)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError) as error:
        raise ImageReadError(f"{name}: {_os_reason(error, path)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageReadError(f"{name}: is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ImageReadError(f"{name}: not a regular file")
        if info.st_size == 0:
            raise ImageReadError(f"{name}: empty file")
        if info.st_size > max_bytes:
            raise ImageReadError(
                f"{name}: {info.st_size} bytes exceeds the limit of {max_bytes} bytes "
                "(set FORENSICS_MAX_BYTES to change it)"
            )
        handle = os.fdopen(fd, "rb")
        fd = -1  # the handle owns it now
    except OSError as error:
        raise ImageReadError(f"{name}: {_os_reason(error, path)}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    with handle:
        return _decode(handle, name, limit, text)


def _decode(handle: IO[bytes], name: str, limit: int, text: dict[str, str] | None = None) -> np.ndarray:
    """Decode an open file, refusing it before decoding when over ``limit`` pixels.

    ``text``, when given, receives the PNG's text chunks, read in the same pass.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    _check_netpbm_header(handle, name)
    try:
        with warnings.catch_warnings():
            # Pillow's DecompressionBombWarning: our own limit decides, below.
            warnings.simplefilter("ignore")
            with Image.open(handle, formats=IMAGE_FORMATS) as image:
                width, height = image.size
                _check_pixels(name, width * height, limit, f"{width}x{height} = ")
                if width < 1 or height < 1:
                    raise ImageReadError(f"{name}: image has no pixels")
                if image.format == "PPM":
                    _check_netpbm(image, name)
                image.seek(0)  # animated: the first frame
                ImageOps.exif_transpose(image, in_place=True)  # no copy of the pixels
                array = _to_uint8(image)
                if text is not None and image.format == "PNG":
                    text.update(_text_chunks(image))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        formats = ", ".join(IMAGE_FORMATS)
        raise ImageReadError(f"{name}: not a recognised image ({formats})") from None
    except Image.DecompressionBombError as error:
        # Pillow's own hard limit fired inside Image.open, before we saw the size.
        found = _BOMB_PIXELS.search(str(error))
        pixels = int(found.group(1)) if found else None
        if pixels is not None and pixels > limit:
            _check_pixels(name, pixels, limit, "")
        hard = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageReadError(
            f"{name}: image declares {pixels or 'too many'} pixels, more than Pillow's hard "
            f"limit of {hard} (raise PIL.Image.MAX_IMAGE_PIXELS to allow it)"
        ) from None
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode the image") from None
    except Exception as error:  # any parser failure on a stranger's file is a bad file
        text = str(error).strip()
        reason = _printable(text.splitlines()[0]) if text else type(error).__name__
        kind = "truncated" if "truncated" in reason.lower() else "corrupt"
        raise ImageReadError(f"{name}: {kind} image ({reason})") from None
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ImageReadError(f"{name}: unsupported image layout {array.shape} {array.dtype}")
    return array


NETPBM_REFUSED = ("netpbm variant not read (only binary P4, P5 and P6 at 8 bits, P5 at 16; "
                  "not the plain-text ones, other maxvals or PFM)")
#: a netpbm header (magic, width, height, maxval, comments between) must end within this many
#: bytes: Pillow reads it a byte at a time in Python
NETPBM_HEADER_BYTES = 4096


def _check_netpbm_header(handle: IO[bytes], name: str) -> None:
    """Refuse a netpbm file whose header does not end within :data:`NETPBM_HEADER_BYTES`
    (a flood of comments would hold Pillow's parser for seconds per megabyte)."""
    head = handle.read(NETPBM_HEADER_BYTES)
    handle.seek(0)
    if len(head) < 2 or head[:1] != b"P" or head[1:2] not in b"123456":
        return
    if head[1:2] in b"123":  # plain text: refused whatever follows (see _check_netpbm)
        raise ImageReadError(f"{name}: {NETPBM_REFUSED}")
    needed = 3 if head[1:2] in b"14" else 4  # P1/P4 have no maxval
    tokens = re.sub(rb"#[^\r\n]*", b" ", head).split()
    # the header's tokens, the last one ended by whitespace, all inside the window
    if not (len(tokens) > needed or (len(tokens) == needed and head[-1:].isspace())):
        raise ImageReadError(f"{name}: netpbm header cut short or longer than "
                             f"{NETPBM_HEADER_BYTES} bytes (comments?); not read")


def _check_netpbm(image, name: str) -> None:
    """Only the netpbm variants Pillow decodes in C, a copy of the bytes: binary P4, P5 and P6
    at 8 bits, P5 at 16. The plain-text P1–P3, other maxvals and 16-bit P6 go through a
    decoder in Python, a pixel or a comment at a time (a 1 MB file of comments held a core
    for minutes), and the same parser's PFM and PIL's own test formats are no netpbm."""
    raw = bool(image.tile) and image.tile[0][0] == "raw"
    if not raw or image.get_format_mimetype() == "image/x-portable-anymap":
        raise ImageReadError(f"{name}: {NETPBM_REFUSED}")


def _text_chunks(image) -> dict[str, str]:
    """A decoded PNG's text chunks (those after the pixels too); {} when they cannot be read."""
    try:
        return capped_chunks(getattr(image, "text", {}))
    except Exception:  # a tag is reported, never required: the pixels are still good
        return {}


def _check_pixels(name: str, pixels: int, limit: int, detail: str) -> None:
    if pixels > limit:
        raise ImageReadError(
            f"{name}: image declares {detail}{pixels} pixels, more than the limit of {limit} "
            "(set FORENSICS_MAX_PIXELS or pass max_pixels to change it)"
        )


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_uint8(image) -> np.ndarray:
    """Bring any PIL mode to uint8 L or RGB (alpha composited on black)."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:  # always on the 0..65535 scale
        raw = np.asarray(image).astype(np.uint32)
        return ((raw * 255 + 32767) // 65535).astype(np.uint8)[:, :, None]
    if mode == "I":  # 32-bit integers: 8- or 16-bit data widened by the decoder
        raw = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        # a netpbm image in mode I is 16-bit (maxval 65535): dark ones too
        if raw.max(initial=0) > 255 or image.format == "PPM":
            raw = (raw * 255 + 32767) // 65535
        return raw.astype(np.uint8)[:, :, None]
    if mode == "F":
        raw = np.nan_to_num(np.asarray(image, dtype=np.float32), posinf=255.0, neginf=0.0)
        scale = 255.0 if raw.max(initial=0) <= 1 else 1.0
        return np.clip(raw * scale + 0.5, 0, 255).astype(np.uint8)[:, :, None]
    transparent = "transparency" in image.info
    if mode in ("LA", "La") or (mode in ("1", "L") and transparent):
        # Premultiplied alpha is exactly "composited on black" (rounded).
        gray = image.convert("LA").convert("La") if mode != "La" else image
        return np.ascontiguousarray(np.asarray(gray, dtype=np.uint8)[:, :, :1])
    if mode == "L":
        return np.asarray(image, dtype=np.uint8)[:, :, None]
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)[:, :, None]
    if mode in ("PA", "RGBA", "RGBa") or transparent:
        rgba = image.convert("RGBA").convert("RGBa") if mode != "RGBa" else image
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8)[:, :, :3])
    return np.asarray(image if mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


@functools.cache
def opencv():
    """OpenCV with its thread pool off, the one way the toolkit imports it.

    A forked process (a DataLoader worker) inherits a started OpenCV pool without
    its threads and hangs in the next call that touches it; images of this size
    gain nothing from threads anyway. Call this before any other use of cv2.
    """
    import cv2

    cv2.setNumThreads(1)
    return cv2


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Bring one ``(H, W, C)`` uint8 image to ``(size, size, channels)`` (see module doc).

    ``C`` may be 1 or 3 (a 2-D array counts as one channel) and ``H`` or ``W``
    may be as small as 1. Raises ``ValueError`` for anything else.
    """
    cv2 = opencv()
    image = np.asarray(images)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(
            f"conform needs a uint8 (H, W, 1|3) image, not {image.shape} {image.dtype}"
        )
    height, width = image.shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"conform needs a non-empty image, not {image.shape}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}")
    size = int(size)
    if (height, width) != (size, size):
        # Crop first: memory stays within the input's, whatever its aspect ratio.
        side = min(height, width)
        top = (height - side) // 2
        left = (width - side) // 2
        image = image[top : top + side, left : left + side]
        if side != size:
            interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            image = cv2.resize(
                np.ascontiguousarray(image), (size, size), interpolation=interpolation
            )
            if image.ndim == 2:
                image = image[:, :, None]
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
    array = np.nan_to_num(np.asarray(batch_nchw, dtype=np.float32), nan=0.0)
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


def png_text(path: PathArg, *, max_pixels: int | None = None) -> dict[str, str]:
    """The text chunks of a PNG (provenance tags), or {} when there are none.

    Opened as safely as :func:`read_image` (non-blocking, regular files only);
    an image over the pixel limit yields {} rather than being decoded, since
    Pillow decodes the pixels to find text chunks placed after them.
    """
    from PIL import Image

    path = _as_path(path)
    try:
        limit = (
            int(max_pixels)
            if max_pixels is not None
            else _env_limit("FORENSICS_MAX_PIXELS", MAX_PIXELS, display_name(path))
        )
        fd = os.open(path, _OPEN_FLAGS)
    except (ImageReadError, OSError, ValueError):
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(handle, formats=("PNG",)) as image:
                    if image.size[0] * image.size[1] > limit:
                        return {}
                    return capped_chunks(getattr(image, "text", {}))
    except Exception:  # a tag is reported, never required
        return {}
    finally:
        if fd >= 0:
            os.close(fd)


class PassedOver:
    """What a folder walk leaves unread — files without an image suffix, links to folders
    (never followed) — kept bounded: the count and the first :attr:`NAMED` display names."""

    NAMED = 3

    def __init__(self, count: int = 0, names: Iterable[str] = ()) -> None:
        self.count = count
        self.names = list(names)[: self.NAMED]

    def add(self, path: Path) -> None:
        self.count += 1
        if len(self.names) < self.NAMED:
            self.names.append(display_name(path))

    def to_dict(self) -> dict:
        return {"count": self.count, "names": self.names}

    @classmethod
    def from_dict(cls, record: object) -> PassedOver:
        """From :meth:`to_dict`'s record as a file holds it (a part's header): anything
        malformed counts as nothing passed over."""
        if not isinstance(record, dict):
            return cls()
        count, names = record.get("count"), record.get("names")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return cls()
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        return cls(count, names[:count])

    def line(self) -> str | None:
        """The one line that says so (None when nothing was passed over); names are data."""
        if not self.count:
            return None
        more = f" and {self.count - len(self.names)} more" if self.count > len(self.names) else ""
        # each name, made printable, then quoted as a JSON string: a name holding ", " or a
        # quote still reads as one, and the quoted form stays valid JSON (and printable: the
        # line needs no escaping of its own)
        named = ", ".join(json.dumps(printable(name), ensure_ascii=False) for name in self.names)
        return (f"{self.count} file(s) in the folders not read (no image suffix of "
                f"{' '.join(IMAGE_SUFFIXES)}, or a link to a folder): "
                f"{named}{more}; name a file to read it whatever its suffix")


def iter_image_files(paths: Iterable[PathArg],
                     passed_over: PassedOver | None = None) -> Iterator[tuple[Path, str | None]]:
    """Expand files and folders (recursively, sorted) into image paths.

    Yields ``(path, problem)``; ``problem`` is a one-line reason naming the
    path when it cannot be used (missing, dangling or looping symlink, an
    unreadable folder, a folder with an image suffix), else ``None``. Paths
    may be bytes (undecodable names are kept via surrogateescape). Symlinks to
    folders are not followed inside a walk. A ``None`` problem promises
    nothing: the file can still vanish or be bad; :func:`read_image` says so.
    ``passed_over``, when given, counts what inside the walked folders the walk does not
    read (no suffix of :data:`IMAGE_SUFFIXES`; links to folders), so a caller can say so.
    """
    for raw in paths:
        path = _as_path(raw)
        try:
            info = os.stat(path)
        except (OSError, ValueError) as error:
            yield path, f"{display_name(path)}: {_os_reason(error, path)}"
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(path, passed_over)
        else:
            yield path, None


def _walk(top: Path, passed_over: PassedOver | None) -> Iterator[tuple[Path, str | None]]:
    errors: list[OSError] = []

    def problems() -> Iterator[tuple[Path, str]]:
        while errors:
            error = errors.pop(0)
            where = Path(os.fsdecode(error.filename)) if error.filename else top
            reason = _os_reason(error, where)
            yield where, f"{display_name(where)}: cannot list folder ({reason})"

    for root, dirs, files in os.walk(top, onerror=errors.append, followlinks=False):
        yield from problems()
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                yield Path(root) / name, None
            elif passed_over is not None:
                passed_over.add(Path(root) / name)
        for name in dirs:
            if name.lower().endswith(IMAGE_SUFFIXES):
                yield Path(root) / name, f"{display_name(Path(root) / name)}: is a directory"
            elif passed_over is not None and os.path.islink(Path(root) / name):
                passed_over.add(Path(root) / name)
    yield from problems()


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
