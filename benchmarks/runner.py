"""``forensics benchmark``: train generators, make fakes, train detectors, measure.

Protocols (all on images no detector or generator trained on):

1. in-distribution: a detector trained on generator g, tested on g's held-out
   fakes against the held-out real test split;
2. cross-generator: trained on g, tested on every h (a matrix), and
   leave-one-generator-out: trained on all but g, tested on g;
3. robustness: the in-distribution test sets perturbed (JPEG, blur, downscale,
   noise, crop, crop+JPEG), the per-image parameters written to
   ``perturbations.jsonl``;
4. the ``pixel-logreg`` baseline is one of the detectors of every suite.

Every artefact is cached (see :mod:`benchmarks.cache`); an interrupted run
continues from the last finished artefact. In ``results.json`` everything that
measures time (the moment of the run, stage seconds, throughput, the machine's
load) lives under one key, ``timing``; the rest is reproducible.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cache import slot
from benchmarks.suite import Suite
from forensics import atomic, provenance
from forensics.data import Dataset, load, split_indices
from forensics.errors import ForensicsError

Progress = Callable[[str, int, int], None]
ALL = "all"


@dataclass
class Bench:
    suite: Suite
    cache: Path
    seed: int
    fresh: bool
    progress: Progress
    workers: int = 0  # processes reading synthetic sets (DataLoader workers)
    real: dict[str, np.ndarray] = field(default_factory=dict)
    fakes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Path] = field(default_factory=dict)
    detectors: dict[tuple[str, str], Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def run_benchmark(suite: Suite, out: Path, *, seed: int = 0, cache: Path, fresh: bool = False,
                  progress: Progress | None = None, workers: int = 0) -> dict[str, Any]:
    """Run every protocol of ``suite``; write the report to ``out``; return the results.

    ``workers``: reading processes for the synthetic sets (0: read in this process).
    """
    from benchmarks.report import write_report

    bench = Bench(suite, Path(cache), seed, fresh, progress or (lambda *a: None), workers)
    began = time.perf_counter()
    with atomic.locked(out):
        dataset = load(suite.dataset)
        _real_splits(bench, dataset)
        _stage(bench, "generators", _train_generators)
        _stage(bench, "synthetic sets", _make_fakes)
        _stage(bench, "detectors", _train_detectors)
        evaluation_began = time.perf_counter()
        results = _evaluate(bench, out)
        bench.timings["evaluation"] = round(time.perf_counter() - evaluation_began, 2)
        bench.timings["total"] = round(time.perf_counter() - began, 2)
        machine = provenance.machine()
        # what measures time or the moment of the run lives under "timing" alone: everything
        # else in results.json is the same for the same suite, seed and versions
        timing = {"created": provenance.now(), "seconds": bench.timings,
                  "throughput_images_per_s": results.pop("throughput_images_per_s"),
                  "load_average_1m": machine.pop("load_average_1m", None)}
        results.update({
            "suite": suite.source, "suite_name": suite.name, "seed": seed,
            "data": {"name": dataset.name, "sha256": dataset.fingerprint(),
                     "real_train": len(bench.real["train"]), "real_val": len(bench.real["val"]),
                     "real_test": len(bench.real["test"])},
            "artefacts": bench.keys, "versions": provenance.versions(), "machine": machine,
            "timing": timing,
        })
        write_report(results, bench, out)
    return results


def _stage(bench: Bench, name: str, step: Callable[[Bench], None]) -> None:
    began = time.perf_counter()
    step(bench)
    bench.timings[name] = round(time.perf_counter() - began, 2)


def _real_splits(bench: Bench, dataset: Dataset) -> None:
    parts = split_indices(dataset.labels)
    rng = np.random.default_rng(bench.seed)
    train = rng.permutation(parts["train"])[: bench.suite.real_train]
    bench.real = {"train": dataset.images[np.sort(train)], "val": dataset.images[parts["val"]],
                  "test": dataset.images[parts["test"]]}
    bench.keys["real"] = dataset.fingerprint()


# -- stage 1: generators ----------------------------------------------------------------------
def _train_generators(bench: Bench) -> None:
    from generators.training import CONFIG, DEFAULT_EPOCHS, METRICS, train

    items = list(bench.suite.generators.items())
    for i, (name, entry) in enumerate(items):
        epochs = int(entry.get("epochs") or DEFAULT_EPOCHS.get(entry["kind"], 20))
        config = {"kind": entry["kind"], "options": entry.get("options", {}), "epochs": epochs,
                  "dataset": bench.suite.dataset, "data": bench.keys["real"], "seed": bench.seed}
        folder, key = slot(bench.cache, "generators", name, config)
        bench.keys[f"generator:{name}"] = key
        bench.progress(f"training generator {name}", i, len(items))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        done = len((folder / METRICS).read_text().splitlines()) if (folder / METRICS).exists() else 0
        if done < epochs:  # new, or interrupted: resume from the last finished epoch
            train(entry["kind"], dict(entry.get("options", {})), out=folder,
                  dataset=bench.suite.dataset, epochs=epochs, seed=bench.seed, device="cpu",
                  resume=(folder / CONFIG).exists())
        bench.runs[name] = folder
    bench.progress("generators", len(items), len(items))


# -- stage 2: synthetic sets ------------------------------------------------------------------
def _make_fakes(bench: Bench) -> None:
    from generators.synthesis import generate
    from generators.training import load_run

    n = bench.suite.fakes_per_generator
    for i, name in enumerate(bench.runs):
        config = {"generator": bench.keys[f"generator:{name}"], "n": n, "seed": bench.seed}
        folder, key = slot(bench.cache, "synthetic", name, config)
        bench.keys[f"synthetic:{name}"] = key
        bench.progress(f"generating {n} images with {name}", i, len(bench.runs))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():
            generate(load_run(bench.runs[name]), n, folder, seed=bench.seed)
        images = read_synthetic(folder, workers=bench.workers)
        # seeded by the set's cache key, not its place in the suite: a cached detector
        # reused by another suite must meet the same held-out fakes
        order = np.random.default_rng([bench.seed, int(key, 16)]).permutation(len(images))
        n_train, n_val = int(0.8 * len(images)), int(0.1 * len(images))
        bench.fakes[name] = {"train": images[order[:n_train]],
                             "val": images[order[n_train : n_train + n_val]],
                             "test": images[order[n_train + n_val :]]}
    bench.progress("synthetic sets", len(bench.runs), len(bench.runs))


def read_synthetic(folder: Path, workers: int = 0) -> np.ndarray:
    """Read a synthetic set back from its PNGs, in manifest order (as a user's files).

    Through the reader of ``forensics detect`` (:func:`forensics.batches.read_all`,
    ``workers`` reading processes); a set with a file that cannot be read is refused.
    """
    from forensics.batches import Problems, read_all
    from forensics.manifest import read_manifest

    manifest = read_manifest(folder)
    problems = Problems()
    images, _ = read_all(manifest.files(), tuple(manifest.header["image_shape"]), problems,
                         workers=workers)
    if problems.lines:
        raise ForensicsError(f"synthetic set {folder}: {problems.lines[0]}")
    return images


# -- stage 3: detectors -----------------------------------------------------------------------
def training_sets(names: list[str]) -> dict[str, list[str]]:
    """Which generators each detector sees: each alone, all but each, and all."""
    sets = {g: [g] for g in names}
    if len(names) > 1:
        sets.update({f"all-but-{g}": [h for h in names if h != g] for g in names})
        sets[ALL] = list(names)
    return sets


def _balanced(bench: Bench, sources: list[str], part: str) -> np.ndarray:
    """Fakes of several generators, each cut to its share so fake ≈ one generator's count."""
    share = len(bench.fakes[sources[0]][part]) // len(sources)
    return np.concatenate([bench.fakes[g][part][:share] for g in sources])


def _train_detectors(bench: Bench) -> None:
    from detectors.base import load_detector
    from detectors.registry import create, option_names
    from detectors.training import calibrate

    sets = training_sets(list(bench.runs))
    jobs = [(d, s) for d in bench.suite.detectors for s in sets]
    for i, (det_name, set_name) in enumerate(jobs):
        entry = bench.suite.detectors[det_name]
        sources = sets[set_name]
        config = {"kind": entry["kind"], "options": entry.get("options", {}), "seed": bench.seed,
                  "real": bench.keys["real"], "real_train": bench.suite.real_train,
                  "fakes": [bench.keys[f"synthetic:{g}"] for g in sources],
                  "fake_split": "by-key"}  # detectors cached under the old split are not reused
        folder, key = slot(bench.cache, "detectors", f"{det_name}-{set_name}", config)
        bench.keys[f"detector:{det_name}:{set_name}"] = key
        bench.progress(f"training {det_name} on {set_name}", i, len(jobs))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():
            options = dict(entry.get("options", {}))
            if "seed" in option_names(entry["kind"]):
                options.setdefault("seed", bench.seed)
            detector = create(entry["kind"], **options)
            detector.fit(bench.real["train"], _balanced(bench, sources, "train"))
            calibrate(detector, bench.real["val"], [_balanced(bench, sources, "val")])
            with atomic.staging_dir(folder) as tmp:
                detector.save(tmp, extra={"trained_on": sources, "cache_key": key})
        bench.detectors[(det_name, set_name)] = load_detector(folder)
    bench.progress("detectors", len(jobs), len(jobs))


# -- stage 4: evaluation ----------------------------------------------------------------------
def _test_set(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([real, fake]), np.r_[np.zeros(len(real)), np.ones(len(fake))]


def _evaluate(bench: Bench, out: Path) -> dict[str, Any]:
    from benchmarks.perturb import apply
    from forensics.metrics import binary_report, roc_auc

    gens, dets = list(bench.runs), list(bench.suite.detectors)
    boot = bench.suite.bootstrap
    results: dict[str, Any] = {"generators": gens, "detectors": dets, "in_distribution": {},
                               "cross_generator": {}, "leave_one_out": {}, "robustness": {},
                               "throughput_images_per_s": {}, "roc": {}}
    total = len(dets) * (2 * len(gens) + 1)
    done = 0
    for d in dets:
        results["in_distribution"][d], results["roc"][d] = {}, {}
        results["cross_generator"][d] = {}
        results["leave_one_out"][d] = {}
        for g in gens:
            bench.progress(f"evaluating {d}", done, total)
            detector = bench.detectors[(d, g)]
            x, y = _test_set(bench.real["test"], bench.fakes[g]["test"])
            began = time.perf_counter()
            scores = detector.predict_proba(x)
            rate = len(x) / max(time.perf_counter() - began, 1e-9)
            results["throughput_images_per_s"][d] = max(
                results["throughput_images_per_s"].get(d, 0), round(rate))
            results["in_distribution"][d][g] = binary_report(y, scores, detector.threshold_,
                                                              n_boot=boot, seed=bench.seed)
            results["roc"][d][g] = _roc_points(y, scores)
            row = {}
            for h in gens:
                xh, yh = _test_set(bench.real["test"], bench.fakes[h]["test"])
                row[h] = roc_auc(yh, detector.predict_proba(xh))
            results["cross_generator"][d][g] = row
            done += 1
            if len(gens) > 1:
                loo = bench.detectors[(d, f"all-but-{g}")]
                results["leave_one_out"][d][g] = binary_report(
                    y, loo.predict_proba(x), loo.threshold_, n_boot=boot, seed=bench.seed)
            done += 1
    params_log: list[str] = []
    perturbed_real: dict[tuple[str, float], np.ndarray] = {}
    for name, strengths in bench.suite.perturbations.items():
        for s in strengths:
            real_p, params = apply(name, s, bench.real["test"], seed=bench.seed)
            perturbed_real[(name, s)] = real_p
            params_log += [json.dumps({"source": "real", "index": i, "perturbation": name,
                                       "strength": s, **p}) for i, p in enumerate(params)]
            for g in gens:
                fake_p, params = apply(name, s, bench.fakes[g]["test"], seed=bench.seed + 1)
                params_log += [json.dumps({"source": g, "index": i, "perturbation": name,
                                           "strength": s, **p}) for i, p in enumerate(params)]
                x, y = _test_set(real_p, fake_p)
                for d in dets:
                    detector = bench.detectors[(d, g)]
                    scores = detector.predict_proba(x)
                    cell = results["robustness"].setdefault(d, {}).setdefault(name, {})
                    cell.setdefault(str(s), {})[g] = {
                        "auc": roc_auc(y, scores),
                        "accuracy_calibrated": float(((scores >= detector.threshold_) == y).mean()),
                    }
    done += len(dets)
    bench.progress("evaluation", total, total)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "perturbations.jsonl", "".join(line + "\n" for line in params_log))
    results["summary"] = _summary(results, gens, dets)
    return results


def _roc_points(labels: np.ndarray, scores: np.ndarray, points: int = 101) -> dict[str, list]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.linspace(0, 1, points)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}


def _summary(results: dict[str, Any], gens: list[str], dets: list[str]) -> dict[str, Any]:
    """The headline numbers: per-detector means and the best detector."""
    summary: dict[str, Any] = {}
    for d in dets:
        ind = [results["in_distribution"][d][g]["auc"] for g in gens]
        cross = [results["cross_generator"][d][g][h] for g in gens for h in gens if g != h]
        loo = [results["leave_one_out"][d][g]["auc"] for g in gens if g in results["leave_one_out"][d]]
        jpeg50 = results["robustness"].get(d, {}).get("jpeg", {}).get("50.0", {})
        summary[d] = {
            "min_in_distribution_auc": float(min(ind)),
            "mean_in_distribution_auc": float(np.mean(ind)),
            "mean_cross_generator_auc": float(np.mean(cross)) if cross else None,
            "mean_leave_one_out_auc": float(np.mean(loo)) if loo else None,
            "mean_auc_jpeg50": float(np.mean([v["auc"] for v in jpeg50.values()])) if jpeg50 else None,
        }
    best = max(dets, key=lambda d: (summary[d]["mean_in_distribution_auc"],
                                    summary[d]["mean_cross_generator_auc"] or 0))
    return {"per_detector": summary, "best_detector": best}
