"""Training a generator: the loop that fills a run folder one complete epoch at a time.

The folder's files (config, weights, checkpoint, metrics, sample grids) and how a run is
opened again live in :mod:`generators.runs`; the epochs × minibatches loop is the
toolkit's one (:func:`forensics.loop.fit`). How a run trains (:class:`TrainingOptions`:
epochs, seed, batch size, precision, compile) is kept apart from what the model is (its
``Options``); ``config.json`` keeps its format, epochs and seed at its top level and the
batch size (which the model's options have always carried) inside ``options``.

Randomness is derived from (seed, epoch), so a run resumed after epoch e is
bit-identical on CPU to one that never stopped.

Under ``torchrun`` (see :mod:`forensics.distributed`) the same code trains with
DistributedDataParallel and a DistributedSampler; ``batch_size`` stays the global
batch, and only rank 0 writes the folder, so N processes and one produce the same
kind of run folder (and, for networks without BatchNorm, the same numbers).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from forensics import atomic, distributed, loop, provenance
from forensics.checkpoint import load_tree, read_json
from forensics.errors import ForensicsError
from forensics.runtime import check_precision, derive_seed, resolve_precision
from generators.base import Generator
from generators.registry import get
from generators.runs import (  # noqa: F401 (CONFIG, WEIGHTS, Run, load_run: re-exported for callers)
    CHECKPOINT,
    CONFIG,
    METRICS,
    WEIGHTS,
    Run,
    build,
    check_config,
    clear_temporaries,
    keep_metrics_until,
    load_run,
    save_epoch,
    saved_options,
)

#: precision of a new run when none is given: bf16 autocast where the device computes bf16
#: natively (forensics.runtime.native_bf16), else fp32 — measured on mnist5k's default
#: trainings on 2 cores with AVX512-BF16 (README, Generators): the same sample quality in
#: 1.3–1.5× less time per step, which the defaults spend on more epochs
DEFAULT_PRECISION = "auto"

#: the ``derive_seed`` counter of the initial weights (epochs use ``(seed, epoch)``)
INIT_STREAM = 10**6 + 1


@dataclass(frozen=True)
class TrainingOptions:
    """How a run trains, apart from the model (pythae's trainer config beside the model's).

    The learning rates stay in the model's options: each generator builds its own
    optimizers (the GANs one per network, with their own rates).
    """

    epochs: int
    seed: int
    batch_size: int
    precision: str = "fp32"
    compile: bool = False

    @classmethod
    def of(cls, config: dict[str, Any], model: Generator) -> TrainingOptions:
        """The training options of a run ``config`` for its ``model``."""
        return cls(int(config["epochs"]), int(config["seed"]), int(model.options.batch_size),
                   run_precision(config), bool(config.get("compile", False)))


def run_precision(config: dict[str, Any]) -> str:
    """The precision a run's ``config`` says it trained in: a run saved before precision was
    recorded trained in float32 (and resumes so)."""
    return config.get("precision") or "fp32"


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
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the device computes it
    natively, else fp32; recorded resolved); ``compile``: ``torch.compile`` the networks.
    ``None`` keeps what a resumed run used (``auto`` and no compile if new).
    """
    from forensics.runtime import pick_device

    out = Path(out)
    created = not os.path.lexists(out)
    with distributed.session(pick_device(device)) as dev, ExitStack() as stack:
        main = distributed.is_main()
        if main and created:  # runs last, once the lock is released
            stack.push(_on_failure(_rmdir, out))
        distributed.checked(lambda: main and stack.enter_context(atomic.locked(out)))
        if main and created:  # runs first, under the lock
            stack.push(_on_failure(_clear_unfinished, out))
        if main:
            clear_temporaries(out)
        config = distributed.checked(lambda: _config(
            name, options, out, dataset=dataset, epochs=epochs, seed=seed, resume=resume,
            data_root=data_root, download=download, precision=precision, compile=compile))
        data = distributed.main_first(lambda: _data(config))  # rank 0 downloads, if anything
        model, start = distributed.checked(lambda: _model(config, data, out, resume))
        config["options"] = model.options.to_dict()
        config["data"] = {"name": data.name, "sha256": data.fingerprint(), "size": len(data),
                          "shape": list(data.shape)}
        if getattr(data, "note", None):  # a folder data set: which size it chose, and why
            config["data"]["note"] = data.note
        config["versions"] = provenance.versions()
        config.setdefault("created", provenance.now())
        config["device"] = str(dev)
        config["processes"] = distributed.size()
        config["precision"] = _resolved_precision(config["precision"], dev)  # recorded resolved
        model.to(dev)
        model.precision = config["precision"]
        distributed.checked(lambda: distributed.local_batch(model.options.batch_size))
        if main:
            keep_metrics_until(out / METRICS, start)
            atomic.write_json(out / CONFIG, config)
        images = torch.as_tensor(data.images, device=dev)
        wrap = _wrapper(dev, bool(config["compile"]))
        with model.parallel(wrap) if wrap else nullcontext():
            _fit(model, images, config, start, out, callback if main else None)
        return Run(out, config, model)


def new_run_precision(device) -> str:
    """The precision a new run trains in on ``device`` (:data:`DEFAULT_PRECISION` resolved):
    what caches and kept runs are compared against."""
    return resolve_precision(DEFAULT_PRECISION, device)


def _resolved_precision(precision: str, device) -> str:
    """``precision`` resolved for this rank's device; under torchrun every rank must resolve
    ``auto`` alike (nodes of different hardware would otherwise train in different precisions)."""
    resolved = resolve_precision(precision, device)
    share = distributed.all_mean({"bf16": float(resolved == "bf16")})["bf16"]
    distributed.agree(None if share in (0.0, 1.0) else
                      "--precision auto resolves to bf16 on some ranks' devices and fp32 on others: "
                      "pass --precision fp32 or bf16")
    return resolved


def _on_failure(action: Callable[[Path], None], out: Path):
    """An exit callback running ``action(out)`` when the block fails (the error goes on)."""
    def exit_(kind, *_) -> bool:
        # Ctrl-C keeps what was written: the command says what is saved (config.json alone)
        if kind is not None and not issubclass(kind, KeyboardInterrupt):
            try:
                action(out)
            except OSError:
                pass  # cleaning up is a courtesy: the error that got us here is the one to show
        return False

    return exit_


def _clear_unfinished(out: Path) -> None:
    """A run folder this call created, failed before its first epoch was saved (a bad option,
    a full disk): its files go, so no run folder without a run is left behind."""
    if (out / CHECKPOINT).exists():
        return
    for entry in out.iterdir():
        if entry.name != ".lock":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _rmdir(out: Path) -> None:
    """Remove ``out`` if empty (another process may have taken it meanwhile: then it is not)."""
    os.rmdir(out)


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
        _refuse_changed_options(config, options, out)
    else:
        if (out / CONFIG).exists():
            raise ForensicsError(f"{out} already holds a run (use --resume, or another --out)")
        get(name).Options.refuse_inapplicable(options)
        # every option resolved now (today's defaults): left out, a newer option would take the
        # value that runs saved before it used (Options.earlier), not today's default
        options = get(name).Options.from_dict(options).to_dict()
        config = {"generator": name, "options": options, "dataset": dataset,
                  "epochs": epochs or get(name).default_epochs, "seed": seed,
                  "data_root": data_root, "download": download}
    check_config(config, out / CONFIG, keys=("generator", "options", "dataset", "seed", "epochs"))
    config["precision"] = check_precision(
        precision or (run_precision(config) if resume else DEFAULT_PRECISION))
    config["compile"] = bool(config.get("compile", False) if compile is None else compile)
    return config


def _refuse_changed_options(config: dict[str, Any], given: dict[str, Any], out: Path) -> None:
    """A resumed run keeps its recorded options: refuse, in one line, any given that differ."""
    check_config(config, out / CONFIG, keys=("generator", "options"))
    if not given:
        return
    cls = get(config["generator"]).Options
    saved = saved_options(config)
    recorded = cls.from_dict(saved).to_dict()
    asked = cls.from_dict({**saved, **given}).to_dict()
    changed = [key for key in given if asked.get(key) != recorded.get(key)]
    if changed:
        shown = ", ".join(f"{key} {asked.get(key)!r} (recorded: {recorded.get(key)!r})" for key in changed)
        raise ForensicsError(f"--resume continues {out} with its recorded options; not {shown}")


def _model(config: dict[str, Any], data, out: Path, resume: bool) -> tuple[Generator, int]:
    """The run's generator with fresh weights, or the checkpoint's; and the epoch to start at."""
    # the initial weights come from the run seed too (a stream no epoch uses)
    torch.manual_seed(derive_seed(int(config["seed"]), INIT_STREAM))
    model = build(config, data.shape, out / CONFIG)
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


#: the smallest minibatch a step trains on (BatchNorm's batch statistics need two images)
MIN_BATCH = 2


def epoch_batches(indices: list[int], batch: int) -> list[list[int]]:
    """An epoch's index order cut into minibatches that use every index once.

    The last batch keeps the remainder when it holds at least :data:`MIN_BATCH`
    images; a smaller remainder joins the batch before it (issue #15: every epoch
    uses every image; a one-image batch would break BatchNorm).
    """
    batches = [indices[i:i + batch] for i in range(0, len(indices), batch)]
    if len(batches) > 1 and len(batches[-1]) < MIN_BATCH:
        tail = batches.pop()
        batches[-1] = batches[-1] + tail
    return batches


def _batches(images: torch.Tensor, batch: int, seed: int, epoch: int) -> DataLoader:
    """This process's minibatches of one epoch: DistributedSampler over the training set.

    The sampler's permutation is seeded by (seed, epoch); with N processes rank r
    takes every N-th index, so its k-th batch holds its share of the k-th global
    batch (``batch`` is the per-process size, global batch / N). Every image is used
    each epoch (:func:`epoch_batches`); with N processes the sampler repeats up to
    N − 1 images so that every rank has as many.
    """
    dataset = TensorDataset(images)
    sampler = DistributedSampler(dataset, num_replicas=distributed.size(), rank=distributed.rank(),
                                 shuffle=True, seed=derive_seed(seed, epoch, 1), drop_last=False)
    # one fetch per batch (tensor indexing, no per-image collate); a private generator,
    # so iterating leaves the global RNG, which draws the noise, untouched
    return DataLoader(dataset, sampler=epoch_batches(list(sampler), batch),
                      batch_size=None, generator=torch.Generator())


def _fit(model: Generator, images: torch.Tensor, config: dict[str, Any], start: int,
         out: Path, callback: Callable[[dict[str, Any]], None] | None) -> None:
    how = TrainingOptions.of(config, model)
    batch = distributed.local_batch(how.batch_size)
    if len(images) // how.batch_size == 0:
        raise ForensicsError(f"batch_size {how.batch_size} is larger than the "
                             f"{len(images)} training images")
    began: list[float] = []

    def batches(epoch: int) -> DataLoader:
        began.append(time.perf_counter())
        torch.manual_seed(derive_seed(how.seed, epoch))
        return _batches(images, batch, how.seed, epoch)

    def end_epoch(epoch: int, sums: dict[str, float], counts: dict[str, float]) -> dict[str, Any]:
        model.end_epoch(images)
        distributed.broadcast_buffers(model.nets)  # e.g. the AE's fitted prior: rank 0's copy
        means = distributed.all_mean({k: sums[k] / counts[k] for k in sums})
        record = {"epoch": epoch + 1, **means, "seconds": round(time.perf_counter() - began[-1], 3)}
        if distributed.is_main():
            save_epoch(model, out, epoch + 1, record, how.seed)
        distributed.barrier()
        return record

    loop.fit(batches, lambda batch: model.train_step(batch[0]), epochs=how.epochs, start=start,
             end_epoch=end_epoch, callback=callback)



