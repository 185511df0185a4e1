"""Read many image files as conformed batches, in bounded memory, skipping bad files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensics.images import ImageReadError, conform, iter_image_files, read_image, to_float


@dataclass
class Batch:
    """Images ``(N, C, H, W)`` in [0, 1], their paths, and how many had to be resized."""

    images: np.ndarray
    paths: list[Path]
    resized: int = 0


@dataclass
class Problems:
    """One-line reasons for every path that could not be used."""

    lines: list[str] = field(default_factory=list)


def iter_batches(paths: Iterable[str | Path], shape: tuple[int, int, int], problems: Problems,
                 batch_size: int = 512) -> Iterator[Batch]:
    """Yield conformed batches of at most ``batch_size`` images; record skipped files."""
    channels, size = shape[0], shape[1]
    images: list[np.ndarray] = []
    kept: list[Path] = []
    resized = 0
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
        kept.append(path)
        if len(images) == batch_size:
            yield Batch(to_float(np.stack(images)), kept, resized)
            images, kept, resized = [], [], 0
    if images:
        yield Batch(to_float(np.stack(images)), kept, resized)


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
