"""Hostile files through the commands: ``detect``, the folder data set, ``audit``, ``train-detector``.

``test_images.py`` checks :func:`forensics.images.read_image` file by file; here the same
corpus (its builders, plus what only a file system can hold: a folder named ``x.png``, a
symlink loop, a dangling symlink, a FIFO) sits in one folder handed to the commands. Every
bad file is reported as ``skipped: <name>: <reason>`` on one line of stderr and the run
goes on; every odd-but-valid image gets its record; nothing prints a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.hostile import CASES, FILESYSTEM, build_corpus
from forensics.app.cli import app
from forensics.images import png_bytes

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()

def is_bad(expected: object) -> bool:
    return isinstance(expected, str)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The whole corpus in one folder, and its bad half alone in another."""
    root = tmp_path_factory.mktemp("hostile")
    return {"mixed": root / "mixed", "cases": build_corpus(root / "mixed"),
            "bad": root / "bad", "bad_cases": build_corpus(root / "bad", valid=False)}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("skipped: ")]


def check_report(stdout: str, stderr: str, cases: dict[str, tuple[str, object]]) -> None:
    """One JSON record per case (a bad one's with its ``error``), one skipped line per bad case,
    nothing else odd."""
    assert "Traceback" not in stdout + stderr
    every = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    records = [r for r in every if r["error"] is None]
    valid = {shown for shown, expected in cases.values() if not is_bad(expected)}
    assert sorted(r["file"] for r in records) == sorted(valid)
    errors = {r["file"]: r for r in every if r["error"] is not None}
    for shown, fragment in (item for item in cases.values() if is_bad(item[1])):
        assert fragment in errors[shown]["error"] and errors[shown]["verdict"] is None
        assert errors[shown]["error"].isprintable()
    assert len(errors) == sum(is_bad(item[1]) for item in cases.values())
    for record in records:  # judged, or (odd sizes and colours) abstained on with the reason
        if record["in_domain"]:
            assert 0.0 <= record["p_fake"] <= 1.0 and record["verdict"] in ("real", "fake")
        else:
            assert record["p_fake"] is None and record["verdict"] == "out-of-domain"
            assert isinstance(record["domain_reason"], str) and record["domain_reason"].isprintable()
    lines = skipped_lines(stderr)
    bad = {case: item for case, item in cases.items() if is_bad(item[1])}
    assert len(lines) == len(bad), "\n".join(lines)
    for case, (shown, fragment) in bad.items():
        mine = [line for line in lines if line.startswith(f"skipped: {shown}: ")]
        assert len(mine) == 1, (case, shown, lines)
        assert fragment in mine[0], (case, mine[0])
    for line in stderr.splitlines():
        assert line.isprintable(), repr(line)
    assert f"{len(valid)} scored, {len(bad)} skipped" in stderr


# -- detect -----------------------------------------------------------------------------------


def test_detect_scores_the_valid_and_skips_the_bad(corpus):
    result = invoke("detect", corpus["mixed"], "--json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert result.exception is None
    check_report(result.stdout, result.stderr, corpus["cases"])
    # odd sizes and channels are not judged, and that is said; with --force they are conformed
    assert "outside the detector's domain" in result.stderr
    forced = invoke("detect", corpus["mixed"], "--json", "--force")
    assert forced.exit_code == 0 and "warning: " in forced.stderr
    assert all(json.loads(line)["p_fake"] is not None for line in forced.stdout.splitlines()
               if line and json.loads(line)["error"] is None)


def test_detect_on_only_bad_files_exits_1(corpus):
    result = invoke("detect", corpus["bad"], "--json")
    assert result.exit_code == 1, (result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    # only error records: every input is there, none scored
    assert all(json.loads(line)["error"] for line in result.stdout.splitlines())
    check_report(result.stdout, result.stderr, corpus["bad_cases"])


@pytest.mark.slow
def test_detect_in_a_real_process(corpus):
    """The console script itself: real stderr encoding, real exit code, non-UTF-8 names."""
    result = subprocess.run(
        [sys.executable, "-m", "forensics.app.cli", "detect", str(corpus["mixed"]), "--json"],
        capture_output=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stdout, stderr = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")  # valid UTF-8
    assert result.returncode == 0, stderr
    check_report(stdout, stderr, corpus["cases"])


def test_detect_names_the_files_a_folder_walk_passes_over(tmp_path):
    """Files in a given folder without an image suffix are not read, and detect says which
    (their names shown as data, never as terminal control); named, a file is read whatever
    its suffix."""
    (tmp_path / "a.png").write_bytes(png_bytes(np.zeros((28, 28, 1), np.uint8)))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "evil\x1b[2Jname\n.ico").write_bytes(b"\0")
    result = invoke("detect", tmp_path, "--json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert len(result.stdout.splitlines()) == 1  # a.png only
    [note] = [line for line in result.stderr.splitlines() if "in the folders not read" in line]
    assert note.startswith("note: 2 file(s) in the folders") and "notes.txt" in note
    assert "evil" in note and note.isprintable() and "\x1b" not in note
    named = invoke("detect", tmp_path / "notes.txt", "--json")
    assert named.exit_code == 1 and "not a recognised image" in named.stderr
    assert "in the folders not read" not in named.stderr


# -- the folder data set ----------------------------------------------------------------------


def test_folder_dataset_loads_the_valid_and_lists_the_skipped(corpus):
    from forensics.data import load

    dataset = load(f"folder:{corpus['mixed']}")
    cases = corpus["cases"]
    valid = [case for case, (_, expected) in cases.items() if not is_bad(expected)]
    bad = {case: item for case, item in cases.items() if is_bad(item[1])}
    assert len(dataset) == len(valid)
    assert dataset.images.dtype == np.float32 and dataset.shape[0] == 3  # some were RGB
    assert np.isfinite(dataset.images).all()
    assert len(dataset.skipped) == len(bad)
    for case, (shown, fragment) in bad.items():
        [line] = [line for line in dataset.skipped if line.startswith(f"{shown}: ")]
        assert fragment in line and "\n" not in line, (case, line)
    # the text file inside the folder named folder.png: not read, and the note says so
    assert "; 1 file(s) in the folders not read" in dataset.note and "inside.txt" in dataset.note


def test_folder_dataset_of_only_bad_files_is_one_error(corpus):
    from forensics.data import load
    from forensics.errors import ForensicsError

    with pytest.raises(ForensicsError, match="no readable image"):
        load(f"folder:{corpus['bad']}")


# -- audit and train-detector go on past bad files ----------------------------------------------


FEW_BAD = ("zero-byte", "truncated-png", "text-file", "bomb-50000x50000")


@pytest.fixture(scope="module")
def digits_with_bad_files(tmp_path_factory) -> tuple[Path, int, int]:
    """40 digits (8×8) as PNGs with a few bad files and odd entries among them."""
    from forensics.data import load_split

    folder = tmp_path_factory.mktemp("digits_mixed")
    images = load_split("digits", "test").images[:40]
    for i, image in enumerate(images):
        pixels = (image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        (folder / f"img_{i:03d}.png").write_bytes(png_bytes(pixels))
    bad = build_corpus(folder, valid=True, bad=True,
                       skip=tuple(c for c in [*CASES, *FILESYSTEM]
                                  if c not in (*FEW_BAD, "dangling-symlink", "fifo")))
    (folder / "readme.txt").write_text("passed over by the walk: no image suffix\n")
    return folder, len(images), len(bad)


def test_audit_goes_on_past_bad_files(digits_with_bad_files, tmp_path):
    folder, n_good, n_bad = digits_with_bad_files
    out = tmp_path / "audit"
    result = invoke("audit", folder, "--real", "digits", "--out", out)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.output
    report = json.loads((out / "audit.json").read_text())
    assert report["audit"]["n_images"] == n_good
    assert report["audit"]["n_skipped"] == n_bad
    assert f"flag: {n_bad} file(s) skipped as unreadable" in result.stderr
    # what the walk did not read is counted and said, as detect says it
    assert report["audit"]["passed_over"] == {"count": 1, "names": [str(folder / "readme.txt")]}
    assert "note: 1 file(s) in the folders not read" in result.stderr
    assert "files not read (no image suffix, folder links) | 1" in (out / "audit.md").read_text()


def test_train_detector_goes_on_past_bad_files(digits_with_bad_files, tmp_path):
    folder, n_good, n_bad = digits_with_bad_files
    out = tmp_path / "det"
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", folder,
                    "--out", out)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.output
    assert len(skipped_lines(result.stderr)) == n_bad
    header = json.loads((out / "detector.json").read_text())
    [fakes] = header["data"]["fakes"].values()
    assert fakes["n"] == n_good
