"""``forensics benchmark``: train generators, make fakes, train detectors, measure.

Protocols (all on images no detector or generator trained on):

1. in-distribution: a detector trained on generator g, tested on g's held-out
   fakes against the held-out real test split;
2. cross-generator: trained on g, tested on every h (a matrix), and
   leave-one-generator-out (LOGO) for every detector: trained on all but g,
   tested on g; its worst case (min over g) is the headline number;
3. robustness: the in-distribution test sets perturbed (JPEG, blur, downscale,
   noise, crop, crop+JPEG), the per-image parameters written to
   ``perturbations.jsonl``;
4. false positives on processed real images: the detector trained on all
   generators, at its calibrated threshold, on the held-out real test images
   as they are and after JPEG 75, a 0.75× resize and back, Gaussian blur
   σ 0.5 and a PNG re-save (none of them is a fake);
5. out of domain: photographs (scikit-learn's sample images, whole and as many
   gray patches), uniform noise and other-size images, through the detector's
   domain record when it has one (``domain_.assess``): the share abstained and
   the share called fake;
6. the ``pixel-logreg`` baseline is one of the detectors of every suite.

Every detector is trained by :func:`detectors.training.train_detector` (the
path of ``forensics train-detector``), on the real train split and each
generator's fakes split 80/10/10 by :func:`detectors.training.split_fakes`;
the benchmark tests on the same held-out parts. What a family needs is read
from its class: ``needs_fakes = False`` (real-only: fitted once, the same
detector in every protocol), ``needs_run`` (the suite's first GAN run as
``run=``), ``multiclass`` (attribution: one class per source).

The best detector is the one with the highest worst-case LOGO AUC (with one
generator: the lowest in-distribution AUC), ties broken by the lowest
processed-real false-positive rate.

Every artefact is cached (see :mod:`benchmarks.cache`); an interrupted run
continues from the last finished artefact. In ``results.json`` everything that
measures time (the moment of the run, stage seconds, throughput, the machine's
load) lives under one key, ``timing``; the rest is reproducible.
"""

from __future__ import annotations

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
from forensics.text import strict_dumps

Progress = Callable[[str, int, int], None]
ALL = "all"
REAL_ONLY = "real-only"
#: generator kinds whose runs hold a discriminator (for ``needs_run`` detector families)
#: the processed-real protocol: label → (perturbation, strength)
PROCESSINGS = {"jpeg75": ("jpeg", 75), "resize0.75": ("downscale", 0.75),
               "blur0.5": ("blur", 0.5), "png": ("png", 1.0)}


@dataclass
class Bench:
    suite: Suite
    cache: Path
    seed: int
    fresh: bool
    progress: Progress
    workers: int = 0  # processes reading synthetic sets (DataLoader workers)
    device: str = "cpu"  # where generators and torch detectors train (not part of cache keys)
    real: dict[str, np.ndarray] = field(default_factory=dict)
    fakes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    synthetic: dict[str, np.ndarray] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Path] = field(default_factory=dict)
    detectors: dict[tuple[str, str], Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    ood: dict[tuple, dict] = field(default_factory=dict)  # out-of-domain sets per input shape


def run_benchmark(suite: Suite, out: Path, *, seed: int = 0, cache: Path, fresh: bool = False,
                  progress: Progress | None = None, workers: int = 0,
                  device: str = "cpu") -> dict[str, Any]:
    """Run every protocol of ``suite``; write the report to ``out``; return the results.

    ``workers``: reading processes for the synthetic sets (0: read in this process);
    ``device``: where generators and the torch detectors train (auto, cpu, cuda).
    """
    from benchmarks.reference import measure
    from benchmarks.report import write_report

    bench = Bench(suite, Path(cache), seed, fresh, progress or (lambda *a: None), workers, device)
    # the machine's speed now: seconds here compare across runs only as ratios to this
    reference = measure(suite.reference_steps) if suite.reference_steps else None
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
                  "load_average_1m": machine.pop("load_average_1m", None), "reference": reference}
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
    from forensics.runtime import pick_device
    from generators.registry import get
    from generators.training import CONFIG, METRICS, new_run_precision, train

    items = list(bench.suite.generators.items())
    for i, (name, entry) in enumerate(items):
        epochs = int(entry.get("epochs") or get(entry["kind"]).default_epochs)
        # keyed on every option as it resolves today (the suite's and the class defaults), so a
        # changed default (e.g. the diffusion model's sampler) is not served from an old run
        resolved = get(entry["kind"]).Options.from_dict(dict(entry.get("options", {}))).to_dict()
        # the precision `train` resolves ``auto`` to on this device trains differently
        precision = new_run_precision(pick_device(bench.device))
        config = {"kind": entry["kind"], "options": resolved, "epochs": epochs,
                  "dataset": bench.suite.dataset, "data": bench.keys["real"], "seed": bench.seed,
                  "precision": precision}
        folder, key = slot(bench.cache, "generators", name, config)
        bench.keys[f"generator:{name}"] = key
        bench.progress(f"training generator {name}", i, len(items))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        done = len((folder / METRICS).read_text().splitlines()) if (folder / METRICS).exists() else 0
        if done < epochs:  # new, or interrupted: resume from the last finished epoch
            train(entry["kind"], dict(entry.get("options", {})), out=folder,
                  dataset=bench.suite.dataset, epochs=epochs, seed=bench.seed, device=bench.device,
                  resume=(folder / CONFIG).exists())
        bench.runs[name] = folder
    bench.progress("generators", len(items), len(items))


# -- stage 2: synthetic sets ------------------------------------------------------------------
def _make_fakes(bench: Bench) -> None:
    from detectors.training import split_fakes
    from generators.synthesis import generate
    from generators.training import load_run

    n = bench.suite.fakes_per_generator
    for i, name in enumerate(bench.runs):
        run = load_run(bench.runs[name])
        # the sampling as it resolves today: a changed default (e.g. the diffusion model's
        # steps, while the run's options say 0) is not served from old fakes
        config = {"generator": bench.keys[f"generator:{name}"], "n": n, "seed": bench.seed,
                  "sampling": run.model.sampling()}
        folder, key = slot(bench.cache, "synthetic", name, config)
        bench.keys[f"synthetic:{name}"] = key
        bench.progress(f"generating {n} images with {name}", i, len(bench.runs))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():
            generate(run, n, folder, seed=bench.seed)
        images = read_synthetic(folder, workers=bench.workers)
        # the split train_detector makes (seeded by the generator's name, whatever sources
        # are beside it): every detector is tested on fakes no detector trained on
        bench.synthetic[name] = images
        bench.fakes[name] = split_fakes({name: images}, bench.seed)[name]
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


def needs_fakes(kind: str) -> bool:
    """False for real-only families (fitted on real images alone)."""
    from detectors.registry import get

    return get(kind).needs_fakes


def needs_run(kind: str) -> bool:
    """True for families built from a trained generator run (the ``run`` option)."""
    from detectors.registry import get

    return get(kind).needs_run


def multiclass(kind: str) -> bool:
    """True for families that learn one class per source (attribution)."""
    from detectors.registry import get

    return get(kind).multiclass


def discriminator_source(generators: dict[str, dict[str, Any]]) -> str | None:
    """The suite's first generator with a discriminator (the run ``needs_run`` families use)."""
    from generators.registry import get

    return next((name for name, entry in generators.items()
                 if get(entry["kind"]).has_discriminator), None)


def _train_detectors(bench: Bench) -> None:
    from detectors.base import load_detector
    from detectors.registry import create, option_names
    from detectors.training import train_detector

    gens = list(bench.runs)
    sets = training_sets(gens)
    # sets of the same generators are one experiment, trained once: with two generators,
    # "all-but-gan" is "vae", so leave-one-out reuses the cross-generator detector
    same: dict[tuple[str, ...], list[str]] = {}
    for set_name, srcs in sets.items():
        same.setdefault(tuple(srcs), []).append(set_name)
    unique = [(names[0], list(srcs)) for srcs, names in same.items()]
    jobs = [(d, s, srcs) for d, entry in bench.suite.detectors.items()
            for s, srcs in (unique if needs_fakes(entry["kind"]) else [(REAL_ONLY, gens)])]
    for i, (det_name, set_name, sources) in enumerate(jobs):
        entry = bench.suite.detectors[det_name]
        kind, options = entry["kind"], dict(entry.get("options", {}))
        # every option as it resolves today (the suite's and the class defaults); a change of
        # training code that keeps the options needs --fresh
        resolved = {key: value for key, value in create(kind, **options).get_params().items()
                    if key not in ("device", "run")}
        config = {"kind": kind, "options": resolved, "seed": bench.seed,
                  "real": bench.keys["real"], "real_train": bench.suite.real_train,
                  "sources": sources, "fakes": [bench.keys[f"synthetic:{g}"] for g in sources],
                  "trainer": "train_detector"}  # detectors of the old own-fit path are not reused
        if needs_run(kind):
            gan = discriminator_source(bench.suite.generators)
            options["run"] = str(bench.runs[gan])
            config["run"] = bench.keys[f"generator:{gan}"]  # the run's key, not its path
        if "seed" in option_names(kind):
            options.setdefault("seed", bench.seed)
        if "device" in option_names(kind):
            options.setdefault("device", bench.device)
        folder, key = slot(bench.cache, "detectors", f"{det_name}-{set_name}", config)
        bench.keys[f"detector:{det_name}:{set_name}"] = key
        bench.progress(f"training {det_name} on {set_name}", i, len(jobs))
        if bench.fresh and folder.exists():
            shutil.rmtree(folder)
        if not folder.exists():
            detector, _ = train_detector(
                kind, bench.real["train"], bench.real["val"], bench.real["test"],
                {g: bench.synthetic[g] for g in sources}, options=options, seed=bench.seed)
            with atomic.staging_dir(folder) as tmp:
                detector.save(tmp, extra={"trained_on": sources, "cache_key": key})
        loaded = load_detector(folder)
        # a real-only detector is the same one whichever generators the protocol names
        for name in (sets if set_name == REAL_ONLY else same[tuple(sources)]):
            bench.detectors[(det_name, name)] = loaded
    bench.progress("detectors", len(jobs), len(jobs))


# -- stage 4: evaluation ----------------------------------------------------------------------
def _test_set(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([real, fake]), np.r_[np.zeros(len(real)), np.ones(len(fake))]


class _Scores:
    """Each detector's log-odds of fake on each held-out set, computed once (detectors are shared).

    Log-odds, not P(fake): thresholds and AUCs are the same, and a score that saturates to
    1.0 in float still ranks (``Detector.log_odds``, ``threshold_log_odds_``)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.memo: dict[tuple[int, str], np.ndarray] = {}
        self.rates: dict[str, int] = {}

    def __call__(self, det: str, trained_on: str, source: str) -> np.ndarray:
        detector = self.bench.detectors[(det, trained_on)]
        key = (id(detector), source)
        if key not in self.memo:
            images = self.bench.real["test"] if source == "real" else self.bench.fakes[source]["test"]
            began = time.perf_counter()
            self.memo[key] = detector.log_odds(images)
            rate = round(len(images) / max(time.perf_counter() - began, 1e-9))
            self.rates[det] = max(self.rates.get(det, 0), rate)
        return self.memo[key]

    def report(self, det: str, trained_on: str, source: str) -> dict[str, Any]:
        """The binary report on held-out real vs ``source``'s held-out fakes, FPR beside it."""
        from forensics.metrics import binary_report

        detector = self.bench.detectors[(det, trained_on)]
        real, fake = self(det, trained_on, "real"), self(det, trained_on, source)
        report = binary_report(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake],
                               detector.threshold_log_odds_, n_boot=self.bench.suite.bootstrap,
                               seed=self.bench.seed)
        _thresholds_as_scores(report, detector)
        report["fpr_calibrated"] = float(np.mean(real >= detector.threshold_log_odds_))
        report["tpr_calibrated"] = float(np.mean(fake >= detector.threshold_log_odds_))
        return report


def _thresholds_as_scores(report: dict[str, Any], detector) -> None:
    """The report's thresholds back from log-odds to the detector's score (monotone: the
    intervals map too), so they read like every other threshold the toolkit shows."""
    from detectors.base import sigmoid

    report["threshold"] = float(detector.threshold_)
    for key in ("best_threshold", "youden_threshold"):
        report[key] = float(sigmoid(report[key]))
        if key + "_ci" in report:
            report[key + "_ci"] = [float(sigmoid(v)) for v in report[key + "_ci"]]


def _evaluate(bench: Bench, out: Path) -> dict[str, Any]:
    from forensics.metrics import roc_auc

    gens, dets = list(bench.runs), list(bench.suite.detectors)
    score = _Scores(bench)
    results: dict[str, Any] = {
        "generators": gens, "detectors": dets,
        "families": {d: {"kind": e["kind"], "needs_fakes": needs_fakes(e["kind"]),
                         "needs_run": needs_run(e["kind"]), "multiclass": multiclass(e["kind"])}
                     for d, e in bench.suite.detectors.items()},
        "in_distribution": {}, "cross_generator": {}, "leave_one_out": {},
        "false_positive_rate": {}, "robustness": {}, "processed_real": {},
        "out_of_domain": {}, "attribution": {}, "roc": {}}
    total, done = len(dets) * (len(gens) + 2), 0
    for d in dets:
        results["in_distribution"][d], results["roc"][d] = {}, {}
        results["cross_generator"][d], results["leave_one_out"][d] = {}, {}
        results["false_positive_rate"][d] = {
            name: float(np.mean(score(d, name, "real") >= det.threshold_log_odds_))
            for (dn, name), det in bench.detectors.items() if dn == d}
        for g in gens:
            bench.progress(f"evaluating {d}", done, total)
            results["in_distribution"][d][g] = score.report(d, g, g)
            x, y = _test_set(score(d, g, "real"), score(d, g, g))
            results["roc"][d][g] = _roc_points(y, x)
            results["cross_generator"][d][g] = {
                h: roc_auc(*_flip(_test_set(score(d, g, "real"), score(d, g, h)))) for h in gens}
            if len(gens) > 1:
                results["leave_one_out"][d][g] = score.report(d, f"all-but-{g}", g)
            done += 1
        widest = ALL if len(gens) > 1 else gens[0]
        results["processed_real"][d] = _processed_real(bench, d, widest, score)
        results["out_of_domain"][d] = _out_of_domain(bench, d, widest)
        if multiclass(bench.suite.detectors[d]["kind"]):
            results["attribution"][d] = bench.detectors[(d, widest)].metrics_.get("confusion_matrix")
        done += 2
    results["robustness"], params_log = _robustness(bench, gens, dets)
    bench.progress("evaluation", total, total)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "perturbations.jsonl", "".join(line + "\n" for line in params_log))
    results["throughput_images_per_s"] = {d: score.rates.get(d, 0) for d in dets}
    results["summary"] = _summary(results, gens, dets)
    return results


def _flip(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of :func:`_test_set` → (labels, scores) as the metrics take them."""
    return pair[1], pair[0]


def _robustness(bench: Bench, gens: list[str], dets: list[str]) -> tuple[dict, list[str]]:
    from benchmarks.perturb import apply
    from forensics.metrics import roc_auc

    robustness: dict[str, Any] = {}
    params_log: list[str] = []
    for name, strengths in bench.suite.perturbations.items():
        for s in strengths:
            real_p, params = apply(name, s, bench.real["test"], seed=bench.seed)
            params_log += [strict_dumps({"source": "real", "index": i, "perturbation": name,
                                       "strength": s, **p}) for i, p in enumerate(params)]
            for g in gens:
                fake_p, params = apply(name, s, bench.fakes[g]["test"], seed=bench.seed + 1)
                params_log += [strict_dumps({"source": g, "index": i, "perturbation": name,
                                           "strength": s, **p}) for i, p in enumerate(params)]
                x, y = _test_set(real_p, fake_p)
                for d in dets:
                    detector = bench.detectors[(d, g)]
                    scores = detector.log_odds(x)
                    cell = robustness.setdefault(d, {}).setdefault(name, {})
                    cell.setdefault(str(s), {})[g] = {
                        "auc": roc_auc(y, scores),
                        "accuracy_calibrated": float(((scores >= detector.threshold_log_odds_) == y).mean()),
                    }
    return robustness, params_log


def _processed_real(bench: Bench, det: str, trained_on: str, score: _Scores) -> dict[str, Any]:
    """FPR at the calibrated threshold on held-out real images as users pass them on."""
    from benchmarks.perturb import apply

    detector = bench.detectors[(det, trained_on)]
    threshold = detector.threshold_log_odds_
    fpr = {"plain": float(np.mean(score(det, trained_on, "real") >= threshold))}
    for label, (name, strength) in PROCESSINGS.items():
        images, _ = apply(name, strength, bench.real["test"], seed=bench.seed)
        fpr[label] = float(np.mean(detector.log_odds(images) >= threshold))
    return {"detector": trained_on, "threshold": float(detector.threshold_), "n": len(bench.real["test"]),
            "fpr": fpr, "max_processed_fpr": max(fpr[label] for label in PROCESSINGS)}


def ood_sets(shape: tuple[int, int, int], real: np.ndarray, seed: int = 0, patches: int = 200,
             noise: int = 100) -> dict[str, tuple[np.ndarray, list[tuple[int, int, int]]]]:
    """Out-of-domain images at a detector's input ``shape`` and the shapes they had.

    ``photos``: scikit-learn's two sample photographs, whole (427×640 colour)
    brought to the input shape as ``forensics detect`` does; ``photo_patches``:
    many square patches of them (16 px to a third of the shorter side), gray
    when the input is, resized to the input size (so they have its shape);
    ``noise``: uniform noise at the input shape; ``other_size``: the real test
    images at twice the side, brought back to the input shape.
    """
    from sklearn.datasets import load_sample_images

    from forensics.domain import original_shape
    from forensics.images import conform, opencv, to_float, to_uint8

    cv2 = opencv()
    channels, height, width = shape
    rng = np.random.default_rng([seed, 7])
    photos = list(load_sample_images().images)

    def conformed(images: list[np.ndarray]) -> np.ndarray:
        return to_float(np.stack([conform(image, height, channels) for image in images]))

    pieces = []
    for k in range(patches):
        photo = photos[k % len(photos)]
        side = int(rng.integers(16, min(photo.shape[:2]) // 3))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        patch = photo[top : top + side, left : left + side]
        if channels == 1:
            patch = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY)
        pieces.append(cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA))
    big = [cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
           for image in to_uint8(real)]
    # each image's shape before conforming as detect sees it: (C, H, W), gray-looking RGB is gray
    return {
        "photos": (conformed(photos), [original_shape(p) for p in photos]),
        "photo_patches": (conformed(pieces), [original_shape(p) for p in pieces]),
        "noise": (rng.random((noise, *shape)).astype(np.float32), [tuple(shape)] * noise),
        "other_size": (conformed(big), [original_shape(b) for b in big]),
    }


def _out_of_domain(bench: Bench, det: str, trained_on: str) -> dict[str, Any]:
    """Per OOD set: the share abstained (domain record) and the share called fake."""
    detector = bench.detectors[(det, trained_on)]
    shape = tuple(int(v) for v in detector.input_shape_)
    if shape not in bench.ood:
        bench.ood[shape] = ood_sets(shape, bench.real["test"], bench.seed)
    domain = detector.domain_
    sets = {}
    for name, (images, shapes) in bench.ood[shape].items():
        judged = np.ones(len(images), bool)
        if domain is not None:
            judged = np.array([reason is None for reason in domain.assess(images, shapes)])
        fake = detector.log_odds(images) >= detector.threshold_log_odds_
        sets[name] = {"n": len(images), "abstained": float(np.mean(~judged)),
                      "called_fake": float(np.mean(fake & judged)),
                      "called_fake_of_judged": float(np.mean(fake[judged])) if judged.any() else None}
    return {"detector": trained_on, "domain_record": domain is not None,
            "note": None if domain is not None else "no domain record: every image is judged",
            "sets": sets,
            "abstain_rate": float(np.mean([v["abstained"] for v in sets.values()])),
            "fake_call_rate": float(np.mean([v["called_fake"] for v in sets.values()]))}


def _roc_points(labels: np.ndarray, scores: np.ndarray, points: int = 101) -> dict[str, list]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.linspace(0, 1, points)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _summary(results: dict[str, Any], gens: list[str], dets: list[str]) -> dict[str, Any]:
    """The headline numbers per detector (each AUC with its FPR) and the best detector."""
    summary: dict[str, Any] = {}
    for d in dets:
        fpr = results["false_positive_rate"][d]
        ind = {g: results["in_distribution"][d][g]["auc"] for g in gens}
        low = min(ind, key=ind.get)
        cross = [results["cross_generator"][d][g][h] for g in gens for h in gens if g != h]
        loo = {g: v["auc"] for g, v in results["leave_one_out"][d].items()}
        worst = min(loo, key=loo.get) if loo else None
        jpeg50 = results["robustness"].get(d, {}).get("jpeg", {}).get("50.0", {})
        processed, ood = results["processed_real"][d], results["out_of_domain"][d]
        summary[d] = {
            "worst_leave_one_out_auc": loo[worst] if worst else None,
            "worst_leave_one_out_generator": worst,
            "worst_leave_one_out_fpr": fpr[f"all-but-{worst}"] if worst else None,
            "mean_leave_one_out_auc": _mean(list(loo.values())),
            "mean_leave_one_out_fpr": _mean([fpr[f"all-but-{g}"] for g in loo]),
            # what an analyst gets at the saved threshold on a generator the detector never saw
            "min_leave_one_out_tpr": min((v["tpr_calibrated"] for v in results["leave_one_out"][d].values()),
                                         default=None),
            "mean_cross_generator_auc": _mean(cross),
            "mean_cross_generator_fpr": _mean([fpr[g] for g in gens]) if cross else None,
            "min_in_distribution_auc": float(ind[low]),
            "min_in_distribution_fpr": fpr[low],
            "mean_in_distribution_auc": float(np.mean(list(ind.values()))),
            "processed_real_fpr": processed["max_processed_fpr"],
            "plain_fpr": processed["fpr"]["plain"],
            "ood_fake_call_rate": ood["fake_call_rate"],
            "ood_abstain_rate": ood["abstain_rate"],
            "mean_auc_jpeg50": _mean([v["auc"] for v in jpeg50.values()]),
        }

    def rank(d: str) -> tuple[float, float]:
        s = summary[d]
        headline = s["worst_leave_one_out_auc"]
        return (-(headline if headline is not None else s["min_in_distribution_auc"]),
                s["processed_real_fpr"])

    return {"per_detector": summary, "best_detector": min(dets, key=rank),  # ties: suite order
            "best_detector_rule": "highest worst-case leave-one-generator-out AUC (one "
                                  "generator: lowest in-distribution AUC), then lowest "
                                  "processed-real false-positive rate, then suite order"}
