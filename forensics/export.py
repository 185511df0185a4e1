"""Exporting one part of a named data set as files, so that other tools see exactly the images
the toolkit holds out (``forensics datasets export NAME --split test --out DIR``).

The folder holds ``img_000000.png`` … (8-bit PNGs, the toolkit's image convention),
``labels.csv`` (``file,label,index``: the label, ``-1`` where the set has none, and the
image's index in the whole data set) and ``manifest.json`` in the format of a synthetic
set's (:mod:`forensics.manifest`: a header, and per image its file, sha256, label and
index), so ``forensics verify`` checks it and ``forensics detect`` reads it like any folder.
The header says ``"kind": "real"`` and names no generator. The folder appears only when
complete.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from forensics import atomic, digest, provenance
from forensics.data import SPLIT_FRACTIONS, SPLIT_SEED, SPLITS, load, split_indices
from forensics.errors import ForensicsError
from forensics.images import png_bytes, to_uint8
from forensics.manifest import write_manifest

LABELS = "labels.csv"
CHUNK = 1024


def export_split(name: str, split: str, out: str | Path, *, force: bool = False,
                 root: str | Path | None = None, download: bool = False,
                 callback=None) -> dict[str, Any]:
    """Write ``split`` of data set ``name`` to ``out`` (PNGs, labels.csv, manifest.json);
    return the manifest. ``callback(k, total)`` after every ``k`` of ``total`` images written."""
    if split not in SPLITS:
        raise ForensicsError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    full = load(name, root=root, download=download)
    index = (split_indices(full.labels)[split] if split != "all"
             else range(len(full)))
    header = {
        "kind": "real", "dataset": full.name, "dataset_sha256": full.fingerprint(),
        "split": split, "split_seed": SPLIT_SEED, "split_fractions": list(SPLIT_FRACTIONS),
        "n": len(index), "image_shape": list(full.shape), "versions": provenance.versions(),
        "created": provenance.now(),
    }
    rows: list[dict[str, Any]] = []
    table = io.StringIO()
    labels = csv.writer(table, lineterminator="\n")
    labels.writerow(["file", "label", "index"])
    with atomic.staging_dir(out, force=force) as folder:
        index = list(index)
        for start in range(0, len(index), CHUNK):
            part = index[start : start + CHUNK]
            for k, image in enumerate(to_uint8(full.images[part])):
                number, source = start + k, int(part[k])
                row = {"file": f"img_{number:06d}.png", "index": source,
                       "label": int(full.labels[source])}
                data = png_bytes(image)
                (folder / row["file"]).write_bytes(data)
                row["sha256"] = provenance.sha256_bytes(data)
                rows.append(row)
                labels.writerow([row["file"], row["label"], source])
            if callback:
                callback(len(part), len(index))
        (folder / LABELS).write_text(table.getvalue(), "utf-8")
        manifest = write_manifest(folder, header, rows)
        digest.record(folder)  # every file's sha256 (labels.csv, the manifest), for `verify`
    return manifest
