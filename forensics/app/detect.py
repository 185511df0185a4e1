"""``forensics detect`` and ``forensics merge`` behind the commands: detectors, writers, the entry loop.

The Typer commands in :mod:`forensics.app.cli` parse options and hand off here: loading
the detectors, choosing the writer (JSON Lines, CSV, table, part file), handing every
entry of a scan to the writers, the warnings and the exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import typer

from forensics import atomic
from forensics.errors import ForensicsError
from forensics.text import printable


def load_detectors(folders: list[Path], default: Path, device: str = "auto") -> dict[str, tuple]:
    """``{name: (detector, folder)}``, named after their folders (``default`` for the shipped one);
    torch detectors on ``device`` (auto: CUDA when present)."""
    from detectors.base import load_detector

    named: dict[str, tuple] = {}
    for folder in folders:
        name = "default" if folder == default else folder.resolve().name  # "." too
        named[name if name not in named else str(folder)] = (load_detector(folder, device=device), folder)
    return named


def check_inputs(paths: list[Path]) -> None:
    """A path that does not exist is a usage error (one line), not a skipped file."""
    import os

    missing = [path for path in paths if not os.path.lexists(path)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ForensicsError(f"no such file or folder: {printable(str(missing[0]))}{more}")


def explanations(detectors: dict, folder: Path, out: Path):
    from detectors.explain import Explanations
    from detectors.storage import read_header

    recorded = read_header(folder).get("data", {})
    real = recorded.get("real", {}).get("name", "mnist5k") if isinstance(recorded, dict) else "mnist5k"
    return Explanations(detectors, out, real=real)


def records_writer(stack: ExitStack, out: Path | None, as_json: bool, as_csv: bool, names: list[str]):
    """The writer of ``detect`` and ``merge``: JSON Lines, CSV or a table, to stdout or ``out``."""
    from detectors.output import CsvRows, JsonLines, Table

    if as_json and as_csv:
        raise ForensicsError("--json and --csv exclude each other: choose one")
    stream = sys.stdout if out is None else open_out(stack, out)
    if as_json:
        return JsonLines(stream)
    if as_csv:
        return CsvRows(stream, names)
    return JsonLines(stream) if out is not None else Table(names)


#: A temporary of ``--out`` (``.NAME.*.tmp``, atomic.writing's naming) untouched this long is left
#: by a killed run (a live one writes every batch) and is removed.
STALE_SECONDS = 3600


def remove_stale_temporaries(out: Path) -> None:
    """Remove temporaries of ``out`` that a killed ``detect --out`` left behind."""
    import time

    try:
        for stale in out.parent.glob(f".{out.name}.*.tmp"):
            if stale.is_file() and time.time() - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # cleaning is a courtesy; writing says what is wrong


def open_out(stack: ExitStack, out: Path):
    """``out`` opened for text that replaces it only when the command succeeds."""
    remove_stale_temporaries(out)
    try:  # newline="": CSV rows end in \r\n, as on stdout
        return stack.enter_context(atomic.writing(out, "w", encoding="utf-8", newline=""))
    except OSError as error:  # named by --out, not by the temporary beside it that failed
        from forensics.paths import os_error_line

        line = (os_error_line(OSError(error.errno, error.strerror), str(out)) if error.errno
                else os_error_line(error, str(out)))
        raise ForensicsError(f"--out: {line}") from None


#: How many conformed files the warning names (the count says how many more there were).
NAMED_CONFORMED = 5


def write_entries(entries, writers: list, advance: Callable) -> tuple:
    """Hand every entry to the writers, reporting skipped files.

    Returns (scored, skipped, resized, out of domain, the first :data:`NAMED_CONFORMED`
    conformed files as ``(name, [H, W, C] or None)``). "scored" counts every record,
    out-of-domain ones included (they were read and assessed).
    """
    scored = skipped = resized = outside = 0
    conformed: list[tuple[str, list | None]] = []
    for entry in entries:
        if entry.record is None:
            skipped += 1
            typer.secho(f"skipped: {printable(entry.problem)}", err=True, fg="yellow")
        else:
            scored += 1
            resized += entry.resized
            if entry.resized and len(conformed) < NAMED_CONFORMED:
                conformed.append((entry.record["file"], entry.size))
            outside += entry.record.get("in_domain") is False
            advance(1)
        for writer in writers:
            writer.add(entry)
    return scored, skipped, resized, outside, conformed


def warn_resized(counts: tuple, shape) -> None:
    """One line naming the conformed files (the first few) and their own sizes."""
    resized = counts[2]
    if not resized:
        return
    named = [f"{name} ({'×'.join(map(str, size[:2])) + f'×{size[2]}' if size else 'size unknown'})"
             for name, size in (counts[4] if len(counts) > 4 else [])]
    more = resized - len(named)
    listed = ", ".join(named) + (f" and {more} more" if named and more > 0 else "")
    typer.secho(printable(f"warning: {resized} image(s) were not {shape[1]}x{shape[2]} with "
                          f"{shape[0]} channel(s); conformed (shorter side resized, centre-cropped, "
                          "channels converted) as in training" + (f": {listed}" if listed else "")),
                err=True, fg="yellow")


def note_out_of_domain(counts: tuple[int, ...], forced: bool = False) -> None:
    """A line on stderr when images fell outside the detectors' domain (not an error)."""
    if len(counts) > 3 and counts[3]:
        what = ("scored anyway (--force)" if forced
                else "not judged (verdict out-of-domain; --force scores them)")
        typer.secho(f"note: {counts[3]} image(s) outside the detector's domain: {what}", err=True,
                    fg="yellow")


def note_passed_over(passed_over) -> None:
    """A line on stderr naming (the first few of) what the folder walk did not read
    (:class:`forensics.images.PassedOver`): an analyst must not take a folder for checked
    whole when some of it was not."""
    line = passed_over.line()
    if line:
        typer.secho(f"note: {line}", err=True, fg="yellow")


def finish(counts: tuple, empty_fails: bool = True) -> None:
    """The closing count on stderr; exit 1 when no image could be read (``empty_fails``)."""
    if not counts[0] and not counts[1]:
        from forensics.images import IMAGE_SUFFIXES

        typer.secho(f"no images found (files ending in {', '.join(IMAGE_SUFFIXES)})" if empty_fails
                    else "no images in this shard", err=True, fg="yellow")
    outside = counts[3] if len(counts) > 3 else 0
    typer.echo(f"{counts[0]} scored, {counts[1]} skipped"
               + (f" ({outside} of the scored outside the detector's domain)" if outside else ""),
               err=True)
    if not counts[0] and empty_fails:
        raise typer.Exit(1)
