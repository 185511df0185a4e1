"""The hostile-file corpus: image files that decode oddly or not at all, and file-system oddities.

Built in a given folder with PIL, numpy and a tiny PNG chunk writer (no binary blobs in the
repository). ``tests/test_images.py`` checks :func:`forensics.images.read_image` on each of
:data:`CASES`; ``tests/test_hostile_cli.py`` hands :func:`build_corpus`'s folder to the
commands; the reliability benchmark (:mod:`benchmarks.reliability`) counts crashes on it.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from forensics.images import display_name


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(
    width: int,
    height: int,
    idat: bytes,
    *,
    depth: int = 8,
    color: int = 0,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    """A PNG from raw parts, so headers can lie about the pixel data."""
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    body = b"".join(extra)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


GRAY16 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5957  # 0 .. 65527
PALETTE = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
PAL_INDEX = np.array([[0, 1], [2, 0]], dtype=np.uint8)


def palette_png(transparent: bool) -> bytes:
    image = Image.fromarray(PAL_INDEX, mode="P")
    image.putpalette(PALETTE)
    return encode(image, "PNG", **({"transparency": 1} if transparent else {}))


def rgb16_png() -> bytes:
    pixels = np.array([[[0, 32896, 65535]]], dtype=">u2")  # 0, 128*257, 255*257
    rows = b"\x00" + pixels.tobytes()
    return raw_png(1, 1, zlib.compress(rows), depth=16, color=2)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return encode(Image.fromarray(noise(20, 40)), "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.full((8, 8), value, np.uint8), mode="L") for value in (10, 200, 90)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def zlib_bomb() -> bytes:
    """8000 x 8000 gray, a 64 MB zero stream compressed to ~60 kB."""
    compressor = zlib.compressobj(9)
    row = bytes(8001)
    stream = b"".join(compressor.compress(row) for _ in range(8000)) + compressor.flush()
    return raw_png(8000, 8000, stream)


def text_bomb() -> bytes:
    """A zTXt chunk inflating to 200 MB."""
    text = b"k\x00\x00" + zlib.compress(bytes(200_000_000), 9)
    return raw_png(4, 1, zlib.compress(b"\x00" + bytes(4)), extra=(chunk(b"zTXt", text),))


def giant_text() -> bytes:
    """A 5 MB tEXt chunk (over PngImagePlugin.MAX_TEXT_CHUNK); the pixels are fine."""
    text = chunk(b"tEXt", b"comment\x00" + b"a" * 5_000_000)
    return raw_png(4, 1, zlib.compress(b"\x00" + bytes([7] * 4)), extra=(text,))


RNG_BYTES = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
JPEG = encode(Image.fromarray(noise(64, 64)), "JPEG", quality=90)
PNG = encode(Image.fromarray(noise(64, 64)), "PNG")

Outcome = tuple[int, ...] | str  # a decoded shape, or a fragment of the error message

# name -> (file name, bytes, expected outcome)
CASES: dict[str, tuple[str, Callable[[], bytes], Outcome]] = {
    "zero-byte": ("empty.png", lambda: b"", "empty file"),
    "truncated-png": ("cut.png", lambda: PNG[: len(PNG) // 2], "truncated image"),
    "truncated-jpeg": ("cut.jpg", lambda: JPEG[: len(JPEG) // 2], "truncated image"),
    "random-bytes": ("noise.png", lambda: RNG_BYTES, "not a recognised image"),
    "text-file": (
        "notes.png",
        lambda: b"just some notes\nnot an image\n" * 20,
        "not a recognised image",
    ),
    "eps-named-png": (
        "ghost.png",
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n",
        "not a recognised image",
    ),
    "bomb-50000x50000": (
        "bomb.png",
        lambda: raw_png(50_000, 50_000, zlib.compress(bytes(9))),
        "more than the limit of 40000000",
    ),
    "bomb-zlib-stream": (
        "zbomb.png",
        zlib_bomb,
        "8000x8000 = 64000000 pixels, more than the limit of 40000000",
    ),
    "bomb-ztxt-chunk": ("ztext.png", text_bomb, "MAX_TEXT_CHUNK"),
    "giant-text-chunk": ("text.png", giant_text, (1, 4, 1)),
    "gray-16bit": ("g16.png", lambda: encode(Image.fromarray(GRAY16), "PNG"), (3, 4, 1)),
    "rgb-16bit": ("rgb16.png", rgb16_png, (1, 1, 3)),
    "palette": ("pal.png", lambda: palette_png(False), (2, 2, 3)),
    "palette-transparent": ("palt.png", lambda: palette_png(True), (2, 2, 3)),
    "gray-alpha-LA": (
        "la.png",
        lambda: encode(
            Image.fromarray(np.array([[[200, 255], [200, 0], [200, 128]]], np.uint8), "LA"), "PNG"
        ),
        (1, 3, 1),
    ),
    "rgba": (
        "rgba.png",
        lambda: encode(
            Image.fromarray(np.array([[[100, 200, 50, 255], [100, 200, 50, 0]]], np.uint8), "RGBA"),
            "PNG",
        ),
        (1, 2, 3),
    ),
    "gray-tRNS": (
        "ltrns.png",
        lambda: encode(Image.fromarray(np.array([[9, 200]], np.uint8)), "PNG", transparency=200),
        (1, 2, 1),
    ),
    "cmyk-jpeg": (
        "cmyk.jpg",
        lambda: encode(Image.new("CMYK", (6, 5), (0, 255, 255, 0)), "JPEG"),
        (5, 6, 3),
    ),
    "exif-rotated-jpeg": ("rot.jpg", exif_rotated_jpeg, (40, 20, 3)),
    "animated-gif": ("anim.gif", animated_gif, (8, 8, 3)),
    "webp": (
        "img.webp",
        lambda: encode(Image.fromarray(noise(9, 7)), "WEBP", lossless=True),
        (9, 7, 3),
    ),
    "bmp": ("img.bmp", lambda: encode(Image.fromarray(noise(5, 3)), "BMP"), (5, 3, 3)),
    "tiff": ("img.tif", lambda: encode(Image.fromarray(noise(4, 6, 1)), "TIFF"), (4, 6, 1)),
    "pgm": ("img.pgm", lambda: encode(Image.fromarray(noise(4, 6, 1)), "PPM"), (4, 6, 1)),
    "ppm": ("img.ppm", lambda: encode(Image.fromarray(noise(3, 5)), "PPM"), (3, 5, 3)),
    "pgm-16bit-dark": ("dark16.pgm", lambda: b"P5\n2 1\n65535\n\x00\x00\x00\xc8", (1, 2, 1)),
    "pgm-plain-comment-flood": ("plain.pgm", lambda: b"P2\n1 1\n255\n" + b"#\n" * 500_000 + b"7\n",
                                "netpbm variant not read"),
    "ppm-16bit-colour": ("rgb16.ppm", lambda: b"P6\n1 1\n65535\n\x00\x01\x00\x02\x00\x03",
                         "netpbm variant not read"),
    "pgm-header-comment-flood": ("flood.pgm", lambda: b"P5\n" + b"#\n" * 500_000 + b"1 1\n255\n\x07",
                                 "netpbm header cut short or longer than"),
    "pfm-float": ("img.pfm.pgm", lambda: b"Pf\n1 1\n-1.0\n\x00\x00\x80\x3f",
                  "netpbm variant not read"),
    "pgm-bomb-header": ("bomb.pgm", lambda: b"P5\n50000 50000\n255\n" + b"\0" * 64,
                        "more than the limit"),
    "one-pixel": ("dot.png", lambda: encode(Image.fromarray(noise(1, 1, 1)), "PNG"), (1, 1, 1)),
    "wide-10000x1": (
        "wide.png",
        lambda: encode(Image.fromarray(noise(1, 10_000)), "PNG"),
        (1, 10_000, 3),
    ),
    "tall-1x10000": (
        "tall.png",
        lambda: encode(Image.fromarray(noise(10_000, 1, 1)), "PNG"),
        (10_000, 1, 1),
    ),
    "png-missing-iend": ("noend.png", lambda: PNG[:-12], (64, 64, 3)),
    "non-utf8-name-good": (b"bad\xff\xfename.png", lambda: PNG, (64, 64, 3)),
    "non-utf8-name-bad": (b"bad\xff\xfecut.png", lambda: PNG[:100], "truncated image"),
    "newline-in-name": ("evil\nname\r.png", lambda: b"junk", "not a recognised image"),
}


#: cases only a file system can make: name → (file name, fragment of the skip reason)
FILESYSTEM: dict[str, tuple[str, str]] = {
    "directory-named-png": ("folder.png", "is a directory"),
    "symlink-loop": ("loop.png", "symbolic link loop"),
    "dangling-symlink": ("dangling.png", "dangling symbolic link"),
    "fifo": ("pipe.png", "not a regular file"),
}


def _make_special(folder: Path, case: str) -> None:
    path = folder / FILESYSTEM[case][0]
    if case == "directory-named-png":
        path.mkdir()
        (path / "inside.txt").write_text("not an image")  # not a suffix we read
    elif case == "symlink-loop":
        os.symlink(path.name, path)
    elif case == "dangling-symlink":
        os.symlink("no-such-target.png", path)
    else:
        os.mkfifo(path)


def build_corpus(folder: Path, *, valid: bool = True, bad: bool = True,
                 skip: tuple[str, ...] = ()) -> dict[str, tuple[str, object]]:
    """Write the hostile corpus into ``folder``.

    Returns ``{case: (displayed path, expected)}``; ``expected`` is a decoded shape for a
    valid image or a fragment of the skip reason for a bad one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[str, object]] = {}
    for case, (name, build, expected) in CASES.items():
        if case in skip or (isinstance(expected, str) and not bad) or \
                (not isinstance(expected, str) and not valid):
            continue
        raw = os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) \
            else os.fsencode(folder / name)
        with open(raw, "wb") as handle:
            handle.write(build())
        made[case] = (display_name(raw), expected)
    if bad:
        for case, (name, fragment) in FILESYSTEM.items():
            if case not in skip:
                _make_special(folder, case)
                made[case] = (display_name(folder / name), fragment)
    return made
