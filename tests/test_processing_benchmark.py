"""benchmarks.processing: every processing keeps the image's shape and type, and the table
counts what the shipped detector does with real digits put through them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ASSET = Path(__file__).resolve().parent.parent / "forensics" / "assets" / "default_detector"


def test_every_processing_keeps_shape_and_type_and_most_change_the_image():
    from benchmarks.processing import processings
    from forensics.data import load_split
    from forensics.images import to_uint8

    digits = to_uint8(load_split("mnist5k", "test").images[:8])[..., 0]
    table = processings()
    assert {"none (PNG)", "JPEG 90 then 70", "unsharp mask (σ 1, amount 1)", "rotate 10°"} <= set(table)
    assert any(seen for seen, _ in table.values()) and not all(seen for seen, _ in table.values())
    for label, (_, apply) in table.items():
        out = np.stack([apply(image) for image in digits])
        assert out.shape == digits.shape and out.dtype == np.uint8, label
        assert (out != digits).any() or label == "none (PNG)", label


def test_measure_counts_judged_abstained_and_interval():
    if not (ASSET / "detector.json").is_file():
        pytest.skip("no shipped default detector")
    from benchmarks.processing import _through, markdown, measure, processings, wilson
    from detectors.base import load_detector
    from forensics.data import load_split
    from forensics.images import to_uint8

    detector = load_detector(ASSET, device="cpu")
    digits = to_uint8(load_split("mnist5k", "test").images[:40])[..., 0]
    row = measure(detector, _through(processings()["JPEG 75"][1], digits))
    assert row["n"] == 40 and 0.0 <= row["abstained"] <= 1.0 and 0.0 <= row["called_fake"] <= 1.0
    low, high = row["called_fake_ci95"]
    assert 0.0 <= low <= row["called_fake"] <= high <= 1.0
    noise = np.random.default_rng(0).random((10, 1, 28, 28)).astype(np.float32)
    assert measure(detector, noise)["abstained"] == 1.0  # uniform noise is no digit
    assert wilson(0, 10)[0] == 0.0 and 0.0 < wilson(0, 10)[1] < 0.35
    text = markdown({"detector": str(ASSET), "detector_created": "t", "threshold": 0.5, "created": "t",
                     "versions": {"torch": "x"}, "processings": {"JPEG 75": {"seen": True, "real": row,
                                                                              "fakes": {}}}})
    assert "| JPEG 75 | yes |" in text
