"""DCGAN-style networks (Radford et al. 2016) and the GAN losses of the course.

G: code → Linear → (2c, s/4, s/4) → ConvT ×2 → image in [0, 1] (sigmoid; the
affine twin of DCGAN's tanh on [−1, 1]). D: Conv(4, 2) ×2 with LeakyReLU 0.2 →
features → one logit, D(x) = sigmoid(logit) = P(x is real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from forensics.errors import ForensicsError


def _side(image_shape: tuple[int, int, int]) -> int:
    channels, height, width = image_shape
    if height != width or height % 4:
        raise ForensicsError(f"DCGAN needs square images with a side divisible by 4, got {height}x{width}")
    return height // 4


class DCGenerator(nn.Module):
    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        s = _side(image_shape)
        self.project = nn.Sequential(
            nn.Linear(in_dim, 2 * width * s * s), nn.BatchNorm1d(2 * width * s * s), nn.ReLU(),
            nn.Unflatten(1, (2 * width, s, s)),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, image_shape[0], 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(code))


class DCBody(nn.Module):
    """The discriminator's body: image → feature vector (shared by D and InfoGAN's Q)."""

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        s = _side(image_shape)
        self.features = nn.Sequential(
            nn.Conv2d(image_shape[0], width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.out_dim = 2 * width * s * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−(1/m) Σ [log D(x) + log(1 − D(G(z)))]: descending it ascends V(D, G)."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """``minimax``: (1/m) Σ log(1 − D(G(z))), exactly the course's G objective.
    ``non-saturating``: −(1/m) Σ log D(G(z)), same fixed point, strong early gradients.
    """
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 − sigmoid(l)) = −softplus(l)
    return F.softplus(-fake_logits).mean()  # −log sigmoid(l) = softplus(−l)
