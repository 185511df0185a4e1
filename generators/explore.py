"""The course's pictures for a trained run: samples, reconstructions, interpolations, the
latent space and code traversals, each a figure with its title, axis labels and the values
it varies drawn on it.

Which figures a run gets follows its class's capabilities (``modes``, ``has_latent_space``,
``interpolates_prior``, ``traversable_codes``, ``has_trajectory``), so a new generator gets the figures its
class declares without a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensics import digest
from forensics.plots import grid_figure, save_figure
from generators.base import seeded
from generators.runs import Run

#: code values along a continuous code's traversal (InfoGAN's c2, c3 train on U[−1, 1])
SPAN = 2.0
STEPS = 10


def explore(run: Run, out: str | Path, *, seed: int = 0,
            sampling: dict[str, Any] | None = None) -> list[Path]:
    """Write every figure that fits this run's generator; return their paths.

    ``sampling``: the model's sampling options changed for these figures (as ``generate``'s).
    """
    from forensics.atomic import staging_dir
    from forensics.paths import replaceable

    if sampling:
        run.model.set_sampling(**sampling)
    out = Path(out)
    replaceable(out, lambda name: name.endswith(".png") or name == digest.RECORD, "explore: --out")
    names: list[str] = []
    with staging_dir(out, force=True) as staged:  # every figure or none (a full disk)
        for name, title, fig in figures(run, seed=seed):
            save_figure(fig, staged / name, title=title)
            names.append(name)
        digest.record(staged)  # every figure's sha256, for `forensics verify RUN`
    return [out / name for name in names]


def figures(run: Run, *, seed: int = 0) -> Iterator[tuple[str, str, object]]:
    """``(file name, title, matplotlib figure)`` of every figure this run's generator has."""
    from forensics.data import load_split

    test = load_split(run.config["dataset"], "test", root=run.config.get("data_root"))
    x = torch.as_tensor(test.images)
    model = run.model
    label = f"{model.name} ({run.path.name})"

    title = f"{label}: 100 samples, each from a fresh draw of the generator's input"
    yield "samples.png", title, grid_figure(model.sample(100, seeded(seed, 0))[0], nrow=10, title=title)
    if "reconstruct" in model.modes:
        pick = _one_per_digit(test.labels, 2)
        pairs = torch.stack([x[pick], model.reconstruct(x[pick])], 1).flatten(0, 1)
        title = f"{label}: held-out test digits (real) beside their reconstructions"
        yield "reconstructions.png", title, grid_figure(
            pairs, nrow=4, title=title, column_labels=["real", "recon.", "real", "recon."],
            row_labels=[str(d) for d in test.labels[pick[::2]]], ylabel="digit")
        picks = _one_per_digit(test.labels)
        title = (f"{label}: decoding the straight line between the codes of two held-out "
                 "digits, h = (1 − t)·h(a) + t·h(b)")
        yield "interpolation.png", title, grid_figure(
            _interpolate(model, x, picks), nrow=STEPS, title=title,
            column_labels=[f"{t:.2g}" for t in np.linspace(0, 1, STEPS)],
            row_labels=[f"{test.labels[picks[2 * r % len(picks)]]}→"
                        f"{test.labels[picks[(2 * r + 1) % len(picks)]]}" for r in range(5)],
            xlabel="t", ylabel="digit a → digit b")
    if model.interpolates_prior:
        title = (f"{label}: G along the straight line between two random draws of its input "
                 "(a → b, one pair per row)")
        yield "latent_interpolation.png", title, grid_figure(
            model.interpolate_prior(seeded(seed, 2), rows=5, steps=STEPS), nrow=STEPS, title=title,
            column_labels=[f"{t:.2g}" for t in np.linspace(0, 1, STEPS)],
            row_labels=[f"pair {r + 1}" for r in range(5)],
            xlabel="t in (1 − t)·a + t·b", ylabel="pair of draws")
    if model.has_latent_space:
        yield "latent_space.png", f"{label}: latent space", _latent_plot(model, x, test.labels, label)
    for code in model.traversable_codes:
        yield (f"traverse_{code}.png", *_traversal(model, code, seeded(seed, 1), label))
    if model.has_trajectory:
        yield ("trajectory.png", *_trajectory(model, seeded(seed, 2), label))


def _trajectory(model, rng: torch.Generator, label: str, rows: int = 6) -> tuple[str, object]:
    """x_t along the reverse chain of a few samples: one row each, t falling to the right."""
    kept, states = model.trajectory(rows, rng, keep=STEPS)
    how = model.sampling()
    title = (f"{label}: the denoising trajectory x_t, from x_T ~ N(0, I) to x_0, "
             f"{how['sampler'].upper()} in {how['steps']} steps; one sample per row")
    return title, grid_figure(states.transpose(0, 1).flatten(0, 1), nrow=len(kept), title=title,
                              column_labels=[f"t={t}" for _, t in kept],
                              row_labels=[f"{i + 1}" for i in range(rows)],
                              xlabel="t (" + ", ".join(str(k) for k, _ in kept) + " reverse steps taken)",
                              ylabel="sample")


def _traversal(model, code: str, rng: torch.Generator, label: str) -> tuple[str, object]:
    """InfoGAN-style traversal of one code: what its rows and columns hold, as ``traverse``
    makes them."""
    images = model.traverse(code, rng)
    draws = [f"draw {k + 1}" for k in range(STEPS)]
    if code == "c1":
        title = (f"{label}: categorical code c1 = 0 … 9, one value per row; each column is one "
                 "draw of the noise z and the continuous codes c2, c3, the same down the column")
        return title, grid_figure(images, nrow=STEPS, title=title, column_labels=draws,
                                  row_labels=[str(c) for c in range(len(images) // STEPS)],
                                  xlabel="draw of z, c2, c3", ylabel="c1")
    others = ", ".join(c for c in model.traversable_codes if c != code)
    values = np.linspace(-SPAN, SPAN, STEPS)
    title = (f"{label}: continuous code {code} from −{SPAN:g} to {SPAN:g} along each row (trained "
             f"on −1 … 1); each row is one draw of z and {others}, the same along the row")
    return title, grid_figure(images, nrow=STEPS, title=title,
                              column_labels=[f"{v:.2g}" for v in values],
                              row_labels=draws[: len(images) // STEPS],
                              xlabel=code, ylabel=f"draw of z, {others}")


def _one_per_digit(labels: np.ndarray, per: int = 1) -> np.ndarray:
    picks = [np.flatnonzero(labels == d)[:per] for d in np.unique(labels)]
    return np.concatenate(picks)


def _encode_mean(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        code = model.encode(x.to(model.device))
    return (code[0] if isinstance(code, tuple) else code).cpu()


def _interpolate(model, x: torch.Tensor, picks: np.ndarray, rows: int = 5) -> torch.Tensor:
    """Each row: decode the line between the codes of two held-out digits."""
    lines = []
    with torch.no_grad():
        for r in range(rows):
            a, b = picks[2 * r % len(picks)], picks[(2 * r + 1) % len(picks)]
            codes = _encode_mean(model, x[[a, b]])
            t = torch.linspace(0, 1, STEPS)[:, None]
            lines.append(model.decode(((1 - t) * codes[0] + t * codes[1]).to(model.device)).cpu())
    return torch.cat(lines)


def _latent_plot(model, x: torch.Tensor, labels: np.ndarray, label: str):
    """Posterior means coloured by digit (first two PCA axes when latent_dim > 2)."""
    from forensics.plots import pyplot

    mu = _encode_mean(model, x).numpy()
    axis_label = "z"
    if mu.shape[1] > 2:
        from sklearn.decomposition import PCA

        mu = PCA(2, random_state=0).fit_transform(mu)
        axis_label = "PCA of μ(x)"
    fig, ax = pyplot().subplots(figsize=(6, 5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=8)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(xlabel=f"{axis_label} 1", ylabel=f"{axis_label} 2",
           title=f"{label}: posterior means μ(x) of held-out digits")
    return fig
