"""Which share of a walk over the inputs one process scans: ``--shard I/N``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from forensics.errors import ForensicsError


@dataclass(frozen=True)
class Shard:
    """Entry ``i`` of a walk belongs to shard ``index`` of ``count`` when ``i % count == index``.

    ``index`` counts from 0; the command line writes shards from 1 (``--shard 1/2``).
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"I/N"`` with 1 ≤ I ≤ N → ``Shard(I - 1, N)``; a one-line error otherwise."""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not found:
            raise ForensicsError(f"--shard {spec!r}: expected I/N, e.g. 1/4 for the first of 4 shards")
        index, count = int(found.group(1)), int(found.group(2))
        if count < 1:
            raise ForensicsError(f"--shard {spec!r}: N must be at least 1")
        if not 1 <= index <= count:
            raise ForensicsError(f"--shard {spec!r}: I must be between 1 and {count}")
        return cls(index - 1, count)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
