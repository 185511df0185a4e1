"""DCGAN networks (Radford et al. 2016) scaled to the image side, and the GAN losses of the course.

The number of stride-2 stages follows the image side (:mod:`forensics.nets`: 28 → 7 in
2 stages, 32 → 4 in 3, 64 → 4 in 4); widths double at each stage down from ``width``,
as in DCGAN (64 px: 64, 128, 256, 512).

G: code → Linear → BatchNorm → ReLU → (width·2^(n−1), b, b), then n transposed
convolutions (4, 2, 1), each but the last followed by BatchNorm and ReLU, the last by a
sigmoid: images in [0, 1] (the affine twin of DCGAN's tanh on [−1, 1]).
D's body: n convolutions (4, 2, 1) with LeakyReLU 0.2, BatchNorm on every one but the
first (DCGAN: no BatchNorm on D's input layer) → flattened features; D's head is one
linear logit, D(x) = sigmoid(logit) = P(x is real).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from forensics.errors import ForensicsError
from forensics.nets import base_side, down_stages


def _stages(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    """(number of stride-2 stages, base side) for a square image; refuses what has none."""
    _, height, width = image_shape
    if height != width or down_stages(height) < 1:
        raise ForensicsError(f"DCGAN needs square images whose side halves at least once to ≥ 4 "
                             f"px (e.g. 8, 28, 32, 64), got {height}x{width}")
    return down_stages(height), base_side(height)


def _widths(width: int, stages: int) -> list[int]:
    """Feature widths from the image side down: width, 2·width, …, width·2^(stages−1)."""
    return [width * 2**i for i in range(stages)]


class DCGenerator(nn.Module):
    """``hidden`` > 0: a fully connected layer of that width (BatchNorm, ReLU) before the
    projection, as in InfoGAN's MNIST networks (Chen et al. 2016, appendix C.1)."""

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], width: int = 64,
                 hidden: int = 0) -> None:
        super().__init__()
        stages, b = _stages(image_shape)
        widths = _widths(width, stages)[::-1]  # from the base side up
        lift: list[nn.Module] = []
        if hidden:
            lift = [nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            in_dim = hidden
        self.project = nn.Sequential(
            *lift, nn.Linear(in_dim, widths[0] * b * b), nn.BatchNorm1d(widths[0] * b * b), nn.ReLU(),
            nn.Unflatten(1, (widths[0], b, b)),
        )
        layers: list[nn.Module] = []
        for wide, narrow in zip(widths, widths[1:], strict=False):
            layers += [nn.ConvTranspose2d(wide, narrow, 4, 2, 1), nn.BatchNorm2d(narrow), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], image_shape[0], 4, 2, 1), nn.Sigmoid()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(code))


class DCBody(nn.Module):
    """The discriminator's body: image → feature vector (shared by D and InfoGAN's Q).

    ``hidden`` > 0: the convolutional features go through a fully connected layer of that
    width (BatchNorm, LeakyReLU), as in InfoGAN's MNIST networks."""

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, hidden: int = 0) -> None:
        super().__init__()
        stages, b = _stages(image_shape)
        widths = _widths(width, stages)
        layers: list[nn.Module] = [nn.Conv2d(image_shape[0], widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for narrow, wide in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(narrow, wide, 4, 2, 1), nn.BatchNorm2d(wide), nn.LeakyReLU(0.2)]
        layers.append(nn.Flatten())
        self.out_dim = widths[-1] * b * b
        if hidden:
            layers += [nn.Linear(self.out_dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)]
            self.out_dim = hidden
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


#: the differentiable augmentations D's inputs may get (Zhao et al. 2020, DiffAugment)
AUGMENTATIONS = ("translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): the same random, differentiable transforms for every
    image D sees in training, real and fake, in D's step and in G's step — so D cannot
    memorise a small training set while G still receives gradients through the transform.
    The losses are untouched: V(D, G) is taken over the augmented distributions.

    ``policy``: comma-separated names of :data:`AUGMENTATIONS` ("" = none).
    ``translation``: each image shifted by up to 1/8 of its side in x and y (zero fill);
    ``cutout``: a zero square of half the side at a random place in each image.
    """
    for name in augmentations(policy):
        n, _, h, w = x.shape
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        if name == "translation":
            r = max(1, round(h / 8))
            dy = torch.randint(-r, r + 1, (n, 1, 1), device=x.device)
            dx = torch.randint(-r, r + 1, (n, 1, 1), device=x.device)
            # index into a 1-px zero border: a source outside the image reads the border
            y = (rows + dy).clamp(-1, h) + 1
            xx = (cols + dx).clamp(-1, w) + 1
            padded = F.pad(x, (1, 1, 1, 1))
            batch = torch.arange(n, device=x.device).view(n, 1, 1)
            x = padded.permute(0, 2, 3, 1)[batch, y, xx].permute(0, 3, 1, 2)
        elif name == "cutout":
            size = h // 2
            cy = torch.randint(0, h, (n, 1, 1), device=x.device) - size // 2  # top-left corner
            cx = torch.randint(0, w, (n, 1, 1), device=x.device) - size // 2
            inside = ((rows - cy) >= 0) & ((rows - cy) < size) & ((cols - cx) >= 0) & ((cols - cx) < size)
            x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


def augmentations(policy: str) -> list[str]:
    """The names of a comma-separated policy ("" = none), each one of :data:`AUGMENTATIONS`."""
    names = [name for name in policy.split(",") if name]
    for name in names:
        if name not in AUGMENTATIONS:
            raise ForensicsError(f"augment: unknown {name!r} (choose from "
                                 f"{', '.join(AUGMENTATIONS)}, comma-separated, or empty)")
    return names


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       real_label: float = 1.0) -> torch.Tensor:
    """−(1/m) Σ [log D(x) + log(1 − D(G(z)))]: descending it ascends V(D, G).

    ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016): the real
    term becomes −[a log D(x) + (1 − a) log(1 − D(x))]; 1 is exactly the course's V.
    """
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, real_label)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """``minimax``: (1/m) Σ log(1 − D(G(z))), exactly the course's G objective.
    ``non-saturating``: −(1/m) Σ log D(G(z)), same fixed point, strong early gradients.
    """
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 − sigmoid(l)) = −softplus(l)
    return F.softplus(-fake_logits).mean()  # −log sigmoid(l) = softplus(−l)
