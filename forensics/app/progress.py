"""Rich progress bars that turn the library's callbacks into live displays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _bar(console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console, transient=False)


@contextmanager
def training_progress(console, name: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield a callback for ``generators.training.train`` showing epochs and live losses."""
    with _bar(console) as progress:
        task = progress.add_task(f"{name} epoch", total=None, info="")

        def callback(event: dict[str, Any]) -> None:
            steps, epochs = event.get("steps"), event["epochs"]
            if "done" in event:
                record = event["record"]
                losses = "  ".join(f"{k}={v:.4g}" for k, v in record.items()
                                   if isinstance(v, float) and k != "seconds")
                console.log(f"epoch {record['epoch']}/{epochs}  {losses}  ({record['seconds']:.1f}s)")
                return
            progress.update(task, total=epochs * steps, completed=event["epoch"] * steps + event["step"],
                            description=f"{name} epoch {event['epoch'] + 1}/{epochs}",
                            info="  ".join(f"{k}={v:.3g}" for k, v in event["losses"].items()))

        yield callback


@contextmanager
def count_progress(console, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)`` for a bar over ``total`` items."""
    with _bar(console) as progress:
        task = progress.add_task(description, total=total, info="")
        yield lambda k=1: progress.advance(task, k)
        progress.update(task, completed=total)  # skipped files never advance it


@contextmanager
def stage_progress(console) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``progress(description, done, total)`` for multi-stage jobs (benchmark)."""
    with _bar(console) as progress:
        task = progress.add_task("starting", total=None, info="")

        def update(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        yield update
