"""Autoencoders of the course: h = f(x), r = g(h), code smaller than x.

Variants (``variant`` option), each minimising the course's criterion:

- ``plain``        L(x, g(f(x)))
- ``sparse``       L(x, g(f(x))) + λ Σ_i |h_i|          (Laplace prior on h)
- ``denoising``    L(x, g(f(x̃))),  x̃ ~ C(x̃ | x)       (Gaussian noise or masking)
- ``contractive``  L(x, g(f(x))) + λ Σ_i ‖∇_x h_i‖²     (exact Jacobian, no approximation)

``linear=True`` makes f and g linear maps; with the quadratic loss that is PCA.
L is the quadratic loss Σ_pixels (x − r)², averaged over the batch.

To make *fakes*, an AE either re-renders real images (``reconstruct``) or decodes
codes drawn from a Gaussian mixture fitted to the training codes (``sample``), each
component's spread scaled by ``temperature`` (0.8 by default; ``generate --temperature``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, vmap

from forensics.distributed import global_noise
from forensics.loop import adam
from generators.base import CodeDensity, Generator, Options
from generators.registry import register
from generators.steps import OneLossStep


@dataclasses.dataclass
class AEOptions(Options):
    variant: str = "plain"
    linear: bool = False
    code_dim: int = 32
    hidden: int = 512
    lam: float | None = None  # λ of the sparse / contractive penalty (unset: the variant's default)
    corruption: str | None = None  # denoising: gaussian (default) | mask
    noise: float | None = None  # denoising: Gaussian σ, or the share of masked pixels (0.5)
    code_prior: str = "gmm"  # sample mode: gaussian | gmm (a mixture of ``components``)
    components: int = 40  # the mixture's components (more: closer to the codes' density)
    #: the mixture's spread when sampling (``generate --temperature``; 1: as fitted). Measured on
    #: mnist5k (seed 0, the same trained AE, 1,000 samples): at 1.0 / 0.9 / 0.8 / 0.7, 75.8 /
    #: 79.3 / 81.4 / 85.2 % recognised, rarest digit 4.4 / 4.8 / 5.5 / 5.7 %, domain FD 71.4 /
    #: 65.4 / 60.6 / 57.3, and recall (Kynkäänniemi et al.) 0.92 / – / 0.83 / 0.76, coverage
    #: 0.95 / – / 0.97 / 0.98: the full-covariance mixture spreads past the codes' manifold, and
    #: what is decoded there is blurred; 0.8 keeps recall above the VAE's (0.76)
    temperature: float = 0.8
    #: runs saved before an option: the value they used (components before 2026-12-03, the
    #: temperature before 2026-12-04)
    earlier = {"components": 10, "temperature": 1.0}
    lr: float = 1e-3
    batch_size: int = 64

    by_variant = {"lam": {"sparse": 1e-3, "contractive": 1e-2},
                  "corruption": {"denoising": "gaussian"}, "noise": {"denoising": 0.5}}

    def validate(self) -> None:
        super().validate()
        from forensics.errors import ForensicsError

        self.check_choice("variant", ("plain", "sparse", "denoising", "contractive"))
        if self.corruption is not None:
            self.check_choice("corruption", ("gaussian", "mask"))
        self.check_choice("code_prior", ("gaussian", "gmm"))
        if self.code_dim < 1 or self.hidden < 1 or self.components < 1:
            raise ForensicsError("code_dim, hidden and components must be positive")
        if not self.temperature > 0:
            raise ForensicsError("temperature must be positive (1: the fitted mixture's spread)")
        if self.lam is not None and self.lam < 0:
            raise ForensicsError("lam must be 0 (no penalty) or positive")
        if self.noise is not None and self.noise < 0:
            raise ForensicsError("noise must be 0 or positive")

    @property
    def penalty(self) -> float:
        """λ of this variant's penalty as it trains (0: none)."""
        return self.lam or 0.0


def quadratic_loss(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Σ_pixels (x − r)², averaged over the batch."""
    return (x - r).pow(2).flatten(1).sum(1).mean()


def sparsity_penalty(h: torch.Tensor, lam: float) -> torch.Tensor:
    """Ω(h) = λ Σ_i |h_i| (the negative log of a Laplace prior, up to a constant)."""
    return lam * h.abs().sum(1).mean()


def contractive_penalty(encoder: nn.Module, x: torch.Tensor, lam: float) -> torch.Tensor:
    """Ω(h, x) = λ Σ_i ‖∇_x h_i‖², the squared Frobenius norm of the exact Jacobian."""
    jacobian = vmap(jacrev(lambda v: encoder(v[None])[0]))(x.flatten(1))
    return lam * jacobian.pow(2).sum((1, 2)).mean()


def corrupt(x: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    """Sample x̃ ~ C(x̃ | x): additive Gaussian noise of σ ``amount``, or masking."""
    if kind == "gaussian":
        return x + amount * global_noise(torch.randn, x)
    keep = (global_noise(torch.rand, x) >= amount).to(x.dtype)
    return x * keep


@register("ae")
class AutoEncoder(OneLossStep, Generator):
    optimizer = "ae"
    Options = AEOptions
    modes = ("sample", "reconstruct")
    default_epochs = 15
    tiny_options = {"hidden": 32, "code_dim": 4, "batch_size": 64}
    #: ``generate --temperature`` changes it without retraining
    sampling_options = ("temperature",)

    @classmethod
    def variant_of(cls, options: dict[str, Any]) -> str:
        return ("linear-" if options.get("linear") else "") + options.get("variant", "plain")

    def __init__(self, options: AEOptions, image_shape: tuple[int, int, int]) -> None:
        super().__init__(options, image_shape)
        d, k, hidden = self.dim, options.code_dim, options.hidden
        if options.linear:
            self.nets["encoder"] = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
            self.nets["decoder"] = nn.Sequential(nn.Linear(k, d))
        else:
            self.nets["encoder"] = nn.Sequential(
                nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, k)
            )
            self.nets["decoder"] = nn.Sequential(
                nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid()
            )
        # the fitted code distribution used by ``sample`` (a Gaussian mixture)
        self.nets["prior"] = CodeDensity(
            options.components if options.code_prior == "gmm" else 1, k)
        params = [*self.nets["encoder"].parameters(), *self.nets["decoder"].parameters()]
        self.optimizers["ae"] = adam(params, options.lr)

    def encode(self, x: torch.Tensor, nets=None) -> torch.Tensor:
        return (nets or self.nets)["encoder"](x)

    def decode(self, h: torch.Tensor, nets=None) -> torch.Tensor:
        return (nets or self.nets)["decoder"](h).view(-1, *self.image_shape)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        opt = self.options
        source = corrupt(x, opt.corruption, opt.noise) if opt.variant == "denoising" else x
        with self.autocast():
            h = self.encode(source, self.live)
            r = self.decode(h, self.live)
        h, r = h.float(), r.float()
        terms = {"reconstruction": quadratic_loss(x, r)}
        if opt.variant == "sparse":
            terms["sparsity"] = sparsity_penalty(h, opt.penalty)
        if opt.variant == "contractive":
            terms["contractive"] = contractive_penalty(self.nets["encoder"], x, opt.penalty)
        terms["loss"] = sum(terms.values())
        return terms

    @torch.no_grad()
    def end_epoch(self, train_images: torch.Tensor) -> None:
        """Fit the code distribution (a Gaussian or a mixture) to the training codes."""
        self.nets.eval()
        self.nets["prior"].fit(torch.cat([self.encode(b) for b in train_images.split(512)]))

    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.options.temperature}

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        self.nets.eval()
        codes, component = self.nets["prior"].draw(n, rng, self.options.temperature)
        images = self.decode(codes.to(self.device)).clamp(0, 1).cpu()
        return images, {"z": codes.numpy(), "component": component.numpy()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.nets.eval()
        return self.decode(self.encode(x.to(self.device))).clamp(0, 1).cpu()
