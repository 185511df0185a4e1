"""Running under ``torchrun``: PyTorch's own process group, DDP and sampler.

Nothing here invents a protocol: ``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK
and the rendezvous variables; :func:`session` joins that process group (NCCL on
CUDA, gloo on CPU), training wraps its networks in
:class:`~torch.nn.parallel.DistributedDataParallel` and shards data with
:class:`~torch.utils.data.DistributedSampler`. Without ``torchrun`` every
function here is a cheap no-op for a world of one process.

Conventions the toolkit keeps so that N processes compute what one would:

- ``batch_size`` is the *global* batch; each of N ranks takes ``batch_size / N``.
- Noise is drawn for the global batch on every rank from the same seeded RNG, and
  each rank keeps its rows (``rows(t)`` = ``t[rank::N]``, the rows that
  ``DistributedSampler`` gives the rank), so a rank's noise meets its own images.
- Only rank 0 writes files and shows progress; the others wait at barriers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from forensics.errors import ForensicsError

T = TypeVar("T")


def launched() -> bool:
    """True in a process started by ``torchrun`` (or any launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if active() else 0


def size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def backend_for(device) -> str:
    """gloo on CPUs; on CUDA, NCCL for CUDA tensors and gloo for the few CPU ones.

    The small CPU collectives (epoch losses, ``agree``) would fail on an NCCL-only
    group; PyTorch routes each tensor to the backend of its device.
    """
    return "cpu:gloo,cuda:nccl" if getattr(device, "type", str(device)) == "cuda" else "gloo"


def local_device(device):
    """The CUDA device of this process's LOCAL_RANK (one GPU per process), else ``device``."""
    import torch

    if getattr(device, "type", str(device)) == "cuda" and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ForensicsError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


@contextmanager
def session(device) -> Iterator[Any]:
    """Join torchrun's process group for the duration (no-op without torchrun).

    Yields the device this process should use. A group already started (by a
    caller or a test) is used as it is and left running.
    """
    import torch.distributed as dist

    if not launched() or active():
        yield local_device(device) if active() else device
        return
    device = local_device(device)
    try:
        dist.init_process_group(backend_for(device))
    except (RuntimeError, ValueError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise ForensicsError(f"could not join the torchrun process group ({first})") from None
    try:
        yield device
        dist.barrier()  # no rank tears down its connections while another still uses them
    finally:
        import gc

        gc.collect()  # DDP wrappers sit in reference cycles: free them while the group is up
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if active():
        dist.barrier()


def agree(problem: str | None) -> None:
    """Collective check: raise the first rank's problem on every rank, so no rank hangs.

    Call it on every rank at the same point, with ``None`` when this rank is fine.
    """
    if not active():
        if problem:
            raise ForensicsError(problem)
        return
    import torch.distributed as dist

    problems: list[str | None] = [None] * size()
    dist.all_gather_object(problems, problem)
    for index, found in enumerate(problems):
        if found:
            error = ForensicsError(found if index == 0 else f"rank {index}: {found}")
            error.reported_by_rank0 = True  # the CLI prints it once, on rank 0
            raise error


def checked(step: Callable[[], T]) -> T:
    """Run ``step`` on every rank; a ForensicsError on any rank stops all of them, in one line."""
    try:
        value = step()
    except ForensicsError as error:
        agree(str(error))
        raise  # unreachable: agree raised
    agree(None)
    return value


def main_first(step: Callable[[], T]) -> T:
    """Run ``step`` on rank 0, then on the others (a download or cache fill happens once)."""
    value = checked(step if is_main() else lambda: None)
    if size() > 1:
        value = checked(lambda: value if is_main() else step())
    return value


def local_batch(global_batch: int) -> int:
    """This rank's share of a global batch; the global batch must split evenly."""
    world = size()
    if global_batch % world:
        raise ForensicsError(f"batch_size {global_batch} does not split over {world} processes; "
                             f"use a multiple of {world}")
    return global_batch // world


def rows(tensor):
    """This rank's rows of a tensor drawn for the global batch (``t[rank::world]``)."""
    world = size()
    return tensor if world == 1 else tensor[rank()::world]


def global_noise(draw: Callable[..., Any], like):
    """Noise shaped like ``like`` (a rank's batch): this rank's rows of the global draw.

    ``draw`` is ``torch.randn`` or ``torch.rand``; with one process this is exactly
    ``draw_like(like)``, so single-process runs keep their random streams.
    """
    shape = (like.shape[0] * size(), *like.shape[1:])
    return rows(draw(shape, dtype=like.dtype, device=like.device))


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over the ranks (each rank passes its own)."""
    if not active() or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    stacked = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(stacked)
    return {k: float(v) / size() for k, v in zip(keys, stacked, strict=True)}


def broadcast_buffers(module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics, fitted priors) to every rank."""
    if not active():
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer.data, 0)


def wrap(module, device, *, compile: bool = False):
    """``module`` as training calls it: in DistributedDataParallel when a process group is up,
    then through ``torch.compile`` when ``compile``; else ``module`` itself.

    On CUDA, BatchNorm layers become SyncBatchNorm so N processes normalise with the
    statistics of the global batch; PyTorch's SyncBatchNorm is CUDA-only, so on CPU
    (gloo) each process normalises its own share of the batch, as plain DDP does.
    """
    import torch

    if not active() or not any(p.requires_grad for p in module.parameters()):
        return torch.compile(module) if compile else module
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # torch.compile may hand DDP the gradient of a one-channel conv weight with other (equally
    # valid) strides; PyTorch warns once per step that this "may impair performance"
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

    if device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        # SyncBatchNorm gives every rank the same running statistics, so DDP need not broadcast
        # buffers; it must not: a GAN's D runs two forwards (real, fake) before one backward,
        # and the broadcast before the second overwrote statistics cuDNN's backward keeps
        parallel = DistributedDataParallel(module, device_ids=[device.index], broadcast_buffers=False)
    else:
        parallel = DistributedDataParallel(module)
    return torch.compile(parallel) if compile else parallel
