"""The training step of a generator trained on one loss with one optimizer (AE, VAE)."""

from __future__ import annotations

from typing import ClassVar

import torch

from forensics.loop import minimise


class OneLossStep:
    """Mixin: ``train_step`` minimises ``self.loss(x)["loss"]`` with ``self.optimizers[optimizer]``.

    ``loss(x)`` returns every term as a tensor, the total under ``"loss"``; the step
    returns them all as floats.
    """

    optimizer: ClassVar[str]

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        self.nets.train()
        terms = self.loss(x)
        minimise(self.optimizers[self.optimizer], terms["loss"])
        return {key: value.item() for key, value in terms.items()}
