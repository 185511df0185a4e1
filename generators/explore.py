"""The course's pictures for a trained run: reconstructions, latent space, traversals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from forensics import digest
from forensics.images import save_grid
from generators.base import seeded
from generators.runs import Run


def explore(run: Run, out: str | Path, *, seed: int = 0) -> list[Path]:
    """Write every figure that fits this run's generator; return their paths."""
    from forensics.atomic import staging_dir
    from forensics.data import load_split
    from forensics.paths import replaceable

    out = Path(out)
    replaceable(out, lambda name: name.endswith(".png") or name == digest.RECORD, "explore: --out")
    test = load_split(run.config["dataset"], "test", root=run.config.get("data_root"))
    x = torch.as_tensor(test.images)
    model = run.model
    names: list[str] = []
    with staging_dir(out, force=True) as staged:  # every figure or none (a full disk)

        def grid(name: str, images, nrow: int = 10, title: str = "") -> None:
            save_grid(images, staged / name, nrow=nrow, title=title)
            names.append(name)

        grid("samples.png", model.sample(100, seeded(seed, 0))[0], title="samples")
        if "reconstruct" in model.modes:
            pick = x[_one_per_digit(test.labels, 2)]
            pairs = torch.stack([pick, model.reconstruct(pick)], 1).flatten(0, 1)
            grid("reconstructions.png", pairs, nrow=10, title="real | reconstruction, in pairs")
            grid("interpolation.png", _interpolate(model, x, test.labels), nrow=10,
                 title="interpolation between two held-out digits, row by row")
        if model.has_latent_space:
            names.append(_latent_plot(model, x, test.labels, staged / "latent_space.png").name)
        for code in model.traversable_codes:
            grid(f"traverse_{code}.png", model.traverse(code, seeded(seed, 1)),
                 title=f"{model.name}: {code} varied, z fixed per row")
        digest.record(staged)  # every figure's sha256, for `forensics verify RUN`
    return [out / name for name in names]


def _one_per_digit(labels: np.ndarray, per: int = 1) -> np.ndarray:
    picks = [np.flatnonzero(labels == d)[:per] for d in np.unique(labels)]
    return np.concatenate(picks)


def _encode_mean(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        code = model.encode(x.to(model.device))
    return (code[0] if isinstance(code, tuple) else code).cpu()


def _interpolate(model, x: torch.Tensor, labels: np.ndarray, rows: int = 5) -> torch.Tensor:
    """Each row: decode the line between the codes of two held-out digits."""
    picks = _one_per_digit(labels)
    lines = []
    with torch.no_grad():
        for r in range(rows):
            a, b = picks[2 * r % len(picks)], picks[(2 * r + 1) % len(picks)]
            codes = _encode_mean(model, x[[a, b]])
            t = torch.linspace(0, 1, 10)[:, None]
            lines.append(model.decode(((1 - t) * codes[0] + t * codes[1]).to(model.device)).cpu())
    return torch.cat(lines)


def _latent_plot(model, x: torch.Tensor, labels: np.ndarray, path: Path) -> Path:
    """Posterior means coloured by digit (first two PCA axes when latent_dim > 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forensics.plots import save_figure

    mu = _encode_mean(model, x).numpy()
    axis_label = "z"
    if mu.shape[1] > 2:
        from sklearn.decomposition import PCA

        mu = PCA(2, random_state=0).fit_transform(mu)
        axis_label = "PCA of μ(x)"
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=8)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(xlabel=f"{axis_label} 1", ylabel=f"{axis_label} 2",
           title="VAE latent space of held-out digits")
    save_figure(fig, path)
    return path
