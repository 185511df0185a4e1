"""Beyond 28×28 gray: train → generate → train-detector → detect on RGB photograph patches, via the CLI.

The patches are cut from scikit-learn's two sample photographs (``tests.conftest.photo_patches``):
one folder is the real data set (``--dataset folder:DIR``), another, cut with another seed, is held
out for ``detect``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.images import read_image
from tests.conftest import photo_patches, tiny_options

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


@pytest.mark.parametrize("side", [32, pytest.param(64, marks=pytest.mark.slow)])
def test_rgb_photographs_end_to_end(side, tmp_path):
    shape = (3, side, side)
    real = photo_patches(tmp_path / "photos", 160, shape, seed=0)
    held_out = photo_patches(tmp_path / "held_out", 12, shape, seed=1)

    run = tmp_path / "run"
    settings = [arg for key, value in tiny_options("vae").items() for arg in ("--set", f"{key}={value}")]
    invoke("train", "vae", "--dataset", f"folder:{real}", "--epochs", 1, "--seed", 0,
           "--device", "cpu", "--out", run, *settings)
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["shape"] == list(shape) and config["data"]["size"] < 160  # its train split

    fakes = tmp_path / "fakes"
    invoke("generate", run, "--n", 120, "--out", fakes, "--seed", 0, "--device", "cpu")
    pngs = sorted(fakes.glob("*.png"))
    assert len(pngs) == 120
    assert read_image(pngs[0]).shape == (side, side, 3)

    detector = tmp_path / "detector"
    result = invoke("train-detector", "cnn", "--real", f"folder:{real}", "--fake", fakes,
                    "--out", detector, "--set", "epochs=1", "--set", "device=cpu")
    assert "balanced accuracy" in result.stdout
    header = json.loads((detector / "detector.json").read_text())
    assert header["input_shape"] == list(shape)

    result = invoke("detect", held_out, pngs[0], "--detector", detector, "--json")
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == 13
    judged = [r for r in records if r["in_domain"]]
    assert len(judged) >= 10  # patches of the training photographs are in the detector's domain
    for record in judged:
        assert record["verdict"] in ("real", "fake")
        assert 0.0 <= record["p_fake"] <= 1.0
    assert all(np.isfinite(r["p_fake"]) for r in judged)
