"""The toolkit's digit classifier: a small CNN trained on the mnist5k train split.

It ships with the package (``forensics/assets/digit_classifier``) and is the
feature space of the domain metrics (Fréchet distance, KID, precision/recall,
mode coverage): no Inception download, and documented as a *digit-domain*
metric. Rebuild it with ``python -m forensics.classifier``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

ASSET = Path(__file__).parent / "assets" / "digit_classifier"


def build():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),  # index 7: the 128-d features
        nn.Dropout(0.3), nn.Linear(128, 10),
    )


class DigitClassifier:
    """Wraps the network: ``predict_proba`` (N, 10) and ``features`` (N, 128)."""

    def __init__(self, net) -> None:
        self.net = net.eval()

    def to(self, device) -> DigitClassifier:
        """Run the network on ``device`` (a torch device or its name) from now on."""
        self.net.to(device)
        return self

    def _run(self, images: np.ndarray, upto: int | None) -> np.ndarray:
        import torch

        x = torch.as_tensor(_as_mnist(images))
        layers = self.net[:upto] if upto else self.net
        device = next(self.net.parameters()).device
        with torch.no_grad():
            return torch.cat([layers(b.to(device)).cpu() for b in x.split(1024)]).numpy()

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._run(images, 8).astype(np.float64)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        from scipy.special import softmax

        return softmax(self._run(images, None).astype(np.float64), axis=1)


def _as_mnist(images: np.ndarray) -> np.ndarray:
    """Conform any (N, C, H, W) batch in [0, 1] to (N, 1, 28, 28) float32."""
    from forensics.images import conform, to_float, to_uint8

    images = np.asarray(images, dtype=np.float32)
    if images.shape[1:] == (1, 28, 28):
        return images
    return to_float(np.stack([conform(im, 28, 1) for im in to_uint8(images)]))


@lru_cache(maxsize=1)
def load_digit_classifier() -> DigitClassifier:
    from forensics.checkpoint import load_weights

    net = build()
    net.load_state_dict(load_weights(ASSET / "model.safetensors"))
    return DigitClassifier(net)


def train_digit_classifier(epochs: int = 8, seed: int = 0) -> dict:
    """Train on mnist5k train (val for model choice), report test accuracy, save the asset."""
    import torch
    import torch.nn.functional as F

    from forensics import atomic, provenance
    from forensics.checkpoint import save_weights
    from forensics.data import load_split
    from forensics.loop import adam, fit, minimise

    torch.manual_seed(seed)
    train, test = load_split("mnist5k", "train"), load_split("mnist5k", "test")
    x, y = torch.as_tensor(train.images), torch.as_tensor(train.labels)
    net = build()
    opt = adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(seed)

    def batches(_: int):
        net.train()
        return torch.randperm(len(x), generator=gen).split(64)

    def step(batch) -> dict[str, float]:
        # light shifts make the features robust to off-centre generated digits
        shift = torch.randint(-2, 3, (2,), generator=gen).tolist()
        xb = torch.roll(x[batch], shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(net(xb), y[batch])
        minimise(opt, loss)
        return {"loss": loss.item()}

    fit(batches, step, epochs=epochs)
    classifier = DigitClassifier(net)
    accuracy = float((classifier.predict_proba(test.images).argmax(1) == test.labels).mean())
    save_weights(ASSET / "model.safetensors", net.state_dict())
    info = {"trained_on": "mnist5k train split (4,000 images, split seed 0)", "epochs": epochs,
            "seed": seed, "test_accuracy": accuracy, "test_size": len(test),
            "versions": provenance.versions(),
            "weights_sha256": provenance.sha256_file(ASSET / "model.safetensors")}
    atomic.write_json(ASSET / "config.json", info)
    return info


if __name__ == "__main__":
    print(train_digit_classifier())
