"""``forensics verify``: check a folder against the hashes it records about itself.

- a synthetic data set (``manifest.json``): every listed file present and
  unaltered, no unlisted image, no listed path escaping the folder;
- a detector folder (``detector.json``): every model file present and unaltered;
- a run folder (``config.json`` + ``model.safetensors``): the weights parse as
  safetensors and the config as a run config.
"""

from __future__ import annotations

from pathlib import Path

from forensics.checkpoint import read_json
from forensics.errors import ForensicsError
from forensics.images import IMAGE_SUFFIXES
from forensics.manifest import MANIFEST, read_manifest, safe_member
from forensics.provenance import sha256_file


def verify(folder: str | Path) -> tuple[str, list[str]]:
    """Return the kind of folder and one line per problem (empty = verified)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ForensicsError(f"{folder}: not a folder")
    if (folder / MANIFEST).is_file():
        problems = _synthetic(folder)
        real = read_manifest(folder).header.get("kind") == "real"  # `forensics datasets export`
        return "exported real data set" if real else "synthetic data set", problems
    if (folder / "detector.json").is_file():
        return "detector", _detector(folder)
    if (folder / "config.json").is_file():
        return "training run", _run(folder)
    raise ForensicsError(f"{folder}: no manifest.json, detector.json or config.json to verify against")


def _synthetic(folder: Path) -> list[str]:
    problems: list[str] = []
    listed: set[Path] = set()
    for _, row, path, problem in read_manifest(folder).members():
        if problem is not None:
            problems.append(problem)
            continue
        name = str(row.get("file", ""))
        listed.add(path)  # the whole relative path: sub/a.png does not list a top-level a.png
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif sha256_file(path) != row.get("sha256"):
            problems.append(f"altered: {name} (sha256 differs from the manifest)")
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path not in listed:
            problems.append(f"extra: {path.name} (not in the manifest)")
    return problems


def _detector(folder: Path) -> list[str]:
    header = read_json(folder / "detector.json")
    files = header.get("files")
    if not isinstance(files, dict) or not files:
        return ["detector.json lists no model files"]
    problems = []
    for name, digest in files.items():
        try:
            path = safe_member(folder, str(name))
        except ForensicsError as error:
            problems.append(str(error))
            continue
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif sha256_file(path) != digest:
            problems.append(f"altered: {name} (sha256 differs from detector.json)")
    return problems


def _run(folder: Path) -> list[str]:
    from forensics.checkpoint import load_weights

    config = read_json(folder / "config.json")
    problems = [f"config.json has no {key!r}" for key in ("generator", "options", "data")
                if key not in config]
    try:
        load_weights(folder / "model.safetensors")
    except ForensicsError as error:
        problems.append(str(error))
    if not problems:
        # the config must also build the model the weights fit (imported late: the core
        # does not otherwise depend on the generators)
        from generators.runs import load_run

        try:
            load_run(folder, device="cpu")
        except ForensicsError as error:
            problems.append(str(error))
    return problems
