"""One ``forensics detect`` split over processes or machines, merged back exactly.

Entry ``i`` of the walk over the inputs (bad files count) belongs to shard
``i % N``. A part (``forensics detect --shard I/N --out PART``) is a JSON Lines
file: a header line (format version, inputs, detectors with the SHA-256 of their
``detector.json``, the shard, the size and a digest of the whole walk), then one
line per entry of its shard in index order, records and skipped files alike.
``forensics merge`` checks that the parts belong together and merges them by index
(:func:`merge_by_index`, one open line per part in memory), so it writes what one
unsharded run writes. Under ``torchrun`` the ranks' batches meet in the same
merge, gathered round by round (:func:`gathered`).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from detectors.scan import Entry
from forensics.errors import ForensicsError
from forensics.images import PassedOver, display_name, iter_image_files
from forensics.shard import Shard
from forensics.text import strict_dumps

FORMAT = "forensics-detect-part"
VERSION = 3  # 2: records say in_domain, domain_reason, threshold_rule; the header the options
# 3: records hold each detector's verdict, threshold and probability, disagree, combine, error;
#    skipped entries their file


@dataclass(frozen=True)
class Listing:
    """The walk over the inputs, taken before scanning."""

    entries: int  # entries of the whole walk, every shard's
    images: int  # entries of the shard not already known to be bad (what progress counts)
    sha256: str  # digest of the walk's paths: parts scanned from other folders do not merge
    #: what inside the given folders the walk does not read (no image suffix, folder links)
    passed_over: PassedOver = field(default_factory=PassedOver)


def listing(paths: Iterable[str | Path], shard: Shard = Shard()) -> Listing:
    """Walk ``paths`` once (names only, no file is opened)."""
    digest = hashlib.sha256()
    entries = images = 0
    passed_over = PassedOver()
    for index, (path, problem) in enumerate(iter_image_files(paths, passed_over)):
        digest.update(os.fsencode(path) + b"\0")
        entries += 1
        images += problem is None and index % shard.count == shard.index
    return Listing(entries, images, digest.hexdigest(), passed_over)


def header(paths: Iterable[str | Path], detectors: dict[str, Path], shapes: dict[str, Any],
           shard: Shard, walk: Listing, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first line of a part: what was scanned, with what (and which ``options``: --force,
    the threshold), and which share of it."""
    from forensics.provenance import sha256_file

    return {"format": FORMAT, "version": VERSION, "inputs": [os.fsdecode(p) for p in paths],
            "detectors": [{"name": name, "sha256": sha256_file(Path(folder) / "detector.json"),
                           "input_shape": list(shapes[name])} for name, folder in detectors.items()],
            "shard": str(shard), "entries": walk.entries, "listing_sha256": walk.sha256,
            "passed_over": walk.passed_over.to_dict(),
            "options": options or {}}


class PartWriter:
    """Writes a part: the header, then every entry (``add``) as one line."""

    def __init__(self, stream: TextIO, head: dict[str, Any]) -> None:
        self.stream = stream
        stream.write(strict_dumps(head) + "\n")

    def add(self, entry: Entry) -> None:
        # key order kept: a provenance tag's own order is what CSV output shows
        self.stream.write(strict_dumps(entry.to_dict()) + "\n")

    def close(self) -> None:
        self.stream.flush()


def merge_by_index(streams: Iterable[Iterable[Entry]]) -> Iterator[Entry]:
    """Entries of several index-ordered streams as one index-ordered stream.

    An entry comes out only once every unfinished stream has shown a later one: the
    watermark that lets parts (and torchrun ranks) be merged while they are read.
    """
    return heapq.merge(*streams, key=lambda entry: entry.index)


def merge_parts(parts: list[Path]) -> tuple[dict[str, Any], Iterator[Entry]]:
    """Check that ``parts`` are shards 1..N of one scan; their header and merged entries."""
    if not parts:
        raise ForensicsError("no parts to merge")
    heads = [_read_header(part) for part in parts]
    shards = [_shard_of(part, head) for part, head in zip(parts, heads, strict=True)]
    first, count = heads[0], shards[0].count
    for part, head in zip(parts, heads, strict=True):
        for key, what in (("inputs", "other inputs"), ("detectors", "other detectors"),
                          ("options", "with other options (--force, --threshold)"),
                          ("listing_sha256", "another listing of the files (did they change?)")):
            if head.get(key) != first.get(key):
                raise ForensicsError(f"{display_name(part)}: scanned {what} than {display_name(parts[0])}")
    seen: dict[int, Path] = {}
    for part, shard in zip(parts, shards, strict=True):
        if shard.count != count:
            raise ForensicsError(f"{display_name(part)} is shard {shard} but {display_name(parts[0])} "
                                 f"is shard {shards[0]}")
        if shard.index in seen:
            raise ForensicsError(f"shard {shard} given twice: {display_name(seen[shard.index])} and "
                                 f"{display_name(part)}")
        seen[shard.index] = part
    missing = [str(Shard(i, count)) for i in range(count) if i not in seen]
    if missing:
        raise ForensicsError(f"shard(s) {', '.join(missing)} missing: merge needs all {count} parts")
    for part, shard in zip(parts, shards, strict=True):
        _check_lines(part, shard, first["entries"])
    return first, merge_by_index(_entries(part) for part in parts)


def _read_header(part: Path) -> dict[str, Any]:
    name = display_name(part)
    try:
        with open(part, encoding="utf-8") as handle:
            head = json.loads(handle.readline())
    except FileNotFoundError:
        raise ForensicsError(f"{name}: no such file") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ForensicsError(f"{name}: not a detect part ({type(error).__name__})") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ForensicsError(f"{name}: not a detect part (`forensics detect --shard I/N --out FILE` "
                             "writes them)")
    if head.get("version") != VERSION:
        raise ForensicsError(f"{name}: part format version {head.get('version')!r}; this forensics "
                             f"reads version {VERSION}")
    return head


def _shard_of(part: Path, head: dict[str, Any]) -> Shard:
    try:
        shard, total = Shard.parse(str(head.get("shard"))), head["entries"]
        if not isinstance(total, int) or not isinstance(head["inputs"], list):
            raise TypeError
        if not isinstance(head["detectors"], list) or not head["detectors"] or "listing_sha256" not in head:
            raise TypeError
    except (ForensicsError, KeyError, TypeError):
        raise ForensicsError(f"{display_name(part)}: damaged part header") from None
    return shard


def _check_lines(part: Path, shard: Shard, total: int) -> None:
    """Read a part through once: every line the next entry of its shard, none missing."""
    name = display_name(part)
    expected = range(shard.index, total, shard.count)
    count = 0
    for number, entry in enumerate(_entries(part), start=2):
        if count >= len(expected) or entry.index != expected[count]:
            raise ForensicsError(f"{name}: line {number} is not the next entry of shard {shard} "
                                 "(a damaged part?)")
        count += 1
    if count != len(expected):
        raise ForensicsError(f"{name}: {count} entries, but shard {shard} of {total} has {len(expected)} "
                             "(a damaged part?)")


def _entries(part: Path) -> Iterator[Entry]:
    with open(part, encoding="utf-8") as handle:
        handle.readline()
        for number, line in enumerate(handle, start=2):
            try:
                yield Entry.from_dict(json.loads(line))
            except (ValueError, RecursionError):
                raise ForensicsError(f"{display_name(part)}: line {number} is not an entry "
                                     "(a damaged part?)") from None


def gathered(batches: Iterator[list[Entry]]) -> Iterator[Entry]:
    """Under torchrun: every rank's entries merged by index on rank 0; nothing on the others.

    Every rank calls it with the batches of its own shard and runs it to the end. In
    rounds, each rank hands in its next batch (``all_gather_object``) until all are
    done; rank 0 merges as the rounds come (see :func:`merge_by_index`). A failure on
    one rank stops every rank with its message instead of leaving them waiting.
    """
    import torch.distributed as dist

    from forensics import distributed

    world, me = distributed.size(), distributed.rank()
    pending: list[deque[Entry]] = [deque() for _ in range(world)]
    done = [False] * world

    def take_part_in_a_round() -> None:
        failure: BaseException | None = None
        try:
            mine: tuple[list[dict], bool, str | None] = ([e.to_dict() for e in next(batches)], False, None)
        except StopIteration:
            mine = ([], True, None)
        except Exception as error:  # any rank's failure must reach the others, or they wait forever
            failure = error
            mine = ([], True, (str(error).splitlines() or [type(error).__name__])[0])
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, mine)
        if failure is not None:
            raise failure
        for rank, (items, finished, problem) in enumerate(everyone):
            if problem:
                raise ForensicsError(f"rank {rank}: {problem}")
            if me == 0:
                pending[rank].extend(Entry.from_dict(item) for item in items)
            done[rank] = finished

    def stream(rank: int) -> Iterator[Entry]:
        while True:
            while not pending[rank] and not done[rank]:
                take_part_in_a_round()
            if not pending[rank]:
                return
            yield pending[rank].popleft()

    if me != 0:
        while not all(done):
            take_part_in_a_round()
        return
    yield from merge_by_index(stream(rank) for rank in range(world))
