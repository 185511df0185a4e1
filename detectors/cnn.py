"""CNN detector (Wang et al. 2020): a small CNN trained on real vs fake with blur/JPEG augmentation.

The network keeps full resolution in its first layer, where up-sampling
artefacts live, then pools once per stride-2 stage of the image side
(:func:`forensics.nets.down_stages`: twice at 28×28, 3 times at 32, 4 at 64; never
fewer than the original design's two) and averages globally; ~23k parameters at
the default width (16) at 28×28, so inference is fast on a CPU.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectors.base import Detector, class_weights, sigmoid
from detectors.registry import register
from forensics.errors import ForensicsError
from forensics.nets import down_stages

INFERENCE_BATCH = 2048


#: pooling stages of a detector saved before the stages followed the side (and the least ever used)
LEAST_STAGES = 2
#: the CNN's widths stop doubling at this multiple of ``width``
MAX_WIDTH_FACTOR = 8
#: ``stretch``: the share of an image's values at each end that auto-levels clips (1 %: the
#: darkest 8 of a 28×28 digit's 784 pixels set its black, the brightest 8 its white)
STRETCH_SHARE = 0.01
#: images whose clipped range is narrower than this are left as they are (a blank image)
STRETCH_MIN_SPAN = 0.1


def stretch_tone(x: torch.Tensor) -> torch.Tensor:
    """Auto-levels per image: the value at the darkest ``STRETCH_SHARE`` of its pixels (all
    channels together) becomes 0 and the value at the brightest becomes 1, the rest mapped
    linearly and clipped. A detector that sees only this is blind by construction to the black
    level and the contrast: a real digit whose black was lifted by 8/255, or whose gain was
    lowered, looks to it as the digit itself (which its maker could choose in any editor), so
    the black level of a generator's images is no shortcut for it either."""
    flat = x.flatten(1).float()
    k = max(1, int(round(STRETCH_SHARE * flat.shape[1])))
    low = flat.kthvalue(k, dim=1).values
    high = flat.kthvalue(flat.shape[1] - k + 1, dim=1).values
    span = high - low
    keep = span < STRETCH_MIN_SPAN
    low = torch.where(keep, torch.zeros_like(low), low)
    span = torch.where(keep, torch.ones_like(span), span)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return ((x - low.view(shape).to(x.dtype)) / span.view(shape).to(x.dtype)).clamp(0.0, 1.0)


def pool_stages(side: int) -> int:
    """The CNN's pooling stages for images of this side (28 → 2, 32 → 3, 64 → 4, 8 → 2)."""
    return max(LEAST_STAGES, down_stages(side))


class ConvNet(nn.Module):
    """conv(w) → pool → conv(2w) → pool → conv(4w) [→ pool → conv(8w) …] → global average → linear.

    ``stages`` pools (default 2, the 28×28 design); widths double per stage up to 8w.
    """

    def __init__(self, channels: int, outputs: int, width: int = 16,
                 stages: int = LEAST_STAGES, stretch: bool = False) -> None:
        super().__init__()
        self.stretch = stretch  # see stretch_tone: the first thing the network does

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU()]

        widths = [width * min(2**i, MAX_WIDTH_FACTOR) for i in range(stages + 1)]
        layers = block(channels, widths[0])
        for cin, cout in pairwise(widths):
            layers += [nn.MaxPool2d(2), *block(cin, cout)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], outputs)
        self.outputs = outputs
        self.stages = stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stretch:
            x = stretch_tone(x)
        return self.head(self.features(x * 2.0 - 1.0))


def weighted_bce(counts: list[int], balance: bool):
    """BCE on the fake-logit (column 0), each image weighted by its class (:func:`class_weights`)."""
    weights = torch.as_tensor(class_weights(counts, balance), dtype=torch.float32)

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out[:, 0], y, weight=weights.to(y.device)[y.long()])

    return loss


def seeded_module(seed: int, build) -> nn.Module:
    """Build a module with weights initialised from ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_net(net: nn.Module, inputs: np.ndarray, targets: np.ndarray, loss_fn, *,
              epochs: int, batch_size: int, lr: float, seed: int, augment: bool,
              device: torch.device, precision: str = "fp32", compile: bool = False,
              robust: bool = False, robust_share: float = 1.0) -> list[float]:
    """Adam on minibatches, fresh blur/JPEG augmentation each epoch; returns epoch losses.

    ``robust``: the wider augmentation of :func:`detectors.augment.robust` (resize, sharpening,
    noise, JPEG or WebP, now and then twice), given to a ``robust_share`` of the images each
    epoch (the rest plain).

    Under ``torchrun`` the network trains in DistributedDataParallel: every rank
    draws the same epoch order and augmentation, and a DistributedSampler gives
    each its share of every global batch of ``batch_size``.
    """
    from torch.utils.data import DistributedSampler

    from detectors.augment import blur_jpeg
    from detectors.augment import robust as robust_augment
    from forensics import distributed, loop
    from forensics.runtime import autocast, resolve_precision

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ForensicsError("epochs and batch_size must be positive, and lr above 0")
    precision = resolve_precision(precision, device)  # once: "auto" probes the device
    local = distributed.local_batch(batch_size)
    rng = np.random.default_rng(seed)
    net.to(device).train()
    optimizer = loop.adam([p for p in net.parameters() if p.requires_grad], lr)
    live = distributed.wrap(net, device, compile=compile)
    y_all = torch.as_tensor(targets)
    epoch: dict[str, Any] = {}  # this epoch's (augmented) inputs and this rank's image count

    def batches(_: int) -> list[torch.Tensor]:
        if not augment:
            augmented = inputs
        elif robust:
            augmented = robust_augment(inputs, rng, robust_share)
        else:
            augmented = blur_jpeg(inputs, rng)
        epoch["x"] = torch.from_numpy(augmented)
        order = torch.from_numpy(rng.permutation(len(inputs)))
        # rank r takes order[r::N]: its k-th batch is its share of the k-th global batch
        mine = order[list(DistributedSampler(order, num_replicas=distributed.size(),
                                             rank=distributed.rank(), shuffle=False,
                                             drop_last=distributed.size() > 1))]
        epoch["n"] = float(len(mine))
        parts = [mine[start : start + local] for start in range(0, len(mine), local)]
        # BatchNorm needs two samples
        return [index for index in parts if not (len(index) < 2 and len(order) > 1)]

    def step(index: torch.Tensor) -> dict[str, float]:
        with autocast(device, precision):
            outputs = live(epoch["x"][index].to(device))
        loss = loss_fn(outputs.float(), y_all[index].to(device))
        loop.minimise(optimizer, loss)
        return {"loss": loss.item()}

    def end_epoch(_: int, sums: dict[str, float], counts: dict[str, float]) -> float:
        summed = distributed.all_mean({"loss": sums.get("loss", 0.0), "n": epoch["n"]})
        return summed["loss"] / summed["n"]

    history = loop.fit(batches, step, epochs=epochs, weight=len, end_epoch=end_epoch)
    net.eval()
    return history


@torch.inference_mode()
def net_outputs(net: nn.Module, inputs: np.ndarray, device: torch.device) -> np.ndarray:
    """The network's outputs for a batch, in chunks, in eval mode."""
    net.eval()
    parts = [net(torch.from_numpy(np.ascontiguousarray(inputs[start : start + INFERENCE_BATCH]))
                 .to(device)).float().cpu().numpy()
             for start in range(0, len(inputs), INFERENCE_BATCH)]
    return np.concatenate(parts)


class NetDetector(Detector):
    """Shared by the CNN, NPR and attribution detectors: options, saliency, state.

    ``pseudo_fakes`` (fraction of the number of real training images, default 0)
    adds that many re-rendered real images (:func:`detectors.pseudo.pseudo_fakes`)
    to the fakes; at 0 nothing is drawn, so training is unchanged.
    """

    torch_based = True
    has_saliency = True
    balances = True
    stretches = True
    tiny_options = {"epochs": 1, "device": "cpu"}

    def __init__(self, *, width: int = 16, epochs: int = 5, batch_size: int = 64,
                 lr: float = 1e-3, seed: int = 0, augment: bool = True,
                 device: str = "auto", precision: str = "fp32", compile: bool = False,
                 pseudo_fakes: float = 0.0, robust: bool = False, robust_share: float = 1.0,
                 balance: bool = True, stretch: bool = False) -> None:
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.augment = augment
        self.device = device
        self.precision = precision  # training only: fp32, or bf16 autocast
        self.compile = compile  # training only: torch.compile the network
        self.pseudo_fakes = pseudo_fakes
        self.robust = robust  # the wider augmentation of detectors.augment.robust
        #: the share of training images that ``robust`` processes each epoch (the rest plain):
        #: a network that never sees a plain image learns little of the plain traces. In the
        #: default detector's ensemble on its seven fake sets (2026-12-03, test split; README):
        #: 0.5 gave AUC 0.981 (GAN 0.986, InfoGAN 0.945), TPR 28.9 % at the threshold, and ≤ 1.2 %
        #: of real digits called fake under each of 26 processings (the shipped build, its extra
        #: fake sets on a seed of their own: AUC 0.980, ≤ 2.0 %); at width 32, 1 gave AUC 0.935
        #: (GAN 0.894, InfoGAN 0.795), TPR 21.9 %, and 0.75 / 0.5 AUC 0.968 / 0.987 but 3.4 % /
        #: 2.8 % of eroded real digits (a processing never trained on) called fake
        self.robust_share = robust_share
        self.balance = balance  # class-weighted loss: each class weighs the same (base.class_weights)
        #: judge each image after auto-levels (stretch_tone), after the training augmentation
        #: and before scoring: blind to black level and contrast
        self.stretch = stretch

    def build_net(self, channels: int, outputs: int, side: int) -> nn.Module:
        """The network this family trains for images of ``side`` (a module with ``outputs``)."""
        return ConvNet(channels, outputs, self.width, pool_stages(side), self.stretch)

    def _pseudo(self, real: np.ndarray) -> np.ndarray | None:
        """``pseudo_fakes × len(real)`` re-rendered real images, or None at 0 (nothing drawn)."""
        if self.pseudo_fakes < 0:
            raise ForensicsError("pseudo_fakes must be 0 or more")
        count = int(round(self.pseudo_fakes * len(real)))
        if count == 0:
            return None
        from detectors.pseudo import pseudo_fakes

        return pseudo_fakes(real, count, self.seed)

    def _train(self, images: np.ndarray, targets: np.ndarray, outputs: int, loss_fn) -> None:
        if self.width < 1:
            raise ForensicsError("width must be positive")
        if not 0.0 < self.robust_share <= 1.0:
            raise ForensicsError("robust_share must lie in (0, 1]")
        if self.robust_share != 1.0 and not (self.robust and self.augment):
            raise ForensicsError("robust_share applies to the robust augmentation: give robust=true "
                                 "(and augment=true), or leave robust_share at 1")
        channels, side = images.shape[1], min(images.shape[2:])
        self.net_ = seeded_module(self.seed, lambda: self.build_net(channels, outputs, side))
        self.history_ = train_net(self.net_, images, targets, loss_fn, epochs=self.epochs,
                                  batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                                  augment=self.augment, device=self._device(),
                                  precision=self._training_precision(), compile=self.compile,
                                  robust=self.robust, robust_share=self.robust_share)

    def fake_logit(self, outputs: torch.Tensor) -> torch.Tensor:
        """log-odds of "fake" from the network's outputs."""
        raise NotImplementedError

    def saliency(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W): |d fake-logit / d input|, max over channels."""
        images = self._check_input(images)
        device = next(self.net_.parameters()).device
        self.net_.eval()
        maps = []
        for start in range(0, len(images), INFERENCE_BATCH):
            x = torch.from_numpy(images[start : start + INFERENCE_BATCH]).to(device)
            x.requires_grad_(True)
            self.fake_logit(self.net_(x)).sum().backward()
            maps.append(x.grad.abs().amax(1).cpu().numpy())
        return np.concatenate(maps)

    def _state(self) -> tuple[dict, None, dict[str, Any]]:
        return self.net_.state_dict(), None, {"channels": self.input_shape_[0],
                                               "outputs": self.net_.outputs,
                                               "side": min(self.input_shape_[1:])}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        if tensors is None:
            raise ValueError("no network weights")
        # a detector saved before the networks followed the side was built for 28×28 (2 stages)
        net = self.build_net(int(state["channels"]), int(state["outputs"]), int(state.get("side", 28)))
        net.load_state_dict(tensors)
        self.net_ = net.to(self._device()).eval()


@register("cnn")
class CNNDetector(NetDetector):
    """Wang et al. 2020: binary CNN (logit = log-odds of fake), BCE, blur/JPEG augmentation."""

    def fit(self, real: np.ndarray, fake: np.ndarray) -> CNNDetector:
        real, fake = self._start_fit(real, fake)
        extra = self._pseudo(real)
        if extra is not None:
            fake = np.concatenate([fake, extra])
        images = np.concatenate([real, fake])
        targets = np.r_[np.zeros(len(real)), np.ones(len(fake))].astype(np.float32)
        self._train(images, targets, 1, weighted_bce([len(real), len(fake)], self.balance))
        self._end_fit(real)
        return self

    def fake_logit(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs[:, 0]

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return sigmoid(self._log_odds_and_sources(images)[0])

    def _log_odds_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, None]:
        logits = net_outputs(self.net_, images, next(self.net_.parameters()).device)[:, 0]
        return logits.astype(np.float64), None
