"""Content-addressed cache of benchmark artefacts (runs, synthetic sets, detectors).

An artefact lives in ``CACHE/<kind>/<name>-<hash>/`` where the hash covers its
config and the hashes of its inputs, so a suite sharing a part with another
reuses it. A folder appears under its final name only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from forensics.provenance import config_hash


def default_root() -> Path:
    return Path(os.environ.get("FORENSICS_CACHE", Path.home() / ".cache" / "forensics" / "bench"))


def slot(root: Path, kind: str, name: str, config: dict) -> tuple[Path, str]:
    """The folder for an artefact of ``kind`` named ``name`` with this config, and its key."""
    key = config_hash(config)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    return root / kind / f"{safe}-{key}", key
