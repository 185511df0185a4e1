"""The ``forensics`` command line for the generator half: train, generate, explore."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forensics import __version__
from forensics.app.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *fragments: str) -> None:
    """Non-zero exit, one line of message naming ``fragments``, no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception
    message = result.output.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message


TINY_GAN = [
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--set",
    "width=8",
    "--set",
    "noise_dim=8",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def cli_gan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gan"
    result = invoke("train", "gan", *TINY_GAN, "--k", "2", "--loss", "minimax", "--out", out)
    assert result.exit_code == 0, result.output
    return out


# -- help and version -------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = invoke(flag)
    assert result.exit_code == 0
    for command in ("train", "generate", "explore"):
        assert command in result.output


@pytest.mark.parametrize("command", ["train", "generate", "explore"])
def test_command_help(command):
    result = invoke(command, "-h")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_no_arguments_shows_help():
    result = invoke()
    assert "Usage" in result.output and "train" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"forensics {__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from forensics.app.cli import app\n"
        "for args in (['--help'], ['-h'], ['train', '--help'], ['generate', '-h'], ['--version']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn', 'cv2') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "heavy: []"


# -- errors become one line and a non-zero exit -------------------------------------------------


def test_unknown_generator(tmp_path):
    result = invoke("train", "stylegan", "--out", tmp_path / "r")
    assert_clean_error(result, "unknown generator 'stylegan'", "ae", "vae", "gan", "infogan", "diffusion")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["generate", "explore"])
def test_missing_run_folder(command, tmp_path):
    result = invoke(command, tmp_path / "nowhere")
    assert_clean_error(result, "nowhere", "no such run folder")


@pytest.mark.parametrize("n", ["0", "-5"])
def test_generate_needs_a_positive_n(n, cli_gan_run, tmp_path):
    result = invoke("generate", cli_gan_run, "--n", n, "--out", tmp_path / "syn")
    assert_clean_error(result, "--n must be a positive number")
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--epochs", "0"], ["--epochs must be positive"]),
        (["--set", "width"], ["--set expects KEY=VALUE"]),
        (["--set", "colour=red"], ["unknown option(s) colour", "width"]),
        (["--set", "width=wide"], ["option width", "not a valid int"]),
        (["--loss", "hinge"], ["loss must be one of"]),
        (["--device", "tpu"], ["unknown device"]),
        (["--dataset", "imagenet"], ["unknown data set"]),
    ],
)
def test_train_refuses_bad_options(args, fragments, tmp_path):
    result = invoke("train", "gan", *TINY_GAN, *args, "--out", tmp_path / "r")
    assert_clean_error(result, *fragments)
    assert not (tmp_path / "r" / "config.json").exists()


def test_generate_refuses_a_bad_mode(cli_gan_run, tmp_path):
    result = invoke("generate", cli_gan_run, "--mode", "dream", "--out", tmp_path / "s")
    assert_clean_error(result, "--mode must be sample or reconstruct")
    result = invoke("generate", cli_gan_run, "--mode", "reconstruct", "--out", tmp_path / "s")
    assert_clean_error(result, "gan cannot --mode reconstruct")


def test_train_refuses_to_overwrite_a_run(cli_gan_run):
    result = invoke("train", "gan", *TINY_GAN, "--out", cli_gan_run)
    assert_clean_error(result, "already holds a run", "--resume")


# -- a tiny run end to end ----------------------------------------------------------------------


def test_train_generate_explore(cli_gan_run, tmp_path):
    config = json.loads((cli_gan_run / "config.json").read_text())
    assert config["options"]["k"] == 2 and config["options"]["loss"] == "minimax"
    assert config["options"]["width"] == 8 and config["epochs"] == 1
    assert (cli_gan_run / "model.safetensors").is_file()

    out = tmp_path / "syn"
    result = invoke("generate", cli_gan_run, "--n", "12", "--out", out, "--seed", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(list(out.glob("*.png"))) == len(manifest["images"]) == 12
    assert manifest["header"]["seed"] == 2 and manifest["header"]["variant"] == "minimax"

    again = invoke("generate", cli_gan_run, "--n", "3", "--out", out)
    assert_clean_error(again, "already exists", "--force")
    assert len(list(out.glob("*.png"))) == 12
    forced = invoke("generate", cli_gan_run, "--n", "3", "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert len(list(out.glob("*.png"))) == 3

    figures = tmp_path / "fig"
    result = invoke("explore", cli_gan_run, "--out", figures)
    assert result.exit_code == 0, result.output
    printed = [line for line in result.output.splitlines() if line.endswith(".png")]
    assert printed and all((figures / p.rsplit("/", 1)[-1]).is_file() for p in printed)
    assert (figures / "samples.png").is_file()


def test_train_resume_and_reconstruct_with_an_autoencoder(tmp_path):
    run = tmp_path / "ae"
    common = [
        "--dataset",
        "digits",
        "--set",
        "hidden=32",
        "--set",
        "code_dim=4",
        "--device",
        "cpu",
        "--out",
        run,
    ]
    result = invoke(
        "train", "ae", "--linear", "--variant", "sparse", "--lam", "0.01", "--epochs", "1", *common
    )
    assert result.exit_code == 0, result.output
    assert "trained ae for 1 epochs" in result.output
    result = invoke("train", "ae", "--resume", "--epochs", "2", *common)
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert "sparsity" in records[0]
    options = json.loads((run / "config.json").read_text())["options"]
    assert options["linear"] is True and options["variant"] == "sparse" and options["lam"] == 0.01

    out = tmp_path / "recon"
    result = invoke("generate", run, "--n", "5", "--mode", "reconstruct", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["header"]["variant"] == "linear-sparse"
    assert all(row["source"]["split"] == "test" for row in manifest["images"])

    result = invoke("explore", run, "--out", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "reconstructions.png").is_file()


def test_resume_without_a_run(tmp_path):
    result = invoke("train", "vae", "--resume", "--dataset", "digits", "--out", tmp_path / "r")
    assert_clean_error(result, "nothing to resume")


def test_datasets_lists_the_builtin_sets():
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    assert "digits" in result.output and "1797" in result.output
    assert "4000/500/500" in result.output
