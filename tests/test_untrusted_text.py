"""Text from strangers' files through ``detect``: capped, bounded-depth JSON, never markup or
terminal codes, CSV cells defused, strict JSON. Real PNG files, the shipped detector."""

from __future__ import annotations

import csv
import io
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.provenance import PROVENANCE_KEY
from forensics.text import TEXT_LIMIT, TRUNCATED, csv_cell, nesting, parse_json, printable, strict_dumps

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()

HOSTILE_TAGS = {
    "deep-list": "[" * 100_000,
    "deep-object": '{"a":' * 5000 + "1" + "}" * 5000,
    "markup-close": "[/]",
    "markup-style": "[bold red]ALERT[/bold red]",
    "markup-link": "[link=https://evil.example]click[/link]",
    "terminal": "\x1b]0;title\x07\x1b[2J\x9b31m\x7f",
    "formula": "=HYPERLINK(\"http://evil\",\"x\")",
    "nan": '{"generator": "gan", "score": NaN, "other": -Infinity}',
    "huge-int": "1" * 4000,
}


def strict(line: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def write_png(path: Path, tag: str | None, *, zip_text: bool = False) -> None:
    pixels = (np.random.default_rng(len(path.name)).random((28, 28)) * 255).astype(np.uint8)
    info = PngInfo()
    if tag is not None:
        info.add_text(PROVENANCE_KEY, tag, zip=zip_text)
    Image.fromarray(pixels, "L").save(path, pnginfo=info)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("untrusted")
    for name, tag in HOSTILE_TAGS.items():
        write_png(folder / f"{name}.png", tag)
    write_png(folder / "[bold red]name[link=x].png", None)
    write_png(folder / "=cmd|' calc'!A0.png", None)
    write_png(folder / "esc\x1b[2Jname\x07.png", None)
    write_png(folder / "plain.png", '{"generator": "gan", "variant": "minimax"}')
    return folder


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_parse_json_is_bounded():
    assert parse_json("[" * 100_000) == "[" * 100_000  # kept as the raw string, no RecursionError
    assert parse_json('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_json('"[[[[" ') == "[[[["  # brackets inside strings do not count
    assert nesting('{"x": "[[[[[[", "y": [[1]]}') == 3
    assert parse_json('{"s": NaN}') == {"s": None}
    assert parse_json("not json") == "not json"


def test_csv_cell_defuses_formulas_but_keeps_numbers():
    for text in ("=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text)[0] in ("'", "\\"), text  # tab / CR are escaped to \t / \r first
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell(-0.5) == -0.5 and csv_cell(3) == 3 and csv_cell(None) is None
    assert csv_cell("gan") == "gan"


def test_printable_escapes_every_control_character():
    text = "a\x1b[2J\x07\x00\x9b\x7f\nb"
    shown = printable(text)
    assert shown.isprintable() and "\\x1b" in shown and "\\x9b" in shown and "\\x7f" in shown


def test_strict_dumps_writes_null_for_nan():
    assert strict_dumps({"a": math.nan, "b": [math.inf]}) == '{"a": null, "b": [null]}'


def test_detect_json_survives_every_hostile_tag(hostile):
    result = invoke("detect", hostile, "--json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.output
    records = {r["file"]: r for r in map(strict, result.stdout.splitlines())}
    assert len(records) == len(list(hostile.iterdir()))  # one bad tag never aborts the run
    by_case = {Path(name).stem: r for name, r in records.items()}
    deep = by_case["deep-list"]["provenance_tag"]
    assert isinstance(deep, str) and len(deep) == TEXT_LIMIT + len(TRUNCATED) and deep.endswith(TRUNCATED)
    assert isinstance(by_case["deep-object"]["provenance_tag"], str)
    assert by_case["nan"]["provenance_tag"] == {"generator": "gan", "score": None, "other": None}
    assert by_case["plain"]["provenance_tag"] == {"generator": "gan", "variant": "minimax"}
    assert str(by_case["huge-int"]["provenance_tag"]) == "1" * 4000  # read as the JSON number it is
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout


def test_detect_table_shows_markup_and_control_codes_as_text(hostile):
    result = invoke("detect", hostile)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.output
    out = result.stdout
    for char in ("\x1b", "\x07", "\x9b", "\x7f"):
        assert char not in out, repr(char)
    # markup shown literally, not interpreted (a folded column may split it, so glue the cells)
    flat = "".join(line.strip("│┃ ") for line in out.splitlines())
    assert "[/]" in out
    assert "[bold red]" in out and "[link=" in flat.replace(" ", "") or "[link=" in out
    assert "\\x1b" in flat
    # each file's row folds into a few lines at most (a 4,096-character tag folded into 200)
    rows = len(list(hostile.iterdir()))
    assert len(out.splitlines()) < 8 * rows + 30, len(out.splitlines())


def test_the_table_cuts_a_long_tag():
    """A 4,096-character tag would fill a screen per file: the table shows its first
    TAG_SHOWN characters (escaped first, so an escape is never cut in half); --json keeps it
    (the tests above: the folded table, the whole tag in JSON)."""
    from detectors.output import TAG_SHOWN, _tag

    assert _tag({"provenance_tag": "1" * 4000}) == "1" * TAG_SHOWN + TRUNCATED
    assert _tag({"provenance_tag": "\x1b" * 100}).startswith("\\x1b" * (TAG_SHOWN // 4))


def test_detect_csv_defuses_formula_cells(hostile):
    result = invoke("detect", hostile, "--csv")
    assert result.exit_code == 0, (result.stderr, result.exception)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    header, body = rows[0], rows[1:]
    assert len(body) == len(list(hostile.iterdir()))
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
            assert cell.isprintable(), row
    tags = {row[header.index("file")].rsplit("/", 1)[-1]: row[header.index("provenance_tag")]
            for row in body}
    assert tags["formula.png"].startswith('"=HYPERLINK')  # a JSON string: a quote first, no formula
    assert all("NaN" not in t and "Infinity" not in t for t in tags.values())
    for row in body:  # numbers stay numbers
        float(row[header.index("threshold")])


def test_detect_csv_defuses_a_formula_file_name(hostile, monkeypatch):
    monkeypatch.chdir(hostile)
    result = invoke("detect", "=cmd|' calc'!A0.png", "--csv")
    assert result.exit_code == 0, (result.stderr, result.exception)
    [_, row] = list(csv.reader(io.StringIO(result.stdout)))
    assert row[0] == "'=cmd|' calc'!A0.png"


def test_big_ztxt_tags_stay_bounded(tmp_path):
    """200 small PNGs with 900 KB zTXt tags: output and Python memory bounded by the cap."""
    folder = tmp_path / "big"
    folder.mkdir()
    big = '{"generator": "' + "A" * 900_000 + '"}'
    for i in range(200):
        write_png(folder / f"img_{i:03d}.png", big, zip_text=True)
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total < 2_000_000  # small files, big tags
    tracemalloc.start()
    try:
        result = invoke("detect", folder, "--json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, (result.stderr, result.exception)
    lines = result.stdout.splitlines()
    assert len(lines) == 200
    assert len(result.stdout) < 200 * (TEXT_LIMIT + 1000)  # was 240 MB for such a folder
    assert peak < 64 * 2**20, peak  # uncapped, the 200 tags alone are 180 MB of str
