"""Goodfellow et al.'s GAN with DCGAN networks, trained by the course's algorithm.

Each iteration: ``k`` discriminator steps (fresh noise and a fresh real
minibatch each), then one generator step. The discriminator ascends
(1/m) Σ [log D(x) + log(1 − D(G(z)))]; the generator descends
(1/m) Σ log(1 − D(G(z))) (``loss=minimax``) or −(1/m) Σ log D(G(z))
(``loss=non-saturating``, the default recommended by Goodfellow 2014 §3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from forensics import distributed
from forensics.loop import minimise
from generators.base import Generator, Options
from generators.dcgan import DCBody, DCGenerator, discriminator_loss, generator_loss
from generators.registry import register


@dataclasses.dataclass
class GANOptions(Options):
    noise_dim: int = 64
    width: int = 64
    loss: str = "non-saturating"  # minimax | non-saturating
    k: int = 1  # discriminator steps per generator step
    lr: float = 2e-4
    lr_g: float = 0.0  # G's learning rate when it differs from D's (0: the same as lr)
    beta1: float = 0.5
    batch_size: int = 64

    def validate(self) -> None:
        super().validate()
        self.check_choice("loss", ("minimax", "non-saturating"))
        if self.k < 1:
            from forensics.errors import ForensicsError

            raise ForensicsError("k must be at least 1")
        if self.lr_g < 0:
            from forensics.errors import ForensicsError

            raise ForensicsError("lr_g must be 0 (same as lr) or positive")


def adam(params, options: GANOptions, lr: float = 0.0) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr or options.lr, betas=(options.beta1, 0.999))


@register("gan")
class GAN(Generator):
    Options = GANOptions
    default_epochs = 40
    tiny_options = {"width": 8, "noise_dim": 8, "batch_size": 64}
    has_discriminator = True
    interpolates_prior = True

    @classmethod
    def variant_of(cls, options: dict[str, Any]) -> str:
        return options.get("loss", "")

    def discriminator(self) -> tuple[nn.Module, nn.Module]:
        return self.nets["D"][0], self.nets["D"][1]

    def __init__(self, options: GANOptions, image_shape: tuple[int, int, int]) -> None:
        super().__init__(options, image_shape)
        self.nets["G"] = DCGenerator(self.code_dim, image_shape, options.width)
        body = DCBody(image_shape, options.width)
        self.nets["D"] = nn.Sequential(body, nn.Linear(body.out_dim, 1), nn.Flatten(0))
        self.optimizers["D"] = adam(self.discriminator_params(), options)
        self.optimizers["G"] = adam(self.nets["G"].parameters(), options, options.lr_g)
        self._pending: list[torch.Tensor] = []

    @property
    def code_dim(self) -> int:
        return self.options.noise_dim

    def discriminator_params(self):
        return self.nets["D"].parameters()

    def draw_codes(self, m: int, rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(m, self.options.noise_dim, generator=rng)}

    def code_vector(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return codes["z"]

    #: the networks of the discriminator's side (their gradients in G's step are thrown away)
    d_side: tuple[str, ...] = ("D",)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """D's logit; D(x) = sigmoid(logit) is the probability that x is real."""
        return self.live["D"](x)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One discriminator step; every ``k``-th call also a generator step."""
        self.nets.train()
        self._pending.append(x)
        d_loss = self.discriminator_step(x)
        result = {"D_loss": d_loss}
        if len(self._pending) >= self.options.k:
            self._pending.clear()
            result.update(self.generator_step(len(x)))
        return result

    def end_epoch(self, train_images: torch.Tensor) -> None:
        """Drop a partial k-iteration, so every epoch (and a resumed run) starts afresh."""
        self._pending.clear()

    def fake(self, m: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``m`` fakes from G: this rank's rows of codes drawn for the global batch."""
        codes = self.draw_codes(m * distributed.size())
        codes = {k: distributed.rows(v).to(self.device) for k, v in codes.items()}
        return self.live["G"](self.code_vector(codes)), codes

    def discriminator_step(self, x: torch.Tensor) -> float:
        with self.autocast():
            fake, _ = self.fake(len(x))
            real_logits, fake_logits = self.logits(x), self.logits(fake.detach())
        loss = discriminator_loss(real_logits.float(), fake_logits.float())
        minimise(self.optimizers["D"], loss)
        return loss.item()

    def generator_step(self, m: int) -> dict[str, float]:
        with self.no_sync(*self.d_side), self.autocast():
            fake, _ = self.fake(m)
            logits = self.logits(fake)
        loss = generator_loss(logits.float(), self.options.loss)
        minimise(self.optimizers["G"], loss)
        return {"G_loss": loss.item()}

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        self.nets.eval()
        codes = self.draw_codes(n, rng)
        images = self.nets["G"](self.code_vector(codes).to(self.device)).cpu()
        return images, {key: value.numpy() for key, value in codes.items()}

    @torch.no_grad()
    def interpolate_prior(self, rng: torch.Generator, rows: int = 5, steps: int = 10) -> torch.Tensor:
        """Row r: G((1 − t)·a_r + t·b_r) for t = 0 … 1, a_r and b_r two draws of G's input."""
        self.nets.eval()
        a = self.code_vector(self.draw_codes(rows, rng))
        b = self.code_vector(self.draw_codes(rows, rng))
        t = torch.linspace(0, 1, steps)[None, :, None]
        line = (1 - t) * a[:, None] + t * b[:, None]
        return self.nets["G"](line.flatten(0, 1).to(self.device)).cpu()

    @torch.no_grad()
    def real_probability(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) for a batch (the zero-shot detector uses 1 − D(x) as P(fake))."""
        self.nets.eval()
        return torch.sigmoid(self.logits(x.to(self.device))).cpu()
