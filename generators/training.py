"""Training runs: a run folder that grows one complete epoch at a time.

Folder layout (every file written atomically, once per epoch):

- ``config.json``        generator, options, data set + hash, seed, versions
- ``model.safetensors``  the networks' weights (what ``generate`` loads)
- ``checkpoint.safetensors``  weights + optimizer states + epoch (what ``--resume`` loads)
- ``metrics.jsonl``      one line per epoch: mean losses, seconds
- ``samples/epoch_NNN.png`` and ``samples.png``  a fixed-noise sample grid

Randomness is derived from (seed, epoch), so a run resumed after epoch e is
bit-identical on CPU to one that never stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from forensics import atomic, provenance
from forensics.checkpoint import load_tree, load_weights, read_json, save_tree, save_weights
from forensics.errors import ForensicsError
from forensics.runtime import derive_seed
from generators.base import Generator, seeded
from generators.registry import create

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
#: the ``derive_seed`` counter of the initial weights (epochs use ``(seed, epoch)``)
INIT_STREAM = 10**6 + 1
#: default epochs per generator: recognisable digits on mnist5k in ≤ 3 min on 2 cores
DEFAULT_EPOCHS = {"ae": 15, "vae": 50, "gan": 40, "infogan": 35}


@dataclass
class Run:
    """A loaded run folder: its config and a generator with the saved weights."""

    path: Path
    config: dict[str, Any]
    model: Generator


def _data(config: dict[str, Any]):
    from forensics.data import load_split

    return load_split(config["dataset"], "train", root=config.get("data_root"),
                      download=config.get("download", False))


def train(name: str, options: dict[str, Any], *, out: str | Path, dataset: str = "mnist5k",
          epochs: int | None = None, seed: int = 0, device: str = "auto",
          resume: bool = False, data_root: str | None = None, download: bool = False,
          callback: Callable[[dict[str, Any]], None] | None = None) -> Run:
    """Train (or resume) a generator; return the finished run."""
    from forensics.runtime import pick_device

    out = Path(out)
    dev = pick_device(device)
    with atomic.locked(out):
        if resume:
            if not (out / CONFIG).is_file():
                raise ForensicsError(f"{out}: nothing to resume (no {CONFIG})")
            config = read_json(out / CONFIG)
            if epochs is not None:
                config["epochs"] = epochs
        else:
            if (out / CONFIG).exists():
                raise ForensicsError(f"{out} already holds a run (use --resume, or another --out)")
            config = {"generator": name, "options": options, "dataset": dataset,
                      "epochs": epochs or DEFAULT_EPOCHS.get(name, 20), "seed": seed,
                      "data_root": data_root, "download": download}
        data = _data(config)
        # the initial weights come from the run seed too (a stream no epoch uses)
        torch.manual_seed(derive_seed(int(config["seed"]), INIT_STREAM))
        model = create(config["generator"], image_shape=data.shape, **config["options"])
        config["options"] = model.options.to_dict()
        config["data"] = {"name": data.name, "sha256": data.fingerprint(), "size": len(data),
                          "shape": list(data.shape)}
        config["versions"] = provenance.versions()
        config.setdefault("created", provenance.now())
        config["device"] = str(dev)
        model.to(dev)
        start = 0
        if resume and (out / CHECKPOINT).is_file():
            state = load_tree(out / CHECKPOINT)
            model.load_weights(state["weights"])
            model.load_training_state(state["optimizers"])
            start = int(state["epoch"])
        _keep_metrics_until(out / METRICS, start)
        atomic.write_json(out / CONFIG, config)
        images = torch.as_tensor(data.images, device=dev)
        _fit(model, images, config, start, out, callback)
        return Run(out, config, model)


def _fit(model: Generator, images: torch.Tensor, config: dict[str, Any], start: int,
         out: Path, callback: Callable[[dict[str, Any]], None] | None) -> None:
    seed, epochs = int(config["seed"]), int(config["epochs"])
    batch = model.options.batch_size
    steps = len(images) // batch
    if steps == 0:
        raise ForensicsError(f"batch_size {batch} is larger than the {len(images)} training images")
    for epoch in range(start, epochs):
        began = time.perf_counter()
        torch.manual_seed(derive_seed(seed, epoch))
        order = torch.randperm(len(images), generator=seeded(seed, epoch, 1)).to(images.device)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for step in range(steps):
            losses = model.train_step(images[order[step * batch : (step + 1) * batch]])
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            if callback:
                callback({"epoch": epoch, "epochs": epochs, "step": step + 1, "steps": steps,
                          "losses": losses})
        model.end_epoch(images)
        record = {"epoch": epoch + 1, **{k: sums[k] / counts[k] for k in sums},
                  "seconds": round(time.perf_counter() - began, 3)}
        _save_epoch(model, out, epoch + 1, record, seed)
        if callback:
            callback({"epoch": epoch, "epochs": epochs, "done": True, "record": record})


def _save_epoch(model: Generator, out: Path, epoch: int, record: dict, seed: int) -> None:
    from forensics.images import save_grid

    save_tree(out / CHECKPOINT, {"weights": model.weights(),
                                 "optimizers": model.training_state(), "epoch": epoch})
    save_weights(out / WEIGHTS, model.weights())
    atomic.append_line(out / METRICS, json.dumps(record, sort_keys=True))
    grid = model.preview(seeded(seed, 10**6))
    save_grid(grid, out / "samples" / f"epoch_{epoch:03d}.png", title=f"epoch {epoch}")
    save_grid(grid, out / "samples.png", title=f"epoch {epoch}")


def _keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metric lines written after the last saved checkpoint (a killed run)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and json.loads(line)["epoch"] <= epoch]
    atomic.write_text(path, "".join(line + "\n" for line in lines))


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a finished (or partly trained) run folder for sampling."""
    from forensics.runtime import pick_device

    path = Path(path)
    if not path.is_dir():
        raise ForensicsError(f"{path}: no such run folder")
    config = read_json(path / CONFIG)
    for key in ("generator", "options", "data"):
        if key not in config:
            raise ForensicsError(f"{path / CONFIG}: not a forensics run config (no {key!r})")
    model = create(config["generator"], image_shape=tuple(config["data"]["shape"]),
                   **config["options"])
    model.load_weights(load_weights(path / WEIGHTS))
    model.to(pick_device(device))
    return Run(path, config, model)
