"""The course experiments (benchmarks/course) in their tiny configuration: JSON, figure, page."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.course import EXPERIMENTS, run_experiment, write_page
from benchmarks.course.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _fraction(value) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


#: per experiment, a check of its headline numbers' ranges
CHECKS = {
    "pca": lambda n: all(0 <= r["max_angle_rad"] <= math.pi / 2 + 1e-9
                         and r["test_error_ae"] > 0 and r["test_error_pca"] > 0
                         for r in n["per_k"]),
    "sparse": lambda n: all(_fraction(r["hoyer"]) and _fraction(r["near_zero_share"])
                            for r in n["per_lambda"]) and len(n["fits"]) >= 1,
    "denoising": lambda n: len(n["error_plain"]) == len(n["sigmas"])
    and all(e > 0 for e in n["error_plain"] + n["error_denoising"]),
    "contractive": lambda n: all(n[v]["jacobian_frobenius_mean"] > 0
                                 and n[v]["sensitivity_mean"] > 0
                                 for v in ("plain", "contractive")),
    "vae": lambda n: all(_finite(r["reconstruction"]) and r["kl"] >= 0 for r in n["history"])
    and all(_fraction(v) for v in n["confident_share_of_samples"].values()),
    "gan1d": lambda n: _fraction(n["stage_b_mean_abs_D_minus_Dstar"])
    and _fraction(n["end_mean_abs_D_minus_half"]) and n["end_wasserstein_pg_pstar"] >= 0
    and len(n["stages"]) == 4,
    "gan-losses": lambda n: all(g >= 0 for c in n["curves"].values() for g in c["grad_norm"])
    and all(_fraction(r["confident_share"]) and _fraction(r["d_accuracy_heldout"])
            for r in n["k_budget"]),
    "infogan": lambda n: all(_fraction(r["final"]["accuracy"])
                             and _fraction(r["final"]["q_real_accuracy"]) for r in n["runs"].values())
    and n["best"] in n["runs"] and "c2" in n["continuous"]["spearman"],
    "semi-supervised": lambda n: all(_fraction(t["mean"]) for t in n["accuracy"].values()),
}


def test_every_experiment_has_a_check():
    assert set(CHECKS) == set(EXPERIMENTS)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_tiny(name, tmp_path):
    result = run_experiment(name, seed=0, tiny=True, out=tmp_path, page=False)
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["seed"] == 0 and saved["tiny"] is True
    assert saved["holds"] in (True, False, None)
    assert saved["wall_seconds"] >= 0 and "torch" in saved["versions"]
    assert saved["summary"] and saved["claim"]
    assert CHECKS[name](saved["numbers"]), saved["numbers"]
    figure = tmp_path / saved["figure"]
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_lists_results(tmp_path):
    run_experiment("semi-supervised", tiny=True, out=tmp_path)
    page = (tmp_path / "README.md").read_text()
    assert "## semi-supervised" in page and "semi-supervised.png" in page
    assert "## pca" not in page  # only experiments that ran
    write_page(tmp_path)


def test_page_states_times_beside_the_reference_workload(tmp_path):
    from benchmarks import reference

    result = run_experiment("semi-supervised", tiny=True, out=tmp_path)
    assert result["reference"] is None  # tiny runs skip it
    row = next(line for line in (tmp_path / "README.md").read_text().splitlines()
               if line.startswith("| [semi-supervised]"))
    assert "not measured" in row
    measured = reference.measure(steps=2)  # a real (short) measurement, as a full run records
    saved = json.loads((tmp_path / "semi-supervised.json").read_text())
    (tmp_path / "semi-supervised.json").write_text(json.dumps({**saved, "reference": measured}))
    write_page(tmp_path)
    row = next(line for line in (tmp_path / "README.md").read_text().splitlines()
               if line.startswith("| [semi-supervised]"))
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[5].startswith(f"{measured['seconds']:.2f}")
    assert cells[6] == f"{reference.ratio(saved['wall_seconds'], measured):.1f}"


def test_cli_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit):
        main(["nope"])
