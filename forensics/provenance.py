"""Hashes, versions and machine facts recorded with every run."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

#: the PNG text chunk that carries an image's provenance (written by generate, read by detect)
PROVENANCE_KEY = "forensics:provenance"

_PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "opencv-python-headless",
             "pillow", "safetensors", "skops")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def sha256_stream(handle) -> str:
    """sha256 of what is left to read in a binary file object, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_array(array: np.ndarray) -> str:
    """Hash of an array's dtype, shape and bytes (stable across runs)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def config_hash(config: dict) -> str:
    """Short hash of a JSON-able config (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode())[:16]


def versions(also: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python, this toolkit and the libraries its numbers depend on.

    ``also``: further distributions a record depends on (e.g. the audit's scipy, prdc,
    matplotlib); one that is not installed is left out, like the others.
    """
    from forensics import __version__

    found = {"python": sys.version.split()[0], "forensics": __version__}
    for name in (*_PACKAGES, *also):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, object]:
    import os

    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # other work on the machine slows timings down: say how busy it was
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    try:
        import torch

        from forensics.runtime import native_bf16

        info["torch_threads"] = torch.get_num_threads()
        # what --precision auto picks on this CPU (bf16 makes training 1.3-1.5x faster there)
        info["cpu_native_bf16"] = native_bf16(torch.device("cpu"))
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def now() -> str:
    """The one timestamp field of a record (everything else is reproducible)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
