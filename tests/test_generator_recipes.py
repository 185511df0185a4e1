"""What the literature adds to the course's generators (issue #13): DiffAugment for D's
inputs, InfoGAN's fully connected layers, the VAE's two samplers and the fitted code density."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from forensics.errors import ForensicsError
from generators import create
from generators.base import CodeDensity, seeded
from generators.dcgan import diff_augment
from tests.conftest import tiny_options

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = (1, 8, 8)


def _blobs(n: int = 6, side: int = 28) -> torch.Tensor:
    """Images with a bright square well inside a zero border (shifts lose nothing)."""
    x = torch.zeros(n, 1, side, side)
    x[:, :, 10:17, 11:16] = torch.rand(n, 1, 7, 5) + 0.5
    return x


def test_translation_shifts_each_image_by_at_most_an_eighth_of_its_side():
    torch.manual_seed(0)
    x = _blobs()
    y = diff_augment(x, "translation")
    r = round(28 / 8)
    assert y.shape == x.shape
    torch.testing.assert_close(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing falls off
    shifts = set()
    for image, moved in zip(x, y, strict=True):
        found = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                 if torch.equal(torch.roll(image, (-dy, -dx), (1, 2)), moved)]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 1  # each image its own shift


def test_cutout_zeroes_one_square_of_half_the_side_and_nothing_else():
    torch.manual_seed(1)
    x = torch.rand(32, 3, 32, 32) + 0.1  # no zeros of its own
    y = diff_augment(x, "cutout")
    zeroed = y == 0
    assert torch.equal(zeroed[:, :1].expand_as(zeroed), zeroed)  # every channel alike
    for mask, image, out in zip(zeroed[:, 0], x, y, strict=True):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 16 and 1 <= len(cols) <= 16
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
        torch.testing.assert_close(out[:, ~mask], image[:, ~mask])
    # squares cut by the border are smaller; whole ones are exactly half the side
    assert any(m.sum() == 16 * 16 for m in zeroed[:, 0])


def test_augmentation_is_differentiable_and_policies_compose():
    torch.manual_seed(2)
    x = _blobs(4).requires_grad_()
    diff_augment(x, "translation,cutout").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, "") is x
    with pytest.raises(ForensicsError, match="augment: unknown 'flip'"):
        diff_augment(x, "flip")


@pytest.mark.parametrize("name", ["gan", "infogan"])
def test_gans_refuse_unknown_augmentations_and_train_with_known_ones(name, digits_train):
    with pytest.raises(ForensicsError, match="augment: unknown 'rotate'"):
        create(name, image_shape=DIGITS, **tiny_options(name, augment="translation,rotate"))
    torch.manual_seed(0)
    model = create(name, image_shape=DIGITS, **tiny_options(name, augment="translation,cutout"))
    before = {k: v.clone() for k, v in model.nets.state_dict().items()}
    losses = model.train_step(digits_train[:32])
    assert all(np.isfinite(v) for v in losses.values())
    after = model.nets.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(("G.", "D.", "body.")))
    # D judges what it is given: no augmentation outside training (the zero-shot detector)
    x = digits_train[:16]
    torch.testing.assert_close(model.real_probability(x), model.real_probability(x))


@pytest.mark.parametrize("name", ["gan", "infogan"])
def test_hidden_adds_infogans_fully_connected_layers_to_g_and_d(name):
    wide = create(name, image_shape=(1, 28, 28), **tiny_options(name, hidden=24))
    plain = create(name, image_shape=(1, 28, 28), **tiny_options(name, hidden=0))

    def widths(net):
        return [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]

    assert widths(wide.nets["G"])[0] == 24 and 24 not in widths(plain.nets["G"])
    body = wide.discriminator()[0]
    assert widths(body) == [24] and body.out_dim == 24
    assert widths(plain.discriminator()[0]) == []
    assert wide.sample(3, seeded(0))[0].shape == (3, 1, 28, 28)


def test_code_density_recovers_a_mixture_and_draws_reproducibly():
    torch.manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    codes = torch.cat([centres[0] + 0.3 * torch.randn(500, 2), centres[1] + 0.5 * torch.randn(500, 2)])
    density = CodeDensity(2, 2)
    density.fit(codes)
    order = density.means[:, 0].argsort()
    torch.testing.assert_close(density.means[order], centres, atol=0.1, rtol=0)
    torch.testing.assert_close(density.weights, torch.full((2,), 0.5), atol=0.02, rtol=0)
    a, comp_a = density.draw(1000, seeded(3))
    b, comp_b = density.draw(1000, seeded(3))
    assert torch.equal(a, b) and torch.equal(comp_a, comp_b)
    assert abs(a[:, 0].mean().item()) < 0.5  # both modes drawn, in their proportions
    # a temperature scales each code's offset from its component's mean, the same draws
    cooler, comp_c = density.draw(1000, seeded(3), temperature=0.5)
    assert torch.equal(comp_c, comp_a)
    torch.testing.assert_close(cooler - density.means[comp_c], 0.5 * (a - density.means[comp_a]))


def test_vae_draws_from_the_fitted_mixture_or_the_course_prior(digits_train):
    torch.manual_seed(0)
    model = create("vae", image_shape=DIGITS, **tiny_options("vae"))
    for start in range(0, 512, 64):
        model.train_step(digits_train[start:start + 64])
    model.end_epoch(digits_train)
    with torch.no_grad():
        means = model.encode(digits_train)[0]
    prior = model.nets["prior"]
    torch.testing.assert_close((prior.weights[:, None] * prior.means).sum(0), means.mean(0),
                               atol=1e-3, rtol=1e-3)
    assert model.sampling() == {"sampler": "gmm", "temperature": 1.0}
    images, codes = model.sample(2000, seeded(1))
    assert images.shape == (2000, *DIGITS) and "component" in codes
    assert np.allclose(codes["z"].mean(0), means.mean(0).numpy(), atol=0.15 * means.std().item())
    model.set_sampling(sampler="prior")
    assert model.sampling() == {"sampler": "prior", "temperature": 1.0}
    _, codes = model.sample(2000, seeded(1))
    assert "component" not in codes
    assert np.allclose(codes["z"].mean(0), 0, atol=0.1) and np.allclose(codes["z"].std(0), 1, atol=0.1)
    model.set_sampling(temperature="0.5")  # the prior's σ too
    _, cooler = model.sample(2000, seeded(1))
    assert np.allclose(cooler["z"], 0.5 * codes["z"], atol=1e-6)
    with pytest.raises(ForensicsError, match="temperature must be positive"):
        model.set_sampling(temperature=0)
    with pytest.raises(ForensicsError, match="sampler must be one of"):
        model.set_sampling(sampler="ddim")
    # the mixture is part of the weights: saved and loaded with them
    assert {"prior.weights", "prior.means", "prior.chol"} <= set(model.weights())


def recorded_samplings(run, tmp_path, option: str, values, n: int = 5) -> dict:
    """``generate RUN --OPTION VALUE`` for each value (None: the option left out); each
    manifest's recorded sampling, by value."""
    from typer.testing import CliRunner

    from forensics.app.cli import app

    headers = {}
    for value in values:
        out = tmp_path / f"{option}-{value}"
        extra = [f"--{option}", value] if value else []
        result = CliRunner().invoke(app, ["generate", str(run), "--n", str(n), "--seed", "2", *extra,
                                          "--out", str(out)])
        assert result.exit_code == 0, result.output
        headers[value] = json.loads((out / "manifest.json").read_text())["header"]["sampling"]
    return headers


def test_generate_vae_with_each_sampler_records_it(trained_run, tmp_path):
    from typer.testing import CliRunner

    from forensics.app.cli import app

    runner = CliRunner()
    run = trained_run("vae")
    headers = recorded_samplings(run, tmp_path, "sampler", ("gmm", "prior", None))
    assert headers == {"gmm": {"sampler": "gmm", "temperature": 1.0},
                       "prior": {"sampler": "prior", "temperature": 1.0},
                       None: {"sampler": "gmm", "temperature": 1.0}}
    result = runner.invoke(app, ["generate", str(run), "--sampler", "ddpm", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "sampler must be one of" in result.output
    assert not (tmp_path / "x").exists()


def test_generate_ae_at_a_temperature_records_it_and_others_refuse_it(trained_run, tmp_path):
    """The AE's samples at --temperature: recorded in the manifest (new runs default to 0.8);
    codes nearer their components' means than at 1; a generator without the option refuses it."""
    from typer.testing import CliRunner

    from forensics.app.cli import app
    from generators.training import load_run

    runner = CliRunner()
    run = trained_run("ae")
    headers = recorded_samplings(run, tmp_path, "temperature", ("1.0", "0.5", None))
    spread = {value: header["temperature"] for value, header in headers.items()}
    assert spread == {"1.0": 1.0, "0.5": 0.5, None: load_run(run).model.options.temperature}
    model = load_run(run).model
    prior = model.nets["prior"]
    offsets = {}
    for temperature in (1.0, 0.5):
        model.set_sampling(temperature=temperature)
        _, codes = model.sample(500, seeded(7))
        offsets[temperature] = (torch.as_tensor(codes["z"]) - prior.means[codes["component"]]).norm(dim=1)
    torch.testing.assert_close(offsets[0.5], 0.5 * offsets[1.0])
    result = runner.invoke(app, ["generate", str(trained_run("gan")), "--temperature", "0.5",
                                 "--out", str(tmp_path / "gan")])
    assert result.exit_code == 2 and "has no sampling option temperature" in result.output
    assert not (tmp_path / "gan").exists()


def test_generator_benchmark_keeps_unmeasured_entries_and_reports_other_samplings(tmp_path):
    from benchmarks.generators import _keep_others, _markdown

    entry = {"epochs": 2, "train_seconds": 10.0, "reference": {"seconds": 4.0},
             "reference_ratio": 2.5, "load_average_1m_after": 0.5, "confident_share": 0.8,
             "digit_shares": [0.08] * 10, "domain_fd": 12.0,
             "digit_histogram_confident": [5, 80, 80, 80, 80, 80, 80, 80, 80, 155],
             "meets": {"confident_share": True, "every_digit": True,
                       "train_seconds_reference_ratio": True}}
    previous = tmp_path / "results.json"
    previous.write_text(json.dumps({"created": "2026-01-01T00:00:00+00:00",
                                    "generators": {"ae": dict(entry), "vae": dict(entry)}}))
    vae = {**entry, "confident_share": 0.75, "other_samplings": {
        "sampler=prior": {"confident_share": 0.4, "digit_shares": [0.04] * 10,
                          "digits_present": 10, "domain_fd": 50.0}}}
    merged = _keep_others(previous, {"vae": vae})
    assert list(merged) == ["ae", "vae"]
    assert merged["ae"]["measured"] == "2026-01-01T00:00:00+00:00"
    assert "measured" not in merged["vae"] and merged["vae"]["confident_share"] == 0.75
    assert _keep_others(tmp_path / "missing.json", {"vae": vae}) == {"vae": vae}
    reference = {"workload": "w", "seconds": 4.0, "load_average_1m_before": 0.5}
    text = _markdown({
        "machine": {"processor": "x", "cpu_count": 2, "platform": "p", "load_average_1m": 0.5},
        "versions": {"torch": "t"}, "seed": 0, "created": "now", "reference_before": reference,
        "reference_after": reference, "reference_quiet_seconds": 3.4, "generators": merged,
        "real_test_reference": {"confident_share": 0.9, "classifier_accuracy": 0.96,
                                "domain_fd_floor": 6.7, "domain_fd_n": 500},
        "total_train_seconds": 20.0})
    assert "- vae, sampler=prior: 40.0% confident, smallest digit 4.0%, domain FD 50.0" in text
    assert "- ae: measured 2026-01-01T00:00:00+00:00 by an earlier run" in text
    # an entry from before --precision auto ran float32, and says so
    assert "| ae | 2 | fp32 | 10.0 | 4.0 | 2.5 | 0.5 | not measured | 80.0% |" in text
    assert "CPU with native bf16: not recorded" in text
    assert "- ae: rarest 0.6%, most frequent 19.4%" in text  # 5 and 155 of the 800 recognised


def test_generator_benchmark_judges_diffusions_sampling_time_from_its_ratio():
    """1,500 DDIM images in ≤ 60 s on the reference machine (3.4 s reference): the samples'
    ratio scaled to 1,500 ≤ 60 / 3.4 ≈ 17.6 units (whatever ``--n``); no sampling target for
    the others."""
    from benchmarks.generators import _verdicts

    entry = {"confident_share": 0.8, "digit_shares": [0.08] * 10, "reference_ratio": 50.0,
             "samples": 1000}
    assert _verdicts("diffusion", {**entry, "sample_ratio": 11.0})["sample_1500"] is True
    assert _verdicts("diffusion", {**entry, "sample_ratio": 12.5})["sample_1500"] is False
    # 500 images in 5.5 units: 1,500 in 16.5, met; the same ratio for 1,000 images: 8.25, met;
    # 500 in 6 units: 18 for 1,500, missed
    assert _verdicts("diffusion", {**entry, "samples": 500, "sample_ratio": 5.5})["sample_1500"] is True
    assert _verdicts("diffusion", {**entry, "samples": 500, "sample_ratio": 6.0})["sample_1500"] is False
    assert "sample_1500" not in _verdicts("gan", {**entry, "sample_ratio": 99.0})


def test_code_density_fits_fewer_codes_than_components():
    density = CodeDensity(10, 3)
    codes = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    density.fit(codes)
    assert (density.weights[2:] == 0).all() and density.weights.sum().item() == pytest.approx(1.0)
    drawn, component = density.draw(50, seeded(0))
    assert set(component.tolist()) <= {0, 1} and torch.isfinite(drawn).all()


def test_variants_benchmark_trains_scores_and_records_each_sampling(tmp_path):
    """The real script end to end on one tiny VAE training: a JSON line per sampling, the table."""
    import subprocess
    import sys

    out = tmp_path / "variants"
    command = [sys.executable, "-m", "benchmarks.variants", "vae", "--tag", "tiny", "--epochs", "1",
               "--set", "width=8", "--set", "hidden=16", "--sampling", "sampler=prior",
               "--n", "50", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["sampling"] for r in records] == [{}, {"sampler": "prior"}]
    for r in records:
        assert r["options"] == ["width=8", "hidden=16"] and r["epochs"] == 1 and r["samples"] == 50
        assert 0 <= r["confident_share"] <= 1 and len(r["digit_shares"]) == 10
        assert r["rarest_digit_share"] == min(r["digit_shares"]) and r["ratio"] > 0
    # the precision that trained (train's default auto, resolved for this CPU) is recorded
    precisions = {r["precision"] for r in records}
    assert len(precisions) == 1 and precisions <= {"fp32", "bf16"}
    table = (out / "README.md").read_text()
    row = f"| vae | tiny | width=8 hidden=16 | {records[0]['precision']} | 1 | 0 |"
    assert table.count(row) == 2 and "sampler=prior" in table
    bad = subprocess.run([*command[:3], "vae", "--tag", "x", "--sampling", "oops", "--out",
                          str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_a_run_saved_before_the_components_option_opens_and_resumes_as_trained(name, tmp_path):
    """Runs saved before ``components`` existed (10-component mixtures, no such key in
    config.json) load, sample and resume with 10 components, not the new default."""
    from generators.runs import load_run
    from generators.training import train

    out = tmp_path / "run"
    train(name, tiny_options(name, components=10), out=out, dataset="digits", epochs=1, seed=0,
          device="cpu")
    config = json.loads((out / "config.json").read_text())
    del config["options"]["components"]
    (out / "config.json").write_text(json.dumps(config))
    run = load_run(out)
    assert run.model.options.components == 10 and run.model.nets["prior"].weights.numel() == 10
    images, codes = run.model.sample(8, seeded(0, 0))
    assert images.shape[0] == 8 and codes["component"].max() < 10
    train(name, {}, out=out, dataset="digits", epochs=2, seed=0, device="cpu", resume=True)
    assert load_run(out).model.nets["prior"].weights.numel() == 10


def test_an_infogan_run_keeps_its_noise_scale_on_reload_and_resume(tmp_path):
    """A run trained with ``noise_scale`` records it, samples with it after reloading (the same
    noise and images as the model that trained), and resumes with it; a folder saved before the
    option (no key in config.json) opens with 1, the N(0, I) those runs drew from."""
    from generators.base import seeded
    from generators.runs import load_run
    from generators.training import train

    out = tmp_path / "run"
    train("infogan", tiny_options("infogan", noise_scale=0.3), out=out, dataset="digits",
          epochs=1, seed=0, device="cpu")
    assert json.loads((out / "config.json").read_text())["options"]["noise_scale"] == 0.3
    images, codes = load_run(out).model.sample(400, seeded(3, 0))
    assert float(np.std(codes["z"])) == pytest.approx(0.3, rel=0.1)
    again = load_run(out).model.sample(400, seeded(3, 0))
    assert torch.equal(images, again[0]) and np.array_equal(codes["z"], again[1]["z"])
    train("infogan", {}, out=out, dataset="digits", epochs=2, seed=0, device="cpu", resume=True)
    assert load_run(out).model.options.noise_scale == 0.3
    config = json.loads((out / "config.json").read_text())
    del config["options"]["noise_scale"]
    (out / "config.json").write_text(json.dumps(config))
    assert load_run(out).model.options.noise_scale == 1.0


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_a_new_run_takes_todays_defaults_not_the_values_of_runs_saved_before_them(name, trained_run):
    """The values older runs used (``Options.earlier``) fill only a saved config's gaps: a run
    trained now without the option records and uses today's default (the CLI once trained
    10-component mixtures for a day after the default became 40)."""
    from generators.registry import get
    from generators.runs import load_run

    cls = get(name).Options
    today = cls.from_dict(tiny_options(name)).to_dict()
    recorded = json.loads((trained_run(name) / "config.json").read_text())["options"]
    assert cls.earlier and all(recorded[key] == today[key] for key in cls.earlier)
    model = load_run(trained_run(name)).model
    assert model.nets["prior"].weights.numel() == today["components"]
    assert model.options.temperature == today["temperature"]
