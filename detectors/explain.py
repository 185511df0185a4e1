"""``forensics detect --explain``: one figure per image showing why it was scored so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forensics.measures import radial_spectrum


def _real_reference(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean and spread of the 1-D spectrum of the real training data a detector saw."""
    from forensics.data import load_split
    from forensics.errors import ForensicsError

    try:
        real = load_split(name, "train").images
    except ForensicsError:  # a folder data set that moved: fall back to the embedded data
        name, real = "mnist5k", load_split("mnist5k", "train").images
    spectra = radial_spectrum(real)
    return spectra.mean(0), spectra.std(0), name


def explain_title(record: dict[str, Any]) -> str:
    """The figure's title: score against threshold (and the calibrated P(fake)), then the verdict."""
    if record["p_fake"] is None:  # out of the detector's domain
        return "out of domain: not judged"
    if record["threshold"] is None:  # several detectors
        votes = sum(v == "fake" for v in record["verdicts"].values())
        return f"{votes} of {len(record['verdicts'])} say fake ({record['combine']}) → {record['verdict']}"
    title = f"score {record['p_fake']:.4g} vs threshold {record['threshold']:.4g}"
    if record["probability"] is not None:
        title += f", P(fake) {record['probability']:.3f}"
    return f"{title} → {record['verdict']}"


class Explanations:
    """Writes ``out/<n>_<file stem>.png`` for every scored image, as the entries of a scan come."""

    def __init__(self, detectors: dict[str, Any], out: Path, real: str = "mnist5k") -> None:
        import matplotlib

        matplotlib.use("Agg")
        self.detectors, self.out = detectors, out
        self.mean, self.std, self.real_name = _real_reference(real)
        self.salient = next((d for d in detectors.values() if d.has_saliency), None)
        self.count = 0
        out.mkdir(parents=True, exist_ok=True)

    def add(self, entry) -> None:
        """Draw the figure of one entry of :func:`detectors.scan.scan` (skipped files have none)."""
        import matplotlib.pyplot as plt

        from forensics.images import conform, read_image, to_float
        from forensics.plots import save_figure

        if entry.record is None:
            return
        record, salient, mean, std = entry.record, self.salient, self.mean, self.std
        shape = next(iter(self.detectors.values())).input_shape_
        raw = read_image(entry.path)
        image = to_float(conform(raw, shape[1], shape[0])[None])
        panels = 3 if salient is not None else 2
        fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.4))
        axes[0].imshow(image[0].transpose(1, 2, 0).squeeze(), cmap="gray", vmin=0, vmax=1)
        axes[0].set(title=explain_title(record))
        axes[0].axis("off")
        spectrum = radial_spectrum(image)[0]
        bins = np.arange(len(spectrum))
        axes[1].fill_between(bins, mean - 2 * std, mean + 2 * std, alpha=0.3,
                             label=f"real {self.real_name} ±2 sd")
        axes[1].plot(bins, mean, "--", label="real mean")
        axes[1].plot(bins, spectrum, label="this image")
        axes[1].set(title="1-D power spectrum", xlabel="radial frequency bin", ylabel="log power")
        axes[1].legend(fontsize=7)
        if salient is not None:
            own = salient.input_shape_  # the saliency detector may see another shape
            axes[2].imshow(salient.saliency(to_float(conform(raw, own[1], own[0])[None]))[0],
                           cmap="inferno")
            axes[2].set(title=f"saliency |∂logit/∂x| ({salient.name})")
            axes[2].axis("off")
        save_figure(fig, self.out / f"{self.count:05d}_{Path(record['file']).stem[:60]}.png")
        self.count += 1

    def close(self) -> None:
        """Nothing to finish: each figure is written when its entry comes."""
