"""``forensics verify`` as strong as the README says: every missing, extra or altered file.

Real folders written by the commands (``generate``, ``train-detector``, ``train``), then
edited as an attacker would: the hash lists themselves (``detector.json``'s threshold, the
run's metrics and checkpoint), links leaving the folder, files at any depth, manifests cut
short or made hostile; the detached digest (``--digest`` / ``--expect``) shows a folder
whose records were rewritten with its files. Folders written before ``contents.json``
existed still verify, with a note.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics import digest
from forensics.app.cli import app
from forensics.images import png_bytes

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
N = 20


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(trained_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("every_file")
    fakes = root / "fakes"
    assert invoke("generate", trained_run("gan"), "--n", N, "--out", fakes,
                  "--device", "cpu").exit_code == 0
    detector = root / "detector"
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", fakes,
                    "--out", detector)
    assert result.exit_code == 0, result.output
    return {"fakes": fakes, "detector": detector, "run": trained_run("gan")}


@pytest.fixture(params=["fakes", "detector", "run"])
def folder(request, made, tmp_path) -> Path:
    """A private copy of each kind of folder, free to damage."""
    return Path(shutil.copytree(made[request.param], tmp_path / request.param, symlinks=True))


def problems(result) -> list[str]:
    return [line for line in result.stdout.splitlines()
            if line.strip() and not line.startswith(("note: ", "digest: "))]


def assert_fails(result, *fragments: str) -> list[str]:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "verified" not in result.stdout
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("error: ") and "does NOT match" in error
    lines = problems(result)
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


def test_every_kind_verifies_and_records_every_file(folder):
    result = invoke("verify", folder)
    assert result.exit_code == 0, result.output
    assert "note: " not in result.stdout  # written with a record: no fallback
    recorded = json.loads((folder / "contents.json").read_text())["files"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and p.name != "contents.json"}
    assert set(recorded) == on_disk  # every file at any depth, the hash lists included
    shown = [line for line in result.stdout.splitlines() if line.startswith("digest: sha256:")]
    assert len(shown) == 1 and len(shown[0].split(":")[2].split()[0]) == 64


def test_detector_threshold_and_metrics_edits_fail(made, tmp_path):
    for change in ({"threshold": 0.0}, {"metrics": {"auc": 1.0}}):
        detector = Path(shutil.copytree(made["detector"], tmp_path / f"d{len(change)}{list(change)[0]}"))
        header = json.loads((detector / "detector.json").read_text())
        (detector / "detector.json").write_text(json.dumps({**header, **change}))
        assert_fails(invoke("verify", detector), "altered: detector.json")


@pytest.mark.parametrize("name", ["checkpoint.safetensors", "metrics.jsonl", "config.json",
                                  "samples.png"])
def test_any_run_file_altered_fails(made, tmp_path, name):
    run = Path(shutil.copytree(made["run"], tmp_path / "run"))
    path = run / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit: still parses, but not the file that was trained
    path.write_bytes(bytes(data))
    lines = assert_fails(invoke("verify", run), name)  # altered, or (config.json) no longer JSON
    assert all(name in line for line in lines)


def test_extra_files_at_any_depth_and_links_fail(folder, tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    (folder / "nested").mkdir()
    (folder / "nested" / "x.png").write_bytes(outside.read_bytes())
    (folder / "payload.pkl").write_bytes(b"\x80\x04K\x01.")
    os.symlink(outside, folder / "link.png")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "linked")
    os.mkfifo(folder / "pipe.png")
    lines = assert_fails(invoke("verify", folder), "extra: nested/x.png", "extra: payload.pkl",
                         "link.png: symbolic link", "linked/: symbolic link", "pipe.png: not a regular")
    assert sum("leaves the folder" in line for line in lines) == 2


def test_a_listed_file_replaced_by_a_link_outside_fails(made, tmp_path):
    fakes = Path(shutil.copytree(made["fakes"], tmp_path / "fakes"))
    first = fakes / "img_000000.png"
    outside = tmp_path / "outside.png"
    shutil.move(first, outside)  # the very same bytes, now outside the folder
    os.symlink("../outside.png", first)
    lines = assert_fails(invoke("verify", fakes), "img_000000.png: symbolic link")
    assert "leaves the folder" in lines[0]


def test_rows_removed_with_their_images_fail_on_the_header_count(made, tmp_path):
    fakes = Path(shutil.copytree(made["fakes"], tmp_path / "fakes"))
    manifest = json.loads((fakes / "manifest.json").read_text())
    for row in manifest["images"][5:]:
        (fakes / row["file"]).unlink()
    manifest["images"] = manifest["images"][:5]
    (fakes / "manifest.json").write_text(json.dumps(manifest))
    (fakes / "contents.json").unlink()  # the record would show it too: the header alone must
    assert_fails(invoke("verify", fakes), f"header says n: {N} but it lists 5 image(s)")


@pytest.mark.parametrize("hostile", ["long", "deep", "deep-in-row"])
def test_hostile_manifests_give_one_line(made, tmp_path, hostile):
    fakes = Path(shutil.copytree(made["fakes"], tmp_path / "fakes"))
    path = fakes / "manifest.json"
    manifest = json.loads(path.read_text())
    if hostile == "long":
        manifest["images"].append({"file": "a" * 5000 + ".png", "sha256": "0" * 64})
        path.write_text(json.dumps(manifest))
    elif hostile == "deep":
        path.write_text('{"images": ' + "[" * 100_000)
    else:
        manifest["images"][0]["file"] = json.loads("[" * 500 + "]" * 500)
        path.write_text(json.dumps(manifest))
    result = invoke("verify", fakes)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert isinstance(result.exception, SystemExit)
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("error: ") and len(error) < 400
    assert all(len(line) < 400 for line in result.stdout.splitlines())


def test_detached_digest_shows_a_rewritten_record(folder, tmp_path):
    kept = tmp_path / "kept.digest.json"
    result = invoke("verify", folder, "--digest", kept)
    assert result.exit_code == 0, result.output
    assert invoke("verify", folder, "--expect", kept).exit_code == 0
    # the attacker edits the hash list itself AND rewrites contents.json: the folder alone
    # verifies ...
    name = {"fakes": "manifest.json", "detector": "detector.json", "run": "config.json"}[folder.name]
    value = json.loads((folder / name).read_text())
    value["threshold" if name == "detector.json" else "note"] = 0.0
    (folder / name).write_text(json.dumps(value))
    digest.record(folder, strict=False)
    assert invoke("verify", folder).exit_code == 0
    # ... the digest kept outside does not
    assert_fails(invoke("verify", folder, "--expect", kept), f"altered: {name}")


def test_digest_file_inside_the_folder_is_refused(made):
    result = invoke("verify", made["fakes"], "--digest", made["fakes"] / "mine.json")
    assert result.exit_code == 2 and "inside" in result.stderr and "Traceback" not in result.output
    assert not (made["fakes"] / "mine.json").exists()


def test_folder_written_before_the_record_verifies_with_a_note(folder):
    (folder / "contents.json").unlink()
    result = invoke("verify", folder)
    assert result.exit_code == 0, result.output
    assert "note: no folder digest recorded" in result.stdout
    assert "files checked against the listed hashes only" in result.stdout


def test_nested_synthetic_set_in_a_run_is_verified_too(made, tmp_path):
    run = Path(shutil.copytree(made["run"], tmp_path / "run"))
    shutil.copytree(made["fakes"], run / "synthetic")
    assert invoke("verify", run).exit_code == 0
    (run / "synthetic" / "img_000003.png").write_bytes(b"tampered")
    assert_fails(invoke("verify", run), "synthetic/: altered: img_000003.png")
