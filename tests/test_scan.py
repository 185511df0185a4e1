"""Scanning large folders: DataLoader batches, sharded ``detect`` + ``merge``, torchrun, memory.

A spectral-fft detector is trained in a second on 8×8 digits against noisy copies;
the folders scanned are small and nested, with a bad file, provenance tags and an
image of another size among them, so every kind of entry crosses every merge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.batches import iter_batches
from forensics.images import (
    IMAGE_FORMATS,
    iter_image_files,
    png_bytes,
    png_text,
    read_image,
    read_image_with_text,
    to_uint8,
)
from forensics.provenance import PROVENANCE_KEY
from forensics.shard import Shard
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def skipped(result) -> list[str]:
    """The lines about files: skipped ones, conformed ones (warning), out-of-domain ones (note)."""
    return [line for line in result.stderr.splitlines()
            if line.startswith(("skipped:", "warning:", "note:"))]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from forensics.data import load_split

    return to_uint8(load_split("digits", "train").images)


@pytest.fixture(scope="module")
def detector(tmp_path_factory, digits) -> Path:
    from detectors.registry import create

    real = digits[:400].transpose(0, 3, 1, 2) / np.float32(255)
    noise = np.random.default_rng(0).normal(0, 0.15, real.shape).astype(np.float32)
    folder = tmp_path_factory.mktemp("scan") / "fft"
    create("spectral-fft").fit(real, np.clip(real + noise, 0, 1)).save(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digits) -> Path:
    """31 image files in nested folders: 28 digits (some tagged), a 20×30 RGB image, two bad
    files; and a text file the walk passes over."""
    root = tmp_path_factory.mktemp("scan") / "in"
    for i in range(28):
        sub = root / ("a" if i % 3 else "b/deep") / ("c" if i % 5 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        tag = {PROVENANCE_KEY: json.dumps({"generator": "gan", "index": i, "a": [1]})} if i % 4 == 0 else None
        (sub / f"{i:03d}.png").write_bytes(png_bytes(digits[i], tag))
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (root / "a" / "rgb.png").write_bytes(png_bytes(rgb))
    (root / "a" / "bad.png").write_text("not an image\n")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / "deep" / "notes.txt").write_text("passed over: no image suffix\n")
    return root


# -- reading ----------------------------------------------------------------------------------


def test_read_image_with_text_reads_what_png_text_does(tmp_path, digits):
    path = tmp_path / "tagged.png"
    path.write_bytes(png_bytes(digits[0], {PROVENANCE_KEY: "{}", "other": "x"}))
    image, text = read_image_with_text(path)
    assert np.array_equal(image, read_image(path))
    assert text == png_text(path) == {PROVENANCE_KEY: "{}", "other": "x"}


@pytest.mark.parametrize("workers", [0, 2])
def test_benchmark_reads_a_synthetic_set_as_before(trained_run, tmp_path, workers):
    """``read_synthetic`` goes through the DataLoader and gives the array it always gave."""
    from benchmarks.runner import read_synthetic
    from forensics.images import to_float
    from generators.synthesis import generate
    from generators.training import load_run

    folder = tmp_path / "fakes"
    manifest = generate(load_run(trained_run("gan")), 300, folder, seed=0)
    before = to_float(np.stack([read_image(folder / row["file"]) for row in manifest["images"]]))
    after = read_synthetic(folder, workers=workers)
    assert after.dtype == before.dtype and np.array_equal(after, before)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_come_back_in_walk_order(folder, workers):
    """Chunk c goes to worker c % workers; the DataLoader hands them back in chunk order."""
    batches = list(iter_batches([folder], (1, 8, 8), batch_size=4, workers=workers))
    indices = [i for b in batches for i in sorted(b.indices + [p for p, _ in b.problems])]
    assert indices == list(range(31))
    assert [len(b.indices) + len(b.problems) for b in batches] == [4] * 7 + [3]
    walk = [path for path, _ in iter_image_files([folder])]
    assert [p for b in batches for p in b.paths] == [p for p in walk if p.name not in ("bad.png",
                                                                                       "empty.png")]
    assert sum(b.resized for b in batches) == 1
    assert [line for b in batches for _, line in b.problems][0].endswith(
        f"bad.png: not a recognised image ({', '.join(IMAGE_FORMATS)})")


def test_shards_partition_the_walk(folder):
    seen = []
    for index in range(3):
        for batch in iter_batches([folder], (1, 8, 8), batch_size=2, shard=Shard(index, 3), workers=2):
            mine = batch.indices + [i for i, _ in batch.problems]
            assert all(i % 3 == index for i in mine)
            seen += mine
    assert sorted(seen) == list(range(31))


@pytest.mark.parametrize(("spec", "shard"), [("1/2", Shard(0, 2)), ("2/2", Shard(1, 2)),
                                             ("3 / 3", Shard(2, 3))])
def test_shard_spec(spec, shard):
    assert Shard.parse(spec) == shard
    assert str(shard) == spec.replace(" ", "")


@pytest.mark.parametrize("spec", ["0/2", "3/2", "x/y", "1/0", "1", "-1/2", "1/2/3", ""])
def test_bad_shard_spec_is_one_line(folder, detector, tmp_path, spec):
    result = invoke("detect", folder, "--detector", detector, "--shard", spec, "--out", tmp_path / "p")
    assert_one_line_error(result, 2, "--shard")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("args", [[], ["--json"], ["--csv", "--out", "x"]])
def test_shard_needs_out_and_no_format(folder, detector, args):
    result = invoke("detect", folder, "--detector", detector, "--shard", "1/2", *args)
    assert_one_line_error(result, 2, "--shard", "--out")


# -- sharded detect + merge == one detect -----------------------------------------------------


def shard_parts(folder: Path, detector: Path, out: Path, count: int, workers: int = 0) -> list[Path]:
    parts = []
    for index in range(1, count + 1):
        part = out / f"part{index}.jsonl"
        result = invoke("detect", folder, "--detector", detector, "--shard", f"{index}/{count}",
                        "--out", part, "--batch-size", 3, "--workers", workers)
        assert result.exit_code == 0, result.output
        assert f"part {index}/{count} → {part}" in result.stderr
        parts.append(part)
    return parts


@pytest.mark.parametrize(("count", "workers"), [(2, 0), (3, 2)])
@pytest.mark.parametrize("form", ["--json", "--csv"])
def test_merged_shards_equal_one_run(folder, detector, tmp_path, count, workers, form):
    whole = invoke("detect", folder, "--detector", detector, form)
    assert whole.exit_code == 0, whole.output
    parts = shard_parts(folder, detector, tmp_path, count, workers)
    merged = invoke("merge", *reversed(parts), form)
    assert merged.exit_code == 0, merged.output
    assert merged.stdout_bytes == whole.stdout_bytes
    assert skipped(merged) == skipped(whole)
    # two bad files, the note that the RGB image is out of domain, the note of the text file
    assert len(skipped(whole)) == 4
    assert "note: 1 image(s) outside the detector's domain" in whole.stderr
    assert "note: 1 file(s) in the folders not read" in whole.stderr and "notes.txt" in whole.stderr
    assert merged.stderr.splitlines()[-1] == whole.stderr.splitlines()[-1]
    assert whole.stderr.splitlines()[-1].startswith("29 scored, 2 skipped")


def test_out_writes_what_stdout_shows(folder, detector, tmp_path):
    for form in ("--json", "--csv"):
        shown = invoke("detect", folder, "--detector", detector, form, "--workers", 2)
        target = tmp_path / f"out{form}"
        written = invoke("detect", folder, "--detector", detector, form, "--out", target)
        assert written.exit_code == 0 and written.stdout == ""
        assert target.read_bytes() == shown.stdout_bytes
    assert invoke("detect", folder, "--detector", detector, "--out", tmp_path / "plain").exit_code == 0
    assert (tmp_path / "plain").read_bytes() == (tmp_path / "out--json").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_merge_of_only_bad_files_exits_1(detector, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (bad / name).write_text("no")
    whole = invoke("detect", bad, "--detector", detector, "--json")
    assert whole.exit_code == 1
    parts = shard_parts(bad, detector, tmp_path, 2)  # a shard without images is still a part
    merged = invoke("merge", *parts, "--json")
    assert merged.exit_code == 1
    assert merged.stdout_bytes == whole.stdout_bytes  # every input, as a record with its error
    errors = [json.loads(line) for line in whole.stdout.splitlines()]
    assert [Path(e["file"]).name for e in errors] == ["a.png", "b.png", "c.png"]
    assert all(e["error"] and e["verdict"] is None for e in errors)
    assert skipped(merged) == skipped(whole)


def test_merge_refuses_parts_that_do_not_belong_together(folder, detector, tmp_path, digits):
    parts = shard_parts(folder, detector, tmp_path / "three", 3)
    other = shard_parts(folder, detector, tmp_path / "two", 2)
    checks = [
        ((parts[0], parts[1]), "shard(s) 3/3 missing"),
        ((parts[0], parts[1], parts[2], parts[1]), "shard 2/3 given twice"),
        ((parts[0], parts[1], other[1]), "is shard 2/2 but"),
    ]
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    (smaller / "x.png").write_bytes(png_bytes(digits[0]))
    checks.append(((*shard_parts(smaller, detector, tmp_path / "s", 2)[:1], other[1]), "other inputs"))
    for args, fragment in checks:
        assert_one_line_error(invoke("merge", *args, "--json"), 2, fragment)

    lines = parts[1].read_text().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join(lines[:-1]) + "\n")
    assert_one_line_error(invoke("merge", parts[0], damaged, parts[2]), 2, "damaged.jsonl", "damaged part")
    head = json.loads(lines[0])
    head["detectors"][0]["sha256"] = "0" * 64
    damaged.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    assert_one_line_error(invoke("merge", parts[0], damaged, parts[2]), 2, "other detectors")
    damaged.write_text("\n".join([lines[0], *lines[1:3], "{", *lines[3:]]) + "\n")
    assert_one_line_error(invoke("merge", parts[0], damaged, parts[2]), 2, "line 4 is not an entry")
    assert_one_line_error(invoke("merge", folder / "a" / "001.png"), 2, "001.png", "not a detect part")
    assert_one_line_error(invoke("merge", tmp_path / "nowhere"), 2, "nowhere")


# -- torchrun ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_detect_prints_what_one_process_does(folder, detector, tmp_path):
    """Two gloo processes scan a shard each; rank 0 merges their batches as they come."""
    whole = invoke("detect", folder, "--detector", detector, "--json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "forensics", "detect", str(folder), "--detector", str(detector), "--json",
               "--batch-size", "2"]  # many rounds of gathering, not one
    done = subprocess.run(command, capture_output=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == whole.stdout_bytes
    stderr = done.stderr.decode().splitlines()
    assert [line for line in stderr if line.startswith(("skipped:", "warning:", "note:"))] == skipped(whole)
    assert sum(line.startswith("29 scored, 2 skipped") for line in stderr) == 1  # rank 0 only


def test_torchrun_refuses_shard(folder, detector, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = invoke("detect", folder, "--detector", detector, "--shard", "1/2", "--out", tmp_path / "p")
    assert_one_line_error(result, 2, "torchrun")


# -- bounded memory ---------------------------------------------------------------------------


def test_scan_memory_does_not_grow_with_the_folder(detector, digits, tmp_path):
    """Peak traced memory (Python and NumPy) of a streamed scan of 200 vs 2,000 PNGs.

    Tolerance: 2,000 files may peak at most 256 KiB above 200 (measured: about +80 KiB,
    CPython's caches); keeping the entries instead costs about 1 KiB per image, which
    the test checks it would catch. The files reuse 100 names across folders (kept
    interned here) because Python 3.11's pathlib interns every name: new names would
    now and then resize the interpreter's table of interned strings, a 7 MiB spike
    that says nothing about the scan.
    """
    from detectors.base import load_detector
    from detectors.output import JsonLines
    from detectors.scan import scan

    names = [sys.intern(f"{i:02d}.png") for i in range(100)] + [sys.intern(f"d{i:02d}") for i in range(20)]
    folders = {}
    for n in (20, 200, 2000):
        folders[n] = tmp_path / str(n)
        for i in range(n):
            sub = folders[n] / names[100 + i // 100]
            sub.mkdir(parents=True, exist_ok=True)
            (sub / names[i % 100]).write_bytes(png_bytes(digits[i % len(digits)]))
    loaded = {"fft": load_detector(detector)}

    def peak(n: int, keep: bool = False) -> int:
        kept = []
        with open(os.devnull, "w") as null:
            sink = JsonLines(null)
            tracemalloc.start()
            try:
                for batch in scan([folders[n]], loaded, batch_size=100):
                    for entry in batch:
                        sink.add(entry)
                        if keep:
                            kept.append(entry)
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    peak(20)  # imports and first-use caches
    small, large = peak(200), peak(2000)
    assert large - small < 256 * 1024, (small, large)
    assert peak(2000, keep=True) - small > 1024 * 1024  # the test would see a scan that collects
