"""What ``forensics detect`` and ``forensics merge`` write: the records as JSON Lines, CSV or a table.

Each writer is handed the entries of a scan in index order (:class:`detectors.scan.Entry`,
skipped files included) through ``add`` and finished with ``close``. JSON Lines and CSV
write a skipped file as a record whose ``error`` says why (every other field empty), so a
script sees every input; the table leaves them to the ``skipped:`` lines on stderr.
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
import os
from typing import Any, TextIO

from forensics.text import capped, csv_cell, printable, strict_dumps


class JsonLines:
    """One JSON object per record, keys sorted."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def add(self, entry: Any) -> None:
        record = entry.record if entry.record is not None else entry.error_record()
        self.stream.write(strict_dumps(record, sort_keys=True) + "\n")

    def close(self) -> None:
        self.stream.flush()


class CsvRows:
    """A header row, then one row per record (columns per detector; empty where not judged).

    The first columns are those of earlier versions, in their order; then the calibrated
    probability, the combination rule, ``disagree``, each detector's verdict, threshold and
    probability, and ``error`` (a skipped file's reason; its other cells are empty)."""

    def __init__(self, stream: TextIO, names: list[str]) -> None:
        self.stream, self.names = stream, names
        self.writer = csv.writer(stream)
        per = [f"{what}_{n}" for n in names for what in ("verdict", "threshold", "probability")]
        self.writer.writerow(["file", "p_fake", "verdict", "source", *[f"p_fake_{n}" for n in names],
                              "threshold", "threshold_rule", "in_domain", "domain_reason",
                              "provenance_tag", "probability", "combine", "disagree", *per, "error"])

    def add(self, entry: Any) -> None:
        r = entry.record
        if r is None:
            row = [entry.file or "", *[""] * (11 + 4 * len(self.names)), entry.problem]
            self.writer.writerow([csv_cell(cell) for cell in row])
            return
        tag = strict_dumps(r["provenance_tag"]) if r["provenance_tag"] is not None else ""
        per = [_blank(r[field][n]) for n in self.names
               for field in ("verdicts", "thresholds", "probabilities")]
        row = [r["file"], _blank(r["p_fake"]), r["verdict"], r["source"] or "",
               *[_blank(r["scores"][n]) for n in self.names], _blank(r["threshold"]),
               r["threshold_rule"], _flag(r["in_domain"]), r["domain_reason"] or "", tag,
               _blank(r["probability"]), r["combine"], _flag(r["disagree"]), *per, ""]
        self.writer.writerow([csv_cell(_finite(cell)) for cell in row])

    def close(self) -> None:
        self.stream.flush()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _flag(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


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


#: Columns dropped, in this order, while the table does not fit the terminal.
DROP_ORDER = ("tag", "source", "probability")
#: The file column is planned at most this wide (longer names fold onto more lines).
FILE_WIDTH = 20
#: A detector's cell of the several-detector table: ``0.945 fake``, ``3.4e-4 fake``.
DETECTOR_CELL = 11
#: What each column costs beside its text: padding on both sides and the space between columns.
GAP = 3


def _fitting(widths: dict[str, int], width: int) -> set[str]:
    """The columns (of ``widths``: each column's planned width) kept in ``width`` characters,
    dropping :data:`DROP_ORDER`'s in turn; each column also costs :data:`GAP` (padding, rule)."""
    kept = dict(widths)
    for column in (None, *DROP_ORDER):
        kept.pop(column, None)
        if sum(w + GAP for w in kept.values()) <= width:
            break
    return set(kept)


def _short(name: str, width: int) -> str:
    """A detector name in at most ``width`` characters (``…`` marks a cut)."""
    name = printable(name)
    return name if len(name) <= width else name[: width - 1] + "…"


class Table:
    """A Rich table on stdout, printed when closed; the title names the threshold(s) and rule.

    With one detector: its raw score, the calibrated P(fake) when it stores one, the verdict.
    With several: a column per detector (its score and verdict), the combined verdict and
    ``disagree``. Columns are dropped to fit the terminal (see :data:`DROP_ORDER`); the
    detectors' full names and thresholds are listed under the table.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rows: list[dict[str, Any]] = []

    def add(self, entry: Any) -> None:
        if entry.record is not None:
            self.rows.append(entry.record)

    def close(self) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        names, rows, console = self.names, self.rows, Console()
        several = len(names) > 1
        first = rows[0] if rows else None
        # the folder all files share goes to the title: the file column keeps the names
        folder = _shared_folder([r["file"] for r in rows])
        columns: dict[str, tuple[str, list]] = {
            "file": ("file", [_text(r["file"][len(folder):]) for r in rows])}
        if several:
            for i, name in enumerate(names):
                columns[f"detector {i}"] = (name, [_detector_cell(r, name) for r in rows])
        else:
            columns["score"] = ("score", [_text(_score(r["p_fake"], ".4g")) for r in rows])
        if any(r["probability"] is not None for r in rows):
            columns["probability"] = ("P(fake)", [_text(_score(r["probability"])) for r in rows])
        columns["verdict"] = ("verdict", [_verdict(r) for r in rows])
        if several:
            columns["disagree"] = ("disagree", [_text("yes" if r["disagree"] else "", "bold yellow")
                                                for r in rows])
        columns["source"] = ("source", [_text(r["source"] or "—") for r in rows])
        columns["tag"] = ("provenance (untrusted)", [_text(_tag(r)) for r in rows])
        for key in ("source", "tag"):  # a column of dashes only says nothing: its room goes to others
            if rows and all(cell.plain == "—" for cell in columns[key][1]):
                del columns[key]
        natural = {key: max([len(header), *(cell.cell_len for cell in cells)])
                   for key, (header, cells) in columns.items()}
        natural["file"] = min(natural["file"], FILE_WIDTH)
        # the tag's header may wrap: it is planned by its cells
        if "tag" in columns:
            natural["tag"] = min(max([len("provenance"), *(c.cell_len for c in columns["tag"][1])]),
                                 FILE_WIDTH)
        for i in range(len(names) if several else 0):  # a long name is cut to its cells' width
            natural[f"detector {i}"] = DETECTOR_CELL
        kept = _fitting(natural, console.width)
        # what is left goes to the file names first, then to the detectors' names in the header
        spare = console.width - sum(natural[key] + GAP for key in kept)
        wider = max(0, min(spare, max((cell.cell_len for cell in columns["file"][1]), default=0)
                           - natural["file"]))
        natural["file"] += wider
        spare -= wider
        for i, name in enumerate(names if several else []):
            header = _short(name, DETECTOR_CELL + max(spare, 0) // len(names))
            columns[f"detector {i}"] = (header, columns[f"detector {i}"][1])
        if first is None:
            title = "forensics detect"
        elif several:
            title = f"forensics detect: {len(names)} detectors, combined by {first['combine']}"
        else:
            title = f"forensics detect: {_rule(first['threshold'], first['threshold_rule'])}"
        if folder:
            title += f"; files in {folder}"
        table = RichTable(title=_text(title), box=box.SIMPLE_HEAD, pad_edge=False)
        for key, (header, _) in columns.items():
            if key not in kept:
                continue
            wraps = key in ("file", "tag")
            # planned widths are kept, so that Rich never squeezes the cells it was planned for
            table.add_column(header, overflow="fold" if wraps else "ellipsis", no_wrap=not wraps,
                             width=max(natural[key], len(header)) if key.startswith("detector") else None,
                             max_width=natural[key] if wraps else None,
                             justify="right" if key in ("score", "probability") else "left")
        for i in range(len(rows)):
            table.add_row(*[cells[i] for key, (_, cells) in columns.items() if key in kept])
        console.print(table)
        if first is not None:  # the thresholds under the table, whole
            if several:
                for name in names:
                    rule = _rule(first["thresholds"][name], first["threshold_rule"])
                    console.print(_text(f"{name}: {rule}"), highlight=False, soft_wrap=True)
            if "probability" in kept:
                console.print(_text("P(fake): the score calibrated on validation images, plain and processed "
                                    "(Platt, equal priors); "
                                    "verdicts compare the raw score with the threshold"),
                              highlight=False, soft_wrap=True)
            if any(r["verdict"] == "real" for r in rows):
                console.print(_text(_real_means(first["threshold_rule"])), highlight=False,
                              soft_wrap=True)
        for r in rows:  # below the table, whole: a column would squeeze the file names
            if r["domain_reason"]:
                line = Text.assemble(("out of domain ", "yellow"),
                                     printable(f"{r['file']}: {r['domain_reason']}"))
                console.print(line, highlight=False, soft_wrap=True)


def _shared_folder(files: list[str]) -> str:
    """The folder (ending in ``/``) every one of ``files`` lies in, or ""."""
    folders = [name[: name.rfind("/") + 1] for name in files]
    if not files or not all(folders):
        return ""
    shared = os.path.commonprefix(folders)
    return shared[: shared.rfind("/") + 1]


def _real_means(rule: str) -> str:
    """What a ``real`` verdict says: not shown to be fake, at thresholds chosen for what (several
    detectors' rules are joined by ``+``; a false-positive-rate rule is ``fpr`` or ``fpr:RATE…``)."""
    if all(part.startswith("fpr") for part in rule.split("+")):
        return ("real: not shown to be fake. Thresholds of the fpr rule are set so that real images "
                "are rarely called fake, and fakes may score below them: sort by score to triage")
    return "real: not shown to be fake at these thresholds: sort by score to triage"


def _rule(threshold: float, rule: str) -> str:
    """``fake when score ≥ T (RULE rule)``; a threshold above 1 calls nothing fake, and says so."""
    if threshold > 1.0:
        return f"never fake: threshold {threshold:.4g} lies above every score ({rule} rule)"
    return f"fake when score ≥ {_score(threshold, '.4g')} ({rule} rule)"


def _verdict(record: dict[str, Any]):
    verdict = _text(record["verdict"], VERDICT_STYLES.get(record["verdict"], ""))
    if record["verdict"] != "out-of-domain" and not record["in_domain"]:
        verdict.append(" (forced)", style="yellow")
    return verdict


#: the most characters of a provenance tag the table shows (a stranger's tag may hold 4,096 of
#: them, a screenful per file: ``--json`` and ``--csv`` keep what was read)
TAG_SHOWN = 60


def _tag(record: dict[str, Any]) -> str:
    tag = record["provenance_tag"]
    if isinstance(tag, dict):
        tag = f"{tag.get('generator', '?')} {tag.get('variant', '')}".strip()
    return capped(printable(str(tag)), TAG_SHOWN) if tag else "—"


def _detector_cell(record: dict[str, Any], name: str):
    """One detector's score and verdict in one cell (``0.012 fake``), its verdict's colour."""
    verdict = record["verdicts"][name]
    if verdict is None:
        return _text("—")
    return _text(f"{_small(record['scores'][name])} {verdict}", VERDICT_STYLES.get(verdict, ""))


def _small(score: Any) -> str:
    """A score in at most 6 characters: 0.012, or 3.4e-4 below 0.001 (never 0.000 beside a
    threshold of 0.0002, which would read as a contradiction)."""
    if isinstance(score, float) and 0.0 < score < 0.001:
        mantissa, exponent = format(score, ".1e").split("e")
        return f"{mantissa}e{int(exponent)}"
    return _score(score, ".3f")
