"""The manifest of a synthetic data set (``manifest.json``): its one reader and writer.

``forensics generate`` writes it (:func:`write_manifest`, from :mod:`generators.synthesis`);
``verify``, the detector inputs, the benchmark and the audit read it (:func:`read_manifest`).
It holds a ``header`` (generator, variant, run hash, image shape, …) and one row per image
(``file``, ``sha256``, codes). Every file name in it is hostile until :func:`safe_member`
has checked that it stays inside its folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from forensics.errors import ForensicsError

MANIFEST = "manifest.json"


class ManifestError(ForensicsError):
    """A manifest that cannot be used: unreadable, not JSON, or not shaped as one.

    A row naming a path outside its folder is not a ``ManifestError`` but the plain
    :class:`ForensicsError` of :func:`safe_member`: callers that fall back to reading
    the folder whole on an unusable manifest still refuse a hostile one.
    """


def safe_member(folder: Path, name: str) -> Path:
    """``folder / name`` if ``name`` is a plain relative path inside ``folder``."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name:
        raise ForensicsError(f"{folder}: path {name!r} escapes its folder; refused")
    return folder / pure


@dataclass(frozen=True)
class Manifest:
    """A read manifest: its folder, ``header`` (``{}`` when absent) and raw image ``rows``."""

    folder: Path
    header: dict[str, Any]
    rows: list[Any]

    @property
    def generator(self) -> str | None:
        """The generator the header names, if it names one."""
        name = self.header.get("generator")
        return name if isinstance(name, str) else None

    def members(self) -> Iterator[tuple[int, dict[str, Any] | None, Path | None, str | None]]:
        """``(index, row, path, problem)`` per row: ``path`` checked by :func:`safe_member`,
        or ``problem`` (one line) for a row that is not an object or names an unsafe path."""
        for index, row in enumerate(self.rows):
            if not isinstance(row, dict):
                yield index, None, None, f"{MANIFEST}: image entry {index} is not an object ({row!r:.40})"
                continue
            try:
                yield index, row, safe_member(self.folder, str(row.get("file", ""))), None
            except ForensicsError as error:
                yield index, row, None, str(error)

    def files(self) -> list[Path]:
        """Every listed file, in manifest order; raise on the first row that is not usable."""
        paths = []
        for index, row, path, problem in self.members():
            if row is None or "file" not in row:
                raise ManifestError(f"{self.folder / MANIFEST}: image entry {index} names no file")
            if problem is not None:
                raise ForensicsError(problem)
            paths.append(path)
        return paths

    def by_file(self) -> dict[str, dict[str, Any]]:
        """Rows keyed by their ``file`` as written (relative, posix)."""
        if not all(isinstance(row, dict) and "file" in row for row in self.rows):
            raise ManifestError(f"{self.folder / MANIFEST}: an image entry names no file")
        return {str(row["file"]): row for row in self.rows}


def read_manifest(folder: str | Path) -> Manifest:
    """Read ``folder/manifest.json``; :class:`ManifestError` when it is missing or malformed."""
    from forensics.checkpoint import read_json

    folder = Path(folder)
    try:
        value = read_json(folder / MANIFEST)
    except ForensicsError as error:
        raise ManifestError(str(error)) from None
    rows = value.get("images")
    if not isinstance(rows, list):
        raise ManifestError(f"{folder / MANIFEST}: no image list")
    header = value.get("header")
    return Manifest(folder, header if isinstance(header, dict) else {}, rows)


def write_manifest(folder: str | Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> dict:
    """Write ``folder/manifest.json`` atomically; return what was written."""
    from forensics.atomic import write_json

    manifest = {"header": header, "images": rows}
    write_json(Path(folder) / MANIFEST, manifest)
    return manifest
