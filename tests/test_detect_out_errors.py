"""``detect --out`` on a path it cannot write is one error line; stale temporaries are removed."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.images import png_bytes
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(png_bytes(np.zeros((28, 28, 1), np.uint8)))
    return path


def detect(*args):
    return runner.invoke(app, ["detect", *map(str, args)])


def test_out_under_a_file_is_one_error_line(image, tmp_path):
    assert_one_line_error(detect(image, "--out", image / "sub" / "out.jsonl"), 2, "--out")


def test_out_with_an_over_long_name_is_one_error_line(image, tmp_path):
    assert_one_line_error(detect(image, "--out", tmp_path / ("x" * 300)), 2, "--out")


def test_stale_temporaries_of_out_are_removed(image, tmp_path):
    out = tmp_path / "res.jsonl"
    stale, fresh = tmp_path / ".res.jsonl.abc123.tmp", tmp_path / ".res.jsonl.def456.tmp"
    other = tmp_path / ".other.jsonl.abc123.tmp"
    for path in (stale, fresh, other):
        path.write_text("half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    result = detect(image, "--out", out)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert out.is_file() and not stale.exists()
    assert fresh.exists() and other.exists()  # a live run's, and another output's
