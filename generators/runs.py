"""The run folder: what a training run writes, and how a finished one is opened again.

Folder layout (every file written atomically, once per epoch):

- ``config.json``        generator, options, data set + hash, seed, versions
- ``model.safetensors``  the networks' weights (what ``generate`` loads)
- ``checkpoint.safetensors``  weights + optimizer states + epoch (what ``--resume`` loads)
- ``metrics.jsonl``      one line per epoch: mean losses, seconds, weights sha256
- ``samples/epoch_NNN.png`` and ``samples.png``  a fixed-noise sample grid

:mod:`generators.training` is the loop that fills it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics import atomic, provenance
from forensics.checkpoint import load_weights, read_json, save_tree, save_weights
from forensics.errors import ForensicsError
from generators.base import Generator, seeded
from generators.registry import create, get

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"


@dataclass
class Run:
    """A loaded run folder: its config and a generator with the saved weights."""

    path: Path
    config: dict[str, Any]
    model: Generator


def record_contents(out: Path) -> None:
    """``contents.json`` over the run's files (its ``.lock`` and sub-folders of their own aside)."""
    from forensics import digest

    digest.record(out, strict=False)


def save_epoch(model: Generator, out: Path, epoch: int, record: dict, seed: int) -> None:
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
    atomic.append_line(out / METRICS, json.dumps(atomic.jsonable(record), sort_keys=True, allow_nan=False))
    save_tree(out / CHECKPOINT, {"weights": model.weights(),
                                 "optimizers": model.training_state(), "epoch": epoch})
    record_contents(out)  # every file's sha256, for `forensics verify`


def saved_epoch(out: str | Path) -> int:
    """The last epoch the run folder's checkpoint holds (0: none finished yet)."""
    from safetensors import safe_open

    path = Path(out) / CHECKPOINT
    if not path.is_file():
        return 0
    try:
        with safe_open(str(path), framework="pt") as handle:
            skeleton = json.loads((handle.metadata() or {})["skeleton"])
        return int(dict(skeleton["__items__"])["epoch"])
    except Exception:  # a damaged checkpoint: --resume says what is wrong with it
        return 0


def clear_temporaries(out: Path) -> None:
    """Remove the temporary files a killed run left half-written (we hold the lock)."""
    for name in (CONFIG, WEIGHTS, CHECKPOINT, METRICS, "samples.png", "contents.json"):
        for stale in out.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    for stale in (out / "samples").glob(".epoch_*.png.*.tmp"):
        stale.unlink(missing_ok=True)


def keep_metrics_until(path: Path, epoch: int) -> None:
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


def check_config(config: dict[str, Any], path: Path, keys: tuple[str, ...]) -> None:
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


def saved_options(config: dict[str, Any]) -> dict[str, Any]:
    """A run config's options, with the value of each option added since it was saved
    (:attr:`generators.base.Options.earlier`)."""
    return {**get(config["generator"]).Options.earlier, **config["options"]}


def build(config: dict[str, Any], shape: tuple[int, ...], path: Path) -> Generator:
    """The run's generator, or a one-line error when its options cannot build one."""
    try:
        return create(config["generator"], image_shape=tuple(shape), **saved_options(config))
    except (TypeError, ValueError, KeyError, RuntimeError) as error:  # torch: RuntimeError
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ForensicsError(f"{path}: options do not build a {config['generator']} model "
                             f"({first})") from None


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a finished (or partly trained) run folder for sampling."""
    from forensics.runtime import pick_device

    path = Path(path)
    if not path.is_dir():
        raise ForensicsError(f"{path}: no such run folder")
    config = read_json(path / CONFIG)
    check_config(config, path / CONFIG, keys=("generator", "options", "data", "dataset"))
    model = build(config, config["data"]["shape"], path / CONFIG)
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
