"""What ``forensics detect`` and ``forensics merge`` write: the records as JSON Lines, CSV or a table.

Each writer is handed the entries of a scan in index order (:class:`detectors.scan.Entry`,
skipped files included, which it ignores) through ``add`` and finished with ``close``.
JSON Lines and CSV write every record as it comes, so memory does not grow with the
number of images; the table collects its rows (it is meant for a screenful).

Every text of a record came from a stranger's file (names, provenance tags, reasons): JSON
is strict (no NaN: null), CSV cells that a spreadsheet would run as formulas get a leading
``'``, and the table shows text as text (``Text`` objects, never markup) with control
characters escaped.
"""

from __future__ import annotations

import csv
import math
from typing import Any, TextIO

from forensics.text import csv_cell, printable, strict_dumps


class JsonLines:
    """One JSON object per record, keys sorted."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def add(self, entry: Any) -> None:
        if entry.record is not None:
            self.stream.write(strict_dumps(entry.record, sort_keys=True) + "\n")

    def close(self) -> None:
        self.stream.flush()


class CsvRows:
    """A header row, then one row per record (a column per detector; empty where not judged)."""

    def __init__(self, stream: TextIO, names: list[str]) -> None:
        self.stream, self.names = stream, names
        self.writer = csv.writer(stream)
        self.writer.writerow(["file", "p_fake", "verdict", "source", *[f"p_fake_{n}" for n in names],
                              "threshold", "threshold_rule", "in_domain", "domain_reason",
                              "provenance_tag"])

    def add(self, entry: Any) -> None:
        r = entry.record
        if r is None:
            return
        tag = strict_dumps(r["provenance_tag"]) if r["provenance_tag"] is not None else ""
        row = [r["file"], _blank(r["p_fake"]), r["verdict"], r["source"] or "",
               *[_blank(r["scores"][n]) for n in self.names], r["threshold"],
               r["threshold_rule"], str(r["in_domain"]).lower(), r["domain_reason"] or "", tag]
        self.writer.writerow([csv_cell(_finite(cell)) for cell in row])

    def close(self) -> None:
        self.stream.flush()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _finite(value: Any) -> Any:
    """NaN and infinities as empty cells (as a missing score is)."""
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def _score(value: Any, form: str = ".3f") -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, form)
    return printable(str(value))  # a damaged part file's record


def _text(value: Any, style: str = ""):
    """A table cell: the value as plain text (never markup), control characters escaped."""
    from rich.text import Text

    return Text(printable(str(value)), style=style)


VERDICT_STYLES = {"fake": "red", "real": "green", "out-of-domain": "yellow"}


class Table:
    """A Rich table on stdout, printed when closed; the caption names the threshold and its rule."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rows: list[dict[str, Any]] = []

    def add(self, entry: Any) -> None:
        if entry.record is not None:
            self.rows.append(entry.record)

    def close(self) -> None:
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        names = self.names
        rules = dict.fromkeys(f"{_score(r['threshold'], '.4g')} ({r['threshold_rule']})" for r in self.rows)
        table = RichTable(title="forensics detect",
                          caption=_text(f"threshold {', '.join(rules)}") if rules else None)
        table.add_column("file", overflow="fold")
        if len(names) > 1:
            for name in names:
                table.add_column(f"P(fake) {name}", justify="right")
        table.add_column("P(fake)" if len(names) == 1 else "combined", justify="right")
        table.add_column("verdict", no_wrap=True)
        table.add_column("source")
        table.add_column("provenance tag (not trusted)", overflow="fold")
        for r in self.rows:
            tag = r["provenance_tag"]
            if isinstance(tag, dict):
                tag = f"{tag.get('generator', '?')} {tag.get('variant', '')}".strip()
            cells = [_score(r["scores"][n]) for n in names] if len(names) > 1 else []
            verdict = _text(r["verdict"], VERDICT_STYLES.get(r["verdict"], ""))
            if r["verdict"] != "out-of-domain" and not r["in_domain"]:
                verdict.append(" (forced)", style="yellow")
            table.add_row(_text(r["file"]), *map(_text, cells), _text(_score(r["p_fake"])), verdict,
                          _text(r["source"] or "—"), _text(tag if tag else "—"))
        console = Console()
        console.print(table)
        for r in self.rows:  # below the table, whole: a column would squeeze the file names
            if r["domain_reason"]:
                line = Text.assemble(("out of domain ", "yellow"),
                                     printable(f"{r['file']}: {r['domain_reason']}"))
                console.print(line, highlight=False, soft_wrap=True)
