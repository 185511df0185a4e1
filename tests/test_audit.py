"""The audit on folders of real and copied mnist5k images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensics.app.audit import PLOTS, run_audit
from forensics.data import load_split
from forensics.errors import ForensicsError
from forensics.measures import radial_spectrum, slant, stroke_width

N = 200


def write_pngs(folder: Path, images: np.ndarray) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        name = f"img_{i:06d}.png"
        pixels = (np.clip(image[0], 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / name)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def real_audit(tmp_path_factory) -> tuple[Path, dict]:
    """200 held-out test images, one broken file, and InfoGAN-style codes = true digits."""
    folder = tmp_path_factory.mktemp("real")
    test = load_split("mnist5k", "test")
    index = np.random.default_rng(0).choice(len(test), N, replace=False)
    names = write_pngs(folder, test.images[index])
    (folder / "broken.png").write_bytes(b"not an image at all")
    rng = np.random.default_rng(1)
    rows = [{"file": name, "c1": int(test.labels[i]), "c_cont": rng.uniform(-1, 1, 2).tolist()}
            for name, i in zip(names, index, strict=True)]
    (folder / "manifest.json").write_text(json.dumps({"header": {}, "images": rows}))
    events: list[dict] = []
    out = tmp_path_factory.mktemp("real_audit")
    return folder, run_audit(folder, out=out, seed=0, callback=events.append) | {"_events": events}


@pytest.fixture(scope="module")
def copies_audit(tmp_path_factory) -> tuple[Path, dict]:
    """200 training images written as PNGs (memorised)."""
    folder = tmp_path_factory.mktemp("copies")
    train = load_split("mnist5k", "train")
    write_pngs(folder, train.images[np.random.default_rng(2).choice(len(train), N, replace=False)])
    return folder, run_audit(folder, out=tmp_path_factory.mktemp("copies_audit"), seed=0)


def test_real_images_look_real(real_audit) -> None:
    _, result = real_audit
    quality, modes = result["quality"], result["modes"]["generated"]
    assert result["audit"]["n_images"] == N
    assert quality["n"] == N
    assert quality["fd"] < 1.5 * quality["fd_floor"] + 1.0
    assert modes["missing"] == []
    assert modes["confident_share"] > 0.8
    assert result["diversity"]["generated"]["precision"] > 0.8
    assert result["memorisation"]["near_copy_share"] < 0.05
    assert abs(result["memorisation"]["zu"]) < 3
    assert result["spectrum"]["l2"] < 3 * result["spectrum"]["l2_floor"] + 0.1
    assert not any("memorisation" in flag for flag in result["flags"])


def test_unreadable_file_is_skipped_and_reported(real_audit) -> None:
    _, result = real_audit
    assert result["audit"]["n_skipped"] == 1
    assert "broken.png" in result["audit"]["skipped"][0]
    assert "\n" not in result["audit"]["skipped"][0]


def test_codes_equal_to_digits_match_the_classifier(real_audit) -> None:
    _, result = real_audit
    codes = result["codes"]
    assert codes["matched"] == N and codes["sha256_mismatches"] == 0
    assert codes["c1_hungarian_accuracy"] > 0.9
    assert codes["c1_to_digit"] == {str(d): d for d in range(10)}
    assert codes["c1_nmi"] > 0.8
    # random continuous codes do not move the images
    for props in codes["continuous"]["spearman"].values():
        assert abs(props["slant"]) < 0.25 and abs(props["stroke_width"]) < 0.25


def test_reports_are_written(real_audit) -> None:
    folder, result = real_audit
    out = Path(result["audit"]["out"])
    assert not out.is_relative_to(folder)
    on_disk = json.loads((out / "audit.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in audit.json"))
    assert on_disk["quality"] == result["quality"]
    assert on_disk["audit"]["inputs_sha256"] and on_disk["audit"]["versions"]["numpy"]
    assert on_disk["audit"]["seconds"] > 0
    for name in PLOTS:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    page = (out / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS) and "src='audit/" not in page
    report = (out / "audit.md").read_text()
    assert "not Inception" in report
    # units and chance levels beside each section
    assert "chance level 0.1" in report and "c1 accuracy (Hungarian-matched to digit; chance 0.1)" in report
    assert "(x·y / 128 + 1)³" in report and "squared feature units" in report
    assert "near-copies by construction" in report and "1 % of" in report
    assert "Missing digits: no image at all" in report and "Rare digits: made" in report
    assert "chance level 0.1" in page
    stages = [event["stage"] for event in result["_events"]]
    assert stages[0] == "reference" and stages[-1] == "done"


def test_copies_of_training_images_are_flagged(copies_audit) -> None:
    folder, result = copies_audit
    memorisation = result["memorisation"]
    assert memorisation["near_copy_share"] > 0.9
    assert memorisation["zu"] < -10
    assert memorisation["closest_pairs"][0]["distance"] < 0.05
    assert any("near-copies" in flag for flag in result["flags"])
    assert result["codes"] is None
    assert result["audit"]["n_images"] == N
    assert not (folder / "audit").exists()  # the report is written outside the set


def test_too_few_images(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"broken")
    with pytest.raises(ForensicsError, match="readable"):
        run_audit(tmp_path)
    with pytest.raises(ForensicsError, match="not a folder"):
        run_audit(tmp_path / "missing")


def test_slant_matches_cv2_moments() -> None:
    from forensics.images import opencv

    cv2 = opencv()

    images = load_split("mnist5k", "test").images[:20]
    expected = []
    for image in images:
        moments = cv2.moments(image[0].astype(np.float64))
        expected.append(moments["mu11"] / moments["mu02"])
    assert slant(images) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_stroke_width_of_bars() -> None:
    images = np.zeros((2, 1, 28, 28), np.float32)
    images[0, 0, 4:24, 10:12] = 1.0  # 2 px wide
    images[1, 0, 4:24, 10:15] = 1.0  # 5 px wide
    widths = stroke_width(images)
    assert widths[0] == pytest.approx(2 * 40 / 44)
    assert widths[1] == pytest.approx(2 * 100 / 50)
    assert np.isnan(stroke_width(np.zeros((1, 1, 8, 8))))[0]


def test_radial_spectrum_of_flat_and_noisy_images() -> None:
    flat = np.full((2, 1, 16, 16), 0.5)
    spectrum = radial_spectrum(flat)
    assert spectrum.shape == (2, 12)  # rings of integer radius 0 … 11, corners included
    assert spectrum[0, 0] > spectrum[0, 1:].max() + 10  # all power at DC (natural log)
    noise = np.random.default_rng(0).random((50, 1, 16, 16))
    mean = radial_spectrum(noise).mean(0)
    assert np.ptp(mean[2:9]) < 0.7  # white noise: flat away from DC (ln units)
