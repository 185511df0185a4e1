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
