"""Matplotlib figures without a display: saving them atomically, and labelled image grids."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: pixels between the images of a grid (torchvision's ``make_grid`` padding)
PADDING = 2


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110, title: str | None = None) -> None:
    """Write ``fig`` as a PNG, atomically (``title`` also goes into the PNG's Title chunk)."""
    import matplotlib.pyplot as plt

    from forensics.atomic import write_bytes

    buffer = io.BytesIO()
    fig.tight_layout()
    metadata = {"Software": "forensics", **({"Title": title} if title else {})}
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def show_grid(ax, images, nrow: int, title: str = "") -> None:
    """Draw ``(N, C, H, W)`` images in [0, 1] as one grid on ``ax`` (``nrow`` per row)."""
    import torch
    from torchvision.utils import make_grid

    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32)).clamp(0, 1)
    grid = make_grid(tensor, nrow=nrow, padding=PADDING, pad_value=0.5).numpy()
    gray = tensor.shape[1] == 1
    ax.imshow(grid[0] if gray else grid.transpose(1, 2, 0), cmap="gray" if gray else None,
              vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def grid_figure(images, *, nrow: int, title: str, xlabel: str = "", ylabel: str = "",
                column_labels: Sequence[str] = (), row_labels: Sequence[str] = ()):
    """A figure of an image grid with its title, axis labels and a label per column / row
    (the values a traversal varies), drawn on the figure itself."""
    plt = pyplot()
    images = np.asarray(images)
    side_h, side_w = images.shape[2:]
    rows = -(-len(images) // nrow)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * nrow + 1.6), max(3.0, 0.55 * rows + 1.4)))
    show_grid(ax, images, nrow)
    ax.set_title(title, fontsize=9, wrap=True)

    def centres(count: int, side: int) -> list[float]:
        return [PADDING + k * (side + PADDING) + side / 2 - 0.5 for k in range(count)]

    if column_labels:
        ax.set_xticks(centres(len(column_labels), side_w), list(column_labels), fontsize=7,
                      rotation=0 if max(map(len, column_labels)) <= 5 else 45)
    if row_labels:
        ax.set_yticks(centres(len(row_labels), side_h), list(row_labels), fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    return fig
