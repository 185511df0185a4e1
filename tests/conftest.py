"""Shared fixtures for the generator tests: tiny configs and trained tiny runs.

Every generator is trained on ``digits`` (8×8, loads instantly) with networks
small enough that an epoch takes well under a second on one CPU core.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

def tiny_options(name: str, **overrides: object) -> dict[str, object]:
    """The generator's own smallest options (its class's ``tiny_options``), ``overrides`` applied."""
    from generators.registry import get

    return {**get(name).tiny_options, **overrides}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (use with ``pytest.mark.usefixtures``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """``trained_run(name)`` → path of a 1-epoch tiny run on digits (trained once per session).

    Tests must not write into the returned folder; they write beside it.
    """
    from generators.training import train

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            out = tmp_path_factory.mktemp(f"run_{name}") / "run"
            train(name, tiny_options(name), out=out, dataset="digits", epochs=1, seed=0, device="cpu")
            cache[name] = out
        return cache[name]

    return get


@pytest.fixture(scope="session")
def digits_train():
    """The digits train split as a float32 tensor ``(1438, 1, 8, 8)``."""
    import torch

    from forensics.data import load_split

    return torch.as_tensor(load_split("digits", "train").images)


def photo_patches(folder: Path, count: int, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Write ``count`` PNG patches of ``shape`` (C, H, W) cut from scikit-learn's two sample photographs.

    Square patches of a random side (the image side to a third of the photograph's shorter
    side) at random places, resized to H×W (area interpolation), gray when C is 1.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    channels, height, width = shape
    rng = np.random.default_rng(seed)
    photos = list(load_sample_images().images)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        photo = photos[k % len(photos)]
        side = int(rng.integers(height, min(photo.shape[:2]) // 3))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        patch = Image.fromarray(photo[top : top + side, left : left + side])
        patch = patch.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BOX)
        patch.save(folder / f"patch_{k:04d}.png")
    return folder


@pytest.fixture(scope="session")
def patch_dataset(tmp_path_factory):
    """``patch_dataset(shape)`` → ``folder:DIR`` of 96 photograph patches of that shape (made once)."""
    cache: dict[tuple[int, int, int], str] = {}

    def get(shape: tuple[int, int, int]) -> str:
        if shape not in cache:
            folder = tmp_path_factory.mktemp("patches_" + "x".join(map(str, shape)))
            cache[shape] = f"folder:{photo_patches(folder, 96, shape)}"
        return cache[shape]

    return get
