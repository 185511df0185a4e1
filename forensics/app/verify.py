"""``forensics verify``: check every file of a folder against what the folder records.

Every folder the toolkit writes holds ``contents.json`` (:mod:`forensics.digest`): the
sha256 of every other file at any depth. ``verify`` lists the folder again (regular files
only: a symbolic link, inside or out, or a FIFO is a problem) and reports every file
missing, extra or altered, ``detector.json``, ``manifest.json``, ``config.json``, metrics
and ``checkpoint.safetensors`` included; then what the folder's kind promises:

- a synthetic data set (``manifest.json``): every listed image present with its hash, no
  listed path escaping the folder, as many rows as the header's ``n``;
- a detector folder (``detector.json``): a well-formed header, every model file with its hash;
- a run folder (``config.json``): the config, weights and checkpoint parse and build the model.

Sub-folders of their own (``RUN/synthetic``, ``RUN/explore``) are verified the same way.
The digest printed covers everything (the record and the sub-folders too); ``--digest
FILE`` keeps a copy outside the folder and ``--expect FILE`` checks against it, which is
what shows a folder whose ``contents.json`` was rewritten along with the files.
A folder written before ``contents.json`` existed verifies with a note: its files are
checked against the hashes its manifest or header lists, and unexpected files are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from forensics import digest as contents
from forensics.errors import ForensicsError
from forensics.manifest import MANIFEST, read_manifest, safe_member

NO_RECORD = (f"no folder digest recorded ({contents.RECORD}; written by earlier versions "
             "without one): files checked against the listed hashes only")
#: the files of a run folder (for folders without a record; with one, the record lists them)
RUN_FILES = re.compile(r"(config\.json|model\.safetensors|checkpoint\.safetensors|metrics\.jsonl"
                       r"|samples\.png|samples/epoch_\d+\.png)")
#: the figures of ``forensics explore`` (for a run's ``explore/`` without a record)
EXPLORE_FILES = re.compile(r"explore/(samples|reconstructions|interpolation|latent_interpolation"
                           r"|latent_space|trajectory|traverse_\w+)\.png")


@dataclass
class Report:
    """What ``verify`` found: the folder's kind, one line per problem, notes, the digest."""

    kind: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str = ""
    #: every file (and sub-folder digest) the digest covers: what ``--digest`` keeps
    files: dict[str, str] = field(default_factory=dict)


def kind_of(folder: Path) -> str:
    if (folder / MANIFEST).is_file():
        # `forensics datasets export` writes a real data set in the same format
        real = read_manifest(folder).header.get("kind") == "real"
        return "exported real data set" if real else "synthetic data set"
    if (folder / "detector.json").is_file():
        return "detector"
    if (folder / "config.json").is_file():
        return "training run"
    if (folder / contents.RECORD).is_file():
        return "folder"
    raise ForensicsError(f"{folder}: no manifest.json, detector.json or config.json to verify against")


def verify(folder: str | Path, expect: str | Path | None = None) -> Report:
    """Check ``folder`` (and its sub-folders of their own); ``expect``: a detached digest file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ForensicsError(f"{folder}: not a folder")
    kind = kind_of(folder)
    listing = contents.scan(folder)
    report = Report(kind)
    problems: dict[str, str] = {}
    check = {"synthetic data set": _synthetic, "exported real data set": _synthetic,
             "detector": _detector, "training run": _run, "folder": lambda *_: {}}[kind]
    try:
        recorded = contents.read_record(folder)
    except ForensicsError as error:
        recorded = None
        problems[contents.RECORD] = str(error)
    problems.update(check(folder, listing, recorded is not None))
    if recorded is None and contents.RECORD not in problems:
        report.notes.append(NO_RECORD)
    elif recorded is not None:
        for name, line in contents.compare(recorded, listing.files, contents.RECORD).items():
            problems.setdefault(name, line)
    for name, line in listing.problems.items():
        problems.setdefault(name, line)
    report.files = dict(listing.files)
    if contents.RECORD in listing.problems or (folder / contents.RECORD).is_file():
        report.files[contents.RECORD] = _record_hash(folder)
    for name, sub in sorted(listing.nested.items()):
        try:
            inner = verify(sub)
        except ForensicsError as error:
            problems.setdefault(name + "/", f"{contents.shown(name)}/: {error}")
            continue
        report.files[name + "/"] = inner.digest
        report.notes += [f"{contents.shown(name)}/ ({inner.kind}): {note}" for note in inner.notes]
        for line in inner.problems:
            problems.setdefault(f"{name}/{line}", f"{contents.shown(name)}/: {line}")
    report.digest = contents.digest(report.files)
    if expect is not None:
        kept = contents.read_detached(expect)
        for name, line in contents.compare(kept, report.files, Path(expect).name).items():
            problems.setdefault(f"expect:{name}", line)
    report.problems = list(problems.values())
    return report


def _record_hash(folder: Path) -> str:
    try:
        return contents._hash(str(folder / contents.RECORD))
    except OSError:
        return "unreadable"


def _listed(folder: Path, listing: contents.Listing, rows: dict[str, str], source: str,
            problems: dict[str, str]) -> dict[str, str]:
    """Each ``{relative path: sha256}`` a manifest or header lists, against the listing."""
    found: dict[str, str] = {}
    for name, expected in rows.items():
        try:
            safe_member(folder, name)
        except ForensicsError as error:
            found[f"#{name}"] = contents.shown(str(error))
            continue
        rel = PurePosixPath(name).as_posix()
        if rel in listing.problems:
            found[rel] = listing.problems[rel]
        elif rel not in listing.files:
            found[rel] = f"missing: {contents.shown(name)}"
        elif listing.files[rel] != expected:
            found[rel] = f"altered: {contents.shown(name)} (sha256 differs from {source})"
        else:
            found[rel] = ""
    return found


def _extras(listing: contents.Listing, expected, source: str) -> dict[str, str]:
    return {name: f"extra: {contents.shown(name)} (not in {source})"
            for name in listing.files if not expected(name)}


def _synthetic(folder: Path, listing: contents.Listing, _: bool) -> dict[str, str]:
    manifest = read_manifest(folder)
    problems: dict[str, str] = {}
    rows: dict[str, str] = {}
    for index, row, _path, problem in manifest.members():
        if problem is not None:
            problems[f"#{index}"] = contents.shown(problem)
            continue
        name = str(row.get("file", ""))
        if name in rows:
            problems[f"#{index}"] = f"{MANIFEST}: {contents.shown(name)} listed twice"
        rows[name] = str(row.get("sha256"))
    listed = _listed(folder, listing, rows, "the manifest", problems)
    problems.update({k: v for k, v in listed.items() if v})
    n = manifest.header.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != len(manifest.rows):
        problems[f"#{MANIFEST}:n"] = (f"{MANIFEST}: its header says n: {n} but it lists "
                                      f"{len(manifest.rows)} image(s) (rows removed or added)")
    exported = manifest.header.get("kind") == "real"  # with its labels.csv beside the manifest
    problems.update(_extras(listing, lambda name: name == MANIFEST or name in listed
                            or exported and name == "labels.csv", "the manifest"))
    return problems


def _detector(folder: Path, listing: contents.Listing, _: bool) -> dict[str, str]:
    from detectors.storage import read_header

    try:
        header = read_header(folder)
    except ForensicsError as error:
        return {"detector.json": contents.shown(str(error))}
    files = header["files"]
    if not files:
        return {"detector.json": "detector.json lists no model files"}
    listed = _listed(folder, listing, {str(k): v for k, v in files.items()}, "detector.json", {})
    problems = {k: v for k, v in listed.items() if v}
    problems.update(_extras(listing, lambda name: name == "detector.json" or name in listed,
                            "detector.json"))
    return problems


def _run(folder: Path, listing: contents.Listing, recorded: bool) -> dict[str, str]:
    from forensics.checkpoint import load_tree, load_weights, read_json

    try:
        config = read_json(folder / "config.json")
    except ForensicsError as error:
        return {"config.json": contents.shown(str(error))}
    problems = {f"#config:{key}": f"config.json has no {key!r}"
                for key in ("generator", "options", "data") if key not in config}
    try:
        load_weights(folder / "model.safetensors")
    except ForensicsError as error:
        problems["model.safetensors"] = str(error)
    if "checkpoint.safetensors" in listing.files:
        try:
            load_tree(folder / "checkpoint.safetensors")
        except ForensicsError as error:
            problems["checkpoint.safetensors"] = str(error)
    if not problems:
        # the config must also build the model the weights fit (imported late: the core
        # does not otherwise depend on the generators)
        from generators.runs import load_run

        try:
            load_run(folder, device="cpu")
        except ForensicsError as error:
            problems["#load"] = f"config.json and the weights do not build the model: {error}"
    if not recorded:  # a run written before contents.json: the files a run folder holds
        problems.update(_extras(listing, lambda name: RUN_FILES.fullmatch(name)
                                or EXPLORE_FILES.fullmatch(name), "a run folder"))
    return problems
