"""``forensics verify``: synthetic sets, detector folders and run folders against their hashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.app.verify import verify
from forensics.images import png_bytes
from forensics.manifest import safe_member

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
N = 30


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(trained_run, tmp_path_factory):
    """A fresh ``generate`` output and a detector trained on it, both through the CLI."""
    root = tmp_path_factory.mktemp("verify")
    fakes = root / "fakes"
    result = invoke("generate", trained_run("gan"), "--n", N, "--out", fakes, "--device", "cpu")
    assert result.exit_code == 0, result.output
    detector = root / "detector"
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", fakes,
                    "--out", detector)
    assert result.exit_code == 0, result.output
    return {"fakes": fakes, "detector": detector, "run": trained_run("gan")}


@pytest.fixture
def fakes(made, tmp_path) -> Path:
    """A private copy of the synthetic set, free to damage."""
    return Path(shutil.copytree(made["fakes"], tmp_path / "fakes"))


def problem_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines()
            if line.strip() and not line.startswith("note: ")]


def assert_not_verified(result, count: int) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "verified" not in result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert f"does NOT match its manifest ({count} problem(s))" in errors[0]


# -- synthetic data sets ------------------------------------------------------------------------


def test_fresh_synthetic_set_verifies(made):
    result = invoke("verify", made["fakes"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("synthetic data set verified")
    report = verify(made["fakes"])
    assert (report.kind, report.problems, report.notes) == ("synthetic data set", [], [])


def test_altered_missing_and_extra_files_are_listed(fakes):
    altered = fakes / "img_000003.png"
    data = bytearray(altered.read_bytes())
    data[-20] ^= 0xFF  # one flipped byte
    altered.write_bytes(bytes(data))
    (fakes / "img_000007.png").unlink()
    (fakes / "stranger.png").write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    result = invoke("verify", fakes)
    assert_not_verified(result, 3)
    lines = problem_lines(result)
    assert len(lines) == 3
    assert any(line.startswith("altered: img_000003.png") for line in lines)
    assert any(line.startswith("missing: img_000007.png") for line in lines)
    assert any(line.startswith("extra: stranger.png") for line in lines)


def test_replaced_image_with_valid_png_is_altered(fakes):
    """A different but valid image under the same name is caught by its hash."""
    (fakes / "img_000000.png").write_bytes(png_bytes(np.full((8, 8, 1), 9, np.uint8)))
    result = invoke("verify", fakes)
    assert_not_verified(result, 1)
    assert problem_lines(result) == [
        "altered: img_000000.png (sha256 differs from the manifest)"]


def test_upper_case_suffix_counts_as_extra(fakes):
    (fakes / "copy.PNG").write_bytes((fakes / "img_000000.png").read_bytes())
    result = invoke("verify", fakes)
    assert_not_verified(result, 1)
    assert problem_lines(result)[0].startswith("extra: copy.PNG")


def test_extra_files_at_any_depth_are_reported(fakes):
    """Every file counts, not only top-level images: ``detect DIR`` reads sub-folders too,
    and a payload beside the images is what an attacker adds."""
    (fakes / "notes.txt").write_text("checked by hand\n")
    (fakes / "payload.pkl").write_bytes(b"\x80\x04K\x01.")
    (fakes / "nested" / "deeper").mkdir(parents=True)
    (fakes / "nested" / "deeper" / "x.png").write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    result = invoke("verify", fakes)
    assert_not_verified(result, 3)
    assert sorted(line.split(" ")[1] for line in problem_lines(result)) == [
        "nested/deeper/x.png", "notes.txt", "payload.pkl"]


def rewrite_manifest(folder: Path, change) -> None:
    """Edit the manifest as a careful hand would: its header's ``n`` kept consistent and the
    folder record (``contents.json``, which would show the edit) removed, so that what is
    checked is the manifest's own promise (as for a folder written before the record)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if isinstance(manifest.get("images"), list):
        manifest["header"]["n"] = len(manifest["images"])
    path.write_text(json.dumps(manifest))
    (folder / "contents.json").unlink(missing_ok=True)


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "a/../../outside.png",
                                  "..\\outside.png", ""])
def test_manifest_path_escaping_the_folder_is_refused(fakes, name):
    outside = fakes.parent / "outside.png"
    outside.write_bytes((fakes / "img_000000.png").read_bytes())
    first = json.loads((fakes / "manifest.json").read_text())["images"][0]

    def point_outside(manifest):
        manifest["images"].append({**first, "file": name})

    rewrite_manifest(fakes, point_outside)
    result = invoke("verify", fakes)
    assert_not_verified(result, 1)
    [line] = problem_lines(result)
    assert "escapes its folder; refused" in line and repr(name) in line


def test_safe_member():
    folder = Path("/data/set")
    assert safe_member(folder, "img.png") == folder / "img.png"
    assert safe_member(folder, "sub/img.png") == folder / "sub" / "img.png"
    for name in ("../x.png", "/x.png", "sub/../../x.png", "a\\b.png", "x\x00.png", ""):
        with pytest.raises(Exception, match="escapes its folder"):
            safe_member(folder, name)


def test_listed_file_in_subfolder_does_not_hide_a_top_level_extra(fakes):
    """Listing ``sub/img_000001.png`` must not make a top-level file of that name listed."""
    (fakes / "sub").mkdir()
    shutil.move(fakes / "img_000001.png", fakes / "sub" / "img_000001.png")
    rewrite_manifest(fakes, lambda m: m["images"][1].update(file="sub/img_000001.png"))
    assert invoke("verify", fakes).exit_code == 0
    shutil.copy(fakes / "sub" / "img_000001.png", fakes / "img_000001.png")
    result = invoke("verify", fakes)
    assert_not_verified(result, 1)
    assert problem_lines(result)[0].startswith("extra: img_000001.png")


@pytest.mark.parametrize("images", [["img_000000.png"], [None], [42], "not a list", None])
def test_malformed_manifest_is_an_error_not_a_traceback(fakes, images):
    rewrite_manifest(fakes, lambda m: m.update(images=images))
    result = invoke("verify", fakes)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "verified" not in result.stdout


def test_manifest_not_json(fakes):
    (fakes / "manifest.json").write_text("{not json")
    result = invoke("verify", fakes)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "manifest.json" in line


# -- detector folders ---------------------------------------------------------------------------


def test_detector_folder_verifies_then_tampering_is_found(made, tmp_path):
    result = invoke("verify", made["detector"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("detector verified")
    detector = Path(shutil.copytree(made["detector"], tmp_path / "detector"))
    files = json.loads((detector / "detector.json").read_text())["files"]
    assert files  # the header lists its model files with their hashes
    model = detector / sorted(files)[0]
    model.write_bytes(model.read_bytes()[:-1] + bytes([model.read_bytes()[-1] ^ 1]))
    result = invoke("verify", detector)
    assert result.exit_code == 1
    assert problem_lines(result) == [
        f"altered: {model.name} (sha256 differs from detector.json)"]
    model.unlink()
    result = invoke("verify", detector)
    assert result.exit_code == 1
    assert problem_lines(result) == [f"missing: {model.name}"]


def test_detector_header_listing_a_file_outside_is_refused(made, tmp_path):
    detector = Path(shutil.copytree(made["detector"], tmp_path / "detector"))
    header = json.loads((detector / "detector.json").read_text())
    header["files"]["../../etc/passwd"] = "0" * 64
    (detector / "detector.json").write_text(json.dumps(header))
    result = invoke("verify", detector)
    assert result.exit_code == 1
    assert any("escapes its folder" in line for line in problem_lines(result))


# -- run folders --------------------------------------------------------------------------------


def test_run_folder_verifies(made):
    result = invoke("verify", made["run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("training run verified")


def test_damaged_run_weights_are_reported(made, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(made["run"] / name, run / name)
    (run / "model.safetensors").write_bytes(b"not safetensors")
    result = invoke("verify", run)
    assert result.exit_code == 1
    assert any("model.safetensors" in line for line in problem_lines(result))
    (run / "model.safetensors").unlink()
    result = invoke("verify", run)
    assert result.exit_code == 1
    assert any("model.safetensors" in line for line in problem_lines(result))


# -- nothing to verify --------------------------------------------------------------------------


def test_folder_with_nothing_to_verify(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    result = invoke("verify", tmp_path)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no manifest.json, detector.json or config.json" in line


def test_missing_folder(tmp_path):
    result = invoke("verify", tmp_path / "absent")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "not a folder" in line
