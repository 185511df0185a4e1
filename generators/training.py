"""Training runs: a run folder that grows one complete epoch at a time.

Folder layout (every file written atomically, once per epoch):

- ``config.json``        generator, options, data set + hash, seed, versions
- ``model.safetensors``  the networks' weights (what ``generate`` loads)
- ``checkpoint.safetensors``  weights + optimizer states + epoch (what ``--resume`` loads)
- ``metrics.jsonl``      one line per epoch: mean losses, seconds
- ``samples/epoch_NNN.png`` and ``samples.png``  a fixed-noise sample grid

Randomness is derived from (seed, epoch), so a run resumed after epoch e is
bit-identical on CPU to one that never stopped.

Under ``torchrun`` (see :mod:`forensics.distributed`) the same code trains with
DistributedDataParallel and a DistributedSampler; ``batch_size`` stays the global
batch, and only rank 0 writes the folder, so N processes and one produce the same
kind of run folder (and, for networks without BatchNorm, the same numbers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset

from forensics import atomic, distributed, provenance
from forensics.checkpoint import load_tree, load_weights, read_json, save_tree, save_weights
from forensics.errors import ForensicsError
from forensics.runtime import check_precision, derive_seed
from generators.base import Generator, seeded
from generators.registry import create, get

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
#: the ``derive_seed`` counter of the initial weights (epochs use ``(seed, epoch)``)
INIT_STREAM = 10**6 + 1


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
          precision: str | None = None, compile: bool | None = None,
          callback: Callable[[dict[str, Any]], None] | None = None) -> Run:
    """Train (or resume) a generator; return the finished run.

    Under ``torchrun`` every process calls this with the same arguments: each
    trains on its share of every global batch through DistributedDataParallel,
    and rank 0 alone writes the run folder (and calls ``callback``).
    ``precision``: ``fp32`` or ``bf16`` (autocast); ``compile``: ``torch.compile``
    the networks. ``None`` keeps what a resumed run used (fp32, no compile if new).
    """
    from forensics.runtime import pick_device

    out = Path(out)
    with distributed.session(pick_device(device)) as dev, ExitStack() as stack:
        main = distributed.is_main()
        distributed.checked(lambda: main and stack.enter_context(atomic.locked(out)))
        if main:
            _clear_temporaries(out)
        config = distributed.checked(lambda: _config(
            name, options, out, dataset=dataset, epochs=epochs, seed=seed, resume=resume,
            data_root=data_root, download=download, precision=precision, compile=compile))
        data = distributed.main_first(lambda: _data(config))  # rank 0 downloads, if anything
        model, start = distributed.checked(lambda: _model(config, data, out, resume))
        config["options"] = model.options.to_dict()
        config["data"] = {"name": data.name, "sha256": data.fingerprint(), "size": len(data),
                          "shape": list(data.shape)}
        config["versions"] = provenance.versions()
        config.setdefault("created", provenance.now())
        config["device"] = str(dev)
        config["processes"] = distributed.size()
        model.to(dev)
        model.precision = config["precision"]
        distributed.checked(lambda: distributed.local_batch(model.options.batch_size))
        if main:
            _keep_metrics_until(out / METRICS, start)
            atomic.write_json(out / CONFIG, config)
        images = torch.as_tensor(data.images, device=dev)
        wrap = _wrapper(dev, bool(config["compile"]))
        with model.parallel(wrap) if wrap else nullcontext():
            _fit(model, images, config, start, out, callback if main else None)
        return Run(out, config, model)


def _config(name: str, options: dict[str, Any], out: Path, *, dataset: str, epochs: int | None,
            seed: int, resume: bool, data_root: str | None, download: bool,
            precision: str | None, compile: bool | None) -> dict[str, Any]:
    """The run's config: read back (``resume``) or made anew; run-time switches applied."""
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
                  "epochs": epochs or get(name).default_epochs, "seed": seed,
                  "data_root": data_root, "download": download}
    _check_config(config, out / CONFIG, keys=("generator", "options", "dataset", "seed", "epochs"))
    config["precision"] = check_precision(precision or config.get("precision") or "fp32")
    config["compile"] = bool(config.get("compile", False) if compile is None else compile)
    return config


def _model(config: dict[str, Any], data, out: Path, resume: bool) -> tuple[Generator, int]:
    """The run's generator with fresh weights, or the checkpoint's; and the epoch to start at."""
    # the initial weights come from the run seed too (a stream no epoch uses)
    torch.manual_seed(derive_seed(int(config["seed"]), INIT_STREAM))
    model = _build(config, data.shape, out / CONFIG)
    if not (resume and (out / CHECKPOINT).is_file()):
        return model, 0
    state = load_tree(out / CHECKPOINT)
    try:
        model.load_weights(state["weights"])
        model.load_training_state(state["optimizers"])
        return model, int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError, ForensicsError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise ForensicsError(f"{out / CHECKPOINT}: does not fit this run ({first})") from None


def _wrapper(device: torch.device, compile: bool) -> Callable[[torch.nn.Module], torch.nn.Module] | None:
    """How training steps call each network: DDP under torchrun, then torch.compile if asked."""
    if not (compile or distributed.active()):
        return None
    return lambda net: distributed.wrap(net, device, compile=compile)


def _batches(images: torch.Tensor, batch: int, seed: int, epoch: int) -> DataLoader:
    """This process's minibatches of one epoch: DistributedSampler over the training set.

    The sampler's permutation is seeded by (seed, epoch); with N processes rank r
    takes every N-th index, so its k-th batch holds its share of the k-th global
    batch (``batch`` is the per-process size, global batch / N).
    """
    dataset = TensorDataset(images)
    sampler = DistributedSampler(dataset, num_replicas=distributed.size(), rank=distributed.rank(),
                                 shuffle=True, seed=derive_seed(seed, epoch, 1), drop_last=True)
    # one fetch per batch (tensor indexing, no per-image collate); a private generator,
    # so iterating leaves the global RNG, which draws the noise, untouched
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch, drop_last=True),
                      batch_size=None, generator=torch.Generator())


def _fit(model: Generator, images: torch.Tensor, config: dict[str, Any], start: int,
         out: Path, callback: Callable[[dict[str, Any]], None] | None) -> None:
    seed, epochs = int(config["seed"]), int(config["epochs"])
    batch = distributed.local_batch(model.options.batch_size)
    if len(images) // model.options.batch_size == 0:
        raise ForensicsError(f"batch_size {model.options.batch_size} is larger than the "
                             f"{len(images)} training images")
    for epoch in range(start, epochs):
        began = time.perf_counter()
        torch.manual_seed(derive_seed(seed, epoch))
        loader = _batches(images, batch, seed, epoch)
        steps = len(loader)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for step, (x,) in enumerate(loader):
            losses = model.train_step(x)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            if callback:
                callback({"epoch": epoch, "epochs": epochs, "step": step + 1, "steps": steps,
                          "losses": losses})
        model.end_epoch(images)
        distributed.broadcast_buffers(model.nets)  # e.g. the AE's fitted prior: rank 0's copy
        means = distributed.all_mean({k: sums[k] / counts[k] for k in sums})
        record = {"epoch": epoch + 1, **means, "seconds": round(time.perf_counter() - began, 3)}
        if distributed.is_main():
            _save_epoch(model, out, epoch + 1, record, seed)
        distributed.barrier()
        if callback:
            callback({"epoch": epoch, "epochs": epochs, "done": True, "record": record})


def _save_epoch(model: Generator, out: Path, epoch: int, record: dict, seed: int) -> None:
    """Write the epoch's files; the checkpoint last, as the commit point of the epoch.

    A run killed before the checkpoint is written resumes from the previous epoch and
    writes every file of this one again (identically); had the checkpoint come first, a
    kill right after it would lose this epoch's metrics line and sample grid for good.
    """
    from forensics.images import save_grid

    save_weights(out / WEIGHTS, model.weights())
    record["weights_sha256"] = provenance.sha256_file(out / WEIGHTS)  # checked by load_run
    grid = model.preview(seeded(seed, 10**6))
    save_grid(grid, out / "samples" / f"epoch_{epoch:03d}.png", title=f"epoch {epoch}")
    save_grid(grid, out / "samples.png", title=f"epoch {epoch}")
    atomic.append_line(out / METRICS, json.dumps(record, sort_keys=True))
    save_tree(out / CHECKPOINT, {"weights": model.weights(),
                                 "optimizers": model.training_state(), "epoch": epoch})


def _clear_temporaries(out: Path) -> None:
    """Remove the temporary files a killed run left half-written (we hold the lock)."""
    for name in (CONFIG, WEIGHTS, CHECKPOINT, METRICS, "samples.png"):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    for stale in (out / "samples").glob(".epoch_*.png.*.tmp"):
        stale.unlink(missing_ok=True)


def _keep_metrics_until(path: Path, epoch: int) -> None:
    """Drop metric lines written after the last saved checkpoint (a killed run)."""
    if not path.exists():
        return

    def epoch_of(line: str) -> float:
        try:
            return float(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            return float("inf")  # a damaged line is dropped, not a crash

    lines = [line for line in path.read_text("utf-8", "replace").splitlines()
             if line.strip() and epoch_of(line) <= epoch]
    atomic.write_text(path, "".join(line + "\n" for line in lines))


def _check_config(config: dict[str, Any], path: Path, keys: tuple[str, ...]) -> None:
    """Refuse, in one line, a run config another version (or a hand) left unusable."""
    for key in keys:
        if key not in config:
            raise ForensicsError(f"{path}: not a forensics run config (no {key!r})")
    kinds = {"generator": (str, "string"), "options": (dict, "object"), "data": (dict, "object"),
             "dataset": (str, "string"), "seed": (int, "integer"), "epochs": (int, "integer")}
    for key in keys:
        kind, name = kinds[key]
        value = config[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ForensicsError(f"{path}: {key!r} must be a JSON {name}, not {value!r:.40}")
    if "epochs" in keys and config["epochs"] < 1:
        raise ForensicsError(f"{path}: 'epochs' must be positive")
    if "data" in keys:
        shape = config["data"].get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise ForensicsError(f"{path}: data shape must be [C, H, W] with C 1 or 3, "
                                 f"not {shape!r:.40}")


def _build(config: dict[str, Any], shape: tuple[int, ...], path: Path) -> Generator:
    """The run's generator, or a one-line error when its options cannot build one."""
    try:
        return create(config["generator"], image_shape=tuple(shape), **config["options"])
    except (TypeError, ValueError, KeyError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise ForensicsError(f"{path}: options do not build a {config['generator']} model "
                             f"({first})") from None


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a finished (or partly trained) run folder for sampling."""
    from forensics.runtime import pick_device

    path = Path(path)
    if not path.is_dir():
        raise ForensicsError(f"{path}: no such run folder")
    config = read_json(path / CONFIG)
    _check_config(config, path / CONFIG, keys=("generator", "options", "data", "dataset"))
    model = _build(config, config["data"]["shape"], path / CONFIG)
    try:
        model.load_weights(load_weights(path / WEIGHTS))
    except ForensicsError as error:
        message = str(error)
        raise ForensicsError(message if str(path / WEIGHTS) in message
                             else f"{path / WEIGHTS}: {message}") from None
    _check_weights_hash(path)
    model.to(pick_device(device))
    return Run(path, config, model)


def _check_weights_hash(path: Path) -> None:
    """Refuse weights that differ from the hash the last finished epoch recorded."""
    metrics = path / METRICS
    if not (metrics.is_file() and (path / WEIGHTS).is_file()):
        return
    recorded = None
    for line in metrics.read_text("utf-8", errors="replace").splitlines():
        try:
            recorded = json.loads(line).get("weights_sha256", recorded)
        except (ValueError, AttributeError):
            continue
    if recorded and provenance.sha256_file(path / WEIGHTS) != recorded:
        raise ForensicsError(
            f"{path / WEIGHTS}: sha256 differs from the one metrics.jsonl recorded for the last "
            "finished epoch (altered, or the run was interrupted: continue it with --resume)")
