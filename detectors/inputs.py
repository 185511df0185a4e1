"""Turn ``--real DATASET`` and ``--fake DIR`` arguments into training arrays.

A fake folder is a ``forensics generate`` output (its manifest names the
generator), any folder of images (named after the folder), or a folder laid
out as ``0_real/`` + ``1_fake/`` (the convention of existing detection
benchmarks). Its ``0_real/`` then *is* the real data (the data set
``folder:DIR/0_real``, split 80/10/10 like any other and conformed to its most
common size); giving ``--real`` too, or two such folders, is refused, as the
real images would come from two places.
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
    """A fake source's name: the generator its manifest names, else the folder's name; a
    second set of a generator already named (e.g. the same model by another sampler) takes
    its folder's name, and when that is taken too, the name is numbered."""
    name = folder.name
    if (folder / MANIFEST).is_file():
        try:
            name = read_manifest(folder).generator or name
        except ManifestError:
            pass
    if name in taken and folder.name not in taken and folder.name != "real":
        name = folder.name
    base, i = name, 2
    while name in taken or name == "real":
        name, i = f"{base}-{i}", i + 1
    return name


def _layout(folder: Path) -> bool:
    """A ``0_real/`` + ``1_fake/`` folder."""
    return (folder / "0_real").is_dir() and (folder / "1_fake").is_dir()


def real_source(real: str | None, fake_dirs: list[Path]) -> str:
    """The real data set: ``real``, or the ``0_real/`` of the one ``0_real/ + 1_fake/`` folder
    (default mnist5k); one-line error when both are given or the layout appears twice."""
    layouts = [folder for folder in fake_dirs if folder.is_dir() and _layout(folder)]
    if len(layouts) > 1:
        raise ForensicsError("two --fake folders hold 0_real/ (" + ", ".join(map(str, layouts[:2]))
                             + "): the real images must come from one place; give one of them")
    if layouts and real is not None:
        raise ForensicsError(f"--fake {layouts[0]} holds 0_real/, which is the real data; "
                             f"drop --real {real} (or give its 1_fake/ folder alone)")
    if layouts:
        return f"folder:{layouts[0] / '0_real'}"
    return real or "mnist5k"


def gather(real: str | None, fake_dirs: list[Path], seed: int = 0, data_root: str | None = None,
           ) -> TrainingData:
    """Load the real splits and every fake folder, conformed to the real images' shape.

    ``real`` None: mnist5k, or the ``0_real/`` of a ``0_real/ + 1_fake/`` folder
    (:func:`real_source`). The provenance records the real data set's name, hash, shape
    and split counts, and each fake set's folder, count and hash.
    """
    from forensics.data import load, split_indices

    for folder in fake_dirs:
        if not folder.is_dir():
            raise ForensicsError(f"--fake {folder}: not a folder")
    dataset = load(real_source(real, fake_dirs), root=data_root)
    parts = split_indices(dataset.labels)
    shape = tuple(dataset.images.shape[1:])
    data = TrainingData({k: dataset.images[parts[k]] for k in ("train", "val", "test")}, {})
    data.problems.lines.extend(getattr(dataset, "skipped", []))
    data.provenance = {"real": {"name": dataset.name, "sha256": dataset.fingerprint(),
                                "n": {k: len(v) for k, v in data.real.items()},
                                "shape": list(shape)},
                       "fakes": {}}
    for folder in fake_dirs:
        fake_root = folder / "1_fake" if _layout(folder) else folder
        images, _ = read_all(_listed(fake_root), shape, data.problems)
        if len(images) < 10:
            raise ForensicsError(f"--fake {folder}: {len(images)} readable images; need at least 10")
        name = _name(folder, data.fakes)
        data.fakes[name] = images
        data.provenance["fakes"][name] = {"folder": str(folder), "n": len(images),
                                          "sha256": sha256_array(images)[:16]}
    return data
