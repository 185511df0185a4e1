"""Read many image files as conformed batches, in bounded memory, skipping bad files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensics.images import ImageReadError, conform, iter_image_files, read_image, to_float


@dataclass
class Batch:
    """Images ``(N, C, H, W)`` in [0, 1], their paths, and how many had to be resized.

    ``others`` holds the same images conformed to each extra shape asked for, each
    straight from the file (never conformed twice).
    """

    images: np.ndarray
    paths: list[Path]
    resized: int = 0
    others: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)

    def at(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The images conformed to ``shape`` (the main shape or one of ``others``)."""
        shape = tuple(shape)
        return self.others[shape] if shape in self.others else self.images


@dataclass
class Problems:
    """One-line reasons for every path that could not be used."""

    lines: list[str] = field(default_factory=list)


def iter_batches(paths: Iterable[str | Path], shape: tuple[int, int, int], problems: Problems,
                 batch_size: int = 512, also: Iterable[tuple[int, int, int]] = ()
                 ) -> Iterator[Batch]:
    """Yield conformed batches of at most ``batch_size`` images; record skipped files.

    ``also``: further ``(C, H, W)`` shapes each image is conformed to (``Batch.others``).
    """
    channels, size = shape[0], shape[1]
    extra = [tuple(s) for s in dict.fromkeys(tuple(s) for s in also) if tuple(s) != tuple(shape)]
    images: list[np.ndarray] = []
    others: dict[tuple, list[np.ndarray]] = {s: [] for s in extra}
    kept: list[Path] = []
    resized = 0

    def batch() -> Batch:
        return Batch(to_float(np.stack(images)), kept, resized,
                     {s: to_float(np.stack(v)) for s, v in others.items()})

    for path, problem in iter_image_files(paths):
        if problem:
            problems.lines.append(problem)
            continue
        try:
            image = read_image(path)
        except ImageReadError as error:
            problems.lines.append(str(error))
            continue
        if image.shape[:2] != (size, size) or image.shape[2] != channels:
            resized += 1
        images.append(conform(image, size, channels))
        for s, conformed in others.items():
            conformed.append(conform(image, s[1], s[0]))
        kept.append(path)
        if len(images) == batch_size:
            yield batch()
            images, kept, resized = [], [], 0
            others = {s: [] for s in extra}
    if images:
        yield batch()


def read_all(paths: Iterable[str | Path], shape: tuple[int, int, int],
             problems: Problems) -> tuple[np.ndarray, list[Path]]:
    """Every readable image under ``paths`` as one array (for training sets)."""
    arrays, kept = [], []
    for batch in iter_batches(paths, shape, problems):
        arrays.append(batch.images)
        kept += batch.paths
    if not arrays:
        return np.zeros((0, *shape), np.float32), []
    return np.concatenate(arrays), kept
