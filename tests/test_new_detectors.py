"""npr, reconstruction, surprisal, ensemble and pseudo-fakes: real training, real assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.metrics import roc_auc_score

from detectors import create, get, load_detector, save_detector, train_detector
from detectors.npr import npr_residual
from detectors.pseudo import pseudo_fakes
from forensics.errors import ForensicsError
from tests.test_detectors import smooth_images

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = {"device": "cpu"}


def auc(negative: np.ndarray, positive: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(negative)), np.ones(len(positive))],
                               np.r_[negative, positive]))


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    from forensics.data import load_split

    return {part: load_split("digits", part).images for part in ("train", "val", "test")}


def transposed_conv_x2(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2× average-pool, then a stride-2 2×2 transposed conv with a fixed kernel (a generator's trace)."""
    n, c, h, w = images.shape
    low = images.reshape(n, c, h // 2, 2, w // 2, 2).mean((3, 5))
    up = low[:, :, :, None, :, None] * kernel[None, None, None, :, None, :]
    return np.clip(up.reshape(n, c, h, w), 0, 1).astype(np.float32)


def test_npr_residual_is_zero_on_nearest_upsampled_images_and_handles_odd_sizes():
    import torch

    low = torch.rand(3, 1, 4, 5)
    up = low.repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert torch.count_nonzero(npr_residual(up)) == 0
    odd = torch.rand(2, 3, 7, 9)
    assert npr_residual(odd).shape == odd.shape
    assert torch.count_nonzero(npr_residual(odd)[..., ::2, ::2]) == 0


def test_npr_finds_a_transposed_conv_checkerboard_but_not_real_from_real():
    options = {**CPU, "epochs": 6, "width": 8}
    real = smooth_images(700, 16, 20)
    kernel = np.array([[1.06, 0.94], [0.97, 1.03]])
    fake = transposed_conv_x2(smooth_images(400, 16, 21), kernel)
    _, report = train_detector("npr", real[:300], real[300:350], real[350:500], {"convT": fake},
                               options, seed=0)
    assert report["auc"] > 0.95, report
    _, report = train_detector("npr", real[:300], real[300:350], real[350:550],
                               {"other-real": real[550:]}, options)
    assert abs(report["auc"] - 0.5) < 0.1, report


@pytest.mark.parametrize("name", ["reconstruction", "surprisal"])
def test_real_only_detectors_fit_without_fakes_and_are_two_sided(name, digits):
    cls = get(name)
    assert cls.needs_fakes is False and cls.torch_based is True
    detector = create(name, **CPU).fit(digits["train"])
    real = digits["test"]
    blurred = gaussian_filter(real, sigma=(0, 0, 1.2, 1.2)).astype(np.float32)
    noisy = np.clip(real + np.random.default_rng(0).normal(0, 0.15, real.shape), 0, 1)
    noise = np.random.default_rng(1).random(real.shape).astype(np.float32)
    s_real, s_blur, s_noisy = (detector.predict_proba(x) for x in (real, blurred, noisy))
    assert auc(s_real, s_blur) > 0.9 and auc(s_real, detector.predict_proba(noise)) > 0.9
    # two-sided: too smooth and too rough both score above plain held-out reals
    assert s_blur.mean() > s_real.mean() and s_noisy.mean() > s_real.mean()
    # fakes passed to a real-only detector are ignored
    again = create(name, **CPU).fit(digits["train"], noise)
    np.testing.assert_allclose(again.predict_proba(real), s_real, atol=1e-6)


def test_surprisal_statistic_is_nll_minus_entropy_per_scale(digits):
    detector = create("surprisal", **CPU, epochs=1, width=4).fit(digits["train"][:400])
    nll, entropy = detector.coding_cost(digits["test"][:20])
    assert nll.shape == entropy.shape == (20, 2) and np.all(entropy >= 0)
    z = detector.z_scores(digits["test"][:20])
    np.testing.assert_allclose(z, (nll - entropy - detector.center_) / detector.scale_, atol=1e-9)
    with pytest.raises(ForensicsError, match="too small"):
        create("surprisal", **CPU, scales=5).fit(digits["train"][:40])


def test_reconstruction_spaces(digits):
    for space, k in (("pixel", 1), ("spectral", 1), ("both", 2)):
        detector = create("reconstruction", **CPU, space=space, epochs=1, width=4)
        assert detector.fit(digits["train"][:200]).z_scores(digits["test"][:5]).shape == (5, k)
    with pytest.raises(ForensicsError, match="space must be"):
        create("reconstruction", **CPU, space="lpips").fit(digits["train"][:50])


def test_pseudo_fakes_are_seeded_keep_content_and_differ(digits):
    real = digits["train"][:300]
    fakes, source = pseudo_fakes(real, 200, seed=3, return_index=True)
    assert fakes.shape == (200, *real.shape[1:]) and fakes.dtype == np.float32
    assert fakes.min() >= 0 and fakes.max() <= 1
    np.testing.assert_array_equal(fakes, pseudo_fakes(real, 200, seed=3))
    assert not np.array_equal(fakes, pseudo_fakes(real, 200, seed=4))
    originals = real[source]
    assert np.abs(fakes - originals).mean() > 0.01
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(fakes, originals, strict=True)]
    assert np.mean(corr) > 0.7 and np.percentile(corr, 10) > 0.5
    odd = pseudo_fakes(np.repeat(smooth_images(6, 7, 1), 3, 1), 9, seed=0)  # odd size, RGB, n > N
    assert odd.shape == (9, 3, 7, 7)


def test_pseudo_fakes_option_on_cnn_and_attribution(digits):
    real, fake = digits["train"][:200], np.clip(digits["train"][200:400] ** 0.5, 0, 1)
    base = create("cnn", **CPU, epochs=1, width=4).fit(real, fake)
    same = create("cnn", **CPU, epochs=1, width=4, pseudo_fakes=0.0).fit(real, fake)
    np.testing.assert_array_equal(base.predict_proba(real), same.predict_proba(real))
    more = create("cnn", **CPU, epochs=1, width=4, pseudo_fakes=0.5).fit(real, fake)
    assert not np.array_equal(base.predict_proba(real), more.predict_proba(real))
    npr = create("npr", **CPU, epochs=1, width=4, pseudo_fakes=0.5).fit(real, fake)
    assert npr.predict_proba(real).shape == (200,)
    attribution = create("attribution", **CPU, epochs=1, width=4, pseudo_fakes=0.5)
    assert attribution.fit(real, fake).classes_ == ["real", "fake", "pseudo"]
    with pytest.raises(ForensicsError, match="pseudo_fakes"):
        create("cnn", **CPU, pseudo_fakes=-1).fit(real, fake)


def test_ensemble_stacks_members_and_round_trips(digits, tmp_path):
    real = digits["train"][:400]
    fake = transposed_conv_x2(digits["train"][400:800], np.array([[1.1, 0.9], [0.9, 1.1]]))
    options = {"cnn": {"epochs": 2, "width": 4}, "npr": {"epochs": 2, "width": 4},
               "reconstruction": {"epochs": 2, "width": 4}}
    detector = create("ensemble", **CPU, members="cnn,npr,reconstruction",
                      member_options=json.dumps(options)).fit(real, fake)
    assert [m.name for m in detector.members_] == ["cnn", "npr", "reconstruction"]
    assert detector.combiner_.coef_.shape == (1, 3)
    test_real = digits["test"]
    test_fake = transposed_conv_x2(digits["val"], np.array([[1.1, 0.9], [0.9, 1.1]]))
    scores = detector.predict_proba(np.concatenate([test_real, test_fake]))
    assert auc(scores[: len(test_real)], scores[len(test_real):]) > 0.9
    assert detector.member_logits(test_real).shape == (len(test_real), 3)
    again = load_detector(save_detector(detector, tmp_path / "ens"))
    np.testing.assert_array_equal(again.predict_proba(np.concatenate([test_real, test_fake])),
                                  scores)
    with pytest.raises(ForensicsError, match="member_options"):
        create("ensemble", member_options="{nope").fit(real, fake)
    with pytest.raises(ForensicsError, match="unknown detector"):
        create("ensemble", members="cnn,nope").fit(real, fake)


def test_capability_declarations():
    for name, needs_fakes in (("npr", True), ("reconstruction", False), ("surprisal", False),
                              ("ensemble", True)):
        cls = get(name)
        assert cls.needs_fakes is needs_fakes and cls.multiclass is False
        assert cls.needs_run is False and cls.torch_based is True
        create(name, **cls.tiny_options)  # the tiny options are valid options


def test_robust_augmentation_is_seeded_and_processes_like_detect_meets():
    from detectors.augment import robust

    images = smooth_images(400, 16, 3)
    out = robust(images, np.random.default_rng(5))
    np.testing.assert_array_equal(out, robust(images, np.random.default_rng(5)))
    assert out.shape == images.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    changed = np.abs(out - images).reshape(len(images), -1).max(1) > 2 / 255
    assert 0.5 < changed.mean() < 1.0  # each step random: most images changed, a few (≈ 2 %) not


def test_robust_share_leaves_the_rest_of_the_images_plain():
    """``share`` S: the images augmented are exactly those of share 1 (same stream), each kept
    with probability S; the others come back untouched."""
    from detectors.augment import robust

    images = smooth_images(400, 16, 1)
    every = robust(images, np.random.default_rng(5))
    half = robust(images, np.random.default_rng(5), 0.5)
    plain = np.all(half == images, axis=(1, 2, 3))
    assert 0.4 < plain.mean() < 0.6
    np.testing.assert_array_equal(half[~plain], every[~plain])
    with pytest.raises(ForensicsError, match="robust_share must lie in"):
        create("cnn", **CPU, epochs=1, width=4, robust=True, robust_share=0.0).fit(
            images[:20], images[20:40])
    with pytest.raises(ForensicsError, match="robust_share applies to the robust augmentation"):
        create("npr", **CPU, epochs=1, width=4, robust_share=0.5).fit(images[:20], images[20:40])
    with pytest.raises(ValueError, match="share must lie in"):
        robust(images[:2], np.random.default_rng(0), 1.5)


def test_robust_share_reaches_the_training_and_the_saved_options(tmp_path, monkeypatch):
    """``robust_share`` is a saved option of every fake-trained net detector, and what its
    training hands the augmentation."""
    import detectors.augment as augment

    images = smooth_images(40, 16, 1)
    shares = []
    real_robust = augment.robust

    def spy(batch, rng, share=1.0):
        shares.append(share)
        return real_robust(batch, rng, share)

    monkeypatch.setattr(augment, "robust", spy)
    for kind in ("cnn", "npr", "attribution"):
        shares.clear()
        detector = create(kind, **CPU, epochs=2, width=4, robust=True, robust_share=0.25)
        detector.fit(images[:20], images[20:])
        assert shares == [0.25, 0.25], kind  # one augmentation per epoch
        save_detector(detector, tmp_path / kind)
        assert load_detector(tmp_path / kind).get_params()["robust_share"] == 0.25


def test_robust_training_makes_processing_carry_no_signal(digits):
    """Robust augmentation on both classes plus the fpr threshold (set on plain and processed
    real validation images): processed held-out reals are called fake about as rarely as plain
    ones, and the fakes are still caught."""
    real = np.concatenate([digits["train"], digits["val"]])
    fake = transposed_conv_x2(np.concatenate([digits["train"], digits["test"]]),
                              np.array([[1.3, 0.7], [0.7, 1.3]]))
    _, report = train_detector("cnn", real[:1200], real[1200:], digits["test"], {"checker": fake},
                               {**CPU, "epochs": 4, "width": 8, "robust": True}, rule="fpr",
                               target_fpr=0.05)
    assert report["real_fpr"]["processed"] <= 0.15 and report["real_fpr"]["plain"] <= 0.15, report
    assert report["auc"] > 0.95, report


def test_robust_ensemble_combiner_sees_processed_images(digits):
    real = digits["train"][:400]
    fake = transposed_conv_x2(digits["train"][400:800], np.array([[1.1, 0.9], [0.9, 1.1]]))
    options = {"cnn": {"epochs": 1, "width": 4}, "surprisal": {"epochs": 1, "width": 4, "layers": 1}}
    detector = create("ensemble", **CPU, members="cnn,surprisal", member_options=json.dumps(options),
                      robust=True).fit(real, fake)
    assert detector.combiner_.coef_.shape == (1, 2)
    assert detector.combiner_.n_features_in_ == 2 and detector.robust is True


def test_ensemble_with_attribution_names_sources(digits):
    """An attribution member learns one class per fake source; the ensemble names the source."""
    real = digits["train"][:300]
    fakes = {"checker": transposed_conv_x2(digits["train"][300:600], np.array([[1.3, 0.7], [0.7, 1.3]])),
             "noisy": np.clip(digits["train"][600:900] + 0.2 * np.random.default_rng(0).random(
                 digits["train"][600:900].shape, dtype=np.float32), 0, 1)}
    options = {"attribution": {"epochs": 3, "width": 8}, "surprisal": {"epochs": 1, "width": 4, "levels": 16}}
    detector = create("ensemble", **CPU, members="attribution,surprisal",
                      member_options=json.dumps(options)).fit_sources({"real": real, **fakes})
    assert detector.members_[0].classes_ == ["real", "checker", "noisy"]
    scores, sources = detector.scores_and_sources(fakes["noisy"][:50])
    assert scores.shape == (50,) and set(sources) <= {"checker", "noisy"}
    assert np.mean(np.array(sources) == "noisy") > 0.8
    np.testing.assert_allclose(scores, detector.predict_proba(fakes["noisy"][:50]))


def test_ensemble_equal_stacking_weighs_members_by_their_spread_on_reals(digits):
    """``equal`` (default): every member's logit counts alike per standard deviation on real
    images, however well a fake-trained member separates the seen fakes, and the ensemble
    ranks better than either member; ``holdout`` fits free weights."""
    real = digits["train"][:400]
    fake = transposed_conv_x2(digits["train"][400:800], np.array([[1.1, 0.9], [0.9, 1.1]]))
    options = json.dumps({"cnn": {"epochs": 2, "width": 4},
                          "surprisal": {"epochs": 5, "width": 8, "layers": 2, "levels": 16}})
    test_real = digits["test"]
    test_fake = transposed_conv_x2(digits["val"], np.array([[1.1, 0.9], [0.9, 1.1]]))
    per_std = {}
    for stacking in ("equal", "holdout"):
        detector = create("ensemble", **CPU, members="cnn,surprisal", member_options=options,
                          stacking=stacking).fit(real, fake)
        logits_real, logits_fake = detector.member_logits(test_real), detector.member_logits(test_fake)
        per_std[stacking] = detector.combiner_.coef_[0] * logits_real.std(0)
        if stacking == "equal":
            scores = detector.predict_proba(np.concatenate([test_real, test_fake]))
            members = [auc(logits_real[:, i], logits_fake[:, i]) for i in range(2)]
            assert auc(scores[: len(test_real)], scores[len(test_real):]) > max(members) + 0.02
    equal = per_std["equal"]
    assert np.all(equal > 0) and equal.max() / equal.min() < 1.5, per_std
    free = np.abs(per_std["holdout"])
    assert free.max() / free.min() > 3, per_std  # here the free fit weighs them far apart
    with pytest.raises(ForensicsError, match="stacking"):
        create("ensemble", stacking="best").fit(real, fake)


def test_ensemble_folder_saved_before_stacking_loads_as_the_free_combiner_it_holds(digits, tmp_path):
    """A folder saved before the ``stacking`` option held a free logistic regression: it loads
    (and reports) as ``holdout``, with the same scores. Equal stacking bounds the weight of a
    member constant on the held-out reals (a tenth of its spread over all held-out images) and
    gives one constant on every image no weight."""
    real = digits["train"][:300]
    fake = transposed_conv_x2(digits["train"][300:600], np.array([[1.1, 0.9], [0.9, 1.1]]))
    options = json.dumps({"cnn": {"epochs": 1, "width": 4}, "npr": {"epochs": 1, "width": 4}})
    detector = create("ensemble", **CPU, members="cnn,npr", member_options=options,
                      stacking="holdout").fit(real, fake)
    folder = save_detector(detector, tmp_path / "old")
    header = json.loads((folder / "detector.json").read_text())
    del header["options"]["stacking"]
    (folder / "detector.json").write_text(json.dumps(header))
    again = load_detector(folder)
    assert again.stacking == "holdout"
    np.testing.assert_array_equal(again.predict_proba(digits["test"]), detector.predict_proba(digits["test"]))
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200), np.ones(200)]
    varied = np.r_[rng.normal(0, 1, 200), rng.normal(3, 1, 200)]
    on_fakes_only = np.r_[np.full(200, -5.0), rng.normal(0, 2, 200)]
    detector.stacking = "equal"
    coef = detector._combiner(np.c_[varied, on_fakes_only], labels).coef_[0]
    spread = np.c_[varied, on_fakes_only].std(0)
    assert np.isfinite(coef).all()
    assert coef[1] == pytest.approx(coef[0] * np.std(varied[:200]) / (0.1 * spread[1]))
    coef = detector._combiner(np.c_[varied, np.full(400, 2.0)], labels).coef_[0]
    assert coef[0] > 0 and coef[1] == 0
    with pytest.raises(ForensicsError, match="nothing to combine"):
        detector._combiner(np.c_[np.full(400, 1.0), np.full(400, 2.0)], labels)
