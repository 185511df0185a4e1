"""Detectors: one contract over every registered family, separation, safe loading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import detectors
from detectors import create, list_detectors, load_detector, save_detector, storage, train_detector
from forensics.errors import ForensicsError
from forensics.measures import radial_spectrum


def smooth_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """Random smooth grayscale images in [0.1, 0.9], (n, 1, size, size) float32."""
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).standard_normal((n, size, size))
    smooth = gaussian_filter(noise, sigma=(0, 2, 2), mode="wrap")
    smooth /= np.abs(smooth).max(axis=(1, 2), keepdims=True)
    return (0.5 + 0.4 * smooth)[:, None].astype(np.float32)


def with_checkerboard(images: np.ndarray, amplitude: float = 0.03) -> np.ndarray:
    """Add the period-2 pattern an up-sampling layer leaves behind."""
    size = images.shape[-1]
    pattern = np.indices((size, size)).sum(0) % 2 * 2.0 - 1.0
    return np.clip(images + amplitude * pattern, 0, 1).astype(np.float32)


# tiny networks run fastest, and unaffected by a busy machine, on one thread (conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    from generators.training import train

    out = tmp_path_factory.mktemp("gan") / "run"
    train("gan", {"width": 8, "noise_dim": 8, "batch_size": 32}, out=out, dataset="digits",
          epochs=1, device="cpu")
    return out


def tiny(name: str, **extra) -> dict:
    """The family's own smallest options (its class's ``tiny_options``), ``extra`` applied."""
    return {**detectors.registry.get(name).tiny_options, **extra}


def build(name: str, gan_run: Path | None = None, **extra):
    options = tiny(name, **extra)
    if detectors.registry.get(name).needs_run:
        options["run"] = str(gan_run)
    return create(name, **options)


def tiny_sets(name: str, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    size = 8 if detectors.registry.get(name).needs_run else 16  # the GAN run is on 8×8 digits
    return smooth_images(n, size, 1), with_checkerboard(smooth_images(n, size, 2))


@pytest.mark.parametrize("name", list_detectors())
def test_contract(name, tmp_path, request):
    run = request.getfixturevalue("gan_run") if detectors.registry.get(name).needs_run else None
    real, fake = tiny_sets(name)
    detector = build(name, run)
    with pytest.raises(ForensicsError, match="not fitted; call fit first"):
        detector.predict_proba(real)
    with pytest.raises(ForensicsError, match="not fitted"):
        detector.save(tmp_path / "unfitted")
    # a real-only family (needs_fakes False) must fit without fakes
    assert detector.fit(real, fake if detector.needs_fakes else None) \
        is detector
    assert detector.input_shape_ == real.shape[1:]
    scores = detector.predict_proba(np.concatenate([real, fake]))
    assert scores.shape == (2 * len(real),) and np.all((scores >= 0) & (scores <= 1))
    assert create(name, **detector.get_params()).get_params() == detector.get_params()

    folder = save_detector(detector, tmp_path / "det", {"data": {"real": "abc"}})
    header = json.loads((folder / storage.HEADER).read_text())
    assert header["kind"] == name and header["input_shape"] == list(real.shape[1:])
    assert header["data"] == {"real": "abc"} and "numpy" in header["versions"]
    again = load_detector(folder)
    assert type(again) is type(detector) and again.get_params() == detector.get_params()
    np.testing.assert_allclose(again.predict_proba(np.concatenate([real, fake])), scores,
                               rtol=0, atol=1e-6)
    with pytest.raises(ForensicsError, match="trained on"):
        again.predict_proba(np.zeros((2, 3, 12, 12), np.float32))
    with pytest.raises(ForensicsError, match="already exists"):
        save_detector(detector, folder)


@pytest.mark.parametrize("name", ["spectral-fft", "cnn"])
def test_separates_checkerboard_but_not_real_from_real(name):
    options = {"epochs": 8, "augment": True} if name == "cnn" else {}
    real = smooth_images(600, 16, 10)
    fake = with_checkerboard(smooth_images(300, 16, 11))
    _, report = train_detector(name, real[:200], real[200:250], real[250:300],
                               {"checker": fake}, tiny(name, **options), seed=0)
    assert report["auc"] > 0.95, report
    assert report["per_source_auc"]["checker"] == report["auc"]
    _, report = train_detector(name, real[:200], real[200:250], real[250:350],
                               {"other-real": real[350:]}, tiny(name, **options))
    assert abs(report["auc"] - 0.5) < 0.15, report


def test_train_detector_splits_and_calibrates():
    real, fake = smooth_images(60, 16, 3), with_checkerboard(smooth_images(50, 16, 4))
    detector, report = train_detector("spectral-dct", real[:40], real[40:50], real[50:],
                                      {"b": fake, "a": fake[:20]}, seed=1)
    assert report["n"]["train"] == {"real": 40, "a": 16, "b": 40}
    assert report["n"]["test"] == {"real": 10, "a": 2, "b": 5}
    assert detector.threshold_ == report["threshold"] and 0 <= report["threshold"] <= 1
    assert set(report["per_source_auc"]) == {"a", "b"}
    parts = detectors.training.split_fakes({"b": fake}, seed=1)["b"]
    rows = [{image.tobytes() for image in parts[key]} for key in ("train", "val", "test")]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    with pytest.raises(ForensicsError, match="at least 10"):
        train_detector("spectral-fft", real[:40], real[40:50], real[50:], {"x": fake[:3]})


def test_attribution_sources_and_confusion_matrix():
    sources = {"real": smooth_images(40, 16, 5), "gan": with_checkerboard(smooth_images(40, 16, 6)),
               "vae": smooth_images(40, 16, 7) * 0.5}
    detector = build("attribution", epochs=3).fit_sources(sources)
    assert detector.classes_ == ["real", "gan", "vae"]
    probs = detector.predict_source_proba(sources["gan"])
    assert probs.shape == (40, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(detector.predict_proba(sources["gan"]), 1 - probs[:, 0], atol=1e-9)
    matrix, labels = detector.confusion_matrix(sources)
    assert labels == ["real", "gan", "vae"] and matrix.shape == (3, 3) and matrix.sum() == 120
    with pytest.raises(ForensicsError, match="unknown source"):
        detector.confusion_matrix({"diffusion": sources["gan"]})


def test_discriminator_zero_shot_is_one_minus_d_and_finetune_trains(gan_run, tmp_path):
    import torch

    from generators.training import load_run

    real, fake = tiny_sets("discriminator")
    zero = build("discriminator", gan_run).fit(real, fake)
    d_real = load_run(gan_run).model.real_probability(torch.from_numpy(real)).numpy()
    np.testing.assert_allclose(zero.predict_proba(real), 1 - d_real, atol=1e-5)
    for freeze in (True, False):
        tuned = build("discriminator", gan_run, mode="finetune", freeze=freeze, epochs=2)
        tuned.fit(real, fake)
        save_detector(tuned, tmp_path / f"tuned{freeze}")
        np.testing.assert_allclose(load_detector(tmp_path / f"tuned{freeze}").predict_proba(fake),
                                   tuned.predict_proba(fake), atol=1e-6)
    with pytest.raises(ForensicsError, match="run=PATH"):
        create("discriminator").fit(real, fake)


def test_spectral_helpers():
    images = smooth_images(5, 16)
    spectrum = radial_spectrum(images)
    assert spectrum.shape == (5, 12)  # rings of integer radius 0 .. floor(8·√2)
    assert radial_spectrum(np.repeat(images, 3, 1), n_bins=8).shape == (5, 8)
    checker = radial_spectrum(with_checkerboard(images))
    assert np.all(checker[:, -1] > spectrum[:, -1])  # energy appears at the highest frequency
    dct = build("spectral-dct")
    assert dct.mean_difference_map(images, with_checkerboard(images)).shape == (16, 16)
    cnn = build("cnn").fit(images, with_checkerboard(images))
    assert cnn.saliency(images).shape == (5, 16, 16)


def test_registry_errors_and_option_coercion():
    with pytest.raises(ForensicsError, match="unknown detector 'nope'; known: .*spectral-fft"):
        create("nope")
    with pytest.raises(ForensicsError, match="unknown option"):
        create("cnn", depth=3)
    with pytest.raises(ForensicsError, match="not a valid int"):
        create("cnn", epochs="many")
    detector = create("cnn", epochs="2", augment="false", lr="0.01")
    assert (detector.epochs, detector.augment, detector.lr) == (2, False, 0.01)
    assert create("spectral-fft", n_bins="none").n_bins is None
    with pytest.raises(ForensicsError, match="classifier must be"):
        create("spectral-fft", classifier="tree").fit(*tiny_sets("spectral-fft"))


def test_svm_classifier_and_seeded_training():
    from detectors.augment import blur_jpeg

    real, fake = tiny_sets("spectral-fft")
    detector = create("spectral-fft", classifier="svm").fit(real, fake)
    assert detector.predict_proba(fake).mean() > detector.predict_proba(real).mean()
    rgb = np.repeat(real, 3, 1)
    first = blur_jpeg(rgb, np.random.default_rng(3))
    np.testing.assert_array_equal(first, blur_jpeg(rgb, np.random.default_rng(3)))
    other = blur_jpeg(rgb, np.random.default_rng(4))
    assert first.shape == rgb.shape and not np.array_equal(first, other)
    scores = [build("cnn", epochs=2).fit(real, fake).predict_proba(fake) for _ in range(2)]
    np.testing.assert_array_equal(*scores)


class Payload:
    """Unpickling it would create ``marker`` — loading must never get that far."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _rehash(folder: Path, name: str) -> None:
    from forensics.provenance import sha256_file

    header = json.loads((folder / storage.HEADER).read_text())
    header["files"][name] = sha256_file(folder / name)
    (folder / storage.HEADER).write_text(json.dumps(header))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    return {name: save_detector(build(name).fit(*tiny_sets(name)), root / name)
            for name in ("spectral-fft", "cnn")}


@pytest.mark.parametrize("rehash", [False, True], ids=["hash-check", "loader-check"])
@pytest.mark.parametrize("name,file", [("spectral-fft", storage.SKLEARN_FILE),
                                       ("cnn", storage.TORCH_FILE)])
def test_pickle_payload_is_refused(saved, tmp_path, name, file, rehash):
    import shutil

    folder = shutil.copytree(saved[name], tmp_path / "det")
    marker = tmp_path / "pwned"
    (folder / file).write_bytes(pickle.dumps(Payload(marker)))
    if rehash:
        _rehash(folder, file)
    with pytest.raises(ForensicsError, match=file):
        load_detector(folder)
    assert not marker.exists()


@pytest.mark.parametrize("rehash", [False, True])
def test_truncated_or_missing_files_are_refused(saved, tmp_path, rehash):
    import shutil

    folder = shutil.copytree(saved["cnn"], tmp_path / "det")
    data = (folder / storage.TORCH_FILE).read_bytes()
    (folder / storage.TORCH_FILE).write_bytes(data[: len(data) // 2])
    if rehash:
        _rehash(folder, storage.TORCH_FILE)
    with pytest.raises(ForensicsError, match="safetensors"):
        load_detector(folder)
    (folder / storage.TORCH_FILE).unlink()
    with pytest.raises(ForensicsError, match="missing"):
        load_detector(folder)
    (folder / storage.HEADER).write_text("{not json")
    with pytest.raises(ForensicsError, match="not valid JSON"):
        load_detector(folder)
    with pytest.raises(ForensicsError, match="no such detector folder"):
        load_detector(tmp_path / "absent")


def test_skops_types_off_the_allow_list_are_refused(tmp_path):
    import collections

    import skops.io

    skops.io.dump({"counts": collections.Counter(a=1)}, tmp_path / "model.skops")
    with pytest.raises(ForensicsError, match="untrusted type.*collections.Counter"):
        storage.load_sklearn(tmp_path / "model.skops")


TORCH_FAMILIES = [name for name in list_detectors()
                  if detectors.registry.get(name).torch_based and not detectors.registry.get(name).needs_run]


SIZES = [(1, 28, 28), (3, 32, 32), pytest.param((3, 64, 64), marks=pytest.mark.slow)]


@pytest.mark.parametrize("shape", SIZES, ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("name", TORCH_FAMILIES)
def test_torch_detectors_at_other_sizes(name, shape, patch_dataset, tmp_path):
    """Photograph patches (real) vs the same with an up-sampling checkerboard: fit, score, save, reload."""
    from forensics.data import load
    from forensics.nets import down_stages

    images = load(patch_dataset(shape)).images
    real, fake = images[:48], with_checkerboard(images[48:])
    assert real.shape[1:] == shape
    detector = build(name)
    detector.fit(real, fake if detector.needs_fakes else None)
    scores = detector.predict_proba(np.concatenate([real, fake]))
    assert scores.shape == (len(images),) and np.all((scores >= 0) & (scores <= 1))
    net = getattr(detector, "net_", None)
    if hasattr(net, "stages"):  # the CNN family pools once per stride-2 stage of the side
        assert net.stages == down_stages(shape[1])
    again = load_detector(save_detector(detector, tmp_path / "det"))
    np.testing.assert_allclose(again.predict_proba(np.concatenate([real, fake])), scores,
                               rtol=0, atol=1e-6)


# -- scores that saturate in float: thresholds in log-odds ----------------------------------------


def test_saturating_scores_still_give_a_usable_fpr_threshold(tmp_path):
    """pixel-logreg's P(fake) rounds to 1.0 for over 1 % of the (processed) real validation
    images: a threshold on P(fake) at 1 % FPR lands above 1. Compared in log-odds (the logit
    before the sigmoid) the rule gives a finite threshold that holds its rate on plain and on
    each processing — here above the fakes, as this detector scores blurred real digits
    higher than them."""
    import csv
    import io

    from typer.testing import CliRunner

    from detectors.base import sigmoid
    from detectors.training import calibration_reals, fpr_threshold, threshold_at_fpr, threshold_reals
    from forensics.app.cli import app
    from forensics.data import load_split
    from forensics.images import png_bytes

    real = {part: load_split("digits", part).images for part in ("train", "val", "test")}
    rng = np.random.default_rng(0)
    fake = np.clip(real["train"][:600] + rng.normal(0, 0.3, real["train"][:600].shape), 0, 1)
    detector, report = train_detector("pixel-logreg", real["train"], real["val"], real["test"],
                                      {"noisy": fake.astype(np.float32)}, {"C": 100.0})
    sets = calibration_reals(real["val"])
    assert list(sets) == ["plain", "jpeg", "blur", "resize", "noise", "png", "sharpen", "webp", "tone",
                          "quantize", "chain"]
    validation = np.concatenate(list(sets.values()))
    saturated = detector.predict_proba(sets["resize"])  # resized real digits look noisy to it
    assert np.mean(saturated == 1.0) > 0.01  # the case: a P(fake) rule has nothing to rank
    assert fpr_threshold(saturated, 0.01) > 1.0  # ... and would call nothing fake
    assert np.isfinite(detector.threshold_log_odds_)
    # the rate holds plain, under each processing alone and at each strength of the grid
    for kind, images in threshold_reals(real["val"]).items():
        assert np.mean(detector.log_odds(images) >= detector.threshold_log_odds_) <= 0.01, kind
    assert report["auc"] > 0.99 and report["fpr"] <= 0.02
    fpr = report["real_fpr"]  # on test, under each processing too
    assert set(fpr["by_processing"]) == {"jpeg", "blur", "resize", "noise", "png", "sharpen", "webp",
                                         "tone", "quantize", "chain"}
    assert fpr["processed_worst"] == fpr["by_processing"][fpr["worst_processing"]] <= 0.05
    assert fpr["processed_worst"] == max(fpr["by_processing"].values())
    # this detector calls resized real digits fake with certainty: a threshold set on plain
    # images alone would accuse most of them, and would call fakes; the saved one does neither
    plain = fpr_threshold(detector.log_odds(sets["plain"]), 0.01)
    assert np.mean(detector.log_odds(sets["resize"]) >= plain) > 0.5
    assert np.mean(detector.log_odds(fake) >= plain) > 0.5
    assert detector.threshold_ == sigmoid(detector.threshold_log_odds_)  # shown: its sigmoid
    # the scores stay probabilities, the sigmoid of the log-odds verdicts compare
    sample = real["test"][:20]
    assert np.array_equal(detector.predict_proba(sample), sigmoid(detector.log_odds(sample)))
    # another rate from the recorded (log-odds) quantiles is usable as well
    looser = threshold_at_fpr(detector.calibration_["real_val_scores"], 0.05)
    assert np.isfinite(looser) and looser <= detector.threshold_log_odds_

    save_detector(detector, tmp_path / "det")
    loaded = load_detector(tmp_path / "det")
    assert loaded.threshold_log_odds_ == detector.threshold_log_odds_
    assert np.array_equal(loaded.predict(validation), detector.predict(validation))

    # through the CLI: blatant fakes (far noisier than any ordinary processing) called fake at
    # the 1 % rule, though their shown score is 1.0
    blatant = np.clip(real["test"][:30] + rng.normal(0, 2.0, real["test"][:30].shape), 0, 1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(blatant):
        (folder / f"f{i:02d}.png").write_bytes(
            png_bytes((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)))
    result = CliRunner().invoke(app, ["detect", str(folder), "--detector", str(tmp_path / "det"),
                                      "--csv", "--force"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 30
    called = [row for row in rows if row["verdict"] == "fake"]
    assert len(called) >= 5  # P(fake)-space thresholds called none of them
    assert any(float(row["p_fake"]) == 1.0 for row in called)
    assert all(0.0 <= float(row["p_fake"]) <= 1.0 and float(row["threshold"]) <= 1.0 for row in rows)
