"""Generators: the shared contract, the course's formulas, and synthetic data sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forensics.errors import ForensicsError
from generators import create, get, list_generators
from generators.base import seeded
from tests.conftest import tiny_options

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = (1, 8, 8)


# -- registry and options -----------------------------------------------------------------


def test_registry_lists_the_course_models():
    assert set(list_generators()) >= {"ae", "vae", "gan", "infogan"}
    assert list_generators("*gan") == ["gan", "infogan"]
    assert get("vae").name == "vae"


def test_unknown_generator_names_the_known_ones():
    with pytest.raises(ForensicsError, match="known: ae, diffusion, gan, infogan, vae"):
        create("nope", image_shape=DIGITS)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ae", {"colour": "red"}, "unknown option"),
        ("ae", {"variant": "fancy"}, "variant must be one of"),
        ("ae", {"code_dim": "four"}, "not a valid int"),
        ("ae", {"linear": "maybe"}, "not a valid bool"),
        ("gan", {"k": 0}, "k must be at least 1"),
        ("gan", {"loss": "wasserstein"}, "loss must be one of"),
        ("gan", {"width": -3}, "noise_dim and width must be positive"),
        ("gan", {"hidden": -1}, "hidden 0 \\(none\\) or more"),
        ("infogan", {"noise_dim": 0}, "noise_dim and width must be positive"),
        ("infogan", {"categories": 1}, "categories must be at least 2"),
        ("infogan", {"continuous": -1}, "continuous must be 0"),
        ("infogan", {"lambda_cont": -0.1}, "lambda_disc and lambda_cont must be 0 or more"),
        ("vae", {"lr": -1.0}, "lr must be positive"),
        ("vae", {"batch_size": 0}, "batch_size must be positive"),
        ("vae", {"recon": "laplace"}, "recon must be one of"),
        ("vae", {"width": 0}, "must be positive"),
    ],
)
def test_bad_options_are_refused(name, options, message):
    with pytest.raises(ForensicsError, match=message):
        create(name, image_shape=DIGITS, **options)


def test_options_parse_strings_from_the_command_line():
    model = create("ae", image_shape=DIGITS, code_dim="3", linear="yes", lr="0.5")
    assert (model.options.code_dim, model.options.linear, model.options.lr) == (3, True, 0.5)
    assert type(model.options).from_dict(model.options.to_dict()) == model.options


@pytest.mark.parametrize("shape", [(1, 7, 7), (1, 6, 6), (3, 32, 28)])
def test_dcgan_refuses_sides_without_a_stage_or_not_square(shape):
    with pytest.raises(ForensicsError, match="DCGAN needs square images"):
        create("gan", image_shape=shape)


@pytest.mark.parametrize(("name", "shape", "stages"),
                         [(n, s, k) for n in ("gan", "infogan")
                          for s, k in (((1, 28, 28), 2), ((3, 32, 32), 3), ((3, 64, 64), 4))])
def test_gans_scale_with_the_image_side_and_train_a_step(name, shape, stages):
    torch.manual_seed(0)
    model = create(name, image_shape=shape, **tiny_options(name))
    convs = [m for m in model.nets["G"].modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    body = model.discriminator()[0]
    down = [m for m in body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(down) == stages
    # DCGAN: BatchNorm after every hidden layer of G, none on D's input layer
    first = list(body.modules()).index(down[0])
    assert not isinstance(list(body.modules())[first + 1], torch.nn.BatchNorm2d)
    x = torch.rand(4, *shape)
    losses = model.train_step(x)
    assert all(math.isfinite(v) for v in losses.values())
    images, _ = model.sample(3, seeded(0))
    assert images.shape == (3, *shape) and images.min() >= 0 and images.max() <= 1
    assert model.real_probability(x).shape == (4,)


def test_gan_samples_come_from_the_moving_average_of_g(digits_train):
    torch.manual_seed(0)
    model = create("gan", image_shape=DIGITS, **tiny_options("gan", ema=0.9))
    for step in range(3):
        model.train_step(digits_train[step * 32:(step + 1) * 32])
    assert int(model.ema.updates) == 3
    g = dict(model.nets["G"].named_parameters())
    averaged = dict(model.ema.net.named_parameters())
    assert any(not torch.equal(g[k], averaged[k]) for k in g)
    model.nets.eval()
    direct = model.nets["G"](torch.randn(2, model.code_dim, generator=seeded(1)))
    assert not torch.equal(model.sample(2, seeded(1))[0], direct)
    assert any(key.startswith("G_ema.") for key in model.weights())
    without = create("gan", image_shape=DIGITS, **tiny_options("gan", ema=0))
    assert without.ema is None and not any(k.startswith("G_ema.") for k in without.weights())


def test_the_moving_average_draws_with_batchnorm_statistics_of_its_own(digits_train):
    """G's running statistics belong to G's weights; the average's are re-estimated from its
    own activations on G's prior (as torch's update_bn does for weight averaging), once per
    update count and the same each time."""
    torch.manual_seed(0)
    model = create("gan", image_shape=DIGITS, **tiny_options("gan", ema=0.5))
    for step in range(4):
        model.train_step(digits_train[step * 32:(step + 1) * 32])
    copied = {k: v.clone() for k, v in model.ema.net.named_buffers() if "running" in k}
    assert all(torch.equal(v, dict(model.nets["G"].named_buffers())[k]) for k, v in copied.items())
    first, _ = model.sample(5, seeded(1))
    own = {k: v.clone() for k, v in model.ema.net.named_buffers() if "running" in k}
    assert any(not torch.equal(own[k], copied[k]) for k in own)
    # the statistics are the averaged G's batch statistics on its prior (cumulative over 16 draws)
    bn = next(m for m in model.ema.net.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen = []
    hook = bn.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].mean(0)))
    model._calibrated = -1
    model.sample(5, seeded(1))
    hook.remove()
    assert len(seen) == 17  # 16 batches re-estimate, then the sample itself
    assert torch.allclose(bn.running_mean, torch.stack(seen[:16]).mean(0), atol=1e-5)
    again, _ = model.sample(5, seeded(1))
    assert torch.equal(first, again)
    # a reloaded model draws the same images
    reloaded = create("gan", image_shape=DIGITS, **tiny_options("gan", ema=0.5))
    reloaded.load_weights(model.weights())
    assert torch.equal(reloaded.sample(5, seeded(1))[0], first)


# -- the contract every registered generator keeps ------------------------------------------


def _check_contract(name: str, dataset: str, shape: tuple[int, int, int], out) -> None:
    """Train 1 tiny epoch on ``dataset`` (images of ``shape``); sample, save, reload, reconstruct."""
    from generators.training import load_run, train

    run = train(name, tiny_options(name), out=out, dataset=dataset, epochs=1, seed=0, device="cpu")
    images, codes = run.model.sample(7, seeded(5))
    assert images.shape == (7, *shape)
    assert images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.isfinite(images).all()
    for value in codes.values():
        assert len(value) == 7

    again, _ = run.model.sample(7, seeded(5))
    other, _ = run.model.sample(7, seeded(6))
    assert torch.equal(images, again)
    assert not torch.equal(images, other)

    loaded = load_run(out)
    assert loaded.config["generator"] == name
    assert type(loaded.model) is type(run.model)
    reloaded, reloaded_codes = loaded.model.sample(7, seeded(5))
    assert torch.equal(images, reloaded)
    for key, value in codes.items():
        np.testing.assert_array_equal(value, reloaded_codes[key])

    real = torch.as_tensor(np.random.default_rng(0).random((3, *shape), dtype=np.float32))
    if "reconstruct" in loaded.model.modes:
        recon = loaded.model.reconstruct(real)
        assert recon.shape == real.shape and recon.dtype == torch.float32
        assert recon.min() >= 0 and recon.max() <= 1
        assert torch.equal(recon, run.model.reconstruct(real))
    else:
        with pytest.raises(ForensicsError, match="cannot reconstruct"):
            loaded.model.reconstruct(real)


@pytest.mark.parametrize("name", list_generators())
def test_generator_contract(name, tmp_path):
    _check_contract(name, "digits", DIGITS, tmp_path / "run")


#: every generator at the sides the toolkit supports, gray and colour (photograph patches)
SHAPES = [(1, 28, 28), (3, 32, 32), pytest.param((3, 64, 64), marks=pytest.mark.slow)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("name", list_generators())
def test_generator_contract_at_other_sizes(name, shape, patch_dataset, tmp_path):
    _check_contract(name, patch_dataset(shape), shape, tmp_path / "run")


@pytest.mark.parametrize("name", list_generators())
def test_train_step_reports_finite_losses_and_changes_weights(name, digits_train):
    torch.manual_seed(0)
    model = create(name, image_shape=DIGITS, **tiny_options(name))
    before = {k: v.clone() for k, v in model.weights().items()}
    losses = model.train_step(digits_train[:32])
    assert losses and all(math.isfinite(v) for v in losses.values())
    changed = [k for k, v in model.weights().items() if not torch.equal(v, before[k])]
    assert changed


@pytest.mark.parametrize("name", list_generators())
def test_explore_writes_its_figures(name, trained_run, tmp_path):
    from PIL import Image

    from generators.explore import explore
    from generators.training import load_run

    written = explore(load_run(trained_run(name)), tmp_path / "fig", seed=0)
    names = {path.name for path in written}
    assert "samples.png" in names
    if "reconstruct" in get(name).modes:
        assert {"reconstructions.png", "interpolation.png"} <= names
    if name == "vae":
        assert "latent_space.png" in names
    if name == "infogan":
        assert {"traverse_c1.png", "traverse_c2.png", "traverse_c3.png"} <= names
    if get(name).interpolates_prior:
        assert "latent_interpolation.png" in names
    for path in written:
        with Image.open(path) as image:
            # a figure (title, axes) around the grid, its title also in the PNG's text
            assert image.size[0] > 300 and image.size[1] > 200
            assert image.text.get("Title", "").startswith(name)


def _texts(fig) -> dict[str, object]:
    ax = fig.axes[0]
    return {"title": ax.get_title(), "x": ax.get_xlabel(), "y": ax.get_ylabel(),
            "columns": [t.get_text() for t in ax.get_xticklabels()],
            "rows": [t.get_text() for t in ax.get_yticklabels()]}


def test_infogan_traversals_say_what_they_vary(trained_run):
    import matplotlib.pyplot as plt

    from generators.explore import figures
    from generators.training import load_run

    drawn = {name: fig for name, _, fig in figures(load_run(trained_run("infogan")), seed=0)}
    c1 = _texts(drawn["traverse_c1.png"])
    assert c1["rows"] == [str(c) for c in range(10)] and c1["y"] == "c1"
    assert "one value per row" in c1["title"] and "z fixed per row" not in c1["title"]
    c2 = _texts(drawn["traverse_c2.png"])
    assert c2["columns"][0] == "-2" and c2["columns"][-1] == "2" and c2["x"] == "c2"
    assert "from −2 to 2" in c2["title"] and "c1, c3" in c2["y"]
    line = _texts(drawn["latent_interpolation.png"])
    assert line["columns"][0] == "0" and line["columns"][-1] == "1"
    for fig in drawn.values():
        plt.close(fig)


def test_gan_latent_interpolation_is_a_straight_line(trained_run):
    from generators.base import seeded
    from generators.training import load_run

    model = load_run(trained_run("gan")).model
    images = model.interpolate_prior(seeded(0, 2), rows=2, steps=5)
    assert images.shape == (10, *model.image_shape)
    # the ends of row r are G of the two draws themselves (the G samples are drawn from:
    # the moving average of G's weights when the run keeps one, as the tiny options do)
    a = model.code_vector(model.draw_codes(2, seeded(0, 2)))
    with torch.no_grad():
        assert torch.allclose(images[0], model.sampler(a[:1])[0], atol=1e-5)


# -- autoencoders ---------------------------------------------------------------------------


def test_linear_autoencoder_spans_the_pca_subspace(digits_train):
    """Linear f, g and the quadratic loss: the decoder's columns span the top-k PCA axes."""
    from scipy.linalg import subspace_angles
    from sklearn.decomposition import PCA

    k = 4
    x = digits_train.flatten(1)
    torch.manual_seed(0)
    model = create("ae", image_shape=DIGITS, linear=True, code_dim=k, lr=3e-2)
    for _ in range(1500):
        model.train_step(digits_train)
    decoder = model.nets["decoder"][0].weight.detach().double().numpy()  # (64, k)
    components = PCA(k).fit(x.double().numpy()).components_.T
    angles = subspace_angles(decoder, components)
    assert angles.shape == (k,)
    assert angles.max() < 0.05
    # and the reconstruction error is PCA's: the variance left outside the k axes
    pca_error = PCA(k).fit(x.numpy())
    residual = x.numpy() - pca_error.inverse_transform(pca_error.transform(x.numpy()))
    with torch.no_grad():
        error = model.loss(digits_train)["reconstruction"].item()
    assert error == pytest.approx((residual**2).sum(1).mean(), rel=1e-3)


def test_quadratic_and_sparsity_losses():
    from generators.autoencoder import quadratic_loss, sparsity_penalty

    gen = torch.Generator().manual_seed(0)
    x, r = torch.rand(5, 1, 8, 8, generator=gen), torch.rand(5, 1, 8, 8, generator=gen)
    assert quadratic_loss(x, r).item() == pytest.approx(
        F.mse_loss(r, x, reduction="sum").item() / 5, rel=1e-6
    )
    h = torch.randn(5, 3, generator=gen)
    assert sparsity_penalty(h, 0.3).item() == pytest.approx(0.3 * h.abs().sum().item() / 5, rel=1e-6)


def test_contractive_penalty_matches_finite_differences():
    from generators.autoencoder import contractive_penalty

    torch.manual_seed(0)
    model = create("ae", image_shape=DIGITS, variant="contractive", hidden=16, code_dim=3)
    encoder = model.nets["encoder"].double()
    x = torch.rand(4, *DIGITS, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lam = 0.7
    penalty = contractive_penalty(encoder, x, lam)

    eps = 1e-6
    flat = x.flatten(1)
    jacobian = torch.zeros(4, 3, flat.shape[1], dtype=torch.float64)
    with torch.no_grad():
        for j in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, j] = eps
            jacobian[:, :, j] = (encoder(flat + step) - encoder(flat - step)) / (2 * eps)
    expected = lam * jacobian.pow(2).sum((1, 2)).mean()
    assert expected.item() > 0
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-3)

    # the penalty trains the encoder: its gradient reaches the first layer
    penalty.backward()
    assert encoder[1].weight.grad is not None and encoder[1].weight.grad.abs().sum() > 0


def test_autoencoder_variants_add_their_penalty(digits_train):
    from generators.autoencoder import contractive_penalty, sparsity_penalty

    x = digits_train[:16]
    torch.manual_seed(0)
    model = create("ae", image_shape=DIGITS, variant="contractive", hidden=16, code_dim=3)
    terms = model.loss(x)
    expected = contractive_penalty(model.nets["encoder"], x, 1e-2)  # the variant's default λ
    assert terms["contractive"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(
        terms["reconstruction"].item() + terms["contractive"].item(), rel=1e-6
    )

    model = create("ae", image_shape=DIGITS, variant="sparse", lam=0.5, hidden=16, code_dim=3)
    terms = model.loss(x)
    assert terms["sparsity"].item() == pytest.approx(sparsity_penalty(model.encode(x), 0.5).item(), rel=1e-6)
    assert set(create("ae", image_shape=DIGITS).loss(x)) == {"reconstruction", "loss"}


def test_denoising_reconstructs_the_clean_input_from_a_corrupted_one(digits_train):
    """L(x, g(f(x̃))): the target is the clean x, the encoder sees x̃."""
    from generators.autoencoder import quadratic_loss

    x = digits_train[:16]
    model = create("ae", image_shape=DIGITS, variant="denoising", corruption="mask", noise=0.5)
    torch.manual_seed(3)
    terms = model.loss(x)
    torch.manual_seed(3)
    noisy = x * (torch.rand_like(x) >= 0.5).to(x.dtype)
    with torch.no_grad():
        expected = quadratic_loss(x, model.decode(model.encode(noisy)))
        clean = quadratic_loss(x, model.decode(model.encode(x)))
    assert terms["reconstruction"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["reconstruction"].item() != pytest.approx(clean.item(), rel=1e-3)


@pytest.mark.parametrize(("kind", "amount"), [("gaussian", 0.3), ("mask", 0.25)])
def test_corruption_process(kind, amount):
    from generators.autoencoder import corrupt

    torch.manual_seed(0)
    x = torch.full((200, 1, 16, 16), 0.5)
    noisy = corrupt(x, kind, amount)
    if kind == "gaussian":
        assert (noisy - x).std().item() == pytest.approx(amount, rel=0.02)
    else:
        assert set(noisy.unique().tolist()) == {0.0, 0.5}
        assert (noisy == 0).float().mean().item() == pytest.approx(amount, abs=0.01)


def test_autoencoder_samples_from_its_fitted_code_distribution(digits_train):
    """After ``end_epoch`` the stored mixture reproduces the mean of the training codes."""
    torch.manual_seed(0)
    model = create("ae", image_shape=DIGITS, hidden=32, code_dim=3)
    for _ in range(20):
        model.train_step(digits_train[:256])
    model.end_epoch(digits_train)
    with torch.no_grad():
        codes = model.encode(digits_train)
    prior = model.nets["prior"]
    assert prior.weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    mixture_mean = (prior.weights[:, None] * prior.means).sum(0)
    torch.testing.assert_close(mixture_mean, codes.mean(0), atol=1e-3, rtol=1e-3)
    _, drawn = model.sample(4000, seeded(0))
    assert np.allclose(drawn["z"].mean(0), codes.mean(0).numpy(), atol=0.1 * codes.std().item())


# -- variational autoencoder ------------------------------------------------------------------


def test_kl_divergence_matches_monte_carlo():
    from torch.distributions import Normal

    from generators.vae import kl_divergence

    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    logvar = torch.rand(3, 4, generator=gen, dtype=torch.float64) * 3 - 1.5
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 3, 4, generator=gen, dtype=torch.float64)
    log_q = Normal(mu, std).log_prob(z).sum(-1)
    log_p = Normal(0.0, 1.0).log_prob(z).sum(-1)
    estimate = (log_q - log_p).mean(0)
    closed = kl_divergence(mu, logvar)
    assert closed.shape == (3,)
    torch.testing.assert_close(closed, estimate, rtol=0.02, atol=0)
    assert kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0


def test_reparametrization_has_the_posterior_moments():
    from generators.vae import reparametrize

    torch.manual_seed(0)
    mu = torch.tensor([[1.0, -2.0]]).expand(100_000, 2)
    logvar = torch.tensor([[0.0, math.log(0.25)]]).expand(100_000, 2)
    z = reparametrize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)
    mu = torch.zeros(4, 2, requires_grad=True)
    reparametrize(mu, torch.zeros(4, 2)).sum().backward()
    assert torch.equal(mu.grad, torch.ones(4, 2))  # z is differentiable in μ


def test_vae_reconstruction_nll_and_loss():
    from generators.vae import kl_divergence, reconstruction_nll

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 8, 8, generator=gen)
    x_hat = torch.rand(5, 1, 8, 8, generator=gen) * 0.98 + 0.01
    bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(x, x_hat, "bce"), bce)
    torch.testing.assert_close(reconstruction_nll(x, x_hat, "mse"), (x - x_hat).pow(2).flatten(1).sum(1))

    model = create("vae", image_shape=DIGITS, hidden=16, latent_dim=3, beta=2.5)
    terms = model.loss(x)
    assert terms["loss"].item() == pytest.approx(
        terms["reconstruction"].item() + 2.5 * terms["kl"].item(), rel=1e-6
    )
    with torch.no_grad():
        mu, logvar = model.encode(x)
    assert terms["kl"].item() == pytest.approx(kl_divergence(mu, logvar).mean().item(), rel=1e-5)


def test_vae_calibrated_gaussian_is_the_normal_nll_at_the_maximum_likelihood_variance():
    from generators.vae import reconstruction_nll

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 8, 8, generator=gen)
    x_hat = torch.rand(5, 3, 8, 8, generator=gen)
    sigma = (x - x_hat).pow(2).mean().sqrt()
    expected = -torch.distributions.Normal(x_hat, sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(x, x_hat, "gaussian"), expected)
    # any other variance explains the batch worse
    for scale in (0.5, 2.0):
        worse = -torch.distributions.Normal(x_hat, sigma * scale).log_prob(x).sum()
        assert worse > expected.sum()


@pytest.mark.parametrize(("shape", "stages"), [((1, 8, 8), 1), ((1, 28, 28), 2), ((3, 32, 32), 3),
                                                ((3, 64, 64), 4)])
def test_vae_stride_two_stages_follow_the_image_side(shape, stages):
    model = create("vae", image_shape=shape, width=4, hidden=8, latent_dim=2)
    convs = [m for m in model.nets["encoder"] if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.nets["decoder"] if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == len(deconvs) == stages and all(c.stride == (2, 2) for c in convs)
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == x.shape


def test_vae_interpolation_ends_at_the_posterior_means():
    torch.manual_seed(0)
    model = create("vae", image_shape=DIGITS, hidden=16, latent_dim=3)
    a, b = torch.rand(2, *DIGITS, generator=torch.Generator().manual_seed(0))
    line = model.interpolate(a, b, steps=5)
    assert line.shape == (5, *DIGITS)
    torch.testing.assert_close(line[0], model.reconstruct(a[None])[0])
    torch.testing.assert_close(line[-1], model.reconstruct(b[None])[0])


# -- GAN losses ------------------------------------------------------------------------------


def _logits(n: int = 50) -> torch.Tensor:
    return torch.linspace(-6, 6, n, dtype=torch.float64)


def test_discriminator_loss_is_the_course_value_function():
    from generators.dcgan import discriminator_loss

    real = _logits()
    fake = _logits().flip(0) * 0.7 + 0.3
    expected = -(torch.sigmoid(real).log().mean() + (1 - torch.sigmoid(fake)).log().mean())
    torch.testing.assert_close(discriminator_loss(real, fake), expected)


def test_generator_losses():
    from generators.dcgan import generator_loss

    fake = _logits()
    torch.testing.assert_close(generator_loss(fake, "minimax"), (1 - torch.sigmoid(fake)).log().mean())
    torch.testing.assert_close(generator_loss(fake, "non-saturating"), -torch.sigmoid(fake).log().mean())


def test_minimax_saturates_where_non_saturating_does_not():
    """When D confidently rejects fakes, log(1 − D) has almost no gradient; −log D has."""
    from generators.dcgan import generator_loss

    grads = {}
    for kind in ("minimax", "non-saturating"):
        logit = torch.tensor([-8.0], dtype=torch.float64, requires_grad=True)
        generator_loss(logit, kind).backward()
        grads[kind] = logit.grad.abs().item()
    assert grads["minimax"] < 1e-3
    assert grads["non-saturating"] > 0.99


def test_gan_losses_are_stable_for_extreme_logits():
    from generators.dcgan import discriminator_loss, generator_loss

    extreme = torch.tensor([-200.0, 200.0])
    for value in (
        discriminator_loss(extreme, extreme),
        generator_loss(extreme, "minimax"),
        generator_loss(extreme, "non-saturating"),
    ):
        assert torch.isfinite(value)


# -- InfoGAN ---------------------------------------------------------------------------------


def test_information_loss_is_cross_entropy_on_logits_plus_gaussian_nll():
    from generators.infogan import gaussian_nll, information_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=gen, dtype=torch.float64) * 3
    c1 = torch.randint(0, 10, (6,), generator=gen)
    c_cont = torch.rand(6, 2, generator=gen, dtype=torch.float64) * 2 - 1
    mean = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    logvar = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    q_out = {"logits": logits, "mean": mean, "logvar": logvar}

    disc_only = information_loss(q_out, {"c1": c1}, 1.0, 0.1)
    torch.testing.assert_close(disc_only, F.cross_entropy(logits, c1))
    torch.testing.assert_close(disc_only, -logits.log_softmax(1)[torch.arange(6), c1].mean())
    after_softmax = F.cross_entropy(logits.softmax(1), c1)
    assert abs(disc_only.item() - after_softmax.item()) > 0.1

    full = information_loss(q_out, {"c1": c1, "c_cont": c_cont}, 2.0, 0.3)
    expected = 2.0 * F.cross_entropy(logits, c1) + 0.3 * gaussian_nll(c_cont, mean, logvar).mean()
    torch.testing.assert_close(full, expected)


def test_gaussian_nll_matches_torch_normal():
    from torch.distributions import Normal

    from generators.infogan import gaussian_nll

    gen = torch.Generator().manual_seed(1)
    c, mean = torch.randn(8, 3, generator=gen), torch.randn(8, 3, generator=gen)
    logvar = torch.randn(8, 3, generator=gen)
    expected = -Normal(mean, (0.5 * logvar).exp()).log_prob(c).sum(1)
    torch.testing.assert_close(gaussian_nll(c, mean, logvar), expected)


def test_infogan_q_head_gives_raw_logits_and_codes_are_laid_out():
    torch.manual_seed(0)
    model = create("infogan", image_shape=DIGITS, **tiny_options("infogan"))
    codes = model.draw_codes(64, seeded(0))
    assert codes["c1"].min() >= 0 and codes["c1"].max() < 10
    assert codes["c_cont"].min() >= -1 and codes["c_cont"].max() <= 1
    vector = model.code_vector(codes)
    assert vector.shape == (64, 8 + 10 + 2)
    assert torch.equal(vector[:, 8:18].argmax(1), codes["c1"])
    assert torch.equal(vector[:, 18:], codes["c_cont"])
    model.nets.eval()
    with torch.no_grad():
        logits = model.heads(torch.rand(16, *DIGITS))[1]["logits"]
    # a softmax output would be positive and sum to one in every row
    assert (logits < 0).any() or not torch.allclose(logits.sum(1), torch.ones(16))
    traversal = model.traverse("c2", seeded(0), rows=3, steps=4)
    assert traversal.shape == (12, *DIGITS)


def test_infogan_noise_has_the_spread_its_option_gives():
    """z ~ N(0, noise_scale² I) (1 by default, the course's N(0, I); smaller is ClusterGAN's
    small-variance noise beside the one-hot c1); the codes keep their own scales; a spread of 0
    or less is refused."""
    default = create("infogan", image_shape=DIGITS, **tiny_options("infogan"))
    assert default.options.noise_scale == 1.0
    spreads = {}
    for scale in (0.3, 1.0):
        model = create("infogan", image_shape=DIGITS, **tiny_options("infogan", noise_scale=scale))
        codes = model.draw_codes(20000, seeded(0))
        spreads[scale] = float(codes["z"].std())
        assert abs(float(codes["z"].mean())) < 0.02 * scale
        assert codes["c_cont"].abs().max() <= 1 and 0.9 < float(codes["c_cont"].abs().max())
    assert spreads[0.3] == pytest.approx(0.3, rel=0.02) and spreads[1.0] == pytest.approx(1.0, rel=0.02)
    for bad in (0, -0.5):
        with pytest.raises(ForensicsError, match="noise_scale must be positive"):
            create("infogan", image_shape=DIGITS, **tiny_options("infogan", noise_scale=bad))


# -- GAN training schedule -------------------------------------------------------------------


def _optimizer_steps(model, name: str) -> int:
    states = model.optimizers[name].state.values()
    counts = {int(state["step"]) for state in states}
    assert len(counts) == 1
    return counts.pop()


@pytest.mark.parametrize(("batch_size", "epochs"), [(64, 1), (62, 2)])
def test_gan_k_discriminator_steps_per_generator_step(tmp_path, batch_size, epochs):
    from generators.training import train

    steps = math.ceil(1438 / batch_size)  # 23 (odd: the last k-iteration is partial) or 24;
    # every image is used each epoch (the last batch holds the remaining 30 or 12 images)
    run = train(
        "gan",
        tiny_options("gan", k=2, batch_size=batch_size),
        out=tmp_path / "r",
        dataset="digits",
        epochs=epochs,
        seed=0,
        device="cpu",
    )
    assert _optimizer_steps(run.model, "D") == steps * epochs
    assert _optimizer_steps(run.model, "G") == (steps // 2) * epochs
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    assert all({"D_loss", "G_loss"} <= set(json.loads(line)) for line in lines)


def test_gan_k1_alternates_one_to_one(digits_train):
    torch.manual_seed(0)
    model = create("gan", image_shape=DIGITS, **tiny_options("gan"))
    for step in range(3):
        result = model.train_step(digits_train[step * 32 : (step + 1) * 32])
        assert set(result) == {"D_loss", "G_loss"}
    assert _optimizer_steps(model, "D") == _optimizer_steps(model, "G") == 3


def test_discriminator_step_leaves_the_generator_alone(digits_train):
    torch.manual_seed(0)
    model = create("gan", image_shape=DIGITS, **tiny_options("gan", k=3))
    before = {
        k: v.clone()
        for k, v in model.nets["G"].state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    result = model.train_step(digits_train[:32])
    assert set(result) == {"D_loss"}
    after = model.nets["G"].state_dict()
    assert all(torch.equal(value, after[key]) for key, value in before.items())


def test_gan_real_probability_is_a_probability():
    torch.manual_seed(0)
    model = create("gan", image_shape=DIGITS, **tiny_options("gan"))
    p = model.real_probability(torch.rand(5, *DIGITS))
    assert p.shape == (5,) and (p > 0).all() and (p < 1).all()


# -- synthetic data sets ---------------------------------------------------------------------


def _png_pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


@pytest.mark.parametrize("name", list_generators())
def test_generated_manifest_matches_the_files(name, trained_run, tmp_path):
    from forensics import provenance
    from forensics.images import png_text, to_uint8
    from generators.synthesis import MANIFEST, PROVENANCE_KEY, generate
    from generators.training import WEIGHTS, load_run

    run = load_run(trained_run(name))
    out = tmp_path / "synthetic"
    manifest = generate(run, 9, out, seed=3)
    header, rows = manifest["header"], manifest["images"]

    assert json.loads((out / MANIFEST).read_text()) == manifest
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == len(rows) == header["n"] == 9
    assert pngs == sorted(row["file"] for row in rows)
    assert header["generator"] == name
    assert header["variant"] == type(run.model).variant_of(run.config["options"])
    assert header["seed"] == 3 and header["mode"] == "sample"
    assert header["run_config_hash"] == provenance.config_hash(run.config)
    assert header["checkpoint_sha256"] == provenance.sha256_file(run.path / WEIGHTS)
    assert header["image_shape"] == list(DIGITS)

    expected, _ = run.model.sample(9, seeded(3, 0))
    expected_pixels = to_uint8(expected.numpy())
    for i, row in enumerate(rows):
        path = out / row["file"]
        assert row["index"] == i
        assert provenance.sha256_file(path) == row["sha256"]
        tag = json.loads(png_text(path)[PROVENANCE_KEY])
        assert tag == {
            "generator": name,
            "variant": header["variant"],
            "seed": 3,
            "index": i,
            "run_config_hash": header["run_config_hash"],
        }
        np.testing.assert_array_equal(_png_pixels(path), expected_pixels[i, :, :, 0])

    again = generate(run, 9, tmp_path / "again", seed=3)
    assert [r["sha256"] for r in again["images"]] == [r["sha256"] for r in rows]
    other = generate(run, 9, tmp_path / "other", seed=4)
    assert [r["sha256"] for r in other["images"]] != [r["sha256"] for r in rows]


def test_reconstruct_mode_records_the_source_image(trained_run, tmp_path):
    from forensics.data import load, split_indices
    from forensics.images import to_uint8
    from generators.synthesis import generate
    from generators.training import load_run

    run = load_run(trained_run("ae"))
    manifest = generate(run, 6, tmp_path / "recon", seed=0, mode="reconstruct")
    assert manifest["header"]["mode"] == "reconstruct"
    full = load("digits")
    test_index = split_indices(full.labels)["test"]
    sources = [row["source"] for row in manifest["images"]]
    assert [s["index"] for s in sources] == test_index[:6].tolist()
    assert all(s == {"dataset": "digits", "split": "test", "index": s["index"]} for s in sources)
    for row in manifest["images"]:
        real = torch.as_tensor(full.images[row["source"]["index"]][None])
        expected = to_uint8(run.model.reconstruct(real).numpy())[0, :, :, 0]
        np.testing.assert_array_equal(_png_pixels(tmp_path / "recon" / row["file"]), expected)


def test_generate_refuses_what_it_cannot_do(trained_run, tmp_path):
    from generators.synthesis import generate
    from generators.training import load_run

    gan = load_run(trained_run("gan"))
    for n in (0, -5):
        with pytest.raises(ForensicsError, match="positive"):
            generate(gan, n, tmp_path / f"n{n}")
        assert not (tmp_path / f"n{n}").exists()
    with pytest.raises(ForensicsError, match="cannot --mode reconstruct"):
        generate(gan, 3, tmp_path / "r", mode="reconstruct")
    with pytest.raises(ForensicsError, match="test has 180"):
        generate(load_run(trained_run("ae")), 181, tmp_path / "big", mode="reconstruct")
    assert not (tmp_path / "r").exists() and not (tmp_path / "big").exists()


def test_existing_output_needs_force(trained_run, tmp_path):
    from generators.synthesis import generate
    from generators.training import load_run

    run = load_run(trained_run("vae"))
    out = tmp_path / "syn"
    generate(run, 4, out, seed=0)
    with pytest.raises(ForensicsError, match="already exists"):
        generate(run, 2, out, seed=0)
    assert len(list(out.glob("*.png"))) == 4
    manifest = generate(run, 2, out, seed=1, force=True)
    assert len(list(out.glob("*.png"))) == 2 and manifest["header"]["seed"] == 1
    assert not list(tmp_path.glob(".*"))  # no staging or trash folder left behind


def test_generate_more_than_one_chunk(trained_run, tmp_path):
    from generators.synthesis import CHUNK, generate
    from generators.training import load_run

    run = load_run(trained_run("gan"))
    n = CHUNK + 5
    manifest = generate(run, n, tmp_path / "many", seed=0)
    assert [row["index"] for row in manifest["images"]] == list(range(n))
    assert len({row["sha256"] for row in manifest["images"]}) > n * 0.9
    assert len(list((tmp_path / "many").glob("*.png"))) == n


@pytest.mark.parametrize("name", ["gan", "infogan"])
def test_lr_g_sets_only_the_generators_learning_rate(name):
    model = create(name, image_shape=(1, 8, 8), width=8, lr="2e-4", lr_g="1e-3")
    assert model.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-3)
    assert model.optimizers["D"].param_groups[0]["lr"] == pytest.approx(2e-4)
    same = create(name, image_shape=(1, 8, 8), width=8, lr="2e-4", lr_g="0")
    assert same.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert same.options.lr_g == pytest.approx(2e-4)  # the effective rate is what config records
    with pytest.raises(ForensicsError, match="lr_g"):
        create(name, image_shape=(1, 8, 8), lr_g="-1")


@pytest.mark.parametrize("continuous", [0, 1, 3])
def test_infogan_traverses_the_continuous_codes_it_has(continuous):
    model = create("infogan", image_shape=DIGITS, **tiny_options("infogan", continuous=continuous))
    losses = model.train_step(torch.rand(8, *DIGITS, generator=seeded(1)))
    assert all(math.isfinite(value) for value in losses.values()), losses
    codes = model.traversable_codes
    assert codes == ("c1", *(f"c{i + 2}" for i in range(continuous)))
    for code in codes:
        grid = model.traverse(code, seeded(0), rows=2, steps=3)
        rows = model.options.categories * 2 if code == "c1" else 2 * 3
        assert grid.shape == (rows, *DIGITS) and torch.isfinite(grid).all()


def test_classify_is_q_inferring_c1():
    """``classify`` reads c1 back from an image by Q (Chen et al.'s use of Q as a classifier):
    after Q has trained on G's fakes, it names the category that made a fake far above chance,
    in eval mode and in chunks, leaving the weights untouched."""
    torch.manual_seed(0)
    model = create("infogan", image_shape=(1, 8, 8), width=8, hidden=16, noise_dim=4, lr_q="1e-2")
    real = torch.rand(64, 1, 8, 8, generator=seeded(2))
    for _ in range(150):
        model.train_step(real)
    images, codes = model.sample(400, seeded(3))
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    found = model.classify(images)
    assert found.shape == (400,) and found.dtype.kind == "i"
    assert (found == codes["c1"]).mean() > 0.5  # chance: 0.1
    assert all(torch.equal(before[k], v) for k, v in model.nets.state_dict().items())
    # one image alone gets its answer (eval mode: BatchNorm in train mode refuses a batch of
    # one), and a set larger than a chunk reads as its parts do; float64 input is accepted
    model.nets.train()
    assert model.classify(images[:1]).tolist() == found[:1].tolist()
    many = torch.cat([images] * 3).double()
    assert model.classify(many).tolist() == np.tile(found, 3).tolist()


def test_lr_q_sets_only_the_q_heads_learning_rate():
    model = create("infogan", image_shape=(1, 8, 8), width=8, lr="2e-4", lr_q="1e-3")
    groups = model.optimizers["D"].param_groups
    q_ids = {id(p) for p in model.nets["Q"].parameters()}
    assert [g["lr"] for g in groups] == pytest.approx([2e-4, 1e-3])
    assert {id(p) for p in groups[1]["params"]} == q_ids
    assert not q_ids & {id(p) for p in groups[0]["params"]}
    before = {k: v.clone() for k, v in model.nets["Q"].state_dict().items()}
    model.train_step(torch.rand(8, 1, 8, 8, generator=seeded(1)))
    assert any(not torch.equal(before[k], v) for k, v in model.nets["Q"].state_dict().items())
    same = create("infogan", image_shape=(1, 8, 8), width=8, lr="2e-4")
    assert len(same.optimizers["D"].param_groups) == 1  # earlier runs' checkpoints resume
    assert same.options.lr_q == pytest.approx(2e-4)  # the effective rate is what config records
    with pytest.raises(ForensicsError, match="lr_q"):
        create("infogan", image_shape=(1, 8, 8), lr_q="-1")
