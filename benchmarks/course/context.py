"""What every experiment shares: its seed and size, the data, a training loop, figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.plots import show_grid  # noqa: F401 (re-exported: the course figures use it)

#: images kept in the tiny configuration (train, test)
TINY_SIZES = (256, 100)


@dataclass
class Context:
    """One experiment's run: ``seed``, ``tiny`` (a few hundred images, a few steps), ``out``."""

    name: str
    seed: int = 0
    tiny: bool = False
    out: Path = Path("benchmarks/results/course")
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def pick(self, full, tiny):
        """``full`` at full size, ``tiny`` in the tiny configuration."""
        return tiny if self.tiny else full

    def data(self, split: str):
        """mnist5k ``train`` or ``test`` split (a seeded subset when tiny)."""
        from forensics.data import load_split

        if split not in self._cache:
            data = load_split("mnist5k", split)
            if self.tiny:
                n = TINY_SIZES[0] if split == "train" else TINY_SIZES[1]
                keep = np.sort(np.random.default_rng(self.seed).permutation(len(data))[:n])
                data = data.subset(keep, "tiny")
            self._cache[split] = data
        return self._cache[split]

    def tensors(self, split: str):
        """(images, labels) of a split as torch tensors."""
        import torch

        data = self.data(split)
        return torch.as_tensor(data.images), torch.as_tensor(data.labels)

    def seed_torch(self, *parts: int) -> None:
        """Seed torch's global RNG from (seed, *parts) (model init, noise)."""
        import torch

        from forensics.runtime import derive_seed

        torch.manual_seed(derive_seed(self.seed, *parts))

    def rng(self, *parts: int):
        """A seeded torch.Generator from (seed, *parts)."""
        from generators.base import seeded

        return seeded(self.seed, *parts)

    def figure_path(self) -> Path:
        return self.out / f"{self.name}.png"

    def save(self, fig) -> None:
        from forensics.plots import save_figure

        save_figure(fig, self.figure_path())


def fit(model, images, *, epochs: int, seed: int, stream: int = 0,
        record: bool = False) -> list[dict[str, float]]:
    """Train a generator with its own ``train_step`` for ``epochs`` shuffled passes.

    Through the toolkit's one loop (:func:`forensics.loop.fit`); returns one record per
    epoch (mean of every loss term) when ``record``.
    """
    import torch

    from forensics import loop
    from generators.base import seeded

    batch = model.options.batch_size
    steps = max(len(images) // batch, 1)

    def batches(epoch: int) -> list:
        order = torch.randperm(len(images), generator=seeded(seed, stream, epoch))
        return [order[step * batch:(step + 1) * batch] for step in range(steps)]

    means = loop.fit(batches, lambda index: model.train_step(images[index]), epochs=epochs)
    model.nets.eval()
    return [{"epoch": epoch + 1, **mean} for epoch, mean in enumerate(means)] if record else []


def endless_batches(images, batch: int, seed: int, stream: int):
    """Shuffled minibatches of ``images``, epoch after epoch, forever (seeded)."""
    import torch

    from generators.base import seeded

    epoch = 0
    while True:
        order = torch.randperm(len(images), generator=seeded(seed, stream, epoch))
        for i in range(max(len(images) // batch, 1)):
            yield images[order[i * batch:(i + 1) * batch]]
        epoch += 1


def plt():
    from forensics.plots import pyplot

    return pyplot()


def quadratic_error(x, r) -> float:
    """Mean over images of Σ_pixels (x − r)², the course's quadratic loss."""
    from generators.autoencoder import quadratic_loss

    return float(quadratic_loss(x, r))
