"""What a run folder records and what the command line says while and after it runs:
effective options in config.json, refused inapplicable options, progress in a log file,
the Ctrl-C message, the shared options and the defaults in every command's help."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forensics.app.cli import app
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
TINY_AE = ["--dataset", "digits", "--epochs", "1", "--set", "hidden=16", "--set", "code_dim=3",
           "--device", "cpu"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def forensics(*args, **env: str) -> subprocess.Popen:
    """``python -m forensics ARGS`` with stdout and stderr to pipes (not a terminal)."""
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "COLUMNS": "100", **env}
    environ.pop("FORCE_COLOR", None)
    return subprocess.Popen([sys.executable, "-m", "forensics", *map(str, args)], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)


def _interruptible() -> None:
    """In the child before Python starts: Ctrl-C (SIGINT) back to its default, so the child
    gets Python's KeyboardInterrupt even when the suite runs as a background job (a shell
    starts those with SIGINT ignored, and an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- config.json records what ran -------------------------------------------------------------


@pytest.mark.parametrize(("args", "lam", "term"), [
    (["--variant", "sparse"], 1e-3, "sparsity"),
    (["--variant", "contractive"], 1e-2, "contractive"),
    (["--variant", "sparse", "--lam", "0"], 0.0, "sparsity"),
    (["--variant", "sparse", "--lam", "0.05"], 0.05, "sparsity"),
])
def test_config_records_the_penalty_that_ran(args, lam, term, tmp_path):
    import torch

    from generators.training import load_run

    result = invoke("train", "ae", *TINY_AE, *args, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "r" / "config.json").read_text())["options"]
    assert options["lam"] == lam
    assert options["corruption"] is None and options["noise"] is None  # not a denoising run
    record = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    if lam == 0:  # --lam 0 means no penalty: the term is exactly zero
        assert record[term] == 0.0
    else:
        assert record[term] > 0
    # the model rebuilt from config.json trains with the same λ
    model = load_run(tmp_path / "r").model
    assert model.options.penalty == lam
    terms = model.loss(torch.rand(4, 1, 8, 8))
    assert (terms[term].item() == 0.0) == (lam == 0)


def test_denoising_records_its_corruption(tmp_path):
    result = invoke("train", "ae", *TINY_AE, "--variant", "denoising", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "r" / "config.json").read_text())["options"]
    assert (options["corruption"], options["noise"], options["lam"]) == ("gaussian", 0.5, None)


@pytest.mark.parametrize(("args", "fragments"), [
    (["--corruption", "mask"], ["corruption applies only to variant denoising, not plain"]),
    (["--variant", "sparse", "--corruption", "mask"], ["corruption", "not sparse"]),
    (["--lam", "0.1"], ["lam applies only to variant sparse or contractive, not plain"]),
    (["--variant", "denoising", "--lam", "0.1"], ["lam", "not denoising"]),
    (["--variant", "contractive", "--set", "noise=0.3"], ["noise applies only to variant denoising"]),
    (["--variant", "sparse", "--lam", "-1"], ["lam must be 0 (no penalty) or positive"]),
])
def test_options_a_variant_does_not_use_are_refused(args, fragments, tmp_path):
    result = invoke("train", "ae", *TINY_AE, *args, "--out", tmp_path / "r")
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "r" / "config.json").exists()


def test_resume_refuses_options_that_differ_from_the_recorded_ones(tmp_path):
    run = tmp_path / "r"
    assert invoke("train", "ae", *TINY_AE, "--variant", "sparse", "--out", run).exit_code == 0
    result = invoke("train", "ae", *TINY_AE, "--resume", "--lam", "0.5", "--epochs", "2", "--out", run)
    assert_one_line_error(result, 2, "--resume", "recorded options", "lam 0.5 (recorded: 0.001)")
    same = invoke("train", "ae", *TINY_AE, "--resume", "--lam", "0.001", "--epochs", "2", "--out", run)
    assert same.exit_code == 0, same.output


# -- progress in a log file ----------------------------------------------------------------------


def test_progress_is_plain_lines_when_output_is_not_a_terminal(tmp_path):
    process = forensics("train", "ae", *TINY_AE[:2], "--epochs", "2", *TINY_AE[4:],
                        "--out", tmp_path / "r", FORENSICS_PROGRESS_SECONDS="0")
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    assert "\x1b" not in stderr and "progress.py" not in stderr  # no escape codes, no source path
    batches = [line for line in lines if re.match(r"ae epoch [12]/2  batch \d+/23  reconstruction=", line)]
    assert len(batches) == 2 * 23  # a line per batch (1,438 images / 64: 22 full + the partial last)
    assert all("elapsed 0:" in line and "ETA 0:" in line for line in batches)
    done = [line for line in lines if re.match(r"ae epoch \d/2 done  reconstruction=\S+  loss=\S+  \(", line)]
    assert [line.split()[2] for line in done] == ["1/2", "2/2"]
    assert done[-1].endswith("ETA 0:00:00")
    assert "trained ae for 2 epochs" in stdout


def test_plain_lines_come_at_the_interval(monkeypatch):
    import io

    from forensics.app import progress

    monkeypatch.setenv(progress.INTERVAL, "3600")
    stream = io.StringIO()
    lines = progress.PlainLines(stream)
    for k in range(5):
        lines.emit(f"step {k}")
    lines.emit("epoch done", force=True)
    assert stream.getvalue().splitlines() == ["step 0", "epoch done"]
    assert lines.timing(0.25).startswith("elapsed 0:00:0") and "ETA 0:00:0" in lines.timing(0.25)
    assert "ETA" not in lines.timing(None)


def test_terminal_bar_counts_epochs():
    import io

    from rich.console import Console

    from forensics.app.progress import training_progress

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, log_path=False, color_system=None)
    with training_progress(console, "gan") as callback:
        callback({"epoch": 1, "epochs": 4, "step": 5, "steps": 10, "losses": {"D_loss": 0.5}})
        callback({"epoch": 1, "epochs": 4, "done": True,
                  "record": {"epoch": 2, "D_loss": 0.5, "seconds": 1.0}})
    text = screen.getvalue()
    assert "gan epoch 2/4" in text and "batch 5/10" in text
    assert "progress.py" not in text  # the epoch's log line carries no source path
    assert "epoch 2/4  D_loss=0.5" in text


# -- Ctrl-C ------------------------------------------------------------------------------------


def _interrupt_after(process: subprocess.Popen, pattern: str) -> str:
    """Send Ctrl-C (SIGINT) once a stderr line matches ``pattern``; return the rest of stderr."""
    for line in process.stderr:
        if re.search(pattern, line):
            process.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail("the run ended before the expected progress line")
    rest = process.stderr.read()
    process.wait(timeout=120)
    return rest


@pytest.mark.parametrize(("batch", "after", "said"), [
    # one image a batch: 1,438 batches in the first epoch, far more than the signal needs
    (["--batch-size", "1"], r"epoch 1/\d+  batch 2/", "before the first epoch finished; no epoch is saved"),
    ([], r"epoch 1/\d+ done", r"epoch \d+ is saved .*\(continue with --resume\)"),
])
def test_ctrl_c_says_what_is_saved(batch, after, said, tmp_path):
    process = forensics("train", "ae", *TINY_AE[:2], "--epochs", "500", *TINY_AE[4:], *batch,
                        "--out", tmp_path / "r", FORENSICS_PROGRESS_SECONDS="0")
    try:
        rest = _interrupt_after(process, after)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    message = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert len(message) == 1 and re.search(said, message[0]), rest
    assert "last finished epoch is saved" not in rest


# -- the shared options and help texts --------------------------------------------------------


def _options(command: str) -> dict[str, object]:
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    return {param.name: param for param in click_command.params if param.param_type_name == "option"}


SHARED = ("seed", "device", "epochs", "batch_size", "precision", "compile", "data_root", "download")


def test_shared_options_are_spelled_the_same_everywhere():
    import typer.main

    commands = typer.main.get_command(app).commands
    seen: dict[str, tuple] = {}
    for name in commands:
        for key, param in _options(name).items():
            if key not in SHARED or (name, key) == ("detect", "batch_size"):
                continue  # detect's --batch-size is files per scoring batch, not training
            spelled = (tuple(param.opts), tuple(param.secondary_opts), param.help,
                       None if key in ("epochs",) else param.default)
            assert seen.setdefault(key, spelled) == spelled, (name, key)
    assert set(SHARED) <= set(seen)
    for command in ("train", "generate", "explore", "audit", "benchmark", "detect", "train-detector"):
        assert "device" in _options(command), command


def _every_command() -> list[str]:
    """Every command, a group's subcommands as "group sub" (datasets export)."""
    import typer.main

    names = []
    for name, command in typer.main.get_command(app).commands.items():
        names.append(name)
        names += [f"{name} {sub}" for sub in getattr(command, "commands", {})]
    return names


@pytest.mark.parametrize("command", _every_command())
def test_help_shows_every_default(command):
    import typer.main

    click_command = typer.main.get_command(app)
    for word in command.split():
        click_command = click_command.commands[word]
    options = {p.name: p for p in click_command.params if p.param_type_name == "option"}
    for key, param in options.items():
        if key == "help" or param.required or param.multiple:  # a repeated option: none by default
            continue
        shown = param.default is not None and param.show_default is not False
        assert shown or "default" in (param.help or "").lower(), (command, key)
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0
    # flags read --flag/--no-flag, with no <bool> beside them (only -h/--help keeps Typer's)
    assert all("--help" in line for line in result.output.splitlines() if "<bool>" in line)


# -- datasets export ---------------------------------------------------------------------------


def test_datasets_export_writes_the_held_out_images(tmp_path):
    import csv

    from forensics.app.verify import verify
    from forensics.data import load_split
    from forensics.images import read_image, to_uint8

    out = tmp_path / "digits-test"
    result = invoke("datasets", "export", "digits", "--split", "test", "--out", out)
    assert result.exit_code == 0, result.output
    held_out = load_split("digits", "test")
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == len(held_out) == len(list(out.glob("*.png"))) == 180
    assert [int(r["label"]) for r in rows] == held_out.labels.tolist()
    # the very pixels the toolkit holds out, in order
    for k in (0, 57, 179):
        assert (read_image(out / rows[k]["file"]) == to_uint8(held_out.images[k:k + 1])[0]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["header"]["kind"] == "real" and manifest["header"]["split"] == "test"
    assert "generator" not in manifest["header"]
    report = verify(out)  # checked like a generated set, every file recorded
    assert (report.kind, report.problems, report.notes) == ("exported real data set", [], [])

    again = invoke("datasets", "export", "digits", "--out", out)
    assert_one_line_error(again, 2, "already exists", "--force")
    bad = invoke("datasets", "export", "digits", "--split", "holdout", "--out", tmp_path / "x")
    assert_one_line_error(bad, 2, "--split must be one of train, val, test, all")
    assert not (tmp_path / "x").exists()


def test_datasets_still_lists_and_talks_to_users():
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    assert "4000/500/500" in result.output and "forensics.images" not in result.output
    assert "export" in invoke("datasets", "--help").output


def test_stages_and_counts_as_plain_lines(monkeypatch):
    import io

    from rich.console import Console

    from forensics.app import progress

    monkeypatch.setenv(progress.INTERVAL, "0")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=False)
    with progress.stage_progress(console) as stage:
        stage("reference", 0, 1)
        stage("read", 50, 100)
    with progress.count_progress(console, "scoring", 4) as advance:
        advance(2)
    lines = screen.getvalue().splitlines()
    assert lines[0].startswith("reference  elapsed 0:00:0")
    assert lines[1].startswith("read: 50/100  elapsed") and "ETA" in lines[1]
    assert lines[2].startswith("scoring: 2/4  elapsed") and lines[3].startswith("scoring: done (")
