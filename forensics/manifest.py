"""The manifest of a synthetic data set (``manifest.json``): its name and the paths it may list.

``forensics generate`` writes it (:mod:`generators.synthesis`); ``verify``, the detector
inputs, the benchmark and the audit read it. Every file name in it is hostile until
:func:`safe_member` has checked that it stays inside its folder.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from forensics.errors import ForensicsError

MANIFEST = "manifest.json"


def safe_member(folder: Path, name: str) -> Path:
    """``folder / name`` if ``name`` is a plain relative path inside ``folder``."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name:
        raise ForensicsError(f"{folder}: path {name!r} escapes its folder; refused")
    return folder / pure
