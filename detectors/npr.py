"""NPR detector (Tan et al., CVPR 2024): neighbouring-pixel relationships left by up-sampling.

A generator's ×2 up-sampling makes each 2×2 block of output pixels a function
of one low-resolution value, so the residual r = x − up(down(x)) (down = keep
every second pixel, up = nearest ×2) carries the up-sampling trace with the
image content mostly cancelled. A small CNN with a small receptive field (3×3
convs at full resolution, one 2×2 pool aligned with the up-sampling grid) maps
the residual to patch logits that are averaged into the image logit. The
residual is taken inside the network, so training augmentation (blur/JPEG, in
:func:`detectors.cnn.train_net`) acts on the image, not on the residual.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from detectors.cnn import CNNDetector, stretch_tone
from detectors.registry import register
from forensics.errors import ForensicsError

#: the residual is small (a few grey levels); scale it up before the first conv
RESIDUAL_GAIN = 4.0


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x − nearest_up(x[..., ::2, ::2]), same shape as x (odd sizes: the up-sampled grid is cropped)."""
    height, width = x.shape[-2:]
    down = x[..., ::2, ::2]
    up = down.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return x - up[..., :height, :width]


class NPRNet(nn.Module):
    """residual → conv(w) → conv(w) → pool 2 → conv(2w) → 1×1 conv → patch logits → mean."""

    def __init__(self, channels: int, outputs: int = 1, width: int = 8, stretch: bool = False) -> None:
        super().__init__()
        self.stretch = stretch  # see detectors.cnn.stretch_tone

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU()]

        self.features = nn.Sequential(*block(channels, width), *block(width, width),
                                      nn.MaxPool2d(2, ceil_mode=True), *block(width, 2 * width))
        self.head = nn.Conv2d(2 * width, outputs, 1)
        self.outputs = outputs

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, outputs, H/2, W/2) logits, one per patch (receptive field 10×10 pixels)."""
        if self.stretch:
            x = stretch_tone(x)
        return self.head(self.features(npr_residual(x) * RESIDUAL_GAIN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_logits(x).mean((2, 3))


@register("npr")
class NPRDetector(CNNDetector):
    """Binary NPR detector (BCE on the mean patch logit), blur/JPEG augmentation, optional pseudo-fakes."""

    def __init__(self, *, width: int = 8, epochs: int = 5, batch_size: int = 64,
                 lr: float = 2e-3, seed: int = 0, augment: bool = True,
                 device: str = "auto", precision: str = "fp32", compile: bool = False,
                 pseudo_fakes: float = 0.0, robust: bool = False, robust_share: float = 1.0,
                 balance: bool = True, stretch: bool = False) -> None:
        super().__init__(width=width, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         augment=augment, device=device, precision=precision, compile=compile,
                         pseudo_fakes=pseudo_fakes, robust=robust, robust_share=robust_share,
                         balance=balance, stretch=stretch)

    def build_net(self, channels: int, outputs: int, side: int) -> nn.Module:
        # local by design: one pool on the up-sampling grid and a mean of patch logits, at any side
        return NPRNet(channels, outputs, self.width, self.stretch)

    def fit(self, real: np.ndarray, fake: np.ndarray) -> NPRDetector:
        if min(np.shape(real)[2:]) < 2:
            raise ForensicsError("npr needs images of at least 2×2 pixels")
        return super().fit(real, fake)
