"""A fixed reference workload, measured beside every timed benchmark.

The machines differ up to 3× in speed from one day to the next and other jobs
may share the cores, so a benchmark's seconds mean little alone. Each timed
benchmark runs :func:`measure` in the same process and reports its seconds and
the ratio ``seconds / reference_seconds``: compare ratios across runs, not seconds.

The workload never changes with the toolkit (its networks are defined here, not
imported): 60 training steps of a small fixed DCGAN pair (G and D, batch 64,
28×28 gray) on random data, seed 0, with torch's default threads.
"""

from __future__ import annotations

import os
import time

#: bump only if the workload itself changes (ratios across versions are then not comparable)
VERSION = 1
STEPS = 60
#: the workload's seconds on the quiet 2-core reference machine (issue #13's 90 s ≈ 26 units)
QUIET_SECONDS = 3.4


def _nets():
    from torch import nn

    generator = nn.Sequential(
        nn.Linear(64, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Sigmoid())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1))
    return generator, discriminator


def measure(steps: int = STEPS) -> dict:
    """Run the workload; its wall seconds, the load average before it and its version."""
    import torch
    import torch.nn.functional as F

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    torch.manual_seed(0)
    generator, discriminator = _nets()
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(64, 1, 28, 28)
    began = time.perf_counter()
    for _ in range(steps):
        fake = generator(torch.randn(64, 64))
        d_loss = (F.binary_cross_entropy_with_logits(discriminator(real), torch.ones(64, 1))
                  + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), torch.zeros(64, 1)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), torch.ones(64, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    seconds = time.perf_counter() - began
    return {"workload": f"reference v{VERSION}: {steps} steps of a fixed DCGAN pair, batch 64, 28x28",
            "seconds": round(seconds, 3), "load_average_1m_before": load,
            "threads": torch.get_num_threads()}


def ratio(seconds: float, reference: dict) -> float:
    """``seconds`` in units of the reference workload's seconds."""
    return round(seconds / reference["seconds"], 2)


def sentence(before: dict, after: dict | None = None) -> str:
    """The workload measured before (and after) a benchmark, for its results page."""
    def one(found: dict) -> str:
        load = found.get("load_average_1m_before")
        return f"{found['seconds']} s" + (f" (load {load:.2f})" if load is not None else "")

    return (f"Reference workload ({before['workload']}): {one(before)} before"
            + (f", {one(after)} after" if after else "")
            + f"; ≈ {QUIET_SECONDS} s on the quiet reference machine. 'ratio' = seconds / the "
            "reference's seconds before: compare ratios across runs, not seconds.")


if __name__ == "__main__":
    print(measure())
