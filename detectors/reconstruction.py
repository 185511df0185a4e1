"""Reconstruction-error detector, after AEROBLADE (Ricker et al., CVPR 2024) and the course's autoencoders.

A small convolutional autoencoder (stride-2 encoder, a narrow bottleneck of
``code`` channels at 1/4 resolution, nearest ×2 + conv decoder; more stages
for larger sides, see :class:`ConvAE`) is trained on
the real training images only. Per image, the reconstruction error in one or
two spaces (option ``space``):

- ``pixel``: log of the mean squared pixel error relative to the image's
  mean squared value;
- ``spectral`` (default): log of the squared error of the 2-D spectra, each
  frequency weighted by its squared radius (a high-pass error: where
  up-sampling artefacts and missing fine detail live), relative to the
  image's own radius-weighted spectral energy;
- ``both``: the two.

Relative errors measured best on mnist5k (test reals vs the same digits
blurred with σ = 1, AUC 0.999 spectral, 0.69 pixel; absolute errors 0.56 and
0.38): the absolute error mostly tracks how much ink a digit has.

Fakes can be too smooth (error below the reals') as well as too rough, so the
score is two-sided (see :mod:`detectors.oneclass`).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.cnn import (
    INFERENCE_BATCH,
    LEAST_STAGES,
    MAX_WIDTH_FACTOR,
    pool_stages,
    seeded_module,
    train_net,
)
from detectors.oneclass import RealOnlyDetector
from detectors.registry import register
from forensics.errors import ForensicsError

SPACES = ("pixel", "spectral", "both")
EPS = 1e-8


class ConvAE(nn.Module):
    """conv s2 (w) → conv s2 (2w) → 1×1 (code) │ 1×1 (2w) → up → conv (w) → up → conv (C) → sigmoid.

    That is the 28×28 design (``stages=2``); with more stages (32 px: 3, 64 px: 4, see
    :func:`detectors.cnn.pool_stages`) the widths double per stage (up to 8w) and the
    bottleneck gets 4× the channels per extra stage, so it keeps the same number of
    values per pixel (a code of ``code`` channels at 1/4 of the side) at every side.
    """

    def __init__(self, channels: int, width: int = 16, code: int | None = 4,
                 stages: int = LEAST_STAGES) -> None:
        super().__init__()
        self.multiple = 2**stages
        widths = [width * min(2**i, MAX_WIDTH_FACTOR) for i in range(stages)]
        code = code * 4 ** (stages - LEAST_STAGES) if code else None
        # code=None: no 1×1 bottleneck (the pseudo-fakes' re-rendering autoencoder)
        squeeze = [nn.Conv2d(widths[-1], code, 1)] if code else []
        unsqueeze = [nn.Conv2d(code, widths[-1], 1), nn.ReLU()] if code else []
        down: list[nn.Module] = []
        for cin, cout in pairwise([channels, *widths]):
            down += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, *squeeze)
        up: list[nn.Module] = []
        for cin, cout in pairwise([*reversed(widths), channels]):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                   nn.ReLU()]
        self.decoder = nn.Sequential(*unsqueeze, *up[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.multiple
        padded = F.pad(x, (0, -width % m, 0, -height % m), mode="replicate")
        return torch.sigmoid(self.decoder(self.encoder(padded * 2 - 1)))[..., :height, :width]


def _radius_weights(height: int, width: int) -> torch.Tensor:
    """(H, W//2+1) squared frequency radius of an rfft2 grid, normalised to mean 1."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    weights = fy**2 + fx**2
    return weights / weights.mean()


def reconstruction_errors(x: torch.Tensor, r: torch.Tensor, space: str) -> torch.Tensor:
    """(N, k) log relative errors: pixel and/or radius-weighted spectral (see module doc)."""
    columns = []
    if space in ("pixel", "both"):
        error, energy = (x - r).pow(2).flatten(1).mean(1), x.pow(2).flatten(1).mean(1)
        columns.append(torch.log(error + EPS) - torch.log(energy + EPS))
    if space in ("spectral", "both"):
        weights = _radius_weights(*x.shape[-2:]).to(x.device)

        def high(t: torch.Tensor) -> torch.Tensor:
            return (torch.fft.rfft2(t, norm="ortho").abs().pow(2) * weights).flatten(1).mean(1)

        columns.append(torch.log(high(x - r) + EPS) - torch.log(high(x) + EPS))
    return torch.stack(columns, 1)


@register("reconstruction")
class ReconstructionDetector(RealOnlyDetector):
    """Real-only: two-sided robust z of an autoencoder's reconstruction errors."""

    torch_based = True
    tiny_options = {"epochs": 1, "width": 4}

    def __init__(self, *, space: str = "spectral", width: int = 16, code: int = 4, epochs: int = 8,
                 batch_size: int = 64, lr: float = 2e-3, holdout: float = 0.1, seed: int = 0,
                 device: str = "auto", precision: str = "fp32", compile: bool = False,
                 robust: bool = False) -> None:
        self.space = space
        self.width = width
        self.code = code
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.holdout = holdout
        self.seed = seed
        self.device = device
        self.precision = precision  # training only
        self.compile = compile  # training only
        self.robust = robust  # learn from processed reals too (oneclass.RealOnlyDetector)

    def _check_options(self) -> None:
        if self.space not in SPACES:
            raise ForensicsError(f"space must be one of {', '.join(SPACES)}")
        if self.width < 1 or self.code < 1:
            raise ForensicsError("width and code must be positive")

    def _train(self, images: np.ndarray) -> None:
        self._check_options()
        channels, stages = images.shape[1], pool_stages(min(images.shape[2:]))
        self.net_ = seeded_module(self.seed, lambda: ConvAE(channels, self.width, self.code, stages))
        self.history_ = train_net(self.net_, images, images, F.mse_loss, epochs=self.epochs,
                                  batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                                  augment=False, device=self._device(), precision=self._training_precision(),
                                  compile=self.compile)

    @torch.inference_mode()
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """The autoencoder's reconstructions, (N, C, H, W)."""
        device = next(self.net_.parameters()).device
        self.net_.eval()
        return np.concatenate([
            self.net_(torch.from_numpy(np.ascontiguousarray(images[s : s + INFERENCE_BATCH]))
                      .to(device)).float().cpu().numpy()
            for s in range(0, len(images), INFERENCE_BATCH)])

    @torch.inference_mode()
    def _statistics(self, images: np.ndarray) -> np.ndarray:
        device = next(self.net_.parameters()).device
        self.net_.eval()
        parts = []
        for start in range(0, len(images), INFERENCE_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + INFERENCE_BATCH]))
            x = x.to(device)
            parts.append(reconstruction_errors(x, self.net_(x).float(), self.space).cpu().numpy())
        return np.concatenate(parts).astype(np.float64)

    def _state(self) -> tuple[dict, None, dict[str, Any]]:
        return self.net_.state_dict(), None, {"channels": self.input_shape_[0],
                                               "side": min(self.input_shape_[1:]),
                                               **self._calibration_state()}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        if tensors is None:
            raise ValueError("no network weights")
        self._check_options()
        # a detector saved before the networks followed the side was built for 28×28 (2 stages)
        stages = pool_stages(int(state.get("side", 28)))
        net = ConvAE(int(state["channels"]), self.width, self.code, stages)
        net.load_state_dict(tensors)
        self.net_ = net.to(self._device()).eval()
        self._restore_calibration(state)
