"""Surprisal detector, after ZED (Cozzolino et al., ECCV 2024, "Zero-Shot Detection of AI-Generated Images").

A small PixelCNN (van den Oord et al. 2016: a 5×5 masked convolution of type A,
then 3×3 masked convolutions of type B with residual connections, then 1×1
convs) learns p(x_i | x_<i) in raster order on the real training images only.
For each image it gives the coding cost NLL = −Σ log₂ p(x_i | x_<i) and its
expected value under the model's own predictions, the entropy H = Σ H(p_i).
ZED's statistic is the gap (NLL − H) per pixel: about 0 for images like the
training reals, positive for images more surprising than the model expects,
negative for images more predictable (too smooth). It is computed at several
scales (full resolution, then 2× average-pooled, ...), one small model per
scale, and each scale's gap is standardised against held-out reals; the score
is two-sided (:mod:`detectors.oneclass`).

Pixels are coded at ``levels`` values (default 256: every 8-bit value). Fewer levels train and
score faster (16 levels: the softmax shrinks 16×) and are enough to catch blurred, noisy and
pseudo-fake digits, but they merge the faint values 1–25 into black, and that is where GAN
samples differ from MNIST digits (their background has ~5× more faint pixels); on the quick
suite's generators, 16 / 64 / 256 levels gave AUC 0.45 / 0.67 / 0.95 against the GAN and
0.96 / 0.99 / 1.00 against the AE. Since the statistic is NLL minus its own expectation the
quantisation constant cancels. Colour channels of one pixel are predicted
independently given the previous pixels (no within-pixel channel order).
The PixelCNN is local by design (a fixed receptive field of masked convolutions, no
stride-2 stage), so the same network serves every image side and channel count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.cnn import seeded_module, stretch_tone, train_net
from detectors.oneclass import RealOnlyDetector
from detectors.registry import register
from forensics.errors import ForensicsError

#: values per scoring chunk: the (chunk, levels, C, H, W) log-softmax stays in cache
#: (256 images at 16 levels of 28×28: 4× faster than 2048 images)
CHUNK_VALUES = 256 * 16 * 28 * 28


class MaskedConv2d(nn.Conv2d):
    """A conv that sees only pixels before the centre in raster order (type A), or the centre too (B)."""

    def __init__(self, cin: int, cout: int, kernel: int, mask_type: str) -> None:
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        centre = kernel // 2
        mask[:, :, centre, centre + (mask_type == "B"):] = 0
        mask[:, :, centre + 1:, :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def quantise(x: torch.Tensor | np.ndarray, levels: int):
    """Values in [0, 1] → integer levels 0 .. levels−1 (same type as the input)."""
    if isinstance(x, np.ndarray):
        return np.clip(np.rint(x * (levels - 1)), 0, levels - 1).astype(np.int64)
    return (x * (levels - 1)).round().clamp(0, levels - 1).long()


class PixelCNN(nn.Module):
    """Masked A (5×5) → ``layers`` × residual masked B (3×3) → 1×1 → 1×1 (C·levels logits)."""

    def __init__(self, channels: int, levels: int = 16, width: int = 8, layers: int = 2) -> None:
        super().__init__()
        self.channels, self.levels = channels, levels
        self.first = MaskedConv2d(channels, width, 5, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(width, width, 3, "B") for _ in range(layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(),
                                 nn.Conv2d(width, channels * levels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] → (N, C·levels, H, W) logits (the input is quantised first)."""
        q = quantise(x, self.levels).to(x.dtype) / (self.levels - 1) * 2 - 1
        h = F.relu(self.first(q))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.out(h)

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, C·L, H, W) → (N, L, C, H, W), the layout of ``F.cross_entropy``."""
        n, _, height, width = outputs.shape
        return outputs.view(n, self.channels, self.levels, height, width).transpose(1, 2)


def downsample(images: np.ndarray, times: int) -> np.ndarray:
    """2× average pooling ``times`` times (odd sizes: the last row/column is replicated first)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    for _ in range(times):
        height, width = x.shape[-2:]
        x = F.avg_pool2d(F.pad(x, (0, width % 2, 0, height % 2), mode="replicate"), 2)
    return x.numpy()


@register("surprisal")
class SurprisalDetector(RealOnlyDetector):
    """Real-only: ZED's coding-cost gap (NLL − entropy) at several scales, two-sided robust z."""

    torch_based = True
    stretches = True
    tiny_options = {"epochs": 1, "width": 4, "layers": 1, "levels": 16}

    def __init__(self, *, scales: int = 2, levels: int = 256, width: int = 8, layers: int = 2,
                 epochs: int = 3, batch_size: int = 64, lr: float = 3e-3, holdout: float = 0.1,
                 seed: int = 0, device: str = "auto", precision: str = "fp32",
                 compile: bool = False, robust: bool = False, stretch: bool = False) -> None:
        self.scales = scales
        self.levels = levels
        self.width = width
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.holdout = holdout
        self.seed = seed
        self.device = device
        self.precision = precision  # training only
        self.compile = compile  # training only
        self.robust = robust  # learn from processed reals too (oneclass.RealOnlyDetector)
        self.stretch = stretch  # code each image after auto-levels (detectors.cnn.stretch_tone)

    def _seen(self, images: np.ndarray) -> np.ndarray:
        """The images as the PixelCNN codes them: after auto-levels when ``stretch``."""
        return stretch_tone(torch.from_numpy(images)).numpy() if self.stretch else images

    def _build(self, channels: int) -> PixelCNN:
        return PixelCNN(channels, self.levels, self.width, self.layers)

    def _check_options(self, shape: tuple[int, ...]) -> None:
        if self.scales < 1 or not 2 <= self.levels <= 256 or self.width < 1 or self.layers < 0:
            raise ForensicsError("surprisal needs scales ≥ 1, 2 ≤ levels ≤ 256, width ≥ 1, layers ≥ 0")
        if min(shape[-2:]) < 2 ** (self.scales - 1):
            raise ForensicsError(f"images of {shape[-2]}×{shape[-1]} are too small for "
                                 f"{self.scales} scales")

    def _train(self, images: np.ndarray) -> None:
        self._check_options(images.shape)
        images = self._seen(images)
        channels, self.nets_ = images.shape[1], nn.ModuleList()
        self.history_ = []
        for scale in range(self.scales):
            net = seeded_module(self.seed + scale, lambda: self._build(channels))
            small = downsample(images, scale)
            targets = quantise(small, self.levels)
            self.history_.append(train_net(
                net, small, targets, lambda out, y, net=net: F.cross_entropy(net.logits(out), y),
                epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed + scale,
                augment=False, device=self._device(), precision=self._training_precision(),
                compile=self.compile))
            self.nets_.append(net)

    @torch.inference_mode()
    def coding_cost(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(NLL, entropy) in bits per pixel and channel, each (N, scales)."""
        device = next(self.nets_.parameters()).device
        images = self._seen(images)
        nll, entropy = [], []
        for scale, net in enumerate(self.nets_):
            net.eval()
            small = downsample(images, scale)
            parts_nll, parts_ent = [], []
            chunk = max(1, CHUNK_VALUES // (self.levels * int(np.prod(small.shape[1:]))))
            for start in range(0, len(small), chunk):
                x = torch.from_numpy(small[start : start + chunk]).to(device)
                out = net(x).float()  # (n, C·L, H, W): the levels along a contiguous-per-pixel axis
                n, _, height, width = out.shape
                logp = F.log_softmax(out.view(n, net.channels, self.levels, height, width), 2)
                cost = -logp.gather(2, quantise(x, self.levels).unsqueeze(2)).squeeze(2)
                expected = -(logp.exp() * logp).sum(2)
                parts_nll.append(cost.flatten(1).mean(1).cpu().numpy())
                parts_ent.append(expected.flatten(1).mean(1).cpu().numpy())
            nll.append(np.concatenate(parts_nll))
            entropy.append(np.concatenate(parts_ent))
        return (np.stack(nll, 1).astype(np.float64) / math.log(2),
                np.stack(entropy, 1).astype(np.float64) / math.log(2))

    def _statistics(self, images: np.ndarray) -> np.ndarray:
        nll, entropy = self.coding_cost(images)
        return nll - entropy

    def _state(self) -> tuple[dict, None, dict[str, Any]]:
        return self.nets_.state_dict(), None, {"channels": self.input_shape_[0],
                                                **self._calibration_state()}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        if tensors is None:
            raise ValueError("no network weights")
        channels = int(state["channels"])
        nets = nn.ModuleList(self._build(channels) for _ in range(self.scales))
        nets.load_state_dict(tensors)
        self.nets_ = nets.to(self._device()).eval()
        self._restore_calibration(state)
        if len(self.center_) != self.scales:
            raise ValueError("calibration does not match the number of scales")
