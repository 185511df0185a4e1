"""Hostile-input tests for forensics.images: every file decodes sensibly or is refused.

The corpus is built here, in ``tmp_path``, with PIL, numpy and a tiny PNG
chunk writer (no binary blobs in the repository). Each case states its exact
outcome: a decoded shape (and values where they are known) or an
ImageReadError whose single-line message names the file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from benchmarks.hostile import (
    CASES,
    GRAY16,
    JPEG,
    PAL_INDEX,
    PALETTE,
    PNG,
    animated_gif,
    encode,
    exif_rotated_jpeg,
    noise,
    palette_png,
    raw_png,
    rgb16_png,
    zlib_bomb,
)
from forensics.errors import ForensicsError
from forensics.images import (
    ImageReadError,
    PassedOver,
    conform,
    display_name,
    iter_image_files,
    png_bytes,
    png_text,
    read_image,
    to_float,
    to_uint8,
)


def _write(tmp_path: Path, name: str | bytes, data: bytes) -> str | bytes:
    """Write ``data`` under ``tmp_path`` and return the path (bytes for a bytes name)."""
    path = os.path.join(os.fsencode(tmp_path), name) if isinstance(name, bytes) else str(tmp_path / name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def assert_refused(path: str | bytes | Path, fragment: str, **kwargs) -> ImageReadError:
    """read_image raises ImageReadError: one printable line naming the file and the reason."""
    with pytest.raises(ImageReadError) as caught:
        read_image(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.isprintable(), message
    message.encode("utf-8")  # valid UTF-8: no lone surrogates
    assert message.startswith(display_name(os.fsdecode(path)) + ": "), message
    assert fragment in message, message
    assert isinstance(caught.value, ForensicsError)
    return caught.value


def test_truncated_images_stay_errors():
    # Pillow would silently pad truncated files with gray if this were switched on.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_hostile_corpus(tmp_path, case):
    name, build, expected = CASES[case]
    path = _write(tmp_path, name, build())
    if isinstance(expected, str):
        assert_refused(path, expected)
        return
    image = read_image(path)
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    assert image.shape == expected
    for size, channels in ((28, 1), (32, 3)):
        out = conform(image, size, channels)
        assert out.shape == (size, size, channels) and out.dtype == np.uint8


# ------------------------------------------------------------ decoded values


def _decode(tmp_path: Path, case: str) -> np.ndarray:
    name, build, _ = CASES[case]
    return read_image(_write(tmp_path, name, build()))


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    expected = np.round(GRAY16 / 257.0).astype(np.uint8)[:, :, None]
    np.testing.assert_array_equal(_decode(tmp_path, "gray-16bit"), expected)


def test_16bit_rgb_is_scaled(tmp_path):
    np.testing.assert_array_equal(_decode(tmp_path, "rgb-16bit"), [[[0, 128, 255]]])


def test_netpbm_values_on_their_own_scale(tmp_path):
    """A 16-bit PGM is on the 0..65535 scale however dark (200 → 1, not 200); 8-bit ones and
    PPM as written."""
    np.testing.assert_array_equal(_decode(tmp_path, "pgm-16bit-dark"), [[[0], [1]]])
    name, build, _ = CASES["ppm"]
    image = read_image(_write(tmp_path, name, build()))
    from PIL import Image

    np.testing.assert_array_equal(image, np.asarray(Image.open(io.BytesIO(build()))))


def test_palette_colours(tmp_path):
    expected = np.array(PALETTE[:9], np.uint8).reshape(3, 3)[PAL_INDEX]
    np.testing.assert_array_equal(_decode(tmp_path, "palette"), expected)
    transparent = expected.copy()
    transparent[PAL_INDEX == 1] = 0  # index 1 is transparent: composited on black
    np.testing.assert_array_equal(_decode(tmp_path, "palette-transparent"), transparent)


def test_alpha_is_composited_on_black(tmp_path):
    np.testing.assert_array_equal(_decode(tmp_path, "gray-alpha-LA")[..., 0], [[200, 0, 100]])
    np.testing.assert_array_equal(_decode(tmp_path, "rgba"), [[[100, 200, 50], [0, 0, 0]]])
    np.testing.assert_array_equal(_decode(tmp_path, "gray-tRNS")[..., 0], [[9, 0]])


def test_cmyk_is_red(tmp_path):
    image = _decode(tmp_path, "cmyk-jpeg").astype(int)
    assert (image[..., 0] > 200).all() and (image[..., 1:] < 60).all()


def test_exif_rotation_is_applied(tmp_path):
    raw = Image.open(io.BytesIO(exif_rotated_jpeg()))
    assert raw.size == (40, 20)  # stored landscape, displayed portrait
    assert _decode(tmp_path, "exif-rotated-jpeg").shape == (40, 20, 3)


def test_animated_gif_gives_first_frame(tmp_path):
    assert (_decode(tmp_path, "animated-gif") == 10).all()


def test_bmp_is_lossless(tmp_path):
    np.testing.assert_array_equal(_decode(tmp_path, "bmp"), noise(5, 3))


# ------------------------------------------------------------- pixel limit


def test_pixel_limit_from_argument(tmp_path):
    path = _write(tmp_path, "small.png", encode(Image.fromarray(noise(20, 20)), "PNG"))
    assert_refused(path, "20x20 = 400 pixels, more than the limit of 399", max_pixels=399)
    assert read_image(path, max_pixels=400).shape == (20, 20, 3)


def test_pixel_limit_from_environment(tmp_path, monkeypatch):
    path = _write(tmp_path, "small.png", encode(Image.fromarray(noise(20, 20)), "PNG"))
    monkeypatch.setenv("FORENSICS_MAX_PIXELS", "100")
    assert_refused(path, "more than the limit of 100 (set FORENSICS_MAX_PIXELS")
    assert read_image(path, max_pixels=1000).shape == (20, 20, 3)  # the argument wins
    monkeypatch.setenv("FORENSICS_MAX_PIXELS", "lots")
    assert_refused(path, "FORENSICS_MAX_PIXELS='lots' is not a positive integer")
    with pytest.raises(ValueError):
        read_image(path, max_pixels=0)


def test_limit_above_pillows_hard_cap_is_explained(tmp_path):
    path = _write(tmp_path, "bomb.png", raw_png(50_000, 50_000, zlib.compress(bytes(9))))
    assert_refused(path, "Pillow's hard limit", max_pixels=10**10)


def _peak_rss_increase_mb(paths: list[str], max_pixels: int | None) -> int:
    """Peak-RSS growth (MB) of a fresh interpreter while it reads ``paths``."""
    # VmHWM (peak RSS of this address space) rather than ru_maxrss, which a child
    # process inherits from a bigger parent such as pytest.
    script = textwrap.dedent("""
        import sys
        import PIL.Image, PIL.PngImagePlugin  # imports are not the reader's cost
        from forensics.images import ImageReadError, read_image
        def peak_kib():
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("VmHWM:"))
            return int(line.split()[1])
        limit = None if sys.argv[1] == "None" else int(sys.argv[1])
        before = peak_kib()
        for path in sys.argv[2:]:
            try:
                read_image(path, max_pixels=limit)
            except ImageReadError:
                pass
        print((peak_kib() - before) // 1024)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(max_pixels), *paths],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return int(result.stdout)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_bombs_do_not_raise_peak_memory(tmp_path):
    """A 50,000 x 50,000 PNG and an 8000 x 8000 zlib bomb cost < 50 MB of peak RSS."""
    bomb = _write(tmp_path, "bomb.png", raw_png(50_000, 50_000, zlib.compress(bytes(9))))
    zbomb = _write(tmp_path, "zbomb.png", zlib_bomb())
    assert _peak_rss_increase_mb([bomb, zbomb], None) < 50
    # the measurement can see a decode: allowing the 64-megapixel image costs more
    assert _peak_rss_increase_mb([zbomb], 10**8) > 60


# ---------------------------------------------------- paths that are not files


def test_directory_named_like_an_image(tmp_path):
    folder = tmp_path / "x.png"
    folder.mkdir()
    assert_refused(folder, "is a directory")
    assert list(iter_image_files([tmp_path])) == [(folder, f"{folder}: is a directory")]


def test_passed_over_names_each_file_unambiguously(tmp_path):
    """The note of what a walk passed over quotes each name: a name holding ", " or a quote
    reads as one name, not two."""
    for name in ("a, b.txt", 'say "hi".txt', "z.txt"):
        (tmp_path / name).write_text("not an image")
    (tmp_path / "x.png").write_bytes(png_bytes(np.zeros((4, 4, 1), np.uint8)))
    passed = PassedOver()
    assert [p.name for p, _ in iter_image_files([tmp_path], passed)] == ["x.png"]
    line = passed.line()
    assert passed.count == 3 and line.isprintable()
    named = line.split(": ", 1)[1].split("; name a file")[0]
    assert json.loads(f"[{named}]") == [str(tmp_path / n) for n in ("a, b.txt", 'say "hi".txt', "z.txt")]
    # names read back from a file (a part header) may hold DEL or C1 controls: shown escaped,
    # still one valid JSON string each
    read_back = PassedOver.from_dict({"count": 2, "names": ["del\x7fname", "c1\x85name"]})
    line = read_back.line()
    assert line.isprintable()
    named = line.split(": ", 1)[1].split("; name a file")[0]
    assert json.loads(f"[{named}]") == ["del\\x7fname", "c1\\x85name"]


def test_symlink_loop_and_dangling_symlink(tmp_path):
    a, b, dangling = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "gone.png"
    a.symlink_to(b)
    b.symlink_to(a)
    dangling.symlink_to(tmp_path / "nowhere.png")
    assert_refused(a, "symbolic link loop")
    assert_refused(dangling, "dangling symbolic link")
    listed = dict(iter_image_files([a, dangling]))
    assert "symbolic link loop" in listed[a]
    assert "dangling symbolic link" in listed[dangling]
    # inside a walk they are listed (not followed) and read_image refuses them
    assert [p for p, problem in iter_image_files([tmp_path]) if problem is None] == [a, b, dangling]


def test_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert_refused(fifo, "not a regular file")
    assert png_text(fifo) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = Path(_write(tmp_path, "secret.png", PNG))
    path.chmod(0)
    try:
        assert_refused(path, "permission denied")
    finally:
        path.chmod(0o600)


def test_unlistable_folder_is_reported(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root lists folders whatever their mode")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert list(iter_image_files([tmp_path])) == [
            (locked, f"{locked}: cannot list folder (permission denied)")
        ]
    finally:
        locked.chmod(0o700)


def test_file_vanishes_between_listing_and_reading(tmp_path):
    _write(tmp_path, "keep.png", PNG)
    _write(tmp_path, "lost.png", PNG)
    listed = list(iter_image_files([tmp_path]))
    assert [(p.name, problem) for p, problem in listed] == [("keep.png", None), ("lost.png", None)]
    (tmp_path / "lost.png").unlink()
    assert read_image(listed[0][0]).shape == (64, 64, 3)
    assert_refused(listed[1][0], "no such file")


def test_missing_and_odd_paths():
    assert_refused("/nonexistent/x.png", "no such file or directory")
    assert_refused("nul\x00byte.png", "invalid file name")
    problems = dict(iter_image_files(["/nonexistent/x.png", "nul\x00byte.png"]))
    assert problems[Path("/nonexistent/x.png")] == "/nonexistent/x.png: no such file or directory"
    assert "invalid file name" in problems[Path("nul\x00byte.png")]


def test_non_utf8_names_are_listed_and_printable(tmp_path):
    path = _write(tmp_path, b"bad\xff.png", PNG)
    [(listed, problem)] = list(iter_image_files([os.fsencode(tmp_path)]))
    assert problem is None and os.fsencode(listed) == path
    assert read_image(listed).shape == read_image(path).shape == (64, 64, 3)
    assert "\\udcff" in display_name(listed) and display_name(listed).isprintable()


def test_png_text_round_trip_and_bomb(tmp_path):
    tagged = _write(tmp_path, "tag.png", png_bytes(noise(3, 3), {"forensics:by": "gan"}))
    assert png_text(tagged) == {"forensics:by": "gan"}
    bomb = _write(tmp_path, "zbomb.png", zlib_bomb())
    assert png_text(bomb) == {}  # refused, not decoded to look for trailing text
    assert png_text(tmp_path / "missing.png") == {}


# ------------------------------------------------------------------ conform


@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1),
        (1, 1, 3),
        (1, 10_000, 3),
        (10_000, 1, 1),
        (28, 28, 1),
        (32, 32, 3),
        (7, 300, 1),
        (64, 48, 3),
    ],
)
@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (1, 1)])
def test_conform_shapes(shape, size, channels):
    out = conform(noise(*shape[:2], channels=3)[:, :, : shape[2]].copy(), size, channels)
    assert out.shape == (size, size, channels) and out.dtype == np.uint8


def test_conform_keeps_constant_images_constant():
    assert (conform(np.full((1, 5000, 3), 77, np.uint8), 32, 1) == 77).all()
    assert (conform(np.full((3, 1, 1), 9, np.uint8), 28, 3) == 9).all()


def test_conform_rejects_bad_input():
    for bad in (
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 1), np.uint8),
    ):
        with pytest.raises(ValueError):
            conform(bad, 8, 1)
    with pytest.raises(ValueError):
        conform(np.zeros((4, 4, 1), np.uint8), 0, 1)


# ---------------------------------------------------------- property tests

PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _read_or_refuse(path: Path) -> None:
    try:
        image = read_image(path)
    except ImageReadError as error:
        message = str(error)
        assert "\n" not in message and message.isprintable()
        assert message.startswith(f"{path}: ")
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (1, 3)


@PROPERTY
@given(data=st.binary(max_size=4096))
def test_any_bytes_decode_or_refuse(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    _read_or_refuse(path)


@PROPERTY
@given(
    data=st.sampled_from([PNG, JPEG, animated_gif(), palette_png(True), rgb16_png()]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10**6),
)
def test_mutated_images_decode_or_refuse(tmp_path, data, edits, cut):
    buffer = bytearray(data[: max(1, cut % (len(data) + 1))])
    for position, value in edits:
        buffer[position % len(buffer)] = value
    path = tmp_path / "mutant.png"
    path.write_bytes(bytes(buffer))
    _read_or_refuse(path)


@settings(max_examples=100, deadline=None)
@given(
    height=st.integers(1, 64),
    width=st.integers(1, 64),
    channels_in=st.sampled_from([1, 3]),
    size=st.integers(1, 48),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_conform_any_shape(height, width, channels_in, size, channels, seed):
    image = noise(height, width, 3, seed)[:, :, :channels_in].copy()
    out = conform(image, size, channels)
    assert out.shape == (size, size, channels) and out.dtype == np.uint8


@settings(max_examples=100, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3])),
    seed=st.integers(0, 2**16),
)
def test_float_round_trip_is_exact(shape, seed):
    batch = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    floats = to_float(batch)
    assert floats.dtype == np.float32 and floats.min() >= 0 and floats.max() <= 1
    np.testing.assert_array_equal(to_uint8(floats), batch)


def test_float_round_trip_every_value():
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(to_uint8(to_float(every)), every)
