"""Denoising diffusion (Ho et al. 2020), sampled with DDPM or DDIM (Song et al. 2021).

Forward process: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), ᾱ_t = Π_{s≤t} (1 − β_s), with a
linear (Ho et al.) or cosine (Nichol & Dhariwal 2021) β schedule over T steps. A U-Net
ε_θ(x_t, t) learns the noise by the simple loss

    L_simple = E_{t ~ U{1..T}, x_0, ε ~ N(0, I)} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²

(averaged over pixels: the same minimiser, a learning rate independent of the image size).
Sampling runs the reverse chain from x_T ~ N(0, I) on a sub-sequence of ``steps`` timesteps:
DDPM's ancestral steps (σ_t² = β̃_t), DDIM's deterministic ones (η = 0), or (the default)
DPM-Solver++(2M) SDE (Lu et al. 2022), a second-order solver of the reverse SDE that adds
fresh noise at each step like DDPM but in a few steps like DDIM.

The U-Net and the schedulers are ``diffusers``' (``UNet2DModel``, ``DDPMScheduler``,
``DDIMScheduler``, ``DPMSolverMultistepScheduler``), imported when a model is built so that
the registry's reading of this file and ``forensics --help`` stay torch-free. Images are
mapped from [0, 1] to [−1, 1] for the model and back. An exponential moving average of the
weights (``ema``) samples; it is a network of the run (``nets["ema"]``, no gradients) so it
is saved, resumed and hashed with the weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forensics.distributed import global_noise
from forensics.errors import ForensicsError
from forensics.loop import adam, minimise
from forensics.nets import down_stages
from generators.base import Generator, MovingAverage, Options
from generators.registry import register

#: the schedules by name: ours → diffusers' ``beta_schedule``
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
#: how a batch draws its timesteps: independently, or one shared offset on an even grid
TIMESTEP_DRAWS = ("uniform", "stratified")
#: each sampler's steps when ``steps`` is 0 (None: DDPM's full chain of T steps). Measured on
#: the default run of mnist5k (seed 0; 1,000 samples, seeds 3 and 4; benchmarks/results/generators
#: scores the default and DDIM-25 side by side): DDIM-25 53.2 / 52.7 % recognised; DPM-Solver++
#: SDE at 15 / 20 / 30 steps 58.6 / 57.8 / 62.4 % and 60.5 / 62.7 / 61.1 %, in 0.6 / 0.8 / 1.2×
#: DDIM-25's time (a deterministic solver of the same ODE, DPM-Solver++(2M) or UniPC at 25
#: steps, 48 %: the noise added back at each step corrects part of a small ε-network's error,
#: as DDPM-50's 60.5 % showed at twice the cost). 18 steps (15 until the 34-epoch default):
#: on the 40-epoch bf16 run of benchmarks/results/variants 73.1 % against 70.8 % at 15, 1,000
#: drawn in 47.6 s beside a 4.47 s reference, so 1,500 ≈ 16.0 reference units, within #13's
#: minute on 2 cores (≈ 17.6; 20 steps took 41.7 s per 1,000 beside 3.19 s: ≈ 19.6, over it)
DEFAULT_STEPS = {"dpm-sde": 18, "ddim": 25, "ddpm": None}
SAMPLERS = tuple(DEFAULT_STEPS)


@dataclasses.dataclass
class DiffusionOptions(Options):
    width: int = 16  # channels of the U-Net's first stage; each deeper stage doubles, up to widest × width
    #: the cap on a stage's width, as a multiple of width (1, 2, 4, …). 2 (16/32/32 at 28 px):
    #: a step alone 60.6 ms against 83.3 ms (batch 32, bf16, 2 cores), but on mnist5k (seed 0,
    #: 34 epochs; benchmarks/results/variants) 60.4 % recognised against 67.7-71.3 % at 4
    widest: int = 4
    layers: int = 1  # ResNet blocks per U-Net stage (the way up has one more)
    #: the U-Net's middle block (two ResNet blocks at the lowest resolution). Without it a step
    #: alone takes 70.9 ms, but 61.1 % are recognised (as for ``widest``): the capacity at the
    #: lowest resolution is what the 28-px digits need most
    mid_block: bool = True
    attention: bool = False  # self-attention at the lowest resolution (and in the middle block)
    timesteps: int = 1000  # T
    schedule: str = "linear"  # linear (Ho et al. 2020) | cosine (Nichol & Dhariwal 2021)
    timestep_draw: str = "uniform"  # uniform | stratified (each t still U{0..T−1}; lower variance)
    ema: float = 0.999  # decay of the weights' moving average that samples (0: the raw weights)
    sampler: str = "dpm-sde"  # dpm-sde | ddim | ddpm (``generate --sampler``)
    steps: int = 0  # denoising steps of sampling (``--steps``); 0: dpm-sde 18, ddim 25, ddpm all T
    lr: float = 1e-3
    batch_size: int = 32  # 4× batch 128's updates at equal time (2.5× its share in 5-min trials)

    def validate(self) -> None:
        super().validate()
        self.check_choice("schedule", tuple(SCHEDULES))
        self.check_choice("sampler", SAMPLERS)
        self.check_choice("timestep_draw", TIMESTEP_DRAWS)
        if self.width < 1 or self.layers < 1 or self.widest < 1:
            raise ForensicsError("width, widest and layers must be positive")
        if self.timesteps < 2:
            raise ForensicsError("timesteps must be at least 2")
        if not 0.0 <= self.ema < 1.0:
            raise ForensicsError("ema must lie in [0, 1) (0: sample with the raw weights)")
        if not 0 <= self.steps <= self.timesteps:
            raise ForensicsError(f"steps must lie between 1 and timesteps ({self.timesteps}), "
                                 "or be 0 for the sampler's default")


def build_unet(image_shape: tuple[int, int, int], options: DiffusionOptions) -> nn.Module:
    """diffusers' U-Net with one stage per stride-2 step of the image side (28: 2, 32: 3, 64: 4)."""
    from diffusers import UNet2DModel

    channels, side, width = image_shape[0], image_shape[1], options.width
    if image_shape[1] != image_shape[2]:
        raise ForensicsError(f"diffusion needs square images, not {side}×{image_shape[2]} "
                             "(the data sets conform them)")
    blocks = down_stages(side) + 1  # the last block keeps its side
    widths = tuple(width * min(2**i, options.widest) for i in range(blocks))
    down, up = ["DownBlock2D"] * blocks, ["UpBlock2D"] * blocks
    if options.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(sample_size=side, in_channels=channels, out_channels=channels,
                       block_out_channels=widths, layers_per_block=options.layers,
                       down_block_types=tuple(down), up_block_types=tuple(up),
                       mid_block_type="UNetMidBlock2D" if options.mid_block else None,
                       add_attention=options.attention, norm_num_groups=_groups(width),
                       attention_head_dim=min(8, width))


def _groups(width: int) -> int:
    """GroupNorm's groups: up to 8, dividing ``width``, at least 2 channels each where possible
    (a one-channel group cancels the bias before it: its gradient is rounding noise, which Adam
    would turn into steps of the full learning rate)."""
    return next(g for g in range(min(8, max(1, width // 2)), 0, -1) if width % g == 0)


@register("diffusion")
class Diffusion(Generator):
    Options = DiffusionOptions
    #: 34 epochs of mnist5k's 4,000 images at batch 32: 4,250 steps, within 5 minutes on 2
    #: cores with bf16 autocast (train's default ``--precision auto`` on a CPU with native bf16:
    #: a step 1.46× faster than in float32; 2.1–2.6 reference units per epoch against 3.4–4.0).
    #: Measured on mnist5k (seed 0, DPM-Solver++ SDE in 15 steps, benchmarks/results/variants):
    #: 20 / 29 / 34 / 40 epochs 61.5 / 67.1 / 67.7 / 70.8 % recognised, domain FD 36.5 / 25.1 /
    #: 20.3 / 17.0; 40 epochs took 103 reference units (5 minutes ≈ 88). In float32 (a CPU
    #: without bf16 units) the default training takes ≈ 1.5× as long. A sample's cost barely
    #: depends on the batch on 2 cores, so small batches buy updates
    default_epochs = 34
    tiny_options = {"width": 8, "timesteps": 20, "batch_size": 64}
    #: ``generate --sampler/--steps`` change these without retraining
    sampling_options = ("sampler", "steps")
    #: the generator benchmark also scores the trained model by DDIM in 25 steps (the former
    #: default, and the sampler of #13's time target)
    benchmark_samplings = ({"sampler": "ddim", "steps": 25},)
    has_trajectory = True

    @classmethod
    def variant_of(cls, options: dict[str, Any]) -> str:
        return options.get("schedule", "linear")

    def __init__(self, options: DiffusionOptions, image_shape: tuple[int, int, int]) -> None:
        from diffusers import DDPMScheduler

        super().__init__(options, image_shape)
        self.nets["unet"] = build_unet(self.image_shape, options)
        if options.ema > 0:
            self.nets["ema"] = MovingAverage(self.nets["unet"], options.ema)
        self.optimizers["unet"] = adam(self.nets["unet"].parameters(), options.lr)
        self.noise = DDPMScheduler(num_train_timesteps=options.timesteps,
                                   beta_schedule=SCHEDULES[options.schedule], prediction_type="epsilon")

    # -- training ------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """L_simple on a batch in [0, 1]; t and ε are this rank's rows of the global draw."""
        x0 = 2 * x - 1
        t = global_noise(self._draw_timesteps, x0[:, 0, 0, 0])
        eps = global_noise(torch.randn, x0)
        noisy = self.noise.add_noise(x0, eps, t)
        with self.autocast():
            predicted = self.live["unet"](noisy, t, return_dict=False)[0]
        return F.mse_loss(predicted.float(), eps)

    def _draw_timesteps(self, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
        """t of a (global) batch, each t ~ U{0..T−1}: independent draws, or stratified — one
        uniform offset u and the points (u + i/n) mod 1 in random order, scaled to T (Kingma
        et al. 2021's low-discrepancy sampler: the same expectation, L_simple unchanged, and
        a batch that covers every noise level, so a small batch's loss varies less)."""
        T, n = self.options.timesteps, shape[0]
        if self.options.timestep_draw == "uniform":
            return torch.randint(T, shape, device=device)
        u = (torch.rand((), device=device) + torch.arange(n, device=device) / n) % 1
        return (u[torch.randperm(n, device=device)] * T).long().clamp_max(T - 1)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        self.nets.train()
        loss = self.loss(x)
        minimise(self.optimizers["unet"], loss)
        if "ema" in self.nets:
            self.nets["ema"].update(self.nets["unet"])
        return {"loss": loss.item()}

    # -- sampling ------------------------------------------------------------
    def preview(self, rng: torch.Generator) -> torch.Tensor:
        """The per-epoch grid, kept cheap beside an epoch of training: 40 images, DDIM in 10 steps."""
        chosen = self.options
        self.options = dataclasses.replace(chosen, sampler="ddim", steps=min(10, chosen.timesteps))
        try:
            return self.sample(40, rng)[0]
        finally:
            self.options = chosen

    def sampling(self) -> dict[str, Any]:
        o = self.options
        default = DEFAULT_STEPS[o.sampler] or o.timesteps
        return {"sampler": o.sampler, "steps": o.steps or min(default, o.timesteps)}

    def scheduler(self):
        """A fresh scheduler of the chosen sampler, set to its steps (trailing: from t = T)."""
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        sampler, extra = self.options.sampler, {}
        kind = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler,
                "dpm-sde": DPMSolverMultistepScheduler}[sampler]
        if sampler == "dpm-sde":
            extra = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}
            if self.options.schedule == "cosine":
                # the cosine schedule's last steps have α near 0: an ε error at t = T would be
                # multiplied ~2,000× by the solver's first step; diffusers' guard for this schedule
                extra["lambda_min_clipped"] = -5.1
        scheduler = kind.from_config(self.noise.config, timestep_spacing="trailing", **extra)
        scheduler.set_timesteps(self.sampling()["steps"])
        return scheduler

    @property
    def denoiser(self) -> nn.Module:
        return self.nets["ema"].net if "ema" in self.nets else self.nets["unet"]

    @torch.no_grad()
    def trajectory(self, n: int, rng: torch.Generator,
                   keep: int | None = None) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """The reverse chain of ``n`` images: ``(reverse steps taken, t)`` of each state kept,
        x_T first and x_0 last, and the states ``(kept, n, C, H, W)`` in [0, 1]; ``keep``
        states evenly spaced along the chain (None: all)."""
        states = self._chain(n, rng, every=True)
        # the state before the step at (0-based) timestep t is x_{t+1}; the last one is x_0
        ts = [int(t) + 1 for t in self.scheduler().timesteps] + [0]
        chosen = (range(len(states)) if keep is None
                  else np.unique(np.linspace(0, len(states) - 1, keep).round().astype(int)))
        return [(int(k), ts[k]) for k in chosen], torch.stack([states[k] for k in chosen])

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """``n`` images from the reverse chain (no latent codes: x_T and the chain's noise
        follow from the seed, which the manifest records)."""
        return self._chain(n, rng)[-1], {}

    def _chain(self, n: int, rng: torch.Generator, every: bool = False) -> list[torch.Tensor]:
        """Run the reverse chain from x_T ~ N(0, I) (drawn from ``rng``, as DDPM's step noise);
        the final images, or every state, in [0, 1] on the CPU."""
        self.nets.eval()
        scheduler = self.scheduler()
        ddim = self.options.sampler == "ddim"
        x = torch.randn(n, *self.image_shape, generator=rng).to(self.device)
        states = [x]
        for t in scheduler.timesteps:
            eps = self.denoiser(x, t.to(self.device), return_dict=False)[0]
            step = scheduler.step(eps, t, x, eta=0.0) if ddim else scheduler.step(eps, t, x, generator=rng)
            x = step.prev_sample
            states = [*states, x] if every else [x]
        return [((s.clamp(-1, 1) + 1) / 2).float().cpu() for s in states]
