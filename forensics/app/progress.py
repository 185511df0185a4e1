"""Progress displays that turn the library's callbacks into what a user reads.

On a terminal: Rich bars (the training bar counts epochs, with the batch in the epoch
beside it) and one log line per finished epoch. Anywhere else (a CI log, ``nohup``, a
cluster job's output file): plain lines, one every :func:`interval` seconds and one per
finished epoch or stage, each with elapsed time and an ETA, so a log file shows progress
as it happens instead of one bar at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: seconds between plain progress lines when the output is not a terminal
INTERVAL = "FORENSICS_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 15.0


def console():
    """The console progress and messages go to (stderr; log lines without a source path)."""
    from rich.console import Console

    return Console(stderr=True, log_path=False)


def interval() -> float:
    """Seconds between plain progress lines (``$FORENSICS_PROGRESS_SECONDS``, default 15)."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def clock(seconds: float) -> str:
    """``H:MM:SS`` (as Rich's columns show it)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainLines:
    """Progress as plain text lines on stderr, at most one per interval unless forced."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.every = interval()
        self.start = time.monotonic()
        self.last = -float("inf")

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def timing(self, fraction: float | None, since: float | None = None) -> str:
        """``elapsed 0:00:12  ETA 0:01:03``: ``fraction`` of the work done since ``since``
        (a ``time.monotonic()``; default the start), no ETA before any progress."""
        text = f"elapsed {clock(self.elapsed())}"
        if fraction and 0 < fraction <= 1:
            spent = time.monotonic() - (self.start if since is None else since)
            text += f"  ETA {clock(spent * (1 - fraction) / fraction)}"
        return text

    def emit(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            print(text, file=self.stream, flush=True)


def _losses(values: dict[str, Any], digits: int) -> str:
    return "  ".join(f"{k}={v:.{digits}g}" for k, v in values.items()
                     if isinstance(v, float) and k != "seconds")


def _bar(console, count: bool = True):
    """A Rich bar; ``count``: an ``M/N`` column (the training bar says its epoch and batch in
    its description and info instead: a whole count would lag the epoch being trained)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    *([MofNCompleteColumn()] if count else []), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console, transient=False)


@contextmanager
def training_progress(console, name: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield a callback for :func:`forensics.loop.fit` events: epochs, batches, live losses.

    The bar's unit is the epoch (its count, time and ETA agree with the logged epoch
    times); the batch within the epoch is shown beside it.
    """
    if not console.is_terminal:
        lines, first = PlainLines(console.file), []

        def fraction(epochs_done: float, epochs: int) -> float | None:
            """Share of this session's epochs done (a resumed run starts at its epoch)."""
            return (epochs_done - first[0]) / (epochs - first[0]) if epochs > first[0] else None

        def plain(event: dict[str, Any]) -> None:
            epochs = event["epochs"]
            if not first:
                first.append(event["epoch"])
            if "done" in event:
                record = event["record"]
                lines.emit(f"{name} epoch {record['epoch']}/{epochs} done  {_losses(record, 4)}  "
                           f"({record['seconds']:.1f}s)  "
                           f"{lines.timing(fraction(record['epoch'], epochs))}", force=True)
                return
            steps = event.get("steps")
            where = f"batch {event['step']}/{steps}" if steps else f"batch {event['step']}"
            share = fraction(event["epoch"] + event["step"] / steps, epochs) if steps else None
            lines.emit(f"{name} epoch {event['epoch'] + 1}/{epochs}  {where}  "
                       f"{_losses(event['losses'], 3)}  {lines.timing(share)}")

        yield plain
        return
    with _bar(console, count=False) as progress:
        task = progress.add_task(f"{name} epoch", total=None, info="")

        def callback(event: dict[str, Any]) -> None:
            epochs = event["epochs"]
            if "done" in event:
                record = event["record"]
                console.log(f"epoch {record['epoch']}/{epochs}  {_losses(record, 4)}  "
                            f"({record['seconds']:.1f}s)")
                progress.update(task, total=epochs, completed=record["epoch"])
                return
            steps = event.get("steps")
            done = event["epoch"] + (event["step"] / steps if steps else 0)
            progress.update(task, total=epochs, completed=done,
                            description=f"{name} epoch {event['epoch'] + 1}/{epochs}",
                            info=f"batch {event['step']}/{steps or '?'}  {_losses(event['losses'], 3)}")

        yield callback


@contextmanager
def count_progress(console, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)`` for a bar over ``total`` items."""
    if not console.is_terminal:
        lines, done = PlainLines(console.file), [0]

        def advance(k: int = 1) -> None:
            done[0] += k
            lines.emit(f"{description}: {done[0]}/{total}  {lines.timing(done[0] / total)}")

        yield advance
        lines.emit(f"{description}: done ({clock(lines.elapsed())})", force=True)
        return
    with _bar(console) as progress:
        task = progress.add_task(description, total=total, info="")
        yield lambda k=1: progress.advance(task, k)
        progress.update(task, completed=total)  # skipped files never advance it


@contextmanager
def stage_progress(console) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``progress(description, done, total)`` for multi-stage jobs (benchmark, audit)."""
    if not console.is_terminal:
        lines, stage = PlainLines(console.file), {"name": None, "since": 0.0}

        def plain(description: str, done: int, total: int) -> None:
            new = description != stage["name"]
            if new:
                stage.update(name=description, since=time.monotonic())
            if total and total > 1:  # a counted stage: how far, and when it should end
                share = done / total
                lines.emit(f"{description}: {done}/{total}  {lines.timing(share, stage['since'])}",
                           force=new)
            else:  # a stage without a count: that it started, and when
                lines.emit(f"{description}  {lines.timing(None)}", force=new)

        yield plain
        return
    with _bar(console) as progress:
        task = progress.add_task("starting", total=None, info="")

        def update(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        yield update


@contextmanager
def status(console, text: str) -> Iterator[None]:
    """A spinner with ``text`` on a terminal; elsewhere a line when the work starts and one
    with its time when it ends."""
    if console.is_terminal:
        with console.status(text):
            yield
        return
    lines = PlainLines(console.file)
    lines.emit(f"{text} …", force=True)
    yield
    lines.emit(f"{text}: done ({clock(lines.elapsed())})", force=True)
