"""Saving matplotlib figures atomically, without a display."""

from __future__ import annotations

import io
from pathlib import Path


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    import matplotlib.pyplot as plt

    from forensics.atomic import write_bytes

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "forensics"})
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
