"""Output paths: checked before any work starts, and file-system failures as one line.

Every command that writes checks its output path first (:func:`check_writable`): an
over-long name, a read-only or full file system, a file where a folder should be, or a
folder the user may not write is refused before training or generating starts, not after.
What still fails mid-way (the disk fills up) is an :class:`OSError` that the command line
turns into one line with :func:`os_error_line`; the writers (:mod:`forensics.atomic`)
have already removed their temporaries, so nothing is left half-written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from forensics.errors import ForensicsError

#: a plain-words reason for the errors a full, read-only or foreign file system gives
REASONS = {
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or process limit",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ELOOP: "symbolic link loop",
    errno.EEXIST: "already exists",
    errno.EIO: "input/output error",
}
#: bytes written (then removed) to prove an output folder takes data
PROBE_BYTES = 4096


def os_error_line(error: OSError, what: str = "") -> str:
    """One line for an :class:`OSError`: the reason in plain words and the path it concerns."""
    from forensics.text import capped, printable

    reason = REASONS.get(error.errno or 0) or (error.strerror or type(error).__name__)
    where = error.filename if error.filename is not None else what
    where = printable(capped(os.fsdecode(where), 300)) if where else ""
    return f"cannot write {where}: {reason}" if where else f"file-system error: {reason}"


def _existing_parent(path: Path) -> Path:
    for parent in [path, *path.parents]:
        try:
            if parent.exists() or parent.is_symlink():
                return parent
        except OSError:
            continue
    return Path(".")


def check_writable(path: str | Path, what: str = "--out") -> None:
    """Refuse (one line) an output ``path`` that cannot be written, before any work starts.

    ``path`` is a folder or a file the command will create (or replace). Checks each
    name's length, that the nearest existing ancestor is a folder, and writes, syncs and
    removes :data:`PROBE_BYTES` bytes there: a read-only, full or forbidden file system
    fails now. Nothing is left behind (no folder is created).
    """
    path = Path(path)
    try:
        absolute = Path(os.path.abspath(path))
        base = _existing_parent(absolute)
        name_max = os.pathconf(base if base.is_dir() else base.parent, "PC_NAME_MAX")
        path_max = os.pathconf(base if base.is_dir() else base.parent, "PC_PATH_MAX")
    except (OSError, ValueError) as error:
        raise ForensicsError(f"{what} {path}: {REASONS.get(getattr(error, 'errno', 0) or 0, error)}"
                             ) from None
    long = [part for part in absolute.parts if len(os.fsencode(part)) > name_max]
    if long or len(os.fsencode(str(absolute))) >= path_max:
        raise ForensicsError(f"{what} {_short(path)}: file name too long "
                             f"(at most {name_max} bytes a name, {path_max} a path)")
    if not base.is_dir():
        if base == absolute:
            return  # replacing an existing file: the rename beside it is probed below
        raise ForensicsError(f"{what} {_short(path)}: {_short(base)} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".forensics-probe.", suffix=".tmp", dir=base)
    except OSError as error:
        raise ForensicsError(f"{what} {_short(path)}: cannot write in {_short(base)} "
                             f"({REASONS.get(error.errno or 0, error.strerror)})") from None
    try:
        os.write(fd, bytes(PROBE_BYTES))
        os.fsync(fd)
    except OSError as error:
        raise ForensicsError(f"{what} {_short(path)}: cannot write in {_short(base)} "
                             f"({REASONS.get(error.errno or 0, error.strerror)})") from None
    finally:
        os.close(fd)
        Path(probe).unlink(missing_ok=True)


def replaceable(folder: str | Path, ours: Callable[[str], bool], what: str) -> None:
    """Refuse an existing output ``folder`` holding anything but what the command writes
    (``ours(name)``): the new output replaces the folder whole, all or nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not ours(p.name))
    if foreign:
        raise ForensicsError(f"{what} {_short(folder)} holds files that are not this command's "
                             f"({_short(foreign[0])}, …): give a new or empty folder")


def refuse_inside(path: str | Path, folder: str | Path, what: str) -> None:
    """Refuse an output ``path`` inside ``folder`` (an input it would change or be read as)."""
    try:
        inside = Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError, RuntimeError):
        inside = False
    if inside:
        raise ForensicsError(f"{what} {_short(path)} lies inside {_short(folder)}: "
                             "write it outside the folder")


def _short(path: str | Path) -> str:
    from forensics.text import capped, printable

    return printable(capped(os.fsdecode(path), 120))
