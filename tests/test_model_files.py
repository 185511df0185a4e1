"""Model files from strangers, through the command line: refused in one line, never executed.

A run folder (``config.json`` + ``model.safetensors`` + ``checkpoint.safetensors``) and a
detector folder (``detector.json`` + ``model.safetensors``) are damaged in every way a
download, another version or an attacker could: a pickle payload in place of the weights,
a truncated file, flipped bytes, an incompatible ``config.json`` / ``detector.json``, a
missing piece. Each command exits 2 with one ``error:`` line and no traceback, and the
payload's marker file is never created.

What the library refuses on its own (``load_detector``, ``load_run``, ``load_tree``) is in
``test_detectors.py`` and ``test_training.py``; manifest paths escaping their folder under
``forensics verify`` in ``test_verify.py``; suite names with path parts in
``test_benchmark.py``.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from detectors.scan import DEFAULT_DETECTOR
from forensics.app.cli import app
from forensics.images import png_bytes
from forensics.provenance import sha256_file
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


class Payload:
    """Unpickling it would create ``marker`` — loading must never get that far."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def pickle_bomb(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Payload(marker)))


def truncate(path: Path, marker: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_tensor_bytes(path: Path) -> None:
    """Invert 16 bytes in the middle of the tensor data; the JSON header stays intact."""
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    middle = (start + len(data)) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    """A private copy of a 1-epoch tiny GAN run on digits."""
    return Path(shutil.copytree(trained_run("gan"), tmp_path / "run"))


@pytest.fixture
def detector(tmp_path) -> Path:
    """A private copy of the shipped default detector."""
    if not (DEFAULT_DETECTOR / "detector.json").is_file():
        pytest.skip("no shipped default detector")
    return Path(shutil.copytree(DEFAULT_DETECTOR, tmp_path / "det"))


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(np.zeros((28, 28, 1), np.uint8)))
    return path


def rehash(folder: Path, name: str) -> None:
    header = json.loads((folder / "detector.json").read_text())
    header["files"][name] = sha256_file(folder / name)
    (folder / "detector.json").write_text(json.dumps(header))


# -- run folders: weights and checkpoint ------------------------------------------------------


DAMAGE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "pickle": (pickle_bomb, "not a valid safetensors"),
    "truncated": (truncate, "not a valid safetensors"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_generate_refuses_damaged_weights(run, tmp_path, damage):
    spoil, fragment = DAMAGE[damage]
    marker = tmp_path / "pwned"
    spoil(run / "model.safetensors", marker)
    out = tmp_path / "fakes"
    result = invoke("generate", run, "--n", 3, "--out", out, "--device", "cpu")
    assert_one_line_error(result, 2, "model.safetensors", fragment)
    assert not marker.exists()
    assert not out.exists()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_refuses_damaged_checkpoint(run, tmp_path, damage):
    spoil, _ = DAMAGE[damage]
    marker = tmp_path / "pwned"
    before = {name: (run / name).read_bytes() for name in ("model.safetensors", "config.json",
                                                           "metrics.jsonl")}
    spoil(run / "checkpoint.safetensors", marker)
    result = invoke("train", "gan", "--resume", "--out", run, "--epochs", 2, "--device", "cpu")
    assert_one_line_error(result, 2, "checkpoint.safetensors", "not a valid safetensors checkpoint")
    assert not marker.exists()
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing rewritten


def test_resume_refuses_a_checkpoint_of_another_model(run, trained_run):
    """Valid safetensors, but the weights of a VAE: refused, not a shape-mismatch traceback."""
    shutil.copy(trained_run("vae") / "checkpoint.safetensors", run / "checkpoint.safetensors")
    result = invoke("train", "gan", "--resume", "--out", run, "--epochs", 2, "--device", "cpu")
    assert_one_line_error(result, 2, "checkpoint.safetensors")


def test_tampered_run_weights_are_refused(run, tmp_path):
    """safetensors has no checksum of its own: bytes flipped inside the tensor data still
    parse, so every finished epoch records the sha256 of model.safetensors in metrics.jsonl
    and ``generate`` / ``verify`` compare against it."""
    flip_tensor_bytes(run / "model.safetensors")
    result = invoke("generate", run, "--n", 3, "--out", tmp_path / "fakes", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert "sha256 differs" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "fakes").exists()
    verified = invoke("verify", run)
    assert verified.exit_code == 1 and "sha256 differs" in verified.output


# -- run folders: config.json from another version --------------------------------------------


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        *parents, key = path.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value

    return mutate


def _drop(key: str) -> Callable[[dict], None]:
    return lambda config: config.pop(key)


CONFIGS: dict[str, tuple[Callable[[dict], None], str]] = {
    "unknown-generator": (_set("generator", "stylegan9"), "unknown generator 'stylegan9'"),
    "generator-not-a-string": (_set("generator", ["gan"]), "'generator' must be a JSON string"),
    "no-generator": (_drop("generator"), "no 'generator'"),
    "no-dataset": (_drop("dataset"), "no 'dataset'"),
    "options-not-an-object": (_set("options", [1, 2]), "'options' must be a JSON object"),
    "unknown-option": (_set("options.colour", 1), "unknown option(s) colour"),
    "option-text-not-int": (_set("options.width", "eight"), "'eight' is not a valid int"),
    "option-list": (_set("options.width", [8]), "options do not build a gan model"),
    "option-float-for-int": (_set("options.width", 8.5), "options do not build a gan model"),
    "option-bad-choice": (_set("options.loss", 3), "loss must be one of"),
}
#: only ``generate`` reads the recorded data shape (``train --resume`` measures the data again)
GENERATE_ONLY: dict[str, tuple[Callable[[dict], None], str]] = {
    "no-data": (_drop("data"), "no 'data'"),
    "shape-missing": (lambda c: c["data"].pop("shape"), "data shape must be [C, H, W]"),
    "shape-text": (_set("data.shape", "abc"), "data shape must be [C, H, W]"),
    "shape-four-channels": (_set("data.shape", [4, 8, 8]), "data shape must be [C, H, W]"),
}
#: only ``train --resume`` reads the seed and the number of epochs
RESUME_ONLY: dict[str, tuple[Callable[[dict], None], str]] = {
    "seed-text": (_set("seed", "x"), "'seed' must be a JSON integer"),
    "epochs-text": (_set("epochs", "x"), "'epochs' must be a JSON integer"),
    "epochs-zero": (_set("epochs", 0), "'epochs' must be positive"),
}


def _spoil_config(run: Path, mutate: Callable[[dict], None]) -> None:
    config = json.loads((run / "config.json").read_text())
    mutate(config)
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("case", list(CONFIGS) + list(GENERATE_ONLY))
def test_generate_refuses_an_incompatible_config(run, tmp_path, case):
    mutate, fragment = {**CONFIGS, **GENERATE_ONLY}[case]
    _spoil_config(run, mutate)
    result = invoke("generate", run, "--n", 3, "--out", tmp_path / "fakes", "--device", "cpu")
    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "fakes").exists()
    checked = invoke("verify", run)  # verify names the same problem, in its list
    assert checked.exit_code == 1 and "Traceback" not in checked.output, checked.output


@pytest.mark.parametrize("case", list(CONFIGS) + list(RESUME_ONLY))
def test_resume_refuses_an_incompatible_config(run, case):
    mutate, fragment = {**CONFIGS, **RESUME_ONLY}[case]
    _spoil_config(run, mutate)
    weights = (run / "model.safetensors").read_bytes()
    result = invoke("train", "gan", "--resume", "--out", run, "--device", "cpu")
    assert_one_line_error(result, 2, fragment)
    assert (run / "model.safetensors").read_bytes() == weights


def test_config_that_is_not_an_object_or_not_json(run, tmp_path):
    for text, fragment in (("[1, 2]", "expected a JSON object"), ("{nope", "not valid JSON")):
        (run / "config.json").write_text(text)
        result = invoke("generate", run, "--n", 3, "--out", tmp_path / "f", "--device", "cpu")
        assert_one_line_error(result, 2, "config.json", fragment)


# -- detector folders -------------------------------------------------------------------------


@pytest.mark.parametrize("rehashed", [False, True], ids=["hash-check", "parser-check"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_detect_refuses_damaged_detector_weights(detector, image, tmp_path, damage, rehashed):
    spoil, fragment = DAMAGE[damage]
    marker = tmp_path / "pwned"
    spoil(detector / "model.safetensors", marker)
    if rehashed:  # an attacker who also rewrote detector.json: the parser still refuses
        rehash(detector, "model.safetensors")
    else:
        fragment = "does not match the hash in detector.json"
    result = invoke("detect", image, "--detector", detector, "--json")
    assert_one_line_error(result, 2, "model.safetensors", fragment)
    assert not marker.exists()
    assert result.stdout.strip() == ""


def test_detect_refuses_flipped_bytes_by_hash(detector, image):
    flip_tensor_bytes(detector / "model.safetensors")
    result = invoke("detect", image, "--detector", detector)
    assert_one_line_error(result, 2, "model.safetensors", "does not match the hash")
    checked = invoke("verify", detector)
    assert checked.exit_code == 1 and "altered: model.safetensors" in checked.stdout


def test_detect_refuses_a_detector_with_a_missing_piece(detector, image):
    (detector / "model.safetensors").unlink()
    result = invoke("detect", image, "--detector", detector)
    assert_one_line_error(result, 2, "model.safetensors", "missing model file")
    (detector / "detector.json").unlink()
    result = invoke("detect", image, "--detector", detector)
    assert_one_line_error(result, 2, "detector.json", "missing")


HEADERS: dict[str, tuple[Callable[[dict], None], str]] = {
    "unknown-kind": (_set("kind", "magic"), "unknown detector 'magic'"),
    "no-files": (_drop("files"), "no 'files'"),
    "files-a-list": (_set("files", ["model.safetensors"]), "'files' must map file names"),
    "file-outside": (_set("files", {"../model.safetensors": "0" * 64}), "unexpected model file"),
    "shape-text": (_set("input_shape", "abc"), "'input_shape' must be [C, H, W]"),
    "shape-two-numbers": (_set("input_shape", [28, 28]), "'input_shape' must be [C, H, W]"),
    "threshold-text": (_set("threshold", "high"), "'threshold' must be a finite number"),
    "options-a-list": (_set("options", [1]), "detector options must be a JSON object"),
    "unknown-option": (_set("options.colour", 1), "unknown option(s) for ensemble: colour"),
    "option-text-not-int": (_set("options.seed", "many"), "'many' is not a valid int"),
    "state-of-another-model": (_set("state", {"sources": 3}), "model files do not fit"),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_detect_refuses_an_incompatible_detector_json(detector, image, case):
    mutate, fragment = HEADERS[case]
    header = json.loads((detector / "detector.json").read_text())
    mutate(header)
    (detector / "detector.json").write_text(json.dumps(header))
    result = invoke("detect", image, "--detector", detector, "--json")
    assert_one_line_error(result, 2, fragment)


# -- manifests naming files outside their folder ------------------------------------------------


def test_train_detector_refuses_a_manifest_path_outside_the_fake_folder(tmp_path):
    """``--fake`` reads a generate output by its manifest; a row naming ``../x.png`` is refused
    (``forensics verify`` refusing the same is in test_verify.py)."""
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    rows = []
    for i in range(12):
        (fakes / f"img_{i:06d}.png").write_bytes(png_bytes(np.full((8, 8, 1), i, np.uint8)))
        rows.append({"file": f"img_{i:06d}.png"})
    (tmp_path / "outside.png").write_bytes(png_bytes(np.zeros((8, 8, 1), np.uint8)))
    rows.append({"file": "../outside.png"})
    (fakes / "manifest.json").write_text(json.dumps({"header": {"generator": "gan"},
                                                     "images": rows}))
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", fakes,
                    "--out", tmp_path / "det")
    assert_one_line_error(result, 2, "escapes its folder")
    assert not (tmp_path / "det").exists()
