"""Full disks, read-only outputs, over-long names and hostile folders through the commands.

Every such failure is one line and a non-zero exit, and nothing is left half-written:
no output folder, no temporary, no empty run folder. The failures are real, made by the
operating system, never by replacing code of ours:

- a full disk: a tiny tmpfs (``mount -t tmpfs -o size=…``; skipped where this process may
  not mount, e.g. a CI container without CAP_SYS_ADMIN) and, everywhere, the process's file
  size limit (``RLIMIT_FSIZE``: the kernel fails the write with EFBIG exactly where a full
  disk fails it with ENOSPC; Python ignores SIGXFSZ, so the write returns the error);
- read-only: a tmpfs mounted read-only (EROFS), or a folder without write permission
  (EACCES) when not root;
- over-long names: a 300-byte name component (ENAMETOOLONG from the kernel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.hostile import build_corpus
from forensics.app.cli import app
from forensics.images import png_bytes
from tests.cli_checks import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()
LONG = "n" * 300  # over every Linux file system's 255-byte name limit


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_error(result, *fragments: str) -> str:
    """Exit 2 and one ``error:`` line (a progress display may stand above it), no traceback."""
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    for fragment in fragments:
        assert fragment in errors[0].lower(), errors[0]
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temporaries and staging folders of ours, anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*")
                  if p.name.endswith((".tmp", ".partial", ".old", ".lock")))


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def mounted(tmp_path):
    """``mounted(options)`` → a fresh tmpfs (unmounted after the test); skip if not allowed."""
    made: list[Path] = []

    def mount(options: str) -> Path:
        target = tmp_path / f"mnt{len(made)}"
        if not _mount(target, options):
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        made.append(target)
        return target

    yield mount
    for target in made:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def digits_folder(folder: Path, n: int = 30) -> Path:
    from forensics.data import load_split

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(load_split("digits", "test").images[:n]):
        pixels = (image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        (folder / f"img_{i:03d}.png").write_bytes(png_bytes(pixels))
    return folder


# -- full disk ----------------------------------------------------------------------------------


def test_generate_on_a_full_disk(trained_run, mounted):
    disk = mounted("size=64k")
    out = disk / "fakes"
    result = invoke("generate", trained_run("gan"), "--n", 2000, "--out", out, "--device", "cpu")
    assert_one_error(result, "no space left on the device")
    assert not out.exists() and os.listdir(disk) == []  # nothing half-written, no staging left


def test_train_on_a_full_disk_leaves_no_run_folder(mounted):
    disk = mounted("size=32k")
    out = disk / "run"
    result = invoke("train", "vae", "--dataset", "digits", "--epochs", "1", "--out", out,
                    "--device", "cpu")
    assert_one_error(result, "no space left on the device")
    assert os.listdir(disk) == []


def test_detector_on_a_full_disk(trained_run, mounted, tmp_path):
    fakes = digits_folder(tmp_path / "fakes")
    disk = mounted("size=8k")
    result = invoke("train-detector", "cnn", "--real", "digits", "--fake", fakes, "--out",
                    disk / "det", "--set", "epochs=1")
    assert_one_error(result, "no space left on the device")
    assert os.listdir(disk) == []


CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["forensics", *sys.argv[2:]]
from forensics.app.cli import main
main()
"""


def run_limited(limit: int, *args: object) -> subprocess.CompletedProcess:
    """The CLI in a real process whose files cannot grow past ``limit`` bytes (EFBIG)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-c", CHILD, str(limit), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def assert_process_one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert line.startswith("error: ") and result.stderr.rstrip().endswith(line)
    for fragment in fragments:
        assert fragment in line.lower(), line


@pytest.mark.parametrize("command", ["generate", "train", "verify-digest", "audit", "detect",
                                     "explore"])
def test_file_size_limit_mid_write(trained_run, tmp_path, command):
    """EFBIG where a full disk gives ENOSPC: the same failing write, on any machine."""
    out = tmp_path / "out"
    fakes = digits_folder(tmp_path / "in" / "fakes", 30)
    if command == "generate":  # each PNG is small; the manifest is the file that grows past it
        result = run_limited(20_000, "generate", trained_run("gan"), "--n", 600, "--out", out,
                             "--device", "cpu")
    elif command == "train":  # the checkpoint of the first epoch is over the limit
        result = run_limited(20_000, "train", "vae", "--dataset", "digits", "--epochs", "1",
                             "--out", out, "--device", "cpu")
    elif command == "audit":  # the plots are the files over the limit
        result = run_limited(8192, "audit", fakes, "--real", "digits", "--out", out)
    elif command == "detect":  # the records of 30 images are over the limit
        result = run_limited(4096, "detect", fakes, "--json", "--out", out / "sub" / "s.jsonl")
    elif command == "explore":
        result = run_limited(100, "explore", trained_run("gan"), "--out", out)
    else:
        result = run_limited(200, "verify", trained_run("gan"), "--digest", out)
    assert_process_one_line(result, "file too large")
    assert not out.exists() and leftovers(tmp_path) == []


# -- read-only outputs --------------------------------------------------------------------------


@pytest.fixture
def read_only(mounted, tmp_path):
    """A read-only folder: a read-only tmpfs when root may mount, else a folder without
    write permission (EACCES) when not root."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder, "permission denied"
        folder.chmod(0o755)
        return
    yield mounted("ro,size=64k"), "read-only file system"


def out_commands(run: Path, fakes: Path, out: Path) -> dict[str, list[object]]:
    """Every command that writes an output folder, pointed at ``out``."""
    return {
        "generate": ["generate", run, "--n", 5, "--out", out, "--device", "cpu"],
        "train": ["train", "vae", "--dataset", "digits", "--epochs", "1", "--out", out,
                  "--device", "cpu"],
        "train-detector": ["train-detector", "cnn", "--real", "digits", "--fake", fakes,
                           "--out", out],
        "explore": ["explore", run, "--out", out],
        "audit": ["audit", fakes, "--real", "digits", "--out", out],
        "benchmark": ["benchmark", "--suite", "quick", "--out", out],
        "detect": ["detect", fakes, "--out", out / "scores.jsonl"],
        "verify --digest": ["verify", run, "--digest", out / "kept.json"],
    }


@pytest.mark.parametrize("command", list(out_commands(Path(), Path(), Path())))
def test_read_only_output_is_refused_before_any_work(trained_run, read_only, tmp_path, command):
    folder, reason = read_only
    fakes = digits_folder(tmp_path / "fakes")
    args = out_commands(trained_run("gan"), fakes, folder / "out")[command]
    result = invoke(*args)
    line = assert_one_line_error(result, 2)
    assert reason in line.lower() and "out" in line
    assert os.listdir(folder) == []


@pytest.mark.parametrize("command", list(out_commands(Path(), Path(), Path())))
def test_over_long_name_is_one_line(trained_run, tmp_path, command):
    fakes = digits_folder(tmp_path / "fakes")
    args = out_commands(trained_run("gan"), fakes, tmp_path / LONG)[command]
    result = invoke(*args)
    assert "name too long" in assert_one_line_error(result, 2).lower()
    assert sorted(os.listdir(tmp_path)) == ["fakes"]


def test_a_file_where_a_folder_should_be(trained_run, tmp_path):
    (tmp_path / "file").write_text("x")
    result = invoke("generate", trained_run("gan"), "--n", 5, "--out", tmp_path / "file" / "out")
    assert_one_line_error(result, 2, "is a file, not a folder")


# -- failed train leaves no run folder ----------------------------------------------------------


@pytest.mark.parametrize("bad", [["--variant", "bogus"], ["--set", "no_such_key=1"],
                                 ["--set", "width=-3"], ["--dataset", "no-such-set"]])
def test_failed_train_leaves_no_run_folder(tmp_path, bad):
    out = tmp_path / "run"
    generator = "ae" if bad[0] == "--variant" else "gan"
    result = invoke("train", generator, *bad, "--epochs", "1", "--out", out, "--device", "cpu")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_failed_train_keeps_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = invoke("train", "ae", "--variant", "bogus", "--out", out, "--device", "cpu")
    assert result.exit_code == 2
    assert (out / "notes.txt").read_text() == "mine"


# -- audit on hostile folders -------------------------------------------------------------------


def test_audit_on_a_hostile_folder_goes_on(tmp_path, monkeypatch):
    folder = digits_folder(tmp_path / "set", 40)
    cases = build_corpus(folder, valid=False)  # loops, FIFOs, dangling links, bombs, junk
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink(folder, folder / "loop_dir")  # a folder linked to itself: not followed
    unreadable = folder / "locked.png"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    monkeypatch.chdir(tmp_path)
    result = invoke("audit", folder, "--real", "digits")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) >= len(cases) + 1  # every bad entry named (locked.png reads as root)
    report = json.loads((tmp_path / "audits" / "set" / "audit.json").read_text())
    assert report["audit"]["n_images"] == 40
    assert not (folder / "audit").exists()  # written outside the set: detect never meets it


def test_audit_out_inside_the_set_is_refused(tmp_path):
    folder = digits_folder(tmp_path / "set", 5)
    for out in (folder / "audit", folder, folder / "a" / "b"):
        result = invoke("audit", folder, "--real", "digits", "--out", out)
        assert_one_line_error(result, 2, "inside")
    assert sorted(p.name for p in folder.iterdir()) == [f"img_{i:03d}.png" for i in range(5)]

