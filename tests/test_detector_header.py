"""detector.json is checked when the folder is loaded: shape, threshold range, finite weights.

Each case edits a real saved detector as an attacker would (the header, or the weights with
their hash updated to match) and expects one error line from ``detect``, not a traceback at
scoring time nor a silent wrong verdict.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.images import png_bytes
from forensics.provenance import sha256_file
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    from detectors.registry import create

    root = tmp_path_factory.mktemp("header")
    rng = np.random.default_rng(0)
    real = rng.random((40, 1, 8, 8)).astype(np.float32) * 0.5
    fake = real + 0.4
    folders = {}
    for kind in ("pixel-logreg", "cnn"):
        from detectors.registry import get

        detector = create(kind, **get(kind).tiny_options).fit(real, fake)
        detector.save(root / kind)
        folders[kind] = root / kind
    image = root / "img.png"
    image.write_bytes(png_bytes((real[0].transpose(1, 2, 0) * 255).astype(np.uint8)))
    folders["image"] = image
    return folders


def edited(saved: dict, kind: str, tmp_path: Path, **fields) -> Path:
    folder = tmp_path / kind
    shutil.copytree(saved[kind], folder)
    header = json.loads((folder / "detector.json").read_text())
    header.update(fields)
    (folder / "detector.json").write_text(json.dumps(header))
    return folder


def detect(folder: Path, image: Path):
    return runner.invoke(app, ["detect", str(image), "--detector", str(folder), "--json"])


def test_the_saved_detectors_load_and_score(saved):
    for kind in ("pixel-logreg", "cnn"):
        result = detect(saved[kind], saved["image"])
        assert result.exit_code == 0, (result.stderr, result.exception)


@pytest.mark.parametrize("kind", ["pixel-logreg", "cnn"])
@pytest.mark.parametrize("shape", [[1, 16, 16], [3, 8, 8], [2, 8, 8], [1, 100000, 100000], [1, 8],
                                   "1x8x8", [1, 0, 8], [1.5, 8, 8]])
def test_input_shape_is_checked_at_load(saved, tmp_path, kind, shape):
    result = detect(edited(saved, kind, tmp_path, input_shape=shape), saved["image"])
    if kind == "cnn" and shape == [1, 16, 16]:  # the CNN pools globally: any size fits it
        assert result.exit_code == 0, (result.stderr, result.exception)
        return
    assert_one_line_error(result, 2, "input_shape")


@pytest.mark.parametrize("threshold", [-5, 1.5, "0.5", None])
def test_threshold_out_of_range_is_refused(saved, tmp_path, threshold):
    result = detect(edited(saved, "pixel-logreg", tmp_path, threshold=threshold), saved["image"])
    assert_one_line_error(result, 2, "threshold")


def test_calibrated_thresholds_out_of_range_are_refused(saved, tmp_path):
    folder = edited(saved, "pixel-logreg", tmp_path, thresholds={"fpr": -5.0})
    assert_one_line_error(detect(folder, saved["image"]), 2, "thresholds")


def test_nan_weights_are_refused_at_load(saved, tmp_path):
    """The attacker rewrites the weights and their hash: the detector still does not load."""
    from forensics.checkpoint import load_weights, save_weights

    folder = tmp_path / "cnn"
    shutil.copytree(saved["cnn"], folder)
    weights = load_weights(folder / "model.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name].clone().fill_(float("nan"))
    save_weights(folder / "model.safetensors", weights)
    header = json.loads((folder / "detector.json").read_text())
    header["files"]["model.safetensors"] = sha256_file(folder / "model.safetensors")
    (folder / "detector.json").write_text(json.dumps(header))
    assert_one_line_error(detect(folder, saved["image"]), 2, "NaN", name)


def test_nan_sklearn_weights_are_refused_at_load(saved, tmp_path):
    from detectors.storage import dump_sklearn, load_sklearn

    folder = tmp_path / "pixel-logreg"
    shutil.copytree(saved["pixel-logreg"], folder)
    [file] = [p for p in folder.iterdir() if p.name != "detector.json"]
    model = load_sklearn(file)
    steps = getattr(model, "steps", None)
    estimator = steps[-1][1] if steps else model
    estimator.coef_ = np.full_like(estimator.coef_, np.nan)
    dump_sklearn(file, model)
    header = json.loads((folder / "detector.json").read_text())
    header["files"][file.name] = sha256_file(file)
    (folder / "detector.json").write_text(json.dumps(header))
    assert_one_line_error(detect(folder, saved["image"]), 2, "NaN")
