"""Device choice and seeding shared by every command."""

from __future__ import annotations

from forensics.errors import ForensicsError

DEVICES = ("auto", "cpu", "cuda")
#: ``--precision`` of training: float32, or bf16 autocast of the networks' forward passes
PRECISIONS = ("fp32", "bf16")


def pick_device(name: str = "auto"):
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ForensicsError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ForensicsError("--device cuda asked for, but no CUDA GPU is available")
    return torch.device(name)


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from a run seed and counters (epoch, shard, ...)."""
    import numpy as np

    mixed = np.random.SeedSequence([seed, *parts]).generate_state(1, dtype=np.uint64)[0]
    return int(mixed) & ((1 << 63) - 1)


def check_precision(precision: str) -> str:
    """``precision`` itself, or a one-line error when it is not one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ForensicsError(f"precision must be {' or '.join(PRECISIONS)}, not {precision!r}")
    return precision


def autocast(device, precision: str):
    """The context of training forward passes: bf16 autocast on ``device``, or nothing (fp32)."""
    from contextlib import nullcontext

    import torch

    if check_precision(precision) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
