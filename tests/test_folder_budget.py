"""A folder data set of huge images: a side cap and a total budget, and it says which size it chose."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.hostile import raw_png
from forensics import data
from forensics.app.cli import app
from forensics.images import conform, png_bytes

pytestmark = pytest.mark.usefixtures("one_thread")


def huge_pngs(folder: Path, n: int, side: int) -> Path:
    """``n`` gray side×side PNGs with a vertical ramp (small files: rows compress)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        compressor = zlib.compressobj(6)
        stream = b"".join(compressor.compress(b"\x00" + bytes([(row * 255 // side + i) % 256]) * side)
                          for row in range(side)) + compressor.flush()
        (folder / f"big_{i}.png").write_bytes(raw_png(side, side, stream))
    return folder


def test_huge_images_are_capped_and_the_choice_is_said(tmp_path):
    folder = huge_pngs(tmp_path / "big", 4, 3000)
    dataset = data.load(f"folder:{folder}")
    assert dataset.images.shape == (4, 1, data.FOLDER_MAX_SIDE, data.FOLDER_MAX_SIDE)
    assert dataset.note.startswith("folder data set: 4 images conformed to 128×128 gray")
    assert "most common shorter side 3000" in dataset.note and "budget" in dataset.note


def test_small_images_are_unchanged(tmp_path):
    """Within the cap, the images are exactly what one conform gives (as before the cap)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 1), dtype=np.uint8) for _ in range(5)]
    folder = tmp_path / "small"
    folder.mkdir()
    for i, image in enumerate(images):
        (folder / f"{i}.png").write_bytes(png_bytes(image))
    dataset = data.load(f"folder:{folder}")
    expected = np.stack([conform(image, 20, 1) for image in images]).transpose(0, 3, 1, 2) / 255.0
    np.testing.assert_allclose(dataset.images, expected, atol=1e-6)


def test_the_budget_shrinks_the_side(tmp_path, monkeypatch):
    """Past the budget (here made small so a test can reach it) the side shrinks to fit."""
    folder = huge_pngs(tmp_path / "many", 12, 300)
    monkeypatch.setattr(data, "FOLDER_BUDGET", 12 * 40 * 40)
    dataset = data.load(f"folder:{folder}")
    side = dataset.images.shape[-1]
    assert dataset.images.size <= 12 * 40 * 40 and side <= 40
    assert f"conformed to {side}×{side}" in dataset.note


def test_train_on_huge_images_says_the_size(tmp_path):
    folder = huge_pngs(tmp_path / "big", 3, 2500)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "vae", "--dataset", f"folder:{folder}", "--epochs", "1",
                                      "--batch-size", "2", "--set", "hidden=16", "--out", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "folder data set: 3 images conformed to 128×128 gray" in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["shape"] == [1, 128, 128]
    assert config["data"]["note"].startswith("folder data set: 3 images")
