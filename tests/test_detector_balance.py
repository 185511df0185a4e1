"""Class balance in training and Platt calibration (issue #15: honest numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detectors.base import class_weights, platt, score_logit
from detectors.cnn import weighted_bce
from detectors.training import fit_platt, train_detector
from forensics.data import load_split


def test_class_weights_make_each_class_weigh_the_same():
    weights = class_weights([300, 100, 20])
    assert weights.tolist() == pytest.approx([420 / 900, 420 / 300, 420 / 60])
    assert (weights * [300, 100, 20]).tolist() == pytest.approx([140, 140, 140])  # N / K each
    assert class_weights([300, 100], balance=False).tolist() == [1.0, 1.0]


def test_weighted_bce_is_the_class_weighted_mean():
    logits = torch.tensor([[0.3], [-1.2], [2.0], [0.5]])
    y = torch.tensor([0.0, 0.0, 0.0, 1.0])
    each = F.binary_cross_entropy_with_logits(logits[:, 0], y, reduction="none")
    w_real, w_fake = 4 / (2 * 3), 4 / (2 * 1)
    expected = (w_real * each[:3].sum() + w_fake * each[3]) / 4
    assert weighted_bce([3, 1], True)(logits, y).item() == pytest.approx(expected.item())
    assert weighted_bce([3, 1], False)(logits, y).item() == pytest.approx(each.mean().item())


def test_platt_recovers_a_known_sigmoid_under_equal_priors():
    """Labels drawn from sigmoid(2·logit(s) − 1): Platt finds a = 2 and, as it weighs the classes
    equally, b = −1 + log(n_real / n_fake) (the prior moved to one half)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, 40_000)
    scores = 1 / (1 + np.exp(-x))
    labels = (rng.random(len(x)) < 1 / (1 + np.exp(-(2 * x - 1)))).astype(int)
    record = fit_platt(scores, labels)
    n_fake = labels.sum()
    assert record["a"] == pytest.approx(2.0, abs=0.1)
    assert record["b"] == pytest.approx(-1 + np.log((len(labels) - n_fake) / n_fake), abs=0.1)
    assert record["fitted_on"] == {"real": len(labels) - n_fake, "fake": n_fake,
                                   "what": "plain validation images"}
    probability = platt(scores, record)
    assert np.all(np.diff(probability[np.argsort(scores)]) >= 0)
    assert np.allclose(score_logit(np.array([0.0, 1.0])), [-27.631, 27.631], atol=1e-3)


@pytest.mark.parametrize("balance", [True, False])
def test_train_detector_records_the_balance(balance):
    """4:1 reals to fakes (brightened digits): the report says so and whether training balanced it."""
    real = load_split("digits", "train").images[:500]
    fake = np.clip(load_split("digits", "val").images[:125] * 0.6 + 0.3, 0, 1)
    detector, report = train_detector("pixel-logreg", real[:400], real[400:450], real[450:],
                                      {"bright": fake}, {"balance": balance})
    balance_record = report["class_balance"]
    assert balance_record["counts"] == {"real": 400, "fake": 100}
    assert balance_record["ratio"] == 4.0 and balance_record["balanced"] is balance
    assert detector.get_params()["balance"] is balance
    assert detector.pipeline_[-1].class_weight == ("balanced" if balance else None)
    assert report["balanced_accuracy"] == pytest.approx((report["tpr"] + 1 - report["fpr"]) / 2)
    assert detector.calibration_["probability"]["method"] == "platt"


def test_platt_rule_is_fitted_on_validation_images_plain_and_processed():
    """``calibrate`` fits Platt's rule on the real and the fake validation images, each plain and
    under every ordinary processing (the fakes at other random strengths), so P(fake) is the
    probability for an image that may have been processed, as the threshold assumes; the
    threshold itself also holds at each strength of the grid (JPEG, blur, resize, noise, tone,
    gray levels)."""
    from detectors.base import sigmoid
    from detectors.training import STRENGTH_GRID, calibrate, calibration_reals, threshold_reals
    from tests.test_new_detectors import transposed_conv_x2

    images = load_split("digits", "train").images
    fakes = transposed_conv_x2(images, np.array([[1.1, 0.9], [0.9, 1.1]]))
    detector, _ = train_detector("pixel-logreg", images[:600], images[600:900], images[900:1200],
                                 {"upsampled": fakes[:600]}, seed=0)
    real_val, fake_val = images[600:900], fakes[600:900]
    calibrate(detector, real_val, [fake_val], seed=4)
    record = detector.calibration_["probability"]
    reals, others = calibration_reals(real_val, 4), calibration_reals(fake_val, 5)
    scores = [detector.log_odds(part) for part in (*reals.values(), *others.values())]
    labels = np.r_[np.zeros(len(real_val) * len(reals)), np.ones(len(fake_val) * len(others))]
    expected = fit_platt(sigmoid(np.concatenate(scores)), labels,
                         what="validation images, plain and under each ordinary processing")
    assert record == expected and len(reals) == 11
    assert set(threshold_reals(real_val[:5])) == {*reals, *(f"{kind}@{v}" for kind, grid
                                                            in STRENGTH_GRID.items() for v in grid)}
