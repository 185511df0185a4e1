"""A trained GAN's own discriminator as a detector.

``mode="zero-shot"``: P(fake) = 1 − D(x) with the run's D untouched.
``mode="finetune"``: D's body (frozen by default) with a new linear head
trained with BCE on real vs fake. Saving copies D's weights and the
generator options needed to rebuild it, so the detector folder stands alone.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from detectors.base import Detector, sigmoid
from detectors.cnn import net_outputs, seeded_module, train_net, weighted_bce
from detectors.registry import register
from forensics.errors import ForensicsError

MODES = ("zero-shot", "finetune")


def discriminator_parts(model) -> tuple[nn.Module, nn.Linear]:
    """(body, head) copied from a model with a discriminator; head(body(x)) is D's real-logit."""
    body, head = model.discriminator()
    return copy.deepcopy(body).cpu().eval(), copy.deepcopy(head).cpu().eval()


class Discriminator(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@register("discriminator")
class DiscriminatorDetector(Detector):
    """Detector from a trained ``gan`` or ``infogan`` run folder (option ``run=PATH``)."""

    needs_run = True
    torch_based = True
    balances = True
    tiny_options = {"device": "cpu"}

    def __init__(self, *, run: str | None = None, mode: str = "zero-shot", freeze: bool = True,
                 epochs: int = 5, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                 device: str = "auto", precision: str = "fp32", compile: bool = False,
                 balance: bool = True) -> None:
        self.balance = balance  # finetune: class-weighted loss (detectors.base.class_weights)
        self.run = run
        self.mode = mode
        self.freeze = freeze
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.precision = precision  # finetune training only: fp32, or bf16 autocast
        self.compile = compile  # finetune training only: torch.compile the network

    def fit(self, real: np.ndarray, fake: np.ndarray) -> DiscriminatorDetector:
        """Load D from the run; in finetune mode also train a new head on real vs fake."""
        from generators.runs import load_run

        if self.mode not in MODES:
            raise ForensicsError(f"mode must be one of {', '.join(MODES)}")
        if not self.run:
            raise ForensicsError("the discriminator detector needs the option run=PATH "
                                 "(a trained gan or infogan run folder)")
        loaded = load_run(self.run, device="cpu")
        body, head = discriminator_parts(loaded.model)
        shape = tuple(int(v) for v in loaded.config["data"]["shape"])
        real, fake = self._start_fit(real, fake)
        if real.shape[1:] != shape:
            raise ForensicsError(f"the run was trained on {shape} images but these are "
                                 f"{real.shape[1:]}; conform them first")
        self.generator_ = {"generator": loaded.config["generator"],
                           "options": dict(loaded.config["options"]), "image_shape": list(shape)}
        self.sign_ = -1.0  # zero-shot: D's logit says "real", so P(fake) = sigmoid(−logit)
        if self.mode == "finetune":
            head = seeded_module(self.seed, lambda: nn.Linear(head.in_features, 1))
            self.sign_ = 1.0
            self._finetune(body, head, real, fake)
        self.net_ = Discriminator(body, head).to(self._device()).eval()
        self._end_fit(real)
        return self

    def _finetune(self, body: nn.Module, head: nn.Linear, real: np.ndarray,
                  fake: np.ndarray) -> None:
        images = np.concatenate([real, fake])
        targets = np.r_[np.zeros(len(real)), np.ones(len(fake))].astype(np.float32)
        device = self._device()
        loss = weighted_bce([len(real), len(fake)], self.balance)
        options = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                   "seed": self.seed, "augment": False, "device": device,
                   "precision": self._training_precision(), "compile": self.compile}
        if self.freeze:  # features once, then only the head learns
            for p in body.parameters():
                p.requires_grad_(False)
            features = net_outputs(body.to(device), images, device)
            self.history_ = train_net(head, features, targets, loss, **options)
        else:
            self.history_ = train_net(Discriminator(body, head), images, targets, loss, **options)

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return sigmoid(self._log_odds_and_sources(images)[0])

    def _log_odds_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, None]:
        logits = net_outputs(self.net_, images, next(self.net_.parameters()).device)[:, 0]
        return self.sign_ * logits.astype(np.float64), None

    def _state(self) -> tuple[dict, None, dict[str, Any]]:
        return self.net_.state_dict(), None, {**self.generator_, "sign": self.sign_}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        from generators.registry import create

        if tensors is None:
            raise ValueError("no discriminator weights")
        model = create(state["generator"], image_shape=tuple(state["image_shape"]),
                       **state["options"])
        body, head = discriminator_parts(model)
        net = Discriminator(body, head)
        net.load_state_dict(tensors)
        self.net_ = net.to(self._device()).eval()
        self.generator_ = {key: state[key] for key in ("generator", "options", "image_shape")}
        self.sign_ = float(state["sign"])
