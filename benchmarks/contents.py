"""What "the same result" means for a run folder and a synthetic set (timestamps aside).

The crash-safety tests and the reliability benchmark both compare a killed-and-restarted
run, or synthetic set, with an uninterrupted one through these.
"""

from __future__ import annotations

import json
from pathlib import Path


def run_contents(run: Path) -> dict[str, object]:
    """Every file of a run folder; config without ``created``, metrics without seconds."""
    contents: dict[str, object] = {}
    for path in sorted(run.rglob("*")):
        if path.is_dir():
            continue
        name = str(path.relative_to(run))
        if name == "contents.json":
            continue  # sha256 of the others (timestamps included): checked by verify
        if name == "config.json":
            config = json.loads(path.read_text())
            config.pop("created")
            contents[name] = config
        elif name == "metrics.jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            contents[name] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
        else:
            contents[name] = path.read_bytes()
    return contents


def synthetic_contents(folder: Path) -> dict[str, object]:
    """Every file of a synthetic set; the manifest without its ``created`` timestamp."""
    contents: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if name == "contents.json":
            continue  # sha256 of the others (the manifest's timestamp included)
        if name == "manifest.json":
            manifest = json.loads(path.read_text())
            manifest["header"].pop("created")
            contents[name] = manifest
        else:
            contents[name] = path.read_bytes()
    return contents
