"""Text from strangers' files (PNG tags, file names, manifest fields) as hostile data.

Every such string is length-capped when read (:func:`capped`), parsed as JSON with
bounded nesting (:func:`parse_json`), shown without its control characters
(:func:`printable`) and never as markup (the Rich writers use ``Text`` objects), written
to CSV with formula-starting cells defused (:func:`csv_cell`), and written as strict JSON
(:func:`strict_dumps`: no NaN or infinities, which strict parsers reject).
"""

from __future__ import annotations

import json
import math
from typing import Any

#: The most characters kept of one text value read from a file (a provenance tag is ~200).
TEXT_LIMIT = 4096
#: The most text chunks kept of one file.
MAX_TEXT_KEYS = 16
#: The deepest JSON nesting parsed (a provenance tag is 2 deep); deeper text stays a string.
MAX_DEPTH = 32
#: What ends a capped value.
TRUNCATED = "…(truncated)"
#: The first characters of a CSV cell a spreadsheet reads as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def capped(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text``, or its first ``limit`` characters followed by :data:`TRUNCATED`."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + TRUNCATED


def capped_chunks(chunks: Any) -> dict[str, str]:
    """A file's text chunks with keys and values capped, at most :data:`MAX_TEXT_KEYS` of them."""
    kept: dict[str, str] = {}
    for key, value in chunks.items():
        if len(kept) >= MAX_TEXT_KEYS:
            break
        kept[capped(str(key), 80)] = capped(str(value))
    return kept


def printable(text: str) -> str:
    """One printable line: control characters (C0, C1, DEL, ESC, BEL...) and lone surrogates
    become visible escapes (``\\x1b``, ``\\n``, ``\\udcff``)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable()
                   else char.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for char in text)


def nesting(text: str) -> int:
    """The deepest bracket nesting of JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON; read as null


def parse_json(text: str | None, max_depth: int = MAX_DEPTH) -> Any:
    """``text`` parsed as JSON when it is JSON of at most ``max_depth`` levels, else ``text`` itself.

    NaN and infinities read as None. Never raises on any input (``"[" * 100000`` included).
    """
    if text is None:
        return None
    text = str(text)
    if nesting(text) > max_depth:
        return text
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return text


def finite(obj: Any) -> Any:
    """A copy of a JSON-like value with NaN and infinities as None (tuples as lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def strict_dumps(obj: Any, **options: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (they become null)."""
    return json.dumps(finite(obj), allow_nan=False, **options)


def csv_cell(value: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet: text starting with a formula character gets a
    leading ``'``; control characters are escaped. Numbers stay numbers (-0.5 is no formula)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = printable(str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text
