"""A new generator or detector is one file with one decorator.

The proof as a newcomer would meet it: a throwaway package holding one generator module and
one detector module (each a subclass with one ``@register``), named in ``$FORENSICS_PLUGINS``,
and nothing else edited. The contract tests, ``--help``, ``forensics train``, ``generate``,
``train-detector`` (the discriminator detector too, from the new GAN's run) and a benchmark
suite that names them all pick them up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GENERATOR = '''"""A throwaway generator: the course's GAN under another name."""

from generators.gan import GAN
from generators.registry import register


@register("demo-gan")
class DemoGAN(GAN):
    default_epochs = 1
    tiny_options = {"width": 8, "noise_dim": 4, "batch_size": 64}
'''

DETECTOR = '''"""A throwaway detector: logistic regression on pixels with another default."""

from detectors.pixel import PixelLogReg
from detectors.registry import register


@register("demo-pixels")
class DemoPixels(PixelLogReg):
    tiny_options = {"C": 1.0}
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that sees the plug-in package ``forensics_demo_models``."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "forensics_demo_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "demo_gan.py").write_text(GENERATOR)
    (package / "demo_pixels.py").write_text(DETECTOR)
    path = os.pathsep.join([str(root), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "FORENSICS_PLUGINS": "forensics_demo_models",
            "MPLBACKEND": "Agg"}


def run(env: dict[str, str], *args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def cli(env: dict[str, str], *args: object) -> subprocess.CompletedProcess:
    result = run(env, "-m", "forensics", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_contract_tests_pick_up_a_new_generator_and_detector(plugin):
    result = run(plugin, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "demo",
                 "tests/test_generators.py", "tests/test_detectors.py", "tests/test_training.py")
    assert result.returncode == 0, result.stdout[-3000:]
    passed = int(result.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 5, result.stdout[-2000:]  # the contract, train-step, resume ... cases ran


@pytest.mark.slow
def test_help_train_generate_and_detectors_pick_them_up(plugin, tmp_path):
    assert "demo-gan" in cli(plugin, "train", "--help").stdout
    assert "demo-gan 1" in " ".join(cli(plugin, "train", "--help").stdout.split())
    assert "demo-pixels" in cli(plugin, "train-detector", "--help").stdout

    cli(plugin, "train", "demo-gan", "--dataset", "digits", "--set", "width=8", "--set",
        "noise_dim=4", "--out", tmp_path / "run", "--device", "cpu")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["generator"] == "demo-gan" and config["epochs"] == 1  # its own default
    cli(plugin, "generate", tmp_path / "run", "--n", "60", "--out", tmp_path / "fakes")
    manifest = json.loads((tmp_path / "fakes" / "manifest.json").read_text())
    assert manifest["header"]["generator"] == "demo-gan"
    assert manifest["header"]["variant"] == "non-saturating" or manifest["header"]["variant"] == ""

    cli(plugin, "train-detector", "demo-pixels", "--real", "digits", "--fake", tmp_path / "fakes",
        "--out", tmp_path / "det")
    assert json.loads((tmp_path / "det" / "detector.json").read_text())["kind"] == "demo-pixels"
    # the discriminator detector works on any generator that declares a discriminator
    cli(plugin, "train-detector", "discriminator", "--real", "digits", "--run", tmp_path / "run",
        "--fake", tmp_path / "fakes", "--out", tmp_path / "disc", "--set", "device=cpu")
    scored = cli(plugin, "detect", tmp_path / "fakes" / "img_000000.png", "--detector",
                 tmp_path / "det", "--json", "--force")
    assert json.loads(scored.stdout.splitlines()[0])["scores"]


@pytest.mark.slow
def test_a_benchmark_suite_names_them(plugin, tmp_path):
    suite = tmp_path / "demo.toml"
    suite.write_text('''name = "demo"
dataset = "digits"
fakes_per_generator = 120
real_train = 300
bootstrap = 10

[generators.demo]
kind = "demo-gan"
options = { width = 8, noise_dim = 4 }

[detectors.demo-pixels]
kind = "demo-pixels"

[perturbations]
jpeg = [75]
''')
    cli(plugin, "benchmark", "--suite", suite, "--out", tmp_path / "report",
        "--cache", tmp_path / "cache")
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["generators"] == ["demo"]
    # a suite that does not say otherwise times the fixed reference workload beside itself
    assert results["timing"]["reference"]["seconds"] > 0
    assert "Reference workload (reference v1" in (tmp_path / "report" / "report.md").read_text()
    assert "demo-pixels" in results["detectors"]
    assert 0.0 <= results["in_distribution"]["demo-pixels"]["demo"]["auc"] <= 1.0


@pytest.mark.parametrize("package, attributes", [
    ("generators", ("default_epochs", "has_discriminator", "tiny_options", "modes")),
    ("detectors", ("needs_fakes", "multiclass", "fits_sources", "needs_run", "torch_based", "tiny_options")),
])
def test_help_texts_read_what_the_classes_declare(package, attributes):
    """The help texts' import-free reading of the sources agrees with the imported classes."""
    import importlib

    from forensics.registry import declared

    registry = importlib.import_module(f"{package}.registry").REGISTRY
    found = declared(package)
    assert sorted(found) == registry.names()
    for name, cls in registry.classes().items():
        for attribute in attributes:
            if attribute in found[name]:
                assert found[name][attribute] == getattr(cls, attribute), (name, attribute)
            else:  # not declared in the sources: the base class's default
                assert getattr(cls, attribute) == getattr(cls.__mro__[-2], attribute), (name, attribute)
