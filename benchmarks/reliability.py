"""Benchmark: hostile input, kill-and-restart, and memory on decompression bombs.

Run: ``python -m benchmarks.reliability [--out benchmarks/results/reliability] [--kills 5]``.

1. Hostile files (the corpus of :mod:`benchmarks.hostile` plus ``--fuzz`` random
   mutations of valid PNG/JPEG/GIF/WebP/BMP/TIFF/PPM files) through ``forensics detect``, each
   file alone in-process and all together in a real process, and through the folder data
   set loader. A crash is a traceback, an exception other than the toolkit's one-line
   error, or an unexpected exit status; a file is *accounted for* when it got a record
   or a ``skipped:`` line naming it.
2. ``forensics train`` and ``forensics generate`` killed (SIGKILL) at random moments and
   restarted (``--resume`` when a run folder exists); the result is compared, file by file,
   with an uninterrupted run (timestamps aside). Data lost = a mismatch, a missing file,
   or a half-written leftover (``*.tmp``, ``*.partial``, a lock file) after the restart.
3. Peak memory (``ru_maxrss`` of the child ``forensics detect`` process) on bombs and on
   normal PNGs.
4. The tiny suite twice, each with its own cache: the same results outside timing.
5. Attacks by class (:mod:`benchmarks.attacks`), each through a real ``forensics`` process:
   untrusted text, hostile folders, huge images, lying detector headers, full / read-only /
   over-long outputs, failed training, bad suites, ``verify`` tampering, the audit's output.
   ``--only attacks`` re-runs this section alone, keeping the others' committed results.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.contents import run_contents, synthetic_contents

CLI = [sys.executable, "-m", "forensics.app.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRAIN = ["train", "gan", "--dataset", "digits", "--epochs", "6", "--set", "width=8",
         "--set", "noise_dim=8", "--batch-size", "32", "--device", "cpu", "--seed", "0"]
N_IMAGES = 8000
LEFTOVER_SUFFIXES = (".tmp", ".partial", ".lock", ".old")


# -- 1. hostile files -------------------------------------------------------------------------
def _mutants(folder: Path, n: int, seed: int) -> int:
    """``n`` valid images of several formats with random bytes flipped, cut or inserted."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    sources = []
    for fmt, suffix, kwargs in (("PNG", "png", {}), ("JPEG", "jpg", {"quality": 85}),
                                ("GIF", "gif", {}), ("WEBP", "webp", {"lossless": True}),
                                ("BMP", "bmp", {}), ("TIFF", "tif", {}), ("PPM", "ppm", {})):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, **kwargs)
        sources.append((buffer.getvalue(), suffix))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data, suffix = sources[i % len(sources)]
        data = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            where = int(rng.integers(0, len(data)))
            action = rng.integers(0, 3)
            if action == 0:
                data[where] = int(rng.integers(0, 256))
            elif action == 1:
                data = data[: max(where, 1)]
            else:
                data[where:where] = rng.integers(0, 256, int(rng.integers(1, 64)),
                                                 dtype=np.uint8).tobytes()
        (folder / f"mutant_{i:04d}.{suffix}").write_bytes(bytes(data))
    return n


def _detect_each(cases: dict, parent: Path) -> dict:
    """Each corpus case alone (a real ``forensics detect`` process, as a user runs it): exit 0
    with a record, or 1 with a skip line."""
    from benchmarks.hostile import CASES, FILESYSTEM, build_corpus

    crashed, wrong = [], []
    for case, (_, expected) in cases.items():
        single = parent / case
        build_corpus(single, skip=tuple(c for c in [*CASES, *FILESYSTEM] if c != case))
        result = _cli("detect", single, "--json")
        bad = isinstance(expected, str)
        if "Traceback" in result.stdout + result.stderr or result.returncode != (1 if bad else 0):
            crashed.append(case)
        elif bad and not any(line.startswith("skipped: ") and expected in line
                             for line in result.stderr.splitlines()):
            wrong.append(case)
        elif not bad and len([line for line in result.stdout.splitlines() if line.strip()]) != 1:
            wrong.append(case)
    return {"tried": len(cases), "crashed": crashed, "wrong_outcome": wrong}


def _detect_folder(folder: Path, expect: int) -> dict:
    """The whole folder in one real ``forensics detect`` process."""
    result = subprocess.run([*CLI, "detect", str(folder), "--json"], capture_output=True,
                            env=ENV, timeout=600)
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped: ")]
    files = len(list(os.scandir(folder)))
    # a skipped file has a ``skipped:`` line and an error record (verdict null) in the JSON
    scored = [r for r in records if r.get("error") is None]
    errors = [r for r in records if r.get("error") is not None]
    return {"files": files, "scored": len(scored), "skipped": len(skipped),
            "accounted_for": len(scored) + len(skipped) == files and len(errors) == len(skipped)
            and len({r.get("file") for r in records}) == files,
            "exit_status": result.returncode, "expected_exit_status": expect,
            "traceback": "Traceback" in stdout + stderr,
            "crashed": "Traceback" in stdout + stderr or result.returncode != expect}


def _loader(folder: Path) -> dict:
    from forensics.data import load
    from forensics.errors import ForensicsError

    files = len(list(os.scandir(folder)))
    try:
        dataset = load(f"folder:{folder}")
    except ForensicsError as error:
        return {"files": files, "loaded": 0, "skipped": None, "error": str(error),
                "crashed": False}
    except Exception as error:  # noqa: BLE001 - counting crashes is the point
        return {"files": files, "crashed": True, "error": repr(error)}
    return {"files": files, "loaded": len(dataset), "skipped": len(dataset.skipped),
            "accounted_for": len(dataset) + len(dataset.skipped) == files, "crashed": False}


def hostile(root: Path, fuzz: int, seed: int) -> dict:
    from benchmarks.hostile import build_corpus

    cases = build_corpus(root / "mixed")
    build_corpus(root / "bad", valid=False)
    _mutants(root / "fuzz", fuzz, seed)
    each = _detect_each(cases, root / "each")
    folders = {"mixed": _detect_folder(root / "mixed", 0), "bad": _detect_folder(root / "bad", 1),
               "fuzz": _detect_folder(root / "fuzz", 0)}
    loaders = {name: _loader(root / name) for name in ("mixed", "bad", "fuzz")}
    tried = each["tried"] + fuzz
    crashes = len(each["crashed"]) + sum(f["crashed"] for f in folders.values()) \
        + sum(bool(f["crashed"]) for f in loaders.values())
    return {"corpus_cases": len(cases), "fuzz_files": fuzz, "files_tried": tried,
            "crashes": crashes, "detect_each_case": each, "detect_folders": folders,
            "folder_loader": loaders}


# -- 2. kill and restart ----------------------------------------------------------------------
def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name.endswith(LEFTOVER_SUFFIXES))


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=600)


def _timed(args: list, reached: Callable[[], bool], delay: float | None = None) -> dict:
    """Run the CLI; once ``reached()``, wait ``delay`` seconds and SIGKILL it (``None``: never).

    Returns the exit status and the seconds from launch to ``reached()`` and to the end.
    """
    began = time.perf_counter()
    process = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=ENV)
    at = None
    while process.poll() is None:
        if at is None and reached():
            at = time.perf_counter() - began
            if delay is not None:
                try:
                    process.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    status = process.wait()
    return {"status": status, "reached_s": at, "seconds": time.perf_counter() - began}


def _differences(got: dict, expected: dict) -> list[str]:
    names = sorted(set(got) | set(expected))
    return [n for n in names if n not in got or n not in expected or got[n] != expected[n]]


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _staged(out: Path) -> int:
    count = 0
    for partial in out.parent.glob(f".{out.name}.*.partial"):
        try:
            count += len(os.listdir(partial))
        except OSError:
            pass
    return count


def kills(root: Path, n: int, seed: int) -> dict:
    """Kill ``train`` and ``generate`` at random points of their work, then restart them.

    The point is drawn from progress, not the clock (which a busy machine stretches): for
    ``train`` a random number of finished epochs (0-5) and then a random fraction of an
    epoch; for ``generate`` a random number of images already in the staging folder.
    """
    rng = random.Random(seed)
    reference, fakes = root / "reference", root / "reference_fakes"
    fakes.parent.mkdir(parents=True, exist_ok=True)
    generate = ["generate", reference, "--n", N_IMAGES, "--device", "cpu", "--out"]
    train_ref = _timed([*TRAIN, "--out", reference], lambda: _lines(reference / "metrics.jsonl") >= 1)
    generate_ref = _timed([*generate, fakes], lambda: _staged(fakes) >= 1)
    assert train_ref["status"] == 0 and generate_ref["status"] == 0
    expected_run, expected_fakes = run_contents(reference), synthetic_contents(fakes)
    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    epoch_seconds = float(np.mean([row["seconds"] for row in rows]))

    trials: dict[str, list[dict]] = {"train": [], "generate": []}
    for i in range(n):
        run = root / f"train_{i}"
        epochs, fraction = rng.randint(0, 5), rng.random()
        metrics = run / "metrics.jsonl"
        killed = _timed([*TRAIN, "--out", run],
                        (lambda m=metrics, e=epochs: _lines(m) >= e) if epochs else
                        (lambda r=run: (r / "config.json").is_file()),
                        delay=fraction * epoch_seconds)
        resume = (run / "config.json").is_file()
        done = _lines(metrics)
        after = _cli(*TRAIN, "--out", run, *(["--resume"] if resume else []))
        differ = _differences(run_contents(run), expected_run)
        trials["train"].append({
            "kill_point": f"{epochs} epochs + {fraction:.2f} of an epoch",
            "killed": killed["status"] == -signal.SIGKILL and done < 6,
            "epochs_done_when_killed": done, "restart": "--resume" if resume else "fresh",
            "restart_status": after.returncode, "files_differing": differ,
            "leftovers": _leftovers(run), "traceback": "Traceback" in after.stderr})

        out = root / f"generate_{i}" / "fakes"
        out.parent.mkdir()
        images = rng.randint(1, N_IMAGES - 1)
        killed = _timed([*generate, out], lambda o=out, k=images: _staged(o) >= k, delay=0.0)
        staged = _staged(out)
        complete_after_kill = out.exists()
        after = None if complete_after_kill else _cli(*generate, out)  # complete: must be whole
        differ = _differences(synthetic_contents(out), expected_fakes) if out.exists() \
            else ["<no output>"]
        trials["generate"].append({
            "kill_point": f"{images} images staged",
            "killed": killed["status"] == -signal.SIGKILL and not complete_after_kill,
            "images_staged_when_killed": staged,
            "output_existed_after_kill": complete_after_kill,
            "restart_status": None if after is None else after.returncode,
            "files_differing": differ[:10], "n_files_differing": len(differ),
            "leftovers": _leftovers(out.parent),
            "traceback": after is not None and "Traceback" in after.stderr})
    lost = sum(bool(t["files_differing"]) or bool(t["leftovers"]) or t["traceback"]
               for kind in trials.values() for t in kind)
    return {"reference_seconds": {"train": round(train_ref["seconds"], 2),
                                  "epoch": round(epoch_seconds, 3),
                                  "generate": round(generate_ref["seconds"], 2)},
            "trials": trials, "runs_with_data_lost": lost,
            "killed_mid_run": sum(t["killed"] for kind in trials.values() for t in kind)}


# -- 3. memory on bombs -----------------------------------------------------------------------
READ_ONLY = ("import sys\nfrom forensics.images import ImageReadError, read_image\n"
             "try:\n    read_image(sys.argv[1])\nexcept ImageReadError:\n    sys.exit(1)\n")


#: started from a small helper: a child forked from this (large) process would count our
#: memory in its ru_maxrss until it execs
MEASURE = ("import os, subprocess, sys\n"
           "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, "
           "stderr=subprocess.DEVNULL)\n"
           "_, status, usage = os.wait4(p.pid, 0)\n"
           "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n")


def _peak_rss_mib(command: list[str]) -> tuple[float, int]:
    result = subprocess.run([sys.executable, "-S", "-c", MEASURE, *command], capture_output=True,
                            text=True, env=ENV, timeout=600, check=True)
    kib, status = result.stdout.split()
    return round(int(kib) / 1024, 1), int(status)


def memory(root: Path) -> dict:
    from PIL import Image

    from benchmarks.hostile import CASES

    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for case in ("bomb-50000x50000", "bomb-zlib-stream", "bomb-ztxt-chunk"):
        name, build, _ = CASES[case]
        files[case] = root / name
        files[case].write_bytes(build())
    rng = np.random.default_rng(0)
    files["normal-28x28"] = root / "normal.png"
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(files["normal-28x28"])
    files["normal-2000x2000-rgb"] = root / "large.png"
    Image.fromarray(rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)).save(
        files["normal-2000x2000-rgb"])
    measured = {}
    for case, path in files.items():
        peak, status = _peak_rss_mib([*CLI, "detect", str(path), "--json"])
        alone, alone_status = _peak_rss_mib([sys.executable, "-c", READ_ONLY, str(path)])
        measured[case] = {"file_bytes": path.stat().st_size, "peak_rss_mib": peak,
                          "exit_status": status, "read_image_only_peak_rss_mib": alone,
                          "read_image_only_exit_status": alone_status}
    return measured


# -- 4. reproducibility of the benchmark --------------------------------------------------
def _paths(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(_paths(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def reproducibility(root: Path) -> dict:
    """The tiny suite (:mod:`benchmarks.tiny_suite`) run twice, each with its own cache."""
    from benchmarks.tiny_suite import SUITE

    root.mkdir(parents=True, exist_ok=True)
    suite = root / "tiny.toml"
    suite.write_text(SUITE)
    runs = []
    for i in range(2):
        result = _cli("benchmark", "--suite", suite, "--out", root / f"report_{i}", "--cache",
                      root / f"cache_{i}")
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(json.loads((root / f"report_{i}" / "results.json").read_text()))
    a, b = (_paths(r) for r in runs)
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {"fields_differing": differ,
            "fields_differing_outside_timing": [k for k in differ if not k.startswith("timing.")],
            "perturbations_jsonl_identical":
                (root / "report_0" / "perturbations.jsonl").read_bytes()
                == (root / "report_1" / "perturbations.jsonl").read_bytes()}


# -- 5. attacks by class ------------------------------------------------------------------------
def attacks_section() -> dict:
    """:mod:`benchmarks.attacks`, timed beside the reference workload and the load average."""
    from benchmarks.attacks import run_attacks
    from benchmarks.reference import measure
    from forensics import provenance

    reference = measure()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attacks_") as tmp:
        result = run_attacks(Path(tmp))
    seconds = time.perf_counter() - began
    result.update(seconds=round(seconds, 1), reference=reference,
                  seconds_over_reference=round(seconds / reference["seconds"], 1),
                  load_average_1m_after=os.getloadavg()[0], created=provenance.now(),
                  machine=provenance.machine(), versions=provenance.versions())
    print(f"attacks: {result['held']} of {result['tried']} held", flush=True)
    return result


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _attacks_markdown(a: dict) -> list[str]:
    lines = ["## Attacks by class (`benchmarks/attacks.py`)", "",
             f"Measured {a['created']} (load average {a['reference']['load_average_1m_before']:.2f} before, "
             f"{a['load_average_1m_after']:.2f} after): {a['seconds']} s for the section, "
             f"{a['seconds_over_reference']}× the reference workload ({a['reference']['seconds']} s, "
             "`benchmarks.reference.measure()` in the same process). Each attack is a real "
             "`forensics` process; it *held* when it gave no traceback, the contract's exit "
             "status, one `error:` line on failure, no hang (limit "
             f"{a['timeout_s']} s), nothing a strict JSON parser, a spreadsheet or a terminal "
             "would misread (control characters, NaN, formula cells), peak memory within "
             f"{a['memory_budget_mib']} MiB, and (outputs) nothing half-written.", "",
             f"**{a['held']} of {a['tried']} held**; tracebacks {a['tracebacks']}, hangs "
             f"{a['hangs']}, misread outputs {a['misread_outputs']}, largest peak "
             f"{a['peak_mib_max']} MiB (budget {a['memory_budget_mib']} MiB).", "",
             "| class | tried | held |", "|---|---|---|"]
    lines += [f"| {kind} | {row['tried']} | {row['held']} |" for kind, row in a["by_class"].items()]
    lines += ["", "| class | attack | exit (expected) | held | s | peak MiB | what failed |",
              "|---|---|---|---|---|---|---|"]
    for row in a["attacks"]:
        expected = "/".join(map(str, row["expected"]))
        failed = "; ".join(row["failures"]) or "—"
        lines.append(f"| {row['kind']} | {_cell(row['name'])} | {row['status']} ({expected}) | "
                     f"{row['held']} | {row['seconds']} | {row['peak_mib']} | {_cell(failed)} |")
    return lines + [""]


# -- report -----------------------------------------------------------------------------------
def _markdown(results: dict) -> str:
    from benchmarks.reference import ratio, sentence

    h, k, m = results["hostile"], results["kills"], results["memory"]
    machine = results["machine"]
    lines = [
        "# Reliability: hostile input, kill-and-restart, decompression bombs", "",
        f"Measured {results['created']} on {machine['processor']}, {machine['cpu_count']} cores "
        f"(load average {machine.get('load_average_1m')}), {machine['platform']}; "
        f"forensics {results['versions'].get('forensics')}, torch "
        f"{results['versions'].get('torch')}, pillow {results['versions'].get('pillow')}. "
        "Re-run with `python -m benchmarks.reliability`."
        + (f" All sections took {results['seconds']} s "
           f"({ratio(results['seconds'], results['reference'])} reference units). "
           + sentence(results["reference"])
           if "reference" in results else ""), "",
        "## Summary", "",
        "| measure | result | target |", "|---|---|---|",
        f"| hostile files tried (corpus {h['corpus_cases']} + fuzzed {h['fuzz_files']}) | "
        f"{h['files_tried']} | — |",
        f"| crashes (traceback or unexpected exit status) | {h['crashes']} | 0 |",
        f"| kill-and-restart trials (train + generate) | "
        f"{len(k['trials']['train']) + len(k['trials']['generate'])} "
        f"({k['killed_mid_run']} killed mid-run) | — |",
        f"| trials with data lost or leftovers after restart | {k['runs_with_data_lost']} | 0 |",
    ]
    if "attacks" in results:
        a = results["attacks"]
        lines += [f"| attacks by class held, of tried ({a['created'][:10]}; section below) | "
                  f"{a['held']} / {a['tried']} | all |",
                  f"| … tracebacks / hangs / misread outputs | {a['tracebacks']} / {a['hangs']} / "
                  f"{a['misread_outputs']} | 0 / 0 / 0 |",
                  f"| … largest peak memory of any attack | {a['peak_mib_max']} MiB | ≤ "
                  f"{a['memory_budget_mib']} MiB |"]
    for case, row in m.items():
        lines.append(f"| peak RSS on {case} ({row['file_bytes']:,} bytes): `forensics detect` / "
                     f"a process that only calls `read_image` | {row['peak_rss_mib']} / "
                     f"{row['read_image_only_peak_rss_mib']} MiB | bombs ≤ normal |")
    lines += ["", "## Hostile files", "",
              "Each corpus case alone through `forensics detect` (in-process CLI): "
              f"{h['detect_each_case']['tried']} tried, crashed: "
              f"{h['detect_each_case']['crashed'] or 'none'}, wrong outcome: "
              f"{h['detect_each_case']['wrong_outcome'] or 'none'}.", "",
              "| folder | files | scored | skipped | all accounted for | exit (expected) | "
              "traceback |", "|---|---|---|---|---|---|---|"]
    for name, row in h["detect_folders"].items():
        lines.append(f"| {name} | {row['files']} | {row['scored']} | {row['skipped']} | "
                     f"{row['accounted_for']} | {row['exit_status']} "
                     f"({row['expected_exit_status']}) | {row['traceback']} |")
    lines += ["", "Folder data set loader (`forensics.data.load('folder:PATH')`):", "",
              "| folder | files | loaded | skipped (listed) | outcome |", "|---|---|---|---|---|"]
    for name, row in h["folder_loader"].items():
        outcome = row.get("error") or ("all accounted for" if row.get("accounted_for") else "?")
        lines.append(f"| {name} | {row['files']} | {row.get('loaded')} | {row.get('skipped')} | "
                     f"{outcome} |")
    lines += ["", "## Kill (SIGKILL) at a random moment, then restart", "",
              f"Reference: uninterrupted `train` {k['reference_seconds']['train']} s "
              f"({k['reference_seconds']['epoch']} s an epoch), `generate --n {N_IMAGES}` "
              f"{k['reference_seconds']['generate']} s (wall, with interpreter start). The "
              "kill point is drawn from progress, not the clock: a random number of finished "
              "epochs plus a random fraction of one, or a random number of images already "
              "staged. The restart is `train --resume` (or `generate` again); the result is "
              "compared file by file with the uninterrupted one (`created` timestamps and "
              "per-epoch seconds aside), and any `*.tmp`, `*.partial`, `.old` or lock file "
              "left is counted.", "",
              "| command | kill point | killed mid-run | restart | files differing | "
              "leftovers |", "|---|---|---|---|---|---|"]
    for t in k["trials"]["train"]:
        lines.append(f"| train | {t['kill_point']} | {t['killed']} (after "
                     f"{t['epochs_done_when_killed']} epochs) | {t['restart']} → "
                     f"{t['restart_status']} | {len(t['files_differing'])} | "
                     f"{len(t['leftovers'])} |")
    for t in k["trials"]["generate"]:
        restart = "none (was complete)" if t["restart_status"] is None \
            else f"rerun → {t['restart_status']}"
        lines.append(f"| generate | {t['kill_point']} | {t['killed']} (after "
                     f"{t['images_staged_when_killed']} images) | {restart} | "
                     f"{t['n_files_differing']} | {len(t['leftovers'])} |")
    r = results["reproducibility"]
    lines += ["", "## Reproducibility", "",
              "The tiny benchmark suite (`benchmarks/tiny_suite.py`) run twice on this CPU, each "
              "with its own empty cache (so every generator, synthetic set and detector is "
              "trained twice): fields of `results.json` that differ outside `timing`: "
              f"{r['fields_differing_outside_timing'] or 'none'}; inside `timing`: "
              f"{len(r['fields_differing']) - len(r['fields_differing_outside_timing'])}; "
              f"`perturbations.jsonl` identical: {r['perturbations_jsonl_identical']}. "
              "Kill-and-restart above also checks that training is bit-identical "
              "(weights, checkpoint, sample grids) and generation byte-identical.", ""]
    if "attacks" in results:
        lines += _attacks_markdown(results["attacks"])
    lines += ["## Memory", "",
              "Peak resident memory (`wait4`'s `ru_maxrss`) of a whole `forensics detect FILE` "
              "process (Python, torch and the default detector included) and of a process "
              "that only imports `forensics.images` and calls `read_image(FILE)`. A bomb is "
              "refused from its header, before any pixel is decoded, so it costs less than "
              "a normal image.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reliability"))
    parser.add_argument("--kills", type=int, default=5, help="kill-and-restart trials per command")
    parser.add_argument("--fuzz", type=int, default=300, help="mutated image files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["attacks"], help="re-run this section alone; the "
                        "others are kept from the committed results.json (with their dates)")
    args = parser.parse_args()

    from forensics import atomic, provenance

    if args.only == "attacks":
        results = json.loads((args.out / "results.json").read_text())
        results["attacks"] = attacks_section()
        atomic.write_json(args.out / "results.json", results)
        atomic.write_text(args.out / "README.md", _markdown(results))
        print(f"→ {args.out / 'README.md'}")
        return
    from benchmarks.reference import measure

    with tempfile.TemporaryDirectory(prefix="reliability_") as tmp:
        root = Path(tmp)
        reference = measure()
        began = time.perf_counter()
        results = {"reference": reference, "hostile": hostile(root / "hostile", args.fuzz, args.seed)}
        print(f"hostile files: {results['hostile']['files_tried']} tried, "
              f"{results['hostile']['crashes']} crashes", flush=True)
        results["kills"] = kills(root / "kills", args.kills, args.seed)
        print(f"kill-and-restart: {results['kills']['runs_with_data_lost']} with data lost",
              flush=True)
        results["memory"] = memory(root / "memory")
        results["reproducibility"] = reproducibility(root / "reproducibility")
        results["attacks"] = attacks_section()
        print("benchmark twice, separate caches: differing outside timing: "
              f"{results['reproducibility']['fields_differing_outside_timing']}", flush=True)
        results.update({"seed": args.seed, "versions": provenance.versions(),
                        "machine": provenance.machine(), "created": provenance.now(),
                        "seconds": round(time.perf_counter() - began, 1)})
    atomic.write_json(args.out / "results.json", results)
    atomic.write_text(args.out / "README.md", _markdown(results))
    print(f"→ {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
