"""Crash safety of ``forensics train`` and ``forensics generate``, in real processes.

A run is killed (SIGKILL) part-way, then restarted: the finished result is bit-identical
to an uninterrupted run (timestamps aside) and nothing half-written is left behind or
taken as complete. Two processes never write one output folder. Ctrl-C (SIGINT) stops a
run with one line and exit status 130, and ``--resume`` continues it.

Everything runs on a 6-epoch GAN with 8 channels on ``digits`` (an epoch takes ~0.25 s),
one thread per process so results are bit-identical on any machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import generators.training  # noqa: F401  (imported now: in-process commands answer at once)
from benchmarks.contents import run_contents, synthetic_contents
from forensics.app.cli import app

#: every test here runs the command line in real processes, and kills some of them
pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "forensics.app.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRAIN = ["train", "gan", "--dataset", "digits", "--epochs", "6", "--set", "width=8",
         "--set", "noise_dim=8", "--batch-size", "32", "--device", "cpu", "--seed", "0"]
#: the same run asked for 40 epochs: it surely still runs while a second process knocks
TRAIN_LONG = [*TRAIN[:5], "40", *TRAIN[6:]]
#: enough images that writing them takes a few seconds: time to kill it part-way
N_IMAGES = 8000
IN_USE = "in use by another forensics process"


def start(*args: object, log: Path) -> subprocess.Popen:
    """Start the CLI; SIGINT is given its default meaning even if our shell ignores it."""
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [*CLI, *map(str, args)], stdout=handle, stderr=subprocess.STDOUT, env=ENV,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=ENV,
                            timeout=timeout)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str,
             timeout: float = 90) -> None:
    """Poll ``condition`` every 5 ms; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the process ended (status {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def metrics_lines(run: Path) -> int:
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*"))


def pngs_in(folder: Path) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(".png"))
    except OSError:
        return 0


# -- what "the same result" means ------------------------------------------------------------


def assert_same(got: dict[str, object], expected: dict[str, object]) -> None:
    assert sorted(got) == sorted(expected), "different files (leftovers or missing)"
    differ = [name for name in expected if got[name] != expected[name]]
    assert not differ, f"differ from the uninterrupted run: {differ[:5]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    """An uninterrupted run and an uninterrupted synthetic set made from it."""
    root = tmp_path_factory.mktemp("reference")
    run, fakes = root / "run", root / "fakes"
    assert run_cli(*TRAIN, "--out", run).returncode == 0
    made = run_cli("generate", run, "--n", N_IMAGES, "--out", fakes, "--seed", 0,
                   "--device", "cpu")
    assert made.returncode == 0, made.stderr
    return {"run": run, "run_contents": run_contents(run), "fakes": fakes,
            "fakes_contents": synthetic_contents(fakes)}


# -- SIGKILL, then restart ----------------------------------------------------------------------


def test_killed_training_resumes_to_the_same_weights(reference, tmp_path):
    run = tmp_path / "run"
    process = start(*TRAIN, "--out", run, log=tmp_path / "log")
    wait_for(lambda: metrics_lines(run) >= 1, process, "the first epoch's metrics line")
    process.kill()
    assert process.wait() == -signal.SIGKILL, "finished before the kill: make epochs longer"
    assert metrics_lines(run) < 6

    resumed = run_cli(*TRAIN, "--out", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same(run_contents(run), reference["run_contents"])


def test_killed_generate_leaves_nothing_and_a_rerun_is_identical(reference, tmp_path):
    out = tmp_path / "fakes"
    process = start("generate", reference["run"], "--n", N_IMAGES, "--out", out, "--seed", 0,
                    "--device", "cpu", log=tmp_path / "log")
    wait_for(lambda: any(pngs_in(p) > 100 for p in partials(out)), process,
             "the first images in the staging folder")
    process.kill()
    assert process.wait() == -signal.SIGKILL, "finished before the kill: raise N_IMAGES"
    assert not out.exists(), "a killed generate must not leave a folder that looks complete"

    again = run_cli("generate", reference["run"], "--n", N_IMAGES, "--out", out, "--seed", 0,
                    "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert partials(out) == [], "staging leftovers of the killed run remain"
    assert_same(synthetic_contents(out), reference["fakes_contents"])


# -- two writers, and Ctrl-C -----------------------------------------------------------------


def test_second_train_on_the_same_folder_is_refused_then_ctrl_c_and_resume(reference, tmp_path):
    run = tmp_path / "run"
    process = start(*TRAIN_LONG, "--out", run, log=tmp_path / "log")
    wait_for(lambda: metrics_lines(run) >= 1, process, "the first epoch's metrics line")

    second = CliRunner().invoke(app, [*TRAIN, "--out", str(run)])
    assert second.exit_code == 2 and IN_USE in second.stderr, second.output
    resumed_too = CliRunner().invoke(app, [*TRAIN, "--out", str(run), "--resume"])
    assert resumed_too.exit_code == 2 and IN_USE in resumed_too.stderr, resumed_too.output

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, (tmp_path / "log").read_text()
    log = (tmp_path / "log").read_text()
    assert "interrupted" in log and "--resume" in log and "Traceback" not in log, log
    assert metrics_lines(run) < 6

    resumed = run_cli(*TRAIN, "--out", run, "--resume")  # --epochs 6: as the reference
    assert resumed.returncode == 0, resumed.stderr
    assert_same(run_contents(run), reference["run_contents"])


def test_second_generate_on_the_same_folder_is_refused(reference, tmp_path):
    warm = CliRunner().invoke(app, ["generate", str(reference["run"]), "--n", "1", "--out",
                                    str(tmp_path / "warm"), "--device", "cpu"])
    assert warm.exit_code == 0, warm.output  # first use in this process is slow: not in the race
    out = tmp_path / "fakes"
    process = start("generate", reference["run"], "--n", N_IMAGES, "--out", out, "--seed", 0,
                    "--device", "cpu", log=tmp_path / "log")
    wait_for(lambda: any(p.name.endswith(".partial") for p in partials(out)), process,
             "the staging folder")
    second = CliRunner().invoke(app, ["generate", str(reference["run"]), "--n", "5", "--out",
                                      str(out), "--device", "cpu", "--force"])
    assert second.exit_code == 2 and IN_USE in second.stderr, second.output
    assert process.wait(timeout=120) == 0, (tmp_path / "log").read_text()
    assert partials(out) == []
    assert_same(synthetic_contents(out), reference["fakes_contents"])  # the first one's work
