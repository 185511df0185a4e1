"""``forensics train-detector`` and ``forensics detect`` on a tiny real world.

A 1-epoch GAN on ``digits`` (8×8 gray) makes 200 fakes; spectral-fft and
pixel-logreg detectors are trained on them through the CLI; ``detect`` then
scores single files, folders, broken files and foreign sizes.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from forensics.images import png_bytes, read_image
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
N_FAKES = 200


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny GAN run, its 200 fakes, and detectors trained on them through the CLI."""
    from generators.training import train

    root = tmp_path_factory.mktemp("detect_world")
    run = root / "gan"
    train("gan", {"width": 8, "noise_dim": 8, "batch_size": 32}, out=run, dataset="digits",
          epochs=1, seed=0, device="cpu")
    fakes = root / "fakes"
    result = invoke("generate", run, "--n", N_FAKES, "--out", fakes, "--seed", 0, "--device", "cpu")
    assert result.exit_code == 0, result.output
    detectors = {}
    for kind in ("spectral-fft", "pixel-logreg"):
        out = root / "detectors" / kind
        result = invoke("train-detector", kind, "--real", "digits", "--fake", fakes, "--out", out)
        assert result.exit_code == 0, result.output
        assert "balanced accuracy" in result.stdout
        detectors[kind] = out
    return {"root": root, "run": run, "fakes": fakes, "detectors": detectors}


def fake_png(world, index: int = 0) -> Path:
    return world["fakes"] / f"img_{index:06d}.png"


# -- train-detector -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["spectral-fft", "pixel-logreg"])
def test_train_detector_writes_a_calibrated_detector(world, kind):
    folder = world["detectors"][kind]
    header = json.loads((folder / "detector.json").read_text())
    assert header["kind"] == kind
    assert 0.0 <= header["threshold"] <= 1.0
    assert header["input_shape"] == [1, 8, 8]
    assert header["data"]["real"]["name"] == "digits"
    # the manifest names the generator, so the fake source is "gan", with all 200 images
    assert header["data"]["fakes"]["gan"]["n"] == N_FAKES
    assert 0.0 <= header["metrics"]["auc"] <= 1.0
    for name in header["files"]:
        assert (folder / name).is_file()


def _numbers(line: str) -> dict[str, float]:
    """``name value`` pairs of a printed report line (``TPR 0.9500`` → {"TPR": 0.95})."""
    import re

    return {name: float(value) for name, value in re.findall(r"([A-Za-z][\w -]*?) (\d\.\d+)", line)}


def test_train_detector_prints_the_json_metrics_at_the_threshold(world):
    """The printed balanced accuracy, TPR, FPR and per-source TPR are detector.json's metrics;
    the imbalance (digits ~1,400 reals : 160 fakes in training) is warned about, and balanced."""
    folder = world["detectors"]["pixel-logreg"]
    header = json.loads((folder / "detector.json").read_text())
    metrics = header["metrics"]
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", world["fakes"],
                    "--out", folder, "--force")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("test at the threshold"))
    printed = _numbers(line)
    assert printed["balanced accuracy"] == pytest.approx(metrics["balanced_accuracy"], abs=1e-4)
    assert printed["TPR"] == pytest.approx(metrics["tpr"], abs=1e-4)
    assert printed["FPR"] == pytest.approx(metrics["fpr"], abs=1e-4)
    assert "accuracy 0." not in line.replace("balanced accuracy", "")
    assert f"TPR gan {metrics['per_source_tpr']['gan']:.3f}" in result.stdout
    assert "fpr rule" in result.stdout
    sets = metrics["threshold_sets"]  # which real validation set put the threshold where it is
    assert (f"the fpr threshold is set by real images under {sets['set_by']};" in result.stdout) \
        is (sets["set_by"] != "plain")
    # the metrics themselves: recomputed from the test counts they describe
    n = metrics["n"]["test"]
    assert metrics["balanced_accuracy"] == pytest.approx((metrics["tpr"] + 1 - metrics["fpr"]) / 2)
    assert metrics["fpr"] == metrics["real_fpr"]["plain"] and n["gan"] == 20
    balance = metrics["class_balance"]
    assert balance["counts"] == {"real": metrics["n"]["train"]["real"], "fake": 160}
    assert balance["balanced"] is True and balance["ratio"] > 3
    assert header["options"]["balance"] is True
    warning = [x for x in result.stderr.splitlines() if x.startswith("warning: imbalanced")]
    assert len(warning) == 1 and "balanced by class weights" in warning[0]


def test_train_detector_stores_a_platt_calibration(world):
    """Platt's a, b sit beside the threshold, fitted on validation images plain and under each
    ordinary processing (reals and fakes alike); they map the raw score monotonically, and a
    verdict (raw score vs threshold) is unchanged by them. Processed real images get the
    P(fake) of real images, not of fakes."""
    from detectors import load_detector
    from forensics.data import load_split
    from forensics.domain import PROCESSINGS, process

    header = json.loads((world["detectors"]["spectral-fft"] / "detector.json").read_text())
    probability = header["probability"]
    assert probability["method"] == "platt" and probability["a"] > 0
    copies = 1 + len(PROCESSINGS)
    assert probability["fitted_on"]["real"] > 0 and probability["fitted_on"]["fake"] == 20 * copies
    assert probability["fitted_on"]["real"] % copies == 0 and "processing" in probability["fitted_on"]["what"]
    detector = load_detector(world["detectors"]["spectral-fft"])
    real_test = load_split("digits", "test").images
    processed = process(real_test, np.random.default_rng(3))
    assert np.median(detector.probability(detector.predict_proba(processed))) < 0.5
    scores = detector.predict_proba(real_test[:50])
    calibrated = detector.probability(scores)
    assert calibrated.shape == scores.shape and np.all((calibrated >= 0) & (calibrated <= 1))
    order = np.argsort(scores)
    assert np.all(np.diff(calibrated[order]) >= -1e-12)


def test_train_detector_no_balance_epochs_device(world, tmp_path):
    """--no-balance is recorded (and no longer claims balancing); --epochs, --device and
    --precision reach a torch detector (the precision that ran is recorded); --epochs on a
    detector without epochs is one line."""
    out = tmp_path / "cnn"
    result = invoke("train-detector", "cnn", "--real", "digits", "--fake", world["fakes"], "--out", out,
                    "--epochs", 2, "--device", "cpu", "--no-balance", "--set", "width=4",
                    "--precision", "auto")
    assert result.exit_code == 0, result.output
    header = json.loads((out / "detector.json").read_text())
    assert header["options"]["epochs"] == 2 and header["options"]["device"] == "cpu"
    # the option as given, and what ran: auto resolved for this CPU
    import torch

    from forensics.runtime import resolve_precision

    assert header["options"]["precision"] == "auto"
    assert header["trained_precision"] == resolve_precision("auto", torch.device("cpu"))
    assert header["options"]["balance"] is False
    assert header["metrics"]["class_balance"]["balanced"] is False
    assert "not balanced" in result.stderr
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", world["fakes"],
                    "--out", tmp_path / "p", "--epochs", 3)
    assert_one_line_error(result, 2, "--epochs", "pixel-logreg")


def test_train_detector_attribution_prints_recall_per_class(world, tmp_path):
    """Attribution: each class's recall (a class never predicted shows 0.000) next to JSON's."""
    out = tmp_path / "attr"
    result = invoke("train-detector", "attribution", "--real", "digits", "--fake", world["fakes"],
                    "--out", out, "--epochs", 1, "--device", "cpu", "--set", "width=4")
    assert result.exit_code == 0, result.output
    confusion = json.loads((out / "detector.json").read_text())["metrics"]["confusion_matrix"]
    matrix = np.array(confusion["rows_true_columns_predicted"])
    recall = np.diag(matrix) / matrix.sum(1)
    assert confusion["recall"] == pytest.approx(dict(zip(confusion["labels"], recall, strict=True)))
    assert confusion["balanced_accuracy"] == pytest.approx(recall.mean())
    line = next(x for x in result.stdout.splitlines() if x.startswith("attribution recall per class"))
    for name, value in confusion["recall"].items():
        assert f"{name} {value:.3f}" in line


def test_train_detector_refuses_existing_folder(world):
    result = invoke("train-detector", "spectral-fft", "--real", "digits", "--fake", world["fakes"],
                    "--out", world["detectors"]["spectral-fft"])
    assert_one_line_error(result, 2, "already exists")


def test_train_detector_unknown_kind(world, tmp_path):
    result = invoke("train-detector", "no-such-detector", "--real", "digits", "--fake",
                    world["fakes"], "--out", tmp_path / "d")
    assert_one_line_error(result, 2, "no-such-detector")
    assert not (tmp_path / "d").exists()


def _real_fake_layout(world, root: Path, n_real: int = 100) -> Path:
    """``0_real/`` (28×28 mnist5k test digits) + ``1_fake/`` (the world's 8×8 fakes)."""
    from forensics.data import load_split

    layout = root / "bench"
    (layout / "0_real").mkdir(parents=True)
    shutil.copytree(world["fakes"], layout / "1_fake")
    (layout / "1_fake" / "manifest.json").unlink()
    for i, image in enumerate(load_split("mnist5k", "test").images[:n_real]):
        (layout / "0_real" / f"r{i:03d}.png").write_bytes(
            png_bytes((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)))
    return layout


def test_train_detector_real_fake_layout(world, tmp_path):
    """``0_real/`` + ``1_fake/``: the 0_real images *are* the real data (not added to mnist5k),
    split 80/10/10, at their own size; detector.json records both sides' names, counts, hashes."""
    layout = _real_fake_layout(world, tmp_path)
    out = tmp_path / "det"
    result = invoke("train-detector", "spectral-fft", "--fake", layout, "--out", out)
    assert result.exit_code == 0, result.output
    header = json.loads((out / "detector.json").read_text())
    assert 0.0 <= header["threshold"] <= 1.0
    assert header["input_shape"] == [1, 28, 28]  # the real images' size; the 8×8 fakes conformed
    assert header["data"]["fakes"]["bench"]["n"] == N_FAKES
    assert len(header["data"]["fakes"]["bench"]["sha256"]) == 16
    real = header["data"]["real"]
    assert real["name"] == f"folder:{layout / '0_real'}" and len(real["sha256"]) == 16
    assert real["n"] == {"train": 80, "val": 10, "test": 10}
    counts = header["metrics"]["n"]
    assert [counts[part]["real"] for part in ("train", "val", "test")] == [80, 10, 10]


def test_train_detector_refuses_real_with_a_real_fake_layout(world, tmp_path):
    layout = _real_fake_layout(world, tmp_path, n_real=20)
    result = invoke("train-detector", "spectral-fft", "--real", "digits", "--fake", layout,
                    "--out", tmp_path / "det")
    assert_one_line_error(result, 2, "0_real")
    second = tmp_path / "second"
    shutil.copytree(layout, second)
    result = invoke("train-detector", "spectral-fft", "--fake", layout, "--fake", second,
                    "--out", tmp_path / "det")
    assert_one_line_error(result, 2, "0_real")
    assert not (tmp_path / "det").exists()


def test_train_detector_ignores_non_manifest_pngs_of_a_generate_folder(world, tmp_path):
    """Figures written into a synthetic set (e.g. ``audit/``) are not training fakes."""
    fakes = tmp_path / "fakes"
    shutil.copytree(world["fakes"], fakes)
    (fakes / "audit").mkdir()
    for i in range(5):
        (fakes / "audit" / f"figure{i}.png").write_bytes(
            png_bytes(np.full((40, 60, 3), 200, np.uint8)))
    out = tmp_path / "det"
    result = invoke("train-detector", "pixel-logreg", "--real", "digits", "--fake", fakes,
                    "--out", out)
    assert result.exit_code == 0, result.output
    header = json.loads((out / "detector.json").read_text())
    assert header["data"]["fakes"]["gan"]["n"] == N_FAKES


# -- detect: one file, folders, output formats --------------------------------------------------


def test_detect_single_png_json(world):
    det = world["detectors"]["spectral-fft"]
    # a 1-epoch GAN's fakes are often atypical of digits (out of domain): --force scores them
    result = invoke("detect", fake_png(world), "--detector", det, "--json", "--force")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["file"].endswith("img_000000.png")
    assert record["threshold_rule"] == "fpr" and isinstance(record["in_domain"], bool)
    assert 0.0 <= record["p_fake"] <= 1.0
    assert record["verdict"] in ("real", "fake")
    threshold = json.loads((det / "detector.json").read_text())["threshold"]
    assert record["verdict"] == ("fake" if record["p_fake"] >= threshold else "real")
    assert record["scores"] == {"spectral-fft": record["p_fake"]}
    tag = record["provenance_tag"]
    assert isinstance(tag, dict) and tag["generator"] == "gan"
    manifest = json.loads((world["fakes"] / "manifest.json").read_text())
    assert tag["index"] == 0
    assert tag["run_config_hash"] == manifest["header"]["run_config_hash"]
    assert "1 scored, 0 skipped" in result.stderr


def test_detect_single_png_table(world):
    result = invoke("detect", fake_png(world, 3), "--detector", world["detectors"]["spectral-fft"])
    assert result.exit_code == 0, result.output
    assert "img_000003.png" in result.stdout
    assert "gan" in result.stdout  # the provenance tag column
    threshold = json.loads((world["detectors"]["spectral-fft"] / "detector.json").read_text())["threshold"]
    # the title names the threshold and its rule
    assert f"fake when score ≥ {threshold:.4g} (fpr rule)" in result.stdout


def test_detect_score_matches_the_library(world):
    """The CLI's P(fake) is the detector's predict_proba on the file as read."""
    from detectors.base import load_detector
    from forensics.images import to_float

    det = world["detectors"]["pixel-logreg"]
    result = invoke("detect", fake_png(world, 7), "--detector", det, "--json", "--force")
    [record] = records(result)
    expected = load_detector(det).predict_proba(to_float(read_image(fake_png(world, 7))[None]))[0]
    assert record["p_fake"] == pytest.approx(expected, abs=1e-6)


def test_detect_folder_recursive_json(world, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(world["fakes"], tree / "a")
    (tree / "b" / "c").mkdir(parents=True)
    for i in range(3):
        shutil.copy(fake_png(world, i), tree / "b" / "c" / f"deep{i}.png")
    result = invoke("detect", tree, "--detector", world["detectors"]["spectral-fft"], "--json", "--force")
    assert result.exit_code == 0, result.output
    rows = records(result)
    assert len(rows) == N_FAKES + 3
    files = [row["file"] for row in rows]
    assert len(set(files)) == len(files)
    assert sum("deep" in f for f in files) == 3
    assert all(0.0 <= row["p_fake"] <= 1.0 for row in rows)
    assert {row["verdict"] for row in rows} <= {"real", "fake"}
    # a detector trained on these fakes catches most of them
    assert np.mean([row["verdict"] == "fake" for row in rows]) > 0.5
    assert f"{N_FAKES + 3} scored, 0 skipped" in result.stderr


def test_detect_folder_csv(world):
    result = invoke("detect", world["fakes"], "--detector", world["detectors"]["spectral-fft"],
                    "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == N_FAKES
    # the columns of earlier versions first, in their order, then the new ones
    assert list(rows[0]) == ["file", "p_fake", "verdict", "source", "p_fake_spectral-fft", "threshold",
                             "threshold_rule", "in_domain", "domain_reason", "provenance_tag",
                             "probability", "combine", "disagree", "verdict_spectral-fft",
                             "threshold_spectral-fft", "probability_spectral-fft", "error"]
    for row in rows:
        assert row["in_domain"] in ("true", "false")
        if row["in_domain"] == "true":
            assert 0.0 <= float(row["p_fake"]) <= 1.0 and row["domain_reason"] == ""
            assert row["verdict"] in ("real", "fake")
        else:  # not judged: no score, the reason instead
            assert row["p_fake"] == "" and row["verdict"] == "out-of-domain"
            assert "atypical" in row["domain_reason"]
        assert row["threshold_rule"] == "fpr" and 0.0 <= float(row["threshold"]) <= 1.0
        assert json.loads(row["provenance_tag"])["generator"] == "gan"


def test_detect_real_images_mostly_real(world, tmp_path):
    """Held-out real digits are mostly called real (the threshold is calibrated)."""
    from forensics.data import load_split

    real = load_split("digits", "test").images
    folder = tmp_path / "real"
    folder.mkdir()
    for i, image in enumerate(real):
        (folder / f"real{i:03d}.png").write_bytes(
            png_bytes((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)))
    result = invoke("detect", folder, "--detector", world["detectors"]["pixel-logreg"], "--json")
    assert result.exit_code == 0, result.output
    rows = records(result)
    assert len(rows) == len(real)
    assert all(row["provenance_tag"] is None for row in rows)
    assert np.mean([row["in_domain"] for row in rows]) >= 0.99  # real digits are judged
    assert np.mean([row["verdict"] == "real" for row in rows]) > 0.5
    # the table says what a "real" verdict means: not shown to be fake, at a threshold for few
    # false alarms; a table without any "real" verdict does not
    table = invoke("detect", folder, "--detector", world["detectors"]["pixel-logreg"])
    assert table.exit_code == 0, table.output
    assert "real: not shown to be fake. Thresholds of the fpr rule" in table.stdout
    fakes = invoke("detect", folder, "--detector", _always_fake(world, tmp_path), "--force")
    assert fakes.exit_code == 0, fakes.output
    assert "real00" in fakes.stdout and "fake" in fakes.stdout  # the table is there
    assert "not shown to be fake" not in fakes.stdout


# -- detect: bad input --------------------------------------------------------------------------


def test_detect_missing_path_is_a_usage_error(world, tmp_path):
    """A path that does not exist: exit 2, one line, nothing on stdout (alone or beside a good one)."""
    missing = tmp_path / "nowhere.png"
    for args in ([missing], [missing, fake_png(world)], [fake_png(world), missing]):
        result = invoke("detect", *args, "--detector", world["detectors"]["spectral-fft"], "--json")
        assert_one_line_error(result, 2, "no such file or folder", "nowhere.png")
        assert result.stdout == ""


def test_detect_empty_folder_says_no_images_found(world, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    result = invoke("detect", tmp_path / "empty", "--detector", world["detectors"]["spectral-fft"])
    assert result.exit_code == 1
    assert "no images found" in result.stderr and "Traceback" not in result.output
    assert "0 scored, 0 skipped" in result.stderr


def test_detect_json_and_csv_together_is_an_error(world):
    result = invoke("detect", fake_png(world), "--detector", world["detectors"]["spectral-fft"],
                    "--json", "--csv")
    assert_one_line_error(result, 2, "--json", "--csv")
    assert result.stdout == ""


def test_detect_bad_file_in_folder(world, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(4):
        shutil.copy(fake_png(world, i), folder / f"good{i}.png")
    (folder / "notes.png").write_text("this is not an image\n")
    result = invoke("detect", folder, "--detector", world["detectors"]["spectral-fft"], "--json")
    assert result.exit_code == 0, result.output
    rows = records(result)
    # every input has a record: the bad file's says why, its other fields empty
    assert [Path(row["file"]).name for row in rows] == [f"good{i}.png" for i in range(4)] + ["notes.png"]
    assert all(row["error"] is None for row in rows[:4])
    bad = rows[4]
    assert "notes.png" in bad["error"] and bad["verdict"] is None and bad["p_fake"] is None
    assert set(bad) == set(rows[0])
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "notes.png" in skipped[0]
    assert "4 scored, 1 skipped" in result.stderr
    table = list(csv.DictReader(io.StringIO(invoke(
        "detect", folder, "--detector", world["detectors"]["spectral-fft"], "--csv").stdout)))
    assert [Path(row["file"]).name for row in table][-1] == "notes.png"
    assert "notes.png" in table[-1]["error"] and table[-1]["verdict"] == ""
    assert all(row["error"] == "" for row in table[:4])


def test_detect_folder_of_only_bad_files(world, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = invoke("detect", folder, "--detector", world["detectors"]["spectral-fft"])
    assert result.exit_code == 1
    assert "a.png" in result.stderr


def test_detect_conforms_other_sizes(world, tmp_path):
    """A 28×28 RGB image is out of an 8×8 gray detector's domain; --force conforms it, with a warning."""
    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    path = tmp_path / "big_rgb.png"
    path.write_bytes(png_bytes(rgb))
    plain = invoke("detect", path, "--detector", world["detectors"]["spectral-fft"], "--json")
    assert plain.exit_code == 0, plain.output  # out of domain is not an error
    [row] = records(plain)
    assert row["verdict"] == "out-of-domain" and row["p_fake"] is None and row["in_domain"] is False
    assert row["domain_reason"] == "3-channel colour image; this detector judges 1-channel 8×8"
    assert "warning:" not in plain.stderr and "note: 1 image(s) outside" in plain.stderr
    result = invoke("detect", path, fake_png(world), "--detector",
                    world["detectors"]["spectral-fft"], "--json", "--force")
    assert result.exit_code == 0, result.output
    rows = records(result)
    assert rows[0]["in_domain"] is False and rows[0]["verdict"] in ("real", "fake")
    assert len(rows) == 2 and all(0.0 <= row["p_fake"] <= 1.0 for row in rows)
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1
    assert "1 image(s) were not 8x8 with 1 channel(s); conformed" in warning[0]
    assert warning[0].endswith("big_rgb.png (28×28×3)")  # which file, from what size


def test_detect_conform_warning_names_a_capped_list(world, tmp_path):
    """Seven conformed files: the warning names the first five with their sizes, then counts."""
    folder = tmp_path / "sizes"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(7):
        (folder / f"s{i}.png").write_bytes(png_bytes(rng.integers(0, 256, (9 + i, 12, 1), np.uint8)))
    (folder / "evil\x1b[31m.png").write_bytes(png_bytes(rng.integers(0, 256, (16, 16, 1), np.uint8)))
    result = invoke("detect", folder, "--detector", world["detectors"]["spectral-fft"], "--json",
                    "--force")
    assert result.exit_code == 0, result.output
    [warning] = [line.replace(f"{folder}/", "") for line in result.stderr.splitlines()
                 if line.startswith("warning:")]
    assert warning.startswith("warning: 8 image(s) were not 8x8")
    assert "evil\\x1b[31m.png (16×16×1)" in warning and "\x1b" not in warning
    assert "s0.png (9×12×1), s1.png (10×12×1), s2.png (11×12×1), s3.png (12×12×1)" in warning
    assert warning.endswith("and 3 more")


def _always_fake(world, tmp_path) -> Path:
    """A copy of the spectral-fft detector whose threshold is 0: every image it judges is fake."""
    folder = tmp_path / "always"
    shutil.copytree(world["detectors"]["spectral-fft"], folder)
    header = json.loads((folder / "detector.json").read_text())
    (folder / "detector.json").write_text(json.dumps({**header, "threshold": 0.0}))
    return folder


def _real_digits(tmp_path, n: int = 40) -> Path:
    from forensics.data import load_split

    folder = tmp_path / "real"
    folder.mkdir(parents=True)
    for i, image in enumerate(load_split("digits", "test").images[:n]):
        (folder / f"real{i:03d}.png").write_bytes(
            png_bytes((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)))
    return folder


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def test_detect_two_detectors_each_verdict_and_the_rules(world, tmp_path):
    """Each detector's verdict at its own threshold; disagree; any / majority / mean as documented."""
    dets = world["detectors"]
    always = _always_fake(world, tmp_path)
    inputs = [_real_digits(tmp_path), *[fake_png(world, i) for i in range(10)]]
    found = {}
    for rule in ("any", "majority", "mean"):
        result = invoke("detect", *inputs, "--detector", dets["spectral-fft"], "--detector", always,
                        "--json", "--force", "--combine", rule)
        assert result.exit_code == 0, result.output
        found[rule] = rows = records(result)
        assert len(rows) == 50
        for row in rows:
            assert row["combine"] == rule and row["threshold"] is None
            assert row["thresholds"] == {"spectral-fft": pytest.approx(
                json.loads((dets["spectral-fft"] / "detector.json").read_text())["threshold"], abs=1e-6),
                "always": 0.0}
            verdicts = {n: "fake" if row["scores"][n] >= row["thresholds"][n] else "real"
                        for n in row["scores"]}
            assert row["verdicts"] == verdicts and verdicts["always"] == "fake"
            assert row["disagree"] is (len(set(verdicts.values())) > 1)
            votes = sum(v == "fake" for v in verdicts.values())
            margin = np.mean([_logit(row["scores"][n]) - _logit(row["thresholds"][n]) for n in verdicts])
            expected = {"any": votes >= 1, "majority": votes > 1, "mean": margin >= 0}[rule]
            assert row["verdict"] == ("fake" if expected else "real")
            assert row["p_fake"] == pytest.approx(np.mean(list(row["scores"].values())), abs=2e-6)
    # real digits: spectral-fft says real for most, the always-fake copy fake: they disagree
    split = [row for row in found["any"] if row["disagree"]]
    assert len(split) >= 20
    assert all(row["verdict"] == "fake" for row in split)  # any: the one that fires decides
    assert all(row["verdict"] == "real" for row in found["majority"] if row["disagree"])  # 1 of 2
    table = invoke("detect", fake_png(world), _real_digits(tmp_path / "t", 3), "--detector",
                   dets["spectral-fft"], "--detector", always, "--force")
    assert table.exit_code == 0
    assert "combined by any" in table.stdout and "disagree" in table.stdout
    assert "always: fake when score ≥ 0 (fpr rule)" in table.stdout


def test_detect_one_detector_every_rule_is_its_verdict(world):
    verdicts = {}
    for rule in ("any", "majority", "mean"):
        result = invoke("detect", world["fakes"], "--detector", world["detectors"]["pixel-logreg"],
                        "--json", "--force", "--combine", rule)
        verdicts[rule] = [(r["verdict"], r["verdicts"]["pixel-logreg"], r["disagree"])
                          for r in records(result)]
    assert verdicts["any"] == verdicts["majority"] == verdicts["mean"]
    assert all(v == each and disagree is False for v, each, disagree in verdicts["any"])
    result = invoke("detect", fake_png(world), "--detector", world["detectors"]["pixel-logreg"],
                    "--combine", "vote")
    assert_one_line_error(result, 2, "--combine", "any, majority, mean")


def test_detect_two_detectors_csv_columns(world):
    dets = world["detectors"]
    result = invoke("detect", fake_png(world), fake_png(world, 1), "--detector",
                    dets["spectral-fft"], "--detector", dets["pixel-logreg"], "--csv", "--force")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2
    for name in ("spectral-fft", "pixel-logreg"):
        assert {f"{what}_{name}" for what in ("p_fake", "verdict", "threshold", "probability")} \
            <= set(rows[0])
    for row in rows:
        assert row["combine"] == "any" and row["threshold"] == ""
        each = [row[f"verdict_{n}"] for n in ("spectral-fft", "pixel-logreg")]
        assert row["disagree"] == str(len(set(each)) > 1).lower()
        assert row["verdict"] == ("fake" if "fake" in each else "real")


def test_detect_calibrated_probability_beside_the_raw_score(world):
    """P(fake) = sigmoid(a · logit(score) + b) with detector.json's Platt numbers; the verdict
    still compares the raw score with the threshold; the table shows both."""
    det = world["detectors"]["pixel-logreg"]
    header = json.loads((det / "detector.json").read_text())
    a, b = header["probability"]["a"], header["probability"]["b"]
    from detectors import load_detector
    from forensics.images import to_float

    files = [fake_png(world, i) for i in range(20)]
    rows = records(invoke("detect", *files, "--detector", det, "--json", "--force"))
    scores = load_detector(det).predict_proba(np.concatenate([to_float(read_image(f)[None]) for f in files]))
    for row, score in zip(rows, scores, strict=True):
        assert row["p_fake"] == pytest.approx(score, abs=1e-6)
        assert row["probability"] == pytest.approx(1 / (1 + np.exp(-(a * _logit(score) + b))), abs=2e-6)
        assert row["probabilities"] == {"pixel-logreg": row["probability"]}
        assert row["verdict"] == ("fake" if score >= header["threshold"] else "real")
    table = invoke("detect", fake_png(world, 5), "--detector", det, "--force")
    assert "P(fake)" in table.stdout and "score" in table.stdout


def test_detect_old_detector_without_calibration_shows_a_score(world, tmp_path):
    """A folder trained before calibration loads; its records say probability null and the
    table has no P(fake) column."""
    old = tmp_path / "old"
    shutil.copytree(world["detectors"]["pixel-logreg"], old)
    header = json.loads((old / "detector.json").read_text())
    header.pop("probability")
    (old / "detector.json").write_text(json.dumps(header))
    rows = records(invoke("detect", fake_png(world), "--detector", old, "--json", "--force"))
    assert rows[0]["probability"] is None and rows[0]["probabilities"] == {"old": None}
    table = invoke("detect", fake_png(world), "--detector", old, "--force")
    assert table.exit_code == 0 and "P(fake)" not in table.stdout and "score" in table.stdout


def test_detect_threshold_override_is_shown(world):
    """--threshold VALUE and fpr:RATE replace the saved thresholds and say so in every output."""
    from detectors import load_detector
    from detectors.base import sigmoid
    from detectors.training import threshold_at_fpr

    det = world["detectors"]["pixel-logreg"]
    rows = records(invoke("detect", world["fakes"], "--detector", det, "--json", "--force",
                          "--threshold", "0.5"))
    assert all(r["threshold"] == 0.5 and r["threshold_rule"] == "value"
               and r["verdict"] == ("fake" if r["p_fake"] >= 0.5 else "real") for r in rows)
    # threshold_at_fpr gives log-odds (what verdicts compare); the records show its sigmoid
    expected = sigmoid(threshold_at_fpr(load_detector(det).calibration_["real_val_scores"], 0.05))
    rows = records(invoke("detect", world["fakes"], "--detector", det, "--json", "--force",
                          "--threshold", "fpr:0.05"))
    assert all(r["threshold_rule"] == "fpr:0.05" and r["threshold"] == pytest.approx(expected, abs=1e-6)
               for r in rows)
    table = invoke("detect", fake_png(world), "--detector", det, "--force", "--threshold", "0.25")
    assert "fake when score ≥ 0.25 (value rule)" in table.stdout
    result = invoke("detect", fake_png(world), "--detector", det, "--threshold", "1.5")
    assert_one_line_error(result, 2, "--threshold")


def test_detect_table_at_80_columns_stays_readable(world, tmp_path, monkeypatch):
    """Three detectors at COLUMNS=80: no line is wider than 80, each image's row holds every
    detector's score and verdict on one line, and the full names and thresholds follow."""
    dets = world["detectors"]
    long = tmp_path / "a-detector-with-a-very-long-name"
    shutil.copytree(dets["pixel-logreg"], long)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        shutil.copy(fake_png(world, i), inputs / f"image_{i}.png")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["detect", "in", "--force", "--detector", str(dets["spectral-fft"]),
                                 "--detector", str(dets["pixel-logreg"]), "--detector", str(long)],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    lines = lines[: next(i for i, line in enumerate(lines) if line.startswith("spectral-fft: "))]
    assert max(len(line) for line in lines) <= 80, result.stdout  # the table (reasons follow whole)
    import re

    rows = [line for line in lines if "image_" in line]
    assert len(rows) == 4, result.stdout
    for line in rows:
        # 0.012, or 3.4e-4 below 0.0005 (a small score never reads 0.000)
        assert len(re.findall(r"\d\.(?:\d{3}|\de-\d+) (?:fake|real)", line)) == 3, line
    assert re.search(r" a-detec[a-z-]*… ", result.stdout)  # the header: the name cut to fit
    assert "files in in/" in result.stdout  # the shared folder in the title, not in every cell
    assert "a-detector-with-a-very-long-name: fake when score ≥" in result.stdout


def test_detect_device_option(world):
    result = invoke("detect", fake_png(world), "--detector", world["detectors"]["pixel-logreg"],
                    "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    result = invoke("detect", fake_png(world), "--detector", world["detectors"]["pixel-logreg"],
                    "--device", "tpu")
    assert_one_line_error(result, 2, "tpu")


def test_detect_explain_writes_one_png_per_image(world, tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        shutil.copy(fake_png(world, i), folder / f"x{i}.png")
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (folder / "x3.png").write_bytes(png_bytes(rgb))
    out = tmp_path / "why"
    result = invoke("detect", folder, "--detector", world["detectors"]["spectral-fft"],
                    "--explain", out)
    assert result.exit_code == 0, result.output
    written = sorted(out.glob("*.png"))
    assert len(written) == 4
    assert [p.name.split("_", 1)[1] for p in written] == [f"x{i}.png" for i in range(4)]
    for path in written:
        assert read_image(path).shape[0] > 100  # a figure, not a copy of the 8×8 input
    assert "explanations: 4 PNGs" in result.stderr


def test_detect_explain_same_stem_in_two_folders(world, tmp_path):
    """Two files with the same name in different folders get two explanations."""
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(fake_png(world), tmp_path / "in" / sub / "same.png")
    out = tmp_path / "why"
    result = invoke("detect", tmp_path / "in", "--detector", world["detectors"]["spectral-fft"],
                    "--explain", out)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 2


# -- detect: bad detectors ----------------------------------------------------------------------


def test_detect_unknown_detector_folder(world, tmp_path):
    result = invoke("detect", fake_png(world), "--detector", tmp_path / "no-such-detector")
    assert_one_line_error(result, 2, "no-such-detector")


def test_detect_folder_without_detector_json(world, tmp_path):
    empty = tmp_path / "empty-detector"
    empty.mkdir()
    result = invoke("detect", fake_png(world), "--detector", empty)
    assert_one_line_error(result, 2, "detector.json")


def test_detect_tampered_detector_refused(world, tmp_path):
    det = tmp_path / "det"
    shutil.copytree(world["detectors"]["pixel-logreg"], det)
    model = next(p for p in det.iterdir() if p.name.startswith("model."))
    model.write_bytes(model.read_bytes() + b"\0")
    result = invoke("detect", fake_png(world), "--detector", det)
    assert_one_line_error(result, 2, model.name)


# -- the shipped default detector ---------------------------------------------------------------


def test_detect_with_default_detector(tmp_path):
    from detectors.scan import DEFAULT_DETECTOR

    if not (DEFAULT_DETECTOR / "detector.json").is_file():
        pytest.skip("no shipped default detector yet (forensics/assets/default_detector is being "
                    "built by benchmarks/default_detector.py)")
    from forensics.data import load_split

    image = load_split("mnist5k", "test").images[0]
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)))
    result = invoke("detect", path, "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["in_domain"] is True and record["domain_reason"] is None
    assert 0.0 <= record["p_fake"] <= 1.0
    assert record["verdict"] in ("real", "fake")
    assert isinstance(record["source"], str) and record["source"]


def test_detect_detectors_of_different_shapes(world, tmp_path):
    """A detector's score does not depend on which other detectors run beside it.

    One detector is trained on 8×8 digits, the other on 28×28 mnist5k: each must
    see the file conformed straight to its own shape, whatever the order.
    """
    big = tmp_path / "big-fft"
    result = invoke("train-detector", "spectral-fft", "--real", "mnist5k", "--fake",
                    world["fakes"], "--out", big)
    assert result.exit_code == 0, result.output
    small = world["detectors"]["spectral-fft"]
    from forensics.data import load_split

    image = (load_split("mnist5k", "test").images[0].transpose(1, 2, 0) * 255).round()
    path = tmp_path / "digit28.png"
    path.write_bytes(png_bytes(image.astype(np.uint8)))
    files = [path, fake_png(world)]

    def scores(*detectors: Path) -> list[dict]:
        args = [a for d in detectors for a in ("--detector", d)]
        result = invoke("detect", *files, *args, "--json", "--force")  # each file fits one detector
        assert result.exit_code == 0, result.output
        return [row["scores"] for row in records(result)]

    alone = [{**a, **b} for a, b in zip(scores(small), scores(big), strict=True)]
    assert scores(small, big) == alone
    assert scores(big, small) == alone


def test_detect_detector_given_as_current_folder(world, monkeypatch):
    """``--detector .`` names the detector after its folder, not after an empty string."""
    monkeypatch.chdir(world["detectors"]["pixel-logreg"])
    result = invoke("detect", fake_png(world), "--detector", ".", "--json")
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert list(record["scores"]) == ["pixel-logreg"]


def test_explain_title_names_the_threshold(world):
    """--explain's figure title: score against the threshold used, the calibrated P(fake), verdict."""
    from detectors.explain import explain_title

    det = world["detectors"]["pixel-logreg"]
    [record] = records(invoke("detect", fake_png(world), "--detector", det, "--json", "--force",
                              "--threshold", "0.3"))
    title = explain_title(record)
    assert f"score {record['p_fake']:.4g} vs threshold 0.3" in title
    assert f"P(fake) {record['probability']:.3f}" in title and title.endswith(f"→ {record['verdict']}")
    [two] = records(invoke("detect", fake_png(world), "--detector", det, "--detector",
                           world["detectors"]["spectral-fft"], "--json", "--force"))
    votes = sum(v == "fake" for v in two["verdicts"].values())
    assert explain_title(two) == f"{votes} of 2 say fake (any) → {two['verdict']}"


def test_detect_a_mixed_folder_reads_right_at_80_columns(world, tmp_path):
    """Good PNGs, a JPEG, a truncated file and a photograph, two detectors, majority, fpr:0.05:
    the table fits 80 columns with whole file names (their folder in the title), no score reads
    0.000, and --json / --csv hold a record for every input."""
    import io
    import re

    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        shutil.copy(fake_png(world, i), folder / f"good_{i}.png")
    Image.open(fake_png(world, 3)).save(folder / "digit.jpg", quality=90)
    data = fake_png(world, 4).read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(folder / "photo.jpg")
    dets = world["detectors"]
    options = ["--detector", dets["spectral-fft"], "--detector", dets["pixel-logreg"],
               "--combine", "majority", "--threshold", "fpr:0.05"]
    table = CliRunner().invoke(app, ["detect", str(folder), *map(str, options)], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    body = lines[: next(i for i, line in enumerate(lines) if line.startswith("spectral-fft: "))]
    assert max(len(line) for line in body) <= 80, table.stdout
    assert f"files in {folder}/" in " ".join(line.strip() for line in body)  # the title may wrap
    for name in ("good_0.png", "good_2.png", "digit.jpg", "photo.jpg"):
        assert any(line.strip().startswith(name) for line in body), (name, table.stdout)
    assert not re.search(r"\b0\.000 (?:fake|real)", table.stdout)
    assert "truncated.png" in table.stderr
    rows = records(invoke("detect", folder, *options, "--json"))
    assert len(rows) == 6
    by_name = {Path(r["file"]).name: r for r in rows}
    assert by_name["truncated.png"]["error"] and by_name["truncated.png"]["verdict"] is None
    assert by_name["photo.jpg"]["verdict"] == "out-of-domain" and by_name["photo.jpg"]["p_fake"] is None
    for r in rows:
        if r["verdicts"] and r["in_domain"]:
            votes = sum(v == "fake" for v in r["verdicts"].values())
            assert r["verdict"] == ("fake" if votes == 2 else "real")
            assert r["disagree"] is (votes == 1) and r["threshold_rule"] == "fpr:0.05"
    sheet = list(csv.DictReader(io.StringIO(invoke("detect", folder, *options, "--csv").stdout)))
    assert sorted(Path(r["file"]).name for r in sheet) == sorted(by_name)


def test_default_detector_rebuild_refuses_a_kept_run_with_other_options(tmp_path):
    """The rebuild reuses finished runs: one trained before a default changed (here an AE run
    saved before the ``components`` option, so 10 components) is named, not reused."""
    import torch

    from benchmarks.default_detector import _stale
    from forensics.runtime import resolve_precision
    from generators.registry import get

    cls = get("ae")
    run = tmp_path / "ae"
    run.mkdir()
    options = cls.Options.from_dict({}).to_dict()
    now = resolve_precision("auto", torch.device("cpu"))  # what `train` runs on this CPU today
    (run / "config.json").write_text(json.dumps({"generator": "ae", "options": options,
                                                 "epochs": cls.default_epochs, "precision": now}))
    assert _stale(run, "ae") is None
    del options["components"]
    (run / "config.json").write_text(json.dumps({"generator": "ae", "options": options,
                                                 "epochs": cls.default_epochs + 1, "precision": now}))
    assert _stale(run, "ae") == (f"components 10 (default now 40), epochs {cls.default_epochs + 1} "
                                 f"(default now {cls.default_epochs})")
    # a run trained in another precision than today's default trains differently
    other = "fp32" if now == "bf16" else "bf16"
    (run / "config.json").write_text(json.dumps({"generator": "ae", "options": cls.Options.from_dict(
        {}).to_dict(), "epochs": cls.default_epochs, "precision": other}))
    assert _stale(run, "ae") == f"precision {other!r} (default now {now!r})"
    assert _stale(tmp_path / "absent", "ae") is None


def test_default_detector_rebuild_draws_kept_runs_with_todays_sampling(tmp_path, trained_run,
                                                                      monkeypatch):
    """A diffusion run saved with the former default sampler (DDIM) is reused, not refused:
    sampling changes without retraining, and the fakes are drawn with today's default; a kept
    fake folder drawn another way than the rebuild would draw now is named, not reused."""
    import torch

    import benchmarks.default_detector as rebuild
    from forensics.runtime import resolve_precision
    from generators.registry import get
    from generators.synthesis import generate
    from generators.training import load_run

    cls = get("diffusion")
    run = tmp_path / "diffusion"
    run.mkdir()
    options = {**cls.Options.from_dict({}).to_dict(), "sampler": "ddim", "steps": 50}
    now = resolve_precision("auto", torch.device("cpu"))
    (run / "config.json").write_text(json.dumps({"generator": "diffusion", "options": options,
                                                 "epochs": cls.default_epochs, "precision": now}))
    assert rebuild._stale(run, "diffusion") is None
    (run / "config.json").write_text(json.dumps({"generator": "diffusion", "epochs": cls.default_epochs,
                                                 "options": {**options, "width": 8}, "precision": now}))
    assert rebuild._stale(run, "diffusion") == "width 8 (default now 16)"
    # each other sampling the class names is a fake source of its own
    assert rebuild.fake_sets("diffusion") == [("diffusion", {"sampler": "dpm-sde", "steps": 0}, 1),
                                              ("diffusion-ddim-25", {"sampler": "ddim", "steps": 25}, 2)]
    assert rebuild.fake_sets("vae") == [("vae", {"sampler": "gmm", "temperature": 1.0}, 1),
                                        ("vae-prior", {"sampler": "prior"}, 2)]
    assert rebuild.fake_sets("gan") == [("gan", {}, 1)]
    assert rebuild.sampling_args({"sampler": "ddim", "steps": 25}) == ["--sampler", "ddim", "--steps", "25"]

    tiny = trained_run("diffusion")
    monkeypatch.setattr(rebuild, "FAKE_COUNT", 4)
    kept = tmp_path / "fakes"
    generate(load_run(tiny), 4, kept, seed=rebuild.FAKE_SEED, sampling={"sampler": "ddim", "steps": 3})
    assert rebuild._stale_fakes(tiny, kept, {"sampler": "ddim", "steps": 3}) is None
    stale = rebuild._stale_fakes(tiny, kept, {"sampler": "dpm-sde", "steps": 0})
    assert stale.startswith("sampling {'sampler': 'ddim', 'steps': 3} (now {'sampler': 'dpm-sde'")
    assert rebuild._stale_fakes(tiny, kept, {"sampler": "ddim", "steps": 3}, seed=2) == "seed 1 (now 2)"
    assert rebuild._stale_fakes(tiny, tmp_path / "absent", {}) == "no readable manifest"


def test_two_fake_sets_of_one_generator_are_named_by_their_folders(world, tmp_path):
    """The same generator's fakes twice (e.g. one diffusion model by two samplers): the first is
    named by the manifest's generator, the second by its folder, a third of the same folder
    name numbered."""
    import shutil

    from detectors.inputs import gather

    second, third = tmp_path / "gan-again", tmp_path / "x" / "gan-again"
    shutil.copytree(world["fakes"], second)
    shutil.copytree(world["fakes"], third)
    data = gather("digits", [world["fakes"], second, third])
    assert list(data.fakes) == ["gan", "gan-again", "gan-2"]
    assert data.provenance["fakes"]["gan-again"]["folder"] == str(second)
