"""Audit a folder of synthetic images against the real data set it imitates.

:func:`run_audit` reads every image of a folder (unreadable files are skipped
and listed), conforms it to the real data's shape and measures:

* **quality** — Fréchet distance and KID on the shipped digit classifier's
  128-d features (a *digit-domain* metric, not Inception FID), fake vs real
  train, beside the real-vs-real floor (held-out test vs train, same n);
* **diversity / fidelity** — precision, recall, density, coverage (k = 5) in
  the same feature space against a real train subsample of the fake set's size;
* **memorisation** — each image's pixel-L2 distance to its nearest training
  image, against held-out test images' distances; Meehan et al.'s Z_U and the
  share of near-copies;
* **mode coverage** — the classifier's digit histogram;
* **codes** — for InfoGAN folders (``manifest.json`` rows with ``c1``): how
  ``c1`` agrees with the digit and how ``c2``, ``c3`` move slant and stroke width;
* **spectrum** — the mean azimuthally averaged log power spectrum vs real.

Results go to ``audit.json``, ``audit.md``, a self-contained ``audit.html``
and three plots, all written atomically. The library stays quiet: progress is
reported through ``callback({"stage": str, "done": int, "total": int})``.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from forensics import metrics
from forensics.atomic import jsonable
from forensics.errors import ForensicsError
from forensics.measures import code_agreement, code_properties, radial_spectrum

NEAREST_PAIRS = 10
PRDC_K = 5
PRDC_CAP = 2000
KID_SUBSETS = 50
KID_SUBSET_SIZE = 1000
RARE_SHARE = 0.02
CONFIDENT = 0.9
NEAR_COPY_PERCENTILE = 1.0
#: the libraries the audit's numbers and plots depend on besides the toolkit's own
AUDIT_PACKAGES = ("scipy", "prdc", "matplotlib")
PLOTS = ("digit_histogram.png", "spectrum.png", "nearest_pairs.png")
DOMAIN_NOTE = (
    "Fréchet distance, KID and precision/recall/density/coverage are computed on the "
    "shipped digit classifier's 128-d features: a digit-domain metric, not Inception FID; "
    "compare them with the real-vs-real floor, not with published FID values."
)

Callback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class _Folder:
    images: np.ndarray  # (N, C, H, W) float32 in [0, 1]
    files: list[str]  # paths relative to the audited folder
    hashes: list[str]
    skipped: list[str]
    passed_over: dict  # forensics.images.PassedOver.to_dict(): what the walk did not read


@dataclass(frozen=True)
class _Reference:
    train: np.ndarray
    test: np.ndarray
    train_features: np.ndarray
    test_features: np.ndarray
    test_proba: np.ndarray


def run_audit(folder: Path, real: str = "mnist5k", out: Path | None = None, seed: int = 0,
              callback: Callback | None = None) -> dict:
    """Audit the images under ``folder`` against data set ``real``; return every number.

    Writes ``audit.json``, ``audit.md``, ``audit.html`` and the plots
    :data:`PLOTS` to ``out`` (default :func:`output_folder`: outside ``folder``, so that
    ``detect`` and ``verify`` of the folder never meet the audit's plots; an ``out``
    inside ``folder`` is refused). Raises :class:`ForensicsError` when ``folder`` is not a
    folder or holds fewer than two readable images, or ``out`` cannot be written.
    """
    started = time.perf_counter()
    folder = Path(folder)
    out = output_folder(folder, out)

    def emit(stage: str, done: int = 0, total: int = 1) -> None:
        if callback is not None:
            callback({"stage": stage, "done": done, "total": total})

    emit("reference")
    ref = _reference(real)
    shape = ref.train.shape[1:]
    loaded = _read_folder(folder, shape, emit)
    if len(loaded.images) < 2:
        raise ForensicsError(
            f"audit: {folder} holds {len(loaded.images)} readable image(s); at least 2 are needed"
        )
    rng = np.random.default_rng(seed)
    classifier = _classifier()

    emit("features")
    fake_features = classifier.features(loaded.images)
    fake_proba = classifier.predict_proba(loaded.images)

    emit("quality")
    quality = _quality(fake_features, ref, rng, seed)
    emit("diversity")
    diversity = _diversity(fake_features, ref, rng)
    emit("memorisation")
    memorisation, pairs = _memorisation(loaded, ref)
    emit("modes")
    modes = {"generated": _modes(fake_proba), "real_test": _modes(ref.test_proba),
             "rare_share": RARE_SHARE, "confidence": CONFIDENT}
    emit("codes")
    codes = _codes(folder, loaded, fake_proba.argmax(1))
    emit("spectrum")
    spectrum, curves = _spectrum(loaded.images, ref, rng)

    result: dict[str, Any] = {
        "audit": {
            "folder": str(folder), "real": real, "seed": seed, "out": str(out),
            "image_shape": list(shape), "n_images": len(loaded.images),
            "n_skipped": len(loaded.skipped), "skipped": loaded.skipped,
            "passed_over": loaded.passed_over,
            "n_real_train": len(ref.train), "n_real_test": len(ref.test),
            "inputs_sha256": _inputs_hash(loaded.hashes), "note": DOMAIN_NOTE,
        },
        "quality": quality, "diversity": diversity, "memorisation": memorisation,
        "modes": modes, "codes": codes, "spectrum": spectrum,
    }
    result["flags"] = _flags(result)

    emit("report")
    from forensics import atomic, provenance
    from forensics.plots import save_figure

    figures = {
        "digit_histogram.png": _plot_histogram(modes),
        "spectrum.png": _plot_spectrum(curves, spectrum),
        "nearest_pairs.png": _plot_pairs(pairs),
    }
    plots = {}
    with atomic.staging_dir(out, force=True) as staged:  # the whole report or none of it
        for name, fig in figures.items():
            save_figure(fig, staged / name)
            plots[name] = (staged / name).read_bytes()  # embedded in the self-contained HTML
        result["audit"].update(
            versions=provenance.versions(AUDIT_PACKAGES), created=provenance.now(),
            plots=list(plots), seconds=round(time.perf_counter() - started, 3),
        )
        result = jsonable(result)
        atomic.write_json(staged / "audit.json", result)
        atomic.write_text(staged / "audit.md", _markdown(result))
        atomic.write_text(staged / "audit.html", _html(result, plots))
    emit("done", 1, 1)
    return result


# ---------------------------------------------------------------------------
# Inputs


@lru_cache(maxsize=1)
def _classifier():
    from forensics.classifier import load_digit_classifier

    return load_digit_classifier()


def _reference(real: str) -> _Reference:
    # a folder data set can change between calls; named ones cannot
    return _load_reference(real) if real.startswith("folder:") else _cached_reference(real)


@lru_cache(maxsize=2)
def _cached_reference(real: str) -> _Reference:
    return _load_reference(real)


def _load_reference(real: str) -> _Reference:
    from forensics.data import load_split

    train, test = load_split(real, "train"), load_split(real, "test")
    if train.images.shape[2] != train.images.shape[3]:
        raise ForensicsError(f"audit: {real} images are not square {train.images.shape[1:]}")
    classifier = _classifier()
    return _Reference(train.images, test.images, classifier.features(train.images),
                      classifier.features(test.images), classifier.predict_proba(test.images))


def output_folder(folder: Path, out: Path | None) -> Path:
    """Where the audit of ``folder`` goes: ``out``, else ``audits/<folder's name>`` in the
    working folder; refused (one line) inside ``folder`` or where it cannot be written."""
    import os

    from forensics.paths import check_writable, refuse_inside, replaceable

    if not folder.is_dir():
        raise ForensicsError(f"audit: {folder} is not a folder")
    out = Path(out) if out is not None else Path("audits") / (
        Path(os.path.abspath(folder)).name or "root")
    refuse_inside(out, folder, "audit: --out")
    check_writable(out)
    replaceable(out, lambda name: name in (*PLOTS, "audit.json", "audit.md", "audit.html"),
                "audit: --out")
    return out


def _read_folder(folder: Path, shape: tuple[int, ...],
                 emit: Callable[[str, int, int], None]) -> _Folder:
    """Read and conform every image under ``folder`` (the walk of ``detect``: links are
    not followed, loops, FIFOs and bad files are skipped with a reason)."""
    from forensics.batches import Problems, decoded
    from forensics.images import PassedOver, conform, iter_image_files, to_float
    from forensics.provenance import sha256_file

    passed_over = PassedOver()
    found = list(iter_image_files([folder], passed_over))

    def counted():
        for i, entry in enumerate(found):
            if i % 100 == 0:
                emit("read", i, len(found))
            yield entry

    channels, size = shape[0], shape[1]
    images, files, hashes, problems = [], [], [], Problems()
    for path, image in decoded(counted(), problems):
        try:
            digest = sha256_file(path)
        except OSError as error:  # vanished between decoding and hashing
            problems.lines.append(f"{path}: {error.strerror or error}")
            continue
        images.append(conform(image, size, channels))
        hashes.append(digest)
        files.append(path.relative_to(folder).as_posix())
    emit("read", len(found), len(found))
    batch = to_float(np.stack(images)) if images else np.zeros((0, *shape), np.float32)
    return _Folder(batch, files, hashes, problems.lines, passed_over.to_dict())


def _inputs_hash(hashes: list[str]) -> str:
    from forensics.provenance import sha256_bytes

    return sha256_bytes("\n".join(sorted(hashes)).encode())


def _subsample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)


# ---------------------------------------------------------------------------
# Measurements


def _quality(fake: np.ndarray, ref: _Reference, rng: np.random.Generator, seed: int) -> dict:
    """FD and KID vs real train, fake and held-out test both subsampled to the same n."""
    n = min(len(fake), len(ref.test))
    fake_sub = fake[_subsample(rng, len(fake), n)]
    test_sub = ref.test_features[_subsample(rng, len(ref.test), n)]
    size = min(KID_SUBSET_SIZE, n)
    kid = metrics.kernel_inception_distance(fake_sub, ref.train_features, KID_SUBSETS, size, seed)
    kid_floor = metrics.kernel_inception_distance(test_sub, ref.train_features, KID_SUBSETS,
                                                  size, seed)
    return {
        "feature_space": "digit classifier, 128-d penultimate layer (digit-domain, not Inception)",
        "reference": "real train", "n": n, "kid_subsets": KID_SUBSETS, "kid_subset_size": size,
        "fd": metrics.frechet_distance(fake_sub, ref.train_features),
        "fd_floor": metrics.frechet_distance(test_sub, ref.train_features),
        "fd_all_generated": metrics.frechet_distance(fake, ref.train_features),
        "n_all_generated": len(fake),
        "kid": kid[0], "kid_std": kid[1], "kid_floor": kid_floor[0], "kid_floor_std": kid_floor[1],
    }


def _diversity(fake: np.ndarray, ref: _Reference, rng: np.random.Generator) -> dict:
    """PRDC vs a real train subsample of the fake set's size (capped), and the test floor."""
    m = min(len(fake), PRDC_CAP, len(ref.train_features))
    n_floor = min(m, len(ref.test_features))
    result: dict[str, Any] = {"k": PRDC_K, "n": m, "n_floor": n_floor,
                              "reference": "real train subsample of the same size"}
    if min(m, n_floor) <= PRDC_K:
        result["note"] = f"too few images for k={PRDC_K}"
        return result
    train = ref.train_features
    result["generated"] = metrics.precision_recall_density_coverage(
        train[_subsample(rng, len(train), m)], fake[_subsample(rng, len(fake), m)], PRDC_K)
    result["real_test"] = metrics.precision_recall_density_coverage(
        train[_subsample(rng, len(train), n_floor)],
        ref.test_features[_subsample(rng, len(ref.test_features), n_floor)], PRDC_K)
    return result


def _memorisation(loaded: _Folder, ref: _Reference) -> tuple[dict, dict]:
    gen_d, gen_i = metrics.nearest_neighbour_distances(loaded.images, ref.train)
    test_d, _ = metrics.nearest_neighbour_distances(ref.test, ref.train)
    threshold = float(np.percentile(test_d, NEAR_COPY_PERCENTILE))
    closest = np.argsort(gen_d, kind="stable")[:NEAREST_PAIRS]
    pairs = [{"file": loaded.files[j], "train_index": int(gen_i[j]), "distance": float(gen_d[j])}
             for j in closest]
    quantiles = (0.0, 0.01, 0.1, 0.5)
    result = {
        "space": "pixel L2 on flattened images in [0, 1]", "reference": "real train",
        "zu": metrics.memorisation_zu(gen_d, test_d),
        "zu_note": "Meehan et al. 2020 Z_U, simple (non-cell-partitioned) variant; "
                   "negative = generated closer to train than held-out real data",
        "near_copy_threshold": threshold,
        "near_copy_rule": f"NN distance below the {NEAR_COPY_PERCENTILE:g}st percentile of "
                          "held-out test→train NN distances",
        "near_copy_share": float(np.mean(gen_d < threshold)),
        "generated_nn_quantiles": {str(q): float(np.quantile(gen_d, q)) for q in quantiles},
        "test_nn_quantiles": {str(q): float(np.quantile(test_d, q)) for q in quantiles},
        "closest_pairs": pairs,
    }
    plot = {"generated": loaded.images[closest], "train": ref.train[gen_i[closest]],
            "distances": gen_d[closest], "files": [loaded.files[j] for j in closest]}
    return result, plot


def _modes(proba: np.ndarray) -> dict:
    classes = proba.shape[1]
    counts = np.bincount(proba.argmax(1), minlength=classes)
    share = counts / counts.sum()
    present = share[share > 0]
    return {
        "counts": counts.tolist(), "share": share.tolist(),
        "missing": np.flatnonzero(counts == 0).tolist(),
        "rare": np.flatnonzero((counts > 0) & (share < RARE_SHARE)).tolist(),
        "kl_to_uniform": float(np.sum(present * np.log(present * classes))),
        "confident_share": float(np.mean(proba.max(1) >= CONFIDENT)),
    }


def _codes(folder: Path, loaded: _Folder, digits: np.ndarray) -> dict | None:
    """InfoGAN code agreement, when ``manifest.json`` rows carry ``c1``."""
    from forensics.manifest import MANIFEST, read_manifest

    if not (folder / MANIFEST).is_file():
        return None
    try:
        by_file = read_manifest(folder).by_file()
    except ForensicsError as error:
        return {"note": f"manifest.json unreadable: {error}"}
    position = {name: i for i, name in enumerate(loaded.files)}
    hashes_differ = sum(1 for name, row in by_file.items() if name in position
                        and row.get("sha256") not in (None, loaded.hashes[position[name]]))
    matched = [(position[name], row) for name, row in by_file.items()
               if name in position and isinstance(row.get("c1"), int)]
    result: dict[str, Any] = {"manifest_rows": len(by_file), "matched": len(matched),
                              "sha256_mismatches": hashes_differ}
    if len(matched) < 2:
        result["note"] = "no manifest rows with c1 codes match the images read"
        return result
    index = np.array([i for i, _ in matched])
    c1 = np.array([row["c1"] for _, row in matched])
    result.update(code_agreement(c1, digits[index]))
    cont = [row.get("c_cont") for _, row in matched]
    if all(isinstance(c, list) and c for c in cont) and len({len(c) for c in cont}) == 1:
        result["continuous"] = code_properties(np.asarray(cont, dtype=np.float64),
                                                loaded.images[index])
    return result


def _spectrum(fake: np.ndarray, ref: _Reference, rng: np.random.Generator) -> tuple[dict, dict]:
    test = radial_spectrum(ref.test).mean(0)
    generated = radial_spectrum(fake).mean(0)
    train = radial_spectrum(ref.train[_subsample(rng, len(ref.train), len(ref.test))]).mean(0)
    size = min(fake.shape[2:])
    result = {
        "measure": ("L2 distance between mean azimuthally averaged log power spectra "
                    "(forensics.measures.radial_spectrum, natural log)"),
        "l2": float(np.linalg.norm(generated - test)),
        "l2_floor": float(np.linalg.norm(train - test)),
        "frequency": (np.arange(len(test)) / size).tolist(),
        "generated": generated.tolist(), "real_test": test.tolist(),
    }
    return result, {"frequency": np.arange(len(test)) / size, "generated": generated,
                    "real_test": test, "real_train": train}


def _flags(result: dict) -> list[str]:
    """Plain-language warnings; each rule is written in its message."""
    flags = []
    mem, quality, modes = result["memorisation"], result["quality"], result["modes"]["generated"]
    if mem["near_copy_share"] > 0.05:
        flags.append(f"memorisation: {mem['near_copy_share']:.0%} of images are near-copies of "
                     "training images (held-out real data: 1% by construction)")
    if mem["zu"] < -3:
        flags.append(f"memorisation: Z_U = {mem['zu']:.1f} < -3, generated images sit closer to "
                     "the training set than held-out real images")
    if modes["missing"]:
        flags.append(f"missing digits: no image classified as digit(s) {modes['missing']}")
    if modes["rare"]:
        flags.append(f"rare digits: digit(s) {modes['rare']} made by fewer than {RARE_SHARE:.0%} "
                     "of images each (uniform: 10 %)")
    if quality["fd"] > 2 * quality["fd_floor"] + 1:
        flags.append(f"quality: Fréchet distance {quality['fd']:.2f} is over twice the "
                     f"real-vs-real floor {quality['fd_floor']:.2f}")
    if result["audit"]["n_skipped"]:
        flags.append(f"{result['audit']['n_skipped']} file(s) skipped as unreadable")
    return flags


# ---------------------------------------------------------------------------
# Plots


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _plot_histogram(modes: dict):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    digits = np.arange(len(modes["generated"]["share"]))
    ax.bar(digits - 0.2, modes["generated"]["share"], 0.4, label="generated")
    ax.bar(digits + 0.2, modes["real_test"]["share"], 0.4, label="real test")
    ax.axhline(1 / len(digits), color="gray", lw=0.8, ls="--", label=f"uniform ({1 / len(digits):g})")
    ax.axhline(modes["rare_share"], color="orange", lw=0.8, ls=":",
               label=f"rare below {modes['rare_share']:g}")
    for digit in modes["generated"]["missing"]:
        ax.text(digit, 0.005, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="red")
    for digit in modes["generated"]["rare"]:
        ax.text(digit, 0.005, "rare", rotation=90, ha="center", va="bottom", fontsize=7, color="orange")
    ax.set(xticks=digits, xlabel="digit (classifier argmax)", ylabel="share of images",
           title="Digit histogram (missing: no image; rare: under the dotted line)")
    ax.legend(fontsize=8)
    return fig


def _plot_spectrum(curves: dict, spectrum: dict):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(curves["frequency"], curves["real_test"], label="real test")
    ax.plot(curves["frequency"], curves["real_train"], ls=":", label="real train (floor)")
    ax.plot(curves["frequency"], curves["generated"], label="generated")
    ax.set(xlabel="spatial frequency (cycles / pixel)", ylabel="mean log power (ln)",
           title=f"Azimuthal power spectrum (L2 {spectrum['l2']:.3f}, "
                 f"floor {spectrum['l2_floor']:.3f})")
    ax.legend(fontsize=8)
    return fig


def _plot_pairs(pairs: dict):
    plt = _plt()
    count = max(len(pairs["distances"]), 1)
    fig, axes = plt.subplots(2, count, figsize=(1.3 * count, 3.0), squeeze=False)
    for j in range(count):
        for row, key in enumerate(("generated", "train")):
            ax = axes[row, j]
            ax.axis("off")
            if j >= len(pairs["distances"]):
                continue
            image = np.asarray(pairs[key][j]).transpose(1, 2, 0)
            ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray",
                      vmin=0, vmax=1)
            if row == 0:
                ax.set_title(f"d={pairs['distances'][j]:.2f}", fontsize=8)
    axes[0, 0].text(-0.1, 0.5, "generated", transform=axes[0, 0].transAxes, rotation=90,
                    ha="right", va="center", fontsize=8)
    axes[1, 0].text(-0.1, 0.5, "nearest train", transform=axes[1, 0].transAxes, rotation=90,
                    ha="right", va="center", fontsize=8)
    fig.suptitle("Closest generated / training pairs (d: pixel L2, √Σ(x − y)² over [0, 1] pixels)",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Reports


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


#: how to read each section: its units, its scale and its chance level (printed under it)
NOTES = {
    "Quality": "Fréchet distance: distance between Gaussians fitted to the classifier's 128-d "
               "features (squared feature units; 0 = same mean and covariance). KID: unbiased "
               "MMD² with the kernel k(x, y) = (x·y / 128 + 1)³ on the same features, mean ± std "
               "over {subsets} subsets of {size} images (0 = same distribution; it can dip below "
               "0 by chance). Both are only comparable with the real-vs-real floor beside them.",
    "Diversity": "Each in [0, 1] except density (around 1 for matching sets, can exceed 1): "
                 "precision = share of generated images inside the real manifold, recall = share "
                 "of real images inside the generated one, coverage = share of real images with a "
                 "generated image among their k nearest neighbours.",
    "Memorisation": "Distances are pixel L2, √Σ(x − y)² over images in [0, 1]. A near-copy is a "
                    "generated image closer to its nearest training image than {pct:g} % of "
                    "held-out real test images are to theirs (threshold {threshold:.3g}); so "
                    "{pct:g} % of held-out real images are near-copies by construction, and that "
                    "is the share to compare with. Z_U ≈ 0 for a generator that does not copy; "
                    "below −3 it sits closer to the training images than unseen real data does.",
    "Mode coverage": "Missing digits: no image at all is classified as that digit (a mode the "
                     "generator never makes). Rare digits: made, but by fewer than {rare:.0%} of "
                     "images (uniform: 10 % each). KL to uniform is 0 for a uniform histogram and "
                     "ln 10 ≈ 2.30 nats when every image is one digit.",
    "InfoGAN codes": "c1 accuracy: the share of images whose c1, after the best one-to-one "
                     "matching of the 10 c1 values to the 10 digits (Hungarian), equals the "
                     "classifier's digit; chance level 0.1 (an unrelated c1 scores slightly above "
                     "0.1 on a finite sample, the matching picking the best assignment). NMI: 0 = "
                     "independent, 1 = c1 determines the digit. Spearman ρ in [−1, 1]: 0 = no "
                     "monotone relation between the code and the property.",
    "Spectrum": "L2 distance between the mean azimuthally averaged log power spectra (natural "
                "log, one value per spatial frequency bin); the floor is what real train vs real "
                "test gives.",
}


def _note(title: str, result: dict) -> str:
    """The reading note of the section ``title`` (see :data:`NOTES`)."""
    key = next((k for k in NOTES if title.startswith(k)), None)
    if key is None:
        return ""
    q, m = result["quality"], result["memorisation"]
    return NOTES[key].format(subsets=q.get("kid_subsets", KID_SUBSETS),
                             size=q.get("kid_subset_size", KID_SUBSET_SIZE),
                             pct=NEAR_COPY_PERCENTILE, threshold=m.get("near_copy_threshold", 0.0),
                             rare=RARE_SHARE)


def _tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every section of the readable reports."""
    q, d, m = result["quality"], result["diversity"], result["memorisation"]
    modes, s, audit = result["modes"], result["spectrum"], result["audit"]
    tables = [
        ("Input", ["item", "value"], [
            ["folder", audit["folder"]], ["real data set", audit["real"]],
            ["images read", str(audit["n_images"])], ["files skipped", str(audit["n_skipped"])],
            ["files not read (no image suffix, folder links)",
             str(audit.get("passed_over", {}).get("count", 0))],
            ["image shape", str(tuple(audit["image_shape"]))], ["seed", str(audit["seed"])],
            ["inputs sha256", audit["inputs_sha256"][:16] + "…"],
            ["seconds", _fmt(audit["seconds"])],
        ]),
        (f"Quality (digit-domain, n = {q['n']} vs real train)",
         ["metric", "generated", "real-vs-real floor"], [
            ["Fréchet distance", _fmt(q["fd"]), _fmt(q["fd_floor"])],
            ["KID (MMD², cubic kernel)", f"{_fmt(q['kid'])} ± {_fmt(q['kid_std'], 2)}",
             f"{_fmt(q['kid_floor'])} ± {_fmt(q['kid_floor_std'], 2)}"],
        ]),
    ]
    if "generated" in d:
        tables.append((f"Diversity / fidelity (k = {d['k']}, n = {d['n']})",
                       ["metric", "generated", "real test (floor)"],
                       [[key, _fmt(d["generated"][key]), _fmt(d["real_test"][key])]
                        for key in ("precision", "recall", "density", "coverage")]))
    quant_g, quant_t = m["generated_nn_quantiles"], m["test_nn_quantiles"]
    tables.append(("Memorisation (pixel L2 to nearest training image)",
                   ["metric", "generated", "held-out real test"], [
                       ["min NN distance", _fmt(quant_g["0.0"]), _fmt(quant_t["0.0"])],
                       ["median NN distance", _fmt(quant_g["0.5"]), _fmt(quant_t["0.5"])],
                       ["near-copy share", _fmt(m["near_copy_share"]),
                        f"{NEAR_COPY_PERCENTILE / 100:g} (by construction: see below)"],
                       ["Z_U (Meehan et al., simple variant)", _fmt(m["zu"]), "≈ 0"],
                   ]))
    gen, real = modes["generated"], modes["real_test"]
    tables.append(("Mode coverage (digit classifier)", ["metric", "generated", "real test"], [
        ["missing digits", str(gen["missing"]), str(real["missing"])],
        [f"rare digits (< {RARE_SHARE:.0%})", str(gen["rare"]), str(real["rare"])],
        ["KL(histogram ‖ uniform), nats", _fmt(gen["kl_to_uniform"]),
         _fmt(real["kl_to_uniform"])],
        [f"confidence ≥ {CONFIDENT}", _fmt(gen["confident_share"]),
         _fmt(real["confident_share"])],
    ]))
    codes = result["codes"]
    if codes and "c1_hungarian_accuracy" in codes:
        rows = [["c1 accuracy (Hungarian-matched to digit; chance 0.1)",
                 _fmt(codes["c1_hungarian_accuracy"])],
                ["c1 NMI with digit", _fmt(codes["c1_nmi"])],
                ["manifest rows matched", str(codes["matched"])]]
        for code, props in codes.get("continuous", {}).get("spearman", {}).items():
            for prop, rho in props.items():
                rows.append([f"Spearman({code}, {prop})", _fmt(rho)])
        tables.append(("InfoGAN codes", ["metric", "value"], rows))
    tables.append(("Spectrum", ["metric", "generated vs test", "train vs test (floor)"], [
        ["L2 between mean log spectra", _fmt(s["l2"]), _fmt(s["l2_floor"])]]))
    if audit["skipped"]:
        tables.append(("Skipped files", ["reason"], [[reason] for reason in audit["skipped"]]))
    return tables


def _markdown(result: dict) -> str:
    lines = ["# Synthetic data audit", "", f"> {DOMAIN_NOTE}", ""]
    if result["flags"]:
        lines += ["## Flags", ""] + [f"- {flag}" for flag in result["flags"]] + [""]
    for title, header, rows in _tables(result):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                  for row in rows]
        lines.append("")
        if _note(title, result):
            lines += [f"*{_note(title, result)}*", ""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in PLOTS] + [""]
    return "\n".join(lines)


def _html(result: dict, plots: dict[str, bytes]) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Synthetic data audit"
             "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;"
             "padding:.2em .6em;text-align:left}</style></head><body>",
             "<h1>Synthetic data audit</h1>", f"<p><em>{esc(DOMAIN_NOTE)}</em></p>"]
    if result["flags"]:
        parts.append("<h2>Flags</h2><ul>" + "".join(f"<li>{esc(f)}</li>" for f in result["flags"])
                     + "</ul>")
    for title, header, rows in _tables(result):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
                  for row in rows]
        parts.append("</table>")
        if _note(title, result):
            parts.append(f"<p><small>{esc(_note(title, result))}</small></p>")
    parts.append("<h2>Plots</h2>")
    for name, data in plots.items():
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(f"<p><img alt='{esc(name)}' src='data:image/png;base64,{encoded}'></p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
