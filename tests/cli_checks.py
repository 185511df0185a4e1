"""Checks shared by the CLI tests."""

from __future__ import annotations


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    """Exit ``code``, one ``error:`` line on stderr naming ``fragments``, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
