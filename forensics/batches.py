"""Read many image files as conformed batches, in bounded memory, skipping bad files.

Files stream through a :class:`torch.utils.data.DataLoader`: :class:`ImageFiles`
walks the inputs itself (no list of every path is ever held), numbers each entry
of the walk with its global index (bad paths too), keeps the entries of its
:class:`Shard` and groups them into chunks of ``batch_size`` entries. With
``workers`` processes, chunk ``c`` is read by worker ``c % workers``; the
DataLoader takes one result from each worker in turn, so batches come back in
chunk order, and at most ``workers × 2`` batches are in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from forensics.domain import original_shape
from forensics.images import (
    ImageReadError,
    conform,
    display_name,
    iter_image_files,
    opencv,
    read_image_with_text,
    to_float,
)
from forensics.provenance import PROVENANCE_KEY
from forensics.shard import Shard

#: Batches each worker process prepares ahead (the DataLoader's ``prefetch_factor``).
PREFETCH = 2


@dataclass
class Batch:
    """Images ``(N, C, H, W)`` in [0, 1] with their paths, walk indices and provenance tags.

    ``others`` holds the same images conformed to each extra shape asked for, each
    straight from the file (never conformed twice). ``problems`` are the entries of
    the same chunk that could not be used, as ``(index, one-line reason)``.
    """

    images: np.ndarray
    paths: list[Path]
    others: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)
    indices: list[int] = field(default_factory=list)
    tags: list[str | None] = field(default_factory=list)
    conformed: list[bool] = field(default_factory=list)
    #: each file's own ``(C, H, W)`` before conforming, C = 1 for a gray-looking RGB file
    #: (:func:`forensics.domain.original_shape`): what a detector's domain is judged on
    shapes: list[tuple[int, int, int]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: the display name of each problem's path (parallel to ``problems``)
    problem_files: list[str] = field(default_factory=list)
    #: each file's own ``(H, W, C)`` as decoded (what a conform warning names)
    sizes: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def resized(self) -> int:
        """How many images were not of the main shape and had to be conformed."""
        return sum(self.conformed)

    def at(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The images conformed to ``shape`` (the main shape or one of ``others``)."""
        shape = tuple(shape)
        return self.others[shape] if shape in self.others else self.images


@dataclass
class Problems:
    """One-line reasons for every path that could not be used."""

    lines: list[str] = field(default_factory=list)


class ImageFiles(IterableDataset):
    """The image files under ``paths`` as batches (:class:`Batch`) of at most ``batch_size`` entries."""

    def __init__(self, paths: Iterable[str | Path], shape: tuple[int, int, int], *,
                 also: Iterable[tuple[int, int, int]] = (), batch_size: int = 512,
                 shard: Shard = Shard()) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.paths = list(paths)  # the arguments, not the files under them
        self.shape = tuple(shape)
        self.also = [s for s in dict.fromkeys(tuple(s) for s in also) if s != self.shape]
        self.batch_size = batch_size
        self.shard = shard

    def chunks(self) -> Iterator[list[tuple[int, Path, str | None]]]:
        """This shard's entries ``(index, path, problem)`` of the walk, ``batch_size`` at a time."""
        chunk: list[tuple[int, Path, str | None]] = []
        for index, (path, problem) in enumerate(iter_image_files(self.paths)):
            if index % self.shard.count != self.shard.index:
                continue
            chunk.append((index, path, problem))
            if len(chunk) == self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def __iter__(self) -> Iterator[Batch]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for number, chunk in enumerate(self.chunks()):
            if number % workers == worker:
                yield self.read(chunk)

    def read(self, chunk: list[tuple[int, Path, str | None]]) -> Batch:
        """Read and conform the files of one chunk."""
        channels, size = self.shape[0], self.shape[1]
        images: list[np.ndarray] = []
        others: dict[tuple[int, int, int], list[np.ndarray]] = {s: [] for s in self.also}
        kept: list[tuple[int, Path, str | None, bool]] = []
        problems: list[tuple[int, str]] = []
        problem_files: list[str] = []
        for index, path, problem in chunk:
            image, text, problem = decode_entry(path, problem)
            if problem is not None:
                problems.append((index, problem))
                problem_files.append(display_name(path))
                continue
            images.append(conform(image, size, channels))
            for s, conformed in others.items():
                conformed.append(conform(image, s[1], s[0]))
            kept.append((index, path, text.get(PROVENANCE_KEY), image.shape != (size, size, channels),
                         original_shape(image), tuple(int(v) for v in image.shape)))
        return Batch(_stack(images, self.shape), [k[1] for k in kept],
                     {s: _stack(v, s) for s, v in others.items()}, indices=[k[0] for k in kept],
                     tags=[k[2] for k in kept], conformed=[k[3] for k in kept],
                     shapes=[k[4] for k in kept], problems=problems, problem_files=problem_files,
                     sizes=[k[5] for k in kept])


def decode_entry(path: Path, problem: str | None = None
                 ) -> tuple[np.ndarray | None, dict[str, str], str | None]:
    """One entry of :func:`~forensics.images.iter_image_files`'s walk, decoded.

    ``(image, PNG text, None)`` with the image as :func:`~forensics.images.read_image`
    gives it (``(H, W, C)`` uint8), or ``(None, {}, one-line reason)`` for an entry the
    walk already refused (``problem``) or that does not decode.
    """
    if problem is not None:
        return None, {}, problem
    try:
        image, text = read_image_with_text(path)
    except ImageReadError as error:
        return None, {}, str(error)
    return image, text, None


def decoded(entries: Iterable[tuple[Path, str | None]], problems: Problems
            ) -> Iterator[tuple[Path, np.ndarray]]:
    """The one folder reader: every decodable image of the walk ``entries``, in order,
    unconformed; one line per skipped entry appended to ``problems``.

    ``entries`` are :func:`~forensics.images.iter_image_files`'s ``(path, problem)``
    pairs (filtered or counted as the caller needs). :class:`ImageFiles` reads its
    chunks entry by entry the same way, then conforms.
    """
    for path, problem in entries:
        image, _, problem = decode_entry(path, problem)
        if problem is not None:
            problems.lines.append(problem)
            continue
        yield path, image


def _stack(images: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    if not images:
        return np.zeros((0, *shape), np.float32)
    return to_float(np.stack(images))


def _worker_init(_: int) -> None:
    """OpenCV without threads in the worker (torch's DataLoader sets torch to one thread itself)."""
    opencv()


def _same(batch: Batch) -> Batch:
    return batch


def iter_batches(paths: Iterable[str | Path], shape: tuple[int, int, int],
                 problems: Problems | None = None, batch_size: int = 512,
                 also: Iterable[tuple[int, int, int]] = (), *, workers: int = 0,
                 shard: Shard = Shard()) -> Iterator[Batch]:
    """Yield conformed batches in walk order; record skipped files in ``problems``.

    ``also``: further ``(C, H, W)`` shapes each image is conformed to (``Batch.others``).
    ``workers``: reading processes (0 reads in this process). ``shard``: which entries
    of the walk to read. Each batch covers ``batch_size`` entries of the shard, bad
    ones included, so a batch may hold fewer images, or none.
    """
    from torch.utils.data import DataLoader

    if workers < 0:
        raise ValueError(f"workers must be 0 or more, not {workers}")
    files = ImageFiles(paths, shape, also=also, batch_size=batch_size, shard=shard)
    loader = DataLoader(files, batch_size=None, collate_fn=_same, num_workers=workers,
                        worker_init_fn=_worker_init if workers else None,
                        prefetch_factor=PREFETCH if workers else None)
    for batch in loader:
        if problems is not None:
            problems.lines += [line for _, line in batch.problems]
        yield batch


def read_all(paths: Iterable[str | Path], shape: tuple[int, int, int],
             problems: Problems, *, workers: int = 0) -> tuple[np.ndarray, list[Path]]:
    """Every readable image under ``paths`` as one array (for training sets)."""
    arrays, kept = [], []
    for batch in iter_batches(paths, shape, problems, workers=workers):
        arrays.append(batch.images)
        kept += batch.paths
    if not arrays:
        return np.zeros((0, *shape), np.float32), []
    return np.concatenate(arrays), kept
