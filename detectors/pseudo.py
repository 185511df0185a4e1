"""Pseudo-fakes: real training images re-rendered so they keep their content and gain a generator's trace.

After B-Free (Guillaro et al. 2025: fakes made from the reals themselves, so a
detector cannot learn content, only the rendering) and self-blended images
(Shiohara & Yamasaki 2022). Two renderings:

- **random decoders** (encoder-free): the image is 2× average-pooled, then
  re-up-sampled twice — a smooth base (bilinear or nearest, drawn per image)
  that keeps the digit, plus the high-pass part of a randomly initialised
  decoder (transposed conv ×2, nearest + conv, or bilinear + conv, followed by
  a small random conv stack), scaled to a small random amplitude. The base
  carries the loss of fine detail, the high-pass the periodic up-sampling trace.
- **a small autoencoder** trained for a few epochs on the reals (seeded) that
  re-renders them, as the course's AE generator does.

Everything is drawn from ``seed`` (numpy Generator + a forked torch RNG), so the
global random state is untouched and equal seeds give equal arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.base import as_batch
from forensics.errors import ForensicsError

UPSAMPLERS = ("transpose", "nearest", "bilinear")
N_DECODERS = 8  # distinct random decoders per call (each renders a share of the images)
AE_IMAGES = 2000  # the autoencoder trains on at most this many reals
AE_EPOCHS = 3


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad the bottom/right so height and width are even."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if (h % 2 or w % 2) else x


def random_decoder(channels: int, kind: str, hidden: int = 8) -> nn.Module:
    """A randomly initialised ×2 decoder: the up-sampling layer, then a small conv stack."""
    if kind == "transpose":
        up: list[nn.Module] = [nn.ConvTranspose2d(channels, hidden, 4, stride=2, padding=1)]
    else:
        up = [nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(channels, hidden, 3, padding=1)]
    return nn.Sequential(*up, nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, channels, 3, padding=1))


def _high_pass(x: torch.Tensor) -> torch.Tensor:
    return x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


@torch.no_grad()
def decoder_render(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-render through random up-sampling decoders (see module doc)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    n, channels, height, width = x.shape
    low = F.avg_pool2d(_pad_even(x), 2)
    out = torch.empty_like(x)
    groups = np.array_split(rng.permutation(n), min(N_DECODERS, n))
    for group in groups:
        kind = UPSAMPLERS[int(rng.integers(len(UPSAMPLERS)))]
        torch.manual_seed(int(rng.integers(2**31)))  # inside the caller's forked RNG
        decoder = random_decoder(channels, kind)
        index = torch.from_numpy(group)
        part = low[index]
        trace = _high_pass(decoder(part * 2 - 1))[..., :height, :width]
        trace = trace / trace.flatten(1).std(1).clamp_min(1e-6)[:, None, None, None]
        smooth = F.interpolate(part, scale_factor=2, mode="bilinear", align_corners=False)
        blocky = F.interpolate(part, scale_factor=2, mode="nearest")
        pick = torch.from_numpy(rng.random(len(group)) < 0.5)[:, None, None, None]
        base = torch.where(pick, smooth, blocky)[..., :height, :width]
        amplitude = torch.from_numpy(rng.uniform(0.02, 0.08, len(group)).astype(np.float32))
        out[index] = (base + amplitude[:, None, None, None] * trace).clamp(0, 1)
    return out.numpy()


def autoencoder_render(train: np.ndarray, images: np.ndarray, rng: np.random.Generator,
                       epochs: int = AE_EPOCHS) -> np.ndarray:
    """Train a small AE on (up to AE_IMAGES of) ``train`` for a few epochs; reconstruct ``images``."""
    from detectors.cnn import net_outputs, train_net
    from detectors.reconstruction import ConvAE

    subset = train[rng.permutation(len(train))[:AE_IMAGES]]
    torch.manual_seed(int(rng.integers(2**31)))
    net = ConvAE(train.shape[1], width=16, code=None)
    train_net(net, subset, subset, F.mse_loss, epochs=epochs, batch_size=32, lr=3e-3,
              seed=int(rng.integers(2**31)), augment=False, device=torch.device("cpu"))
    return net_outputs(net, np.ascontiguousarray(images), torch.device("cpu"))


def pseudo_fakes(real: np.ndarray, n: int, seed: int = 0, *, ae_share: float = 0.25,
                 return_index: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``n`` re-rendered real images, (n, C, H, W) float32 in [0, 1].

    Sources are drawn from ``real`` (without replacement while n ≤ len(real));
    a share ``ae_share`` goes through a small trained autoencoder, the rest
    through random up-sampling decoders. ``return_index=True`` also returns
    the index into ``real`` of each image's source.
    """
    real = as_batch(real, "real images")
    if n < 1:
        raise ForensicsError("pseudo_fakes: n must be positive")
    if not 0.0 <= ae_share <= 1.0:
        raise ForensicsError("pseudo_fakes: ae_share must be in [0, 1]")
    rng = np.random.default_rng([seed, 7919])
    source = (rng.permutation(len(real))[:n] if n <= len(real)
              else rng.integers(len(real), size=n))
    n_ae = int(round(ae_share * n)) if len(real) >= 2 else 0
    out = np.empty((n, *real.shape[1:]), dtype=np.float32)
    with torch.random.fork_rng(devices=[]):
        if n_ae < n:
            out[n_ae:] = decoder_render(real[source[n_ae:]], rng)
        if n_ae:
            out[:n_ae] = autoencoder_render(real, real[source[:n_ae]], rng)
    out = np.clip(out, 0.0, 1.0)
    return (out, source) if return_index else out
