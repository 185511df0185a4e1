"""Training runs: reproducibility, resume, the run folder, checkpoints and atomic writes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from forensics.checkpoint import load_tree, load_weights
from forensics.errors import ForensicsError
from generators import list_generators
from generators.training import CHECKPOINT, CONFIG, METRICS, WEIGHTS, load_run, train
from tests.conftest import tiny_options

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(name, out, **kwargs):
    options = kwargs.pop("options", tiny_options(name))
    kwargs = {"dataset": "digits", "epochs": 1, "seed": 0, "device": "cpu", **kwargs}
    return train(name, options, out=out, **kwargs)


def _metrics(path) -> list[dict]:
    lines = (path / METRICS).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        assert record.pop("seconds") >= 0
    return records


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def _flatten(tree, prefix="") -> dict:
    """Nested checkpoint state → {path: tensor or plain value}."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(_flatten(value, f"{prefix}/{key}"))
    return flat


# -- reproducibility and resume ---------------------------------------------------------------


@pytest.mark.parametrize("name", list_generators())
def test_resume_equals_an_uninterrupted_run(name, tmp_path):
    # gan trains with k=2 and an odd number of steps per epoch (1,438 images in 23 batches of
    # 64, the last of 30): a partial k-iteration at the end of an epoch must not leak into
    # the next one differently after a resume
    options = tiny_options(name, **({"k": 2, "batch_size": 64} if "gan" in name else {}))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(name, straight, options=options, epochs=2)
    _train(name, resumed, options=options, epochs=1)
    first_epoch = load_weights(resumed / WEIGHTS)
    run = _train(name, resumed, options={}, epochs=2, resume=True)
    assert run.config["epochs"] == 2

    _assert_same_tensors(load_weights(straight / WEIGHTS), load_weights(resumed / WEIGHTS))
    assert any(
        not torch.equal(value, load_weights(resumed / WEIGHTS)[key]) for key, value in first_epoch.items()
    )
    a, b = _flatten(load_tree(straight / CHECKPOINT)), _flatten(load_tree(resumed / CHECKPOINT))
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
    assert _metrics(straight) == _metrics(resumed)
    assert [r["epoch"] for r in _metrics(resumed)] == [1, 2]
    assert sorted(p.name for p in (resumed / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_every_epoch_uses_every_image():
    from generators.training import _batches, epoch_batches

    assert epoch_batches(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    # a one-image remainder joins the batch before it (BatchNorm needs two)
    assert epoch_batches(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    images = torch.arange(1438, dtype=torch.float32).reshape(1438, 1, 1, 1)
    seen = torch.cat([batch[0].flatten() for batch in _batches(images, 64, 0, 3)])
    assert sorted(seen.tolist()) == list(range(1438))


@pytest.mark.parametrize("name", list_generators())
def test_same_seed_same_weights_other_seed_other_weights(name, tmp_path):
    _train(name, tmp_path / "a", seed=7)
    _train(name, tmp_path / "b", seed=7)
    _train(name, tmp_path / "c", seed=8)
    a, b, c = (load_weights(tmp_path / run / WEIGHTS) for run in "abc")
    _assert_same_tensors(a, b)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert any(not torch.equal(a[key], c[key]) for key in a)


def test_resume_drops_metrics_of_epochs_that_were_never_saved(tmp_path):
    """A run killed after writing a metric line but before its checkpoint resumes cleanly."""
    out = tmp_path / "run"
    _train("vae", out, epochs=1)
    with open(out / METRICS, "a") as handle:
        handle.write(json.dumps({"epoch": 2, "loss": 123.0, "seconds": 1.0}) + "\n")
    _train("vae", out, options={}, epochs=2, resume=True)
    records = _metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["loss"] != 123.0


def test_resume_to_more_epochs_keeps_the_options(tmp_path):
    out = tmp_path / "run"
    _train("ae", out, options=tiny_options("ae", code_dim=3), epochs=1)
    # an option that differs from the recorded one is refused, not silently dropped
    with pytest.raises(ForensicsError, match="recorded options; not code_dim 9 \\(recorded: 3\\)"):
        _train("ae", out, options={"code_dim": 9}, epochs=2, resume=True)
    run = _train("ae", out, options={"code_dim": "3"}, epochs=2, resume=True)
    assert run.model.options.code_dim == 3
    assert json.loads((out / CONFIG).read_text())["epochs"] == 2


# -- the run folder ---------------------------------------------------------------------------


def test_run_folder_layout_and_config(tmp_path):
    out = tmp_path / "run"
    run = _train("gan", out, epochs=2, seed=4)
    names = {p.name for p in out.iterdir()}
    assert {CONFIG, WEIGHTS, CHECKPOINT, METRICS, "samples.png", "samples"} <= names
    config = json.loads((out / CONFIG).read_text())
    assert config == json.loads(json.dumps(run.config))
    assert config["generator"] == "gan" and config["seed"] == 4 and config["epochs"] == 2
    assert config["dataset"] == "digits"
    assert config["options"]["width"] == 8 and config["options"]["loss"] == "non-saturating"
    assert config["data"]["size"] == 1438 and config["data"]["shape"] == [1, 8, 8]
    assert len(config["data"]["sha256"]) == 16
    assert "torch" in config["versions"]
    assert load_tree(out / CHECKPOINT)["epoch"] == 2
    _assert_same_tensors(load_tree(out / CHECKPOINT)["weights"], load_weights(out / WEIGHTS))
    assert not list(out.rglob("*.tmp"))


def test_training_reports_through_the_callback(tmp_path):
    events = []
    _train("vae", tmp_path / "run", epochs=2, callback=events.append)
    steps = math.ceil(1438 / 64)  # every image each epoch: 22 full batches and one of 30
    progress = [e for e in events if "done" not in e]
    done = [e for e in events if "done" in e]
    assert len(progress) == 2 * steps and len(done) == 2
    assert progress[-1]["step"] == steps and progress[-1]["epochs"] == 2
    assert done[-1]["record"]["epoch"] == 2


def test_training_refuses_bad_requests(tmp_path):
    out = tmp_path / "run"
    _train("vae", out)
    with pytest.raises(ForensicsError, match="already holds a run"):
        _train("vae", out)
    with pytest.raises(ForensicsError, match="nothing to resume"):
        _train("vae", tmp_path / "empty", resume=True)
    with pytest.raises(ForensicsError, match="larger than the 1438 training images"):
        _train("vae", tmp_path / "big", options=tiny_options("vae", batch_size=2000))
    with pytest.raises(ForensicsError, match="unknown device"):
        _train("vae", tmp_path / "dev", device="tpu")
    with pytest.raises(ForensicsError, match="unknown generator"):
        _train("stylegan9", tmp_path / "diff", options={})


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(ForensicsError, match="no such run folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForensicsError, match="missing"):
        load_run(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / CONFIG).write_text('{"hello": 1}')
    with pytest.raises(ForensicsError, match="not a forensics run config"):
        load_run(tmp_path / "other")


def test_load_run_refuses_damaged_or_foreign_weights(tmp_path):
    out = tmp_path / "run"
    _train("vae", out)
    config = json.loads((out / CONFIG).read_text())
    (out / WEIGHTS).write_bytes(b"\x80\x04not safetensors at all")
    with pytest.raises(ForensicsError, match="not a valid safetensors"):
        load_run(out)

    other = tmp_path / "other"
    _train("vae", other)
    config["options"]["latent_dim"] = 7
    (other / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ForensicsError, match="do not fit"):
        load_run(other)


# -- checkpoints and atomic writes --------------------------------------------------------------


def test_checkpoint_tree_round_trip(tmp_path):
    from forensics.checkpoint import save_tree

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, betas=(0.5, 0.9))
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    tree = {
        "weights": model.state_dict(),
        "optimizers": {"a": optimizer.state_dict()},
        "epoch": 3,
        "names": ["x", "y"],
        "nested": {"0": 1.5},
    }
    save_tree(tmp_path / "c.safetensors", tree)
    back = load_tree(tmp_path / "c.safetensors")
    assert back["epoch"] == 3 and back["names"] == ["x", "y"] and back["nested"] == {"0": 1.5}
    _assert_same_tensors(back["weights"], model.state_dict())
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    fresh.load_state_dict(back["optimizers"]["a"])
    assert fresh.param_groups[0]["lr"] == 0.1
    assert tuple(fresh.param_groups[0]["betas"]) == (0.5, 0.9)
    assert set(fresh.state_dict()["state"]) == {0, 1}


def test_checkpoint_loading_refuses_garbage(tmp_path):
    with pytest.raises(ForensicsError, match="missing checkpoint"):
        load_tree(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes")
    with pytest.raises(ForensicsError, match="not a valid safetensors checkpoint"):
        load_tree(bad)
    with pytest.raises(ForensicsError, match="not a valid safetensors"):
        load_weights(bad)


def test_staging_dir_appears_only_when_complete(tmp_path):
    from forensics.atomic import staging_dir

    final = tmp_path / "out"
    with pytest.raises(RuntimeError), staging_dir(final) as folder:
        (folder / "half.txt").write_text("half")
        raise RuntimeError("crash")
    assert not final.exists() and list(tmp_path.iterdir()) == []

    with staging_dir(final) as folder:
        (folder / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"
    with pytest.raises(ForensicsError, match="already exists"), staging_dir(final):
        pass
    with pytest.raises(RuntimeError), staging_dir(final, force=True) as folder:
        raise RuntimeError("crash")
    assert (final / "a.txt").read_text() == "a"  # a failed overwrite keeps the old result
    with staging_dir(final, force=True) as folder:
        (folder / "b.txt").write_text("b")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_locked_run_folder_is_refused(tmp_path):
    from forensics.atomic import locked

    with locked(tmp_path / "run"):
        with pytest.raises(ForensicsError, match="in use"):
            _train("vae", tmp_path / "run")
