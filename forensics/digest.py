"""The content digest of a folder: every file at any depth, hashed, recorded when it is saved.

Every folder the toolkit writes (a synthetic set, a detector, a run, ``explore``'s figures)
gets :data:`RECORD` (``contents.json``) last: ``{"format", "files": {relative path: sha256},
"digest"}`` over every other file of the folder, at any depth. :func:`scan` lists a folder
the same way at check time, so ``forensics verify`` reports any file missing, added (at any
depth) or altered, the hash lists themselves (``detector.json``, ``manifest.json``)
included. Only regular files are content: a symbolic link (to a file or a folder, inside
the folder or out) or a FIFO is a problem, never followed. A sub-folder that is a folder of
its own (it holds ``manifest.json``, ``detector.json`` or ``contents.json``: ``generate``
writes ``RUN/synthetic`` by default) is listed apart and checked on its own.

An attacker who edits a file can rewrite ``contents.json`` too: the digest :func:`digest`
prints (and a detached copy the user keeps outside the folder, :func:`write_detached`)
is what shows that.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError
from forensics.provenance import sha256_stream

RECORD = "contents.json"
FORMAT = "forensics-contents/1"
DETACHED_FORMAT = "forensics-digest/1"
#: files whose presence marks a sub-folder as a folder of its own (checked on its own)
MARKERS = ("manifest.json", "detector.json", RECORD)
#: the most files and the deepest nesting one check lists (a hostile folder is not walked forever)
MAX_FILES = 1_000_000
MAX_DEPTH = 16
#: the most characters of a name shown in a problem line
NAME_LIMIT = 200


def shown(name: str) -> str:
    """A path for a problem line: capped (a 5,000-character name stays one short line)."""
    from forensics.text import capped

    return capped(name, NAME_LIMIT)


@dataclass
class Listing:
    """A folder as :func:`scan` found it."""

    files: dict[str, str] = field(default_factory=dict)  # relative posix path → sha256
    nested: dict[str, Path] = field(default_factory=dict)  # relative path → sub-folder of its own
    problems: dict[str, str] = field(default_factory=dict)  # relative path → one line


def _hash(path: str) -> str:
    """sha256 of a regular file opened without following a link (O_NOFOLLOW)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise IsADirectoryError(0, "not a regular file")
        return sha256_stream(handle)


def _link(folder: Path, path: str) -> str:
    """Where a symbolic link points, and whether that leaves ``folder``."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        inside = Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, RuntimeError, ValueError):
        inside = False
    where = "inside the folder" if inside else "leaves the folder"
    return f"symbolic link → {shown(os.fsdecode(target))} ({where}; links are not followed)"


def scan(folder: str | Path, *, skip: tuple[str, ...] = (RECORD, ".lock")) -> Listing:
    """Hash every regular file under ``folder`` (top-level names in ``skip`` left out: the
    record itself and the lock of a writer at work, :func:`forensics.atomic.locked`).

    Never follows a link and never raises on what the folder holds: links, FIFOs, devices,
    unreadable files and folders, over-long names become ``problems``.
    """
    folder = Path(folder)
    listing = Listing()
    errors: list[OSError] = []
    top = os.fspath(folder)
    for root, dirs, files in os.walk(top, onerror=errors.append, followlinks=False):
        rel_root = os.path.relpath(root, top)
        depth = 0 if rel_root == "." else rel_root.count(os.sep) + 1
        dirs.sort()
        for name in list(dirs):
            path = os.path.join(root, name)
            rel = _rel(rel_root, name)
            if os.path.islink(path):
                listing.problems[rel + "/"] = f"{shown(rel)}/: {_link(folder, path)}"
                dirs.remove(name)
            elif depth + 1 > MAX_DEPTH:
                listing.problems[rel + "/"] = f"{shown(rel)}/: nested deeper than {MAX_DEPTH} levels"
                dirs.remove(name)
            elif any(os.path.lexists(os.path.join(path, marker)) for marker in MARKERS):
                listing.nested[rel] = Path(path)
                dirs.remove(name)
        for name in sorted(files):
            rel = _rel(rel_root, name)
            if depth == 0 and name in skip:
                continue
            if len(listing.files) + len(listing.problems) >= MAX_FILES:
                listing.problems["…"] = f"more than {MAX_FILES:,} files: the rest were not checked"
                return listing
            path = os.path.join(root, name)
            listing_problem = _entry(folder, path, rel, listing)
            if listing_problem:
                listing.problems[rel] = f"{shown(rel)}: {listing_problem}"
    for error in errors:
        where = os.fsdecode(error.filename) if error.filename else top
        rel = os.path.relpath(where, top).replace(os.sep, "/")
        listing.problems[rel + "/"] = f"{shown(rel)}/: cannot list ({error.strerror or error})"
    return listing


def _rel(rel_root: str, name: str) -> str:
    return name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/")


def _entry(folder: Path, path: str, rel: str, listing: Listing) -> str | None:
    """Hash one entry into ``listing``; the problem with it, if any."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"cannot read ({error.strerror or error})"
    if stat.S_ISLNK(info.st_mode):
        return _link(folder, path)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, socket or device); refused"
    try:
        listing.files[rel] = _hash(path)
    except OSError as error:
        return f"cannot read ({error.strerror or error})"
    return None


def digest(files: dict[str, str]) -> str:
    """One sha256 over ``{path: sha256}`` (sorted ``"<sha256>  <path>"`` lines, as sha256sum writes)."""
    lines = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest()


def record(folder: str | Path, *, strict: bool = True) -> str:
    """Write ``folder/contents.json`` over every other file of the folder; return its digest.

    Called last by every writer of a folder (inside its staging folder, before the rename).
    Sub-folders of their own are left to their own record. ``strict``: refuse a folder
    holding links or special files (our writers make none); else leave them out.
    """
    from forensics.atomic import write_json

    listing = scan(folder)
    if listing.problems and strict:  # our own writers make none of these
        raise ForensicsError(f"{folder}: cannot record its contents: "
                             f"{next(iter(listing.problems.values()))}")
    value = digest(listing.files)
    write_json(Path(folder) / RECORD, {"format": FORMAT, "files": listing.files, "digest": value})
    return value


def read_record(folder: Path) -> dict[str, str] | None:
    """The files ``contents.json`` lists (``None`` when the folder has none).

    A record that is not ours, or whose digest does not match its own list (edited by
    hand), raises :class:`ForensicsError`.
    """
    from forensics.checkpoint import read_json

    path = folder / RECORD
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        raise ForensicsError(f"{RECORD}: a symbolic link; refused")
    value = read_json(path)
    files = _files(value, path, FORMAT)
    if value.get("digest") != digest(files):
        raise ForensicsError(f"{RECORD}: its digest does not match its own file list (edited)")
    return files


def _files(value: dict[str, Any], path: Path, fmt: str) -> dict[str, str]:
    files = value.get("files")
    if value.get("format") != fmt or not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ForensicsError(f"{path}: not a {fmt} file")
    return files


def compare(expected: dict[str, str], found: dict[str, str], against: str) -> dict[str, str]:
    """``{path: problem}`` for each file missing from, added to or altered in ``found``."""
    problems = {}
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            problems[name] = f"missing: {shown(name)}"
        elif name not in expected:
            problems[name] = f"extra: {shown(name)} (not in {against})"
        elif expected[name] != found[name]:
            problems[name] = f"altered: {shown(name)} (sha256 differs from {against})"
    return problems


def write_detached(path: str | Path, kind: str, files: dict[str, str]) -> str:
    """Write a detached digest (kept by the user, outside the folder); return the digest."""
    from forensics.atomic import write_json

    value = digest(files)
    write_json(path, {"format": DETACHED_FORMAT, "kind": kind, "digest": value, "files": files})
    return value


def read_detached(path: str | Path) -> dict[str, str]:
    """The ``{path: sha256}`` of a detached digest file (its digest checked)."""
    from forensics.checkpoint import read_json

    path = Path(path)
    value = read_json(path)
    files = _files(value, path, DETACHED_FORMAT)
    if value.get("digest") != digest(files):
        raise ForensicsError(f"{path}: its digest does not match its own file list (edited)")
    return files
