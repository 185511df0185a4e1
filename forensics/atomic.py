"""Write files and folders so that a crash never leaves a half-written result."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def writing(path: str | Path, mode: str = "wb", **options: Any) -> Iterator[IO]:
    """Yield a file beside ``path`` that becomes ``path`` (fsync, rename) only if the block succeeds.

    ``mode`` and ``options`` go to :func:`open` (``"w", encoding="utf-8"`` for text), so
    long output can be streamed in without ever leaving a half-written ``path``.
    """
    path = Path(path)
    with _parents(path.parent):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
            with open(fd, mode, **options) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def _parents(folder: Path) -> Iterator[None]:
    """Make ``folder`` (and missing parents); remove the ones made here if the block fails,
    so a failed write (a full disk) leaves no empty folders behind either."""
    missing = [p for p in [folder, *folder.parents] if not os.path.lexists(p)]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for made in missing:  # deepest first
            try:
                os.rmdir(made)
            except OSError:
                break  # not empty (another writer's) or gone: leave the rest
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename."""
    with writing(path) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def jsonable(obj: Any) -> Any:
    """A JSON-able copy: numpy arrays and scalars to Python, NaN and infinities to None."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json(path: str | Path, obj: object) -> None:
    """Strict JSON (NaN and infinities as null: strict parsers reject them), atomically."""
    write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one line by rewriting the file atomically (small logs only)."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes(path, old + line.rstrip("\n").encode("utf-8") + b"\n")


@contextmanager
def staging_dir(final: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``final`` only if the block succeeds.

    An existing ``final`` is refused unless ``force``; then it is replaced only
    after the new content is complete. A lock beside ``final`` keeps a second
    process out; leftovers of a killed earlier attempt are cleared first.
    """
    from forensics.errors import ForensicsError

    final = Path(final)
    with _parents(final.parent), _lock(final.parent / f".{final.name}.lock", final):
        trash = final.with_name(f".{final.name}.old")
        if trash.exists() and not final.exists():  # killed between the two renames below
            os.replace(trash, final)
        for stale in final.parent.glob(f".{final.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists() and not force:
            raise ForensicsError(f"{final} already exists (use --force to overwrite)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        tmp.chmod(0o777 & ~_umask())
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)


@contextmanager
def locked(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so two processes never write it at once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _lock(folder / ".lock", folder):
        yield


@contextmanager
def _lock(lockfile: Path, what: Path) -> Iterator[None]:
    """flock ``lockfile`` (refusing, not waiting, when held); remove it on release.

    After locking, the path must still name the locked file: a holder that was
    releasing (and unlinking) at that moment counts as still holding it.
    """
    import fcntl

    from forensics.errors import ForensicsError

    busy = ForensicsError(f"{what} is in use by another forensics process")
    handle = open(lockfile, "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(handle.fileno()).st_ino != os.stat(lockfile).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise busy from None
        try:
            yield
        finally:
            lockfile.unlink(missing_ok=True)
    finally:
        handle.close()
