"""Attacks by class, each through a real ``forensics`` process: tried / held.

Part of the reliability benchmark (:mod:`benchmarks.reliability`, section ``attacks``).
Every attack runs the command line as a user would, in its own process, and is *held*
when all of these hold:

- no traceback, and the exit status the contract gives (0, 1 "nothing readable" or
  "does not verify", 2 usage or file-system error);
- a failure is one ``error:`` line (a progress display may stand above it);
- no hang (each process has :data:`TIMEOUT` seconds);
- nothing a reader would misread: every ``--json`` line parses with a strict parser (no
  NaN), no CSV cell starts a formula, no control character (escape sequences) in what
  reaches the terminal;
- peak memory (``ru_maxrss`` of the process) within :data:`BUDGET_MIB`, whatever the
  folder holds;
- for output failures: nothing half-written (no output, temporary or staging folder left).

Classes: untrusted text (tags, names), hostile folders (links, loops, FIFOs, devices,
unreadable files, bombs), huge images, detector headers, full / read-only / over-long
outputs, failed training, suites, ``verify`` tampering, the audit's output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-m", "forensics.app.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
#: seconds a command may take before it counts as hung
TIMEOUT = 300
#: the peak memory every command must stay within, whatever the input (MiB)
BUDGET_MIB = 2048
TINY_GAN = ["--set", "width=8", "--set", "noise_dim=8", "--batch-size", "32"]

#: starts the command with an optional file-size limit; reports its peak memory and status
LAUNCH = ("import json, os, resource, subprocess, sys\n"
          "limit = int(sys.argv[1])\n"
          "def limited():\n"
          "    if limit:\n"
          "        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
          "with open(sys.argv[2], 'wb') as out, open(sys.argv[3], 'wb') as err:\n"
          "    p = subprocess.Popen(sys.argv[4:], stdout=out, stderr=err, preexec_fn=limited)\n"
          "    _, status, usage = os.wait4(p.pid, 0)\n"
          "print(json.dumps([usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))\n")


@dataclass
class Attack:
    """One attack and what came of it."""

    kind: str  # the class of attack
    name: str
    command: str
    expected: tuple[int, ...]
    status: int | None = None
    peak_mib: float | None = None
    seconds: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.failures


def _run(args: list[object], *, fsize: int = 0, cwd: Path | None = None
         ) -> tuple[int | None, str, str, float | None, float]:
    """``(status, stdout, stderr, peak MiB, seconds)``; status ``None`` when it hung."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(fsize), str(out), str(err), *CLI,
             *map(str, args)], stdout=subprocess.PIPE, env=ENV, cwd=cwd,
            start_new_session=True)
        try:
            report, _ = process.communicate(timeout=TIMEOUT)
            kib, status = json.loads(report)
            peak = round(kib / 1024, 1)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status, peak = None, None
        seconds = round(time.perf_counter() - began, 2)
        text = [p.read_bytes().decode("utf-8", "replace") if p.exists() else "" for p in (out, err)]
    return status, text[0], text[1], peak, seconds


CONTROL = {chr(c) for c in range(32) if chr(c) not in "\n\r\t"} | {"\x7f", "\x9b"}


def _misread(stdout: str, stderr: str, output: str) -> list[str]:
    """What a strict JSON parser, a spreadsheet or a terminal would misread."""
    problems = []
    if any(c in CONTROL for c in stdout + stderr):
        problems.append("control character in the terminal output")
    if output == "json":
        for line in stdout.splitlines():
            if line.strip():
                try:
                    json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
                except ValueError as error:
                    problems.append(f"not strict JSON: {str(error)[:80]}")
                    break
    if output == "csv":
        for row in list(csv.reader(io.StringIO(stdout)))[1:]:
            for cell in row:
                try:
                    float(cell)
                except ValueError:
                    if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                        problems.append(f"CSV formula cell {cell[:30]!r}")
    return problems


def attempt(kind: str, name: str, args: list[object], expected: tuple[int, ...], *,
            output: str = "", fsize: int = 0, cwd: Path | None = None,
            after: Callable[[int | None], list[str]] | None = None) -> Attack:
    """Run one attack and judge it (see the module doc)."""
    attack = Attack(kind, name, " ".join(str(a) for a in args[:2]), expected)
    status, stdout, stderr, peak, seconds = _run(args, fsize=fsize, cwd=cwd)
    attack.status, attack.peak_mib, attack.seconds = status, peak, seconds
    if status is None:
        attack.failures.append(f"hung (over {TIMEOUT} s)")
    else:
        if "Traceback" in stdout + stderr:
            attack.failures.append("traceback")
        if status not in expected:
            attack.failures.append(f"exit {status}, expected {expected}")
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        if status == 2 and (len(errors) != 1 or not stderr.rstrip().endswith(errors[0])):
            attack.failures.append("not one error line")
        attack.failures += _misread(stdout, stderr, output)
    if peak is not None and peak > BUDGET_MIB:
        attack.failures.append(f"peak memory {peak} MiB over {BUDGET_MIB}")
    if after is not None:
        attack.failures += after(status)
    return attack


# -- what the attacks are made of ---------------------------------------------------------------


def _png(pixels: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    from forensics.images import png_bytes

    return png_bytes(pixels, text)


def _digits(folder: Path, n: int = 40, start: int = 0) -> Path:
    from forensics.data import load_split

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(load_split("digits", "test").images[start:start + n]):
        (folder / f"img_{i:03d}.png").write_bytes(
            _png((image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)))
    return folder


def _tagged(folder: Path) -> int:
    """PNGs whose provenance tags and names are hostile text."""
    from forensics.provenance import PROVENANCE_KEY

    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((8, 8, 1), np.uint8)
    tags = {
        "deep.png": "[" * 100_000, "closing.png": "[/]", "markup.png": "[bold red]REAL[/bold red]",
        "link.png": "[link=https://example.com]click[/link]",
        "escape.png": "\x1b]0;owned\x07\x1b[2J\x1b[31mred", "nan.png": '{"score": NaN, "x": Infinity}',
        "=HYPERLINK(\"x\").png": "=1+1", "+cmd.png": "+cmd", "@SUM(A1).png": "-2+3",
        "[bold red]name[link=x].png": "{}", "bell\x07name.png": "\x07", "csi\x9bname.png": "\x9b31m",
        "rtl\u202ename.png": "\u202e", "big.png": "x" * 3_000_000,
    }
    for name, tag in tags.items():
        (folder / name).write_bytes(_png(pixels, {PROVENANCE_KEY: tag}))
    return len(tags)


def _many_tags(folder: Path, n: int = 200) -> None:
    """``n`` small PNGs, each with a 4 MB zTXt tag (compresses to a few kB)."""
    from benchmarks.hostile import chunk, raw_png
    from forensics.provenance import PROVENANCE_KEY

    folder.mkdir(parents=True, exist_ok=True)
    text = PROVENANCE_KEY.encode() + b"\x00\x00" + zlib.compress(b"[" * 4_000_000, 9)
    body = raw_png(8, 8, zlib.compress(b"".join(b"\x00" + bytes(8) for _ in range(8))),
                   extra=(chunk(b"zTXt", text),))
    for i in range(n):
        (folder / f"t{i:03d}.png").write_bytes(body)


def _huge(folder: Path, n: int = 10, side: int = 6000) -> None:
    """``n`` gray side×side PNGs (a few hundred kB each: flat rows compress)."""
    from benchmarks.hostile import raw_png

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        compressor = zlib.compressobj(9)
        row = b"\x00" + bytes([(i * 25) % 256]) * side
        stream = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
        (folder / f"huge_{i}.png").write_bytes(raw_png(side, side, stream))


def _hostile_folder(folder: Path) -> None:
    """Digits among the hostile corpus, links to devices, a folder linked to itself,
    an unreadable file and a nested symlink loop."""
    from benchmarks.hostile import build_corpus

    _digits(folder)
    build_corpus(folder, valid=False)
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink("/dev/urandom", folder / "urandom.jpg")
    os.symlink(".", folder / "self")
    (folder / "sub").mkdir()
    os.symlink("../sub", folder / "sub" / "up")
    os.symlink("a.png", folder / "sub" / "b.png")
    os.symlink("b.png", folder / "sub" / "a.png")
    locked = folder / "locked.png"
    locked.write_bytes(b"\x89PNG")
    locked.chmod(0)


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True).returncode == 0


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _nothing_left(folder: Path, allowed: tuple[str, ...] = ()) -> Callable[[int | None], list[str]]:
    """After a failure, nothing new under ``folder`` (a success may have written its output)."""
    def check(status: int | None) -> list[str]:
        if status == 0:
            return []
        left = [p.name for p in folder.iterdir() if p.name not in allowed] if folder.exists() else []
        return [f"left behind: {', '.join(sorted(left)[:5])}"] if left else []
    return check


# -- the attacks --------------------------------------------------------------------------------


def run_attacks(root: Path) -> dict:
    """Build the corpus under ``root``, run every attack, return the tally and each result."""
    root.mkdir(parents=True, exist_ok=True)
    attacks: list[Attack] = []

    def add(*args, **kwargs) -> None:
        attacks.append(attempt(*args, **kwargs))
        last = attacks[-1]
        print(f"  {'held' if last.held else 'FAILED'}: {last.kind} / {last.name} "
              f"({last.seconds} s, {last.peak_mib} MiB) {'; '.join(last.failures)}", flush=True)

    # what the attacks need: a tiny run, its fakes, a detector
    run, fakes, detector = root / "run", root / "fakes", root / "detector"
    for args in (["train", "gan", "--dataset", "digits", "--epochs", "1", *TINY_GAN, "--out", run,
                  "--device", "cpu"],
                 ["generate", run, "--n", "100", "--out", fakes, "--device", "cpu"],
                 ["train-detector", "pixel-logreg", "--real", "digits", "--fake", fakes, "--out",
                  detector]):
        status, _, stderr, _, _ = _run(args)
        assert status == 0, stderr[-2000:]

    # 1. untrusted text through detect's three outputs
    tagged = root / "tagged"
    _tagged(tagged)
    for output in ("table", "json", "csv"):
        flag = [] if output == "table" else [f"--{output}"]
        add("untrusted text", f"hostile tags and names, detect {output}",
            ["detect", tagged, "--detector", detector, *flag], (0,), output=output)
    many = root / "many_tags"
    _many_tags(many)
    add("untrusted text", "200 PNGs with 4 MB zTXt tags, detect --json (skipped as text bombs "
        "past Pillow's MAX_TEXT_CHUNK: exit 1, nothing readable)",
        ["detect", many, "--detector", detector, "--json"], (0, 1), output="json")

    # 2. hostile folders through every reader
    hostile = root / "hostile"
    _hostile_folder(hostile)
    for output in ("table", "json", "csv"):
        flag = [] if output == "table" else [f"--{output}"]
        add("hostile folder", f"detect {output}", ["detect", hostile, "--detector", detector, *flag],
            (0,), output=output)
    add("hostile folder", "audit", ["audit", hostile, "--real", "digits", "--out", root / "a1"], (0,))
    add("hostile folder", "train-detector --fake", ["train-detector", "pixel-logreg", "--real",
        "digits", "--fake", hostile, "--out", root / "d1"], (0,))
    add("hostile folder", "train --dataset folder:", ["train", "gan", "--dataset",
        f"folder:{hostile}", "--epochs", "1", *TINY_GAN, "--out", root / "r1", "--device", "cpu"], (0,))
    add("hostile folder", "verify", ["verify", hostile], (2,))
    loop = root / "loop"
    loop.mkdir()
    os.symlink("loop.png", loop / "loop.png")
    add("hostile folder", "audit, nothing but a symlink loop",
        ["audit", loop, "--real", "digits", "--out", root / "a2"], (2,))

    # 3. huge images: a size cap and a pixel budget
    huge = root / "huge"
    _huge(huge)
    add("huge images", "train --dataset folder: ten 6000x6000 PNGs", ["train", "vae", "--dataset",
        f"folder:{huge}", "--epochs", "1", "--batch-size", "4", "--out", root / "r2",
        "--device", "cpu"], (0,))
    add("huge images", "detect ten 6000x6000 PNGs", ["detect", huge, "--detector", detector,
        "--json"], (0,), output="json")
    add("huge images", "audit ten 6000x6000 PNGs",
        ["audit", huge, "--real", "digits", "--out", root / "a3"], (0,))

    # 4. detector headers that lie
    header = json.loads((detector / "detector.json").read_text())
    for name, change in {"input_shape [3, 100000, 100000]": {"input_shape": [3, 100000, 100000]},
                         "input_shape not the model's": {"input_shape": [1, 9, 9]},
                         "threshold -5": {"threshold": -5}, "threshold NaN": {"threshold": "NaN"},
                         "files outside": {"files": {"../../etc/passwd": "0" * 64}}}.items():
        bad = root / f"det_{len(attacks)}"
        shutil.copytree(detector, bad)
        (bad / "detector.json").write_text(json.dumps({**header, **change}))
        add("detector header", name, ["detect", fakes, "--detector", bad, "--json"], (2,),
            output="json")

    # 5. outputs that cannot be written
    long = root / ("n" * 300)
    targets = {"generate": lambda o: ["generate", run, "--n", "2000", "--out", o, "--device", "cpu"],
               "train": lambda o: ["train", "vae", "--dataset", "digits", "--epochs", "1", "--out", o,
                                   "--device", "cpu"],
               "train-detector": lambda o: ["train-detector", "cnn", "--real", "digits", "--fake",
                                            fakes, "--out", o, "--set", "epochs=1"],
               "benchmark": lambda o: ["benchmark", "--suite", "quick", "--out", o],
               "audit": lambda o: ["audit", fakes, "--real", "digits", "--out", o],
               "explore": lambda o: ["explore", run, "--out", o],
               "detect --out": lambda o: ["detect", fakes, "--detector", detector, "--out",
                                          o / "s.jsonl"],
               "verify --digest": lambda o: ["verify", run, "--digest", o / "kept.json"]}
    for command, make in targets.items():
        add("output", f"{command}: over-long name", make(long), (2,),
            after=_nothing_left(root, tuple(p.name for p in root.iterdir())))
        disk = root / f"ro_{len(attacks)}"
        if _mount(disk, "ro,size=64k"):
            add("output", f"{command}: read-only file system", make(disk / "out"), (2,),
                after=_nothing_left(disk))
            _unmount(disk)
        full = root / f"full_{len(attacks)}"
        if command not in ("benchmark",) and _mount(full, "size=8k"):
            # a small output (figures of 8×8 digits, a digest) may fit: then it must be whole
            add("output", f"{command}: disk full (tmpfs of 8 kB)", make(full / "out"),
                (0, 2) if command in ("explore", "verify --digest") else (2,),
                after=_nothing_left(full))
            _unmount(full)
        limited = root / f"fsize_{len(attacks)}"
        limited.mkdir()
        size = 512 if command == "verify --digest" else 8192  # past the probe, into the writes
        if command not in ("benchmark", "explore"):
            add("output", f"{command}: file size limit (RLIMIT_FSIZE {size} B: EFBIG)",
                make(limited / "out"), (2,), fsize=size, after=_nothing_left(limited))

    # 6. failed training leaves no run folder
    for name, bad in {"--variant bogus": ["ae", "--variant", "bogus"],
                      "unknown --set key": ["gan", "--set", "no_such=1"],
                      "--set width=-3": ["gan", "--set", "width=-3"],
                      "--set lr=nan": ["gan", "--set", "lr=nan"],
                      "unknown data set": ["gan", "--dataset", "nowhere"],
                      "folder data set of junk": ["gan", "--dataset", f"folder:{loop}"]}.items():
        out = root / f"failed_{len(attacks)}"
        add("failed train", name, ["train", *bad, "--epochs", "1", "--out", out, "--device", "cpu"],
            (2,), after=lambda _, o=out: [f"{o.name} left behind"] if o.exists() else [])

    # 7. suites that must not start training
    suite_head = 'name = "x"\ndataset = "digits"\n'
    gan = '[generators.gan]\nkind = "gan"\nepochs = 1\noptions = { width = 8, noise_dim = 8 }\n'
    det = '[detectors.pixel-logreg]\nkind = "pixel-logreg"\n'
    for name, text in {"fakes_per_generator = -5": suite_head + "fakes_per_generator = -5\n" + gan + det,
                       "misspelt top-level key": suite_head + "fakes_per_genrator = 10\n" + gan + det,
                       "epochs = 1.5": suite_head + gan.replace("epochs = 1", "epochs = 1.5") + det,
                       "jpeg = [500, -3]": suite_head + "jpeg = [500, -3]\n" + gan + det,
                       "unknown generator option": suite_head + gan.replace("width", "widht") + det,
                       "deep TOML": suite_head + "x = " + "[" * 5000 + "]" * 5000 + "\n",
                       "not TOML": "\x00\x01 [[[ ="}.items():
        path = root / f"suite_{len(attacks)}.toml"
        path.write_text(text)
        add("suite", name, ["benchmark", "--suite", path, "--out", root / f"rep_{len(attacks)}",
                            "--cache", root / "cache"], (2,))

    # 8. verify: tampering at every place
    _verify_attacks(root, run, fakes, detector, add)

    # 9. the audit writes outside the set: detect DIR afterwards scores the set's images only
    audited = root / "audited"
    shutil.copytree(fakes, audited)
    add("audit output", "audit DIR (default --out), then verify DIR",
        ["audit", audited, "--real", "digits"], (0,), cwd=root)
    add("audit output", "audit --out inside DIR", ["audit", audited, "--real", "digits", "--out",
        audited / "audit"], (2,))
    add("audit output", "verify DIR after the audit", ["verify", audited], (0,))

    held = sum(a.held for a in attacks)
    peaks = [a.peak_mib for a in attacks if a.peak_mib is not None]
    return {
        "tried": len(attacks), "held": held, "failed": len(attacks) - held,
        "tracebacks": sum("traceback" in a.failures for a in attacks),
        "hangs": sum(a.status is None for a in attacks),
        "misread_outputs": sum(any(f.startswith(("control", "not strict", "CSV")) for f in a.failures)
                               for a in attacks),
        "memory_budget_mib": BUDGET_MIB, "peak_mib_max": max(peaks) if peaks else None,
        "timeout_s": TIMEOUT,
        "by_class": {kind: {"tried": sum(a.kind == kind for a in attacks),
                            "held": sum(a.kind == kind and a.held for a in attacks)}
                     for kind in dict.fromkeys(a.kind for a in attacks)},
        "attacks": [a.__dict__ | {"held": a.held} for a in attacks],
    }


def _verify_attacks(root: Path, run: Path, fakes: Path, detector: Path, add) -> None:
    """Each tampering of a folder must make ``verify`` fail (1 or 2), never pass."""
    from forensics import digest

    made = iter(range(1_000_000))

    def copy(source: Path, name: str) -> Path:
        return Path(shutil.copytree(source, root / "verify" / f"{next(made)}_{name}", symlinks=True))

    def edit_json(path: Path, change) -> None:
        value = json.loads(path.read_text())
        change(value)
        path.write_text(json.dumps(value))

    cases: dict[str, Callable[[], Path]] = {}

    def case(fn):
        cases[fn.__name__.replace("_", " ")] = fn
        return fn

    @case
    def detector_threshold_set_to_0():
        d = copy(detector, "threshold")
        edit_json(d / "detector.json", lambda v: v.update(threshold=0.0))
        return d

    @case
    def detector_metrics_edited():
        d = copy(detector, "metrics")
        edit_json(d / "detector.json", lambda v: v.update(metrics={"auc": 1.0}))
        return d

    @case
    def run_checkpoint_one_bit():
        r = copy(run, "checkpoint")
        data = bytearray((r / "checkpoint.safetensors").read_bytes())
        data[-1] ^= 1
        (r / "checkpoint.safetensors").write_bytes(bytes(data))
        return r

    @case
    def run_metrics_line_edited():
        r = copy(run, "metrics")
        (r / "metrics.jsonl").write_text((r / "metrics.jsonl").read_text().replace("1", "2", 1))
        return r

    @case
    def run_payload_pkl():
        r = copy(run, "payload")
        (r / "payload.pkl").write_bytes(b"\x80\x04K\x01.")
        return r

    @case
    def listed_image_linked_outside():
        s = copy(fakes, "link")
        first = s / "img_000000.png"
        shutil.move(first, root / "verify" / "outside.png")
        os.symlink("../outside.png", first)
        return s

    @case
    def sub_folder_linked_elsewhere():
        s = copy(fakes, "linked_dir")
        os.symlink(root / "hostile", s / "more")
        return s

    @case
    def nested_extra_image():
        s = copy(fakes, "nested")
        (s / "nested").mkdir()
        shutil.copy(s / "img_000001.png", s / "nested" / "x.png")
        return s

    @case
    def rows_removed_with_their_images():
        s = copy(fakes, "rows")
        rows = json.loads((s / "manifest.json").read_text())["images"]
        for row in rows[10:]:
            (s / row["file"]).unlink()
        edit_json(s / "manifest.json", lambda v: v.update(images=v["images"][:10]))
        (s / "contents.json").unlink()
        return s

    @case
    def entry_of_5000_characters():
        s = copy(fakes, "long")
        edit_json(s / "manifest.json",
                  lambda v: v["images"].append({"file": "a" * 5000, "sha256": "0"}))
        return s

    @case
    def deeply_nested_manifest():
        s = copy(fakes, "deep")
        (s / "manifest.json").write_text('{"images": ' + "[" * 100_000)
        return s

    @case
    def fifo_in_the_folder():
        s = copy(fakes, "fifo")
        os.mkfifo(s / "pipe.png")
        return s

    @case
    def record_rewritten_with_the_edit():  # only the detached digest shows it
        d = copy(detector, "rewritten")
        edit_json(d / "detector.json", lambda v: v.update(threshold=0.0))
        digest.record(d)
        return d

    kept = root / "kept.json"
    status, _, stderr, _, _ = _run(["verify", detector, "--digest", kept])
    assert status == 0, stderr[-2000:]
    for name, make in cases.items():
        folder = make()
        expect = ["--expect", kept] if name.startswith("record rewritten") else []
        add("verify", name, ["verify", folder, *expect], (1, 2))
