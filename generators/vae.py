"""Variational autoencoder (Kingma & Welling 2013), as the course writes it.

q(z|x) = N(μ(x), diag σ²(x)); z = μ + σ ⊙ ε with ε ~ N(0, I) (reparametrization);
loss = ℓ(x, x̂) + KL(q(z|x) ‖ N(0, I)), with ℓ = −log p(x|z) (Bernoulli by
default, i.e. binary cross-entropy summed over pixels; ``recon=mse`` for the
quadratic loss) and the closed-form KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forensics.distributed import global_noise
from generators.base import Generator, Options
from generators.registry import register
from generators.steps import OneLossStep


@dataclasses.dataclass
class VAEOptions(Options):
    latent_dim: int = 16
    hidden: int = 512
    recon: str = "bce"  # bce (Bernoulli likelihood) | mse (quadratic)
    beta: float = 1.0  # weight of the KL term; 1 is the VAE of the course
    lr: float = 1e-3
    batch_size: int = 64

    def validate(self) -> None:
        super().validate()
        self.check_choice("recon", ("bce", "mse"))


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(μ, σ²) ‖ N(0, I)) per example, summed over latent dims."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def reconstruction_nll(x: torch.Tensor, x_hat: torch.Tensor, kind: str) -> torch.Tensor:
    """−log p(x|z) per example (up to a constant for ``mse``)."""
    if kind == "bce":
        return F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)
    return (x - x_hat).pow(2).flatten(1).sum(1)


def reparametrize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε, ε ~ N(0, I) (drawn for the global batch under torchrun)."""
    return mu + (0.5 * logvar).exp() * global_noise(torch.randn, mu)


@register("vae")
class VAE(OneLossStep, Generator):
    optimizer = "vae"
    Options = VAEOptions
    modes = ("sample", "reconstruct")
    default_epochs = 50
    has_latent_space = True
    tiny_options = {"hidden": 32, "latent_dim": 4, "batch_size": 64}

    @classmethod
    def variant_of(cls, options: dict[str, Any]) -> str:
        return options.get("recon", "")

    def __init__(self, options: VAEOptions, image_shape: tuple[int, int, int]) -> None:
        super().__init__(options, image_shape)
        d, k, hidden = self.dim, options.latent_dim, options.hidden
        self.nets["encoder"] = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU())
        self.nets["mu"] = nn.Linear(hidden, k)
        self.nets["logvar"] = nn.Linear(hidden, k)
        self.nets["decoder"] = nn.Sequential(
            nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid()
        )
        self.optimizers["vae"] = torch.optim.Adam(self.nets.parameters(), lr=options.lr)

    def encode(self, x: torch.Tensor, nets=None) -> tuple[torch.Tensor, torch.Tensor]:
        nets = nets or self.nets
        hidden = nets["encoder"](x)
        return nets["mu"](hidden), nets["logvar"](hidden)

    def decode(self, z: torch.Tensor, nets=None) -> torch.Tensor:
        return (nets or self.nets)["decoder"](z).view(-1, *self.image_shape)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            mu, logvar = self.encode(x, self.live)
            x_hat = self.decode(reparametrize(mu, logvar), self.live)
        mu, logvar, x_hat = mu.float(), logvar.float(), x_hat.float()
        recon = reconstruction_nll(x, x_hat, self.options.recon).mean()
        kl = kl_divergence(mu, logvar).mean()
        return {"reconstruction": recon, "kl": kl, "loss": recon + self.options.beta * kl}

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Decode z ~ p(z) = N(0, I) (the prior), returning the mean image."""
        self.nets.eval()
        z = torch.randn(n, self.options.latent_dim, generator=rng)
        return self.decode(z.to(self.device)).cpu(), {"z": z.numpy()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.nets.eval()
        mu, _ = self.encode(x.to(self.device))
        return self.decode(mu).cpu()

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decode the straight line between the posterior means of images a and b."""
        self.nets.eval()
        mu_a, _ = self.encode(a[None].to(self.device))
        mu_b, _ = self.encode(b[None].to(self.device))
        t = torch.linspace(0, 1, steps, device=self.device)[:, None]
        return self.decode((1 - t) * mu_a + t * mu_b).cpu()
