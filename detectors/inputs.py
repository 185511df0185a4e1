"""Turn ``--real DATASET`` and ``--fake DIR`` arguments into training arrays.

A fake folder is a ``forensics generate`` output (its manifest names the
generator), any folder of images (named after the folder), or a folder laid
out as ``0_real/`` + ``1_fake/`` (the convention of existing detection
benchmarks), whose real images join the real data, split 80/10/10 the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensics.batches import Problems, read_all
from forensics.errors import ForensicsError
from forensics.manifest import MANIFEST, ManifestError, read_manifest
from forensics.provenance import sha256_array


@dataclass
class TrainingData:
    real: dict[str, np.ndarray]
    fakes: dict[str, np.ndarray]
    provenance: dict = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)


def _split(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from forensics.data import split_parts

    return {part: images[index] for part, index in split_parts(len(images), seed).items()}


def _listed(folder: Path) -> list[Path]:
    """The image files of a ``forensics generate`` output as its manifest lists them.

    Other PNGs under the folder (``audit/`` figures, explanations) are not fakes of
    that generator; a folder without a usable manifest is read whole (a manifest
    naming a path outside its folder is refused).
    """
    try:
        return read_manifest(folder).files()
    except ManifestError:
        return [folder]


def _name(folder: Path, taken: dict) -> str:
    name = folder.name
    if (folder / MANIFEST).is_file():
        try:
            name = read_manifest(folder).generator or name
        except ManifestError:
            pass
    base, i = name, 2
    while name in taken or name == "real":
        name, i = f"{base}-{i}", i + 1
    return name


def gather(real: str, fake_dirs: list[Path], seed: int = 0, data_root: str | None = None,
           ) -> TrainingData:
    """Load the real splits and every fake folder, conformed to the real images' shape."""
    from forensics.data import load, split_indices

    dataset = load(real, root=data_root)
    parts = split_indices(dataset.labels)
    shape = tuple(dataset.images.shape[1:])
    data = TrainingData({k: dataset.images[parts[k]] for k in ("train", "val", "test")}, {})
    data.provenance = {"real": {"name": dataset.name, "sha256": dataset.fingerprint()},
                       "fakes": {}}
    for folder in fake_dirs:
        if not folder.is_dir():
            raise ForensicsError(f"--fake {folder}: not a folder")
        if (folder / "0_real").is_dir() and (folder / "1_fake").is_dir():
            extra, _ = read_all([folder / "0_real"], shape, data.problems)
            for key, value in _split(extra, seed).items():
                data.real[key] = np.concatenate([data.real[key], value])
            fake_root = folder / "1_fake"
        else:
            fake_root = folder
        images, _ = read_all(_listed(fake_root), shape, data.problems)
        if len(images) < 10:
            raise ForensicsError(f"--fake {folder}: {len(images)} readable images; need at least 10")
        name = _name(folder, data.fakes)
        data.fakes[name] = images
        data.provenance["fakes"][name] = {"folder": str(folder), "n": len(images),
                                          "sha256": sha256_array(images)[:16]}
    return data
