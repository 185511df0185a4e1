"""Synthetic data sets: N PNGs from a trained run, with a manifest of provenance.

The output folder holds ``img_000000.png`` … and ``manifest.json``:
a header (generator, variant, run config hash, checkpoint sha256, seed, mode,
versions) and one row per image (file, sha256, codes, or the real source image
for ``reconstruct``). Each PNG also carries its provenance in a ``tEXt`` chunk
named ``forensics:provenance``. The folder appears only when complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensics import atomic, digest, provenance
from forensics.errors import ForensicsError
from forensics.images import png_bytes, to_uint8
from forensics.manifest import MANIFEST, write_manifest  # noqa: F401 (MANIFEST: re-exported)
from forensics.provenance import PROVENANCE_KEY
from generators.base import seeded
from generators.runs import WEIGHTS, Run

CHUNK = 256


def generate(run: Run, n: int, out: str | Path, *, seed: int = 0, mode: str = "sample",
             source_split: str = "test", force: bool = False, sampling: dict[str, Any] | None = None,
             callback: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write ``n`` images made by ``run`` to ``out``; return the manifest.

    ``sampling``: the model's sampling options changed for this set (e.g. a diffusion model's
    ``sampler`` and ``steps``); the header records how the images were drawn (``sampling``).
    """
    if n < 1:
        raise ForensicsError("--n must be a positive number of images")
    if mode not in run.model.modes:
        raise ForensicsError(
            f"{run.config['generator']} cannot --mode {mode}; it supports {', '.join(run.model.modes)}"
        )
    if sampling:
        run.model.set_sampling(**sampling)
    header = {
        "generator": run.config["generator"],
        "variant": type(run.model).variant_of(run.config["options"]), "mode": mode,
        "run": str(run.path), "run_config_hash": provenance.config_hash(run.config),
        "checkpoint_sha256": provenance.sha256_file(run.path / WEIGHTS),
        "dataset": run.config["dataset"], "seed": seed, "n": n, "sampling": run.model.sampling(),
        "image_shape": list(run.model.image_shape), "versions": provenance.versions(),
        "created": provenance.now(),
    }
    sources = _sources(run, n, source_split) if mode == "reconstruct" else None
    rows: list[dict[str, Any]] = []
    with atomic.staging_dir(out, force=force) as folder:
        rng = seeded(seed, 0)
        for start in range(0, n, CHUNK):
            count = min(CHUNK, n - start)
            if sources is None:
                images, codes = run.model.sample(count, rng)
            else:
                index = sources["index"][start : start + count]
                images = run.model.reconstruct(torch.as_tensor(sources["images"][index]))
                codes = {}
            for i, image in enumerate(to_uint8(images.numpy())):
                row = {"file": f"img_{start + i:06d}.png", "index": start + i}
                for key, value in codes.items():
                    row[key] = np.asarray(value[i]).tolist()
                if sources is not None:
                    row["source"] = {"dataset": run.config["dataset"], "split": source_split,
                                     "index": int(sources["index"][start + i])}
                tag = {"generator": header["generator"], "variant": header["variant"],
                       "run_config_hash": header["run_config_hash"], "seed": seed,
                       "index": start + i}
                data = png_bytes(image, {PROVENANCE_KEY: json.dumps(tag, sort_keys=True)})
                (folder / row["file"]).write_bytes(data)
                row["sha256"] = provenance.sha256_bytes(data)
                rows.append(row)
            if callback:
                callback(count)
        manifest = write_manifest(folder, header, rows)
        digest.record(folder)  # every file's sha256 (the manifest's too), for `forensics verify`
    return manifest


def _sources(run: Run, n: int, split: str) -> dict[str, np.ndarray]:
    """The first ``n`` real images of ``split`` and their indices in the full data set."""
    from forensics.data import SPLITS, load, split_indices

    if split not in SPLITS[:3]:
        raise ForensicsError(f"unknown split {split!r}; choose train, val or test")
    full = load(run.config["dataset"], root=run.config.get("data_root"))
    index = split_indices(full.labels)[split]
    if n > len(index):
        raise ForensicsError(
            f"--mode reconstruct re-renders real {split} images; {split} has {len(index)}, "
            f"--n {n} is more"
        )
    return {"images": full.images, "index": index[:n]}
