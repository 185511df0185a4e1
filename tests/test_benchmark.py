"""``forensics benchmark`` on a tiny suite, and the test-time perturbations."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.perturb import DEFAULT, apply
from benchmarks.tiny_suite import DETECTORS, DETS, GENERATORS, HEAD, SUITE, VAE
from forensics.app.cli import app
from tests.cli_checks import assert_one_line_error

runner = CliRunner()

#: the one field that measures time or the moment of the run, so differs between two runs
TIMED = {"timing"}
FIGURES = ("roc.png", "cross_generator_auc.png", "robustness.png", "spectra.png")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def folders(cache: Path) -> dict[Path, int]:
    """Every artefact folder of the cache and its modification time."""
    return {p: p.stat().st_mtime_ns for p in sorted(cache.glob("*/*")) if p.is_dir()}


def detector_folder(cache: Path, name: str) -> Path:
    """The cached detector folder ``NAME-<hash>`` (not ``NAME-but-...``)."""
    import re

    (folder,) = [p for p in (cache / "detectors").iterdir()
                 if re.fullmatch(re.escape(name) + "-[0-9a-f]+", p.name)]
    return folder


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The tiny suite run twice on one cache: from scratch, then from the cache."""
    root = tmp_path_factory.mktemp("bench")
    suite, cache = root / "tiny.toml", root / "cache"
    suite.write_text(SUITE)
    first = invoke("benchmark", "--suite", suite, "--out", root / "report", "--cache", cache)
    assert first.exit_code == 0, first.output
    after_first = folders(cache)
    # the second run reads the synthetic sets in 2 DataLoader worker processes: same numbers
    second = invoke("benchmark", "--suite", suite, "--out", root / "again", "--cache", cache,
                    "--workers", 2)
    assert second.exit_code == 0, second.output
    return {"root": root, "suite": suite, "cache": cache, "out": root / "report",
            "again": root / "again", "first": first, "after_first": after_first,
            "after_second": folders(cache)}


# -- the report ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_prints_summary(bench):
    assert "best detector" in bench["first"].stdout
    assert "report.md" in bench["first"].stdout


@pytest.mark.slow
def test_benchmark_writes_every_file(bench):
    out = bench["out"]
    for name in ("results.json", "report.md", "report.html", "perturbations.jsonl", *FIGURES,
                 "samples_gan.png", "samples_vae.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    from forensics.images import read_image

    for name in FIGURES:
        assert read_image(out / name).shape[0] > 100  # a real figure


@pytest.mark.slow
def test_report_html_is_self_contained(bench):
    page = (bench["out"] / "report.html").read_text()
    figures = page.count('src="data:image/png;base64,')
    assert figures == len(FIGURES) + 2  # + one sample grid per generator
    assert 'src="roc.png"' not in page and "<table>" in page
    markdown = (bench["out"] / "report.md").read_text()
    for name in FIGURES:
        assert f"]({name})" in markdown


def in_range(value: float, low: float, high: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and low - 1e-9 <= value <= high + 1e-9


def check_report(entry: dict) -> None:
    """Every metric of one binary report in its range, inside its own interval."""
    for key in ("auc", "average_precision", "accuracy_calibrated", "accuracy_best",
                "tpr_at_1pct_fpr", "threshold", "best_threshold", "youden_threshold"):
        assert in_range(entry[key], 0.0, 1.0), (key, entry[key])
    # EER exceeds 0.5 only for a detector worse than chance (AUC < 0.5: tiny fakes can be)
    assert in_range(entry["eer"], 0.0, 1.0), entry["eer"]
    if entry["auc"] >= 0.6:
        assert entry["eer"] <= 0.5, (entry["auc"], entry["eer"])
    for key, value in entry.items():
        if key.endswith("_ci"):
            low, high = value
            point = entry[key[:-3]]
            assert low - 1e-9 <= point <= high + 1e-9, (key, low, point, high)
    assert entry["n_boot"] == 20


@pytest.mark.slow
def test_results_metrics_in_range(bench):
    results = results_of(bench["out"])
    gens, dets = results["generators"], results["detectors"]
    assert gens == ["gan", "vae"] and dets == DETS
    for d in dets:
        for g in gens:
            entry = results["in_distribution"][d][g]
            check_report(entry)
            assert entry["n_real"] == results["data"]["real_test"]
            assert entry["n_fake"] == 20  # 10 % of 200 fakes held out
            check_report(results["leave_one_out"][d][g])
            roc = results["roc"][d][g]
            assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0
            assert np.all(np.diff(roc["tpr"]) >= 0)
        # the cross-generator matrix is complete, its diagonal the in-distribution AUC
        matrix = results["cross_generator"][d]
        assert set(matrix) == set(gens)
        for g in gens:
            assert set(matrix[g]) == set(gens)
            assert all(in_range(v, 0.0, 1.0) for v in matrix[g].values())
            assert matrix[g][g] == pytest.approx(results["in_distribution"][d][g]["auc"])
        robust = results["robustness"][d]["jpeg"]["50.0"]
        assert set(robust) == set(gens)
        for cell in robust.values():
            assert in_range(cell["auc"], 0.0, 1.0)
            assert in_range(cell["accuracy_calibrated"], 0.0, 1.0)
        assert results["timing"]["throughput_images_per_s"][d] > 0
        summary = results["summary"]["per_detector"][d]
        assert summary["mean_auc_jpeg50"] == pytest.approx(np.mean([c["auc"] for c in robust.values()]))
        assert summary["min_in_distribution_auc"] <= summary["mean_in_distribution_auc"]
    assert results["summary"]["best_detector"] in dets


@pytest.mark.slow
def test_results_record_provenance(bench):
    results = results_of(bench["out"])
    assert results["seed"] == 0 and results["suite_name"] == "tiny"
    assert results["suite"]["fakes_per_generator"] == 200
    data = results["data"]
    assert data["name"] == "digits" and data["sha256"]
    assert data["real_train"] == 300
    assert data["real_val"] > 0 and data["real_test"] > 0
    assert results["versions"]["numpy"] and results["versions"]["torch"]
    assert results["machine"]["cpu_count"] >= 1
    assert results["timing"]["seconds"]["total"] > 0
    assert results["timing"]["created"] and "load_average_1m" not in results["machine"]
    for key in ("generator:gan", "synthetic:gan", "detector:spectral-fft:gan", "real"):
        assert results["artefacts"][key]


@pytest.mark.slow
def test_perturbations_log_one_line_per_image(bench):
    results = results_of(bench["out"])
    lines = (bench["out"] / "perturbations.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    n_real = results["data"]["real_test"]
    assert len(rows) == n_real + 2 * 20
    assert {(r["source"], r["perturbation"], r["strength"], r["quality"]) for r in rows} == {
        (s, "jpeg", 50.0, 50) for s in ("real", "gan", "vae")}
    assert sorted(r["index"] for r in rows if r["source"] == "real") == list(range(n_real))
    assert sorted(r["index"] for r in rows if r["source"] == "gan") == list(range(20))


# -- the protocols users need ---------------------------------------------------------------------


def test_leave_one_out_for_every_detector_with_fpr(bench):
    results = results_of(bench["out"])
    for d in DETS:
        assert set(results["leave_one_out"][d]) == {"gan", "vae"}
        for g, entry in results["leave_one_out"][d].items():
            assert in_range(entry["fpr_calibrated"], 0.0, 1.0)
            assert entry["fpr_calibrated"] == results["false_positive_rate"][d][f"all-but-{g}"]
        assert set(results["false_positive_rate"][d]) == {"gan", "vae", "all-but-gan",
                                                          "all-but-vae", "all"}
        summary = results["summary"]["per_detector"][d]
        aucs = {g: e["auc"] for g, e in results["leave_one_out"][d].items()}
        assert summary["worst_leave_one_out_auc"] == min(aucs.values())
        assert summary["worst_leave_one_out_generator"] == min(aucs, key=aucs.get)
        assert summary["mean_leave_one_out_auc"] == pytest.approx(np.mean(list(aucs.values())))
        for key in ("worst_leave_one_out_fpr", "mean_leave_one_out_fpr", "mean_cross_generator_fpr",
                    "min_in_distribution_fpr", "processed_real_fpr", "plain_fpr",
                    "ood_fake_call_rate", "ood_abstain_rate"):
            assert in_range(summary[key], 0.0, 1.0), (d, key)


def test_false_positives_on_processed_real_images(bench):
    results = results_of(bench["out"])
    for d in DETS:
        entry = results["processed_real"][d]
        assert entry["detector"] == "all" and entry["n"] == results["data"]["real_test"]
        assert set(entry["fpr"]) == {"plain", "jpeg75", "resize0.75", "blur0.5", "png"}
        assert all(in_range(v, 0.0, 1.0) for v in entry["fpr"].values())
        assert entry["max_processed_fpr"] == max(v for k, v in entry["fpr"].items() if k != "plain")
        assert entry["fpr"]["plain"] == results["false_positive_rate"][d]["all"]
        assert results["summary"]["per_detector"][d]["processed_real_fpr"] == entry["max_processed_fpr"]
    report = (bench["out"] / "report.md").read_text()
    assert "processed real" in report
    # the highest rate, stated with its count and exact interval (a few hundred images each)
    worst = max(v for entry in results["processed_real"].values() for v in entry["fpr"].values())
    n = results["data"]["real_test"]
    assert f"{round(worst * n)} of {n} ({worst:.3f}; exact 95 % interval" in report


def test_png_resave_is_lossless():
    batch = images(3)
    out, params = apply("png", 1.0, batch)
    from forensics.images import to_float, to_uint8

    np.testing.assert_array_equal(out, to_float(to_uint8(batch)))
    assert params[0] == {"png": 1.0}


def test_out_of_domain_abstains_by_the_domain_record(bench):
    """Each detector's recorded domain decides: photographs (colour, another size) and other
    sizes are abstained on and never called fake; what is judged is counted apart."""
    from benchmarks.runner import ood_sets

    results = results_of(bench["out"])
    for d in DETS:
        entry = results["out_of_domain"][d]
        assert entry["domain_record"] is True and entry["note"] is None
        assert set(entry["sets"]) == {"photos", "photo_patches", "noise", "other_size"}
        assert entry["sets"]["photos"]["n"] == 2 and entry["sets"]["photo_patches"]["n"] >= 100
        for name in ("photos", "other_size"):
            assert entry["sets"][name]["abstained"] == 1.0 and entry["sets"][name]["called_fake"] == 0
        # uniform noise: mostly abstained on (even at 8×8); what is judged is counted apart
        # (noise is no generator's fake: a detector may judge it either way)
        noise = entry["sets"]["noise"]
        assert noise["abstained"] >= 0.5, noise
        assert noise["called_fake"] <= 1 - noise["abstained"] + 1e-9, noise
        for cell in entry["sets"].values():
            assert in_range(cell["called_fake"], 0.0, 1.0)
            assert cell["called_fake"] <= 1 - cell["abstained"] + 1e-9
        assert entry["fake_call_rate"] == pytest.approx(
            np.mean([c["called_fake"] for c in entry["sets"].values()]))
    shapes = {name: set(pair[1]) for name, pair in
              ood_sets((1, 8, 8), np.zeros((5, 1, 8, 8), np.float32)).items()}
    assert shapes["photos"] == {(3, 427, 640)} and shapes["noise"] == {(1, 8, 8)}
    assert shapes["other_size"] == {(1, 16, 16)} and shapes["photo_patches"] == {(1, 8, 8)}


def test_attribution_in_the_benchmark_is_multiclass(bench):
    from detectors.base import load_detector

    results = results_of(bench["out"])
    assert results["families"]["attribution"]["multiclass"] is True
    matrix = results["attribution"]["attribution"]
    assert matrix["labels"] == ["real", "gan", "vae"]
    assert np.array(matrix["rows_true_columns_predicted"]).shape == (3, 3)
    folder = detector_folder(bench["cache"], "attribution-all")
    assert load_detector(folder).classes_ == ["real", "gan", "vae"]
    single = detector_folder(bench["cache"], "attribution-gan")
    assert load_detector(single).classes_ == ["real", "gan"]


def test_discriminator_comes_from_the_suites_gan(bench):
    results = results_of(bench["out"])
    assert results["families"]["discriminator"]["needs_run"] is True
    header = json.loads((detector_folder(bench["cache"], "discriminator-vae")
                         / "detector.json").read_text())
    assert Path(header["options"]["run"]).parent == bench["cache"] / "generators"
    assert Path(header["options"]["run"]).name.startswith("gan-")
    assert set(results["cross_generator"]["discriminator"]["gan"]) == {"gan", "vae"}


def test_best_detector_by_worst_logo_then_processed_fpr(bench):
    results = results_of(bench["out"])
    rows = results["summary"]["per_detector"]
    best = min(results["detectors"], key=lambda d: (-rows[d]["worst_leave_one_out_auc"],
                                                    rows[d]["processed_real_fpr"]))
    assert results["summary"]["best_detector"] == best
    assert "worst-case leave-one-generator-out" in results["summary"]["best_detector_rule"]


def test_real_only_family_is_fitted_once(bench, tmp_path, monkeypatch):
    """A family with ``needs_fakes = False``: one detector for every protocol."""
    from detectors.registry import get

    monkeypatch.setattr(get("pixel-logreg"), "needs_fakes", False, raising=False)
    suite = tmp_path / "real_only.toml"
    suite.write_text(HEAD + GENERATORS + VAE + DETECTORS.split("[detectors.spectral-fft]")[0])
    out, cache = tmp_path / "report", tmp_path / "cache"
    import shutil

    shutil.copytree(bench["cache"] / "generators", cache / "generators")
    shutil.copytree(bench["cache"] / "synthetic", cache / "synthetic")
    result = invoke("benchmark", "--suite", suite, "--out", out, "--cache", cache)
    assert result.exit_code == 0, result.output
    assert [p.name.rsplit("-", 1)[0] for p in (cache / "detectors").iterdir()] == \
        ["pixel-logreg-real-only"]
    results = results_of(out)
    assert results["families"]["pixel-logreg"]["needs_fakes"] is False
    for g in ("gan", "vae"):
        assert results["leave_one_out"]["pixel-logreg"][g] == \
            results["in_distribution"]["pixel-logreg"][g]
        assert results["cross_generator"]["pixel-logreg"]["gan"][g] == \
            results["cross_generator"]["pixel-logreg"]["vae"][g]


def test_split_of_a_source_does_not_depend_on_the_others():
    from detectors.training import split_fakes
    from forensics.data import split_parts

    fakes = np.random.default_rng(0).random((50, 1, 4, 4)).astype(np.float32)
    alone = split_fakes({"gan": fakes})["gan"]
    beside = split_fakes({"ae": fakes[:20], "gan": fakes, "vae": fakes[:30]})["gan"]
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(alone[part], beside[part])
    parts = split_parts(50, 3)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(50))


# -- the cache ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_second_run_reuses_the_cache(bench):
    first, second = bench["after_first"], bench["after_second"]
    kinds = {p.parent.name for p in first}
    assert kinds == {"generators", "synthetic", "detectors"}
    assert second == first  # no new folder, none rewritten (times are the benchmark's business)


@pytest.mark.slow
def test_second_run_gives_identical_numbers(bench):
    a, b = results_of(bench["out"]), results_of(bench["again"])
    assert {k: v for k, v in a.items() if k not in TIMED} == \
        {k: v for k, v in b.items() if k not in TIMED}
    assert (bench["out"] / "perturbations.jsonl").read_bytes() == \
        (bench["again"] / "perturbations.jsonl").read_bytes()


@pytest.mark.slow
def test_split_of_fakes_does_not_depend_on_suite_order(bench, tmp_path):
    """A cached detector is reused by any suite naming the same generator: its held-out
    fakes must be the same ones, or the detector is tested on images it trained on."""
    suite = tmp_path / "vae_only.toml"
    suite.write_text(HEAD + VAE + DETECTORS + "\n[perturbations]\njpeg = [50]\n")
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "report", "--cache",
                    bench["cache"])
    assert result.exit_code == 0, result.output
    assert folders(bench["cache"]) == bench["after_first"]  # everything came from the cache
    alone, together = results_of(tmp_path / "report"), results_of(bench["out"])
    for d in alone["detectors"]:
        assert alone["in_distribution"][d]["vae"] == together["in_distribution"][d]["vae"]
        assert alone["robustness"][d] == {"jpeg": {"50.0": {
            "vae": together["robustness"][d]["jpeg"]["50.0"]["vae"]}}}


@pytest.mark.slow
def test_suite_without_perturbations(bench, tmp_path):
    suite = tmp_path / "plain.toml"
    suite.write_text(HEAD + GENERATORS + DETECTORS)
    out = tmp_path / "report"
    result = invoke("benchmark", "--suite", suite, "--out", out, "--cache", bench["cache"])
    assert result.exit_code == 0, result.output
    results = results_of(out)
    assert results["robustness"] == {} and results["leave_one_out"]["pixel-logreg"] == {}
    assert "no perturbations" in (out / "report.md").read_text()
    assert (out / "perturbations.jsonl").read_text() == ""
    assert not (out / "robustness.png").exists()


@pytest.mark.slow
def test_fresh_retrains(bench, tmp_path):
    """--fresh rebuilds what the suite names (here its GAN part), and nothing else."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(bench["cache"], cache)
    before = folders(cache)
    suite = tmp_path / "gan_only.toml"
    suite.write_text(HEAD + GENERATORS + DETECTORS + "\n[perturbations]\njpeg = [50]\n")
    time.sleep(0.01)
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "report",
                    "--cache", cache, "--fresh")
    assert result.exit_code == 0, result.output
    after = folders(cache)
    assert [p.name for p in after] == [p.name for p in before]
    artefacts = results_of(tmp_path / "report")["artefacts"]
    names = {"-".join(label.split(":")[1:]) + "-" + key for label, key in artefacts.items()}
    named = {p for p in before if p.name in names}
    assert {p.parent.name for p in named} == {"generators", "synthetic", "detectors"}
    assert all(after[p] > before[p] for p in named), "every artefact of the suite rebuilt"
    assert all(after[p] == before[p] for p in before if p not in named)
    a, b = results_of(bench["out"]), results_of(tmp_path / "report")
    # retrained on CPU with the same seeds: the same detectors, so the same numbers
    for d in b["detectors"]:
        assert a["in_distribution"][d]["gan"] == b["in_distribution"][d]["gan"]


# -- bad suites ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../quick", "../../etc/passwd", "sub/quick", ".hidden"])
def test_suite_name_with_path_parts_refused(name, tmp_path):
    result = invoke("benchmark", "--suite", name, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, "plain name")
    assert not (tmp_path / "c").exists()


def test_unknown_suite(tmp_path):
    result = invoke("benchmark", "--suite", "no-such-suite", "--out", tmp_path / "r",
                    "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, "no-such-suite", "quick")


def test_missing_suite_file(tmp_path):
    result = invoke("benchmark", "--suite", tmp_path / "absent.toml", "--out", tmp_path / "r",
                    "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, "absent.toml")


def test_unknown_perturbation(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text(HEAD + GENERATORS + DETECTORS + "\n[perturbations]\nsharpen = [1.0]\n")
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, "unknown perturbation", "sharpen")


@pytest.mark.parametrize("body, fragment", [
    (HEAD + GENERATORS, "no detectors"),
    (HEAD + DETECTORS, "no generators"),
    (HEAD + GENERATORS + '[detectors.x]\nclassifier = "svm"\n', "has no kind"),
    ("name = [", "not valid TOML"),
    (HEAD + GENERATORS + DETECTORS + '\n[perturbations]\njpeg = "fifty"\n', "jpeg"),
    (HEAD + GENERATORS + DETECTORS + "\n[perturbations]\njpeg = 50\n", "jpeg"),
])
def test_malformed_suite(tmp_path, body, fragment):
    suite = tmp_path / "bad.toml"
    suite.write_text(body)
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, fragment)


LAST_DETECTOR_TYPO = '\n[detectors.cnn]\nkind = "cnn"\noptions = { epochz = 2 }\n'


@pytest.mark.parametrize("body, fragments", [
    (HEAD + "fakes_per_generatr = 10\n" + GENERATORS + DETECTORS, ["fakes_per_generatr"]),
    (HEAD.replace("= 200", "= -5") + GENERATORS + DETECTORS, ["fakes_per_generator", "-5"]),
    (HEAD + GENERATORS.replace("epochs = 1", "epochs = 1.5") + DETECTORS, ["epochs", "1.5"]),
    (HEAD + GENERATORS + DETECTORS + "\n[perturbations]\njpeg = [500, -3]\n",
     ["jpeg", "500", "-3", "1-100"]),
    (HEAD + GENERATORS + DETECTORS + "\n[perturbations]\nblur = [0]\n", ["blur", "0"]),
    (HEAD + GENERATORS + DETECTORS + LAST_DETECTOR_TYPO, ["[detectors.cnn]", "epochz"]),
    (HEAD + GENERATORS.replace("width = 8", "widht = 8") + DETECTORS, ["generators.gan", "widht"]),
    (HEAD + GENERATORS + DETECTORS + '\n[detectors.x]\nkind = "cnn"\nepochs = 2\n',
     ["[detectors.x]", "unknown key", "epochs"]),
    (HEAD + GENERATORS + DETECTORS + '\n[detectors.d]\nkind = "discriminator"\n'
     'options = { run = "runs/gan" }\n', ["run", "itself"]),
    (HEAD + VAE + DETECTORS + '\n[detectors.d]\nkind = "discriminator"\n', ["no gan"]),
    (HEAD.replace('"digits"', '"digitz"') + GENERATORS + DETECTORS, ["digitz"]),
    (HEAD.replace("reference_steps = 0", "reference_steps = -1") + GENERATORS + DETECTORS,
     ["reference_steps", "-1"]),
    (HEAD + GENERATORS + '\n[generators.ae]\nkind = "ae"\noptions = { lam = 0.1 }\n' + DETECTORS,
     ["[generators.ae]", "lam applies only to variant sparse or contractive, not plain"]),
])
def test_invalid_suite_fails_before_training(tmp_path, body, fragments):
    suite = tmp_path / "bad.toml"
    suite.write_text(body)
    began = time.perf_counter()
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, str(suite), *fragments)
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()
    assert time.perf_counter() - began < 10  # checked, not trained (the first second, unloaded)


def test_every_suite_problem_on_its_own_line(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text(HEAD.replace("= 200", "= -5") + "colour = 1\n" + GENERATORS + DETECTORS
                     + LAST_DETECTOR_TYPO)
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), lines
    assert not (tmp_path / "c").exists()


def test_shipped_suites_are_valid():
    from benchmarks.suite import SUITES, load_suite

    for path in SUITES.glob("*.toml"):
        suite = load_suite(str(path))
        kinds = {entry["kind"] for entry in suite.detectors.values()}
        assert {"pixel-logreg", "attribution", "discriminator", "cnn"} <= kinds, path


def test_unknown_generator_or_detector_kind(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text(HEAD + GENERATORS + '[detectors.x]\nkind = "no-such-detector"\n')
    result = invoke("benchmark", "--suite", suite, "--out", tmp_path / "r", "--cache", tmp_path / "c")
    assert_one_line_error(result, 2, "no-such-detector")


# -- perturbations ------------------------------------------------------------------------------


def images(channels: int, n: int = 6, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(channels)
    smooth = rng.random((n, channels, size // 4, size // 4))
    return np.kron(smooth, np.ones((1, 1, 4, 4))).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(DEFAULT))
def test_perturb_keeps_shape_and_records_params(name, channels):
    batch = images(channels)
    for strength in DEFAULT[name]:
        out, params = apply(name, strength, batch, seed=3)
        assert out.shape == batch.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert len(params) == len(batch)
        assert all(isinstance(p, dict) and p for p in params)
        json.dumps(params)  # written to perturbations.jsonl
        again, params_again = apply(name, strength, batch, seed=3)
        np.testing.assert_array_equal(out, again)
        assert params == params_again


def test_perturb_params_name_the_strength():
    batch = images(1)
    assert apply("jpeg", 30, batch)[1][0] == {"quality": 30}
    assert apply("blur", 2.0, batch)[1][0] == {"sigma": 2.0}
    assert apply("downscale", 0.5, batch)[1][0] == {"factor": 0.5}
    chain = apply("chain", 75, batch)[1]
    assert all(p["quality"] == 75 and p["crop_h"] == 14 for p in chain)


def test_perturb_random_ones_depend_on_seed():
    batch = images(1, n=20)
    crops = [apply("crop", 0.25, batch, seed=s)[1] for s in (0, 1)]
    assert crops[0] != crops[1]
    for p in crops[0]:
        assert p["crop_h"] == p["crop_w"] == 12
        assert 0 <= p["top"] <= 4 and 0 <= p["left"] <= 4
    noisy = [apply("noise", 10.0, batch, seed=s)[0] for s in (0, 1)]
    assert not np.array_equal(noisy[0], noisy[1])


def test_perturb_crop_is_the_recorded_crop():
    """The params rebuild the perturbed image exactly."""
    from forensics.images import opencv

    cv2 = opencv()

    from forensics.images import to_float, to_uint8

    batch = images(3, n=3)
    out, params = apply("crop", 0.25, batch, seed=5)
    for image, p, got in zip(to_uint8(batch), params, out, strict=True):
        crop = image[p["top"] : p["top"] + p["crop_h"], p["left"] : p["left"] + p["crop_w"]]
        expected = cv2.resize(crop, (16, 16), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(to_float(expected[None])[0], got)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_quality_orders_the_damage(channels):
    batch = images(channels, n=8, size=32)
    noise = np.random.default_rng(0).random(batch.shape).astype(np.float32) * 0.2
    batch = np.clip(batch + noise, 0, 1)
    error = {q: np.abs(apply("jpeg", q, batch)[0] - batch).mean() for q in (95, 75, 50, 30)}
    assert 0 < error[95] < error[75] < error[50] < error[30]
    blur = {s: np.abs(apply("blur", s, batch)[0] - batch).mean() for s in (0.5, 1.0, 2.0)}
    assert blur[0.5] < blur[1.0] < blur[2.0]


def test_jpeg_matches_a_real_jpeg_save_of_rgb_images():
    """The perturbation is what saving the RGB image as JPEG does (as Pillow writes it)."""
    from PIL import Image

    from forensics.images import to_uint8

    batch = images(3, n=4, size=32)
    batch[:, 0, 8:24, 8:24] = 1.0  # saturated red squares: channel order matters
    batch[:, 1:, 8:24, 8:24] = 0.0
    out, _ = apply("jpeg", 50, batch)
    for image, got in zip(to_uint8(batch), to_uint8(out), strict=True):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=50)
        expected = np.asarray(Image.open(buffer).convert("RGB"))
        assert np.abs(got.astype(int) - expected).mean() < 1.0


def test_unknown_perturbation_name():
    with pytest.raises(ValueError, match="sharpen"):
        apply("sharpen", 1.0, images(1))


def test_two_generators_train_leave_one_out_once(bench):
    """With gan and vae, "all but gan" is "vae": one detector serves both experiments."""
    results = results_of(bench["out"])
    for d in ("pixel-logreg", "spectral-fft", "attribution"):
        trained = sorted(p.name.rsplit("-", 1)[0] for p in (bench["cache"] / "detectors").iterdir()
                         if p.name.startswith(f"{d}-"))
        assert trained == [f"{d}-all", f"{d}-gan", f"{d}-vae"], trained
        for g, h in (("gan", "vae"), ("vae", "gan")):
            assert results["leave_one_out"][d][g]["auc"] == pytest.approx(results["cross_generator"][d][h][g])


def test_heatmap_has_one_scale_and_a_colour_bar_per_panel(bench):
    from PIL import Image

    with Image.open(bench["out"] / "cross_generator_auc.png") as image:
        width, height = image.size
    assert width > 4 * 300 and height > 300  # four panels, each with its colour bar
    assert "0.5 = chance" in (bench["out"] / "report.md").read_text()


def test_report_states_the_reference_workload_and_the_wall_time_in_its_units():
    from benchmarks.report import _reference_line

    timing = {"seconds": {"total": 120.0}, "reference": {
        "workload": "reference v1: 60 steps", "seconds": 4.0, "load_average_1m_before": 1.5}}
    line = _reference_line(timing)
    assert "reference v1: 60 steps" in line and "4.0 s at load 1.50" in line
    assert "30 reference units" in line
    assert _reference_line({"seconds": {"total": 1.0}, "reference": None}) == ""
