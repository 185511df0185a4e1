"""The one training loop (forensics.loop) and the one manifest reader (forensics.manifest)."""

from __future__ import annotations

import json

import pytest
import torch

from forensics.errors import ForensicsError
from forensics.loop import fit, minimise
from forensics.manifest import ManifestError, read_manifest, write_manifest


def test_fit_reports_every_step_and_epoch_and_returns_the_means():
    events = []
    history = fit(lambda epoch: [1.0, 3.0], lambda b: {"loss": b * 2}, epochs=2, callback=events.append)
    assert history == [{"loss": 4.0}, {"loss": 4.0}]
    steps = [e for e in events if "done" not in e]
    assert [(e["epoch"], e["step"], e["steps"]) for e in steps] == \
        [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]
    done = [e for e in events if "done" in e]
    assert [(e["epoch"], e["epochs"], e["record"]) for e in done] == \
        [(0, 2, {"loss": 4.0}), (1, 2, {"loss": 4.0})]


def test_fit_weights_starts_late_and_takes_unsized_batches():
    history = fit(lambda epoch: iter([[1.0], [3.0, 3.0]]), lambda b: {"loss": b[0]}, epochs=3, start=2,
                  weight=len, end_epoch=lambda epoch, sums, weights: (epoch, sums["loss"] / weights["loss"]))
    assert history == [(2, pytest.approx(7 / 3))]


def test_minimise_takes_one_step():
    weight = torch.nn.Parameter(torch.tensor(1.0))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    minimise(optimizer, weight * 2)
    assert weight.item() == pytest.approx(0.0)
    assert weight.grad is not None


def test_manifest_round_trip_and_refusals(tmp_path):
    write_manifest(tmp_path, {"generator": "gan", "image_shape": [1, 8, 8]},
                   [{"file": "a.png"}, {"file": "sub/b.png"}])
    manifest = read_manifest(tmp_path)
    assert manifest.generator == "gan"
    assert manifest.files() == [tmp_path / "a.png", tmp_path / "sub" / "b.png"]
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [{"file": "../x.png"}]}))
    with pytest.raises(ForensicsError, match="escapes its folder") as caught:
        read_manifest(tmp_path).files()
    assert not isinstance(caught.value, ManifestError)  # hostile, not merely unusable
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [42]}))
    with pytest.raises(ManifestError):
        read_manifest(tmp_path).files()
    for text in ("{nope", "[1]", json.dumps({"images": "x"})):
        (tmp_path / "manifest.json").write_text(text)
        with pytest.raises(ManifestError):
            read_manifest(tmp_path)
