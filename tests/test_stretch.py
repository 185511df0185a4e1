"""``stretch``: detectors that judge an image after auto-levels are blind to its black level and
contrast (the shipped detector once called every real digit whose black was lifted by 8/255 fake)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import create
from detectors.cnn import stretch_tone
from detectors.registry import get, list_detectors
from forensics.data import load_split
from forensics.domain import process
from tests.test_detectors import with_checkerboard

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images = load_split("mnist5k", "train").images
    return images[np.random.default_rng(0).permutation(len(images))[:600]]


def stretched(images: np.ndarray) -> np.ndarray:
    return stretch_tone(torch.from_numpy(images)).numpy()


def test_auto_levels_undo_a_lifted_black_and_a_changed_gain(digits):
    toned = process(digits, np.random.default_rng(1), kind="tone")  # lift 1-24/255, gain 0.8-1.1
    assert np.abs(toned - digits).mean() > 0.02
    # what is left is 8-bit rounding and the strokes a gain above 1 clipped at white
    assert np.abs(stretched(toned) - stretched(digits)).mean() < 0.01
    for lift in (4, 8, 16):
        lifted = process(digits[:50], np.random.default_rng(2), kind="tone", strength=lift)
        diff = np.abs(stretched(lifted) - stretched(digits[:50]))
        assert diff.mean() < 0.01 and np.quantile(diff, 0.99) < 0.1


def test_auto_levels_map_to_the_unit_range_and_leave_a_flat_image_alone():
    rng = np.random.default_rng(0)
    dim = (0.3 + 0.2 * rng.random((4, 3, 16, 16))).astype(np.float32)  # values in [0.3, 0.5]
    out = stretched(dim)
    assert out.min() == 0.0 and out.max() == 1.0 and out.shape == dim.shape
    flat = np.full((2, 1, 8, 8), 0.4, np.float32)  # nothing to stretch: left as it is
    assert np.array_equal(stretched(flat), flat)
    half = torch.from_numpy(dim).to(torch.bfloat16)  # autocast's dtype passes through
    assert stretch_tone(half).dtype == torch.bfloat16


def test_every_detector_with_the_tag_takes_the_option():
    tagged = [name for name in list_detectors() if get(name).stretches]
    assert {"cnn", "npr", "attribution", "surprisal"} <= set(tagged)
    for name in tagged:
        assert create(name, stretch=True).stretch is True


def test_a_stretching_cnn_scores_a_toned_real_digit_as_the_digit(digits):
    real, fake = digits[:300], with_checkerboard(digits[300:], 0.1)
    detector = create("cnn", epochs=8, width=8, augment=False, device="cpu", stretch=True).fit(real, fake)
    test_real = load_split("mnist5k", "test").images[:200]
    toned = process(test_real, np.random.default_rng(3), kind="tone", strength=8)
    plain_logits, toned_logits = detector.log_odds(test_real), detector.log_odds(toned)
    fake_logits = detector.log_odds(with_checkerboard(test_real, 0.1))
    spread = np.median(fake_logits) - np.median(plain_logits)
    assert spread > 2.0  # it learned the checkerboard
    assert np.median(np.abs(toned_logits - plain_logits)) < 0.1 * spread
    # and a toned fake is still caught like the fake
    toned_fake = process(with_checkerboard(test_real, 0.1), np.random.default_rng(4), kind="tone", strength=8)
    assert np.median(detector.log_odds(toned_fake)) > np.median(plain_logits) + 0.5 * spread


def test_the_ensemble_hands_stretch_to_its_members_unless_member_options_say_otherwise():
    ensemble = create("ensemble", members="cnn,npr,spectral-fft", stretch=True,
                      member_options='{"npr": {"stretch": false}}')
    members = {m.name: m for m in ensemble._new_members()}
    assert members["cnn"].stretch is True and members["npr"].stretch is False
    assert not hasattr(members["spectral-fft"], "stretch")
