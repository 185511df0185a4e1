"""The diffusion generator: its formulas, its U-Net's shape, samplers, and the command line.

The shared contract (save, resume, seeds, generate, explore) runs over every registered
generator in test_generators.py and test_training.py; here is what only diffusion has.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.errors import ForensicsError
from generators import create
from generators.base import seeded
from tests.conftest import tiny_options

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = (1, 8, 8)


def _model(shape=DIGITS, **options):
    torch.manual_seed(0)
    return create("diffusion", image_shape=shape, **tiny_options("diffusion", **options))


def test_linear_schedule_and_the_forward_process():
    """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) with Ho et al.'s β_t from 1e-4 to 0.02."""
    model = _model(timesteps=50)
    betas = torch.linspace(1e-4, 0.02, 50, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    x0 = torch.rand(6, *DIGITS) * 2 - 1
    eps = torch.randn(6, *DIGITS)
    t = torch.tensor([0, 3, 10, 25, 40, 49])
    expected = (alpha_bar[t].sqrt()[:, None, None, None] * x0
                + (1 - alpha_bar[t]).sqrt()[:, None, None, None] * eps)
    torch.testing.assert_close(model.noise.add_noise(x0, eps, t), expected.float())


def test_cosine_schedule_is_nichol_and_dhariwals():
    """ᾱ_t = f(t) / f(0), f(t) = cos²((t/T + s) / (1 + s) · π/2), s = 0.008 (β capped at 0.999)."""
    T = 100
    model = _model(timesteps=T, schedule="cosine")

    def f(t: float) -> float:
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    alpha_bar = model.noise.alphas_cumprod.double()
    expected = torch.tensor([f(t + 1) / f(0) for t in range(T - 5)], dtype=torch.float64)
    torch.testing.assert_close(alpha_bar[: T - 5], expected, rtol=1e-4, atol=1e-6)


def test_stratified_timesteps_cover_the_noise_levels_and_stay_uniform():
    """One shared offset on an even grid: n draws put one t in each of n equal strata of
    {0..T−1}, in random order, and every single t is still uniform (L_simple's expectation)."""
    model = _model(timesteps=50, timestep_draw="stratified")
    torch.manual_seed(0)
    assert sorted(model._draw_timesteps((50,), torch.float32, "cpu").tolist()) == list(range(50))
    t = model._draw_timesteps((10,), torch.float32, "cpu")
    assert sorted((t // 5).tolist()) == list(range(10)) and not torch.equal(t, t.sort().values)
    first = torch.stack([model._draw_timesteps((7,), torch.float32, "cpu")[0] for _ in range(5000)])
    counts = torch.bincount(first, minlength=50).double()
    assert first.min() >= 0 and first.max() <= 49
    assert ((counts - 100) ** 2 / 100).sum() < 100  # χ² with 49 d.o.f.: far below for uniform


def test_loss_is_the_simple_loss_on_images_mapped_to_minus_one_one(digits_train):
    """‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² (mean over pixels), x_0 = 2x − 1, t ~ U{0..T−1}."""
    model = _model()
    x = digits_train[:16]
    torch.manual_seed(3)
    loss = model.loss(x)
    torch.manual_seed(3)
    t = torch.randint(model.options.timesteps, (16,))
    eps = torch.randn(16, *DIGITS)
    alpha_bar = model.noise.alphas_cumprod[t][:, None, None, None]
    noisy = alpha_bar.sqrt() * (2 * x - 1) + (1 - alpha_bar).sqrt() * eps
    with torch.no_grad():
        expected = F.mse_loss(model.nets["unet"](noisy, t).sample, eps)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(("side", "stages"), [(8, 1), (28, 2), (32, 3), (64, 4)])
def test_the_unet_has_one_stage_per_halving_of_the_side(side, stages):
    for channels in (1, 3):
        model = create("diffusion", image_shape=(channels, side, side), width=8, timesteps=10)
        unet = model.nets["unet"]
        assert len(unet.down_blocks) == stages + 1  # the last block keeps its side
        assert tuple(unet.config.block_out_channels)[:3] == (8, 16, 32)[: stages + 1]
        with torch.no_grad():
            out = unet(torch.zeros(2, channels, side, side), torch.tensor([1, 5])).sample
        assert out.shape == (2, channels, side, side)


def test_widest_caps_the_stage_widths_and_the_middle_block_is_optional():
    model = create("diffusion", image_shape=(1, 64, 64), width=4, widest=2, mid_block=False,
                   timesteps=10)
    unet = model.nets["unet"]
    assert tuple(unet.config.block_out_channels) == (4, 8, 8, 8, 8)
    assert unet.mid_block is None
    with torch.no_grad():
        out = unet(torch.zeros(2, 1, 64, 64), torch.tensor([1, 5])).sample
    assert out.shape == (2, 1, 64, 64)
    default = create("diffusion", image_shape=(1, 28, 28), width=4, timesteps=10).nets["unet"]
    assert tuple(default.config.block_out_channels) == (4, 8, 16) and default.mid_block is not None


def test_ema_starts_as_the_weights_and_follows_them(digits_train):
    model = _model()
    ema, unet = model.nets["ema"], model.nets["unet"]
    assert all(torch.equal(a, b) for a, b in zip(ema.net.parameters(), unet.parameters(), strict=True))
    assert not any(p.requires_grad for p in ema.parameters())
    model.train_step(digits_train[:32])
    model.train_step(digits_train[32:64])
    assert int(ema.updates) == 2
    before = [p.clone() for p in ema.net.parameters()]
    model.train_step(digits_train[64:96])
    # decay min(0.999, 3/12): θ_ema ← 0.25 θ_ema + 0.75 θ
    for old, new, now in zip(before, ema.net.parameters(), unet.parameters(), strict=True):
        torch.testing.assert_close(new, 0.25 * old + 0.75 * now)
    assert "ema.updates" in model.weights()
    no_ema = _model(ema=0.0)
    assert "ema" not in no_ema.nets and no_ema.denoiser is no_ema.nets["unet"]


@pytest.mark.parametrize("sampler", ["dpm-sde", "ddim", "ddpm"])
def test_samplers_are_seeded_and_take_their_steps(sampler):
    model = _model(timesteps=30)
    model.set_sampling(sampler=sampler, steps="6")
    assert model.sampling() == {"sampler": sampler, "steps": 6}
    a, codes = model.sample(4, seeded(1))
    assert codes == {} and a.shape == (4, *DIGITS) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, model.sample(4, seeded(1))[0])
    assert not torch.equal(a, model.sample(4, seeded(2))[0])
    kept, states = model.trajectory(3, seeded(1))
    assert [k for k, _ in kept] == list(range(7)) and kept[0][1] == 30 and kept[-1][1] == 0
    assert [t for _, t in kept] == sorted((t for _, t in kept), reverse=True)
    assert states.shape == (7, 3, *DIGITS)
    torch.testing.assert_close(states[-1], model.sample(3, seeded(1))[0])


def test_default_steps_dpm_sde_18_ddim_25_ddpm_the_whole_chain():
    model = _model(timesteps=200)
    assert model.sampling() == {"sampler": "dpm-sde", "steps": 18}
    scheduler = model.scheduler()
    assert len(scheduler.timesteps) == 18 and scheduler.timesteps[0] == 199
    # the stochastic second-order solver (a deterministic one scored 10 points lower)
    assert scheduler.config.algorithm_type == "sde-dpmsolver++" and scheduler.config.solver_order == 2
    assert scheduler.config.timestep_spacing == "trailing"
    model.set_sampling(sampler="ddim")
    assert model.sampling() == {"sampler": "ddim", "steps": 25}
    model.set_sampling(sampler="ddpm")
    assert model.sampling() == {"sampler": "ddpm", "steps": 200}
    assert len(model.scheduler().timesteps) == 200


@pytest.mark.parametrize(("options", "message"), [
    ({"sampler": "euler"}, "sampler must be one of"),
    ({"schedule": "quadratic"}, "schedule must be one of"),
    ({"steps": 21}, "steps must lie between"),
    ({"ema": 1.0}, "ema must lie in"),
    ({"width": 0}, "width, widest and layers must be positive"),
    ({"widest": 0}, "width, widest and layers must be positive"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ForensicsError, match=message):
        create("diffusion", image_shape=DIGITS, **{**tiny_options("diffusion"), **options})


def test_dpm_sde_guards_the_cosine_schedule():
    """On the cosine schedule the solver's log-SNR is clipped (diffusers' guard: α near 0 at
    t = T would multiply an ε error ~2,000×) and the images stay finite; linear is unclipped."""
    model = _model(timesteps=50)
    assert model.scheduler().config.lambda_min_clipped == float("-inf")
    cosine = _model(timesteps=50, schedule="cosine")
    cosine.set_sampling(steps="5")
    assert cosine.scheduler().config.lambda_min_clipped == -5.1
    images = cosine.sample(4, seeded(2))[0]
    assert torch.isfinite(images).all() and images.shape == (4, *DIGITS)


def test_only_sampling_options_change_after_training():
    model = _model()
    with pytest.raises(ForensicsError, match="no sampling option width"):
        model.set_sampling(width=4)
    gan = create("gan", image_shape=DIGITS, **tiny_options("gan"))
    with pytest.raises(ForensicsError, match="gan has no sampling option sampler"):
        gan.set_sampling(sampler="ddim")


# -- the command line -------------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_train_generate_with_each_sampler_and_explore(tmp_path):
    run = tmp_path / "run"
    sets = [arg for k, v in tiny_options("diffusion").items() for arg in ("--set", f"{k}={v}")]
    invoke("train", "diffusion", "--dataset", "digits", "--epochs", "1", *sets, "--device", "cpu",
           "--out", run)
    config = json.loads((run / "config.json").read_text())
    assert config["generator"] == "diffusion" and config["options"]["sampler"] == "dpm-sde"

    headers = {}
    for sampler, extra in (("ddpm", []), ("ddim", ["--steps", "5"]), ("dpm-sde", ["--steps", "3"])):
        out = tmp_path / sampler
        invoke("generate", run, "--n", "6", "--seed", "4", "--sampler", sampler, *extra, "--out", out)
        headers[sampler] = json.loads((out / "manifest.json").read_text())["header"]
        assert len(list(out.glob("*.png"))) == 6
    assert headers["ddpm"]["sampling"] == {"sampler": "ddpm", "steps": 20}  # tiny T: the whole chain
    assert headers["ddim"]["sampling"] == {"sampler": "ddim", "steps": 5}
    assert headers["dpm-sde"]["sampling"] == {"sampler": "dpm-sde", "steps": 3}
    assert headers["ddim"]["seed"] == headers["ddpm"]["seed"] == 4
    assert headers["ddim"]["variant"] == "linear"

    result = invoke("explore", run, "--out", tmp_path / "fig", "--steps", "8")
    figure = tmp_path / "fig" / "trajectory.png"
    assert str(figure) in result.output
    with Image.open(figure) as image:
        width, height = image.size
    assert width > 600 and height > 400  # ten labelled columns of six samples


def test_sampling_options_are_refused_where_they_do_not_apply(tmp_path, trained_run):
    result = runner.invoke(app, ["generate", str(trained_run("gan")), "--sampler", "ddim",
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "gan has no sampling option sampler" in result.output
    result = runner.invoke(app, ["generate", str(trained_run("diffusion")), "--steps", "999",
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "steps must lie between" in result.output
    assert not (tmp_path / "s").exists()
